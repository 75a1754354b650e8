//! Usage rows over real sockets (issue 12): one row per request with the
//! key, model, provider and the tokens the client was told; every answered
//! request has its row after SIGTERM in the middle of 10,000 requests; a
//! database locked by another connection for longer than its busy timeout
//! loses and doubles nothing and delays no request; a full queue spills to
//! disk and the spill is replayed. The rows are read straight from the
//! gateway's SQLite file.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Barrier;
use std::time::{Duration, Instant};

/// The mock reports 40 cached prompt tokens besides the prompt.
const UPSTREAM: &str = "mock;cached=40";

fn gateway_with_db(m: &Proc) -> LiveGateway {
    let mut c = config(
        m.addr,
        &[
            ("u-oa", &[("openai", UPSTREAM)]),
            ("u-an", &[("anthropic", UPSTREAM)]),
        ],
        "",
    );
    c.push_str("\n[storage]\nsqlite_path = \"keys.db\"\nrecord_usage = true\n");
    live_gateway(&c)
}

fn db(gw: &LiveGateway) -> PathBuf {
    gw.dir.join("keys.db")
}

/// Runs `f` on a small runtime of the test's own.
fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

async fn connect(path: &Path, read_only: bool) -> sqlx::SqliteConnection {
    use sqlx::ConnectOptions;
    sqlx::sqlite::SqliteConnectOptions::new()
        .filename(path)
        .read_only(read_only)
        .busy_timeout(Duration::from_secs(5))
        .connect()
        .await
        .unwrap()
}

#[derive(Debug, sqlx::FromRow)]
struct Row {
    request_id: String,
    key_name: Option<String>,
    dialect: Option<String>,
    endpoint: String,
    model: Option<String>,
    provider: Option<String>,
    upstream_model: Option<String>,
    attempts: String,
    status: i64,
    input_uncached: i64,
    cache_read: i64,
    cache_write: i64,
    output: i64,
    latency_ms: f64,
    bytes_in: Option<i64>,
    session_id: Option<String>,
    cost_nanos: Option<i64>,
}

fn rows(path: &Path) -> Vec<Row> {
    block_on(async {
        let mut c = connect(path, true).await;
        sqlx::query_as::<_, Row>(
            "SELECT request_id, key_name, dialect, endpoint, model, provider, upstream_model, \
             attempts, status, input_uncached, cache_read, cache_write, output, latency_ms, \
             bytes_in, session_id, cost_nanos FROM usage ORDER BY id",
        )
        .fetch_all(&mut c)
        .await
        .unwrap()
    })
}

fn count(path: &Path) -> i64 {
    block_on(async {
        let mut c = connect(path, true).await;
        sqlx::query_scalar("SELECT count(*) FROM usage")
            .fetch_one(&mut c)
            .await
            .unwrap_or(0)
    })
}

/// Waits until the table holds `n` rows; the count seen last.
fn wait_for_rows(path: &Path, n: i64, within: Duration) -> i64 {
    let mut seen = 0;
    wait_until(within, || {
        seen = count(path);
        seen >= n
    });
    seen
}

fn chat(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "hi there"}]})
}

fn messages(model: &str) -> Value {
    json!({"model": model, "max_tokens": 50, "messages": [{"role": "user", "content": "hi there"}]})
}

