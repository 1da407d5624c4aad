//! Internal redirects and sub-requests into a protected location: an httpd where a server-level
//! rewrite, an `ErrorDocument`, a per-directory rewrite and a `DirectoryIndex` all lead into
//! `/b`, the requests that take each way, and what the CGI behind them must see.

use super::client::Response;
use super::failures::Failures;
use super::httpd::Httpd;
use super::httpd_config::{HttpdConfig, load_module, oauth2_location};
use std::fs;

/// Start an httpd whose locations `/a`, `/b`, `/e`, `/rw` and `/di` each verify with the
/// directives `verify` and reach the CGI at `/b/env` by an internal redirect or sub-request
/// (mod_rewrite and mod_dir loaded, their htdocs folders made).
pub(crate) fn start_httpd_with_internal_redirects(verify: &str) -> Httpd {
    let server = [
        load_module("rewrite_module", "mod_rewrite.so"),
        load_module("dir_module", "mod_dir.so"),
    ]
    .concat();
    let body = [
        "RewriteEngine On\nRewriteRule ^/a/(.*) /b/$1 [PT]\n".to_string(),
        oauth2_location("/a", verify),
        oauth2_location("/b", verify),
        // 404 -> ErrorDocument (internal redirect) into the protected /b
        oauth2_location("/e", &format!("{verify}\nErrorDocument 404 /b/env")),
        // per-directory rewrite -> internal redirect into /b
        oauth2_location("/rw", verify),
        "<Directory @HTDOCS@/rw>\nRewriteEngine On\nRewriteRule ^x\\.txt$ /b/env\n</Directory>\n"
            .to_string(),
        // DirectoryIndex -> sub-request, then fast internal redirect, into /b
        oauth2_location("/di", &format!("{verify}\nDirectoryIndex /b/env")),
    ]
    .concat();
    let h = Httpd::start(HttpdConfig::new(body).server(server));
    for d in ["e", "rw", "di"] {
        fs::create_dir_all(h.dir.join("htdocs").join(d)).unwrap();
    }
    fs::write(h.dir.join("htdocs/rw/x.txt"), "x\n").unwrap();
    h
}

/// A request to [`start_httpd_with_internal_redirects`]'s httpd, the status it gets and the
/// `REDIRECT_URL` the CGI must see (proof of an internal redirect).
pub(crate) struct Redirect {
    pub(crate) what: &'static str,
    pub(crate) path: &'static str,
    pub(crate) expect_status: u16,
    pub(crate) expect_redirect_url: Option<&'static str>,
}

/// One request per way into `/b`, and `/b` itself.
pub(crate) const REDIRECTS: [Redirect; 5] = [
    Redirect {
        what: "server-level rewrite [PT]",
        path: "/a/env",
        expect_status: 200,
        expect_redirect_url: None,
    },
    Redirect {
        what: "direct",
        path: "/b/env",
        expect_status: 200,
        expect_redirect_url: None,
    },
    Redirect {
        what: "ErrorDocument",
        path: "/e/missing",
        expect_status: 404,
        expect_redirect_url: Some("/e/missing"),
    },
    Redirect {
        what: "per-directory rewrite",
        path: "/rw/x.txt",
        expect_status: 200,
        expect_redirect_url: Some("/rw/x.txt"),
    },
    Redirect {
        what: "DirectoryIndex",
        path: "/di/",
        expect_status: 200,
        expect_redirect_url: None,
    },
];

impl Redirect {
    /// Check that the CGI ran for `r`, as `user`, and saw this request's `REDIRECT_URL`.
    pub(crate) fn check_cgi(&self, f: &mut Failures, r: &Response, user: &str) {
        let Redirect {
            what,
            path,
            expect_redirect_url,
            ..
        } = self;
        let env = r.env_bytes();
        f.check(env.contains_key("GATEWAY_INTERFACE"), || {
            format!("{what} {path}: the CGI did not run: {:?}", r.text())
        });
        f.check(
            env.get("REMOTE_USER").map(Vec::as_slice) == Some(user.as_bytes()),
            || {
                format!(
                    "{what} {path}: REMOTE_USER {:?}, expected {user:?} (body {:?})",
                    env.get("REMOTE_USER")
                        .map(|v| String::from_utf8_lossy(v).into_owned()),
                    r.text().chars().take(200).collect::<String>()
                )
            },
        );
        let got = env
            .get("REDIRECT_URL")
            .map(|v| String::from_utf8_lossy(v).into_owned());
        f.check(got.as_deref() == *expect_redirect_url, || {
            format!("{what} {path}: REDIRECT_URL {got:?}, expected {expect_redirect_url:?}")
        });
    }
}
