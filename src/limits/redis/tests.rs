//! Against a real `redis-server` each test starts for itself, and against
//! the in-memory limiter of `filters::limits` for the same history.

use super::*;
use filters::limits::budget::Budget;
use filters::limits::day::{day_of, month_of, zone, DaySpan};
use filters::limits::{self as memory, Amounts, Counters, Subject};
use std::sync::Arc;
use std::time::Instant;

// The same harness the integration tests use: a real `redis-server` on a
// free loopback port, stopped and restarted on that port for outages.
#[path = "../../../tests/common/redis.rs"]
#[allow(dead_code)]
mod harness;

use harness::Redis as Server;

async fn raw(server: &Server) -> redis::aio::MultiplexedConnection {
    redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

fn limiter(server: &Server) -> RedisLimiter {
    RedisLimiter::new(&server.url(), Duration::from_secs(2)).unwrap()
}

/// A fixed clock in day 1, which spans the first 24 hours, and month 1,
/// the first 30 days.
fn clock(now_ms: u64) -> Clock {
    Clock {
        now_ms,
        day: DaySpan {
            id: 1,
            start_ms: 0,
            end_ms: 86_400_000,
        },
        month: DaySpan {
            id: 1,
            start_ms: 0,
            end_ms: 30 * 86_400_000,
        },
    }
}

fn tokens(n: u64) -> Amounts {
    Amounts {
        tokens: n,
        spend: 0,
    }
}

fn subject<'a>(name: &'a str, limits: &'a Limits) -> RemoteSubject<'a> {
    RemoteSubject {
        scope: Scope::Key,
        name,
        limits,
    }
}

const LEASE: u64 = 600_000;

async fn admit_one(
    l: &RedisLimiter,
    s: &RemoteSubject<'_>,
    tokens: u64,
    at: &Clock,
    id: &str,
) -> Result<Admitted, Refusal> {
    l.admit(std::slice::from_ref(s), self::tokens(tokens), at, LEASE, id)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rpm_is_exact_under_concurrent_admissions() {
    let server = Server::start();
    let l = Arc::new(limiter(&server));
    let at = clock(5_500);
    let tasks: Vec<_> = (0..4)
        .map(|t| {
            let l = l.clone();
            tokio::spawn(async move {
                let limits = Limits {
                    rpm: Some(10),
                    ..Limits::default()
                };
                let s = subject("k", &limits);
                let calls = (0..25).map(|i| {
                    let id = format!("{t}-{i}");
                    let l = &l;
                    async move { admit_one(l, &s, 0, &at, &id).await.is_ok() }
                });
                futures::future::join_all(calls)
                    .await
                    .into_iter()
                    .filter(|ok| *ok)
                    .count()
            })
        })
        .collect();
    let mut admitted = 0;
    for t in tasks {
        admitted += t.await.unwrap();
    }
    assert_eq!(admitted, 10);
    let limits = Limits {
        rpm: Some(10),
        ..Limits::default()
    };
    let refusal = admit_one(&l, &subject("k", &limits), 0, &at, "late")
        .await
        .unwrap_err();
    // Counted as if at the end of second 5: free again at 66 s.
    assert_eq!(refusal.retry_after_ms, Some(66_000 - 5_500));
    assert!(
        admit_one(&l, &subject("k", &limits), 0, &clock(65_999), "a")
            .await
            .is_err()
    );
    assert!(
        admit_one(&l, &subject("k", &limits), 0, &clock(66_000), "b")
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn two_gateways_on_one_server_are_exact_together() {
    let server = Server::start();
    let (a, b) = (limiter(&server), limiter(&server));
    let limits = Limits {
        rpm: Some(7),
        rpd: Some(9),
        ..Limits::default()
    };
    let s = subject("shared", &limits);
    let mut admitted = 0;
    for i in 0..20u64 {
        let gateway = if i % 2 == 0 { &a } else { &b };
        if admit_one(gateway, &s, 0, &clock(1_000 + i * 10), &i.to_string())
            .await
            .is_ok()
        {
            admitted += 1;
        }
    }
    assert_eq!(admitted, 7);
    // A minute later the day limit is what is left: 2 more.
    let later: Vec<bool> = futures::future::join_all((0..6u64).map(|i| {
        let gateway = if i % 2 == 0 { &a } else { &b };
        let id = format!("later-{i}");
        async move { admit_one(gateway, &s, 0, &clock(70_000), &id).await.is_ok() }
    }))
    .await;
    assert_eq!(later.iter().filter(|ok| **ok).count(), 2);
    let at = clock(70_000);
    assert_eq!(
        a.status(&s, &at).await.unwrap(),
        b.status(&s, &at).await.unwrap()
    );
    let rpd = a.status(&s, &at).await.unwrap()[1];
    assert_eq!(
        (rpd.dimension, rpd.used, rpd.remaining),
        (Dimension::Rpd, 9, 0)
    );
}

#[tokio::test]
async fn tokens_reserve_then_settle_to_real_usage() {
    let server = Server::start();
    let l = limiter(&server);
    let limits = Limits {
        tpm: Some(1000),
        tpd: Some(1_000_000),
        ..Limits::default()
    };
    let s = subject("k", &limits);
    let first = admit_one(&l, &s, 600, &clock(1_000), "r1").await.unwrap();
    assert_eq!(first.statuses[0][0].used, 600);
    // 600 reserved: 500 more would pass the minute's 1000.
    let refused = admit_one(&l, &s, 500, &clock(2_000), "r2")
        .await
        .unwrap_err();
    assert_eq!(refused.dimension, Dimension::Tpm);
    assert_eq!(refused.retry_after_ms, Some(62_000 - 2_000));
    assert!(!refused.too_large);
    // The response used only 100: room for the 500 now.
    l.settle(std::slice::from_ref(&s), &first.ticket, tokens(100), "r1")
        .await
        .unwrap();
    let second = admit_one(&l, &s, 500, &clock(2_000), "r2").await.unwrap();
    assert_eq!(second.statuses[0][0].used, 600);
    l.settle(std::slice::from_ref(&s), &second.ticket, tokens(450), "r2")
        .await
        .unwrap();
    let status = l.status(&s, &clock(3_000)).await.unwrap();
    assert_eq!(
        (status[0].dimension, status[0].used, status[0].remaining),
        (Dimension::Tpm, 550, 450)
    );
    assert_eq!((status[1].dimension, status[1].used), (Dimension::Tpd, 550));
    // The first bucket leaves at 62 s, the second at 63 s.
    assert_eq!(l.status(&s, &clock(62_000)).await.unwrap()[0].used, 450);
    assert_eq!(l.status(&s, &clock(63_000)).await.unwrap()[0].used, 0);
    assert_eq!(l.status(&s, &clock(63_000)).await.unwrap()[1].used, 550);
}

#[tokio::test]
async fn a_request_larger_than_a_limit_is_too_large() {
    let server = Server::start();
    let l = limiter(&server);
    let tpm = Limits {
        tpm: Some(1000),
        ..Limits::default()
    };
    let r = admit_one(&l, &subject("k", &tpm), 1001, &clock(0), "a")
        .await
        .unwrap_err();
    assert_eq!(
        (r.dimension, r.limit, r.retry_after_ms, r.too_large),
        (Dimension::Tpm, 1000, None, true)
    );
    assert!(r.message().contains("lower max_tokens"));
    let tpd = Limits {
        tpd: Some(5000),
        ..Limits::default()
    };
    let r = admit_one(&l, &subject("m", &tpd), 5001, &clock(0), "b")
        .await
        .unwrap_err();
    assert_eq!(
        (r.dimension, r.retry_after_ms, r.too_large),
        (Dimension::Tpd, None, true)
    );
    // Exactly the limit fits.
    assert!(admit_one(&l, &subject("k", &tpm), 1000, &clock(0), "c")
        .await
        .is_ok());
}

#[tokio::test]
async fn days_end_at_local_midnight() {
    let server = Server::start();
    let l = limiter(&server);
    let shanghai = zone("Asia/Shanghai").unwrap();
    let at = |ms: u64| Clock {
        now_ms: ms,
        day: day_of(&shanghai, ms),
        month: month_of(&shanghai, ms),
    };
    // 2026-12-03T15:59:58Z is 23:59:58 in Shanghai; midnight 2 s later.
    let midnight = 1_796_313_600_000;
    assert_eq!(day_of(&shanghai, midnight - 2_000).id, 20261203);
    assert_eq!(day_of(&shanghai, midnight).id, 20261204);
    let limits = Limits {
        rpd: Some(2),
        tpd: Some(1000),
        ..Limits::default()
    };
    let s = subject("k", &limits);
    let before = at(midnight - 2_000);
    let first = admit_one(&l, &s, 300, &before, "a").await.unwrap();
    admit_one(&l, &s, 300, &before, "b").await.unwrap();
    let r = admit_one(&l, &s, 0, &at(midnight - 1_500), "c")
        .await
        .unwrap_err();
    assert_eq!(
        (r.dimension, r.retry_after_ms),
        (Dimension::Rpd, Some(1_500))
    );
    let after = at(midnight);
    let today = admit_one(&l, &s, 900, &after, "c").await.unwrap();
    assert_eq!(today.ticket.day, 20261204);
    // Yesterday's request ending now counts in yesterday, not today.
    l.settle(
        std::slice::from_ref(&s),
        &first.ticket,
        tokens(1_000_000),
        "a",
    )
    .await
    .unwrap();
    let status = l.status(&s, &after).await.unwrap();
    assert_eq!((status[0].used, status[1].used), (1, 900));
    assert_eq!(status[0].reset_ms, 86_400_000);
    let r = admit_one(&l, &s, 101, &after, "d").await.unwrap_err();
    assert_eq!(
        (r.dimension, r.retry_after_ms),
        (Dimension::Tpd, Some(86_400_000))
    );
}

#[tokio::test]
async fn places_in_flight_free_on_settlement_or_when_the_lease_ends() {
    let server = Server::start();
    let l = limiter(&server);
    let limits = Limits {
        concurrency: Some(2),
        ..Limits::default()
    };
    let s = subject("k", &limits);
    let one = |id: &'static str, at: u64, lease: u64| {
        let s = &s;
        let l = &l;
        async move {
            l.admit(
                std::slice::from_ref(s),
                Amounts::ZERO,
                &clock(at),
                lease,
                id,
            )
            .await
            .unwrap()
        }
    };
    let a = one("a", 1_000, 10_000).await.unwrap();
    one("b", 1_000, 5_000).await.unwrap();
    let r = one("c", 1_000, 10_000).await.unwrap_err();
    assert_eq!(
        (r.dimension, r.retry_after_ms, r.too_large),
        (Dimension::Concurrency, None, false)
    );
    l.settle(std::slice::from_ref(&s), &a.ticket, Amounts::ZERO, "a")
        .await
        .unwrap();
    let c = one("c", 1_000, 10_000).await.unwrap();
    assert_eq!(c.statuses[0][0].used, 2);
    // b's lease ends at 6 s: it stops holding its place then, not before.
    assert!(one("d", 5_999, 10_000).await.is_err());
    let d = one("d", 6_000, 10_000).await.unwrap();
    assert_eq!(d.statuses[0][0].used, 2);
    assert_eq!(l.status(&s, &clock(6_000)).await.unwrap()[0].used, 2);
    // Settling twice, or a lease already over, frees nothing more.
    l.settle(std::slice::from_ref(&s), &a.ticket, Amounts::ZERO, "a")
        .await
        .unwrap();
    l.settle(std::slice::from_ref(&s), &a.ticket, Amounts::ZERO, "b")
        .await
        .unwrap();
    assert_eq!(l.status(&s, &clock(6_000)).await.unwrap()[0].used, 2);
}

#[tokio::test]
async fn a_refusal_changes_nothing() {
    let server = Server::start();
    let l = limiter(&server);
    let roomy = Limits {
        rpm: Some(100),
        tpm: Some(100_000),
        rpd: Some(1000),
        tpd: Some(1_000_000),
        concurrency: Some(100),
        budget: Budget::default(),
    };
    let tight = Limits {
        rpm: Some(1),
        ..Limits::default()
    };
    let key = RemoteSubject {
        scope: Scope::Key,
        name: "k",
        limits: &roomy,
    };
    let model = RemoteSubject {
        scope: Scope::Model,
        name: "m",
        limits: &tight,
    };
    let both = [key, model];
    let ok = l
        .admit(&both, tokens(10), &clock(1_000), LEASE, "a")
        .await
        .unwrap()
        .unwrap();
    let mut raw = raw(&server).await;
    let dump = |keys: Vec<String>| {
        let mut keys = keys;
        keys.sort();
        keys
    };
    let keys_before: Vec<String> = redis::cmd("KEYS")
        .arg("ms:lim:*")
        .query_async(&mut raw)
        .await
        .unwrap();
    let key_status = l.status(&key, &clock(2_000)).await.unwrap();
    let r = l
        .admit(&both, tokens(10), &clock(2_000), LEASE, "b")
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(
        (r.scope, r.subject.as_str(), r.dimension),
        (Scope::Model, "m", Dimension::Rpm)
    );
    assert!(r.message().contains("model 'm': rpm = 1"));
    assert_eq!(l.status(&key, &clock(2_000)).await.unwrap(), key_status);
    let keys_after: Vec<String> = redis::cmd("KEYS")
        .arg("ms:lim:*")
        .query_async(&mut raw)
        .await
        .unwrap();
    assert_eq!(dump(keys_before), dump(keys_after));
    assert_eq!(ok.statuses.len(), 2);
    assert_eq!(ok.statuses[0], l.status(&key, &clock(1_000)).await.unwrap());
}

#[tokio::test]
async fn keys_expire_and_minute_hashes_stay_small() {
    let server = Server::start();
    let l = limiter(&server);
    let limits = Limits {
        rpm: Some(1000),
        ..Limits::default()
    };
    let s = subject("idle:soon", &limits);
    for sec in 0..200u64 {
        admit_one(&l, &s, 1, &clock(sec * 1000), &sec.to_string())
            .await
            .unwrap();
    }
    let mut raw = raw(&server).await;
    for (k, most) in [("rm", 61), ("tm", 61)] {
        let name = format!("ms:lim:k:idle:soon:{k}");
        let len: u64 = redis::cmd("HLEN")
            .arg(&name)
            .query_async(&mut raw)
            .await
            .unwrap();
        assert!(len <= most, "{name} holds {len} fields");
        let ttl: i64 = redis::cmd("PTTL")
            .arg(&name)
            .query_async(&mut raw)
            .await
            .unwrap();
        assert!((1..=120_000).contains(&ttl), "{name} ttl {ttl}");
    }
    for name in ["ms:lim:k:idle:soon:d:1", "ms:lim:k:idle:soon:c"] {
        let ttl: i64 = redis::cmd("PTTL")
            .arg(name)
            .query_async(&mut raw)
            .await
            .unwrap();
        assert!(ttl > 0, "{name} ttl {ttl}");
    }
    let status = l.status(&s, &clock(199_500)).await.unwrap();
    assert_eq!(status[0].used, 61);
    assert_eq!(status[0].reset_ms, 260_000 - 199_500);
}

/// The same history through both limiters: every admission, refusal
/// (retry times included) and status must agree.
#[tokio::test]
async fn agrees_with_the_memory_limiter_on_any_history() {
    let server = Server::start();
    let l = limiter(&server);
    let shanghai = zone("Asia/Shanghai").unwrap();
    let names = ["alice", "gpt", "upstream"];
    let scopes = [Scope::Key, Scope::Model, Scope::Provider];
    // Refusals seen, by dimension: the histories must reach every kind.
    let mut refused: std::collections::HashMap<(Dimension, bool), usize> = Default::default();
    for seed in 1..=8u64 {
        let mut rng = fastrand::Rng::with_seed(seed);
        // Each dimension limited or not, tight or loose, per subject.
        let mut pick = |lo: u64, hi: u64| rng.bool().then(|| rng.u64(lo..hi));
        let limits: Vec<Limits> = (0..3)
            .map(|_| Limits {
                rpm: pick(3, 15),
                tpm: pick(2_000, 9_000),
                rpd: pick(15, 80),
                tpd: pick(8_000, 40_000),
                concurrency: pick(2, 6),
                budget: Budget {
                    daily: pick(3_000_000, 15_000_000),
                    monthly: pick(8_000_000, 40_000_000),
                },
            })
            .collect();
        let mut counters: Vec<Counters> = (0..3).map(|_| Counters::default()).collect();
        // Distinct names per seed: each history starts from empty counters.
        let names: Vec<String> = names.iter().map(|n| format!("{n}-{seed}")).collect();
        let remote: Vec<RemoteSubject<'_>> = (0..3)
            .map(|i| RemoteSubject {
                scope: scopes[i],
                name: &names[i],
                limits: &limits[i],
            })
            .collect();
        // Ten minutes before midnight in Shanghai: the history crosses it;
        // every other seed, the midnight that ends December.
        let midnight = if seed % 2 == 0 {
            1_798_732_800_000
        } else {
            1_796_313_600_000
        };
        let mut now = midnight - 600_000 + rng.u64(0..1000);
        let mut open: Vec<(Ticket, std::ops::Range<usize>, String)> = Vec::new();
        for step in 0..600 {
            // Mostly bursts, now and then a pause that empties windows.
            now += if rng.u8(0..15) == 0 {
                rng.u64(0..70_000)
            } else {
                rng.u64(0..1_500)
            };
            let at = Clock {
                now_ms: now,
                day: day_of(&shanghai, now),
                month: month_of(&shanghai, now),
            };
            match rng.u8(0..10) {
                0..=5 => {
                    // All three subjects, the key alone, or model and provider.
                    let range = [0..3, 0..1, 1..3][rng.usize(0..3)].clone();
                    let tokens = if rng.u8(0..25) == 0 {
                        45_000
                    } else {
                        rng.u64(0..2_500)
                    };
                    // Now and then a request dearer than any budget.
                    let spend = match rng.u8(0..25) {
                        0 => 50_000_000,
                        1..=3 => 0,
                        _ => rng.u64(0..2_000_000),
                    };
                    let amounts = Amounts { tokens, spend };
                    let id = format!("{seed}-{step}");
                    let mut subjects: Vec<Subject<'_>> = counters[range.clone()]
                        .iter_mut()
                        .zip(range.clone())
                        .map(|(c, i)| Subject {
                            scope: scopes[i],
                            name: &names[i],
                            limits: &limits[i],
                            counters: c,
                        })
                        .collect();
                    let expected = memory::admit(&mut subjects, amounts, &at);
                    let got = l
                        .admit(&remote[range.clone()], amounts, &at, LEASE, &id)
                        .await
                        .unwrap();
                    match (expected, got) {
                        (Ok(ticket), Ok(admitted)) => {
                            assert_eq!(ticket, admitted.ticket);
                            for (i, got) in range.clone().zip(&admitted.statuses) {
                                let want = counters[i].status(&limits[i], &at);
                                assert_eq!(got, &want, "seed {seed} step {step} subject {i}");
                            }
                            open.push((ticket, range, id));
                        }
                        (Err(want), Err(got)) => {
                            assert_eq!(got, want, "seed {seed} step {step}");
                            *refused.entry((want.dimension, want.too_large)).or_default() += 1;
                        }
                        (want, got) => {
                            panic!("seed {seed} step {step}: memory {want:?}, redis {got:?}")
                        }
                    }
                }
                6..=8 if !open.is_empty() => {
                    let (ticket, range, id) = open.swap_remove(rng.usize(0..open.len()));
                    let actual = Amounts {
                        tokens: rng.u64(0..=ticket.tokens + ticket.tokens / 5),
                        spend: rng.u64(0..=ticket.spend + ticket.spend / 5),
                    };
                    for (c, i) in counters[range.clone()].iter_mut().zip(range.clone()) {
                        c.settle(&limits[i], &ticket, actual);
                    }
                    l.settle(&remote[range], &ticket, actual, &id)
                        .await
                        .unwrap();
                }
                _ => {
                    for i in 0..3 {
                        let want = counters[i].status(&limits[i], &at);
                        let got = l.status(&remote[i], &at).await.unwrap();
                        assert_eq!(got, want, "seed {seed} step {step} subject {i}");
                    }
                }
            }
        }
    }
    for kind in [
        (Dimension::DailyBudget, false),
        (Dimension::DailyBudget, true),
        (Dimension::MonthlyBudget, false),
        (Dimension::Tpm, false),
        (Dimension::Rpm, false),
    ] {
        assert!(
            refused.contains_key(&kind),
            "{kind:?} never refused: {refused:?}"
        );
    }
}

#[tokio::test]
async fn a_stopped_server_is_an_error_within_the_timeout_and_a_restarted_one_works() {
    let mut server = Server::start();
    let timeout = Duration::from_millis(300);
    let l = RedisLimiter::new(&server.url(), timeout).unwrap();
    let limits = Limits {
        rpm: Some(100),
        ..Limits::default()
    };
    let s = subject("k", &limits);
    let at = clock(1_000);
    admit_one(&l, &s, 0, &at, "a").await.unwrap();
    server.stop();
    for _ in 0..3 {
        let started = Instant::now();
        let err = l
            .admit(std::slice::from_ref(&s), Amounts::ZERO, &at, LEASE, "b")
            .await
            .unwrap_err();
        assert!(
            started.elapsed() < timeout + Duration::from_millis(200),
            "{:?}",
            started.elapsed()
        );
        assert!(
            err.to_string()
                .contains(&format!("127.0.0.1:{}", server.port)),
            "{err}"
        );
        let started = Instant::now();
        assert!(l.status(&s, &at).await.is_err());
        assert!(l
            .settle(
                std::slice::from_ref(&s),
                &Ticket::new(&at, Amounts::ZERO),
                Amounts::ZERO,
                "a"
            )
            .await
            .is_err());
        assert!(started.elapsed() < 2 * timeout + Duration::from_millis(200));
    }
    server.restart();
    // The same limiter finds the new server (whose script cache is empty).
    let deadline = Instant::now() + Duration::from_secs(5);
    let admitted = loop {
        match l
            .admit(std::slice::from_ref(&s), Amounts::ZERO, &at, LEASE, "c")
            .await
        {
            Ok(r) => break r.unwrap(),
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("not back within 5 s: {e}"),
        }
    };
    // Nothing was saved: the new server starts from zero.
    assert_eq!(admitted.statuses[0][0].used, 1);
}

#[tokio::test]
async fn connects_lazily_and_never_shows_the_password() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("redis://default:hunter2-secret@127.0.0.1:{port}/0");
    let l = RedisLimiter::new(&url, Duration::from_millis(200)).unwrap();
    assert!(!format!("{l:?}").contains("hunter2"));
    let limits = Limits {
        rpm: Some(1),
        ..Limits::default()
    };
    let started = Instant::now();
    let err = l
        .status(&subject("k", &limits), &clock(0))
        .await
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_millis(500));
    assert!(!err.to_string().contains("hunter2"), "{err}");
    assert!(
        err.to_string()
            .contains(&format!("redis://***@127.0.0.1:{port}/0")),
        "{err}"
    );
    let bad = RedisLimiter::new(
        "redis://:hunter2-secret@127.0.0.1:notaport/0",
        Duration::from_millis(200),
    );
    assert!(!bad.unwrap_err().to_string().contains("hunter2"));
}

#[test]
fn redacts_credentials_and_queries() {
    assert_eq!(
        redact("redis://127.0.0.1:6379/0"),
        "redis://127.0.0.1:6379/0"
    );
    assert_eq!(redact("redis://:p@ss/w@host:1/2"), "redis://***@host:1/2");
    assert_eq!(redact("rediss://user:pw@h"), "rediss://***@h");
    assert_eq!(
        redact("redis+unix:///run/redis.sock?db=1&pass=pw"),
        "redis+unix:///run/redis.sock"
    );
    let secrets = raw_secrets("redis://user:pw-long@h");
    assert_eq!(scrub("user:pw-long and pw-long", &secrets), "*** and ***");
}
