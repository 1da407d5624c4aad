//! A strict reader of the Prometheus text exposition format (version 0.0.4), written from the
//! format's description and independent of the module: every line is a `# HELP`, `# TYPE`, other
//! comment or sample line; names and label names have the allowed characters; label values use
//! only the `\\`, `\"` and `\n` escapes; values are Go-style floats (`+Inf`, `-Inf`, `NaN`);
//! a family has one TYPE line, before its samples, and its samples are contiguous; no series
//! twice; histograms have cumulative buckets ending in `le="+Inf"` equal to `_count`, and a `_sum`.

use std::collections::{BTreeMap, BTreeSet};

/// Label names and values, in order.
pub(crate) type Labels = Vec<(String, String)>;

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PromSample {
    pub(crate) name: String,
    pub(crate) labels: Labels,
    pub(crate) value: f64,
}

impl PromSample {
    pub(crate) fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Debug, Clone, Default)]
pub(crate) struct Exposition {
    pub(crate) samples: Vec<PromSample>,
    /// Family name -> type.
    pub(crate) types: BTreeMap<String, String>,
}

impl Exposition {
    /// The value of the series with exactly these labels (any order).
    pub(crate) fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.samples
            .iter()
            .find(|s| {
                s.name == name
                    && s.labels.len() == labels.len()
                    && labels.iter().all(|(k, v)| s.label(k) == Some(v))
            })
            .map(|s| s.value)
    }

    /// As [`Exposition::value`], 0 when absent is a failure: panics with the text's series names.
    pub(crate) fn get(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.value(name, labels).unwrap_or_else(|| {
            panic!(
                "no series {name}{labels:?}; series of that name: {:?}",
                self.samples
                    .iter()
                    .filter(|s| s.name == name)
                    .map(|s| &s.labels)
                    .collect::<Vec<_>>()
            )
        })
    }

    /// The sum over the series of `name` that have (at least) these labels.
    pub(crate) fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.samples
            .iter()
            .filter(|s| s.name == name && labels.iter().all(|(k, v)| s.label(k) == Some(v)))
            .map(|s| s.value)
            .sum()
    }

    /// Every series of `name`.
    pub(crate) fn series(&self, name: &str) -> Vec<&PromSample> {
        self.samples.iter().filter(|s| s.name == name).collect()
    }
}

fn is_name(s: &str, colon: bool) -> bool {
    let mut bytes = s.bytes();
    let first_ok = |b: u8| b.is_ascii_alphabetic() || b == b'_' || (colon && b == b':');
    matches!(bytes.next(), Some(b) if first_ok(b))
        && bytes.all(|b| first_ok(b) || b.is_ascii_digit())
}

