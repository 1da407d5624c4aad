//! Strict JSON object parsing: one object, no duplicate names at any depth,
//! bounded nesting, nothing after it.
//!
//! serde_json alone keeps the last of duplicate members (RFC 7515 §5.2 allows
//! that), which lets two parsers read different claims from the same token;
//! this module builds the `Value` itself so it can refuse duplicates instead.

use std::cell::RefCell;
use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use super::error::{JoseError, sanitize};

/// Maximum nesting of objects/arrays (the top-level object counts as 1).
/// Real headers, claims and JWKs need a handful; serde_json's own guard (128)
/// stays as a second line against stack exhaustion.
pub(crate) const MAX_DEPTH: usize = 64;

/// Parse bytes as ONE JSON object (UTF-8), rejecting duplicate member names
/// at any depth, trailing data, and nesting deeper than 64. Returns the
/// members in document order.
#[cfg(test)]
pub(crate) fn parse_object(bytes: &[u8]) -> Result<Map<String, Value>, JoseError> {
    parse_object_as(bytes, "JSON")
}

/// Like `parse_object`, naming the part (`"header"`, `"payload"`, `"JWK"`) in errors.
pub(crate) fn parse_object_as(
    bytes: &[u8],
    part: &'static str,
) -> Result<Map<String, Value>, JoseError> {
    let text = std::str::from_utf8(bytes).map_err(|_| JoseError::Utf8(part))?;
    // Refuse non-objects before building anything (e.g. 10 000 `[`).
    if !text.trim_start().starts_with('{') {
        return Err(JoseError::NotJsonObject(part));
    }
    let ctx = Ctx {
        part,
        failure: RefCell::new(None),
    };
    let mut de = serde_json::Deserializer::from_str(text);
    let parsed = Node {
        ctx: &ctx,
        depth: 0,
    }
    .deserialize(&mut de)
    .and_then(|v| de.end().map(|()| v));
    match parsed {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(JoseError::NotJsonObject(part)),
        Err(e) => Err(ctx
            .failure
            .take()
            .unwrap_or_else(|| JoseError::Json(part, sanitize(&e.to_string())))),
    }
}

/// Shared state of one parse: the typed reason when we abort ourselves
/// (serde errors can only carry text).
struct Ctx {
    part: &'static str,
    failure: RefCell<Option<JoseError>>,
}

impl Ctx {
    fn fail<E: de::Error>(&self, err: JoseError) -> E {
        let msg = err.to_string();
        let mut slot = self.failure.borrow_mut();
        if slot.is_none() {
            *slot = Some(err);
        }
        E::custom(msg)
    }
}

/// Seed and visitor for one JSON value at a given depth
/// (number of enclosing containers).
#[derive(Clone, Copy)]
struct Node<'c> {
    ctx: &'c Ctx,
    depth: usize,
}

impl Node<'_> {
    fn child<E: de::Error>(self) -> Result<Self, E> {
        let depth = self.depth.saturating_add(1);
        if depth > MAX_DEPTH {
            return Err(self.ctx.fail(JoseError::TooDeep(self.ctx.part)));
        }
        Ok(Node {
            ctx: self.ctx,
            depth,
        })
    }
}

impl<'de> DeserializeSeed<'de> for Node<'_> {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Node<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        serde_json::Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom("non-finite number"))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let child = self.child()?;
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(child)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let child = self.child()?;
        let mut map = Map::new();
        // Keys arrive unescaped, so "a" and "\u0061" count as duplicates.
        while let Some(key) = access.next_key::<String>()? {
            if map.contains_key(&key) {
                return Err(self.ctx.fail(JoseError::DuplicateMember(sanitize(&key))));
            }
            let value = access.next_value_seed(child)?;
            map.insert(key, value);
        }
        Ok(Value::Object(map))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_in_document_order() {
        let m = parse_object(br#" {"z":1,"a":[true,null,{"b":"c"}],"m":-2.5} "#);
        let keys: Vec<_> = m
            .as_ref()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        assert_eq!(keys, ["z", "a", "m"]);
    }

    #[test]
    fn rejects_duplicates_at_any_depth() {
        assert_eq!(
            parse_object(br#"{"sub":"alice","sub":"admin"}"#),
            Err(JoseError::DuplicateMember("sub".into()))
        );
        assert_eq!(
            parse_object(br#"{"a":{"b":[{"c":1,"c":2}]}}"#),
            Err(JoseError::DuplicateMember("c".into()))
        );
        assert_eq!(
            parse_object(br#"{"a":1,"\u0061":2}"#),
            Err(JoseError::DuplicateMember("a".into()))
        );
        // Same name in sibling objects is fine.
        assert!(parse_object(br#"{"a":{"x":1},"b":{"x":1}}"#).is_ok());
    }

    #[test]
    fn rejects_non_objects_and_trailing_data() {
        for bad in [&b"[]"[..], b"\"x\"", b"1", b"null", b"", b"  "] {
            assert!(
                matches!(parse_object(bad), Err(JoseError::NotJsonObject(_))),
                "{bad:?}"
            );
        }
        for bad in [
            &br#"{"a":1} x"#[..],
            br#"{"a":1}{}"#,
            br#"{"a":1"#,
            br#"{"a":01}"#,
        ] {
            assert!(
                matches!(parse_object(bad), Err(JoseError::Json(..))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn rejects_bad_utf8_and_lone_surrogates() {
        assert_eq!(
            parse_object(b"{\"a\":\"\xff\"}"),
            Err(JoseError::Utf8("JSON"))
        );
        assert!(matches!(
            parse_object(br#"{"a":"\ud800"}"#),
            Err(JoseError::Json(..))
        ));
    }

    #[test]
    fn depth_is_bounded_without_stack_overflow() {
        let deep = "[".repeat(10_000);
        assert!(parse_object(deep.as_bytes()).is_err());
        let deep_in_object = format!("{{\"a\":{}", "[".repeat(10_000));
        assert_eq!(
            parse_object(deep_in_object.as_bytes()),
            Err(JoseError::TooDeep("JSON"))
        );
        let ok = format!("{{\"a\":{}1{}}}", "[".repeat(63), "]".repeat(63));
        assert!(parse_object(ok.as_bytes()).is_ok());
        let too_deep = format!("{{\"a\":{}1{}}}", "[".repeat(64), "]".repeat(64));
        assert_eq!(
            parse_object(too_deep.as_bytes()),
            Err(JoseError::TooDeep("JSON"))
        );
    }

    #[test]
    fn error_text_is_bounded() {
        let name = "k".repeat(500);
        let dup = format!("{{\"{name}\":1,\"{name}\":2}}");
        let err = parse_object(dup.as_bytes())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(!err.is_empty() && err.len() < 120, "{err}");
    }
}
