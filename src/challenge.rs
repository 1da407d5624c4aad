//! RFC 6750 `WWW-Authenticate` values, byte for byte as the C module writes them (reference 6).

pub const NO_TOKEN: (&str, &str) = ("invalid_request", "No bearer token found in the request.");
pub const BAD_TOKEN: (&str, &str) = ("invalid_token", "Token could not be verified.");
pub const NO_USER: (&str, &str) = ("invalid_token", "Could not determine remote user.");

/// `Bearer [realm="R",] error="E", error_description="D"`.
pub fn www_authenticate(
    scheme: &str,
    realm: Option<&str>,
    (error, description): (&str, &str),
) -> String {
    let mut v = String::with_capacity(128);
    v.push_str(scheme);
    if let Some(realm) = realm {
        v.push_str(" realm=\"");
        push_quoted_content(&mut v, realm);
        v.push_str("\",");
    }
    v.push_str(" error=\"");
    v.push_str(error);
    v.push_str("\", error_description=\"");
    v.push_str(description);
    v.push('"');
    v
}

/// The content of an RFC 9110 quoted-string: `"` and `\` escaped, control characters dropped
/// (the C module copies AuthName unescaped, which can break the header).
fn push_quoted_content(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_token_without_realm() {
        assert_eq!(
            www_authenticate("Bearer", None, NO_TOKEN),
            r#"Bearer error="invalid_request", error_description="No bearer token found in the request.""#
        );
    }

    #[test]
    fn bad_token_with_realm() {
        assert_eq!(
            www_authenticate("Bearer", Some("my realm"), BAD_TOKEN),
            r#"Bearer realm="my realm", error="invalid_token", error_description="Token could not be verified.""#
        );
    }

    #[test]
    fn realm_is_escaped() {
        assert_eq!(
            www_authenticate("Bearer", Some("a\"b\\c\r\nd"), NO_USER),
            r#"Bearer realm="a\"b\\cd", error="invalid_token", error_description="Could not determine remote user.""#
        );
    }
}
