//! `Require oauth2_claim <spec> [<spec> ...]`: authorization on the verified claims, with the C module's spec syntax.
//!
//! A spec is `name:value` (the claim equals, or an array claim contains, the value), `name.rest`
//! (descend into an object claim; on an array claim `rest` is a value to look for), or
//! `name~regex` (a string claim, or a string element of an array claim, matches). Specs on one line
//! are OR-ed. The line is parsed and its regexes compiled once, at configuration time.

use regex::{Regex, RegexBuilder};
use serde_json::{Map, Value};

/// Upper bound on a compiled regex, so a configuration cannot make a worker allocate without limit.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// Why `Require oauth2_claim` refused a request this module authenticated (its metric reason).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ClaimNotSatisfied;

impl ClaimNotSatisfied {
    /// A short stable name for metrics.
    pub(crate) fn label(&self) -> &'static str {
        "claim_not_satisfied"
    }
}

#[derive(Debug)]
pub(crate) struct Requirement {
    specs: Vec<Spec>,
}

#[derive(Debug)]
struct Spec {
    text: String,
    /// Compiled regexes for the text after each `~`, by byte offset of that `~`.
    regexes: Vec<(usize, Regex)>,
}

impl Requirement {
    /// The line as httpd read it from the configuration file: claims are JSON text, so a line in
    /// another encoding (Latin-1, say) could never match and is refused as such.
    pub(crate) fn parse_bytes(line: &[u8]) -> Result<Requirement, String> {
        let line = std::str::from_utf8(line).map_err(|e| {
            format!(
                "Require oauth2_claim: the line is not UTF-8 text (byte {} of it): claims are \
                 compared as UTF-8, so save the configuration file as UTF-8",
                e.valid_up_to() + 1
            )
        })?;
        Requirement::parse(line)
    }

    /// Parses the words after `Require oauth2_claim`, grouped as `ap_getword_conf` does.
    pub(crate) fn parse(line: &str) -> Result<Requirement, String> {
        let mut specs = Vec::new();
        for word in conf_words(line) {
            specs.push(Spec::parse(word)?);
        }
        if specs.is_empty() {
            return Err("Require oauth2_claim needs at least one claim spec, e.g. \
                        `Require oauth2_claim scope~(^|\\s)read($|\\s)` or `Require oauth2_claim sub:alice`"
                .to_string());
        }
        Ok(Requirement { specs })
    }

    pub(crate) fn is_satisfied(&self, claims: &Map<String, Value>) -> bool {
        self.specs.iter().any(|spec| spec.matches(claims))
    }

    /// The specs as written, for log lines.
    pub(crate) fn describe(&self) -> String {
        let texts: Vec<&str> = self.specs.iter().map(|s| s.text.as_str()).collect();
        texts.join(" ")
    }
}

impl Spec {
    fn parse(text: String) -> Result<Spec, String> {
        let mut regexes = Vec::new();
        for (pos, _) in text.match_indices('~') {
            let source = &text[pos + 1..];
            match RegexBuilder::new(source)
                .size_limit(REGEX_SIZE_LIMIT)
                .build()
            {
                Ok(re) => regexes.push((pos, re)),
                // The first `~` of a spec must start a valid regex, unless it is inside a `name:value`
                // value; later ones may be part of the regex itself.
                Err(e) if regexes.is_empty() && !text[..pos].contains(':') => {
                    return Err(format!(
                        "Require oauth2_claim {text}: invalid regular expression after \"~\": {e}"
                    ));
                }
                Err(_) => {}
            }
        }
        Ok(Spec { text, regexes })
    }

    fn matches(&self, claims: &Map<String, Value>) -> bool {
        self.matches_at(0, claims)
    }