#[test]
fn every_request_has_one_row_with_its_key_model_provider_and_tokens() {
    let m = mock();
    let gw = gateway_with_db(&m);
    let n = 5;
    let mut told = Vec::new();
    for i in 0..n {
        let r = request(
            gw.addr(),
            "POST",
            "/v1/chat/completions",
            &[
                ("Authorization", &format!("Bearer {KEY}")),
                ("Content-Type", "application/json"),
                ("session-id", &format!("codex-{i}")),
            ],
            chat("u-oa").to_string().as_bytes(),
        );
        assert_eq!(r.status, 200, "{}", r.text());
        told.push(("openai", r.json()["usage"].clone()));
        let r = request(
            gw.addr(),
            "POST",
            "/v1/messages",
            &[
                ("x-api-key", KEY),
                ("anthropic-version", "2023-06-01"),
                ("Content-Type", "application/json"),
                ("X-Claude-Code-Session-Id", "claude-session"),
            ],
            messages("u-an").to_string().as_bytes(),
        );
        assert_eq!(r.status, 200, "{}", r.text());
        told.push(("anthropic", r.json()["usage"].clone()));
    }
    let want = 2 * n as i64;
    assert_eq!(wait_for_rows(&db(&gw), want, Duration::from_secs(5)), want);
    let rows = rows(&db(&gw));
    assert_eq!(rows.len(), 2 * n);
    for (row, (provider, usage)) in rows.iter().zip(&told) {
        assert_eq!(row.key_name.as_deref(), Some("admin"), "{row:?}");
        assert_eq!(row.status, 200, "{row:?}");
        assert_eq!(row.provider.as_deref(), Some(*provider), "{row:?}");
        assert_eq!(row.upstream_model.as_deref(), Some(UPSTREAM), "{row:?}");
        assert!(row.attempts.contains("\"outcome\":\"ok\""), "{row:?}");
        assert!(row.latency_ms > 0.0, "{row:?}");
        assert!(row.bytes_in.is_some_and(|b| b > 0), "{row:?}");
        assert_eq!(row.cost_nanos, None);
        assert_eq!(row.cache_read, 40, "{row:?}");
        assert_eq!(row.cache_write, 0, "{row:?}");
        let input = row.input_uncached + row.cache_read + row.cache_write;
        if *provider == "openai" {
            assert_eq!(row.endpoint, "/v1/chat/completions");
            assert_eq!(row.dialect.as_deref(), Some("openai"), "{row:?}");
            assert_eq!(row.model.as_deref(), Some("u-oa"));
            assert_eq!(input, usage["prompt_tokens"].as_i64().unwrap(), "{usage}");
            assert_eq!(row.output, usage["completion_tokens"].as_i64().unwrap());
            assert!(row
                .session_id
                .as_deref()
                .is_some_and(|s| s.starts_with("codex-")));
        } else {
            assert_eq!(row.endpoint, "/v1/messages");
            assert_eq!(row.model.as_deref(), Some("u-an"));
            assert_eq!(row.input_uncached, usage["input_tokens"].as_i64().unwrap());
            assert_eq!(row.output, usage["output_tokens"].as_i64().unwrap());
            assert_eq!(row.session_id.as_deref(), Some("claude-session"));
        }
    }
    let mut ids: Vec<&str> = rows.iter().map(|r| r.request_id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 2 * n, "one row per request");
}

/// One request on its own connection; None when nothing came back.
fn try_chat(addr: SocketAddr, model: &str) -> Option<u16> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(15))).ok()?;
    let body = chat(model).to_string();
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Authorization: Bearer {KEY}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(head.as_bytes()).ok()?;
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let line = raw.split(|&b| b == b'\r').next()?;
    std::str::from_utf8(line)
        .ok()?
        .split(' ')
        .nth(1)?
        .parse()
        .ok()
}

