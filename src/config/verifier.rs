//! `OAuth2TokenVerify <type> <value> [<options>]` -> a validated [`Verifier`], or the message that
//! `apache2 -t` prints. Messages that the C module has are kept word for word; ours also say what
//! to write instead.

use crate::cache::registry::CacheRegistry;
use base64::Engine;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

use std::sync::Arc;
use std::time::Duration;

use crate::jose::Key;
use crate::options::{Options, Requirement, parse_number};
use crate::pop::dpop::DpopPolicy;
use crate::pop::mtls::MtlsPolicy;
use crate::proxy::{CertHeader, CertHeaderFormat};
use crate::remote::auth::EndpointAuth;
use crate::remote::fetch::HttpOptions;
use crate::remote::introspect::Introspector;
use crate::remote::keys::{Format, RemoteKeys};
use crate::remote::metadata::{Metadata, Templates};
use crate::verify::claims::ClaimPolicy;
use crate::verify::{Binding, DpopBinding, ResultCaching, Source, Verifier};

pub(crate) const UNKNOWN_TYPE: &str = "Invalid value, must be one of: plain, base64, base64url, hex, pem, pubkey, jwk, jwks_uri, eckey_uri, aws_alb, introspect or metadata.";
pub(crate) const UNKNOWN_BINDING: &str =
    "Invalid value, must be one of: \"bearer\", \"dpop\" or \"mtls\".";

/// Options this version acts on.
const ACTIVE_OPTIONS: &[&str] = &[
    "verify.cache",
    "expiry",
    "kid",
    "type",
    "mtls.policy",
    "mtls.header",
    "mtls.header.format",
    "dpop.cache",
    "dpop.expiry",
    "dpop.iat.verify",
    "dpop.iat.slack.before",
    "dpop.iat.slack.after",
    "dpop.algs",
    "dpop.nonce",
    "dpop.nonce.interval",
    "verify.exp",
    "verify.iat",
    "verify.iat.slack_before",
    "verify.iat.slack_after",
    "verify.nbf",
    "verify.iss",
    "verify.aud",
    "iss",
    "aud",
    "alb_base_url",
];

/// The `<prefix>.<option>` names that some type reads: every endpoint takes the HTTP options
/// (`http_options`); the key documents also their expiry, refresh interval and cache; an
/// introspection endpoint its authentication and form. Others (`introspect.expiry`,
/// `metadata.refresh_interval`) would do nothing, and get the unknown-option warning.
fn is_endpoint_option(name: &str) -> bool {
    const HTTP: &[&str] = &[
        "ssl_verify",
        "ca_file",
        "outgoing_proxy",
        "http_timeout",
        "http_retries",
        "http_retry_interval",
    ];
    let Some((prefix, option)) = name.split_once('.') else {
        return false;
    };
    let own: &[&str] = match prefix {
        "jwks_uri" | "eckey_uri" | "aws_alb" => &["expiry", "refresh_interval", "cache"],
        "metadata" => &["expiry"],
        "introspect" => &["auth", "params", "token_param_name"],
        _ => return false,
    };
    HTTP.contains(&option) || own.contains(&option)
}

/// Endpoint credentials (un-prefixed, as in the C module).
const CREDENTIAL_OPTIONS: &[&str] = &[
    "client_id",
    "client_secret",
    "jwk",
    "cert",
    "key",
    "username",
    "password",
    "expiry",
];

/// Options the C module reads that have no effect here (yet): accepted, noted at debug level.
const INERT_OPTIONS: &[&str] = &[
    "cache",
    "metadata.cache",
    "introspect.cache",
    "jwks_uri.url",
    "eckey_uri.url",
    "metadata.url",
    "introspect.url",
    "aws_alb.url",
    "jwks_uri.auth",
    "eckey_uri.auth",
    "metadata.auth",
    "aws_alb.auth",
    "mtls.env_var_name",
];

/// What the directive produced: the verifier and notes for the error log.
pub(crate) struct Parsed {
    pub(crate) verifier: Verifier,
    pub(crate) warnings: Vec<String>,
    pub(crate) debug: Vec<String>,
}

/// Where the directive was written, for log lines about the verifier.
pub(crate) struct Origin<'a> {
    pub(crate) file: &'a str,
    pub(crate) line: u32,
}