    /// Matches the spec text from byte `start` against an object's members. The member is the
    /// shortest name the spec starts with, followed by `:`, `.` or `~`: a `.` after a member name
    /// descends into that member, so a member literally named `a.b` cannot stand in for `b`
    /// inside `a` (docs/compatibility.md, row "`Require oauth2_claim a.b`"); a name with such
    /// characters in it (`https://example.com/roles`) is matched when no shorter one is there.
    fn matches_at(&self, start: usize, claims: &Map<String, Value>) -> bool {
        let spec = &self.text[start..];
        let member = claims
            .iter()
            .filter(|(name, _)| {
                spec.strip_prefix(name.as_str())
                    .is_some_and(|rest| matches!(rest.as_bytes().first(), Some(b':' | b'.' | b'~')))
            })
            .min_by_key(|(name, _)| name.len());
        let Some((name, value)) = member else {
            return false;
        };
        let sep_at = start + name.len();
        let rest = &spec[name.len()..];
        match rest.as_bytes().first() {
            Some(b':') => value_matches(value, &rest[1..]),
            Some(b'.') => match value {
                Value::Object(inner) => self.matches_at(sep_at + 1, inner),
                Value::Array(items) => items.iter().any(|i| scalar_matches(i, &rest[1..])),
                _ => false,
            },
            Some(b'~') => match self.regexes.iter().find(|(p, _)| *p == sep_at) {
                Some((_, re)) => match value {
                    Value::String(s) => re.is_match(s),
                    Value::Array(items) => items
                        .iter()
                        .any(|i| i.as_str().is_some_and(|s| re.is_match(s))),
                    _ => false,
                },
                None => false,
            },
            _ => false,
        }
    }
}

/// `name:value` against a claim value: scalars compare, arrays look for a matching element.
fn value_matches(claim: &Value, wanted: &str) -> bool {
    match claim {
        Value::Array(items) => items.iter().any(|i| scalar_matches(i, wanted)),
        other => scalar_matches(other, wanted),
    }
}

fn scalar_matches(claim: &Value, wanted: &str) -> bool {
    match claim {
        Value::String(s) => s == wanted,
        Value::Bool(b) => wanted.eq_ignore_ascii_case(if *b { "true" } else { "false" }),
        Value::Number(n) if n.is_i64() || n.is_u64() => {
            // Integers compare numerically ("3" matches 3); a non-number never matches.
            match (n.as_i64(), wanted.parse::<i64>()) {
                (Some(have), Ok(want)) => have == want,
                _ => n
                    .as_u64()
                    .is_some_and(|have| wanted.parse::<u64>() == Ok(have)),
            }
        }
        _ => false,
    }
}

