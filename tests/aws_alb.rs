//! `OAuth2TokenVerify aws_alb <ALB ARN>`: tokens made exactly as an AWS Application Load Balancer
//! makes its `x-amzn-oidc-data` header (ES256, base64url segments with `=` padding, `signer`,
//! `kid`, `iss`, `client` and `exp` in the JWS header, user claims without `exp` in the payload),
//! verified with PEM keys served by kid from a local key server (`alb_base_url`). Refusals one
//! row each with their log line; the key server must only ever see the kid percent-encoded as
//! one path segment; padding is accepted for `aws_alb` only; the ARN is checked at `apache2 -t`.

mod common;

use base64::Engine;
use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use common::remote::*;
use common::*;
use openssl::ec::{EcGroup, EcKey};
use openssl::ecdsa::EcdsaSig;
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::sign::Signer;
use serde_json::{Value, json};
use std::collections::BTreeMap;

const ARN: &str =
    "arn:aws:elasticloadbalancing:eu-west-1:123456789012:loadbalancer/app/my-alb/50dc6c495c0c9188";
const OTHER_ARN: &str =
    "arn:aws:elasticloadbalancing:eu-west-1:123456789012:loadbalancer/app/other/60dc6c495c0c9188";
const KID: &str = "09d4fa17-223e-40fa-b280-894e843d701f";

/// A load balancer's signing key (EC P-256).
struct AlbKey {
    key: PKey<Private>,
}

impl AlbKey {
    fn new() -> AlbKey {
        let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
        AlbKey {
            key: PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap(),
        }
    }

    /// The public key as the ALB key endpoint serves it.
    fn pem(&self) -> String {
        String::from_utf8(self.key.public_key_to_pem().unwrap()).unwrap()
    }

    /// The compact JWS, segments encoded by `encode` (ALB: base64url with padding), ES256 over
    /// the segments as encoded.
    fn sign(&self, header: &Value, payload: &Value, encode: fn(&[u8]) -> String) -> String {
        let input = format!(
            "{}.{}",
            encode(header.to_string().as_bytes()),
            encode(payload.to_string().as_bytes())
        );
        let mut s = Signer::new(MessageDigest::sha256(), &self.key).unwrap();
        s.update(input.as_bytes()).unwrap();
        let der = EcdsaSig::from_der(&s.sign_to_vec().unwrap()).unwrap();
        let mut sig = der.r().to_vec_padded(32).unwrap();
        sig.extend(der.s().to_vec_padded(32).unwrap());
        format!("{input}.{}", encode(&sig))
    }

    /// As an ALB makes it.
    fn alb_token(&self, header: &Value, payload: &Value) -> String {
        self.sign(header, payload, |b| URL_SAFE.encode(b))
    }
}

/// The JWS header an ALB writes (its member order), for `kid`, expiring in 120 s.
fn alb_header(kid: &str) -> Value {
    json!({
        "typ": "JWT", "kid": kid, "alg": "ES256", "iss": "https://idp.example.test",
        "client": "alb-client-id", "signer": ARN, "exp": now() + 120,
    })
}

/// The user claims an ALB passes on (from the identity provider's userinfo; no `exp`).
fn user_claims(sub: &str) -> Value {
    json!({
        "sub": sub, "name": "Hans Zandbelt", "given_name": "Hans",
        "email": format!("{sub}@example.test"), "email_verified": "true",
    })
}

/// A key server: `/keys/<kid>` (as received, percent-encoded) gives the PEM of that kid's key, a
/// 404 otherwise.
fn key_server(keys: BTreeMap<String, String>) -> MockServer {
    MockServer::start(move |req| match req.path().strip_prefix("/keys/") {
        Some(kid) if keys.contains_key(kid) => {
            Reply::raw(200, "application/x-pem-file", &keys[kid])
        }
        _ => Reply::raw(404, "text/plain", "no such key"),
    })
}

fn alb_line(base: &str, extra: &str) -> String {
    let opts = format!("alb_base_url={}{extra}", pct(base));
    format!("OAuth2TokenVerify aws_alb {ARN} {}", apache_quote(&opts))
}

/// How a token is sent.
#[derive(Clone, Copy)]
enum Carry {
    /// `x-amzn-oidc-data: <token>`, as the ALB forwards it.
    AlbHeader,
    /// `Authorization: Bearer <token>`.
    Bearer,
}

