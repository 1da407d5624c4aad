//! Graceful restarts keep the shm cache usable and do not leak mappings.

use super::common::remote::*;
use super::common::*;
use super::support::*;
use std::fs;

/// Shared mappings of a process: `/dev/zero (deleted)` or anonymous with the `s` flag and inode 0.
/// Returns (count, total bytes).
fn shared_anon_mappings(pid: u32) -> (usize, u64) {
    let maps = fs::read_to_string(format!("/proc/{pid}/maps"))
        .unwrap_or_else(|e| panic!("/proc/{pid}/maps: {e}"));
    let mut n = 0;
    let mut bytes = 0;
    for l in maps.lines() {
        let cols: Vec<&str> = l.split_whitespace().collect();
        if cols.len() < 5 {
            continue;
        }
        let shared = cols[1].ends_with('s');
        let path = cols[5..].join(" ");
        let anon = path.is_empty() && cols[4] == "0";
        if shared && (path.starts_with("/dev/zero") || anon) {
            n += 1;
            if let Some((a, b)) = cols[0].split_once('-') {
                let a = u64::from_str_radix(a, 16).unwrap_or(0);
                let b = u64::from_str_radix(b, 16).unwrap_or(0);
                bytes += b.saturating_sub(a);
            }
        }
    }
    (n, bytes)
}

fn parent_pid(h: &Httpd) -> u32 {
    let text = fs::read_to_string(h.dir.join("httpd.pid")).expect("httpd.pid");
    text.trim().parse().expect("pid in httpd.pid")
}

/// A new token: verified at /a, then a shared hit at /b.
fn shm_round_trip(h: &Httpd, signer: &TokenSigner, f: &mut Failures, when: &str) {
    let user = format!("gr-{}", random_id(6));
    let tok = signer.mint(&claims(&user));
    let mark = h.log_mark();
    f.expect(
        &format!("{when}: /a"),
        &h.https("/a/ok").bearer(&tok).send(),
        200,
        None,
    );
    f.expect(
        &format!("{when}: /b"),
        &h.https("/b/ok").bearer(&tok).send(),
        200,
        None,
    );
    let log = h.wait_log_since(mark, |t| accepted_for(t, &user).len() >= 2);
    let o = origins(&accepted_for(&log, &user));
    f.check(o == [Origin::Verified, Origin::Shared], || {
        format!("{when}: origins {o:?}, expected verified at /a then shared at /b")
    });
}

#[test]
fn graceful_restarts_keep_shm_usable_and_do_not_leak() {
    let signer = TokenSigner::ec("gr");
    let mut h = Httpd::start(
        HttpdConfig::new(twin_locations(&jwk_verify(&signer, ""))).server(format!(
            "{}{}",
            single_process(),
            cache_line("shm", "max_entries=2000")
        )),
    );
    let mut f = Failures::new();
    shm_round_trip(&h, &signer, &mut f, "before restarts");
    let pid = parent_pid(&h);
    let before = shared_anon_mappings(pid);
    let mut counts = vec![before];
    let old = signer.mint(&claims("gr-old"));
    f.expect(
        "old token before",
        &h.https("/a/ok").bearer(&old).send(),
        200,
        None,
    );
    for i in 1..=3 {
        h.graceful();
        assert_eq!(
            parent_pid(&h),
            pid,
            "the parent changed across a graceful restart"
        );
        shm_round_trip(&h, &signer, &mut f, &format!("after graceful #{i}"));
        let r = h.https("/a/ok").bearer(&old).send();
        f.expect(&format!("old token after graceful #{i}"), &r, 200, None);
        counts.push(shared_anon_mappings(pid));
    }
    let after = *counts.last().unwrap();
    eprintln!("parent {pid}: shared anonymous mappings (count, bytes) per generation: {counts:?}");
    f.check(after.0 <= before.0, || {
        format!(
            "shared mappings of the parent grew over 3 graceful restarts: {counts:?} (count, bytes)"
        )
    });
    finish(f, &h);
}
