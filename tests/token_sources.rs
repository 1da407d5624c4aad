//! `OAuth2AcceptTokenIn` as the C module has it: the six methods and their options, accumulation,
//! the fixed lookup order, the `Basic` challenge, `strip` semantics as the backend sees them, and
//! request bodies reaching the backend intact (also when the module read them to look for a token).

mod common;

use common::*;

/// The verifier plus `CGIPassAuth On`, so that CGIs see `HTTP_AUTHORIZATION`.
fn loc(path: &str, verify: &str, directives: &str) -> String {
    oauth2_location(path, &format!("{verify}\nCGIPassAuth On\n{directives}"))
}

/// Environment variables that carry a token: `access_token` (the default name) from
/// `X-Env-Token`, `my_token` from `X-Env-Token2`.
const SET_ENV: &str = "SetEnvIf X-Env-Token \"^(.+)$\" access_token=$1\n\
                       SetEnvIf X-Env-Token2 \"^(.+)$\" my_token=$1\n";

const BASIC_NO_TOKEN: &str =
    "Basic error=\"invalid_request\", error_description=\"No bearer token found in the request.\"";

const FORM: &str = "Content-Type: application/x-www-form-urlencoded";

/// One request of a table.
#[derive(Default, Clone)]
struct Rq {
    method: Option<&'static str>,
    headers: Vec<String>,
    body: Option<Vec<u8>>,
}

impl Rq {
    fn h(mut self, line: impl Into<String>) -> Self {
        self.headers.push(line.into());
        self
    }
    fn body(mut self, b: impl Into<Vec<u8>>) -> Self {
        self.body = Some(b.into());
        self
    }
    fn form(self, b: impl Into<Vec<u8>>) -> Self {
        self.h(FORM).body(b)
    }
    fn method(mut self, m: &'static str) -> Self {
        self.method = Some(m);
        self
    }
    fn send(&self, h: &Httpd, path: &str) -> Response {
        let mut r = h.https(path);
        for l in &self.headers {
            r = r.header(l);
        }
        if let Some(m) = self.method {
            r = r.method(m);
        }
        if let Some(b) = &self.body {
            r = r.body(b.clone());
        }
        r.send()
    }
}

fn rq() -> Rq {
    Rq::default()
}

fn basic(user: &str, token: &str) -> String {
    use base64::Engine;
    let b = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{token}"));
    format!("Authorization: Basic {b}")
}

/// `s` with each token replaced by a short name, for readable failure messages.
fn abbrev(s: &str, names: &[(&str, &str)]) -> String {
    let mut o = s.to_string();
    for (token, name) in names {
        o = o.replace(token, name);
        o = o.replace(&dots_encoded(token), &format!("{name} (dots as %2E)"));
    }
    o
}

/// `%2E` for every `.` (the token stays the same after URL-decoding).
fn dots_encoded(token: &str) -> String {
    token.replace('.', "%2E")
}

/// A form body of exactly `len` bytes: `access_token=<token>&pad=xxx...`.
fn padded_form(token: &str, len: usize) -> Vec<u8> {
    let mut b = format!("access_token={token}&pad=").into_bytes();
    assert!(b.len() < len);
    b.resize(len, b'x');
    b
}

