//! `mtls.header` / `mtls.header.format`: the client certificate a trusted TLS terminator forwards
//! in a request header, in the encodings proxies use. Attacker-influenced bytes (a proxy copies
//! what the client sent): bounded, strictly decoded, exactly one X.509 certificate.

use std::ffi::CString;
use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// Longest header value read (RSA 8192-bit certificates with long chains of extensions stay
/// well below this; a certificate chain does not).
pub(crate) const MAX_HEADER_LEN: usize = 16 * 1024;

/// How the proxy writes the certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CertHeaderFormat {
    /// URL-encoded PEM: nginx `$ssl_client_escaped_cert`, AWS ALB `X-Amzn-Mtls-Clientcert`.
    PemUrlencoded,
    /// PEM with spaces or tabs in place of line breaks (Apache's `SSL_CLIENT_CERT` forwarded by
    /// mod_headers, nginx's deprecated `$ssl_client_cert`).
    Pem,
    /// base64 of the DER certificate (HAProxy `ssl_c_der,base64`).
    DerBase64,
    /// Envoy's `X-Forwarded-Client-Cert`: the `Cert="<URL-encoded PEM>"` of its last element
    /// (the one the proxy in front of us added).
    Xfcc,
}

impl CertHeaderFormat {
    pub(crate) const NAMES: &'static str = "pem-urlencoded, pem, der-base64 or xfcc";

    pub(crate) fn parse(name: &str) -> Option<CertHeaderFormat> {
        Some(match name.to_ascii_lowercase().as_str() {
            "pem-urlencoded" => CertHeaderFormat::PemUrlencoded,
            "pem" => CertHeaderFormat::Pem,
            "der-base64" => CertHeaderFormat::DerBase64,
            "xfcc" => CertHeaderFormat::Xfcc,
            _ => return None,
        })
    }
}

/// Where a verifier reads a forwarded certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CertHeader {
    /// The request header's name (matched in any letter case, as HTTP does).
    pub(crate) name: CString,
    pub(crate) format: CertHeaderFormat,
}

/// Why a forwarded certificate could not be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CertHeaderError {
    TooLong(usize),
    /// Not valid in the configured format (percent-encoding, base64, PEM armour, XFCC syntax).
    Encoding,
    /// More than one certificate (a chain): which one was the client's is not ours to guess.
    Several,
    /// Decodes, but is not one DER X.509 certificate.
    NotACertificate,
}

impl fmt::Display for CertHeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CertHeaderError::TooLong(len) => {
                write!(f, "{len} bytes, more than the {MAX_HEADER_LEN} allowed")
            }
            CertHeaderError::Encoding => {
                f.write_str("not valid in the configured mtls.header.format")
            }
            CertHeaderError::Several => f.write_str("more than one certificate"),
            CertHeaderError::NotACertificate => f.write_str("not an X.509 certificate"),
        }
    }
}

impl CertHeader {
    /// The DER certificate in the header's value; `Ok(None)` when the value says "no
    /// certificate" (empty, or an XFCC element without `Cert`).
    pub(crate) fn certificate_der(&self, value: &str) -> Result<Option<Vec<u8>>, CertHeaderError> {
        certificate_der(self.format, value)
    }
}

fn certificate_der(
    format: CertHeaderFormat,
    value: &str,
) -> Result<Option<Vec<u8>>, CertHeaderError> {
    if value.len() > MAX_HEADER_LEN {
        return Err(CertHeaderError::TooLong(value.len()));
    }
    let value = value.trim_matches([' ', '\t']);
    if value.is_empty() {
        return Ok(None);
    }
    let der = match format {
        CertHeaderFormat::PemUrlencoded => pem_der(&percent_decode(value)?)?,
        CertHeaderFormat::Pem => pem_der(value)?,
        CertHeaderFormat::DerBase64 => STANDARD
            .decode(value)
            .map_err(|_| CertHeaderError::Encoding)?,
        CertHeaderFormat::Xfcc => match xfcc_cert(value)? {
            Some(cert) => pem_der(&percent_decode(cert)?)?,
            None => return Ok(None),
        },
    };
    check_one_certificate(&der)?;
    Ok(Some(der))
}

