//! A configuration written for the newest C module (mod_oauth2 4.x on liboauth2 2.3): every
//! directive, verifier type, option and option value its documentation, sample `oauth2.conf` and
//! ChangeLogs name, with realistic values, passes `apache2 -t` here without a warning about an
//! unknown option. What we refuse of such configurations, and why, is in docs/compatibility.md.

mod common;

use common::remote::rsa_private_jwk;
use common::*;
use openssl::asn1::Asn1Time;
use openssl::hash::MessageDigest;
use openssl::pkey::PKey;
use openssl::rsa::Rsa;
use openssl::x509::{X509, X509NameBuilder};

/// A self-signed RSA certificate, PEM, for `OAuth2TokenVerify pem`.
fn rsa_certificate_pem() -> String {
    let key = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_text("CN", "as.example.com").unwrap();
    let name = name.build();
    let mut b = X509::builder().unwrap();
    b.set_version(2).unwrap();
    b.set_subject_name(&name).unwrap();
    b.set_issuer_name(&name).unwrap();
    b.set_pubkey(&key).unwrap();
    b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::days_from_now(365).unwrap())
        .unwrap();
    b.sign(&key, MessageDigest::sha256()).unwrap();
    String::from_utf8(b.build().to_pem().unwrap()).unwrap()
}

/// PEM on one line with `\n` written out, as the C module's documentation writes inline PEM.
fn inline_pem(pem: &str) -> String {
    apache_quote(&pem.trim_end().replace('\n', "\\n")).replace("\\\\n", "\\n")
}