#[test]
fn methods_options_and_lookup_order() {
    let signer = TokenSigner::rsa("one");
    let verify = format!("OAuth2TokenVerify jwk {}", signer.jwk_arg());
    let a = |m: &str| format!("OAuth2AcceptTokenIn {m}");
    let locations = [
        ("/dflt", String::new()),
        ("/env", a("environment")),
        ("/envname", a("environment name=my_token")),
        ("/hdr", a("header")),
        ("/hdrraw", a("header name=X-Token&type=")),
        ("/hdrname", a("header name=X-Token")),
        ("/hdrtype", a("header type=Token")),
        ("/qry", a("query")),
        ("/qryname", a("query name=at")),
        ("/post", a("post")),
        ("/postname", a("post name=at")),
        ("/ck", a("cookie")),
        ("/ckname", a("cookie name=at")),
        ("/basic", a("basic")),
        ("/basichdr", format!("{}\n{}", a("basic"), a("header"))),
        ("/qryck", format!("{}\n{}", a("query"), a("cookie"))),
        // every method, configured in the reverse of the lookup order
        (
            "/all",
            ["basic", "cookie", "post", "query", "header", "environment"]
                .map(a)
                .join("\n"),
        ),
    ];
    let body = format!(
        "{SET_ENV}{}",
        locations
            .iter()
            .map(|(p, d)| loc(p, &verify, d))
            .collect::<String>()
    );
    let h = Httpd::start(HttpdConfig::new(body));

    let tok = |sub: &str| signer.mint(&claims(sub));
    let (t_env, t_hdr, t_qry, t_post, t_ck, t_basic) = (
        tok("env"),
        tok("hdr"),
        tok("qry"),
        tok("post"),
        tok("ck"),
        tok("basic"),
    );
    let bad = tamper_signature(&t_hdr);
    let named = [
        (t_env.as_str(), "<env token>"),
        (t_hdr.as_str(), "<hdr token>"),
        (t_qry.as_str(), "<qry token>"),
        (t_post.as_str(), "<post token>"),
        (t_ck.as_str(), "<ck token>"),
        (t_basic.as_str(), "<basic token>"),
        (bad.as_str(), "<bad token>"),
    ];
    let env = |t: &str| format!("X-Env-Token: {t}");
    let env2 = |t: &str| format!("X-Env-Token2: {t}");
    let bearer = |t: &str| format!("Authorization: Bearer {t}");
    let cookie = |v: String| format!("Cookie: {v}");

    // (location, query string, request, expected status, challenge, REMOTE_USER at the CGI)
    /// A request to `<loc>/body<query>` and what it must get; `expect_user` is the `REMOTE_USER`
    /// (the token that was found) for a 200.
    struct Row {
        loc: &'static str,
        query: String,
        req: Rq,
        expect_status: u16,
        expect_challenge: Option<&'static str>,
        expect_user: &'static str,
    }
    let ok = |loc: &'static str, query: String, req: Rq, expect_user: &'static str| Row {
        loc,
        query,
        req,
        expect_status: 200,
        expect_challenge: None,
        expect_user,
    };
    let no = |loc: &'static str, query: String, req: Rq| Row {
        loc,
        query,
        req,
        expect_status: 401,
        expect_challenge: Some(NO_TOKEN),
        expect_user: "",
    };
    let nq = String::new;
    let q = |s: String| format!("?{s}");
    let rows: Vec<Row> = vec![
        // default: environment + header
        ok("/dflt", nq(), rq().h(bearer(&t_hdr)), "hdr"),
        ok("/dflt", nq(), rq().h(env(&t_env)), "env"),
        ok("/dflt", nq(), rq().h(env(&t_env)).h(bearer(&t_hdr)), "env"),
        no("/dflt", nq(), rq()),
        no("/dflt", q(format!("access_token={t_qry}")), rq()),
        no(
            "/dflt",
            nq(),
            rq().h(cookie(format!("access_token={t_ck}"))),
        ),
        no("/dflt", nq(), rq().form(format!("access_token={t_post}"))),
        no("/dflt", nq(), rq().h(basic("u", &t_basic))),
        // environment
        ok("/env", nq(), rq().h(env(&t_env)), "env"),
        no("/env", nq(), rq().h(bearer(&t_hdr))),
        ok("/envname", nq(), rq().h(env2(&t_env)), "env"),
        no("/envname", nq(), rq().h(env(&t_env))),
        // header
        ok("/hdr", nq(), rq().h(bearer(&t_hdr)), "hdr"),
        ok(
            "/hdr",
            nq(),
            rq().h(format!("Authorization: bearer {t_hdr}")),
            "hdr",
        ),
        no("/hdr", nq(), rq().h(env(&t_env))),
        no(
            "/hdr",
            nq(),
            rq().h(format!("Authorization: Token {t_hdr}")),
        ),
        // `type=` empty: the whole header value is the token
        ok("/hdrraw", nq(), rq().h(format!("X-Token: {t_hdr}")), "hdr"),
        Row {
            loc: "/hdrraw",
            query: nq(),
            req: rq().h(format!("X-Token: Bearer {t_hdr}")),
            expect_status: 401,
            expect_challenge: Some(INVALID_TOKEN),
            expect_user: "",
        },
        no("/hdrraw", nq(), rq().h(bearer(&t_hdr))),
        ok(
            "/hdrname",
            nq(),
            rq().h(format!("X-Token: Bearer {t_hdr}")),
            "hdr",
        ),
        no("/hdrname", nq(), rq().h(format!("X-Token: {t_hdr}"))),
        no("/hdrname", nq(), rq().h(bearer(&t_hdr))),
        ok(
            "/hdrtype",
            nq(),
            rq().h(format!("Authorization: Token {t_hdr}")),
            "hdr",
        ),
        ok(
            "/hdrtype",
            nq(),
            rq().h(format!("Authorization: TOKEN {t_hdr}")),
            "hdr",
        ),
        no("/hdrtype", nq(), rq().h(bearer(&t_hdr))),
        // query (URL-decoded)
        ok("/qry", q(format!("access_token={t_qry}")), rq(), "qry"),
        ok(
            "/qry",
            q(format!("a=1&access_token={t_qry}&b=2")),
            rq(),
            "qry",
        ),
        ok(
            "/qry",
            q(format!("access_token={}", dots_encoded(&t_qry))),
            rq(),
            "qry",
        ),
        no("/qry", nq(), rq().h(bearer(&t_hdr))),
        no("/qry", q(format!("at={t_qry}")), rq()),
        ok("/qryname", q(format!("at={t_qry}")), rq(), "qry"),
        no("/qryname", q(format!("access_token={t_qry}")), rq()),
        // post: only POST with a form content type, bodies up to 1 MiB
        ok(
            "/post",
            nq(),
            rq().form(format!("access_token={t_post}")),
            "post",
        ),
        ok(
            "/post",
            nq(),
            rq().form(format!("a=1&access_token={t_post}&b=2")),
            "post",
        ),
        ok(
            "/post",
            nq(),
            rq().form(format!("access_token={}", dots_encoded(&t_post))),
            "post",
        ),
        ok(
            "/post",
            nq(),
            rq().h("Content-Type: application/x-www-form-urlencoded; charset=utf-8")
                .body(format!("access_token={t_post}")),
            "post",
        ),
        ok(
            "/post",
            nq(),
            rq().h("Content-Type: APPLICATION/X-WWW-FORM-URLENCODED")
                .body(format!("access_token={t_post}")),
            "post",
        ),
        ok(
            "/post",
            nq(),
            rq().form(format!("access_token={t_post}"))
                .h("Transfer-Encoding: chunked"),
            "post",
        ),
        no(
            "/post",
            nq(),
            rq().h("Content-Type: application/json")
                .body(format!("access_token={t_post}")),
        ),
        no(
            "/post",
            nq(),
            rq().form(format!("access_token={t_post}")).method("PUT"),
        ),
        no("/post", q(format!("access_token={t_qry}")), rq()),
        no("/post", nq(), rq().h(bearer(&t_hdr))),
        ok(
            "/post",
            nq(),
            rq().form(padded_form(&t_post, 1 << 20)),
            "post",
        ),
        no(
            "/post",
            nq(),
            rq().form(padded_form(&t_post, (1 << 20) + 1)),
        ),
        ok("/postname", nq(), rq().form(format!("at={t_post}")), "post"),
        no(
            "/postname",
            nq(),
            rq().form(format!("access_token={t_post}")),
        ),
        // cookie: split on `;`, trimmed, URL-decoded
        ok(
            "/ck",
            nq(),
            rq().h(cookie(format!("access_token={t_ck}"))),
            "ck",
        ),
        ok(
            "/ck",
            nq(),
            rq().h(cookie(format!("a=1;  access_token={t_ck} ;b=2"))),
            "ck",
        ),
        ok(
            "/ck",
            nq(),
            rq().h(cookie(format!("access_token={}", dots_encoded(&t_ck)))),
            "ck",
        ),
        no("/ck", nq(), rq().h(bearer(&t_hdr))),
        no("/ck", nq(), rq().h(cookie(format!("at={t_ck}")))),
        ok(
            "/ckname",
            nq(),
            rq().h(cookie(format!("x=1; at={t_ck}"))),
            "ck",
        ),
        no(
            "/ckname",
            nq(),
            rq().h(cookie(format!("access_token={t_ck}"))),
        ),
        // basic: the part after the first `:`; the only method -> `Basic` challenge
        ok("/basic", nq(), rq().h(basic("someone", &t_basic)), "basic"),
        ok("/basic", nq(), rq().h(basic("", &t_basic)), "basic"),
        Row {
            loc: "/basic",
            query: nq(),
            req: rq(),
            expect_status: 401,
            expect_challenge: Some(BASIC_NO_TOKEN),
            expect_user: "",
        },
        Row {
            loc: "/basic",
            query: nq(),
            req: rq().h(bearer(&t_hdr)),
            expect_status: 401,
            expect_challenge: Some(BASIC_NO_TOKEN),
            expect_user: "",
        },
        Row {
            loc: "/basic",
            query: nq(),
            req: rq().h(basic("someone", &tamper_signature(&t_basic))),
            expect_status: 401,
            expect_challenge: None,
            expect_user: "",
        },
        // basic with another method: the Bearer challenge
        no("/basichdr", nq(), rq()),
        ok("/basichdr", nq(), rq().h(basic("u", &t_basic)), "basic"),
        ok("/basichdr", nq(), rq().h(bearer(&t_hdr)), "hdr"),
        // methods accumulate
        ok("/qryck", q(format!("access_token={t_qry}")), rq(), "qry"),
        ok(
            "/qryck",
            nq(),
            rq().h(cookie(format!("access_token={t_ck}"))),
            "ck",
        ),
        no("/qryck", nq(), rq().h(bearer(&t_hdr))),
        no("/qryck", nq(), rq().h(env(&t_env))),
        // fixed order: environment, header, query, post, cookie, basic
        ok(
            "/all",
            q(format!("access_token={t_qry}")),
            rq().h(env(&t_env))
                .h(bearer(&t_hdr))
                .h(cookie(format!("access_token={t_ck}")))
                .form(format!("access_token={t_post}")),
            "env",
        ),
        ok(
            "/all",
            q(format!("access_token={t_qry}")),
            rq().h(bearer(&t_hdr))
                .h(cookie(format!("access_token={t_ck}")))
                .form(format!("access_token={t_post}")),
            "hdr",
        ),
        ok(
            "/all",
            q(format!("access_token={t_qry}")),
            rq().h(cookie(format!("access_token={t_ck}")))
                .h(basic("u", &t_basic))
                .form(format!("access_token={t_post}")),
            "qry",
        ),
        ok(
            "/all",
            nq(),
            rq().h(cookie(format!("access_token={t_ck}")))
                .h(basic("u", &t_basic))
                .form(format!("access_token={t_post}")),
            "post",
        ),
        ok(
            "/all",
            nq(),
            rq().h(cookie(format!("access_token={t_ck}")))
                .h(basic("u", &t_basic)),
            "ck",
        ),
        ok("/all", nq(), rq().h(basic("u", &t_basic)), "basic"),
        no("/all", nq(), rq()),
        // first found wins: a bad header token is not rescued by a good query token
        Row {
            loc: "/all",
            query: q(format!("access_token={t_qry}")),
            req: rq().h(bearer(&bad)),
            expect_status: 401,
            expect_challenge: Some(INVALID_TOKEN),
            expect_user: "",
        },
    ];
    let mut f = Failures::new();
    for (
        i,
        Row {
            loc,
            query,
            req,
            expect_status: status,
            expect_challenge: challenge,
            expect_user: user,
        },
    ) in rows.iter().enumerate()
    {
        let r = req.send(&h, &format!("{loc}/body{query}"));
        let what = abbrev(
            &format!(
                "row {i} {loc}{query} headers {:?} body {:?}",
                req.headers,
                req.body
                    .as_ref()
                    .map(|b| String::from_utf8_lossy(&b[..b.len().min(600)]).into_owned())
            ),
            &named,
        );
        f.expect(&what, &r, *status, *challenge);
        if *status == 200 && r.status == 200 {
            let got = r.body_report().remote_user;
            f.check(got == *user, || {
                format!("{what}: REMOTE_USER {got:?}, expected {user:?}")
            });
        }
    }
    f.assert_none();
    h.assert_no_child_crash();
}

