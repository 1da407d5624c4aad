//! The checks every configured http(s) endpoint URL passes (`jwks_uri`, `eckey_uri`,
//! `introspect`, `metadata`, `alb_base_url`), so that they cannot drift apart; each caller words
//! its own `apache2 -t` message.

/// A space, a control character or DEL: never part of a URL (RFC 3986 section 2), and it would
/// split a log line or a request line.
pub(crate) fn has_space_or_control(value: &str) -> bool {
    value.bytes().any(|b| b <= b' ' || b == 0x7f)
}

/// `http://` or `https://` (in any case) followed by a host, not by `/` or nothing.
pub(crate) fn is_http(value: &str) -> bool {
    let scheme_len = if starts_with_ignore_case(value, "https://") {
        8
    } else if starts_with_ignore_case(value, "http://") {
        7
    } else {
        return false;
    };
    value[scheme_len..]
        .bytes()
        .next()
        .is_some_and(|first| first != b'/')
}

/// An [`is_http`] URL on `https://`.
pub(crate) fn is_https(value: &str) -> bool {
    is_http(value) && starts_with_ignore_case(value, "https://")
}

fn starts_with_ignore_case(value: &str, prefix: &str) -> bool {
    value
        .as_bytes()
        .get(..prefix.len())
        .is_some_and(|head| head.eq_ignore_ascii_case(prefix.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_urls_with_a_host() {
        for ok in [
            "https://as.example/jwks",
            "HTTP://127.0.0.1:8080",
            "Https://k",
        ] {
            assert!(is_http(ok), "{ok}");
        }
        for bad in [
            "",
            "https://",
            "http:///path",
            "ftp://k.example/",
            "k.example",
            "file:///etc/keys",
            "https:/k",
            "\u{e9}https://k",
        ] {
            assert!(!is_http(bad), "{bad:?}");
        }
        assert!(is_https("HTTPS://k/x") && !is_https("http://k/x") && !is_https("https://"));
    }

    #[test]
    fn spaces_and_control_characters() {
        for bad in [
            "https://k/ x",
            "https://k/\tx",
            "https://k/\r\n",
            "https://k/\x7f",
            "\0",
        ] {
            assert!(has_space_or_control(bad), "{bad:?}");
        }
        assert!(!has_space_or_control("https://k/%20\u{e9}"));
    }
}