/// A Go `strconv.ParseFloat` value as the format allows it.
fn parse_value(s: &str) -> Result<f64, String> {
    match s {
        "+Inf" => return Ok(f64::INFINITY),
        "-Inf" => return Ok(f64::NEG_INFINITY),
        "NaN" => return Ok(f64::NAN),
        _ => {}
    }
    let body = s.strip_prefix(['-', '+']).unwrap_or(s);
    let (mantissa, exponent) = match body.split_once(['e', 'E']) {
        Some((m, e)) => (m, Some(e)),
        None => (body, None),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = |d: &str| d.bytes().all(|b| b.is_ascii_digit());
    let ok = (!int.is_empty() || !frac.is_empty())
        && digits(int)
        && digits(frac)
        && exponent.is_none_or(|e| {
            let e = e.strip_prefix(['-', '+']).unwrap_or(e);
            !e.is_empty() && digits(e)
        });
    if !ok {
        return Err(format!("not a float: {s:?}"));
    }
    s.parse::<f64>().map_err(|e| format!("{s:?}: {e}"))
}

/// `{name="value",...}` at the start of `s`; returns the labels and the rest after `}`.
fn parse_labels(s: &str) -> Result<(Labels, &str), String> {
    let mut labels = Vec::new();
    let mut rest = s.strip_prefix('{').ok_or("labels must start with {")?;
    loop {
        if let Some(after) = rest.strip_prefix('}') {
            return Ok((labels, after));
        }
        let eq = rest.find('=').ok_or("label without =")?;
        let name = &rest[..eq];
        if !is_name(name, false) {
            return Err(format!("bad label name {name:?}"));
        }
        let mut chars = rest[eq + 1..].char_indices();
        if chars.next().map(|(_, c)| c) != Some('"') {
            return Err(format!("label {name}: value not quoted"));
        }
        let mut value = String::new();
        let mut end = None;
        while let Some((i, c)) = chars.next() {
            match c {
                '"' => {
                    end = Some(eq + 1 + i + 1);
                    break;
                }
                '\\' => match chars.next().map(|(_, c)| c) {
                    Some('\\') => value.push('\\'),
                    Some('"') => value.push('"'),
                    Some('n') => value.push('\n'),
                    other => return Err(format!("label {name}: bad escape \\{other:?}")),
                },
                '\n' => return Err(format!("label {name}: raw line feed")),
                c => value.push(c),
            }
        }
        let end = end.ok_or_else(|| format!("label {name}: unterminated value"))?;
        if labels.iter().any(|(n, _)| n == name) {
            return Err(format!("label {name} twice"));
        }
        labels.push((name.to_string(), value));
        rest = &rest[end..];
        if let Some(after) = rest.strip_prefix(',') {
            rest = after;
        } else if !rest.starts_with('}') {
            return Err(format!("after label {name}: expected , or }}"));
        }
    }
}

/// The family a sample belongs to, given the TYPE lines so far.
fn family_of(name: &str, types: &BTreeMap<String, String>) -> String {
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = name.strip_suffix(suffix) {
            if matches!(
                types.get(base).map(String::as_str),
                Some("histogram" | "summary")
            ) {
                return base.to_string();
            }
        }
    }
    name.to_string()
}

pub(crate) fn parse_exposition(text: &str) -> Result<Exposition, String> {
    if !text.is_empty() && !text.ends_with('\n') {
        return Err("the text does not end with a line feed".into());
    }
    let mut out = Exposition::default();
    let mut helped = BTreeSet::new();
    let mut finished: BTreeSet<String> = BTreeSet::new();
    let mut current: Option<String> = None;
    let mut seen_series = BTreeSet::new();
    for (n, line) in text.lines().enumerate() {
        let at = |e: String| format!("line {}: {e}: {line:?}", n + 1);
        if line.is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            let words: Vec<&str> = comment.trim_start().splitn(3, ' ').collect();
            match words.as_slice() {
                ["HELP", name, help] => {
                    if !is_name(name, true) {
                        return Err(at(format!("bad metric name {name:?}")));
                    }
                    if !helped.insert(name.to_string()) {
                        return Err(at("second HELP".into()));
                    }
                    let mut chars = help.chars();
                    while let Some(c) = chars.next() {
                        if c == '\\' && !matches!(chars.next(), Some('\\' | 'n')) {
                            return Err(at("bad escape in HELP".into()));
                        }
                    }
                }
                ["HELP", name] if is_name(name, true) => {}
                ["TYPE", name, kind] => {
                    if !is_name(name, true) {
                        return Err(at(format!("bad metric name {name:?}")));
                    }
                    if !["counter", "gauge", "histogram", "summary", "untyped"].contains(kind) {
                        return Err(at(format!("unknown type {kind:?}")));
                    }
                    if out.types.contains_key(*name)
                        || out
                            .samples
                            .iter()
                            .any(|s| family_of(&s.name, &out.types) == *name)
                    {
                        return Err(at("TYPE twice, or after a sample of its family".into()));
                    }
                    out.types.insert(name.to_string(), kind.to_string());
                }
                [kw, ..] if *kw == "HELP" || *kw == "TYPE" => {
                    return Err(at("malformed HELP or TYPE line".into()));
                }
                _ => {} // any other comment
            }
            continue;
        }
        let name_end = line.find(['{', ' ']).ok_or_else(|| at("no value".into()))?;
        let name = &line[..name_end];
        if !is_name(name, true) {
            return Err(at(format!("bad metric name {name:?}")));
        }
        let (labels, rest) = if line[name_end..].starts_with('{') {
            parse_labels(&line[name_end..]).map_err(at)?
        } else {
            (Vec::new(), &line[name_end..])
        };
        let rest = rest
            .strip_prefix(' ')
            .ok_or_else(|| at("no space before the value".into()))?;
        let mut fields = rest.split(' ');
        let value = parse_value(fields.next().unwrap_or("")).map_err(at)?;
        if let Some(ts) = fields.next() {
            ts.parse::<i64>()
                .map_err(|_| at(format!("bad timestamp {ts:?}")))?;
        }
        if fields.next().is_some() {
            return Err(at("trailing fields".into()));
        }
        let family = family_of(name, &out.types);
        if current.as_deref() != Some(family.as_str()) {
            if finished.contains(&family) {
                return Err(at(format!("samples of {family} are not contiguous")));
            }
            if let Some(prev) = current.take() {
                finished.insert(prev);
            }
            current = Some(family.clone());
        }
        let kind = out.types.get(&family).map(String::as_str);
        if kind == Some("counter") && (value.is_nan() || value < 0.0) {
            return Err(at("a counter below 0".into()));
        }
        let mut key_labels = labels.clone();
        key_labels.sort();
        if !seen_series.insert((name.to_string(), key_labels)) {
            return Err(at("the same series twice".into()));
        }
        out.samples.push(PromSample {
            name: name.to_string(),
            labels,
            value,
        });
    }
    check_histograms(&out)?;
    Ok(out)
}

