//! AWS Application Load Balancer tokens (`OAuth2TokenVerify aws_alb <ALB ARN>`): the ALB signs
//! the `x-amzn-oidc-data` header it adds with an ES256 key whose public half it publishes as PEM
//! at `<key endpoint>/<kid>`. This module reads the ARN, builds key URLs from untrusted `kid`s
//! without letting them change the path, and keeps one fetched key per `kid`, each fetched,
//! cached and refreshed like a `jwks_uri` key set ([`RemoteKeys`]).
//!
//! The `kid` comes from a token nobody has verified yet, so it is bounded: at most
//! [`NEW_KIDS_PER_INTERVAL`] unseen `kid`s are fetched per `refresh_interval` (at least
//! [`MIN_KID_INTERVAL`], whatever is configured), at most [`MAX_KIDS`] are remembered, and a `kid`
//! the endpoint does not know is not asked for again within that interval. The key-set age metric
//! shows the key endpoint once, not a URL per `kid`.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::endpoint;
use super::fetch::HttpOptions;
use super::keys::{Format, RemoteKeys};
use crate::cache::Cache;
use crate::jose::Key;
use crate::jose::alg::Alg;
use crate::jose::error::sanitize;
use crate::jose::jws::Header;
use crate::metrics;

/// Longest `kid` used in a key URL (ALB's are UUIDs, 36 characters).
const MAX_KID_LEN: usize = 128;
/// `kid`s remembered per verifier; one that never got a key goes first, then the least recently
/// used.
const MAX_KIDS: usize = 32;
/// Unseen `kid`s fetched per `refresh_interval`: a load balancer rotates keys rarely, while
/// forged tokens can name a new `kid` every time.
const NEW_KIDS_PER_INTERVAL: u32 = 4;
/// The shortest interval for [`NEW_KIDS_PER_INTERVAL`] and for asking again for a `kid`:
/// `aws_alb.refresh_interval=0` must not let every forged token cause a fetch.
const MIN_KID_INTERVAL: Duration = Duration::from_secs(10);

/// Why an ALB token was not verified (besides malformed tokens, signatures and claims).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AlbError {
    /// Not ES256, the only algorithm an ALB signs with.
    WrongAlg(Alg),
    /// The JWS header has no `signer` string.
    NoSigner,
    /// `signer` names another load balancer (sanitised).
    WrongSigner(String),
    /// No `kid` string, an empty one or one over [`MAX_KID_LEN`] bytes.
    BadKid,
    /// The key endpoint has no key for this `kid` (it answered 4xx; sanitised).
    UnknownKid(String),
    /// Too many unseen `kid`s within `refresh_interval`: this one was not fetched (sanitised).
    KidsThrottled(String),
}

impl AlbError {
    /// A short stable name for metrics.
    pub(crate) fn label(&self) -> &'static str {
        match self {
            AlbError::WrongAlg(_) => "wrong_alg",
            AlbError::NoSigner => "no_signer",
            AlbError::WrongSigner(_) => "wrong_signer",
            AlbError::BadKid => "bad_kid",
            AlbError::UnknownKid(_) => "unknown_kid",
            AlbError::KidsThrottled(_) => "kid_throttled",
        }
    }
}

impl fmt::Display for AlbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AlbError::WrongAlg(alg) => write!(f, "alg {alg} is not ES256, the ALB algorithm"),
            AlbError::NoSigner => f.write_str("the JWS header has no \"signer\" string"),
            AlbError::WrongSigner(signer) => {
                write!(f, "signer \"{signer}\" is not the configured ALB ARN")
            }
            AlbError::BadKid => write!(
                f,
                "the JWS header has no usable \"kid\" (a string of 1 to {MAX_KID_LEN} bytes)"
            ),
            AlbError::UnknownKid(kid) => write!(f, "the key endpoint has no key for kid \"{kid}\""),
            AlbError::KidsThrottled(kid) => write!(
                f,
                "kid \"{kid}\" not fetched: more than {NEW_KIDS_PER_INTERVAL} new kids within the refresh interval"
            ),
        }
    }
}

/// Why no key could be had for a `kid`.
#[derive(Debug)]
pub(crate) enum KeyFailure {
    Alb(AlbError),
    /// The endpoint could not be reached or failed (the detail for the log).
    Unavailable(String),
}

/// An ALB's ARN: `arn:<partition>:elasticloadbalancing:<region>:<account>:loadbalancer/app/<name>/<id>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Arn {
    text: String,
    region: String,
}