/// One `OAuth2TokenVerify` line; `caches` are the `OAuth2Cache` lines read so far.
pub(crate) fn parse(
    kind: &str,
    value: &str,
    options: Option<&str>,
    origin: &Origin,
    caches: &mut CacheRegistry,
) -> Result<Parsed, String> {
    let options = Options::parse(options.unwrap_or(""));
    let mut warnings = Vec::new();
    let mut debug = Vec::new();

    let mut claims = parse_claim_policy(&options);
    let (source, describe) = match kind {
        "jwks_uri" | "eckey_uri" => {
            let format = if kind == "jwks_uri" {
                Format::Jwks
            } else {
                Format::Pem
            };
            if kind == "eckey_uri" && options.get("verify.exp").is_none() {
                // ALB-style tokens carry exp in the header: the newer liboauth2 keeps exp optional here.
                claims.exp = Requirement::Optional;
            }
            let keys = remote_keys(&options, kind, value, format, caches)?;
            (Source::Remote(Arc::new(keys)), value.to_string())
        }
        "aws_alb" => {
            let alb = aws_alb(&options, value, caches)?;
            (Source::AwsAlb(Arc::new(alb)), value.to_string())
        }
        "introspect" => {
            let introspector = introspector(&options, value)?;
            for_introspection(&mut claims, &options);
            assertion_aud_is_not_token_aud(&mut claims, &options, &introspector.auth);
            (
                Source::Introspect(Arc::new(introspector)),
                value.to_string(),
            )
        }
        "metadata" => {
            let templates = Templates {
                jwks_http: http_options(&options, "jwks_uri")?,
                jwks_ttl: seconds(&options, "jwks_uri.expiry", 86_400)?,
                jwks_refresh_interval: seconds(&options, "jwks_uri.refresh_interval", 10)?,
                jwks_cache: document_cache(&options, "jwks_uri", caches)?,
                introspect_http: http_options(&options, "introspect")?,
                introspect_auth: EndpointAuth::parse(&options, "introspect")?,
                introspect_params: introspect_params(&options)?,
                introspect_token_param: options
                    .get("introspect.token_param_name")
                    .unwrap_or("token")
                    .to_string(),
                expected_issuer: claims.expected_iss.clone(),
            };
            // `aud=` names the client assertion's audience on both paths; an introspection
            // answer meets the claim checks an `introspect` line would ask of it.
            assertion_aud_is_not_token_aud(&mut claims, &options, &templates.introspect_auth);
            let mut introspected = claims.clone();
            for_introspection(&mut introspected, &options);
            let url = endpoint_url("metadata", value)?;
            let metadata = Metadata::new(
                url,
                http_options(&options, "metadata")?,
                seconds(&options, "metadata.expiry", 86_400)?,
                templates,
            );
            let source = Source::Metadata {
                metadata: Arc::new(metadata),
                introspected,
            };
            (source, value.to_string())
        }
        _ => {
            let key = local_key(kind, value, &options)?;
            if key.has_private_material() {
                warnings.push(format!(
                    "OAuth2TokenVerify {kind} at {}:{}: the JWK contains private key material; only its public part is used. \
                     Configure the public key only and keep the private key off this server",
                    origin.file, origin.line
                ));
            }
            let describe = key.describe();
            (Source::Keys(vec![key]), describe)
        }
    };

    let binding = parse_binding(&options)?;
    let dpop = dpop_binding(&options, binding, caches)?;
    let cert_header = cert_header(&options, binding)?;
    for name in options.unknown(ACTIVE_OPTIONS) {
        if is_endpoint_option(name) || CREDENTIAL_OPTIONS.contains(&name) {
            continue;
        }
        if INERT_OPTIONS.contains(&name) {
            debug.push(format!(
                "OAuth2TokenVerify at {}:{}: option \"{name}\" has no effect in this version",
                origin.file, origin.line
            ));
        } else {
            warnings.push(format!(
                "OAuth2TokenVerify at {}:{}: unknown option \"{name}\" is ignored (option names are case-sensitive)",
                origin.file, origin.line
            ));
        }
    }

    if kind == "jwks_uri" || kind == "metadata" {
        warnings.extend(unreadable_file_warning(kind, value, origin));
    }
    let results = result_caching(kind, value, &options, &source, caches, &mut warnings)?;
    let label = format!("{kind} ({describe} at {}:{})", origin.file, origin.line).into();
    Ok(Parsed {
        verifier: Verifier {
            label,
            source,
            claims,
            binding,
            cert_header,
            dpop,
            results,
        },
        warnings,
        debug,
    })
}

/// An introspection answer need not carry `exp` (RFC 7662 section 2.2: every member but
/// `active` is optional): checked when present, unless `verify.exp` says otherwise.
fn for_introspection(claims: &mut ClaimPolicy, options: &Options) {
    if options.get("verify.exp").is_none() {
        claims.exp = Requirement::Optional;
    }
}

/// With a client assertion (`client_secret_jwt`, `private_key_jwt`), `aud=` is the assertion's
/// audience, not an audience the token must name: the two meanings would clash.
fn assertion_aud_is_not_token_aud(
    claims: &mut ClaimPolicy,
    options: &Options,
    auth: &EndpointAuth,
) {
    if matches!(
        auth,
        EndpointAuth::ClientSecretJwt { .. } | EndpointAuth::PrivateKeyJwt { .. }
    ) {
        claims.expected_aud = None;
        claims.aud = Requirement::parse_or(options.get("verify.aud"), Requirement::Optional);
    }
}