/// One request: a token to a location, the status, and for refusals the reason in the error log.
struct Case<'a> {
    what: &'a str,
    loc: &'a str,
    send: Carry,
    token: String,
    expect_status: u16,
    expect_log: Option<&'a str>,
}

#[test]
fn alb_tokens_are_verified_with_the_key_their_kid_names() {
    let good = AlbKey::new();
    let rogue = AlbKey::new();
    let m = key_server(BTreeMap::from([(KID.to_string(), good.pem())]));
    let base = m.url("/keys");
    let jwk = {
        let ec = good.key.ec_key().unwrap();
        let mut ctx = openssl::bn::BigNumContext::new().unwrap();
        let (mut x, mut y) = (
            openssl::bn::BigNum::new().unwrap(),
            openssl::bn::BigNum::new().unwrap(),
        );
        ec.public_key()
            .affine_coordinates(ec.group(), &mut x, &mut y, &mut ctx)
            .unwrap();
        json!({"kty": "EC", "crv": "P-256",
               "x": b64url(&x.to_vec_padded(32).unwrap()), "y": b64url(&y.to_vec_padded(32).unwrap())})
    };
    let body = [
        // A verifier fetches at most 4 unseen kids per interval (the budget has its own test):
        // the rows with kids are spread over /alb and /alb-more.
        oauth2_location("/alb", &alb_line(&base, "")),
        oauth2_location("/alb-more", &alb_line(&base, "")),
        oauth2_location(
            "/explicit",
            &format!(
                "{}\nOAuth2AcceptTokenIn header name=x-amzn-oidc-data&type=",
                alb_line(&base, "")
            ),
        ),
        oauth2_location(
            "/jwk",
            &format!("OAuth2TokenVerify jwk {}", apache_quote(&jwk.to_string())),
        ),
    ]
    .concat();
    let h = Httpd::start(HttpdConfig::new(body).server(single_process()));

    let claims = user_claims("109716492681686172969");
    let made = |header: Value| good.alb_token(&header, &claims);
    let with_header = |change: Value| {
        let mut hd = alb_header(KID);
        for (k, v) in change.as_object().unwrap() {
            hd[k] = v.clone();
        }
        hd
    };
    let unpadded_after_signing = made(alb_header(KID)).replace('=', "");
    let mut no_signer = alb_header(KID);
    no_signer.as_object_mut().unwrap().shift_remove("signer");
    let mut no_exp = alb_header(KID);
    no_exp.as_object_mut().unwrap().shift_remove("exp");
    let strict = good.sign(&alb_header(KID), &claims, |b| URL_SAFE_NO_PAD.encode(b));
    // For the jwk verifier, which reads exp from the payload only.
    let claims_exp = with(claims.clone(), json!({"exp": now() + 120}));
    let padded_with_exp = good.alb_token(&alb_header(KID), &claims_exp);
    let strict_with_exp = good.sign(&alb_header(KID), &claims_exp, |b| URL_SAFE_NO_PAD.encode(b));
    assert!(
        made(alb_header(KID)).contains('='),
        "the ALB form is padded"
    );

    let cases = vec![
        Case {
            what: "ALB token as made, in x-amzn-oidc-data without OAuth2AcceptTokenIn",
            loc: "/alb",
            send: Carry::AlbHeader,
            token: made(alb_header(KID)),
            expect_status: 200,
            expect_log: None,
        },
        Case {
            what: "ALB token with OAuth2AcceptTokenIn header name=x-amzn-oidc-data&type= (the C module's way)",
            loc: "/explicit",
            send: Carry::AlbHeader,
            token: made(alb_header(KID)),
            expect_status: 200,
            expect_log: None,
        },
        Case {
            what: "ALB token as a Bearer token",
            loc: "/alb",
            send: Carry::Bearer,
            token: made(alb_header(KID)),
            expect_status: 200,
            expect_log: None,
        },
        Case {
            what: "the same claims signed without padding",
            loc: "/alb",
            send: Carry::AlbHeader,
            token: strict,
            expect_status: 200,
            expect_log: None,
        },
        Case {
            what: "padding removed after signing",
            loc: "/alb",
            send: Carry::AlbHeader,
            token: unpadded_after_signing,
            expect_status: 401,
            expect_log: Some("signature not verified"),
        },
        Case {
            what: "signer is another load balancer",
            loc: "/alb",
            send: Carry::AlbHeader,
            token: made(with_header(
                json!({"signer": OTHER_ARN, "kid": "kid-of-other-alb"}),
            )),
            expect_status: 401,
            expect_log: Some("is not the configured ALB ARN"),
        },
        Case {
            what: "no signer",
            loc: "/alb",
            send: Carry::AlbHeader,
            token: made(no_signer),
            expect_status: 401,
            expect_log: Some("has no \"signer\" string"),
        },
        Case {
            what: "expired (exp in the header)",
            loc: "/alb",
            send: Carry::AlbHeader,
            token: made(with_header(json!({"exp": now() - 5}))),
            expect_status: 401,
            expect_log: Some("token expired"),
        },
        Case {
            what: "no exp in header or payload",
            loc: "/alb",
            send: Carry::AlbHeader,
            token: made(no_exp),
            expect_status: 401,
            expect_log: Some("required claim \"exp\" is missing"),
        },
        Case {
            what: "exp in the header is a string",
            loc: "/alb",
            send: Carry::AlbHeader,
            token: made(with_header(json!({"exp": (now() + 60).to_string()}))),
            expect_status: 401,
            expect_log: Some("claim \"exp\" is not a JSON number"),
        },
        Case {
            what: "not ES256",
            loc: "/alb",
            send: Carry::AlbHeader,
            token: made(with_header(json!({"alg": "ES384"}))),
            expect_status: 401,
            expect_log: Some("is not ES256"),
        },
        Case {
            what: "unknown kid",
            loc: "/alb",
            send: Carry::AlbHeader,
            token: made(with_header(json!({"kid": "unknown-kid"}))),
            expect_status: 401,
            expect_log: Some("the key endpoint has no key for kid \"unknown-kid\""),
        },
        Case {
            what: "kid ../x",
            loc: "/alb",
            send: Carry::AlbHeader,
            token: made(with_header(json!({"kid": format!("../{KID}")}))),
            expect_status: 401,
            expect_log: Some("the key endpoint has no key for kid"),
        },
        Case {
            what: "kid %2f",
            loc: "/alb",
            send: Carry::AlbHeader,
            token: made(with_header(json!({"kid": format!("%2f{KID}")}))),
            expect_status: 401,
            expect_log: Some("the key endpoint has no key for kid"),
        },
        Case {
            what: "kid with / ? #",
            loc: "/alb-more",
            send: Carry::AlbHeader,
            token: made(with_header(json!({"kid": format!("x/{KID}?a=1#f")}))),
            expect_status: 401,
            expect_log: Some("the key endpoint has no key for kid"),
        },
        Case {
            what: "signed by another key under the right kid",
            loc: "/alb",
            send: Carry::AlbHeader,
            token: rogue.alb_token(&alb_header(KID), &claims),
            expect_status: 401,
            expect_log: Some("signature not verified"),
        },
        Case {
            what: "tampered signature",
            loc: "/alb",
            send: Carry::AlbHeader,
            token: tamper_signature(&made(alb_header(KID))),
            expect_status: 401,
            expect_log: Some("signature not verified"),
        },
        Case {
            what: "padded token at a jwk verifier",
            loc: "/jwk",
            send: Carry::Bearer,
            token: padded_with_exp,
            expect_status: 401,
            expect_log: Some("is not strict base64url"),
        },
        Case {
            what: "the same token unpadded at the jwk verifier",
            loc: "/jwk",
            send: Carry::Bearer,
            token: strict_with_exp,
            expect_status: 200,
            expect_log: None,
        },
    ];

    let mut f = Failures::new();
    for c in &cases {
        let mark = h.log_mark();
        let req = h.https(&format!("{}/ok", c.loc));
        let r = match c.send {
            Carry::AlbHeader => req.header(&format!("x-amzn-oidc-data: {}", c.token)),
            Carry::Bearer => req.bearer(&c.token),
        }
        .send();
        f.expect(
            c.what,
            &r,
            c.expect_status,
            (c.expect_status == 401).then_some(INVALID_TOKEN),
        );
        if let Some(want) = c.expect_log {
            let log = h.wait_log_since(mark, |l| l.contains("token refused"));
            let lines: Vec<String> = oauth2_refusal_lines(&log)
                .into_iter()
                .filter(|l| l.contains("token refused"))
                .collect();
            f.check(
                lines.len() == 1 && lines[0].contains(want) && !log.contains(&c.token),
                || format!("{}: expected one refusal line with `{want}` (never the token), got {lines:?}", c.what),
            );
        }
    }

    // The key server saw every kid as one percent-encoded path segment, never a traversal, and
    // nothing for the other load balancer's token.
    let paths: Vec<String> = m.seen().iter().map(|s| s.target.clone()).collect();
    for want in [
        format!("/keys/{KID}"),
        "/keys/unknown-kid".to_string(),
        format!("/keys/%2E%2E%2F{KID}"),
        format!("/keys/%252f{KID}"),
        format!("/keys/x%2F{KID}%3Fa%3D1%23f"),
    ] {
        f.check(paths.contains(&want), || {
            format!("key server never saw {want}: {paths:?}")
        });
    }
    f.check(
        paths
            .iter()
            .all(|p| p.starts_with("/keys/") && !p[6..].contains(['/', '?', '#'])),
        || format!("a kid left its path segment: {paths:?}"),
    );
    f.check(
        !paths.iter().any(|p| p.contains("kid-of-other-alb")),
        || format!("a key was fetched for another load balancer's token: {paths:?}"),
    );
    let good_fetches = paths
        .iter()
        .filter(|p| **p == format!("/keys/{KID}"))
        .count();
    f.check(good_fetches == 1, || {
        format!("the key of {KID} was fetched {good_fetches} times, expected once (then cached)")
    });

    // The backend sees the user claims and the token's expiry (from the header).
    let header = alb_header(KID);
    let r = h
        .https("/alb/env")
        .header(&format!("x-amzn-oidc-data: {}", made(header.clone())))
        .send();
    if r.status == 200 {
        let env = r.env();
        f.check(
            env.get("REMOTE_USER").map(String::as_str) == Some("109716492681686172969")
                && env.get("OAUTH2_CLAIM_email").map(String::as_str)
                    == Some("109716492681686172969@example.test")
                && env.get("OAUTH2_CLAIM_exp") == Some(&header["exp"].to_string()),
            || format!("claims passed on: {env:?}"),
        );
    } else {
        f.fail(format!("/alb/env: {}", r.status));
    }
    h.assert_no_child_crash();
    f.assert_none_showing(&h);
}

