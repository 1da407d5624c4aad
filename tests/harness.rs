//! Self-tests of the integration harness against plain Apache (mod_oauth2 not loaded), so that a
//! harness fault is told apart from a module fault.

mod common;

use common::*;
use openssl::x509::X509;

#[test]
fn plain_apache_tls_client_cert_cgi_proxy_and_graceful() {
    let backend = RawBackend::start();
    let mut cfg = HttpdConfig::new(format!(
        "<Location /proxied>\nProxyPass {}\n</Location>\n",
        backend.url()
    ))
    .without_oauth2();
    cfg.tls_body = "<Location /tls>\nSSLOptions +StdEnvVars +ExportCertData\n</Location>\n".into();
    let mut h = Httpd::start(cfg);

    // static file over both listeners
    let r = h.https("/x/ok").send();
    assert_200(&r, "static over TLS");
    assert_eq!(r.text(), "ok\n");
    assert_200(&h.http("/x/ok").send(), "static over plain HTTP");

    // the client certificate reaches the server, and the harness thumbprint equals the one of
    // the certificate the server saw
    for c in [ClientCert::A, ClientCert::B] {
        let env = h.https("/tls/env").cert(c).send().env();
        let pem = env
            .get("SSL_CLIENT_CERT")
            .unwrap_or_else(|| panic!("no SSL_CLIENT_CERT in {env:?}"));
        let seen = X509::from_pem(pem.as_bytes()).unwrap();
        assert_eq!(x5t_s256(&seen), h.pki.thumb(c), "thumbprint of {c:?}");
        // optional_no_ca: the self-signed certificate is accepted though not verified
        let verify = env.get("SSL_CLIENT_VERIFY").map(String::as_str);
        assert!(verify.is_some_and(|v| v != "NONE"), "{verify:?}");
    }
    let env = h.https("/tls/env").send().env();
    assert!(
        env.get("SSL_CLIENT_CERT").is_none_or(|v| v.is_empty()),
        "no cert presented: {env:?}"
    );
    assert_eq!(env.get("HTTPS").map(String::as_str), Some("on"));
    let env = h.http("/tls/env").send().env();
    assert!(!env.contains_key("HTTPS"), "plain vhost: {env:?}");

    // the raw-header backend behind mod_proxy sees the request head verbatim
    let r = h
        .https("/proxied/a")
        .header("X-Harness: 1")
        .header("Under_Score: 2")
        .send();
    assert_200(&r, "proxied");
    let fields = raw_head_fields(&r.body);
    assert!(
        fields.contains(&("X-Harness".into(), "1".into())),
        "{fields:?}"
    );
    assert!(
        fields.contains(&("Under_Score".into(), "2".into())),
        "{fields:?}"
    );
    assert!(r.text().starts_with("GET /a HTTP/1.1\r\n"), "{}", r.text());
    assert_eq!(backend.heads().len(), 1);

    // graceful restarts keep serving
    for _ in 0..2 {
        h.graceful();
        assert_200(
            &h.https("/x/ok").cert(ClientCert::A).send(),
            "after graceful",
        );
    }
    h.assert_no_child_crash();
}

#[test]
fn plain_apache_worker_and_prefork_start() {
    for mpm in [Mpm::Worker, Mpm::Prefork] {
        let h = Httpd::start(HttpdConfig::new("").without_oauth2().mpm(mpm));
        assert_200(&h.https("/x/ok").cert(ClientCert::B).send(), "static");
        let env = h.https("/y/env").send().env();
        assert_eq!(env.get("REQUEST_URI").map(String::as_str), Some("/y/env"));
    }
}

#[test]
fn plain_apache_config_test() {
    let t = Httpd::config_test(HttpdConfig::new("").without_oauth2());
    assert!(t.ok, "{}", t.output);
    assert!(t.output.contains("Syntax OK"), "{}", t.output);
    let t = Httpd::config_test(
        HttpdConfig::new("<Location /a>\nNoSuchDirective x\n</Location>\n").without_oauth2(),
    );
    assert!(!t.ok, "{}", t.output);
    let line = t.line_of("NoSuchDirective");
    assert!(
        t.output.contains(&format!(
            "AH00526: Syntax error on line {line} of {}:",
            t.conf.display()
        )),
        "{}",
        t.output
    );
}