/// Words as `ap_getword_conf` splits them: whitespace-separated, `"..."` or `'...'` grouping with
/// backslash-escaped quotes inside.
fn conf_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let Some(&first) = chars.peek() else { break };
        let mut word = String::new();
        if first == '"' || first == '\'' {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' if chars.peek() == Some(&first) => {
                        word.push(chars.next().unwrap_or(first))
                    }
                    c if c == first => break,
                    c => word.push(c),
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                word.push(c);
            }
        }
        words.push(word);
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claims() -> Map<String, Value> {
        match json!({
            "sub": "alice",
            "scope": "read write",
            "scopes": ["one", "two", "three"],
            "level": 3,
            "admin": true,
            "nested": {"level": 3, "name": "x", "deeper": {"k": "v"}},
            "roles": ["admin", "user"],
            "ratio": 1.5,
            "nothing": null,
            "mixed": [1, true, "s"]
        }) {
            Value::Object(m) => m,
            _ => unreachable!(),
        }
    }

    fn ok(line: &str) -> bool {
        Requirement::parse(line).unwrap().is_satisfied(&claims())
    }

    #[test]
    fn string_claims_compare_exactly() {
        assert!(ok("sub:alice"));
        assert!(!ok("sub:bob"));
        assert!(!ok("sub:Alice"));
        assert!(!ok("sub:alic"));
        assert!(!ok("scope:read"), "a scope string is one value");
        assert!(ok("\"scope:read write\""));
        assert!(
            !ok("scope:readwrite"),
            "the C module's whitespace-blind compare is not kept"
        );
    }

    #[test]
    fn integers_and_booleans() {
        assert!(ok("level:3"));
        assert!(!ok("level:4"));
        assert!(!ok("level:three"));
        assert!(ok("admin:true"));
        assert!(!ok("admin:false"));
    }

    #[test]
    fn arrays_match_any_element() {
        assert!(ok("roles:admin"));
        assert!(!ok("roles:root"));
        assert!(ok("mixed:1"));
        assert!(ok("mixed:true"));
        assert!(ok("mixed:s"));
    }

    #[test]
    fn nesting_and_membership() {
        assert!(ok("nested.level:3"));
        assert!(ok("nested.name:x"));
        assert!(ok("nested.deeper.k:v"));
        assert!(!ok("nested.level:4"));
        assert!(ok("roles.admin"), "on an array, .x is a membership test");
        assert!(!ok("roles.root"));
        assert!(!ok("sub.x:y"), "a string has no members");
    }

    #[test]
    fn reals_null_and_objects_never_match_values() {
        assert!(!ok("ratio:1.5"));
        assert!(!ok("nothing:null"));
        assert!(!ok("nested:x"));
    }

    #[test]
    fn specs_are_or_ed() {
        assert!(ok("sub:bob sub:alice"));
        assert!(!ok("sub:bob sub:carol"));
    }

    #[test]
    fn regex_on_strings_and_arrays() {
        assert!(ok(r"scope~(^|\s)(read)($|\s|,)"));
        assert!(!ok(r"scope~(^|\s)(admin)($|\s|,)"));
        assert!(ok("scopes~^three$"));
        assert!(!ok("scopes~^four$"));
        assert!(ok("nested.name~^x$"));
        assert!(!ok("level~3"), "regexes only apply to strings");
    }

    #[test]
    fn unknown_claims_do_not_match() {
        assert!(!ok("missing:x"));
        assert!(!ok("su:alice"));
    }

    #[test]
    fn bad_regex_and_empty_line_are_config_errors() {
        assert!(
            Requirement::parse("scope~(unclosed")
                .unwrap_err()
                .contains("invalid regular expression")
        );
        assert!(Requirement::parse("   ").is_err());
    }

    #[test]
    fn a_line_that_is_not_utf8_is_refused_as_such() {
        // "name:Jos\xe9": Latin-1 for "José".
        let e = Requirement::parse_bytes(b"name:Jos\xe9").unwrap_err();
        assert!(e.contains("not UTF-8") && e.contains("byte 9"), "{e}");
        assert!(Requirement::parse_bytes("name:José".as_bytes()).is_ok());
    }

    /// A member named `realm_access.roles` is not the `roles` member of `realm_access`, whatever
    /// the order of the members.
    #[test]
    fn dots_descend_by_member_names_only() {
        let spoofed = [
            json!({"realm_access.roles": ["admin"], "realm_access": {"roles": ["user"]}}),
            json!({"realm_access": {"roles": ["user"]}, "realm_access.roles": ["admin"]}),
            json!({"realm_access.roles:admin": "x", "realm_access": {"roles": []}}),
        ];
        for claims in spoofed {
            let Value::Object(claims) = claims else {
                unreachable!()
            };
            let r = Requirement::parse("realm_access.roles:admin").unwrap();
            assert!(!r.is_satisfied(&claims), "{claims:?}");
        }
        let Value::Object(real) = json!({"realm_access": {"roles": ["admin"]}}) else {
            unreachable!()
        };
        assert!(
            Requirement::parse("realm_access.roles:admin")
                .unwrap()
                .is_satisfied(&real)
        );
        // Names with separators in them still work where nothing shorter is a member.
        let Value::Object(namespaced) =
            json!({"https://example.com/roles": ["admin"], "https://example.com/x": 1})
        else {
            unreachable!()
        };
        assert!(
            Requirement::parse("https://example.com/roles:admin")
                .unwrap()
                .is_satisfied(&namespaced)
        );
    }

    #[test]
    fn words_group_like_apache() {
        assert_eq!(
            conf_words(r#"a "b c" 'd e' "f\"g""#),
            vec!["a", "b c", "d e", "f\"g"]
        );
    }
}