/// `verify.cache` and `expiry`: accepted tokens are remembered per verifier identity. A shared cache
/// is used for remote verification (it saves a round trip to the authorization server) and, for
/// local keys, only when it is shared memory (a network cache would be slower than verifying).
fn result_caching(
    kind: &str,
    value: &str,
    options: &Options,
    source: &Source,
    caches: &mut CacheRegistry,
    warnings: &mut Vec<String>,
) -> Result<ResultCaching, String> {
    let canonical = options.canonical();
    let identity = crate::digest::sha256(&[
        kind.as_bytes(),
        b"\0",
        value.as_bytes(),
        b"\0",
        canonical.as_bytes(),
        b"\0",
    ]);
    let ttl = seconds(options, "expiry", 300)?;
    let name = options.get("verify.cache");
    let shared = caches.resolve(name);
    if shared.is_none() && name.is_some() {
        warnings.push(format!(
            "OAuth2TokenVerify: verify.cache={}: no OAuth2Cache with that name (OAuth2Cache lines must come \
             before the OAuth2TokenVerify lines that use them); results are cached in this process only",
            name.unwrap_or("")
        ));
    }
    let shared = shared.filter(|c| !matches!(source, Source::Keys(_)) || c.is_local_memory());
    Ok(ResultCaching::new(identity, ttl, shared))
}

/// The keys written in the configuration line.
fn local_key(kind: &str, value: &str, options: &Options) -> Result<Key, String> {
    let mut key = match kind {
        "plain" => secret_key(kind, value.as_bytes())?,
        "base64" => secret_key(kind, &decode_base64(value, alphabet::STANDARD, "oauth2_base64_decode failed")?)?,
        "base64url" => secret_key(kind, &decode_base64(value, alphabet::URL_SAFE, "oauth2_base64url_decode failed")?)?,
        "hex" => secret_key(kind, &decode_hex(value)?)?,
        "pem" => Key::from_pem_certificate(value).map_err(|e| {
            format!("OAuth2TokenVerify pem: {e}. The value must be a PEM X.509 certificate (\"-----BEGIN CERTIFICATE-----...\"); line breaks may be written as \\n")
        })?,
        "pubkey" => Key::from_pem_public_key(value).map_err(|e| {
            format!("OAuth2TokenVerify pubkey: {e}. The value must be a PEM public key (\"-----BEGIN PUBLIC KEY-----...\"); line breaks may be written as \\n")
        })?,
        "jwk" => Key::from_jwk_json(value).map_err(|e| {
            format!("OAuth2TokenVerify jwk: {e}. The value must be one public JWK as JSON, quoted, with inner quotes escaped as \\\"")
        })?,
        _ => return Err(UNKNOWN_TYPE.to_string()),
    };
    if let Some(kid) = options.get("kid") {
        key.set_kid(kid.to_string());
    }
    Ok(key)
}

fn remote_keys(
    options: &Options,
    prefix: &str,
    value: &str,
    format: Format,
    caches: &mut CacheRegistry,
) -> Result<RemoteKeys, String> {
    Ok(RemoteKeys::new(
        endpoint_url(prefix, value)?,
        format,
        http_options(options, prefix)?,
        seconds(options, &format!("{prefix}.expiry"), 86_400)?,
        seconds(options, &format!("{prefix}.refresh_interval"), 10)?,
        document_cache(options, prefix, caches)?,
    ))
}

/// `aws_alb <ARN>`: the ARN checked here, keys from `alb_base_url` (default: AWS's endpoint of the
/// ARN's region) with the `aws_alb.*` endpoint options. `exp` is required as for JWTs, and read
/// from the JWS header where ALB puts it (src/verify/alb.rs).
fn aws_alb(
    options: &Options,
    value: &str,
    caches: &mut CacheRegistry,
) -> Result<crate::remote::alb::AlbKeys, String> {
    use crate::remote::alb::{AlbKeys, Arn, KeySettings, key_endpoint};
    let arn = Arn::parse(value)?;
    let endpoint = match options.get("alb_base_url") {
        Some(url) => key_endpoint(url)?,
        None => arn.default_key_endpoint(),
    };
    let settings = KeySettings {
        endpoint,
        http: http_options(options, "aws_alb")?,
        ttl: seconds(options, "aws_alb.expiry", 86_400)?,
        refresh_interval: seconds(options, "aws_alb.refresh_interval", 10)?,
        shared: document_cache(options, "aws_alb", caches)?,
    };
    Ok(AlbKeys::new(arn, settings))
}

/// `<prefix>.cache`: where fetched documents are shared; a name that matches no cache is an error
/// (`cache could not be found`, as in the C module).
fn document_cache(
    options: &Options,
    prefix: &str,
    caches: &mut CacheRegistry,
) -> Result<Option<Arc<crate::cache::Cache>>, String> {
    let name = options.get(&format!("{prefix}.cache"));
    match caches.resolve(name) {
        Some(c) => Ok(Some(c)),
        // No cache at all (an .htaccess file after startup): fetched documents stay in the process.
        None if name.is_none() => Ok(None),
        None => Err(format!(
            "cache could not be found: {prefix}.cache={} names no OAuth2Cache (OAuth2Cache lines must come before the \
             OAuth2TokenVerify lines that use them)",
            name.unwrap_or("")
        )),
    }
}

fn introspector(options: &Options, value: &str) -> Result<Introspector, String> {
    Ok(Introspector::new(
        endpoint_url("introspect", value)?,
        http_options(options, "introspect")?,
        EndpointAuth::parse(options, "introspect")?,
        introspect_params(options)?,
        options
            .get("introspect.token_param_name")
            .unwrap_or("token")
            .to_string(),
    ))
}

