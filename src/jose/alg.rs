//! The JWS algorithms this module verifies (RFC 7518 §3, RFC 8037).

use std::fmt;

use openssl::hash::MessageDigest;
use openssl::md::{Md, MdRef};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Alg {
    HS256,
    HS384,
    HS512,
    RS256,
    RS384,
    RS512,
    PS256,
    PS384,
    PS512,
    ES256,
    ES384,
    ES512,
    EdDSA,
}

/// The primitive behind an `Alg`; a key serves exactly one family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Family {
    Hmac,
    RsaPkcs1,
    RsaPss,
    Ecdsa,
    EdDSA,
}

impl Alg {
    /// Exact, case-sensitive JOSE name. "none" (any case) and unknown names
    /// give `None`. "Ed25519" is the fully specified RFC 9864 name for EdDSA
    /// over Ed25519, the only EdDSA curve supported.
    pub(crate) fn from_name(s: &str) -> Option<Alg> {
        use Alg::*;
        Some(match s {
            "HS256" => HS256,
            "HS384" => HS384,
            "HS512" => HS512,
            "RS256" => RS256,
            "RS384" => RS384,
            "RS512" => RS512,
            "PS256" => PS256,
            "PS384" => PS384,
            "PS512" => PS512,
            "ES256" => ES256,
            "ES384" => ES384,
            "ES512" => ES512,
            "EdDSA" | "Ed25519" => EdDSA,
            _ => return None,
        })
    }

    pub(crate) fn name(self) -> &'static str {
        use Alg::*;
        match self {
            HS256 => "HS256",
            HS384 => "HS384",
            HS512 => "HS512",
            RS256 => "RS256",
            RS384 => "RS384",
            RS512 => "RS512",
            PS256 => "PS256",
            PS384 => "PS384",
            PS512 => "PS512",
            ES256 => "ES256",
            ES384 => "ES384",
            ES512 => "ES512",
            EdDSA => "EdDSA",
        }
    }

    /// True for the HMAC algorithms (shared-secret keys).
    #[cfg(test)]
    pub(crate) fn is_symmetric(self) -> bool {
        self.family() == Family::Hmac
    }

    pub(crate) fn family(self) -> Family {
        use Alg::*;
        match self {
            HS256 | HS384 | HS512 => Family::Hmac,
            RS256 | RS384 | RS512 => Family::RsaPkcs1,
            PS256 | PS384 | PS512 => Family::RsaPss,
            ES256 | ES384 | ES512 => Family::Ecdsa,
            EdDSA => Family::EdDSA,
        }
    }

    /// Output size of the SHA-2 hash in bytes (EdDSA hashes internally: 64).
    pub(crate) fn hash_len(self) -> usize {
        use Alg::*;
        match self {
            HS256 | RS256 | PS256 | ES256 => 32,
            HS384 | RS384 | PS384 | ES384 => 48,
            HS512 | RS512 | PS512 | ES512 | EdDSA => 64,
        }
    }

    /// The SHA-2 digest for the algorithms that hash before signing.
    pub(crate) fn digest(self) -> MessageDigest {
        match self.hash_len() {
            32 => MessageDigest::sha256(),
            48 => MessageDigest::sha384(),
            _ => MessageDigest::sha512(),
        }
    }

    /// The same digest, as the `EVP_MD` a verification context takes.
    pub(crate) fn md(self) -> &'static MdRef {
        match self.hash_len() {
            32 => Md::sha256(),
            48 => Md::sha384(),
            _ => Md::sha512(),
        }
    }
}

impl fmt::Display for Alg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for name in [
            "HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
            "ES256", "ES384", "ES512", "EdDSA",
        ] {
            let alg = Alg::from_name(name);
            assert_eq!(alg.map(Alg::name), Some(name));
        }
        assert_eq!(Alg::from_name("Ed25519"), Some(Alg::EdDSA));
    }

    #[test]
    fn rejects_none_and_case_variants() {
        for name in [
            "none", "None", "NONE", "nOnE", "hs256", "Rs256", "HS256 ", "", "Ed448",
        ] {
            assert_eq!(Alg::from_name(name), None, "{name}");
        }
    }
}