/// Where the metrics are read (the key-set ages).
const METRICS: &str = "<Location /metrics>\nSetHandler oauth2-metrics\n</Location>\n";

#[test]
fn unseen_kids_are_fetched_within_a_budget_and_the_key_endpoint_shows_one_age() {
    let good = AlbKey::new();
    // refresh_interval=0 keeps the budget (its interval is at least 10 s) and does not ask again
    // at once for a kid the endpoint does not know.
    let verifiers: Vec<(&str, MockServer)> = ["60", "0"]
        .into_iter()
        .map(|interval| {
            let keys = BTreeMap::from([(KID.to_string(), good.pem())]);
            (interval, key_server(keys))
        })
        .collect();
    let mut body: String = verifiers
        .iter()
        .map(|(interval, m)| {
            oauth2_location(
                &format!("/alb{interval}"),
                &alb_line(
                    &m.url("/keys"),
                    &format!("&aws_alb.refresh_interval={interval}"),
                ),
            )
        })
        .collect();
    body.push_str(METRICS);
    let h = Httpd::start(HttpdConfig::new(body).server(single_process()));
    let mut f = Failures::new();
    let claims = user_claims("joe");
    let send = |loc: &str, kid: &str| {
        let mut hd = alb_header(kid);
        hd["exp"] = json!(now() + 60);
        h.https(&format!("{loc}/ok"))
            .header(&format!(
                "x-amzn-oidc-data: {}",
                good.alb_token(&hd, &claims)
            ))
            .send()
    };
    for (interval, m) in &verifiers {
        let loc = format!("/alb{interval}");
        f.expect(&format!("{loc}: the real kid"), &send(&loc, KID), 200, None);
        let mut last = String::new();
        for i in 0..5 {
            let mark = h.log_mark();
            let r = send(&loc, &format!("forged-{i}"));
            f.expect(
                &format!("{loc}: forged kid {i}"),
                &r,
                401,
                Some(INVALID_TOKEN),
            );
            last = h.wait_log_since(mark, |l| l.contains("token refused"));
        }
        f.check(last.contains("not fetched: more than 4 new kids"), || {
            format!("{loc}: the last refusal should say the kid was not fetched: {last}")
        });
        for _ in 0..3 {
            let r = send(&loc, "forged-0");
            f.expect(
                &format!("{loc}: forged kid 0 again"),
                &r,
                401,
                Some(INVALID_TOKEN),
            );
        }
        let fetched = m.seen().len();
        f.check(fetched == 4, || {
            format!("{loc}: {fetched} fetches within the interval, expected 4 (the real kid and 3 forged)")
        });
    }

    // One age per key endpoint, updated by the real kid's key; none per forged kid, which would
    // take shared slots and show as key sets never obtained.
    let r = h.https("/metrics").send();
    f.expect("GET /metrics", &r, 200, None);
    let text = r.text();
    match parse_exposition(&text) {
        Ok(e) => {
            let mut shown: Vec<(String, f64)> = e
                .series("oauth2_key_set_age_seconds")
                .iter()
                .map(|s| (s.label("url").unwrap_or("").to_string(), s.value))
                .collect();
            shown.sort_by(|a, b| a.0.cmp(&b.0));
            let mut endpoints: Vec<String> =
                verifiers.iter().map(|(_, m)| m.url("/keys/")).collect();
            endpoints.sort();
            let urls: Vec<&String> = shown.iter().map(|(u, _)| u).collect();
            f.check(urls == endpoints.iter().collect::<Vec<_>>(), || {
                format!("key-set ages shown for {urls:?}, expected the endpoints {endpoints:?}")
            });
            f.check(
                shown.iter().all(|(_, age)| (0.0..60.0).contains(age)),
                || format!("ages of the key endpoints after fetching a key: {shown:?}"),
            );
        }
        Err(e) => f.fail(format!("/metrics: {e}\n{text}")),
    }
    f.assert_none_showing(&h);
}

