//! Behind a TLS terminator: `OAuth2TrustedProxy` and `mtls.header` (RFC 8705 certificate binding
//! with the client certificate a trusted proxy forwards in a request header), and the public URL
//! a trusted proxy forwards for a DPoP proof's `htu`. A real nginx terminates mutual TLS in front
//! of httpd and connects from 127.0.0.3 (trusted); clients that talk to httpd directly connect
//! from 127.0.0.1 or 127.0.0.2 (not trusted) and forge the same headers.

mod common;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use common::dpop::*;
use common::nginx::*;
use common::*;
use serde_json::json;
use std::fs;

const TRUSTED: &str = "127.0.0.3";
const UNTRUSTED: &str = "127.0.0.2";
const CERT_HEADER: &str = "X-SSL-Client-Cert";

/// Each location reads the forwarded certificate from its own header, in its own format.
const FORMATS: &[(&str, &str, &str)] = &[
    ("/fwd/", "X-SSL-Client-Cert", "pem-urlencoded"),
    ("/pem/", "X-Client-Pem", "pem"),
    ("/der/", "X-Client-Der", "der-base64"),
    ("/xfcc/", "X-Forwarded-Client-Cert", "xfcc"),
];

fn start(signer: &TokenSigner) -> Httpd {
    let mut body = String::new();
    for (path, header, format) in FORMATS {
        body += &oauth2_location(
            path,
            &jwk_verify(
                signer,
                &format!(
                    "type=mtls&mtls.policy=required&mtls.header={header}&mtls.header.format={format}"
                ),
            ),
        );
    }
    body += &oauth2_location(
        "/opt/",
        &jwk_verify(
            signer,
            &format!("type=mtls&mtls.policy=optional&mtls.header={CERT_HEADER}"),
        ),
    );
    body += &oauth2_location("/d/", &jwk_verify(signer, "type=dpop"));
    Httpd::start(
        HttpdConfig::new(body)
            // Room for the 16 KiB bound of the module to be what refuses an oversized header.
            .server(format!(
                "OAuth2TrustedProxy {TRUSTED} ::1\nLimitRequestFieldSize 32768\n"
            )),
    )
}

fn pem(h: &Httpd, c: ClientCert) -> String {
    fs::read_to_string(h.pki.cert_and_key(c).0).unwrap()
}

fn der(h: &Httpd, c: ClientCert) -> Vec<u8> {
    openssl::x509::X509::from_pem(pem(h, c).as_bytes())
        .unwrap()
        .to_der()
        .unwrap()
}

/// Percent-encoding of everything but RFC 3986 unreserved characters, as nginx's
/// `$ssl_client_escaped_cert` and AWS ALB write a PEM.
fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// One raw HTTP/1.1 exchange (`head` lines, then `extra` header bytes as they are), read to the
/// end (the request says `Connection: close`).
fn raw_http(port: u16, head: &[u8], extra: &[u8]) -> Vec<u8> {
    use std::io::{Read, Write};
    let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    c.write_all(&[head, extra, b"\r\n"].concat()).unwrap();
    let mut out = Vec::new();
    let _ = c.read_to_end(&mut out);
    out
}

/// The header value for certificate `c` in `format`.
fn encoded(h: &Httpd, c: ClientCert, format: &str) -> String {
    match format {
        "pem-urlencoded" => urlencode(&pem(h, c)),
        "pem" => pem(h, c).trim_end().replace('\n', " "),
        "der-base64" => STANDARD.encode(der(h, c)),
        "xfcc" => format!(
            "By=spiffe://cluster.local/ns/edge;Hash=00,By=spiffe://cluster.local/ns/api;Hash=11;Cert=\"{}\";Subject=\"CN=client,O=test\";URI=spiffe://client",
            urlencode(&pem(h, c))
        ),
        other => panic!("format {other}"),
    }
}

/// A plain-HTTP request to `path` from the peer address `from` with the bearer `token` and the
/// header line `header` (as a proxy forwards it, or as a client forges it).
fn send_from(h: &Httpd, from: &str, path: &str, token: &str, header: &str) -> Response {
    h.http(path)
        .source_addr(from)
        .bearer(token)
        .header(header)
        .send()
}

