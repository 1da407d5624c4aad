//! Redis going away and coming back never breaks authentication.

use super::common::remote::*;
use super::common::servers::*;
use super::common::*;
use super::support::*;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[test]
fn redis_failure_never_breaks_authentication() {
    let mut r = Redis::start(RedisAuth::Password("kill-pw".into()));
    let table: Table = Arc::default();
    let m = introspection_server(table);
    let h = Httpd::start(
        HttpdConfig::new(oauth2_location("/i", &introspect_line(&m, &Opts::new()))).server(
            format!(
                "{}{}{}",
                single_process(),
                cache_line("redis", &r.cache_options()),
                passphrase_line(PASSPHRASE)
            ),
        ),
    );
    let mut f = Failures::new();
    let bound = Duration::from_secs(2);

    // healthy
    let t0 = random_id(32);
    for i in 0..3 {
        f.expect(
            &format!("redis up #{i}"),
            &h.https("/i/ok").bearer(&t0).send(),
            200,
            None,
        );
    }
    f.check(calls_for(&m, &t0) == 1, || {
        format!("redis up: {} calls", calls_for(&m, &t0))
    });
    f.check(r.dbsize() >= 1, || "redis up: nothing stored".into());

    // killed: every request still succeeds, quickly; one failure line
    r.kill();
    let mark = h.log_mark();
    let start = Instant::now();
    let mut slowest = Duration::ZERO;
    for i in 0..10 {
        let t = random_id(32);
        let t_req = Instant::now();
        let resp = h.https("/i/ok").bearer(&t).send();
        let took = t_req.elapsed();
        slowest = slowest.max(took);
        f.expect(&format!("redis killed, new token #{i}"), &resp, 200, None);
        f.check(took < bound, || {
            format!("redis killed, new token #{i}: took {took:?}")
        });
        f.check(calls_for(&m, &t) == 1, || {
            format!("redis killed, new token #{i}: {} calls", calls_for(&m, &t))
        });
    }
    let r0 = h.https("/i/ok").bearer(&t0).send();
    f.expect("redis killed, token cached before", &r0, 200, None);
    let phase = start.elapsed();
    let log = h.wait_log_since(mark, |t| !failure_lines(t).is_empty());
    let fl = failure_lines(&log);
    f.check(fl.len() == 1, || {
        format!(
            "redis killed: {} failure lines in {phase:?} (expected exactly one): {fl:?}",
            fl.len()
        )
    });
    f.check(fl.iter().all(|l| l.contains("redis")), || {
        format!("failure lines do not name redis: {fl:?}")
    });
    eprintln!("redis killed: 11 requests in {phase:?}, slowest {slowest:?}, failure lines {fl:?}");

    // restarted on the same port: caching resumes (after the module's back-off)
    r.restart();
    let resumed = poll(Duration::from_secs(20), || {
        let t = random_id(32);
        let resp = h.https("/i/ok").bearer(&t).send();
        if resp.status != 200 {
            return Some(Err(format!("after restart: status {}", resp.status)));
        }
        (r.dbsize() >= 1).then_some(Ok(()))
    });
    match resumed {
        Some(Ok(())) => f.pass(),
        Some(Err(e)) => f.fail(e),
        None => f.fail("redis restarted: nothing stored within 20 s"),
    }

    // frozen (SIGSTOP: connections accepted, no answers): bounded by the network timeout
    r.pause();
    let mut slowest = Duration::ZERO;
    for i in 0..5 {
        let t = random_id(32);
        let t_req = Instant::now();
        let resp = h.https("/i/ok").bearer(&t).send();
        let took = t_req.elapsed();
        slowest = slowest.max(took);
        f.expect(&format!("redis frozen, new token #{i}"), &resp, 200, None);
        f.check(took < bound, || {
            format!("redis frozen, new token #{i}: took {took:?}")
        });
    }
    r.resume();
    eprintln!("redis frozen: slowest request {slowest:?}");
    finish(f, &h);
}