#[test]
fn strip_semantics() {
    let signer = TokenSigner::rsa("one");
    let backend = RawBackend::start();
    let verify = format!("OAuth2TokenVerify jwk {}", signer.jwk_arg());
    let a = |m: &str| format!("OAuth2AcceptTokenIn {m}");
    let locations = [
        ("/dflt", String::new()),
        ("/env", a("environment")),
        ("/env-on", a("environment strip=on")),
        ("/env-off", a("environment strip=off")),
        ("/hdr", a("header")),
        ("/hdr-on", a("header strip=on")),
        ("/hdr-off", a("header strip=off")),
        ("/hdrx-on", a("header name=X-Token&type=&strip=on")),
        ("/qry", a("query")),
        ("/qry-on", a("query strip=on")),
        ("/qry-true", a("query strip=true")),
        ("/qry-1", a("query strip=1")),
        ("/qry-off", a("query strip=off")),
        ("/qry-false", a("query strip=false")),
        ("/qry-0", a("query strip=0")),
        ("/ck", a("cookie name=at")),
        ("/ck-on", a("cookie name=at&strip=on")),
        ("/ck-off", a("cookie name=at&strip=off")),
        ("/basic", a("basic")),
        ("/basic-on", a("basic strip=on")),
        // strip applies to the whole source configuration of the context
        (
            "/mixed1",
            format!("{}\n{}", a("query strip=on"), a("header")),
        ),
        (
            "/mixed2",
            format!("{}\n{}", a("header"), a("cookie strip=on")),
        ),
        (
            "/mixed3",
            format!("{}\n{}", a("environment"), a("query strip=on")),
        ),
    ];
    let mut body = String::from(SET_ENV);
    for (p, d) in &locations {
        body.push_str(&loc(p, &verify, d));
    }
    // proxied: what a backend behind ProxyPass receives
    for (p, d) in [
        ("/px-qry", a("query")),
        ("/px-qry-on", a("query strip=on")),
        ("/px-hdr", a("header")),
        ("/px-hdr-on", a("header strip=on")),
        ("/px-ck-on", a("cookie name=at&strip=on")),
    ] {
        body.push_str(&oauth2_location(
            p,
            &format!("{verify}\n{d}\nProxyPass {}", backend.url()),
        ));
    }
    let h = Httpd::start(HttpdConfig::new(body));
    let t = signer.mint(&claims("joe"));
    let bearer = format!("Authorization: Bearer {t}");
    let basic_hdr = basic("u", &t);
    let basic_val = basic_hdr.trim_start_matches("Authorization: ").to_string();
    let bearer_val = format!("Bearer {t}");
    let env_hdr = format!("X-Env-Token: {t}");
    let qry = format!("?a=1&access_token={t}&b=2");
    let qry_kept = qry[1..].to_string();
    let ck_hdr = format!("Cookie: a=1; at={t}; b=2");

    let v = |s: &str| Some(s.to_string());
    /// A request to `<loc>/env<query>` with `headers`, and the variables the CGI must see
    /// (`None`: absent).
    struct StripRow {
        loc: &'static str,
        query: String,
        headers: Vec<String>,
        expect: Vec<(&'static str, Option<String>)>,
    }
    let claim = "OAUTH2_CLAIM_access_token";
    let rows: Vec<StripRow> = vec![
        // environment: removed by default, kept with strip=off, removed with strip=on
        StripRow {
            loc: "/dflt",
            query: String::new(),
            headers: vec![env_hdr.clone()],
            expect: vec![("access_token", None), (claim, v(&t))],
        },
        StripRow {
            loc: "/env",
            query: String::new(),
            headers: vec![env_hdr.clone()],
            expect: vec![("access_token", None), (claim, v(&t))],
        },
        StripRow {
            loc: "/env-off",
            query: String::new(),
            headers: vec![env_hdr.clone()],
            expect: vec![("access_token", v(&t)), (claim, v(&t))],
        },
        StripRow {
            loc: "/env-on",
            query: String::new(),
            headers: vec![env_hdr.clone()],
            expect: vec![("access_token", None), (claim, None)],
        },
        // header
        StripRow {
            loc: "/dflt",
            query: String::new(),
            headers: vec![bearer.clone()],
            expect: vec![("HTTP_AUTHORIZATION", v(&bearer_val)), (claim, v(&t))],
        },
        StripRow {
            loc: "/hdr",
            query: String::new(),
            headers: vec![bearer.clone()],
            expect: vec![("HTTP_AUTHORIZATION", v(&bearer_val)), (claim, v(&t))],
        },
        StripRow {
            loc: "/hdr-off",
            query: String::new(),
            headers: vec![bearer.clone()],
            expect: vec![("HTTP_AUTHORIZATION", v(&bearer_val)), (claim, v(&t))],
        },
        StripRow {
            loc: "/hdr-on",
            query: String::new(),
            headers: vec![bearer.clone()],
            expect: vec![("HTTP_AUTHORIZATION", None), (claim, None)],
        },
        StripRow {
            loc: "/hdrx-on",
            query: String::new(),
            headers: vec![format!("X-Token: {t}"), "X-Other: stays".into()],
            expect: vec![
                ("HTTP_X_TOKEN", None),
                (claim, None),
                ("HTTP_X_OTHER", v("stays")),
            ],
        },
        // query
        StripRow {
            loc: "/qry",
            query: qry.clone(),
            headers: vec![],
            expect: vec![("QUERY_STRING", v(&qry_kept)), (claim, v(&t))],
        },
        StripRow {
            loc: "/qry-off",
            query: qry.clone(),
            headers: vec![],
            expect: vec![("QUERY_STRING", v(&qry_kept)), (claim, v(&t))],
        },
        StripRow {
            loc: "/qry-false",
            query: qry.clone(),
            headers: vec![],
            expect: vec![("QUERY_STRING", v(&qry_kept)), (claim, v(&t))],
        },
        StripRow {
            loc: "/qry-0",
            query: qry.clone(),
            headers: vec![],
            expect: vec![("QUERY_STRING", v(&qry_kept)), (claim, v(&t))],
        },
        StripRow {
            loc: "/qry-on",
            query: qry.clone(),
            headers: vec![],
            expect: vec![("QUERY_STRING", v("a=1&b=2")), (claim, None)],
        },
        StripRow {
            loc: "/qry-true",
            query: qry.clone(),
            headers: vec![],
            expect: vec![("QUERY_STRING", v("a=1&b=2")), (claim, None)],
        },
        StripRow {
            loc: "/qry-1",
            query: qry.clone(),
            headers: vec![],
            expect: vec![("QUERY_STRING", v("a=1&b=2")), (claim, None)],
        },
        StripRow {
            loc: "/qry-on",
            query: format!("?access_token={t}&z=3&y=%20"),
            headers: vec![],
            expect: vec![("QUERY_STRING", v("z=3&y=%20")), (claim, None)],
        },
        StripRow {
            loc: "/qry-on",
            query: format!("?access_token={t}"),
            headers: vec![],
            expect: vec![("QUERY_STRING", v("")), (claim, None)],
        },
        // cookie
        StripRow {
            loc: "/ck",
            query: String::new(),
            headers: vec![ck_hdr.clone()],
            expect: vec![
                ("HTTP_COOKIE", v(&format!("a=1; at={t}; b=2"))),
                (claim, v(&t)),
            ],
        },
        StripRow {
            loc: "/ck-off",
            query: String::new(),
            headers: vec![ck_hdr.clone()],
            expect: vec![
                ("HTTP_COOKIE", v(&format!("a=1; at={t}; b=2"))),
                (claim, v(&t)),
            ],
        },
        StripRow {
            loc: "/ck-on",
            query: String::new(),
            headers: vec![ck_hdr.clone()],
            expect: vec![("HTTP_COOKIE", v("a=1; b=2")), (claim, None)],
        },
        StripRow {
            loc: "/ck-on",
            query: String::new(),
            headers: vec![format!("Cookie: a=1;at={t};  b=2")],
            expect: vec![("HTTP_COOKIE", v("a=1; b=2")), (claim, None)],
        },
        StripRow {
            loc: "/ck-on",
            query: String::new(),
            headers: vec![format!("Cookie: at={t}")],
            expect: vec![("HTTP_COOKIE", None), (claim, None)],
        },
        // basic
        StripRow {
            loc: "/basic",
            query: String::new(),
            headers: vec![basic_hdr.clone()],
            expect: vec![("HTTP_AUTHORIZATION", v(&basic_val)), (claim, v(&t))],
        },
        StripRow {
            loc: "/basic-on",
            query: String::new(),
            headers: vec![basic_hdr.clone()],
            expect: vec![("HTTP_AUTHORIZATION", None), (claim, None)],
        },
        // one strip=on line strips whatever method found the token
        StripRow {
            loc: "/mixed1",
            query: String::new(),
            headers: vec![bearer.clone()],
            expect: vec![("HTTP_AUTHORIZATION", None), (claim, None)],
        },
        StripRow {
            loc: "/mixed1",
            query: qry.clone(),
            headers: vec![],
            expect: vec![("QUERY_STRING", v("a=1&b=2")), (claim, None)],
        },
        StripRow {
            loc: "/mixed2",
            query: String::new(),
            headers: vec![bearer.clone()],
            expect: vec![("HTTP_AUTHORIZATION", None), (claim, None)],
        },
        StripRow {
            loc: "/mixed3",
            query: String::new(),
            headers: vec![env_hdr.clone()],
            expect: vec![("access_token", None), (claim, None)],
        },
    ];
    let mut f = Failures::new();
    for (
        i,
        StripRow {
            loc,
            query,
            headers,
            expect,
        },
    ) in rows.iter().enumerate()
    {
        let mut req = h.https(&format!("{loc}/env{query}"));
        for l in headers {
            req = req.header(l);
        }
        let r = req.send();
        let what = format!(
            "row {i} {loc}{}",
            if query.is_empty() { "" } else { " ?..." }
        );
        f.expect(&what, &r, 200, None);
        if r.status != 200 {
            continue;
        }
        let env = r.env();
        f.check(
            env.get("REMOTE_USER").map(String::as_str) == Some("joe"),
            || format!("{what}: REMOTE_USER {:?}", env.get("REMOTE_USER")),
        );
        for (name, want) in expect {
            let got = env.get(*name);
            f.check(got == want.as_ref(), || {
                abbrev(
                    &format!("{what}: {name}: expected {want:?}, got {got:?}"),
                    &[(t.as_str(), "<token>")],
                )
            });
        }
    }

    // behind ProxyPass: the request line and the head the backend receives
    let fields_named = |head: &[u8], n: &str| -> Vec<String> {
        raw_head_fields(head)
            .into_iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(n))
            .map(|(_, v)| v)
            .collect()
    };
    let r = h.https(&format!("/px-qry/x{qry}")).send();
    f.expect("proxied query (no strip)", &r, 200, None);
    f.check(
        r.text()
            .starts_with(&format!("GET /x?a=1&access_token={t}&b=2 HTTP/1.1\r\n")),
        || format!("proxied query (no strip): {:?}", r.text().lines().next()),
    );
    let r = h.https(&format!("/px-qry-on/x{qry}")).send();
    f.expect("proxied query strip=on", &r, 200, None);
    f.check(r.text().starts_with("GET /x?a=1&b=2 HTTP/1.1\r\n"), || {
        format!("proxied query strip=on: {:?}", r.text().lines().next())
    });
    f.check(
        fields_named(&r.body, "OAUTH2_CLAIM_access_token").is_empty(),
        || "proxied query strip=on: OAUTH2_CLAIM_access_token passed".into(),
    );
    let r = h.https(&format!("/px-qry-on/x?access_token={t}")).send();
    f.expect("proxied query strip=on, token only", &r, 200, None);
    f.check(r.text().starts_with("GET /x HTTP/1.1\r\n"), || {
        format!(
            "proxied query strip=on, token only: {:?}",
            r.text().lines().next()
        )
    });
    let r = h.https("/px-hdr/x").header(&bearer).send();
    f.expect("proxied header (no strip)", &r, 200, None);
    f.check(
        fields_named(&r.body, "Authorization") == [bearer_val.clone()],
        || {
            format!(
                "proxied header: {:?}",
                fields_named(&r.body, "Authorization")
            )
        },
    );
    f.check(
        fields_named(&r.body, "OAUTH2_CLAIM_access_token") == [t.clone()],
        || "proxied header: OAUTH2_CLAIM_access_token".into(),
    );
    let r = h.https("/px-hdr-on/x").header(&bearer).send();
    f.expect("proxied header strip=on", &r, 200, None);
    f.check(fields_named(&r.body, "Authorization").is_empty(), || {
        "proxied header strip=on: Authorization still sent".into()
    });
    f.check(
        fields_named(&r.body, "OAUTH2_CLAIM_access_token").is_empty(),
        || "proxied header strip=on: OAUTH2_CLAIM_access_token passed".into(),
    );
    f.check(fields_named(&r.body, "OAUTH2_CLAIM_sub") == ["joe"], || {
        "proxied header strip=on: OAUTH2_CLAIM_sub missing".into()
    });
    let r = h.https("/px-ck-on/x").header(&ck_hdr).send();
    f.expect("proxied cookie strip=on", &r, 200, None);
    f.check(fields_named(&r.body, "Cookie") == ["a=1; b=2"], || {
        format!(
            "proxied cookie strip=on: {:?}",
            fields_named(&r.body, "Cookie")
        )
    });
    f.check(!r.text().contains(&t), || {
        "proxied cookie strip=on: the token reached the backend".into()
    });
    f.assert_none();
    h.assert_no_child_crash();
}