/// `introspect.params`: a form-encoded string of extra parameters.
fn introspect_params(options: &Options) -> Result<Vec<(String, String)>, String> {
    Ok(
        form_urlencoded::parse(options.get("introspect.params").unwrap_or("").as_bytes())
            .filter(|(k, _)| !k.is_empty())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect(),
    )
}

fn endpoint_url(kind: &str, value: &str) -> Result<String, String> {
    use crate::remote::endpoint;
    if endpoint::has_space_or_control(value) {
        return Err(format!(
            "OAuth2TokenVerify {kind}: the URL must not contain spaces or control characters"
        ));
    }
    if let Some(path) = crate::remote::local_file::path_of(value) {
        // liboauth2 2.0: a local key set or discovery document.
        if kind != "jwks_uri" && kind != "metadata" {
            return Err(format!(
                "OAuth2TokenVerify {kind}: the value must be an http:// or https:// URL (file:// URLs are for jwks_uri and metadata only)"
            ));
        }
        path.map_err(|e| format!("OAuth2TokenVerify {kind}: {e}, not \"{value}\""))?;
        return Ok(value.to_string());
    }
    if !endpoint::is_http(value) {
        let file = if kind == "jwks_uri" || kind == "metadata" {
            " (or file:///path for a local file)"
        } else {
            ""
        };
        return Err(format!(
            "OAuth2TokenVerify {kind}: the value must be an http:// or https:// URL{file}, not \"{value}\""
        ));
    }
    Ok(value.to_string())
}

/// A local file that cannot be read now: the configuration is accepted (the file may be
/// provisioned later), but requests are refused until it can be read.
fn unreadable_file_warning(kind: &str, url: &str, origin: &Origin) -> Option<String> {
    let path = crate::remote::local_file::path_of(url)?.ok()?;
    let e = crate::remote::local_file::read(&path).err()?;
    Some(format!(
        "OAuth2TokenVerify {kind} at {}:{}: {e}; tokens are refused until it can be read",
        origin.file, origin.line
    ))
}

/// `<prefix>.ssl_verify`, `.ca_file`, `.outgoing_proxy`, `.http_timeout`, `.http_retries`,
/// `.http_retry_interval`.
fn http_options(options: &Options, prefix: &str) -> Result<HttpOptions, String> {
    let get = |name: &str| options.get(&format!("{prefix}.{name}"));
    let mut http = HttpOptions::default();
    if let Some(v) = get("ssl_verify") {
        // The C module treats anything but "true" as false: a typo turned verification off.
        // Here the words that plainly mean yes verify, those that mean no do not, and anything
        // else is an error.
        http.ssl_verify = crate::options::flag::parse_switch(v).ok_or_else(|| {
            format!(
                "{prefix}.ssl_verify={v} is neither true nor false: write {prefix}.ssl_verify=true (the default) or, to accept any certificate, {prefix}.ssl_verify=false"
            )
        })?;
    }
    if let Some(path) = get("ca_file").filter(|p| !p.is_empty()) {
        if std::fs::File::open(path).is_err() {
            return Err(format!(
                "{prefix}.ca_file={path}: cannot read this file; give a PEM file with the CA certificates to trust"
            ));
        }
        http.ca_file = Some(path.to_string());
    }
    http.proxy = get("outgoing_proxy")
        .filter(|p| !p.is_empty())
        .map(str::to_string);
    http.timeout = seconds(options, &format!("{prefix}.http_timeout"), 15)?;
    if http.timeout.is_zero() {
        return Err(format!("{prefix}.http_timeout must be at least 1 second"));
    }
    // Every attempt and pause together stay within http_timeout, so these only bound mistakes.
    http.retries = whole_number(options, &format!("{prefix}.http_retries"), 1, 100, "")?;
    http.retry_interval = Duration::from_millis(u64::from(whole_number(
        options,
        &format!("{prefix}.http_retry_interval"),
        300,
        3_600_000,
        " milliseconds",
    )?));
    Ok(http)
}

/// A whole number from 0 to `max` (digits only, as liboauth2's strict unsigned options).
fn whole_number(
    options: &Options,
    name: &str,
    default: u32,
    max: u32,
    unit: &str,
) -> Result<u32, String> {
    match options.get(name) {
        None => Ok(default),
        Some(v) => v
            .trim()
            .parse::<u32>()
            .ok()
            .filter(|n| *n <= max)
            .ok_or_else(|| format!("{name}={v}: must be a whole number from 0 to {max}{unit}")),
    }
}

/// A whole number of seconds, 0 to one year.
fn seconds(options: &Options, name: &str, default: u64) -> Result<Duration, String> {
    match options.get(name) {
        None => Ok(Duration::from_secs(default)),
        Some(v) => v
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|n| *n <= 31_536_000)
            .map(Duration::from_secs)
            .ok_or_else(|| format!("{name}={v}: must be a whole number of seconds")),
    }
}

fn secret_key(kind: &str, secret: &[u8]) -> Result<Key, String> {
    Key::from_secret(secret).map_err(|e| {
        format!(
            "OAuth2TokenVerify {kind}: {e}. An HMAC secret must be at least 32 bytes (256 bits) for HS256 \
             (RFC 7518 section 3.2): configure a longer secret"
        )
    })
}