const BEGIN: &str = "-----BEGIN";

fn pem_der(pem: &str) -> Result<Vec<u8>, CertHeaderError> {
    if pem.matches(BEGIN).count() > 1 {
        return Err(CertHeaderError::Several);
    }
    // One PEM block and nothing around it but white space (proxies end it with a line break).
    let block = pem.trim_matches(|c: char| c.is_ascii_whitespace());
    if !block.starts_with(BEGIN) || !block.ends_with("-----") {
        return Err(CertHeaderError::Encoding);
    }
    crate::jose::key::certificate_der(block).map_err(|_| CertHeaderError::Encoding)
}

/// Strict `%XX` decoding to UTF-8 text (a PEM is ASCII); `+` stays `+` (it is a base64 digit).
fn percent_decode(s: &str) -> Result<String, CertHeaderError> {
    crate::percent::decode(s.as_bytes())
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or(CertHeaderError::Encoding)
}

/// The `Cert` value of the last element of an `X-Forwarded-Client-Cert` header: elements are
/// separated by `,`, key=value pairs by `;`, and a value may be a quoted string (in which `,`, `;`
/// and `\"` are literal), as Envoy writes it. Envoy writes `URI=` and `DNS=` unquoted, after
/// `Cert`: a client whose certificate has a SAN like `x,Cert=...` adds an element of its own
/// after the proxy's. So a last element with a `Cert` is believed only when no earlier element
/// has one.
fn xfcc_cert(value: &str) -> Result<Option<&str>, CertHeaderError> {
    let elements = split_unquoted(value, b',')?;
    for element in &elements {
        well_formed(element)?;
    }
    let (last, earlier) = elements
        .split_last()
        .map_or(("", &[][..]), |(l, e)| (*l, e));
    let cert = element_cert(last)?;
    if cert.is_some() && earlier.iter().any(|e| names_cert(e)) {
        return Err(CertHeaderError::Several);
    }
    Ok(cert)
}

/// Every `key=value` of an element has a key without quotes and a value that is one whole quoted
/// string or has no quote.
/// Bytes before the proxy's element may be the client's (Envoy's `APPEND_FORWARD`, or a client's
/// own header joined to the proxy's): a quote left open there, closed by a `\"` in the client
/// certificate's Subject, would hide the proxy's `Cert` inside a string; its first quote then
/// closes mid-value, which this refuses.
fn well_formed(element: &str) -> Result<(), CertHeaderError> {
    for pair in split_unquoted(element, b';')? {
        let (key, val) = pair.split_once('=').ok_or(CertHeaderError::Encoding)?;
        if key.contains('"') {
            return Err(CertHeaderError::Encoding);
        }
        let val = val.trim();
        if !val.contains('"') {
            continue;
        }
        let inner = val
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .ok_or(CertHeaderError::Encoding)?;
        let mut bytes = inner.bytes();
        while let Some(b) = bytes.next() {
            match b {
                // An escape must have a character to escape (not the closing quote).
                b'\\' if bytes.next().is_none() => return Err(CertHeaderError::Encoding),
                b'"' => return Err(CertHeaderError::Encoding),
                _ => {}
            }
        }
    }
    Ok(())
}

/// Whether an element has a `Cert` key (its syntax aside: it may come from the client).
fn names_cert(element: &str) -> bool {
    split_unquoted(element, b';').is_ok_and(|pairs| {
        pairs.iter().any(|pair| {
            pair.split_once('=')
                .is_some_and(|(key, _)| key.trim().eq_ignore_ascii_case("cert"))
        })
    })
}