fn bound_token(signer: &TokenSigner, h: &Httpd, c: ClientCert) -> String {
    signer.mint(&with(
        claims("alice"),
        json!({"cnf": {"x5t#S256": h.pki.thumb(c)}}),
    ))
}

/// Through a real nginx terminating mutual TLS: the certificate the client presented to nginx
/// is the one the token must be bound to.
#[test]
fn certificates_forwarded_by_a_trusted_nginx() {
    let signer = TokenSigner::rsa("one");
    let h = start(&signer);
    let nginx = Nginx::start(
        &h,
        &NginxFront {
            upstream_port: h.http_port,
            bind: TRUSTED,
            set_headers: &[&format!("{CERT_HEADER} $ssl_client_escaped_cert")],
        },
    );
    let token_a = bound_token(&signer, &h, ClientCert::A);
    let mut f = Failures::new();
    let via = |path: &str, cert: Option<ClientCert>, token: &str| {
        h.request_to(nginx.url(path))
            .maybe_cert(cert)
            .bearer(token)
            .send()
    };
    let r = via("/fwd/env", Some(ClientCert::A), &token_a);
    f.expect("nginx, certificate A, token bound to A", &r, 200, None);
    f.check(
        r.env().get("REMOTE_USER").map(String::as_str) == Some("alice"),
        || format!("REMOTE_USER: {:?}", r.env().get("REMOTE_USER")),
    );
    let mark = h.log_mark();
    let r = via("/fwd/env", Some(ClientCert::B), &token_a);
    f.expect(
        "nginx, certificate B, token bound to A",
        &r,
        401,
        Some(INVALID_TOKEN),
    );
    let log = h.log_since(mark);
    f.check(log.contains("does not match"), || format!("log: {log}"));
    let r = via("/fwd/env", None, &token_a);
    f.expect(
        "nginx, no certificate, bound token",
        &r,
        401,
        Some(INVALID_TOKEN),
    );
    // A client without a certificate sends the header itself: nginx's proxy_set_header replaces
    // it (with nothing), so only what nginx saw counts.
    let r = h
        .request_to(nginx.url("/fwd/env"))
        .bearer(&token_a)
        .header(&format!(
            "{CERT_HEADER}: {}",
            urlencode(&pem(&h, ClientCert::A))
        ))
        .send();
    f.expect(
        "nginx, no certificate, the client's own header",
        &r,
        401,
        Some(INVALID_TOKEN),
    );
    // An unbound token where binding is optional: nginx's header reaches the backend as sent.
    let unbound = signer.mint(&claims("bob"));
    let r = via("/opt/env", Some(ClientCert::A), &unbound);
    f.expect("nginx, unbound token, optional", &r, 200, None);
    let env = r.env();
    f.check(
        env.get("HTTP_X_SSL_CLIENT_CERT")
            .is_some_and(|v| v.contains("BEGIN%20CERTIFICATE")),
        || {
            format!(
                "the trusted proxy's header should reach the backend: {:?}",
                env.keys().collect::<Vec<_>>()
            )
        },
    );
    if !f.all_passed() {
        eprintln!(
            "--- nginx ---\n{}\n--- httpd ---\n{}",
            nginx.log(),
            h.error_log()
        );
    }
    f.assert_none();
}