impl Arn {
    /// Checked at `apache2 -t`; the error says what to write.
    pub(crate) fn parse(text: &str) -> Result<Arn, String> {
        let bad = |why: &str| {
            format!(
                "OAuth2TokenVerify aws_alb: \"{}\" is not an Application Load Balancer ARN ({why}); write the \
                 ARN of the load balancer, e.g. arn:aws:elasticloadbalancing:eu-west-1:123456789012:loadbalancer/app/my-alb/50dc6c495c0c9188",
                sanitize(text)
            )
        };
        let parts: Vec<&str> = text.splitn(6, ':').collect();
        let [arn, partition, service, region, account, resource] = parts[..] else {
            return Err(bad("it needs six parts separated by ':'"));
        };
        if arn != "arn" || !is_partition(partition) {
            return Err(bad(
                "it must start with arn:aws:, arn:aws-cn: or arn:aws-us-gov:",
            ));
        }
        if service != "elasticloadbalancing" {
            return Err(bad("the service must be elasticloadbalancing"));
        }
        if !is_region(region) {
            return Err(bad("the region must look like eu-west-1"));
        }
        if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad("the account must be 12 digits"));
        }
        let app = resource.strip_prefix("loadbalancer/app/").ok_or_else(|| {
            bad("the resource must be loadbalancer/app/<name>/<id>: only Application Load Balancers sign tokens")
        })?;
        let (name, id) = app
            .split_once('/')
            .ok_or_else(|| bad("the resource must be loadbalancer/app/<name>/<id>"))?;
        let name_ok = (1..=32).contains(&name.len())
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
        let id_ok = (1..=32).contains(&id.len())
            && id
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !name_ok || !id_ok {
            return Err(bad(
                "the name must be 1 to 32 letters, digits or '-', the id lower-case hexadecimal",
            ));
        }
        Ok(Arn {
            text: text.to_string(),
            region: region.to_string(),
        })
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.text
    }

    /// Where AWS publishes the keys of this region's load balancers (the C module's default;
    /// other partitions need `alb_base_url`).
    pub(crate) fn default_key_endpoint(&self) -> String {
        format!(
            "https://public-keys.auth.elb.{}.amazonaws.com/",
            self.region
        )
    }
}

fn is_partition(p: &str) -> bool {
    matches!(p, "aws" | "aws-cn" | "aws-us-gov")
}

/// `eu-west-1`, `us-gov-west-1`, `ap-southeast-2`: lower-case words, then a number.
fn is_region(r: &str) -> bool {
    let mut words = r.split('-').collect::<Vec<_>>();
    let Some(number) = words.pop() else {
        return false;
    };
    words.len() >= 2
        && !number.is_empty()
        && number.len() <= 2
        && number.bytes().all(|b| b.is_ascii_digit())
        && words
            .iter()
            .all(|w| !w.is_empty() && w.bytes().all(|b| b.is_ascii_lowercase()))
}

/// `alb_base_url`: an http(s) URL without query or fragment; a missing final `/` is added (the C
/// module appends the `kid` as it is, so its configurations end with `/`).
pub(crate) fn key_endpoint(value: &str) -> Result<String, String> {
    let bad = |why: &str| format!("alb_base_url={}: {why}", sanitize(value));
    if !endpoint::is_http(value) {
        return Err(bad(
            "must be an http:// or https:// URL, e.g. https://public-keys.auth.elb.eu-west-1.amazonaws.com/",
        ));
    }
    if endpoint::has_space_or_control(value) || value.contains(['?', '#']) {
        return Err(bad(
            "must not contain spaces, control characters, '?' or '#': the kid is appended to it",
        ));
    }
    Ok(if value.ends_with('/') {
        value.to_string()
    } else {
        format!("{value}/")
    })
}

/// `endpoint` followed by `kid` as one path segment: every byte but ALPHA, DIGIT, `-`, `_` and
/// `~` is percent-encoded, `.` included, so no `kid` can add a segment, a query or a fragment,
/// nor be a `.`/`..` segment that a client would resolve (RFC 3986 sections 3.3 and 5.2.4).
pub(crate) fn key_url(endpoint: &str, kid: &str) -> String {
    let mut url = String::with_capacity(endpoint.len() + 3 * kid.len());
    url.push_str(endpoint);
    for b in kid.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'~') {
            url.push(char::from(b));
        } else {
            url.push_str(&format!("%{b:02X}"));
        }
    }
    url
}

