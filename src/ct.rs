//! Equality of secrets and tokens in constant time: how long it takes depends on the lengths
//! only, never on where the first difference is. Word by word: OpenSSL's CRYPTO_memcmp goes byte
//! by byte, which costs more than the rest of a cached request for a 1 KB token.

pub(crate) fn eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let word = |bytes: &[u8]| {
        let mut w = [0u8; 8];
        w.copy_from_slice(bytes);
        u64::from_ne_bytes(w)
    };
    let (wa, wb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail = wa.remainder().iter().zip(wb.remainder());
    let mut diff = tail.fold(0u64, |d, (x, y)| d | u64::from(x ^ y));
    for (x, y) in wa.zip(wb) {
        diff |= word(x) ^ word(y);
    }
    // Opaque to the optimiser, so the loop is not turned into an early exit.
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::eq;

    #[test]
    fn equal_only_when_every_byte_and_the_length_match() {
        let a: Vec<u8> = (0..=255u8).cycle().take(1001).collect();
        assert!(eq(&a, &a.clone()));
        assert!(eq(b"", b""));
        for at in [0, 7, 8, 500, 999, 1000] {
            let mut b = a.clone();
            b[at] ^= 0x80;
            assert!(!eq(&a, &b), "difference at {at} missed");
        }
        assert!(!eq(&a, &a[..1000]), "a prefix is not equal");
        assert!(!eq(b"abc", b"abd"));
    }
}