/// A client that talks to httpd directly cannot forge the header: from a peer that is not
/// trusted it is ignored, logged, and removed before the backend sees it.
#[test]
fn forged_certificate_headers_from_untrusted_peers_are_removed() {
    let signer = TokenSigner::rsa("one");
    let h = start(&signer);
    let token_a = bound_token(&signer, &h, ClientCert::A);
    let forged = format!("{CERT_HEADER}: {}", urlencode(&pem(&h, ClientCert::A)));
    let mut f = Failures::new();
    for from in ["127.0.0.1", UNTRUSTED] {
        let mark = h.log_mark();
        let r = send_from(&h, from, "/fwd/env", &token_a, &forged);
        f.expect(
            &format!("forged from {from}, bound token"),
            &r,
            401,
            Some(INVALID_TOKEN),
        );
        let log = h.log_since(mark);
        f.check(log.contains("presented no certificate"), || {
            format!("{from}: refusal reason: {log}")
        });
        let r = h
            .http("/opt/env")
            .source_addr(from)
            .bearer(&signer.mint(&claims("bob")))
            .header(&forged)
            .header(&format!("x_ssl_client_cert: {}", "spoof"))
            .send();
        f.expect(
            &format!("forged from {from}, unbound token, optional"),
            &r,
            200,
            None,
        );
        let env = r.env();
        f.check(!env.contains_key("HTTP_X_SSL_CLIENT_CERT"), || {
            format!(
                "{from}: the forged header reached the backend: {:?}",
                env.get("HTTP_X_SSL_CLIENT_CERT")
            )
        });
    }
    // Whatever the value (here not UTF-8) and under a name a CGI reads alike: removed too.
    let raw = raw_http(
        h.http_port,
        format!(
            "GET /opt/env HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {}\r\nConnection: close\r\n",
            signer.mint(&claims("bob"))
        )
        .as_bytes(),
        &[
            &b"X-SSL-Client-Cert: "[..],
            urlencode(&pem(&h, ClientCert::A)).as_bytes(),
            b"\xff\r\n",
        ]
        .concat(),
    );
    f.check(raw.starts_with(b"HTTP/1.1 200"), || {
        format!(
            "non-UTF-8 forged header: {}",
            String::from_utf8_lossy(&raw[..raw.len().min(200)])
        )
    });
    f.check(
        find_bytes(&raw, b"HTTP_X_SSL_CLIENT_CERT=").is_none(),
        || "a non-UTF-8 forged header reached the backend".into(),
    );
    // The control: where this module is not configured, httpd passes such a header to the CGI.
    let control = raw_http(
        h.http_port,
        b"GET /plain/env HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n",
        b"X-SSL-Client-Cert: abc\xff\r\n",
    );
    f.check(
        find_bytes(&control, b"HTTP_X_SSL_CLIENT_CERT=abc\xff").is_some(),
        || {
            format!(
                "control: {}",
                String::from_utf8_lossy(&control[..control.len().min(300)])
            )
        },
    );
    let r = h
        .http("/opt/env")
        .bearer(&signer.mint(&claims("bob")))
        .header(&format!(
            "X_SSL_Client_Cert: {}",
            urlencode(&pem(&h, ClientCert::A))
        ))
        .send();
    f.expect("underscore look-alike, untrusted", &r, 200, None);
    f.check(!r.env().contains_key("HTTP_X_SSL_CLIENT_CERT"), || {
        "the underscore look-alike reached the backend".into()
    });
    // From the trusted peer, the exact name is the proxy's and passes; a look-alike does not.
    let r = h
        .http("/opt/env")
        .source_addr(TRUSTED)
        .bearer(&signer.mint(&claims("bob")))
        .header(&format!(
            "X_SSL_Client_Cert: {}",
            urlencode(&pem(&h, ClientCert::A))
        ))
        .send();
    f.expect("underscore look-alike, trusted peer", &r, 200, None);
    f.check(!r.env().contains_key("HTTP_X_SSL_CLIENT_CERT"), || {
        "the underscore look-alike from a trusted peer reached the backend".into()
    });
    for _ in 0..8 {
        let r = send_from(
            &h,
            UNTRUSTED,
            "/opt/ok",
            &signer.mint(&claims("bob")),
            &forged,
        );
        f.expect("forged again", &r, 200, None);
    }
    let log = h.error_log();
    f.check(
        log.contains(&format!(
            "removed the request header(s) \"{CERT_HEADER}\" from 127.0.0.1"
        )),
        || format!("no removal line in:\n{log}"),
    );
    // At most once per interval in each child process (ServerLimit 4), not once per request
    // (fifteen requests carried such a header).
    let lines = log
        .matches("a forwarded client certificate is only believed")
        .count();
    f.check((1..=4).contains(&lines), || {
        format!("{lines} removal lines for 15 requests")
    });
    f.check(!log.contains("BEGIN%20CERTIFICATE"), || {
        "the header value was logged".into()
    });
    f.assert_none();
}

