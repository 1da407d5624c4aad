//! Strict `%XX` decoding (RFC 3986 section 2.1), shared by everything that decodes
//! percent-escapes from configuration or from a request: every `%` is followed by exactly two
//! hexadecimal digits, or the whole input is refused (`%2`, `%zz` and `%+1` are errors, not
//! bytes). `+` stays `+`: this is not form decoding.

/// The bytes `s` encodes; `None` for a `%` not followed by two hexadecimal digits.
pub(crate) fn decode(s: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'%' {
            let (hi, lo) = (
                crate::hex::digit_value(*s.get(i + 1)?)?,
                crate::hex::digit_value(*s.get(i + 2)?)?,
            );
            out.push(hi << 4 | lo);
            i += 3;
        } else {
            out.push(s[i]);
            i += 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::decode;

    #[test]
    fn escapes_are_decoded_and_everything_else_kept() {
        assert_eq!(decode(b"").unwrap(), b"");
        assert_eq!(decode(b"a+b/c").unwrap(), b"a+b/c");
        assert_eq!(
            decode(b"%41%2f%2F%00%ff%C3%A9").unwrap(),
            b"A//\0\xff\xc3\xa9"
        );
        assert_eq!(decode(b"%2541").unwrap(), b"%41", "decoded once");
    }

    #[test]
    fn a_percent_without_two_hex_digits_refuses_the_whole_input() {
        for bad in [
            "%", "%2", "a%", "%zz", "%g0", "%0g", "%+1", "%-1", "% 1", "%1 ", "%%41", "%\u{e9}",
        ] {
            assert_eq!(decode(bad.as_bytes()), None, "{bad:?}");
        }
    }
}
