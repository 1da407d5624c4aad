//! A [`Snapshot`] as text: the Prometheus text exposition format (version 0.0.4) for the
//! `oauth2-metrics` handler, and the same series for mod_status's page, as `name: value` lines for
//! `?auto` and as an HTML block. Label values come from fixed lists, except key-set URLs, which
//! come from the configuration (or the discovery document it names) and are escaped.

use std::fmt::Write as _;

use super::Snapshot;
use super::layout::{self, CacheLayer, FetchKind, Histogram};
use super::reasons::REASONS;

/// The content type of [`prometheus`]'s output (and of mod_status's, which ignores it).
pub(crate) const CONTENT_TYPE: &std::ffi::CStr = c"text/plain; version=0.0.4; charset=utf-8";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Value {
    Count(u64),
    /// Nanoseconds, shown in seconds.
    Nanos(u64),
    Infinite,
}

impl std::fmt::Display for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Value::Count(n) => write!(f, "{n}"),
            Value::Nanos(ns) => {
                let (s, frac) = (ns / 1_000_000_000, ns % 1_000_000_000);
                if frac == 0 {
                    write!(f, "{s}")
                } else {
                    let digits = format!("{frac:09}");
                    write!(f, "{s}.{}", digits.trim_end_matches('0'))
                }
            }
            Value::Infinite => f.write_str("+Inf"),
        }
    }
}

