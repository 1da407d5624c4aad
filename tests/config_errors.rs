//! Configuration errors reported by `apache2 -t` with the C module's exact messages, weak keys
//! refused, and valid configurations accepted.

mod common;

use common::*;

fn location(directive: &str) -> String {
    oauth2_location("/p", directive)
}

/// `apache2 -t` must fail at the line holding `needle`, with `message` on the next output line.
#[track_caller]
fn assert_syntax_error(t: &ConfigTest, needle: &str, message: Option<&str>) {
    assert!(
        !t.ok,
        "apache2 -t accepted the configuration:\n{}\n--- config ---\n{}",
        t.output, t.conf_text
    );
    let line = t.line_of(needle);
    let header = format!(
        "AH00526: Syntax error on line {line} of {}:",
        t.conf.display()
    );
    let lines: Vec<&str> = t.output.lines().collect();
    let pos = lines.iter().position(|l| l.contains(&header));
    assert!(
        pos.is_some(),
        "expected `{header}` in the output of apache2 -t:\n{}",
        t.output
    );
    let next = lines.get(pos.unwrap() + 1).copied().unwrap_or("");
    match message {
        Some(m) => assert_eq!(next, m, "message after {header}\n{}", t.output),
        None => assert!(
            !next.trim().is_empty(),
            "empty message after {header}:\n{}",
            t.output
        ),
    }
}

#[test]
fn unknown_verify_type() {
    let t = Httpd::config_test(HttpdConfig::new(location("OAuth2TokenVerify foo bar")));
    assert_syntax_error(
        &t,
        "OAuth2TokenVerify foo bar",
        Some(
            "Invalid value, must be one of: plain, base64, base64url, hex, pem, pubkey, jwk, jwks_uri, eckey_uri, aws_alb, introspect or metadata.",
        ),
    );
}

#[test]
fn unknown_pop_type() {
    let signer = TokenSigner::rsa("one");
    let t = Httpd::config_test(HttpdConfig::new(location(&format!(
        "OAuth2TokenVerify jwk {} type=foo",
        signer.jwk_arg()
    ))));
    assert_syntax_error(
        &t,
        "type=foo",
        Some("Invalid value, must be one of: \"bearer\", \"dpop\" or \"mtls\"."),
    );
}

#[test]
fn rsa_jwk_of_1024_bits_is_refused() {
    let weak = TokenSigner::rsa_bits("weak", 1024);
    let t = Httpd::config_test(HttpdConfig::new(location(&format!(
        "OAuth2TokenVerify jwk {}",
        weak.jwk_arg()
    ))));
    assert_syntax_error(&t, "OAuth2TokenVerify jwk", None);
}

#[test]
fn plain_secret_of_16_bytes_is_refused() {
    let t = Httpd::config_test(HttpdConfig::new(location(
        "OAuth2TokenVerify plain 0123456789abcdef",
    )));
    assert_syntax_error(&t, "OAuth2TokenVerify plain", None);
}

#[test]
fn valid_configurations_pass() {
    let rsa = TokenSigner::rsa("one");
    let ec = TokenSigner::ec("ec1");
    for directives in [
        // the seed
        format!(
            "OAuth2TokenVerify jwk {} type=mtls&mtls.policy=optional",
            rsa.seed_jwk_arg()
        ),
        format!("OAuth2TokenVerify jwk {}", rsa.jwk_arg()),
        format!("OAuth2TokenVerify jwk {} type=mtls", rsa.jwk_arg()),
        format!(
            "OAuth2TokenVerify jwk {} type=mtls&mtls.policy=required",
            ec.jwk_arg()
        ),
        // a 32-byte shared secret is long enough
        "OAuth2TokenVerify plain 0123456789abcdef0123456789abcdef".to_string(),
        // two verifiers (key rollover) and a realm
        format!(
            "AuthName \"my realm\"\nOAuth2TokenVerify jwk {}\nOAuth2TokenVerify jwk {}",
            rsa.jwk_arg(),
            ec.jwk_arg()
        ),
    ] {
        let t = Httpd::config_test(HttpdConfig::new(location(&directives)));
        assert!(
            t.ok && t.output.contains("Syntax OK"),
            "apache2 -t refused a valid configuration:\n{directives}\n--- output ---\n{}",
            t.output
        );
    }
}

#[test]
fn unknown_token_source_method() {
    for line in [
        "OAuth2AcceptTokenIn bogus",
        "OAuth2AcceptTokenIn Header",
        "OAuth2AcceptTokenIn bogus name=x",
    ] {
        let t = Httpd::config_test(HttpdConfig::new(location(line)));
        assert_syntax_error(
            &t,
            line,
            Some(
                "Invalid value, must be one of: environment, header, query, post, cookie or basic.",
            ),
        );
    }
}

#[test]
fn bad_strip_flag() {
    for line in [
        "OAuth2AcceptTokenIn query strip=maybe",
        "OAuth2AcceptTokenIn header name=X-T&strip=yes",
        "OAuth2AcceptTokenIn cookie strip=",
    ] {
        let t = Httpd::config_test(HttpdConfig::new(location(line)));
        assert_syntax_error(
            &t,
            line,
            Some("value must be \"true\", \"false\", \"1\", \"0\",  \"on\" or \"off\""),
        );
    }
}

#[test]
fn valid_token_sources_pass() {
    let t = Httpd::config_test(HttpdConfig::new(location(
        "OAuth2TokenVerify plain 0123456789abcdef0123456789abcdef\n\
         OAuth2AcceptTokenIn environment name=my_token&strip=OFF\n\
         OAuth2AcceptTokenIn header name=X-Token&type=\n\
         OAuth2AcceptTokenIn query name=at&strip=on\n\
         OAuth2AcceptTokenIn post strip=TRUE\n\
         OAuth2AcceptTokenIn cookie name=c&strip=0\n\
         OAuth2AcceptTokenIn basic",
    )));
    assert!(
        t.ok && t.output.contains("Syntax OK"),
        "apache2 -t refused valid OAuth2AcceptTokenIn lines:\n{}",
        t.output
    );
}
