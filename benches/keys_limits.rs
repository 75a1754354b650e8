//! The request path's admission: finding the client's key (a config key by
//! its secret; a store key by the SHA-256 of its secret) and checking,
//! counting and settling its limits on the memory backend — the steps
//! `proxy/auth.rs` and `limits::Limiter::admit` take for a limited key.
//! Target: key lookup and limit check together under 2 µs.
//! Run: `cargo bench --bench keys_limits`; numbers in benches/README.md.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../src/state/keys.rs"]
#[allow(dead_code)]
mod keys;

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use filters::auth::{ClientKey, KeySource, KeySpec};
use filters::limits::day::{day_of, month_of, zone};
use filters::limits::{self, Amounts, Clock, Headroom, Limits, Scope, Subject};
use keys::{Keys, StoreKey};
use std::collections::HashMap;
use std::sync::Arc;

/// 1,000 config keys and 10,000 store keys, each with limits.
fn table() -> (Keys, String, String) {
    let limits = Limits {
        rpm: Some(1_000_000),
        tpm: Some(1_000_000_000),
        rpd: Some(1_000_000_000),
        concurrency: Some(1_000_000),
        ..Limits::default()
    };
    let key = |name: String, source| {
        let mut spec = KeySpec::named(name);
        spec.limits = limits;
        Arc::new(ClientKey::from_spec(spec, source, None).unwrap())
    };
    let config: HashMap<String, Arc<ClientKey>> = (0..1000)
        .map(|i| {
            (
                format!("sk-config-key-{i:06}"),
                key(format!("cfg{i}"), KeySource::Config),
            )
        })
        .collect();
    let minted = |i: usize| format!("sk-ms-{i:032}");
    let store: Vec<StoreKey> = (0..10_000)
        .map(|i| StoreKey {
            hash: filters::auth::key_hash(&minted(i)),
            key: key(format!("st{i}"), KeySource::Store),
        })
        .collect();
    let keys = Keys::default();
    keys.set_config(&config);
    keys.set_store(store);
    (keys, "sk-config-key-000500".to_owned(), minted(5000))
}

/// One admission as the shell makes it: lock, check and count, read the
/// headroom for the headers, unlock; then settle at the end.
fn admit_and_settle(entry: &keys::KeyEntry, clock: &Clock) -> Headroom {
    let mut counters = entry.runtime.counters.lock().unwrap();
    let mut subjects = [Subject {
        scope: Scope::Key,
        name: &entry.key.name,
        limits: &entry.key.limits,
        counters: &mut counters,
    }];
    let reserve = Amounts {
        tokens: 1200,
        spend: 0,
    };
    let ticket = limits::admit(&mut subjects, reserve, clock).unwrap();
    let mut headroom = Headroom::default();
    headroom.add(&subjects[0].counters.status(&entry.key.limits, clock));
    let actual = Amounts {
        tokens: 900,
        spend: 0,
    };
    counters.settle(&entry.key.limits, &ticket, actual);
    headroom
}

fn admission(c: &mut Criterion) {
    let (keys, config_secret, store_secret) = table();
    let tz = zone("Asia/Shanghai").unwrap();
    let now_ms = 1_796_256_000_000;
    let clock = Clock {
        now_ms,
        day: day_of(&tz, now_ms),
        month: month_of(&tz, now_ms),
    };
    let mut g = c.benchmark_group("admission");
    g.bench_function("config key lookup", |b| {
        b.iter(|| keys.find(black_box(&config_secret)).unwrap())
    });
    g.bench_function("store key lookup (sha-256)", |b| {
        b.iter(|| keys.find(black_box(&store_secret)).unwrap())
    });
    g.bench_function("unknown key", |b| {
        b.iter(|| keys.find(black_box("sk-ms-00000000000000000000000000099999x")))
    });
    // The minute window moves on as the benchmark runs: a fresh second
    // every 1,000 admissions keeps the window at its real size.
    let mut n = 0u64;
    g.bench_function("store key lookup + limit check + settle", |b| {
        b.iter(|| {
            n += 1;
            let at = Clock {
                now_ms: now_ms + n,
                ..clock
            };
            let entry = keys.find(black_box(&store_secret)).unwrap();
            admit_and_settle(&entry, &at)
        })
    });
    g.bench_function("config key lookup + limit check + settle", |b| {
        b.iter(|| {
            n += 1;
            let at = Clock {
                now_ms: now_ms + n,
                ..clock
            };
            let entry = keys.find(black_box(&config_secret)).unwrap();
            admit_and_settle(&entry, &at)
        })
    });
    g.bench_function("day of (time zone)", |b| {
        b.iter(|| day_of(&tz, black_box(now_ms)))
    });
    g.finish();
}

criterion_group!(benches, admission);
criterion_main!(benches);
