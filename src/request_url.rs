//! The URL of a request, as the Apache layer reads it: what a DPoP proof's `htu` is compared with
//! (src/pop/dpop/htu.rs), and what a trusted proxy's forwarded URL replaces (src/proxy/).

/// The request URL as Apache sees it (`ServerName`, `UseCanonicalName`), or as a trusted proxy
/// forwarded it; never as a client claims it in forwarded headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RequestUrl<'a> {
    pub(crate) scheme: &'a str,
    pub(crate) host: &'a str,
    pub(crate) port: u16,
    /// As received, before `?`, still percent-encoded.
    pub(crate) path: &'a str,
}
