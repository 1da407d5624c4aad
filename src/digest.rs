//! SHA-256 for the hot path. OpenSSL 3's one-shot `SHA256()` goes through `EVP_Q_digest`, which
//! looks up the provider's implementation and allocates on every call (callgrind: 7,000
//! instructions before hashing a byte); the low-level context does neither.

/// SHA-256 of the concatenation of `parts`.
pub fn sha256(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = openssl::sha::Sha256::new();
    for part in parts {
        h.update(part);
    }
    h.finish()
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
}