#[test]
fn a_mod_oauth2_4_configuration_passes_apache_config_test() {
    let rsa = TokenSigner::rsa("one");
    let secret = "0123456789abcdef0123456789abcdef";
    let b64 = |alphabet: &base64::engine::GeneralPurpose| {
        base64::Engine::encode(alphabet, secret.as_bytes())
    };
    let hex: String = secret.bytes().map(|b| format!("{b:02x}")).collect();
    let pubkey = {
        let key = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
        String::from_utf8(key.public_key_to_pem().unwrap()).unwrap()
    };
    let client_key = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
    let private_jwk = rsa_private_jwk(&client_key, "rs-key-1");
    let arn = "arn:aws:elasticloadbalancing:eu-west-1:123456789012:loadbalancer/app/my-alb/50dc6c495c0c9188";

    let server = [
        "OAuth2CryptoPassphrase \"a-long-random-passphrase-0123456789\"".to_string(),
        "OAuth2Cache shm name=shm1&key_hash_algo=sha256&encrypt=false&passphrase_hash_algo=sha256&max_key_size=65&max_val_size=8193&max_entries=1000".into(),
        "OAuth2Cache file name=files&dir=/tmp&clean_interval=60&encrypt=true".into(),
        "OAuth2Cache memcache name=mc&config_string=--SERVER=localhost:11211".into(),
        "OAuth2Cache redis name=redis1&host=localhost&port=6379&username=rs&password=secret&key_hash_algo=sha512&passphrase_hash_algo=sha384".into(),
        // The C module's sample and README lines, as written there.
        "OAuth2TokenVerify introspect https://pingfed:9031/as/introspect.oauth2 introspect.ssl_verify=false&introspect.auth=client_secret_basic&client_id=rs0&client_secret=2Federate".into(),
    ];
    let endpoint = |p: &str| {
        format!(
            "{p}.ssl_verify=true&{p}.http_timeout=20&{p}.http_retries=2&{p}.http_retry_interval=300&{p}.outgoing_proxy=http://proxy.example.com:3128&{p}.url=https://ignored.example.com&{p}.auth=none"
        )
    };
    let claims = "verify.iss=required&iss=https://as.example.com&verify.aud=required&aud=https://api.example.com\
                  &verify.exp=required&verify.nbf=optional&verify.iat=optional&verify.iat.slack_before=300&verify.iat.slack_after=10";
    let lines = [
        // Local keys, each type.
        format!("OAuth2TokenVerify jwk {} kid=one&{claims}&verify.cache=shm1&expiry=300", rsa.jwk_arg()),
        format!("OAuth2TokenVerify plain {secret} kid=hs&verify.exp=optional"),
        format!("OAuth2TokenVerify base64 {}", b64(&base64::engine::general_purpose::STANDARD)),
        format!("OAuth2TokenVerify base64url {}", b64(&base64::engine::general_purpose::URL_SAFE_NO_PAD)),
        format!("OAuth2TokenVerify hex {hex}"),
        format!("OAuth2TokenVerify pem {} kid=cert", inline_pem(&rsa_certificate_pem())),
        format!("OAuth2TokenVerify pubkey {} kid=pub", inline_pem(&pubkey)),
        // Remote keys.
        format!("OAuth2TokenVerify jwks_uri https://as.example.com/jwks {}&jwks_uri.cache=shm1&jwks_uri.expiry=86400&{claims}", endpoint("jwks_uri")),
        // liboauth2 2.0: a local key set (read at startup; a missing file is only a warning).
        "OAuth2TokenVerify jwks_uri file:///etc/apache2/oauth2-jwks.json jwks_uri.expiry=300".into(),
        format!("OAuth2TokenVerify eckey_uri https://public-keys.auth.elb.eu-west-1.amazonaws.com/09d4fa17 {}&eckey_uri.cache=files&eckey_uri.expiry=3600", endpoint("eckey_uri")),
        format!("OAuth2TokenVerify aws_alb {arn} alb_base_url=https://public-keys.auth.elb.eu-west-1.amazonaws.com/&{}&aws_alb.cache=shm1&aws_alb.expiry=3600&verify.iss=optional", endpoint("aws_alb")),
        format!("OAuth2TokenVerify metadata https://as.example.com/.well-known/openid-configuration {}&metadata.cache=shm1&metadata.expiry=3600&{}&jwks_uri.expiry=600&introspect.auth=client_secret_post&client_id=rs&client_secret=secret", endpoint("metadata"), endpoint("jwks_uri")),
        // Introspection, every endpoint authentication.
        format!("OAuth2TokenVerify introspect https://as.example.com/introspect {}&introspect.cache=redis1&introspect.params=key1%3Done%26key2%3Dtwo&introspect.token_param_name=access_token&verify.cache=redis1&expiry=120", endpoint("introspect")).replace("introspect.auth=none", "introspect.auth=none"),
        "OAuth2TokenVerify introspect https://as.example.com/introspect introspect.auth=client_secret_basic&client_id=rs&client_secret=secret".into(),
        "OAuth2TokenVerify introspect https://as.example.com/introspect introspect.auth=client_secret_post&client_id=rs&client_secret=secret".into(),
        "OAuth2TokenVerify introspect https://as.example.com/introspect introspect.auth=client_secret_jwt&client_id=rs&client_secret=0123456789abcdef0123456789abcdef&aud=https://as.example.com/token".into(),
        format!("OAuth2TokenVerify introspect https://as.example.com/introspect {}", apache_quote(&format!("introspect.auth=private_key_jwt&client_id=rs&jwk={}&aud=https://as.example.com/token", pct_json(&private_jwk)))),
        "OAuth2TokenVerify introspect https://as.example.com/introspect introspect.auth=client_cert&cert=/etc/ssl/rs/client.pem&key=/etc/ssl/rs/client.key".into(),
        "OAuth2TokenVerify introspect https://as.example.com/introspect introspect.auth=basic&username=rs&password=secret".into(),
        // Proof of possession.
        format!("OAuth2TokenVerify jwk {} type=mtls&mtls.policy=optional&mtls.env_var_name=SSL_CLIENT_CERT", rsa.jwk_arg()),
        format!("OAuth2TokenVerify jwk {} type=MTLS&mtls.policy=required", rsa.jwk_arg()),
        format!("OAuth2TokenVerify jwk {} type=dpop&dpop.cache=shm1&dpop.expiry=10&dpop.iat.verify=required&dpop.iat.slack.before=5&dpop.iat.slack.after=5", rsa.jwk_arg()),
        "OAuth2TokenVerify introspect https://pingfed:9031/as/introspect.oauth2 introspect.ssl_verify=false&introspect.auth=client_secret_basic&client_id=rs_client&client_secret=2Federate&type=dpop".into(),
        format!("OAuth2TokenVerify jwk {} type=bearer", rsa.jwk_arg()),
        // Token sources, every method and option.
        "OAuth2AcceptTokenIn environment name=access_token&strip=true".into(),
        "OAuth2AcceptTokenIn header name=Authorization&type=Bearer&strip=false".into(),
        "OAuth2AcceptTokenIn query name=access_token&strip=on".into(),
        "OAuth2AcceptTokenIn post name=access_token".into(),
        "OAuth2AcceptTokenIn cookie name=access_token&strip=off".into(),
        "OAuth2AcceptTokenIn basic".into(),
        // What reaches the backend.
        "OAuth2TargetPass envvars=on&headers=on&authn_header=X-Remote-User&prefix=OAUTH2_CLAIM_&remote_user_claim=sub&json_payload_claim=payload".into(),
        "OAuth2TargetPass envvars=off".into(),
        "OAuth2TargetPass encoding=latin1".into(),
        // Authorization.
        "Require oauth2_claim scope~(^|\\s)read($|\\s) sub:alice realm_access.roles:admin".into(),
    ];
    let body = format!(
        "{}<Location /openidc>\nAuthType auth-openidc\nOAuth2TokenVerify jwks_uri https://pingfed:9031/ext/one jwks_uri.ssl_verify=false\n\
         OAuth2AcceptTokenIn header name=x-amzn-oidc-data&type=\nRequire valid-user\n</Location>\n",
        oauth2_location("/api", &lines.join("\n"))
    );
    let t = Httpd::config_test(HttpdConfig::new(body).server(server.join("\n")));
    assert!(
        t.ok,
        "apache2 -t refused a mod_oauth2 4.x configuration:\n{}\n--- config ---\n{}",
        t.output, t.conf_text
    );
    let warnings: Vec<&str> = t
        .output
        .lines()
        .filter(|l| l.contains("unknown option") || l.contains("is ignored"))
        .collect();
    assert!(
        warnings.is_empty(),
        "options of the C module warned about as unknown:\n{}",
        warnings.join("\n")
    );
    for directive in [
        "OAuth2CryptoPassphrase",
        "OAuth2Cache",
        "OAuth2TokenVerify",
        "OAuth2AcceptTokenIn",
        "OAuth2TargetPass",
        "Require oauth2_claim",
        "AuthType oauth2",
        "AuthType auth-openidc",
    ] {
        assert!(
            t.conf_text.contains(directive),
            "{directive} is not in the configuration"
        );
    }
}