#[test]
fn request_bodies_reach_the_backend_intact() {
    let signer = TokenSigner::rsa("one");
    let backend = RawBackend::start_with_bodies();
    let verify = format!("OAuth2TokenVerify jwk {}", signer.jwk_arg());
    let a = |m: &str| format!("OAuth2AcceptTokenIn {m}");
    let mut body = String::new();
    for (p, d) in [
        ("/dflt", String::new()),
        ("/post", a("post")),
        ("/post-on", a("post strip=on")),
        ("/post-name-on", a("post name=at&strip=on")),
        // the module reads the body for a token first, then finds it in the cookie
        ("/postck", format!("{}\n{}", a("post"), a("cookie"))),
    ] {
        body.push_str(&loc(p, &verify, &d));
        body.push_str(&oauth2_location(
            &format!("/px{p}"),
            &format!("{verify}\n{d}\nProxyPass {}", backend.url()),
        ));
    }
    let h = Httpd::start(HttpdConfig::new(body));
    let t = signer.mint(&claims("joe"));
    let bearer = format!("Authorization: Bearer {t}");
    let ck = format!("Cookie: access_token={t}");
    let chunked = "Transfer-Encoding: chunked";
    let json_ct = "Content-Type: application/json";

    let small = format!("a=1&access_token={t}&b=%20x%26y");
    let small_stripped = "a=1&b=%20x%26y".to_string();
    // 2 MB of form data (varied, form-safe bytes)
    let mut big = String::with_capacity(2 << 20);
    big.push_str("first=1");
    let mut i: u32 = 0;
    while big.len() < (2 << 20) - 16 {
        i = i.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        let _ =
            std::fmt::Write::write_fmt(&mut big, format_args!("&k{}=v%{:02X}", i % 97, i % 256));
    }
    big.truncate((2 << 20) - 5);
    big.push_str("&z=9");
    let json = format!(
        "{{\"access_token\":\"{t}\",\"text\":\"caf\u{e9} \u{6771}\u{4eac}\",\"n\":[1,2,3]}}"
    );
    let mut binary: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    binary.extend_from_slice(b"\r\n\r\n0\r\n\r\n");

    /// A request with a body, and what the backend must receive.
    struct BodyRow {
        name: &'static str,
        path: &'static str,
        headers: Vec<String>,
        sent: Vec<u8>,
        expect_body: Vec<u8>,
        /// `CONTENT_LENGTH` at the CGI (`None`: not asserted).
        expect_content_length: Option<usize>,
    }
    let form = FORM.to_string();
    let rows: Vec<BodyRow> = vec![
        BodyRow {
            name: "form with the token, no strip",
            path: "/post",
            headers: vec![form.clone()],
            sent: small.clone().into(),
            expect_body: small.clone().into(),
            expect_content_length: Some(small.len()),
        },
        BodyRow {
            name: "form with the token, no strip, chunked",
            path: "/post",
            headers: vec![form.clone(), chunked.into()],
            sent: small.clone().into(),
            expect_body: small.clone().into(),
            expect_content_length: None,
        },
        BodyRow {
            name: "form with the token, strip=on",
            path: "/post-on",
            headers: vec![form.clone()],
            sent: small.clone().into(),
            expect_body: small_stripped.clone().into(),
            expect_content_length: Some(small_stripped.len()),
        },
        BodyRow {
            name: "form with the token, strip=on, chunked",
            path: "/post-on",
            headers: vec![form.clone(), chunked.into()],
            sent: small.clone().into(),
            expect_body: small_stripped.clone().into(),
            expect_content_length: Some(small_stripped.len()),
        },
        BodyRow {
            name: "form that is only the token, strip=on",
            path: "/post-on",
            headers: vec![form.clone()],
            sent: format!("access_token={t}").into(),
            expect_body: vec![],
            expect_content_length: Some(0),
        },
        BodyRow {
            name: "custom field name, strip=on",
            path: "/post-name-on",
            headers: vec![form.clone()],
            sent: format!("at={t}&access_token=keep&c=3").into(),
            expect_body: b"access_token=keep&c=3".to_vec(),
            expect_content_length: Some(21),
        },
        BodyRow {
            name: "2 MB form, header token",
            path: "/dflt",
            headers: vec![form.clone(), bearer.clone()],
            sent: big.clone().into(),
            expect_body: big.clone().into(),
            expect_content_length: Some(big.len()),
        },
        BodyRow {
            name: "2 MB form, header token, chunked",
            path: "/dflt",
            headers: vec![form.clone(), bearer.clone(), chunked.into()],
            sent: big.clone().into(),
            expect_body: big.clone().into(),
            expect_content_length: None,
        },
        BodyRow {
            name: "JSON body, header token",
            path: "/dflt",
            headers: vec![json_ct.into(), bearer.clone()],
            sent: json.clone().into(),
            expect_body: json.clone().into(),
            expect_content_length: Some(json.len()),
        },
        BodyRow {
            name: "JSON body, header token, chunked",
            path: "/dflt",
            headers: vec![json_ct.into(), bearer.clone(), chunked.into()],
            sent: json.clone().into(),
            expect_body: json.clone().into(),
            expect_content_length: None,
        },
        BodyRow {
            name: "binary body, header token",
            path: "/dflt",
            headers: vec![
                "Content-Type: application/octet-stream".into(),
                bearer.clone(),
            ],
            sent: binary.clone(),
            expect_body: binary.clone(),
            expect_content_length: Some(binary.len()),
        },
        BodyRow {
            name: "small form without the token, read by the module, token in the cookie",
            path: "/postck",
            headers: vec![form.clone(), ck.clone()],
            sent: b"x=1&y=%26".to_vec(),
            expect_body: b"x=1&y=%26".to_vec(),
            expect_content_length: Some(9),
        },
        BodyRow {
            name: "small form, chunked, token in the cookie",
            path: "/postck",
            headers: vec![form.clone(), ck.clone(), chunked.into()],
            sent: b"x=1&y=%26".to_vec(),
            expect_body: b"x=1&y=%26".to_vec(),
            expect_content_length: None,
        },
        BodyRow {
            name: "2 MB form, token in the cookie (over the post limit)",
            path: "/postck",
            headers: vec![form.clone(), ck.clone()],
            sent: big.clone().into(),
            expect_body: big.clone().into(),
            expect_content_length: Some(big.len()),
        },
        BodyRow {
            name: "2 MB form, chunked, token in the cookie (read past the post limit, replayed)",
            path: "/postck",
            headers: vec![form.clone(), ck.clone(), chunked.into()],
            sent: big.clone().into(),
            expect_body: big.clone().into(),
            expect_content_length: None,
        },
        BodyRow {
            name: "JSON body, token in the cookie (not a form)",
            path: "/postck",
            headers: vec![json_ct.into(), ck.clone()],
            sent: json.clone().into(),
            expect_body: json.clone().into(),
            expect_content_length: Some(json.len()),
        },
    ];
    let mut f = Failures::new();
    for BodyRow {
        name,
        path,
        headers,
        sent,
        expect_body: want,
        expect_content_length: want_cl,
    } in &rows
    {
        // through a CGI that echoes its stdin
        let mut req = h.https(&format!("{path}/body"));
        for l in headers {
            req = req.header(l);
        }
        let r = req.body(sent.clone()).send();
        let what = format!("CGI {path}: {name}");
        f.expect(&what, &r, 200, None);
        if r.status == 200 {
            let rep = r.body_report();
            f.check(rep.length == want.len().to_string(), || {
                format!(
                    "{what}: body length {} at the CGI, expected {}",
                    rep.length,
                    want.len()
                )
            });
            f.check(rep.sha256 == sha256_hex(want), || {
                format!("{what}: body SHA-256 differs")
            });
            f.check(rep.body == *want, || {
                format!(
                    "{what}: body {:?}, expected {:?}",
                    String::from_utf8_lossy(&rep.body[..rep.body.len().min(100)]),
                    String::from_utf8_lossy(&want[..want.len().min(100)])
                )
            });
            if let Some(cl) = want_cl {
                f.check(rep.content_length == cl.to_string(), || {
                    format!(
                        "{what}: CONTENT_LENGTH {}, expected {cl}",
                        rep.content_length
                    )
                });
            }
            f.check(rep.remote_user == "joe", || {
                format!("{what}: REMOTE_USER {}", rep.remote_user)
            });
        }
        // through ProxyPass to a backend that records the body
        let mut req = h.https(&format!("/px{path}/x"));
        for l in headers {
            req = req.header(l);
        }
        let r = req.body(sent.clone()).send();
        let what = format!("proxied /px{path}: {name}");
        f.expect(&what, &r, 200, None);
        if r.status == 200 {
            let (head, got) = split_head_body(&r.body);
            f.check(got == want.as_slice(), || {
                format!(
                    "{what}: backend body of {} bytes (SHA-256 {}), expected {} bytes ({})",
                    got.len(),
                    sha256_hex(got),
                    want.len(),
                    sha256_hex(want)
                )
            });
            let fields = raw_head_fields(head);
            let cl: Vec<&str> = fields
                .iter()
                .filter(|(n, _)| n.eq_ignore_ascii_case("Content-Length"))
                .map(|(_, v)| v.as_str())
                .collect();
            if let Some(n) = want_cl {
                let chunked_at_backend = fields.iter().any(|(n, v)| {
                    n.eq_ignore_ascii_case("Transfer-Encoding") && v.eq_ignore_ascii_case("chunked")
                });
                f.check(
                    cl == [n.to_string().as_str()] || (cl.is_empty() && chunked_at_backend),
                    || format!("{what}: Content-Length at the backend {cl:?}, expected {n}"),
                );
            }
        }
    }
    f.assert_none();
    h.assert_no_child_crash();
}

