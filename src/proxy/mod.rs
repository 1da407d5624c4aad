//! Deployments behind a TLS-terminating proxy: which direct peers are trusted
//! (`OAuth2TrustedProxy`), the client certificate such a proxy forwards in a request header
//! (`mtls.header`), and the public URL it forwards (for a DPoP proof's `htu`). What a peer that is
//! not trusted sends in those headers is never believed.

mod cert_header;
mod public_url;
mod trusted;

pub(crate) use cert_header::{CertHeader, CertHeaderError, CertHeaderFormat};
pub(crate) use public_url::{UrlFrom, public_url};
pub(crate) use trusted::TrustedProxies;