struct Sample {
    /// `_bucket`, `_sum`, `_count` for histograms, else empty.
    suffix: &'static str,
    labels: Vec<(&'static str, String)>,
    value: Value,
}

struct Family {
    name: &'static str,
    help: &'static str,
    kind: Kind,
    samples: Vec<Sample>,
}

fn sample(labels: &[(&'static str, &str)], value: Value) -> Sample {
    Sample {
        suffix: "",
        labels: labels.iter().map(|(k, v)| (*k, v.to_string())).collect(),
        value,
    }
}

/// A histogram's samples: cumulative buckets, sum and count.
fn histogram(s: &Snapshot, h: Histogram, labels: &[(&'static str, &str)]) -> Vec<Sample> {
    let with = |extra: Option<String>| {
        let mut l: Vec<(&'static str, String)> =
            labels.iter().map(|(k, v)| (*k, v.to_string())).collect();
        if let Some(le) = extra {
            l.push(("le", le));
        }
        l
    };
    let mut out = Vec::with_capacity(h.bounds.len() + 3);
    let mut cumulative = 0u64;
    for (i, w) in h.buckets().enumerate() {
        cumulative = cumulative.wrapping_add(s.word(w));
        let le = match h.bounds.get(i) {
            Some(ns) => Value::Nanos(*ns).to_string(),
            None => Value::Infinite.to_string(),
        };
        out.push(Sample {
            suffix: "_bucket",
            labels: with(Some(le)),
            value: Value::Count(cumulative),
        });
    }
    out.push(Sample {
        suffix: "_sum",
        labels: with(None),
        value: Value::Nanos(s.word(h.sum())),
    });
    out.push(Sample {
        suffix: "_count",
        labels: with(None),
        value: Value::Count(cumulative),
    });
    out
}

fn families(s: &Snapshot, now: u64) -> Vec<Family> {
    let mut requests = vec![sample(
        &[("result", "accepted")],
        Value::Count(s.word(layout::ACCEPTED)),
    )];
    for (i, reason) in REASONS.iter().enumerate() {
        requests.push(sample(
            &[("result", "refused"), ("reason", reason)],
            Value::Count(s.word(layout::refused(i))),
        ));
    }
    let mut cache = Vec::new();
    for layer in CacheLayer::ALL {
        for (result, hit) in [("hit", true), ("miss", false)] {
            cache.push(sample(
                &[("layer", layer.label()), ("result", result)],
                Value::Count(s.word(layout::cache(layer, hit))),
            ));
        }
    }
    let mut fetches = Vec::new();
    let mut fetch_seconds = Vec::new();
    for kind in FetchKind::ALL {
        for (result, ok) in [("ok", true), ("error", false)] {
            fetches.push(sample(
                &[("kind", kind.label()), ("result", result)],
                Value::Count(s.word(layout::fetches(kind, ok))),
            ));
        }
        fetch_seconds.extend(histogram(
            s,
            layout::fetch_seconds(kind),
            &[("kind", kind.label())],
        ));
    }
    let ages = s
        .key_sets
        .iter()
        .map(|(url, obtained)| {
            let age = match obtained {
                Some(t) => Value::Count(now.saturating_sub(*t)),
                None => Value::Infinite,
            };
            sample(&[("url", url)], age)
        })
        .collect();
    vec![
        Family {
            name: "oauth2_requests_total",
            help: "Requests decided by mod_oauth2: accepted, or refused with the reason.",
            kind: Kind::Counter,
            samples: requests,
        },
        Family {
            name: "oauth2_cache_total",
            help: "Lookups of token results per cache layer (connection memo, this process, shared cache).",
            kind: Kind::Counter,
            samples: cache,
        },
        Family {
            name: "oauth2_remote_fetches_total",
            help: "Requests to authorization servers (key sets, discovery, introspection), by whether a usable answer came back.",
            kind: Kind::Counter,
            samples: fetches,
        },
        Family {
            name: "oauth2_remote_fetch_seconds",
            help: "Time taken by requests to authorization servers.",
            kind: Kind::Histogram,
            samples: fetch_seconds,
        },
        Family {
            name: "oauth2_verify_seconds",
            help: "Time spent in mod_oauth2's authentication hook per decided request.",
            kind: Kind::Histogram,
            samples: histogram(s, layout::VERIFY_SECONDS, &[]),
        },
        Family {
            name: "oauth2_key_set_age_seconds",
            help: "Seconds since each key set of the configuration was last obtained (+Inf: not yet).",
            kind: Kind::Gauge,
            samples: ages,
        },
        Family {
            name: "oauth2_dpop_replays_total",
            help: "DPoP proofs refused because their jti was seen before.",
            kind: Kind::Counter,
            samples: vec![sample(&[], Value::Count(s.word(layout::DPOP_REPLAYS)))],
        },
    ]
}

/// A label value as the exposition format writes it: `\`, `"` and line feed escaped.
pub(crate) fn escape_label_value(v: &str) -> String {
    let mut o = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => o.push_str("\\\\"),
            '"' => o.push_str("\\\""),
            '\n' => o.push_str("\\n"),
            c => o.push(c),
        }
    }
    o
}

/// `name{label="value",...}`.
fn series(f: &Family, s: &Sample) -> String {
    let mut o = format!("{}{}", f.name, s.suffix);
    if !s.labels.is_empty() {
        o.push('{');
        for (i, (k, v)) in s.labels.iter().enumerate() {
            if i > 0 {
                o.push(',');
            }
            let _ = write!(o, "{k}=\"{}\"", escape_label_value(v));
        }
        o.push('}');
    }
    o
}

/// The Prometheus text exposition format; `now` is Unix seconds (for key-set ages).
pub(crate) fn prometheus(s: &Snapshot, now: u64) -> String {
    let mut o = String::with_capacity(16 * 1024);
    for f in families(s, now) {
        // HELP texts are fixed and contain neither `\` nor line feeds.
        let _ = writeln!(o, "# HELP {} {}", f.name, f.help);
        let _ = writeln!(o, "# TYPE {} {}", f.name, f.kind.name());
        for sample in &f.samples {
            let _ = writeln!(o, "{} {}", series(&f, sample), sample.value);
        }
    }
    o
}

/// The series of mod_status's page: every one but histogram buckets (their sums and counts stay).
fn status_lines(s: &Snapshot, now: u64) -> Vec<(String, Value)> {
    families(s, now)
        .iter()
        .flat_map(|f| {
            f.samples
                .iter()
                .filter(|sample| sample.suffix != "_bucket")
                .map(move |sample| (series(f, sample), sample.value))
        })
        .collect()
}

/// mod_status's `?auto` form: one `series: value` line each.
pub(crate) fn status_auto(s: &Snapshot, now: u64) -> String {
    let mut o = String::new();
    for (name, value) in status_lines(s, now) {
        let _ = writeln!(o, "{name}: {value}");
    }
    o
}

fn html_escape(v: &str) -> String {
    let mut o = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// mod_status's HTML page: a section with the same lines.
pub(crate) fn status_html(s: &Snapshot, now: u64) -> String {
    let mut o = String::from(
        "<hr />\n<h2>mod_oauth2</h2>\n<p>Prometheus format: <code>SetHandler oauth2-metrics</code></p>\n<pre>\n",
    );
    for (name, value) in status_lines(s, now) {
        let _ = writeln!(o, "{} {value}", html_escape(&name));
    }
    o.push_str("</pre>\n");
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::reasons;

    fn snapshot() -> Snapshot {
        let mut words = vec![0; layout::WORDS];
        words[layout::ACCEPTED] = 7;
        words[layout::refused(reasons::index("expired"))] = 2;
        words[layout::cache(CacheLayer::Process, true)] = 5;
        words[layout::fetches(FetchKind::AwsAlb, false)] = 1;
        let f = layout::fetch_seconds(FetchKind::AwsAlb);
        words[f.bucket(30_000_000)] = 1;
        words[f.sum()] = 30_000_000;
        let v = layout::VERIFY_SECONDS;
        words[v.bucket(12_000)] = 6; // le=0.000025
        words[v.bucket(20_000_000_000)] = 3; // +Inf
        words[v.sum()] = 60_000_123_000;
        words[layout::DPOP_REPLAYS] = 4;
        Snapshot {
            words,
            key_sets: vec![
                ("https://as.example/jwks?a=\"b\"\\c\nd".into(), Some(900)),
                ("https://as.example/new".into(), None),
            ],
        }
    }

    fn lines(text: &str) -> Vec<&str> {
        text.lines().collect()
    }

    #[test]
    fn prometheus_text_has_each_family_once_with_exact_series() {
        let text = prometheus(&snapshot(), 1_000);
        let l = lines(&text);
        for family in [
            "oauth2_requests_total counter",
            "oauth2_cache_total counter",
            "oauth2_remote_fetches_total counter",
            "oauth2_remote_fetch_seconds histogram",
            "oauth2_verify_seconds histogram",
            "oauth2_key_set_age_seconds gauge",
            "oauth2_dpop_replays_total counter",
        ] {
            let n = l
                .iter()
                .filter(|x| **x == format!("# TYPE {family}"))
                .count();
            assert_eq!(n, 1, "{family}");
        }
        for expected in [
            r#"oauth2_requests_total{result="accepted"} 7"#,
            r#"oauth2_requests_total{result="refused",reason="expired"} 2"#,
            r#"oauth2_requests_total{result="refused",reason="no_token"} 0"#,
            r#"oauth2_cache_total{layer="process",result="hit"} 5"#,
            r#"oauth2_cache_total{layer="connection",result="miss"} 0"#,
            r#"oauth2_remote_fetches_total{kind="aws_alb",result="error"} 1"#,
            r#"oauth2_remote_fetch_seconds_bucket{kind="aws_alb",le="0.025"} 0"#,
            r#"oauth2_remote_fetch_seconds_bucket{kind="aws_alb",le="0.05"} 1"#,
            r#"oauth2_remote_fetch_seconds_bucket{kind="aws_alb",le="+Inf"} 1"#,
            r#"oauth2_remote_fetch_seconds_sum{kind="aws_alb"} 0.03"#,
            r#"oauth2_remote_fetch_seconds_count{kind="aws_alb"} 1"#,
            r#"oauth2_verify_seconds_bucket{le="0.00001"} 0"#,
            r#"oauth2_verify_seconds_bucket{le="0.000025"} 6"#,
            r#"oauth2_verify_seconds_bucket{le="10"} 6"#,
            r#"oauth2_verify_seconds_bucket{le="+Inf"} 9"#,
            r#"oauth2_verify_seconds_sum 60.000123"#,
            r#"oauth2_verify_seconds_count 9"#,
            r#"oauth2_key_set_age_seconds{url="https://as.example/jwks?a=\"b\"\\c\nd"} 100"#,
            r#"oauth2_key_set_age_seconds{url="https://as.example/new"} +Inf"#,
            "oauth2_dpop_replays_total 4",
        ] {
            assert!(l.contains(&expected), "missing {expected}\n{text}");
        }
        assert_eq!(
            l.iter()
                .filter(|x| x.starts_with("oauth2_requests_total{"))
                .count(),
            1 + REASONS.len()
        );
        assert!(text.ends_with('\n'));
    }

    #[test]
    fn values_in_seconds_are_exact_decimals() {
        assert_eq!(Value::Nanos(0).to_string(), "0");
        assert_eq!(Value::Nanos(1).to_string(), "0.000000001");
        assert_eq!(Value::Nanos(10_000).to_string(), "0.00001");
        assert_eq!(Value::Nanos(2_500_000_000).to_string(), "2.5");
        assert_eq!(Value::Nanos(15_000_000_000).to_string(), "15");
        assert_eq!(Value::Infinite.to_string(), "+Inf");
    }

    #[test]
    fn label_values_escape_backslash_quote_and_line_feed_only() {
        assert_eq!(escape_label_value(r#"a\b"c"#), r#"a\\b\"c"#);
        assert_eq!(escape_label_value("a\nb"), r"a\nb");
        assert_eq!(escape_label_value("é{}=,"), "é{}=,");
    }

    #[test]
    fn status_forms_leave_out_buckets_and_escape_html() {
        let s = snapshot();
        let auto = status_auto(&s, 1_000);
        assert!(auto.contains("oauth2_requests_total{result=\"accepted\"}: 7\n"));
        assert!(auto.contains("oauth2_verify_seconds_count: 9\n"));
        assert!(auto.contains("oauth2_verify_seconds_sum: 60.000123\n"));
        assert!(!auto.contains("_bucket"));
        assert!(auto.lines().all(|l| l.starts_with("oauth2_")));
        let html = status_html(&s, 1_000);
        assert!(html.contains("oauth2_requests_total{result=&quot;accepted&quot;} 7\n"));
        assert!(html.contains(r"url=&quot;https://as.example/jwks?a=\&quot;b\&quot;\\c\nd&quot;"));
        assert!(!html.contains("_bucket"));
    }
}
