//! Where the access token comes from. The C module's default sources: the environment variable
//! `access_token`, then the `Authorization: Bearer` header (reference 4).

use std::ffi::CStr;

/// Read access to the parts of a request that carry a token.
pub trait TokenSource {
    fn header(&self, name: &CStr) -> Option<&str>;
    fn env(&self, name: &CStr) -> Option<&str>;
}

/// The token of the request, from the first source that has one.
pub fn find<'a>(req: &'a impl TokenSource) -> Option<&'a str> {
    if let Some(t) = req.env(c"access_token") {
        return Some(t);
    }
    bearer(req.header(c"Authorization")?)
}

/// `Bearer <token>`: scheme case-insensitive, separated by one or more spaces; the rest of the line
/// is the token (reference 4: trailing junk is kept and then fails verification).
fn bearer(value: &str) -> Option<&str> {
    let (scheme, rest) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    Some(rest.trim_start_matches(' '))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[derive(Default)]
    struct Fake {
        headers: HashMap<&'static str, &'static str>,
        env: HashMap<&'static str, &'static str>,
    }
    impl TokenSource for Fake {
        fn header(&self, name: &CStr) -> Option<&str> {
            let n = name.to_str().ok()?;
            self.headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(n))
                .map(|(_, v)| *v)
        }
        fn env(&self, name: &CStr) -> Option<&str> {
            self.env.get(name.to_str().ok()?).copied()
        }
    }

    fn with_auth(value: &'static str) -> Fake {
        let mut f = Fake::default();
        f.headers.insert("Authorization", value);
        f
    }

    #[test]
    fn bearer_scheme_is_case_insensitive() {
        assert_eq!(find(&with_auth("Bearer abc")), Some("abc"));
        assert_eq!(find(&with_auth("bearer abc")), Some("abc"));
        assert_eq!(find(&with_auth("BEARER abc")), Some("abc"));
        assert_eq!(find(&with_auth("bEARER abc")), Some("abc"));
    }

    #[test]
    fn other_schemes_and_tabs_are_not_tokens() {
        assert_eq!(find(&with_auth("Basic xyz")), None);
        assert_eq!(find(&with_auth("Bearer\tabc")), None);
        assert_eq!(find(&with_auth("Bearer")), None);
    }

    #[test]
    fn extra_spaces_are_skipped_and_empty_token_is_a_token() {
        assert_eq!(find(&with_auth("Bearer   abc")), Some("abc"));
        assert_eq!(find(&with_auth("Bearer ")), Some(""));
    }

    #[test]
    fn environment_comes_first() {
        let mut f = with_auth("Bearer fromheader");
        f.env.insert("access_token", "fromenv");
        assert_eq!(find(&f), Some("fromenv"));
    }
}