/// Every header format, sent by a peer that is trusted (as a proxy would); and the connection's
/// own certificate wins over a forwarded one.
#[test]
fn each_header_format_from_a_trusted_peer() {
    let signer = TokenSigner::rsa("one");
    let h = start(&signer);
    let token_a = bound_token(&signer, &h, ClientCert::A);
    let mut f = Failures::new();
    for (path, header, format) in FORMATS {
        for (cert, status) in [(ClientCert::A, 200), (ClientCert::B, 401)] {
            let r = send_from(
                &h,
                TRUSTED,
                &format!("{path}ok"),
                &token_a,
                &format!("{header}: {}", encoded(&h, cert, format)),
            );
            f.expect(&format!("{format}, forwarded {cert:?}"), &r, status, None);
        }
        // The same header from a peer that is not trusted counts for nothing.
        let r = send_from(
            &h,
            UNTRUSTED,
            &format!("{path}ok"),
            &token_a,
            &format!("{header}: {}", encoded(&h, ClientCert::A, format)),
        );
        f.expect(
            &format!("{format}, untrusted peer"),
            &r,
            401,
            Some(INVALID_TOKEN),
        );
    }
    // TLS straight to httpd from the trusted address: the certificate on the connection wins
    // over the one in the header.
    for (conn, header, status) in [
        (ClientCert::B, ClientCert::A, 401),
        (ClientCert::A, ClientCert::B, 200),
    ] {
        let r = h
            .https("/fwd/ok")
            .source_addr(TRUSTED)
            .cert(conn)
            .bearer(&token_a)
            .header(&format!(
                "{CERT_HEADER}: {}",
                encoded(&h, header, "pem-urlencoded")
            ))
            .send();
        let challenge = (status == 401).then_some(INVALID_TOKEN);
        f.expect(
            &format!("connection certificate {conn:?}, header {header:?}"),
            &r,
            status,
            challenge,
        );
    }
    f.assert_none();
}

/// Garbage, truncated, several certificates, oversized: a 401 with the usual challenge and one
/// log line naming the problem, never a 500.
#[test]
fn bad_forwarded_certificates_are_refused_not_errors() {
    let signer = TokenSigner::rsa("one");
    let h = start(&signer);
    let token_a = bound_token(&signer, &h, ClientCert::A);
    let pem_a = pem(&h, ClientCert::A);
    let der_a = der(&h, ClientCert::A);
    let two = format!("{pem_a}{}", pem(&h, ClientCert::B));
    let cases: Vec<(&str, String, String, &str)> = vec![
        (
            "garbage",
            "/fwd/ok".into(),
            format!("{CERT_HEADER}: %%%garbage"),
            "not valid",
        ),
        (
            "truncated DER",
            "/der/ok".into(),
            format!(
                "X-Client-Der: {}",
                STANDARD.encode(&der_a[..der_a.len() / 2])
            ),
            "not an X.509",
        ),
        (
            "truncated PEM",
            "/fwd/ok".into(),
            format!("{CERT_HEADER}: {}", urlencode(&pem_a[..pem_a.len() / 2])),
            "not valid",
        ),
        (
            "two certificates",
            "/fwd/ok".into(),
            format!("{CERT_HEADER}: {}", urlencode(&two)),
            "more than one",
        ),
        (
            "over 16 KiB",
            "/der/ok".into(),
            format!("X-Client-Der: {}", "A".repeat(17 * 1024)),
            "more than the 16384",
        ),
        (
            "xfcc unterminated quote",
            "/xfcc/ok".into(),
            "X-Forwarded-Client-Cert: Cert=\"abc".into(),
            "not valid",
        ),
    ];
    let mut f = Failures::new();
    for (what, path, header, reason) in &cases {
        let mark = h.log_mark();
        let r = send_from(&h, TRUSTED, path, &token_a, header);
        f.expect(what, &r, 401, Some(INVALID_TOKEN));
        let lines = oauth2_refusal_lines(&h.log_since(mark));
        f.check(
            lines.len() == 1
                && lines[0].contains("forwarded by the trusted proxy")
                && lines[0].contains(reason),
            || format!("{what}: log lines {lines:?}"),
        );
    }
    h.assert_no_child_crash();
    f.assert_none();
}

