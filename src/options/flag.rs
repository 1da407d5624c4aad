//! On/off values as the C module's "flag slot" options read them (`OAuth2TargetPass headers=`,
//! `OAuth2AcceptTokenIn ... strip=`).

pub(crate) const FLAG_ERROR: &str =
    "value must be \"true\", \"false\", \"1\", \"0\",  \"on\" or \"off\"";

/// `on|off|true|false|1|0`, any letter case; anything else is the C module's error.
pub(crate) fn parse_flag(value: &str) -> Result<bool, String> {
    match value.to_ascii_lowercase().as_str() {
        "on" | "true" | "1" => Ok(true),
        "off" | "false" | "0" => Ok(false),
        _ => Err(FLAG_ERROR.to_string()),
    }
}

/// The words read as true by [`parse_switch`] (the C module's "parse_bool", e.g. cache `encrypt`,
/// reads only `true` as true, so `1`, `on`, `yes` silently meant false).
pub(crate) fn parse_bool(value: &str) -> bool {
    ["true", "1", "on", "yes"]
        .iter()
        .any(|t| value.eq_ignore_ascii_case(t))
}

/// A switch of our own options (`OAuth2Cache redis tls=`, `ssl_verify=`) and `<prefix>.ssl_verify`: the words
/// [`parse_bool`] reads as true, or `false|0|off|no`, any letter case; anything else is `None`, so
/// that a typo is an error instead of silently turning TLS or verification off.
pub(crate) fn parse_switch(value: &str) -> Option<bool> {
    if parse_bool(value) {
        return Some(true);
    }
    ["false", "0", "off", "no"]
        .iter()
        .any(|f| value.eq_ignore_ascii_case(f))
        .then_some(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags() {
        for v in ["on", "ON", "true", "True", "1"] {
            assert_eq!(parse_flag(v), Ok(true), "{v}");
        }
        for v in ["off", "Off", "false", "FALSE", "0"] {
            assert_eq!(parse_flag(v), Ok(false), "{v}");
        }
        assert_eq!(parse_flag("yes"), Err(FLAG_ERROR.to_string()));
        assert_eq!(parse_flag(""), Err(FLAG_ERROR.to_string()));
    }

    #[test]
    fn lenient_bools() {
        for v in ["true", "TRUE", "1", "on", "Yes"] {
            assert!(parse_bool(v), "{v}");
        }
        for v in ["false", "0", "off", "no", "", "maybe"] {
            assert!(!parse_bool(v), "{v}");
        }
    }

    #[test]
    fn switches() {
        for v in ["true", "1", "on", "Yes"] {
            assert_eq!(parse_switch(v), Some(true), "{v}");
        }
        for v in ["false", "0", "OFF", "no"] {
            assert_eq!(parse_switch(v), Some(false), "{v}");
        }
        for v in ["", "maybe", "ture", "2"] {
            assert_eq!(parse_switch(v), None, "{v}");
        }
    }
}