/// How the keys of one `aws_alb` verifier are fetched.
pub(crate) struct KeySettings {
    pub(crate) endpoint: String,
    pub(crate) http: HttpOptions,
    pub(crate) ttl: Duration,
    pub(crate) refresh_interval: Duration,
    pub(crate) shared: Option<Arc<Cache>>,
}

/// The ARN tokens must name, and their keys by `kid`.
pub(crate) struct AlbKeys {
    arn: Arn,
    settings: KeySettings,
    kids: Mutex<KidTable>,
}

#[derive(Default)]
struct KidTable {
    entries: Vec<KidEntry>,
    /// The window in which [`NEW_KIDS_PER_INTERVAL`] unseen `kid`s may be fetched.
    window_start: Option<Instant>,
    new_in_window: u32,
}

struct KidEntry {
    kid: String,
    keys: Arc<RemoteKeys>,
    used: Instant,
}

impl AlbKeys {
    pub(crate) fn new(arn: Arn, settings: KeySettings) -> AlbKeys {
        // The age of the endpoint's keys is shown under the endpoint: the most recent fetch of
        // any `kid` (see `RemoteKeys::shown_as`).
        metrics::key_set_used(&settings.endpoint);
        AlbKeys {
            arn,
            settings,
            kids: Mutex::default(),
        }
    }

