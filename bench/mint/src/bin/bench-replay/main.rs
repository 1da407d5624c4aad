//! bench-replay: the cost of the DPoP replay store's write, on the module's own shm store.
//!
//!   bench-replay [ops]      (default 200000, in 5 rounds; prints one RESULT line)
//!
//! The module remembers each accepted proof's jti with `Cache::insert_if_absent("dpop-jti",
//! <replay key>, b"", dpop.expiry)` (src/authn.rs) in the verifier's `dpop.cache` (bench/run
//! gives it an `OAuth2Cache shm` sized for the run, values up to 16 bytes). The
//! replay key is `SHA-256("dpop-jti" NUL <proof key's thumbprint> NUL <jti>)`
//! (`CheckedProof::replay_key`, src/pop/dpop/mod.rs). The call is, with the default
//! `key_hash=sha256` and no encryption (shm does not encrypt by default): the storage key
//! `hex(SHA-256("dpop-jti" NUL <replay key>))`, then `ShmStore::insert_if_absent`, which takes
//! the key's segment lock (a process-shared robust pthread mutex), probes its window of slots and
//! writes the slot header, the key and the (empty) value.
//!
//! `src/cache/store.rs`, `src/cache/shm/`, `src/digest.rs` and `src/hex.rs` are compiled here
//! from the module's sources (see cache.rs; the crate builds as a cdylib and keeps these
//! pub(crate), so a separate program cannot link them); only the few lines of
//! `Cache::storage_key` are restated below. Measured, per operation (median of 5 rounds):
//!
//! - key_ns: the replay key and the storage key (two SHA-256, lowercase hex);
//! - insert_ns: insert_if_absent of a new key (TTL 3600 s) into a store with room: 4 x ops
//!   entries of at most 16-byte values, filled from 0 to 25% by the timed inserts (the module
//!   refuses a proof rather than evict a live jti, so a replay store is sized for its load);
//!   full = inserts refused because every slot of their window was live (expected 0);
//! - replay_ns: insert_if_absent of a key that is there (a replayed proof: Ok(false));
//! - total_ns: key_ns + insert_ns, the replay-store work of one accepted proof.
//!
//! One process, one thread: the lock is never contended (with 2 children x 32 threads on one CPU
//! it rarely is). The mapping is touched before timing (a running httpd's table is resident).
#![allow(dead_code)]

mod cache;
#[path = "../../../../../src/digest.rs"]
mod digest;
#[path = "../../../../../src/hex.rs"]
mod hex;

use cache::shm::ShmStore;
use cache::store::Store;
use std::hint::black_box;
use std::time::{Duration, Instant};

/// `Cache::storage_key` with the default key_hash (sha256), as in src/cache/shared.rs.
fn storage_key(namespace: &str, key: &[u8]) -> String {
    let parts: [&[u8]; 3] = [namespace.as_bytes(), b"\0", key];
    hex::lower(&digest::sha256(&parts))
}

/// `CheckedProof::replay_key` (src/pop/dpop/mod.rs): the proof key's thumbprint and the jti.
fn replay_key(jkt: &str, jti: &str) -> [u8; 32] {
    digest::sha256(&[b"dpop-jti\0", jkt.as_bytes(), b"\0", jti.as_bytes()])
}

/// What the module hashes per accepted proof: the replay key, then the storage key.
fn key_of(namespace: &str, jkt: &str, jti: &str) -> String {
    storage_key(namespace, &replay_key(jkt, jti))
}

const JKT: &str = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"; // a thumbprint's shape (43 chars)

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() {
    let ops: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse().expect("ops: a number"))
        .unwrap_or(200_000)
        .max(2000);
    let rounds = 5;
    let ttl = Duration::from_secs(3600);
    // jti as bench-mint makes them: <tag>-<nanoseconds>-<n>.
    let jtis: Vec<String> = (0..ops)
        .map(|i| format!("pool-1765051200123456789-{i}"))
        .collect();

    // 1. The replay key and the storage key.
    let mut key_ns = Vec::new();
    let mut keys = Vec::new();
    for _ in 0..rounds {
        let t = Instant::now();
        keys = jtis
            .iter()
            .map(|j| key_of("dpop-jti", JKT, black_box(j)))
            .collect::<Vec<_>>();
        key_ns.push(t.elapsed().as_nanos() as f64 / ops as f64);
    }

    // 2. Inserts of new keys into a store sized as the module asks for DPoP (insert-if-absent
    // never evicts a live entry: a full window refuses the proof), shaped like bench/run's
    // `OAuth2Cache shm name=dpop&max_entries=...&max_val_size=16`: 4 x ops entries, filled from
    // 0 to 25% by the timed inserts. Its pages are touched first (ops entries that expire after
    // a second), as in a store that has been in use.
    let entries = 4 * ops;
    let store = ShmStore::new(128, 16, entries).expect("shm store");
    for i in 0..ops {
        store
            .set(
                &key_of("touch", JKT, &i.to_string()),
                b"",
                Duration::from_secs(1),
            )
            .expect("set");
    }
    std::thread::sleep(Duration::from_millis(2100));
    let mut insert_ns = Vec::new();
    let (mut inserted, mut full) = (0usize, 0usize);
    let per_round = ops / rounds;
    for round in 0..rounds {
        let batch = &keys[round * per_round..(round + 1) * per_round];
        let t = Instant::now();
        for k in batch {
            match store.insert_if_absent(black_box(k), b"", ttl) {
                Ok(true) => inserted += 1,
                Ok(false) => panic!("a new key was found"),
                Err(_) => full += 1,
            }
        }
        insert_ns.push(t.elapsed().as_nanos() as f64 / per_round as f64);
    }
    assert_eq!(inserted + full, rounds * per_round);

    // 3. Replays: keys that are there, in a second table of the same size holding only them (100
    // keys in 32 segments of 32 slots: no window fills up, so none is ever evicted).
    let replays = ShmStore::new(128, 8192, 1000).expect("shm store");
    let recent: Vec<String> = (0..100).map(|i| key_of("replay", JKT, &jtis[i])).collect();
    for k in &recent {
        assert!(replays.insert_if_absent(k, b"", ttl).expect("insert"));
    }
    let mut replay_ns = Vec::new();
    let reps = (ops / recent.len()).max(1);
    for _ in 0..rounds {
        let t = Instant::now();
        let mut refused = 0usize;
        for _ in 0..reps {
            for k in &recent {
                if !replays
                    .insert_if_absent(black_box(k), b"", ttl)
                    .expect("insert")
                {
                    refused += 1;
                }
            }
        }
        replay_ns.push(t.elapsed().as_nanos() as f64 / (reps * recent.len()) as f64);
        assert_eq!(
            refused,
            reps * recent.len(),
            "a key that is there is refused"
        );
    }

    let (k, i, r) = (median(key_ns), median(insert_ns), median(replay_ns));
    println!(
        "RESULT key_ns={k:.0} insert_ns={i:.0} replay_ns={r:.0} total_ns={:.0} ops={ops} rounds={rounds} entries={entries} full={full}",
        k + i
    );
}