/// Each histogram series (labels but `le`): buckets with increasing `le` and non-decreasing
/// counts, the last `+Inf`, equal to `_count`; a `_sum`.
fn check_histograms(e: &Exposition) -> Result<(), String> {
    for (family, kind) in &e.types {
        if kind != "histogram" {
            continue;
        }
        let without_le = |s: &PromSample| -> Labels {
            let mut l: Vec<_> = s
                .labels
                .iter()
                .filter(|(n, _)| n != "le")
                .cloned()
                .collect();
            l.sort();
            l
        };
        // Labels but `le` -> (le, count) of each bucket.
        let mut groups: BTreeMap<Labels, Vec<(f64, f64)>> = BTreeMap::new();
        for s in e.series(&format!("{family}_bucket")) {
            let le = s
                .label("le")
                .ok_or_else(|| format!("{family}_bucket without le"))?;
            let le = parse_value(le).map_err(|err| format!("{family}: le {err}"))?;
            groups.entry(without_le(s)).or_default().push((le, s.value));
        }
        if groups.is_empty() {
            return Err(format!("histogram {family} has no buckets"));
        }
        for (labels, buckets) in groups {
            let ordered = buckets
                .windows(2)
                .all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1);
            if !ordered {
                return Err(format!(
                    "{family}{labels:?}: buckets not cumulative: {buckets:?}"
                ));
            }
            let (last_le, last) = *buckets.last().unwrap();
            if last_le != f64::INFINITY {
                return Err(format!("{family}{labels:?}: no +Inf bucket"));
            }
            let find = |suffix: &str| {
                e.series(&format!("{family}{suffix}"))
                    .into_iter()
                    .find(|s| without_le(s) == labels)
                    .map(|s| s.value)
            };
            if find("_count") != Some(last) {
                return Err(format!("{family}{labels:?}: _count is not the +Inf bucket"));
            }
            if find("_sum").is_none() {
                return Err(format!("{family}{labels:?}: no _sum"));
            }
        }
    }
    Ok(())
}