    /// The header checks that come before any key is fetched: ES256, `signer` equal to the
    /// configured ARN, a usable `kid` (returned).
    pub(crate) fn check_header<'h>(&self, header: &'h Header) -> Result<&'h str, AlbError> {
        if header.alg != Alg::ES256 {
            return Err(AlbError::WrongAlg(header.alg));
        }
        match header.raw.get("signer") {
            Some(serde_json::Value::String(signer)) if signer == self.arn.as_str() => {}
            Some(serde_json::Value::String(signer)) => {
                return Err(AlbError::WrongSigner(sanitize(signer)));
            }
            _ => return Err(AlbError::NoSigner),
        }
        match header.kid.as_deref() {
            Some(kid) if !kid.is_empty() && kid.len() <= MAX_KID_LEN => Ok(kid),
            _ => Err(AlbError::BadKid),
        }
    }

    /// The key published for `kid`: fetched on first use (within the budget for unseen `kid`s),
    /// then cached and refreshed as a `jwks_uri` key set is.
    pub(crate) fn keys_for(&self, kid: &str) -> Result<Arc<Vec<Key>>, KeyFailure> {
        let remote = self.remote_for(kid)?;
        remote.keys().map_err(|e| {
            if remote.refused_by_server() {
                KeyFailure::Alb(AlbError::UnknownKid(sanitize(kid)))
            } else {
                KeyFailure::Unavailable(e)
            }
        })
    }

    fn remote_for(&self, kid: &str) -> Result<Arc<RemoteKeys>, KeyFailure> {
        let mut table = self.kids.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if let Some(entry) = table.entries.iter_mut().find(|e| e.kid == kid) {
            entry.used = now;
            return Ok(entry.keys.clone());
        }
        let interval = self.kid_interval();
        if table
            .window_start
            .is_none_or(|start| now.duration_since(start) >= interval)
        {
            table.window_start = Some(now);
            table.new_in_window = 0;
        }
        if table.new_in_window >= NEW_KIDS_PER_INTERVAL {
            return Err(KeyFailure::Alb(AlbError::KidsThrottled(sanitize(kid))));
        }
        table.new_in_window += 1;
        if table.entries.len() >= MAX_KIDS {
            // A kid that never got a key goes first (forged tokens name made-up kids, which the
            // key endpoint refuses), then the least recently used: a flood of made-up kids cannot
            // push the load balancer's real key out and make it compete for the budget again.
            let victim = (0..table.entries.len())
                .min_by_key(|&i| (table.entries[i].keys.has_keys(), table.entries[i].used));
            if let Some(victim) = victim {
                table.entries.swap_remove(victim);
            }
        }
        let s = &self.settings;
        let keys = Arc::new(RemoteKeys::shown_as(
            s.endpoint.clone(),
            key_url(&s.endpoint, kid),
            Format::Pem,
            s.http.clone(),
            s.ttl,
            interval,
            s.shared.clone(),
        ));
        table.entries.push(KidEntry {
            kid: kid.to_string(),
            keys: keys.clone(),
            used: now,
        });
        Ok(keys)
    }

    /// `refresh_interval`, but at least [`MIN_KID_INTERVAL`]: the pace of fetches that unverified
    /// tokens can cause.
    fn kid_interval(&self) -> Duration {
        self.settings.refresh_interval.max(MIN_KID_INTERVAL)
    }

    /// `kid`s remembered (tests).
    #[cfg(test)]
    fn remembered(&self) -> Vec<String> {
        let table = self.kids.lock().unwrap_or_else(|e| e.into_inner());
        table.entries.iter().map(|e| e.kid.clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARN: &str = "arn:aws:elasticloadbalancing:eu-central-1:006175940494:loadbalancer/app/balancer1/181758ae2b0c3ede";

    #[test]
    fn arns_of_application_load_balancers_are_accepted() {
        let arn = Arn::parse(ARN).unwrap();
        assert_eq!(
            arn.default_key_endpoint(),
            "https://public-keys.auth.elb.eu-central-1.amazonaws.com/"
        );
        for ok in [
            "arn:aws-us-gov:elasticloadbalancing:us-gov-west-1:123456789012:loadbalancer/app/a/50dc6c495c0c9188",
            "arn:aws-cn:elasticloadbalancing:cn-north-1:123456789012:loadbalancer/app/my-alb-1/0123abcd",
        ] {
            assert!(Arn::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn other_strings_are_refused_with_advice() {
        for bad in [
            "",
            "my-alb",
            "arn:aws:elasticloadbalancing:eu-central-1:006175940494",
            "arn:aws:ec2:eu-central-1:006175940494:loadbalancer/app/b/181758ae2b0c3ede",
            "arn:gcp:elasticloadbalancing:eu-central-1:006175940494:loadbalancer/app/b/181758ae2b0c3ede",
            "arn:aws:elasticloadbalancing:EU-central-1:006175940494:loadbalancer/app/b/181758ae2b0c3ede",
            "arn:aws:elasticloadbalancing:eu-central-1.evil.com/x:006175940494:loadbalancer/app/b/1",
            "arn:aws:elasticloadbalancing:eu-central-1:6175940494:loadbalancer/app/b/181758ae2b0c3ede",
            "arn:aws:elasticloadbalancing:eu-central-1:006175940494:loadbalancer/net/b/181758ae2b0c3ede",
            "arn:aws:elasticloadbalancing:eu-central-1:006175940494:loadbalancer/app/b/XYZ",
            "arn:aws:elasticloadbalancing:eu-central-1:006175940494:loadbalancer/app/b/1/2",
            "arn:aws:elasticloadbalancing:eu-central-1:006175940494:loadbalancer/app/b_c/1",
        ] {
            let e = Arn::parse(bad).unwrap_err();
            assert!(
                e.contains("e.g. arn:aws:elasticloadbalancing:"),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn a_kid_stays_one_path_segment() {
        let base = "https://keys.example/alb/";
        let cases = [
            (
                "09d4fa17-223e-40fa-b280-894e843d701f",
                "09d4fa17-223e-40fa-b280-894e843d701f",
            ),
            ("../x", "%2E%2E%2Fx"),
            ("..", "%2E%2E"),
            (".", "%2E"),
            ("a/b", "a%2Fb"),
            ("%2f", "%252f"),
            ("k?x=1#f", "k%3Fx%3D1%23f"),
            ("a b\r\n", "a%20b%0D%0A"),
            ("\u{e9}", "%C3%A9"),
        ];
        for (kid, segment) in cases {
            assert_eq!(key_url(base, kid), format!("{base}{segment}"), "{kid:?}");
        }
    }

    #[test]
    fn the_key_endpoint_gets_its_final_slash() {
        assert_eq!(
            key_endpoint("http://127.0.0.1:8080/keys").unwrap(),
            "http://127.0.0.1:8080/keys/"
        );
        assert_eq!(
            key_endpoint("https://k.example/").unwrap(),
            "https://k.example/"
        );
        for bad in [
            "ftp://k.example/",
            "https://",
            "k.example",
            "https://k/?a=",
            "https://k/#",
            "https://k/ x",
        ] {
            assert!(
                key_endpoint(bad).unwrap_err().starts_with("alb_base_url="),
                "{bad}"
            );
        }
    }

    fn alb(refresh_interval: Duration) -> AlbKeys {
        AlbKeys::new(
            Arn::parse(ARN).unwrap(),
            KeySettings {
                // Nothing listens there: fetches fail at once.
                endpoint: "http://127.0.0.1:1/".into(),
                http: HttpOptions {
                    timeout: Duration::from_secs(1),
                    ..HttpOptions::default()
                },
                ttl: Duration::from_secs(60),
                refresh_interval,
                shared: None,
            },
        )
    }

    #[test]
    fn unseen_kids_are_fetched_within_a_budget() {
        let a = alb(Duration::from_secs(3600));
        for i in 0..NEW_KIDS_PER_INTERVAL {
            match a.keys_for(&format!("kid-{i}")) {
                Err(KeyFailure::Unavailable(_)) => {}
                other => panic!("kid-{i}: {other:?}"),
            }
        }
        match a.keys_for("one-more") {
            Err(KeyFailure::Alb(e)) => assert_eq!(e.label(), "kid_throttled"),
            other => panic!("{other:?}"),
        }
        // A kid already seen is not new: it is asked for again (its own pause applies).
        assert!(matches!(
            a.keys_for("kid-0"),
            Err(KeyFailure::Unavailable(_))
        ));
        assert_eq!(a.remembered().len(), NEW_KIDS_PER_INTERVAL as usize);
    }

    #[test]
    fn refresh_interval_zero_neither_lifts_the_budget_nor_the_pause() {
        let a = alb(Duration::ZERO);
        for i in 0..NEW_KIDS_PER_INTERVAL {
            assert!(
                matches!(
                    a.keys_for(&format!("kid-{i}")),
                    Err(KeyFailure::Unavailable(_))
                ),
                "kid-{i}"
            );
        }
        match a.keys_for("one-more") {
            Err(KeyFailure::Alb(e)) => assert_eq!(e.label(), "kid_throttled"),
            other => panic!("{other:?}"),
        }
        // The same kid again at once: its failed fetch is not repeated.
        for _ in 0..3 {
            let _ = a.keys_for("kid-0");
        }
        let remote = a.remote_for("kid-0").ok().unwrap();
        assert_eq!(remote.fetches(), 1);
        assert_eq!(a.kid_interval(), MIN_KID_INTERVAL);
        assert_eq!(
            alb(Duration::from_secs(60)).kid_interval(),
            Duration::from_secs(60)
        );
    }

    #[test]
    fn the_key_of_every_kid_shows_its_age_under_the_key_endpoint() {
        let a = alb(Duration::from_secs(60));
        for kid in ["kid-0", "../x"] {
            let remote = a.remote_for(kid).ok().unwrap();
            assert_eq!(remote.url, key_url("http://127.0.0.1:1/", kid));
            assert_eq!(remote.age_url(), "http://127.0.0.1:1/");
        }
    }

    /// Made-up kids (never a key) are forgotten before a kid whose key was fetched, however long
    /// ago that kid was last used.
    #[test]
    fn a_kid_with_a_key_outlives_a_flood_of_made_up_kids() {
        use crate::cache::net::testutil::one_reply_server;
        let group =
            openssl::ec::EcGroup::from_curve_name(openssl::nid::Nid::X9_62_PRIME256V1).unwrap();
        let pem = openssl::ec::EcKey::generate(&group)
            .unwrap()
            .public_key_to_pem()
            .unwrap();
        let mut reply =
            format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", pem.len()).into_bytes();
        reply.extend_from_slice(&pem);
        let port = one_reply_server(Box::leak(reply.into_boxed_slice()));
        let mut a = alb(Duration::ZERO);
        a.settings.endpoint = format!("http://127.0.0.1:{port}/");
        assert!(a.keys_for("real").is_ok(), "the real kid's key is fetched");
        for i in 0..MAX_KIDS + 5 {
            a.kids.lock().unwrap().window_start = None;
            let _ = a.remote_for(&format!("made-up-{i}"));
        }
        let kept = a.remembered();
        assert_eq!(kept.len(), MAX_KIDS);
        assert!(kept.iter().any(|k| k == "real"), "{kept:?}");
    }

    #[test]
    fn at_most_max_kids_are_remembered() {
        let a = alb(Duration::ZERO);
        for i in 0..MAX_KIDS + 5 {
            // A new window for each: the budget has its own test.
            a.kids.lock().unwrap().window_start = None;
            let _ = a.remote_for(&format!("kid-{i}"));
        }
        let kept = a.remembered();
        assert_eq!(kept.len(), MAX_KIDS);
        assert!(
            kept.contains(&format!("kid-{}", MAX_KIDS + 4)),
            "the newest is kept"
        );
    }
}