#[test]
fn the_arn_and_the_key_endpoint_are_checked_at_config_time() {
    struct Row<'a> {
        line: String,
        needle: &'a str,
        expect_message: Option<&'a str>,
    }
    let rows = [
        Row {
            line: "OAuth2TokenVerify aws_alb my-load-balancer".into(),
            needle: "aws_alb my-load-balancer",
            expect_message: Some("is not an Application Load Balancer ARN"),
        },
        Row {
            line: format!(
                "OAuth2TokenVerify aws_alb {}",
                ARN.replace("loadbalancer/app/", "loadbalancer/net/")
            ),
            needle: "loadbalancer/net/",
            expect_message: Some("only Application Load Balancers sign tokens"),
        },
        Row {
            line: format!("OAuth2TokenVerify aws_alb {ARN} alb_base_url=ftp://keys.example/"),
            needle: "alb_base_url=ftp",
            expect_message: Some(
                "alb_base_url=ftp://keys.example/: must be an http:// or https:// URL",
            ),
        },
        Row {
            line: format!("OAuth2TokenVerify aws_alb {ARN} aws_alb.cache=nope"),
            needle: "aws_alb.cache=nope",
            expect_message: Some("cache could not be found"),
        },
        Row {
            line: format!("OAuth2TokenVerify aws_alb {ARN}"),
            needle: "",
            expect_message: None,
        },
    ];
    let mut f = Failures::new();
    for row in &rows {
        let t = Httpd::config_test(HttpdConfig::new(oauth2_location("/p", &row.line)));
        match row.expect_message {
            None => f.check(t.ok && !t.output.contains("unknown option"), || {
                format!(
                    "{}: expected acceptance without warnings:\n{}",
                    row.line, t.output
                )
            }),
            Some(want) => match t.syntax_error(row.needle) {
                Ok(msg) => f.check(msg.contains(want), || {
                    format!("{}: message `{msg}` lacks `{want}`", row.line)
                }),
                Err(e) => f.fail(format!("{}: {e}", row.line)),
            },
        }
    }
    f.assert_none();
}