#[test]
fn sigterm_in_the_middle_of_10000_requests_leaves_a_row_for_every_answered_one() {
    let m = mock();
    let gw = gateway_with_db(&m);
    let (threads, each) = (50, 200);
    let answered = AtomicUsize::new(0);
    let start = Barrier::new(threads + 1);
    let addr = gw.addr();
    let statuses: Vec<Option<u16>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let (start, answered) = (&start, &answered);
                s.spawn(move || {
                    start.wait();
                    let mut seen = Vec::with_capacity(each);
                    for _ in 0..each {
                        let r = try_chat(addr, "u-oa");
                        answered.fetch_add(1, Ordering::Relaxed);
                        seen.push(r);
                        // Refused or cut: the gateway is going away.
                        if r.is_none() {
                            break;
                        }
                    }
                    seen
                })
            })
            .collect();
        start.wait();
        // In the middle of the 10,000.
        wait_until(Duration::from_secs(120), || {
            answered.load(Ordering::Relaxed) >= threads * each / 2
        });
        let status = Command::new("kill")
            .args(["-TERM", &gw.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let ok = statuses.iter().filter(|s| **s == Some(200)).count();
    assert!(ok >= threads * each / 2, "{ok} answered");
    // The exit hook writes what is still queued once the last request is
    // answered; give it the time it may take, then the rows must match.
    let path = db(&gw);
    let ok_rows = || rows(&path).iter().filter(|r| r.status == 200).count();
    let mut seen = 0;
    wait_until(Duration::from_secs(20), || {
        seen = ok_rows();
        seen >= ok
    });
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(ok_rows(), ok, "rows of answered requests after SIGTERM");
}

#[test]
fn a_full_queue_spills_to_disk_and_the_spill_is_replayed() {
    let m = mock();
    let mut c = config(m.addr, &[("u-oa", &[("openai", UPSTREAM)])], "");
    c.push_str("\n[storage]\nsqlite_path = \"keys.db\"\nusage_queue = 4\n");
    let gw = live_gateway(&c);
    let path = db(&gw);
    let spill = gw.dir.join("keys.db.usage-spill.jsonl");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // The store locked: the writer holds at most one batch and 4 queued.
    let mut lock = rt.block_on(connect(&path, false));
    rt.block_on(sqlx::query("BEGIN EXCLUSIVE").execute(&mut lock))
        .unwrap();
    let sent = 40;
    for _ in 0..sent {
        let r = post_json(gw.addr(), "/v1/chat/completions", KEY, &chat("u-oa"));
        assert_eq!(r.status, 200, "{}", r.text());
    }
    // At most a batch of 4 held by the stuck writer and 4 queued; the
    // rest went to disk.
    let spilled = std::fs::read_to_string(&spill).unwrap_or_default();
    assert!(
        spilled.lines().count() >= sent as usize - 8,
        "spill file: {} lines",
        spilled.lines().count()
    );
    assert!(!spilled.contains(KEY), "a client key in the spill file");
    rt.block_on(sqlx::query("ROLLBACK").execute(&mut lock))
        .unwrap();
    drop(lock);
    assert_eq!(wait_for_rows(&path, sent, Duration::from_secs(20)), sent);
    wait_until(Duration::from_secs(10), || !spill.exists());
    assert!(!spill.exists(), "the spill file is removed once replayed");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(count(&path), sent);
}

#[test]
fn a_locked_database_loses_and_doubles_nothing() {
    let m = mock();
    let gw = gateway_with_db(&m);
    let path = db(&gw);
    // The schema exists once the gateway is up; take the write lock.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut lock = rt.block_on(connect(&path, false));
    rt.block_on(sqlx::query("BEGIN EXCLUSIVE").execute(&mut lock))
        .unwrap();
    let locked = Instant::now();
    let mut sent = 0;
    let mut slowest = Duration::ZERO;
    // Past the store's 5 s busy timeout: its insert fails and is retried.
    while locked.elapsed() < Duration::from_millis(5500) {
        let t = Instant::now();
        let r = post_json(gw.addr(), "/v1/chat/completions", KEY, &chat("u-oa"));
        slowest = slowest.max(t.elapsed());
        assert_eq!(r.status, 200, "{}", r.text());
        sent += 1;
        std::thread::sleep(Duration::from_millis(20));
    }
    // Nothing could be written meanwhile, and no request waited for it.
    assert_eq!(
        rt.block_on(
            sqlx::query_scalar::<_, i64>("SELECT count(*) FROM usage").fetch_one(&mut lock)
        )
        .unwrap(),
        0
    );
    assert!(
        slowest < Duration::from_secs(1),
        "a request waited {slowest:?}"
    );
    rt.block_on(sqlx::query("ROLLBACK").execute(&mut lock))
        .unwrap();
    drop(lock);
    assert_eq!(
        wait_for_rows(&path, sent, Duration::from_secs(10)),
        sent,
        "every row arrives after the lock"
    );
    // And no more later (a retried batch is never inserted twice).
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(count(&path), sent);
}