/// DPoP `htu` behind a proxy: the public URL nginx forwards counts when nginx is trusted; the
/// same headers from anyone else are ignored (Apache's own view of the URL applies).
#[test]
fn dpop_htu_uses_the_url_a_trusted_proxy_forwards() {
    let signer = TokenSigner::rsa("one");
    let h = start(&signer);
    let nginx = Nginx::start(
        &h,
        &NginxFront {
            upstream_port: h.http_port,
            bind: TRUSTED,
            set_headers: &[
                "X-Forwarded-Proto $scheme",
                "X-Forwarded-Host $host:$server_port",
            ],
        },
    );
    let key = DpopKey::p256();
    let token = signer.mint(&with(
        claims("alice"),
        json!({"cnf": {"jkt": key.thumbprint()}}),
    ));
    let proof = |htu: &str| Proof::new(&key, "GET", htu).ath(&token).sign(&key);
    let public = nginx.url("/d/ok");
    let apache_view = format!("http://127.0.0.1:{}/d/ok", h.http_port);
    let mut f = Failures::new();
    let r = h
        .request_to(public.clone())
        .header(&format!("Authorization: DPoP {token}"))
        .header(&format!("DPoP: {}", proof(&public)))
        .send();
    f.expect("through nginx, htu = the public URL", &r, 200, None);
    let r = h
        .request_to(public.clone())
        .header(&format!("Authorization: DPoP {token}"))
        .header(&format!("DPoP: {}", proof(&apache_view)))
        .send();
    f.expect("through nginx, htu = the internal URL", &r, 401, None);
    // Directly, with the same forwarding headers, from a peer that is not trusted.
    let forwarded = [
        "X-Forwarded-Proto: https".to_string(),
        format!("X-Forwarded-Host: 127.0.0.1:{}", nginx.port),
    ];
    let direct = |htu: &str, from: &str| {
        let mut req = h
            .http("/d/ok")
            .source_addr(from)
            .header(&format!("Authorization: DPoP {token}"))
            .header(&format!("DPoP: {}", proof(htu)));
        for line in &forwarded {
            req = req.header(line);
        }
        req.send()
    };
    let r = direct(&public, UNTRUSTED);
    f.expect("untrusted peer forging the public URL", &r, 401, None);
    f.check(
        r.header_all("WWW-Authenticate")
            .iter()
            .any(|c| c.contains("invalid_dpop_proof")),
        || format!("challenge {:?}", r.header_all("WWW-Authenticate")),
    );
    let r = direct(&apache_view, UNTRUSTED);
    f.expect("untrusted peer, htu = Apache's view", &r, 200, None);
    let r = direct(&public, TRUSTED);
    f.expect("trusted peer, forwarded public URL", &r, 200, None);
    // nginx sets X-Forwarded-* and passes a client's RFC 7239 header through untouched: with the
    // default url_from=x-forwarded it is never read.
    let evil = "https://evil.example/d/ok";
    let r = h
        .request_to(public.clone())
        .header(&format!("Authorization: DPoP {token}"))
        .header(&format!("DPoP: {}", proof(evil)))
        .header("Forwarded: proto=https;host=evil.example")
        .send();
    f.expect("through nginx, a client's Forwarded header", &r, 401, None);
    f.assert_none();
}