/// A token header given twice, or once more in a spelling a backend reads as the same name
/// (`X_Token` for `X-Token`: CGI, WSGI and gunicorn map both to `HTTP_X_TOKEN`), as a repeated
/// query parameter or cookie: two different tokens are no token, one token twice is one token,
/// and `strip=on` removes every spelling, so no unverified token reaches the backend.
#[test]
fn a_token_header_given_twice_or_in_a_look_alike_spelling() {
    let signer = TokenSigner::rsa("one");
    let backend = RawBackend::start();
    let verify = format!("OAuth2TokenVerify jwk {}", signer.jwk_arg());
    let mut body = String::new();
    for (p, d) in [
        ("/px-x", "header name=X-Token&type="),
        ("/px-x-on", "header name=X-Token&type=&strip=on"),
        ("/px-xb-on", "header name=X-Token&strip=on"),
        ("/px-hdr", "header"),
        ("/px-hdr-on", "header strip=on"),
    ] {
        body.push_str(&oauth2_location(
            p,
            &format!(
                "{verify}\nOAuth2AcceptTokenIn {d}\nProxyPass {}",
                backend.url()
            ),
        ));
    }
    let h = Httpd::start(HttpdConfig::new(body));
    let good = signer.mint(&claims("joe"));
    let forged = signer.mint(&claims("eve")).replace('.', ".x");
    let other = signer.mint(&claims("ann"));
    let names = [
        (good.as_str(), "<good>"),
        (forged.as_str(), "<forged>"),
        (other.as_str(), "<other>"),
    ];
    let fields = |r: &Response| raw_head_fields(&r.body);
    let mut f = Failures::new();
    // (location, header lines, expected status, header names the backend must not receive)
    let rows: Vec<(&str, Vec<String>, u16, &[&str])> = vec![
        // a look-alike spelling with another token
        (
            "/px-x-on",
            vec![format!("X-Token: {good}"), format!("X_Token: {forged}")],
            401,
            &[],
        ),
        (
            "/px-x",
            vec![format!("X-Token: {good}"), format!("x_token: {forged}")],
            401,
            &[],
        ),
        (
            "/px-x",
            vec![format!("X_TOKEN: {forged}"), format!("X-Token: {good}")],
            401,
            &[],
        ),
        (
            "/px-xb-on",
            vec![
                format!("X-Token: Bearer {good}"),
                format!("X_Token: Bearer {other}"),
            ],
            401,
            &[],
        ),
        // the same token in both spellings: one token, and strip=on removes both
        (
            "/px-x-on",
            vec![format!("X-Token: {good}"), format!("X_Token: {good}")],
            200,
            &["X-Token", "X_Token"],
        ),
        (
            "/px-xb-on",
            vec![
                format!("X-Token: Bearer {good}"),
                format!("x_token: bearer {good}"),
            ],
            200,
            &["X-Token", "X_Token"],
        ),
        // the same name twice: httpd folds the two into one value
        (
            "/px-x-on",
            vec![format!("X-Token: {good}"), format!("X-Token: {forged}")],
            401,
            &[],
        ),
        (
            "/px-hdr",
            vec![
                format!("Authorization: Bearer {good}"),
                format!("Authorization: Bearer {other}"),
            ],
            401,
            &[],
        ),
        (
            "/px-hdr-on",
            vec![
                format!("Authorization: Bearer {good}"),
                format!("authorization: Bearer {forged}"),
            ],
            401,
            &[],
        ),
        (
            "/px-hdr-on",
            vec![
                format!("Authorization: Bearer {good}"),
                format!("Authorization: Bearer {good}"),
            ],
            200,
            &["Authorization"],
        ),
    ];
    for (i, (loc, lines, status, absent)) in rows.iter().enumerate() {
        let before = backend.heads().len();
        let mut req = h.https(&format!("{loc}/x"));
        for l in lines {
            req = req.header(l);
        }
        let r = req.send();
        let what = abbrev(&format!("row {i} {loc} {lines:?}"), &names);
        f.expect(&what, &r, *status, None);
        if r.status != 200 {
            f.check(backend.heads().len() == before, || {
                format!("{what}: refused, yet the backend got a request")
            });
            continue;
        }
        let got = fields(&r);
        for name in *absent {
            let sent: Vec<&(String, String)> = got
                .iter()
                .filter(|(n, _)| n.eq_ignore_ascii_case(name))
                .collect();
            f.check(sent.is_empty(), || {
                abbrev(&format!("{what}: the backend got {sent:?}"), &names)
            });
        }
        f.check(
            got.iter()
                .any(|(n, v)| n.eq_ignore_ascii_case("OAUTH2_CLAIM_sub") && v == "joe"),
            || format!("{what}: OAUTH2_CLAIM_sub is not joe"),
        );
    }
    f.assert_none();
    h.assert_no_child_crash();
}