fn decode_base64(
    value: &str,
    alphabet: alphabet::Alphabet,
    c_message: &str,
) -> Result<Vec<u8>, String> {
    let engine = GeneralPurpose::new(
        &alphabet,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    engine
        .decode(value.trim())
        .map_err(|e| format!("{c_message}: {e}"))
}

/// Hex as the C module reads it: pairs of hex digits; an odd trailing digit is ignored.
fn decode_hex(value: &str) -> Result<Vec<u8>, String> {
    value
        .as_bytes()
        .chunks_exact(2)
        .map(|pair| {
            std::str::from_utf8(pair)
                .ok()
                .and_then(|p| u8::from_str_radix(p, 16).ok())
                .ok_or_else(|| "sscanf failed: the value must be hexadecimal digits".to_string())
        })
        .collect()
}

fn parse_binding(options: &Options) -> Result<Binding, String> {
    match options.get("type") {
        None => Ok(Binding::Bearer),
        Some(t) if t.eq_ignore_ascii_case("bearer") => Ok(Binding::Bearer),
        Some(t) if t.eq_ignore_ascii_case("mtls") => {
            Ok(Binding::Mtls(MtlsPolicy::parse(options.get("mtls.policy"))))
        }
        Some(t) if t.eq_ignore_ascii_case("dpop") => Ok(Binding::Dpop),
        Some(_) => Err(UNKNOWN_BINDING.to_string()),
    }
}

/// `mtls.header` and `mtls.header.format`: where a trusted TLS terminator forwards the client
/// certificate (read only from an `OAuth2TrustedProxy` peer; src/proxy/).
fn cert_header(options: &Options, binding: Binding) -> Result<Option<CertHeader>, String> {
    let name = options.get("mtls.header");
    let format = options.get("mtls.header.format");
    let Some(name) = name else {
        return match format {
            Some(_) => Err("mtls.header.format needs mtls.header=<the request header the proxy writes the certificate in>".to_string()),
            None => Ok(None),
        };
    };
    if !matches!(binding, Binding::Mtls(_)) {
        return Err(format!(
            "mtls.header={name} needs type=mtls: add type=mtls to the options, or leave mtls.header out"
        ));
    }
    if !crate::header_name::is_token(name) {
        return Err(format!(
            "mtls.header=\"{}\" is not a header name: write the name alone, e.g. mtls.header=X-SSL-Client-Cert",
            name.escape_default()
        ));
    }
    let format = match format {
        None => CertHeaderFormat::PemUrlencoded,
        Some(f) => CertHeaderFormat::parse(f).ok_or_else(|| {
            format!(
                "mtls.header.format=\"{}\" is not known: write one of {}",
                f.escape_default(),
                CertHeaderFormat::NAMES
            )
        })?,
    };
    let name =
        std::ffi::CString::new(name).map_err(|_| "mtls.header contains a NUL".to_string())?;
    Ok(Some(CertHeader { name, format }))
}

/// The DPoP settings of a verifier. Every verifier has them: a token bound to a DPoP key
/// (`cnf.jkt`) needs a valid proof whatever the verifier's `type` (RFC 9449 section 7.2); the
/// `dpop.*` options are read with `type=dpop` only, as in the C module. Proofs' `jti` are
/// remembered in `dpop.cache` (default: the default cache); a name that matches no cache is an
/// error (the C module then silently stops detecting replays).
fn dpop_binding(
    options: &Options,
    binding: Binding,
    caches: &mut CacheRegistry,
) -> Result<DpopBinding, String> {
    let (policy, name) = if binding == Binding::Dpop {
        (DpopPolicy::parse(options)?, options.get("dpop.cache"))
    } else {
        (DpopPolicy::default(), None)
    };
    let replay = match caches.resolve(name) {
        Some(cache) => Some(cache),
        None if name.is_none() => None,
        None => {
            return Err(format!(
                "dpop.cache={} names no OAuth2Cache: write the OAuth2Cache line (with name={}) before this \
                 OAuth2TokenVerify line, or leave dpop.cache out to use the default cache",
                name.unwrap_or(""),
                name.unwrap_or("")
            ));
        }
    };
    Ok(DpopBinding {
        policy,
        replay,
        keys: Default::default(),
    })
}

fn parse_claim_policy(options: &Options) -> ClaimPolicy {
    let defaults = ClaimPolicy::default();
    let expected_iss = options.get("iss").map(str::to_string);
    let expected_aud = options.get("aud").map(str::to_string);
    // Setting iss= or aud= makes the matching check required unless verify.* says otherwise.
    let default_for = |expected: &Option<String>| {
        if expected.is_some() {
            Requirement::Required
        } else {
            Requirement::Optional
        }
    };
    ClaimPolicy {
        exp: Requirement::parse_or(options.get("verify.exp"), defaults.exp),
        nbf: Requirement::parse_or(options.get("verify.nbf"), defaults.nbf),
        iat: Requirement::parse_or(options.get("verify.iat"), defaults.iat),
        iat_slack_before: options
            .get("verify.iat.slack_before")
            .map(|v| parse_number(v).max(0)),
        iat_slack_after: options
            .get("verify.iat.slack_after")
            .map_or(defaults.iat_slack_after, |v| parse_number(v).max(0)),
        iss: Requirement::parse_or(options.get("verify.iss"), default_for(&expected_iss)),
        expected_iss,
        aud: Requirement::parse_or(options.get("verify.aud"), default_for(&expected_aud)),
        expected_aud,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A line read on its own, with no `OAuth2Cache` before it.
    fn parse(
        kind: &str,
        value: &str,
        options: Option<&str>,
        origin: &Origin,
    ) -> Result<Parsed, String> {
        super::parse(kind, value, options, origin, &mut CacheRegistry::default())
    }

    const ORIGIN: Origin = Origin {
        file: "test.conf",
        line: 1,
    };
    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    fn err(kind: &str, value: &str, options: Option<&str>) -> String {
        match parse(kind, value, options, &ORIGIN) {
            Ok(_) => panic!("expected an error for {kind} {value}"),
            Err(e) => e,
        }
    }

    #[test]
    fn unknown_type_has_the_c_message() {
        assert_eq!(err("foo", "bar", None), UNKNOWN_TYPE);
        assert_eq!(
            err("JWK", "{}", None),
            UNKNOWN_TYPE,
            "types are case-sensitive"
        );
    }

    #[test]
    fn unknown_binding_has_the_c_message() {
        assert_eq!(err("plain", SECRET, Some("type=foo")), UNKNOWN_BINDING);
    }

    #[test]
    fn binding_is_case_insensitive_and_policy_defaults_to_required() {
        let p = parse("plain", SECRET, Some("type=MTLS"), &ORIGIN).unwrap();
        assert_eq!(p.verifier.binding, Binding::Mtls(MtlsPolicy::Required));
        let p = parse(
            "plain",
            SECRET,
            Some("type=mtls&mtls.policy=optional"),
            &ORIGIN,
        )
        .unwrap();
        assert_eq!(p.verifier.binding, Binding::Mtls(MtlsPolicy::Optional));
        let p = parse("plain", SECRET, None, &ORIGIN).unwrap();
        assert_eq!(p.verifier.binding, Binding::Bearer);
    }

    #[test]
    fn forwarded_certificate_header_options() {
        let p = parse(
            "plain",
            SECRET,
            Some("type=mtls&mtls.header=X-SSL-Client-Cert"),
            &ORIGIN,
        )
        .unwrap();
        let h = p.verifier.cert_header.unwrap();
        assert_eq!(h.name.as_c_str(), c"X-SSL-Client-Cert");
        assert_eq!(h.format, CertHeaderFormat::PemUrlencoded);
        let p = parse(
            "plain",
            SECRET,
            Some("type=mtls&mtls.header=x-forwarded-client-cert&mtls.header.format=XFCC"),
            &ORIGIN,
        )
        .unwrap();
        assert_eq!(
            p.verifier.cert_header.unwrap().format,
            CertHeaderFormat::Xfcc
        );
        assert!(p.warnings.is_empty(), "{:?}", p.warnings);
        for (options, says) in [
            ("mtls.header=X-Cert", "needs type=mtls"),
            ("type=dpop&mtls.header=X-Cert", "needs type=mtls"),
            ("type=mtls&mtls.header=X Cert", "is not a header name"),
            ("type=mtls&mtls.header=X-Cert:", "is not a header name"),
            ("type=mtls&mtls.header.format=pem", "needs mtls.header="),
            (
                "type=mtls&mtls.header=X-Cert&mtls.header.format=der",
                "write one of pem-urlencoded",
            ),
        ] {
            let e = err("plain", SECRET, Some(options));
            assert!(e.contains(says), "{options}: {e}");
        }
    }

    #[test]
    fn dpop_needs_a_known_replay_cache() {
        let p = parse("plain", SECRET, Some("type=DPoP"), &ORIGIN).unwrap();
        assert_eq!(p.verifier.binding, Binding::Dpop);
        assert!(
            p.verifier.dpop.replay.is_some(),
            "the implicit default cache"
        );
        assert!(p.warnings.is_empty(), "{:?}", p.warnings);
        let e = err("plain", SECRET, Some("type=dpop&dpop.cache=nope"));
        assert!(e.contains("dpop.cache=nope names no OAuth2Cache"), "{e}");
    }

    #[test]
    fn short_secret_is_refused_with_advice() {
        let e = err("plain", "tooshort", None);
        assert!(e.contains("at least 32 bytes"), "{e}");
    }

    #[test]
    fn secrets_in_every_encoding() {
        use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
        assert!(parse("base64", &STANDARD.encode(SECRET), None, &ORIGIN).is_ok());
        assert!(parse("base64url", &URL_SAFE_NO_PAD.encode(SECRET), None, &ORIGIN).is_ok());
        let hex: String = SECRET.bytes().map(|b| format!("{b:02x}")).collect();
        assert!(parse("hex", &hex, None, &ORIGIN).is_ok());
        assert!(
            parse("hex", &format!("{hex}f"), None, &ORIGIN).is_ok(),
            "odd digit ignored"
        );
        assert!(err("hex", &format!("zz{hex}"), None).starts_with("sscanf failed"));
        assert!(err("base64", "!!!", None).starts_with("oauth2_base64_decode failed"));
    }

    #[test]
    fn remote_types_need_http_urls_and_valid_options() {
        assert!(
            err("eckey_uri", "file:///etc/key.pem", None).contains("jwks_uri and metadata only")
        );
        assert!(err("introspect", "file:///x", None).contains("http:// or https:// URL"));
        assert!(err("jwks_uri", "file://host/x", None).contains("absolute path on this host"));
        assert!(err("jwks_uri", "ftp://as/x", None).contains("or file:///path"));
        assert!(err("jwks_uri", "file:///a b", None).contains("spaces"));
        let p = parse("jwks_uri", "file:///nonexistent/jwks.json", None, &ORIGIN).unwrap();
        assert!(
            p.warnings.len() == 1 && p.warnings[0].contains("cannot read /nonexistent/jwks.json"),
            "{:?}",
            p.warnings
        );
        assert!(parse("metadata", "file:///nonexistent/m.json", None, &ORIGIN).is_ok());
        assert!(err("introspect", "https://", None).contains("URL"));
        assert!(
            err(
                "jwks_uri",
                "https://as/jwks",
                Some("jwks_uri.http_timeout=abc")
            )
            .contains("seconds")
        );
        assert!(
            err(
                "jwks_uri",
                "https://as/jwks",
                Some("jwks_uri.ca_file=/nonexistent")
            )
            .contains("cannot read")
        );
        assert!(
            parse(
                "jwks_uri",
                "https://as/jwks",
                Some("jwks_uri.http_timeout=2&jwks_uri.expiry=60"),
                &ORIGIN
            )
            .is_ok()
        );
        assert!(parse("eckey_uri", "http://127.0.0.1:1/key", None, &ORIGIN).is_ok());
        assert!(
            parse(
                "metadata",
                "https://as/.well-known/openid-configuration",
                None,
                &ORIGIN
            )
            .is_ok()
        );
    }

    const ARN: &str = "arn:aws:elasticloadbalancing:eu-west-1:123456789012:loadbalancer/app/my-alb/50dc6c495c0c9188";

    #[test]
    fn aws_alb_takes_an_arn_and_its_endpoint_options() {
        let p = parse(
            "aws_alb",
            ARN,
            Some(
                "alb_base_url=http://127.0.0.1:8080/keys&aws_alb.ssl_verify=true&aws_alb.http_timeout=5\
                 &aws_alb.expiry=3600&aws_alb.refresh_interval=5&aws_alb.outgoing_proxy=http://proxy:3128\
                 &aws_alb.auth=none&aws_alb.url=x&verify.iss=optional&expiry=60",
            ),
            &ORIGIN,
        )
        .unwrap();
        assert!(p.warnings.is_empty(), "{:?}", p.warnings);
        assert!(p.verifier.reads_alb_header());
        assert_eq!(
            p.verifier.claims.exp,
            Requirement::Required,
            "exp is required, read from the JWS header"
        );
        assert!(parse("aws_alb", ARN, None, &ORIGIN).is_ok());
    }

    #[test]
    fn aws_alb_needs_an_alb_arn_and_an_http_base_url() {
        let e = err("aws_alb", "my-load-balancer", None);
        assert!(e.contains("not an Application Load Balancer ARN"), "{e}");
        let e = err("aws_alb", ARN, Some("alb_base_url=file:///etc"));
        assert!(e.starts_with("alb_base_url="), "{e}");
        let e = err("aws_alb", ARN, Some("aws_alb.cache=nope"));
        assert!(e.starts_with("cache could not be found"), "{e}");
        assert!(err("aws_alb", ARN, Some("aws_alb.http_timeout=x")).contains("seconds"));
    }

    #[test]
    fn ssl_verify_is_off_only_when_asked() {
        for prefix in ["jwks_uri", "eckey_uri", "introspect", "metadata"] {
            let url = format!("https://as/{prefix}");
            for (value, verify) in [("true", true), ("on", true), ("false", false), ("0", false)] {
                let o = format!("{prefix}.ssl_verify={value}");
                assert!(parse(prefix, &url, Some(&o), &ORIGIN).is_ok(), "{o}");
                assert_eq!(
                    http_options(&Options::parse(&o), prefix)
                        .unwrap()
                        .ssl_verify,
                    verify
                );
            }
            for typo in ["ture", "", "enabled", "flase"] {
                let e = err(prefix, &url, Some(&format!("{prefix}.ssl_verify={typo}")));
                assert!(
                    e.contains(&format!("{prefix}.ssl_verify={typo}")) && e.contains("=false"),
                    "{prefix}.ssl_verify={typo}: {e}"
                );
            }
        }
    }

    #[test]
    fn retry_options_are_whole_numbers_for_every_endpoint() {
        for prefix in ["jwks_uri", "eckey_uri", "introspect", "metadata"] {
            let url = format!("https://as/{prefix}");
            let ok = format!("{prefix}.http_retries=3&{prefix}.http_retry_interval=50");
            let p = parse(prefix, &url, Some(&ok), &ORIGIN).unwrap();
            assert!(p.warnings.is_empty(), "{prefix}: {:?}", p.warnings);
            for (bad, says) in [
                (
                    "http_retries=abc",
                    "http_retries=abc: must be a whole number from 0 to 100",
                ),
                ("http_retries=-1", "from 0 to 100"),
                ("http_retries=101", "from 0 to 100"),
                ("http_retry_interval=1.5", "from 0 to 3600000 milliseconds"),
                ("http_retry_interval=", "whole number"),
            ] {
                let e = err(prefix, &url, Some(&format!("{prefix}.{bad}")));
                assert!(e.contains(says), "{prefix}.{bad}: {e}");
            }
        }
        // The discovered endpoints take their options from metadata's line.
        let p = parse(
            "metadata",
            "https://as/.well-known/openid-configuration",
            Some("jwks_uri.http_retries=0&introspect.http_retry_interval=10"),
            &ORIGIN,
        )
        .unwrap();
        assert!(p.warnings.is_empty(), "{:?}", p.warnings);
        assert!(
            err(
                "metadata",
                "https://as/m",
                Some("introspect.http_retries=x")
            )
            .contains("introspect.http_retries=x")
        );
    }

    #[test]
    fn introspection_auth_errors_have_the_c_messages() {
        assert_eq!(
            err(
                "introspect",
                "https://as/introspect",
                Some("introspect.auth=client_secret_basic&client_id=x")
            ),
            "client_secret must be set for client_secret_basic"
        );
        assert!(
            err("introspect", "https://as/i", Some("introspect.auth=magic"))
                .starts_with("Invalid value, must be one of: none,")
        );
        let p = parse(
            "introspect",
            "https://as/i",
            Some("introspect.auth=client_secret_basic&client_id=a&client_secret=b"),
            &ORIGIN,
        )
        .unwrap();
        assert_eq!(
            p.verifier.claims.exp,
            Requirement::Optional,
            "introspection responses need not carry exp"
        );
        assert!(p.warnings.is_empty(), "{:?}", p.warnings);
    }

    #[test]
    fn claim_policy_from_options() {
        let p = parse(
            "plain",
            SECRET,
            Some("verify.exp=skip&verify.iat=required&verify.iat.slack_before=60&iss=https://as&aud=api&verify.aud=optional"),
            &ORIGIN,
        )
        .unwrap();
        let c = p.verifier.claims;
        assert_eq!(c.exp, Requirement::Skip);
        assert_eq!(c.iat, Requirement::Required);
        assert_eq!(c.iat_slack_before, Some(60));
        assert_eq!(c.iss, Requirement::Required);
        assert_eq!(c.expected_iss.as_deref(), Some("https://as"));
        assert_eq!(c.aud, Requirement::Optional);
        assert_eq!(c.expected_aud.as_deref(), Some("api"));
    }

    #[test]
    fn kid_option_overrides_the_key_kid() {
        let p = parse("plain", SECRET, Some("kid=mykid"), &ORIGIN).unwrap();
        match &p.verifier.source {
            Source::Keys(keys) => assert_eq!(keys[0].kid(), Some("mykid")),
            _ => panic!("plain gives a local key"),
        }
    }

    #[test]
    fn unknown_options_warn_and_inert_ones_are_debug() {
        let p = parse(
            "plain",
            SECRET,
            Some("bogus=1&mtls.env_var_name=x"),
            &ORIGIN,
        )
        .unwrap();
        assert_eq!(p.warnings.len(), 1);
        assert!(p.warnings[0].contains("bogus"));
        assert_eq!(p.debug.len(), 1);
        assert!(p.debug[0].contains("mtls.env_var_name"));
    }

    /// An endpoint option is known only under the prefixes whose endpoint reads it.
    #[test]
    fn endpoint_options_are_known_under_their_own_prefixes_only() {
        let read = "jwks_uri.expiry=60&jwks_uri.refresh_interval=5&jwks_uri.http_retries=2\
                    &metadata.expiry=60&metadata.http_timeout=3&introspect.params=a%3Db\
                    &introspect.token_param_name=t&aws_alb.refresh_interval=5";
        let p = parse("jwks_uri", "https://as/jwks", Some(read), &ORIGIN).unwrap();
        assert!(
            p.warnings.is_empty() && p.debug.is_empty(),
            "{:?} {:?}",
            p.warnings,
            p.debug
        );
        for unread in [
            "introspect.expiry",
            "metadata.refresh_interval",
            "jwks_uri.params",
            "eckey_uri.token_param_name",
            "verify.http_timeout",
        ] {
            let p = parse(
                "jwks_uri",
                "https://as/jwks",
                Some(&format!("{unread}=1")),
                &ORIGIN,
            )
            .unwrap();
            assert_eq!(p.warnings.len(), 1, "{unread}");
            assert!(p.warnings[0].contains(unread), "{}", p.warnings[0]);
        }
        // Read by the C module, not here: a debug line, as for the other inert options.
        let p = parse(
            "jwks_uri",
            "https://as/jwks",
            Some("jwks_uri.auth=none"),
            &ORIGIN,
        )
        .unwrap();
        assert!(
            p.warnings.is_empty() && p.debug.len() == 1,
            "{:?} {:?}",
            p.warnings,
            p.debug
        );
    }
}
