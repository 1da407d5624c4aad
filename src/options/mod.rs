//! The "query-encoded" option strings of the C module's directives: `name=value&name2=value2`.
//!
//! Rules, as the C module reads them: split on `&`, each pair on the first `=` (no `=` gives an empty value),
//! `+` and `%XX` decoded in names and values, names case-sensitive, the first occurrence wins,
//! unknown names are ignored.

pub(crate) mod flag;

/// Parsed options of one directive, in the order written.
#[derive(Debug, Default, Clone)]
pub(crate) struct Options {
    pairs: Vec<(String, String)>,
}

impl Options {
    pub(crate) fn parse(text: &str) -> Options {
        let mut pairs: Vec<(String, String)> = Vec::new();
        for (name, value) in form_urlencoded::parse(text.as_bytes()) {
            if !pairs.iter().any(|(n, _)| *n == name) {
                pairs.push((name.into_owned(), value.into_owned()));
            }
        }
        Options { pairs }
    }

    /// The value of `name` (first occurrence), if given.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// A canonical text of the options (first occurrences, in order), for identities.
    pub(crate) fn canonical(&self) -> String {
        let mut s = String::new();
        for (n, v) in &self.pairs {
            s.push_str(n);
            s.push('\u{1}');
            s.push_str(v);
            s.push('\u{2}');
        }
        s
    }

    /// Names given that are not in `known`: the C module ignores them silently; we tell the admin.
    pub(crate) fn unknown<'a>(&'a self, known: &'a [&str]) -> impl Iterator<Item = &'a str> + 'a {
        self.pairs
            .iter()
            .map(|(n, _)| n.as_str())
            .filter(move |n| !n.is_empty() && !known.contains(n))
    }
}

/// `skip` / `optional` / `required` as the C module reads them: case-insensitive, anything else
/// falls back to the default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Requirement {
    Skip,
    Optional,
    Required,
}

impl Requirement {
    pub(crate) fn parse_or(value: Option<&str>, default: Requirement) -> Requirement {
        match value {
            Some(v) if v.eq_ignore_ascii_case("skip") => Requirement::Skip,
            Some(v) if v.eq_ignore_ascii_case("optional") => Requirement::Optional,
            Some(v) if v.eq_ignore_ascii_case("required") => Requirement::Required,
            _ => default,
        }
    }
}

/// Numbers as the C module reads them (`strtol`): leading digits count, garbage gives 0.
pub(crate) fn parse_number(value: &str) -> i64 {
    let v = value.trim_start();
    let (sign, digits) = match v.strip_prefix('-') {
        Some(rest) => (-1, rest),
        None => (1, v.strip_prefix('+').unwrap_or(v)),
    };
    let end = digits
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(digits.len());
    digits[..end].parse::<i64>().map_or(0, |n| sign * n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_occurrence_wins_and_values_are_decoded() {
        let o = Options::parse("a=1&b=x%20y+z&a=2&flag&c=%3D%26");
        assert_eq!(o.get("a"), Some("1"));
        assert_eq!(o.get("b"), Some("x y z"));
        assert_eq!(o.get("flag"), Some(""));
        assert_eq!(o.get("c"), Some("=&"));
        assert_eq!(o.get("A"), None, "names are case-sensitive");
    }

    #[test]
    fn unknown_names_are_reported_not_rejected() {
        let o = Options::parse("type=mtls&bogus=1&kid=x");
        let unknown: Vec<_> = o.unknown(&["type", "kid"]).collect();
        assert_eq!(unknown, vec!["bogus"]);
    }

    #[test]
    fn requirement_is_case_insensitive_with_fallback() {
        assert_eq!(
            Requirement::parse_or(Some("REQUIRED"), Requirement::Optional),
            Requirement::Required
        );
        assert_eq!(
            Requirement::parse_or(Some("nonsense"), Requirement::Optional),
            Requirement::Optional
        );
        assert_eq!(
            Requirement::parse_or(None, Requirement::Skip),
            Requirement::Skip
        );
    }

    #[test]
    fn numbers_follow_strtol() {
        assert_eq!(parse_number("30"), 30);
        assert_eq!(parse_number("12abc"), 12);
        assert_eq!(parse_number("abc"), 0);
        assert_eq!(parse_number("-5"), -5);
    }
}