#[test]
fn signer_tokens_are_well_formed() {
    use openssl::bn::BigNum;
    use openssl::ecdsa::EcdsaSig;
    use openssl::hash::{MessageDigest, hash};
    use openssl::pkey::PKey;
    use openssl::rsa::Rsa;
    use openssl::sign::Verifier;

    let b64 = |s: &str| {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(s)
            .unwrap()
    };
    let rs = TokenSigner::rsa("one");
    let jwk: serde_json::Value = serde_json::from_str(&rs.public_jwk()).unwrap();
    let t = rs.mint(&claims("joe"));
    let p: Vec<&str> = t.split('.').collect();
    let header: serde_json::Value = serde_json::from_slice(&b64(p[0])).unwrap();
    assert_eq!(
        header,
        serde_json::json!({"alg":"RS256","kid":"one","typ":"at+jwt"})
    );
    let pubkey = Rsa::from_public_components(
        BigNum::from_slice(&b64(jwk["n"].as_str().unwrap())).unwrap(),
        BigNum::from_slice(&b64(jwk["e"].as_str().unwrap())).unwrap(),
    )
    .unwrap();
    let pk = PKey::from_rsa(pubkey).unwrap();
    let mut v = Verifier::new(MessageDigest::sha256(), &pk).unwrap();
    v.update(format!("{}.{}", p[0], p[1]).as_bytes()).unwrap();
    assert!(v.verify(&b64(p[2])).unwrap());
    let tampered = tamper_signature(&t);
    let mut v = Verifier::new(MessageDigest::sha256(), &pk).unwrap();
    v.update(format!("{}.{}", p[0], p[1]).as_bytes()).unwrap();
    assert!(!v.verify(&b64(signature_segment(&tampered))).unwrap());
    // the seed quoting style, unquoted by Apache rules, is the JWK JSON with " }" at the end
    let seed = rs.seed_jwk_arg();
    assert!(seed.starts_with(
        "\"{\\\"kty\\\":\\\"RSA\\\",\\\"kid\\\":\\\"one\\\",\\\"use\\\":\\\"sig\\\",\\\"n\\\":\\\""
    ));
    assert!(seed.ends_with("\\\",\\\"e\\\":\\\"AQAB\\\" }\""));
    let unquoted = seed[1..seed.len() - 1].replace("\\\"", "\"");
    let parsed: serde_json::Value = serde_json::from_str(&unquoted).unwrap();
    assert_eq!(parsed, jwk);

    // ES256: raw r||s signature over the signing input
    let es = TokenSigner::ec("ec1");
    let t = es.mint(&claims("joe"));
    let p: Vec<&str> = t.split('.').collect();
    let sig = b64(p[2]);
    assert_eq!(sig.len(), 64);
    let jwk = es.public_jwk_value();
    let group = openssl::ec::EcGroup::from_curve_name(openssl::nid::Nid::X9_62_PRIME256V1).unwrap();
    let key = openssl::ec::EcKey::from_public_key_affine_coordinates(
        &group,
        &BigNum::from_slice(&b64(jwk["x"].as_str().unwrap())).unwrap(),
        &BigNum::from_slice(&b64(jwk["y"].as_str().unwrap())).unwrap(),
    )
    .unwrap();
    let es_sig = EcdsaSig::from_private_components(
        BigNum::from_slice(&sig[..32]).unwrap(),
        BigNum::from_slice(&sig[32..]).unwrap(),
    )
    .unwrap();
    let digest = hash(
        MessageDigest::sha256(),
        format!("{}.{}", p[0], p[1]).as_bytes(),
    )
    .unwrap();
    assert!(es_sig.verify(&digest, &key).unwrap());
}

/// What the readiness checks of httpd and nginx rest on: a port counts as a process's only when
/// that process holds its listening socket, not when something answers there (a port chosen
/// free may be taken by another test's server before apache or nginx binds it).
#[test]
fn listens_on_tells_whose_listening_socket_a_port_is() {
    let mine = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = mine.local_addr().unwrap().port();
    assert!(listens_on(std::process::id(), port), "our own listener");
    let h = Httpd::start(HttpdConfig::new(String::new()).without_oauth2());
    assert!(listens_on(h.pid(), h.http_port), "httpd's plain port");
    assert!(listens_on(h.pid(), h.https_port), "httpd's TLS port");
    assert!(
        !listens_on(h.pid(), port),
        "httpd does not hold the test's port"
    );
    assert!(
        !listens_on(std::process::id(), h.http_port),
        "nor the test httpd's"
    );
    drop(mine);
    assert!(!listens_on(std::process::id(), port), "a closed listener");
}