/// A JSON value as an option value: percent-encoded (`&`, `=`, `%`, `+` and quotes).
fn pct_json(json: &str) -> String {
    common::remote::pct(json)
}

/// An EC private JWK (P-256), which `private_key_jwt` cannot sign RS256 with.
fn ec_private_jwk() -> String {
    let group = openssl::ec::EcGroup::from_curve_name(openssl::nid::Nid::X9_62_PRIME256V1).unwrap();
    let ec = openssl::ec::EcKey::generate(&group).unwrap();
    let mut ctx = openssl::bn::BigNumContext::new().unwrap();
    let (mut x, mut y) = (
        openssl::bn::BigNum::new().unwrap(),
        openssl::bn::BigNum::new().unwrap(),
    );
    ec.public_key()
        .affine_coordinates(&group, &mut x, &mut y, &mut ctx)
        .unwrap();
    serde_json::json!({
        "kty": "EC", "crv": "P-256",
        "x": b64url(&x.to_vec_padded(32).unwrap()),
        "y": b64url(&y.to_vec_padded(32).unwrap()),
        "d": b64url(&ec.private_key().to_vec_padded(32).unwrap()),
    })
    .to_string()
}

#[test]
fn what_the_c_module_accepts_and_we_refuse_is_documented() {
    /// A configuration line the C module (4.x on liboauth2 2.3) accepts at start-up.
    struct Row<'a> {
        /// At server level (`OAuth2Cache`), else in a location.
        server: bool,
        line: String,
        /// `apache2 -t` fails at the line holding this, or (None) in its configuration check.
        needle: Option<&'a str>,
        /// Part of the message `apache2 -t` prints (ours, not httpd's).
        expect_message: &'a str,
        /// The first cell of the docs/compatibility.md row that says why.
        expect_doc_row: &'a str,
    }
    let arn = "arn:aws:elasticloadbalancing:eu-west-1:123456789012:loadbalancer/app/my-alb/50dc6c495c0c9188";
    let rsa = TokenSigner::rsa("one");
    let row = |server: bool,
               line: String,
               needle: Option<&'static str>,
               message: &'static str,
               doc: &'static str| Row {
        server,
        line,
        needle,
        expect_message: message,
        expect_doc_row: doc,
    };
    let rows = [
        row(false, "OAuth2TokenVerify aws_alb my-alb".into(), Some("aws_alb my-alb"),
            "is not an Application Load Balancer ARN", "`aws_alb` ARN"),
        row(false, format!("OAuth2TokenVerify aws_alb {arn} alb_base_url=keys.example.com"), Some("alb_base_url=keys"),
            "must be an http:// or https:// URL", "`alb_base_url`"),
        row(false, "OAuth2TokenVerify jwks_uri https://as.example.com/jwks expiry=5m".into(), Some("expiry=5m"),
            "must be a whole number of seconds", "number options"),
        row(false, "OAuth2TokenVerify jwks_uri https://as.example.com/jwks jwks_uri.http_timeout=0".into(), Some("http_timeout=0"),
            "must be at least 1 second", "number options"),
        row(false, format!("OAuth2TokenVerify jwk {} type=dpop&dpop.expiry=5", rsa.jwk_arg()), Some("dpop.expiry=5"),
            "set dpop.expiry to 10 or more", "`dpop.expiry`, `dpop.iat.slack.before`, `dpop.iat.slack.after`"),
        row(false, format!("OAuth2TokenVerify jwk {} type=dpop&dpop.cache=nope", rsa.jwk_arg()), Some("dpop.cache=nope"),
            "dpop.cache=nope names no OAuth2Cache", "DPoP `jti`"),
        row(true, "OAuth2Cache shm max_entries=0".into(), Some("max_entries=0"),
            "is out of range", "`OAuth2Cache` sizes and digests"),
        row(true, "OAuth2Cache shm key_hash_algo=sha3-999".into(), Some("sha3-999"),
            "is not a digest OpenSSL knows", "`OAuth2Cache` sizes and digests"),
        row(true, "OAuth2Cache memcache name=m&encrypt=ture".into(), Some("encrypt=ture"),
            "write encrypt=true or encrypt=false", "`OAuth2Cache` `encrypt=`"),
        row(true, "OAuth2Cache memcache name=m&encrypt=false&config_string=--SERVER=cache:1121l".into(), Some("1121l"),
            "write config_string=--SERVER=host:port", "`OAuth2Cache memcache config_string=`"),
        row(true, "OAuth2Cache redis name=r&host=localhost".into(), None,
            "no OAuth2CryptoPassphrase is configured", "cache encryption"),
        row(false, "OAuth2TargetPass remote_user_claim=".into(), Some("remote_user_claim="),
            "must name a claim", "empty names"),
        row(false, "OAuth2AcceptTokenIn cookie name=".into(), Some("cookie name="),
            "name= must not be empty", "empty names"),
        row(false, "Require oauth2_claim".into(), Some("Require oauth2_claim"),
            "needs at least one claim spec", "empty names"),
        row(false, "Require oauth2_claim \"scope~(read\"".into(), Some("scope~(read"),
            "invalid regular expression", "`Require oauth2_claim name~regex`"),
        row(false, "OAuth2TargetPass encoding=utf8".into(), Some("encoding=utf8"),
            "unknown value for encoding", "`OAuth2TargetPass encoding`"),
        row(false, "OAuth2TargetPass \"authn_header=X Remote User\"".into(), Some("authn_header=X"),
            "not a valid HTTP header name", "`authn_header`, `prefix`"),
        row(false, "OAuth2TargetPass \"prefix=X Claim \"".into(), Some("prefix=X"),
            "not valid at the start of an HTTP header name", "`authn_header`, `prefix`"),
        row(false, "OAuth2TargetPass authn_header=Content-Length".into(), Some("authn_header=Content-Length"),
            "a framing or hop-by-hop header", "claims named like framing headers"),
        row(false, "OAuth2TokenVerify introspect https://as.example.com/introspect introspect.auth=basic&password=secret".into(),
            Some("auth=basic"), "username must be set for basic", "endpoint credentials"),
        row(false, "OAuth2TokenVerify introspect https://as.example.com/introspect introspect.auth=client_secret_basic&client_id=rs&client_secret=".into(),
            Some("client_secret="), "client_secret must be set for client_secret_basic", "endpoint credentials"),
        row(false, format!(
                "OAuth2TokenVerify introspect https://as.example.com/introspect {}",
                apache_quote(&format!("introspect.auth=private_key_jwt&client_id=rs&aud=https://as.example.com/token&jwk={}", pct_json(&ec_private_jwk())))
            ), Some("private_key_jwt"), "RSA", "endpoint credentials"),
        row(false, "OAuth2TokenVerify jwks_uri ftp://as.example.com/jwks".into(), Some("ftp://"),
            "URL", "remote URLs"),
        row(false, "OAuth2TokenVerify plain too-short-a-secret".into(), Some("too-short"),
            "key too weak", "weak keys"),
        row(false, format!("OAuth2TokenVerify jwk {}", TokenSigner::rsa_bits("weak", 1024).jwk_arg()), Some("OAuth2TokenVerify jwk"),
            "key too weak", "weak keys"),
    ];
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/docs/compatibility.md"
    ))
    .expect("docs/compatibility.md");
    let mut f = Failures::new();
    for row in &rows {
        f.check(
            doc.contains(&format!("\n| {} |", row.expect_doc_row)),
            || {
                format!(
                    "{}: docs/compatibility.md has no row `{}`",
                    row.line, row.expect_doc_row
                )
            },
        );
        let location = if row.server {
            "OAuth2TokenVerify jwks_uri https://as.example.com/jwks"
        } else {
            &row.line
        };
        let mut config = HttpdConfig::new(oauth2_location("/p", location));
        if row.server {
            config = config.server(row.line.clone());
        }
        let t = Httpd::config_test(config);
        match row.needle {
            Some(needle) => match t.syntax_error(needle) {
                Ok(msg) => f.check(msg.contains(row.expect_message), || {
                    format!(
                        "{}: message `{msg}` lacks `{}`",
                        row.line, row.expect_message
                    )
                }),
                Err(e) => f.fail(format!("{}: {e}", row.line)),
            },
            None => f.check(!t.ok && t.output.contains(row.expect_message), || {
                format!(
                    "{}: expected a failure with `{}`:\n{}",
                    row.line, row.expect_message, t.output
                )
            }),
        }
    }
    f.assert_none();
}