/// `OAuth2TrustedProxy ... url_from=`: the one header family the proxy writes (and overwrites),
/// never the other; `none` keeps Apache's own view even behind a trusted proxy.
#[test]
fn url_from_names_the_headers_the_proxy_writes() {
    let signer = TokenSigner::rsa("one");
    let key = DpopKey::p256();
    let token = signer.mint(&with(
        claims("alice"),
        json!({"cnf": {"jkt": key.thumbprint()}}),
    ));
    let proof = |htu: &str| Proof::new(&key, "GET", htu).ath(&token).sign(&key);
    let mut f = Failures::new();
    for (url_from, server_name, headers, accepted, refused) in [
        (
            "forwarded",
            "",
            vec![
                "Forwarded: for=192.0.2.9;proto=https;host=api.example.com".to_string(),
                "X-Forwarded-Host: other.example".to_string(),
            ],
            vec!["https://api.example.com/d/ok".to_string()],
            vec![
                "http://other.example/d/ok".to_string(),
                "https://other.example/d/ok".to_string(),
            ],
        ),
        (
            "none",
            "",
            vec![
                "X-Forwarded-Proto: https".to_string(),
                "X-Forwarded-Host: api.example.com".to_string(),
            ],
            Vec::new(), // filled below: Apache's own view
            vec!["https://api.example.com/d/ok".to_string()],
        ),
        // docs/operations.md's recipe behind AWS ALB, which passes a client's X-Forwarded-Host
        // on: the public URL stated in Apache.
        (
            "none",
            "ServerName https://api.example.com:443\nUseCanonicalName On\n",
            vec![
                "X-Forwarded-Proto: https".to_string(),
                "X-Forwarded-Port: 443".to_string(),
                "X-Forwarded-Host: evil.example".to_string(),
            ],
            vec!["https://api.example.com/d/ok".to_string()],
            vec![
                "https://evil.example/d/ok".to_string(),
                "http://api.example.com/d/ok".to_string(),
            ],
        ),
    ] {
        let mut cfg = HttpdConfig::new(oauth2_location("/d/", &jwk_verify(&signer, "type=dpop")))
            .server(format!(
                "OAuth2TrustedProxy {TRUSTED} url_from={url_from}\n"
            ));
        // The virtual host of the plain-HTTP listener, which the proxy connects to.
        cfg.plain_body = server_name.to_string();
        let h = Httpd::start(cfg);
        let mut accepted = accepted;
        if accepted.is_empty() {
            accepted.push(format!("http://127.0.0.1:{}/d/ok", h.http_port));
        }
        for (htus, status) in [(&accepted, 200), (&refused, 401)] {
            for htu in htus {
                let mut req = h
                    .http("/d/ok")
                    .source_addr(TRUSTED)
                    .header(&format!("Authorization: DPoP {token}"))
                    .header(&format!("DPoP: {}", proof(htu)));
                for line in &headers {
                    req = req.header(line);
                }
                let r = req.send();
                f.expect(&format!("url_from={url_from}, htu {htu}"), &r, status, None);
            }
        }
    }
    f.assert_none();
}

/// `apache2 -t` refuses what cannot work, naming the line and saying what to write.
#[test]
fn configuration_errors() {
    let signer = TokenSigner::rsa("one");
    let cases = [
        (
            "OAuth2TrustedProxy proxy.example.com",
            "host names are not accepted",
        ),
        ("OAuth2TrustedProxy 10.0.0.1/8", "10.0.0.0/8"),
        ("OAuth2TrustedProxy 10.0.0.0/40", "prefix length"),
        (
            "OAuth2TrustedProxy 127.0.0.1 url_from=rfc7239",
            "x-forwarded, forwarded or none",
        ),
    ];
    for (line, says) in cases {
        let t = Httpd::config_test(HttpdConfig::new("").server(line));
        assert!(!t.ok && t.output.contains(says), "{line}: {}", t.output);
    }
    let bad = oauth2_location(
        "/x/",
        &jwk_verify(
            &signer,
            "type=mtls&mtls.header=X-Cert&mtls.header.format=der",
        ),
    );
    let t = Httpd::config_test(HttpdConfig::new(bad));
    assert!(
        !t.ok && t.output.contains("write one of pem-urlencoded"),
        "{}",
        t.output
    );
    // Only in the server configuration (a virtual host counts), never in a directory.
    let t = Httpd::config_test(HttpdConfig::new(
        "<Location /x/>\nOAuth2TrustedProxy 127.0.0.1\n</Location>\n",
    ));
    assert!(
        !t.ok && t.output.contains("OAuth2TrustedProxy"),
        "{}",
        t.output
    );
    let t = Httpd::config_test(HttpdConfig::new(
        "OAuth2TrustedProxy 127.0.0.1 10.0.0.0/8 2001:db8::/32\n",
    ));
    assert!(t.ok, "{}", t.output);
}
