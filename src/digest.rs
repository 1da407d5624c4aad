//! SHA-2 for the hot path. OpenSSL 3's one-shot `SHA256()` goes through `EVP_Q_digest`, which
//! looks up the provider's implementation and allocates on every call (callgrind: 7,000
//! instructions before hashing a byte); the low-level contexts do neither.

use openssl::sha::{Sha256, Sha384, Sha512};

/// SHA-256 of the concatenation of `parts`.
pub(crate) fn sha256(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Sha256::new();
    for part in parts {
        h.update(part);
    }
    h.finish()
}

/// A SHA-256, SHA-384 or SHA-512 digest, by its length in bytes.
pub(crate) enum Sha2 {
    Sha256([u8; 32]),
    Sha384([u8; 48]),
    Sha512([u8; 64]),
}

/// SHA-2 of `input` with a `len`-byte digest (32 or 48; anything else is SHA-512).
pub(crate) fn sha2(len: usize, input: &[u8]) -> Sha2 {
    match len {
        32 => Sha2::Sha256(sha256(&[input])),
        48 => {
            let mut h = Sha384::new();
            h.update(input);
            Sha2::Sha384(h.finish())
        }
        _ => {
            let mut h = Sha512::new();
            h.update(input);
            Sha2::Sha512(h.finish())
        }
    }
}

impl AsRef<[u8]> for Sha2 {
    fn as_ref(&self) -> &[u8] {
        match self {
            Sha2::Sha256(d) => d,
            Sha2::Sha384(d) => d,
            Sha2::Sha512(d) => d,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_as_the_one_shot_over_the_concatenation() {
        let one_shot = openssl::hash::hash(openssl::hash::MessageDigest::sha256(), b"abc\0def")
            .expect("sha256");
        assert_eq!(sha256(&[b"abc", b"\0", b"def"]).as_slice(), &*one_shot);
        // FIPS 180-2 example.
        assert_eq!(
            crate::hex::lower(&sha256(&[b"abc"])),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn each_length_is_its_sha2() {
        use openssl::hash::{MessageDigest, hash};
        for (len, md) in [
            (32, MessageDigest::sha256()),
            (48, MessageDigest::sha384()),
            (64, MessageDigest::sha512()),
        ] {
            let d = sha2(len, b"signing input");
            assert_eq!(d.as_ref().len(), len);
            assert_eq!(d.as_ref(), &*hash(md, b"signing input").expect("digest"));
        }
    }
}