/// The `Cert` value of one XFCC element.
fn element_cert(element: &str) -> Result<Option<&str>, CertHeaderError> {
    let mut cert = None;
    for pair in split_unquoted(element, b';')? {
        let (key, val) = pair.split_once('=').ok_or(CertHeaderError::Encoding)?;
        if key.trim().eq_ignore_ascii_case("cert") {
            if cert.is_some() {
                return Err(CertHeaderError::Several);
            }
            let val = val.trim();
            let val = match val.strip_prefix('"') {
                Some(quoted) => quoted.strip_suffix('"').ok_or(CertHeaderError::Encoding)?,
                None => val,
            };
            // A URL-encoded PEM has no quotes or backslashes to escape.
            if val.contains(['"', '\\']) {
                return Err(CertHeaderError::Encoding);
            }
            cert = Some(val);
        }
    }
    Ok(cert.filter(|c| !c.is_empty()))
}

/// `value` split at `sep` outside double-quoted strings; an unterminated quote is an error.
fn split_unquoted(value: &str, sep: u8) -> Result<Vec<&str>, CertHeaderError> {
    let bytes = value.as_bytes();
    let (mut parts, mut start, mut quoted, mut i) = (Vec::new(), 0, false, 0);
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if quoted => i += 1,
            b'"' => quoted = !quoted,
            b if b == sep && !quoted => {
                parts.push(&value[start..i]);
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    if quoted {
        return Err(CertHeaderError::Encoding);
    }
    parts.push(&value[start.min(value.len())..]);
    Ok(parts)
}

/// Exactly one DER X.509 certificate and nothing after it: the outer SEQUENCE's length covers
/// every byte (OpenSSL's d2i ignores trailing data), and OpenSSL parses it as a certificate.
fn check_one_certificate(der: &[u8]) -> Result<(), CertHeaderError> {
    let total = der_sequence_len(der).ok_or(CertHeaderError::NotACertificate)?;
    if total < der.len() {
        return Err(CertHeaderError::Several);
    }
    if total != der.len() {
        return Err(CertHeaderError::NotACertificate);
    }
    openssl::x509::X509::from_der(der).map_err(|_| CertHeaderError::NotACertificate)?;
    Ok(())
}

/// Length in bytes (header included) of the DER SEQUENCE at the start of `der`.
fn der_sequence_len(der: &[u8]) -> Option<usize> {
    if *der.first()? != 0x30 {
        return None;
    }
    let first = *der.get(1)?;
    if first < 0x80 {
        return Some(2 + usize::from(first));
    }
    let count = usize::from(first & 0x7f);
    if count == 0 || count > 3 {
        return None; // indefinite length, or a length no certificate within our bound has
    }
    let len = der
        .get(2..2 + count)?
        .iter()
        .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
    Some(2 + count + len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::self_signed_cert;
    use openssl::x509::X509;

    fn cert_der(cn: &str) -> Vec<u8> {
        self_signed_cert(cn).to_der().unwrap()
    }

    fn pem_of(der: &[u8]) -> String {
        X509::from_der(der)
            .unwrap()
            .to_pem()
            .map(|p| String::from_utf8(p).unwrap())
            .unwrap()
    }

    /// nginx `$ssl_client_escaped_cert`: every reserved character escaped, line breaks as %0A.
    fn urlencode(s: &str) -> String {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect()
    }

    fn read(format: CertHeaderFormat, value: &str) -> Result<Option<Vec<u8>>, CertHeaderError> {
        CertHeader {
            name: c"X-Client-Cert".into(),
            format,
        }
        .certificate_der(value)
    }

    #[test]
    fn every_format_yields_the_same_certificate() {
        let der = cert_der("client");
        let pem = pem_of(&der);
        let one_line = pem.replace('\n', " ");
        let tabbed = pem.trim_end().replace('\n', "\t");
        let xfcc = format!(
            "By=spiffe://cluster.local/ns/a;Hash=aa,By=spiffe://cluster.local/ns/b;Hash=bb;Cert=\"{}\";Subject=\"CN=client,O=a\\\"b;c\";URI=spiffe://x",
            urlencode(&pem)
        );
        for (format, value) in [
            (CertHeaderFormat::PemUrlencoded, urlencode(&pem)),
            (CertHeaderFormat::Pem, one_line),
            (CertHeaderFormat::Pem, tabbed),
            (CertHeaderFormat::DerBase64, STANDARD.encode(&der)),
            (CertHeaderFormat::Xfcc, xfcc),
        ] {
            assert_eq!(read(format, &value), Ok(Some(der.clone())), "{format:?}");
        }
    }

    #[test]
    fn empty_values_and_xfcc_without_cert_are_no_certificate() {
        for format in [
            CertHeaderFormat::PemUrlencoded,
            CertHeaderFormat::Pem,
            CertHeaderFormat::DerBase64,
            CertHeaderFormat::Xfcc,
        ] {
            assert_eq!(read(format, ""), Ok(None));
            assert_eq!(read(format, "  "), Ok(None));
        }
        assert_eq!(
            read(CertHeaderFormat::Xfcc, "By=spiffe://a;Hash=abc"),
            Ok(None)
        );
        // Only the last element counts: the one the proxy in front of us added.
        let der = cert_der("earlier hop");
        let earlier = format!(
            "Cert=\"{}\",By=spiffe://b;Hash=cd",
            urlencode(&pem_of(&der))
        );
        assert_eq!(read(CertHeaderFormat::Xfcc, &earlier), Ok(None));
    }

    #[test]
    fn each_bad_value_has_its_reason() {
        let der = cert_der("client");
        let pem = pem_of(&der);
        let two = format!("{pem}{}", pem_of(&cert_der("other")));
        let junk_before = format!("x{pem}");
        let junk_after = format!("{pem}x");
        let mut der_with_tail = der.clone();
        der_with_tail.extend_from_slice(&der);
        let truncated = STANDARD.encode(&der[..der.len() - 10]);
        let not_cert = STANDARD.encode([0x30, 0x03, 0x02, 0x01, 0x01]);
        let long = "A".repeat(MAX_HEADER_LEN + 1);
        let cases: &[(CertHeaderFormat, &str, CertHeaderError)] = &[
            (
                CertHeaderFormat::DerBase64,
                &long,
                CertHeaderError::TooLong(MAX_HEADER_LEN + 1),
            ),
            (
                CertHeaderFormat::PemUrlencoded,
                "garbage",
                CertHeaderError::Encoding,
            ),
            (
                CertHeaderFormat::PemUrlencoded,
                "%2",
                CertHeaderError::Encoding,
            ),
            (
                CertHeaderFormat::PemUrlencoded,
                "%zz",
                CertHeaderError::Encoding,
            ),
            (
                CertHeaderFormat::PemUrlencoded,
                "%+1",
                CertHeaderError::Encoding,
            ),
            (
                CertHeaderFormat::PemUrlencoded,
                "%FF%FE",
                CertHeaderError::Encoding,
            ),
            (CertHeaderFormat::Pem, &two, CertHeaderError::Several),
            (
                CertHeaderFormat::Pem,
                &junk_before,
                CertHeaderError::Encoding,
            ),
            (
                CertHeaderFormat::Pem,
                &junk_after,
                CertHeaderError::Encoding,
            ),
            (
                CertHeaderFormat::DerBase64,
                "!!!",
                CertHeaderError::Encoding,
            ),
            (
                CertHeaderFormat::DerBase64,
                &truncated,
                CertHeaderError::NotACertificate,
            ),
            (
                CertHeaderFormat::DerBase64,
                &not_cert,
                CertHeaderError::NotACertificate,
            ),
            (
                CertHeaderFormat::Xfcc,
                "Cert=\"unterminated",
                CertHeaderError::Encoding,
            ),
            (CertHeaderFormat::Xfcc, "Cert", CertHeaderError::Encoding),
            (
                CertHeaderFormat::Xfcc,
                "Cert=a;Cert=b",
                CertHeaderError::Several,
            ),
        ];
        for (format, value, want) in cases {
            assert_eq!(read(*format, value), Err(*want), "{format:?} {:.40}", value);
        }
        let tail = STANDARD.encode(&der_with_tail);
        assert_eq!(
            read(CertHeaderFormat::DerBase64, &tail),
            Err(CertHeaderError::Several)
        );
    }

    /// Envoy writes `URI=` and `DNS=` unquoted (whatever `,` or `;` the client's certificate put
    /// in its SANs), after `Cert`: a SAN such as `x,Cert=<another certificate>` would otherwise
    /// add a last element that names a certificate the client does not hold.
    #[test]
    fn a_cert_after_the_proxys_element_is_refused() {
        let own = urlencode(&pem_of(&cert_der("attacker")));
        let victim = urlencode(&pem_of(&cert_der("victim")));
        let injected = format!(
            "By=spiffe://envoy;Hash=aa;Cert=\"{own}\";Subject=\"CN=attacker\";URI=spiffe://x,Cert={victim}"
        );
        assert_eq!(
            read(CertHeaderFormat::Xfcc, &injected),
            Err(CertHeaderError::Several)
        );
    }

    /// Envoy with `APPEND_FORWARD` (or Apache joining a client's own header to the proxy's) puts
    /// client bytes before the proxy's element. An unclosed quote there, closed again by a `\"`
    /// in the client's own certificate Subject, hides the proxy's `Cert` inside a quoted string
    /// and leaves the client's `Cert=<victim>` as the only one.
    #[test]
    fn a_quote_left_open_before_the_proxys_element_is_refused() {
        let own = urlencode(&pem_of(&cert_der("attacker")));
        let victim_der = cert_der("victim");
        let victim = urlencode(&pem_of(&victim_der));
        for (open, sep) in [("x=\"", ","), ("x=\"", ", "), ("k\"", ",")] {
            let shifted = format!(
                "Cert={victim};{open}{sep}By=spiffe://envoy;Hash=aa;Cert=\"{own}\";Subject=\"CN=a\\\"b\";URI=spiffe://x"
            );
            let got = read(CertHeaderFormat::Xfcc, &shifted);
            assert_ne!(
                got,
                Ok(Some(victim_der.clone())),
                "{sep:?}: the victim's certificate"
            );
            assert_eq!(got, Err(CertHeaderError::Encoding), "{sep:?}");
        }
    }

    /// AWS ALB's `X-Amzn-Mtls-Clientcert-Leaf`: URL-encoded PEM with `+`, `=` and `/` left as
    /// they are (percent-decoding is not form decoding: `+` stays `+`).
    #[test]
    fn alb_leaf_header_with_plus_equals_slash_unescaped() {
        let der = cert_der("alb-client");
        let pem = pem_of(&der);
        let encoded: String = pem
            .bytes()
            .map(|b| match b {
                b'A'..=b'Z'
                | b'a'..=b'z'
                | b'0'..=b'9'
                | b'-'
                | b'.'
                | b'_'
                | b'~'
                | b'+'
                | b'='
                | b'/' => (b as char).to_string(),
                _ => format!("%{b:02X}"),
            })
            .collect();
        assert!(encoded.contains(['+', '/', '=']));
        assert_eq!(
            read(CertHeaderFormat::PemUrlencoded, &encoded),
            Ok(Some(der))
        );
    }

    #[test]
    fn format_names() {
        assert_eq!(
            CertHeaderFormat::parse("PEM-URLENCODED"),
            Some(CertHeaderFormat::PemUrlencoded)
        );
        assert_eq!(
            CertHeaderFormat::parse("xfcc"),
            Some(CertHeaderFormat::Xfcc)
        );
        assert_eq!(CertHeaderFormat::parse("der"), None);
    }
}
