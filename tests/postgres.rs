//! `[storage] backend = "postgres"` over real sockets, against a real
//! PostgreSQL server each test starts (Debian's `postgresql`; `make deps`
//! installs it, and a missing install fails the test with the fix): two
//! gateways and the `keys` CLI share one database's keys; usage rows land
//! there exactly once per request, a spill file left by an earlier run is
//! replayed into it, and a database stopped while requests flow loses no
//! row. The database's password never reaches a log.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::postgres::Postgres;
use common::*;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// How long a key change made through one gateway may take to be served
/// by another (they poll the version every 250 ms).
const KEY_CHANGE: Duration = Duration::from_secs(5);

/// The harness's config with the store in `pg`; the spill file (and the
/// SQLite path it is named after) under `local`.
fn with_postgres(m: &Proc, pg: &Postgres, local: Option<&Path>) -> String {
    let mut c = config(
        m.addr,
        &[
            ("u-oa", &[("openai", "mock")]),
            ("u-an", &[("anthropic", "mock")]),
        ],
        "",
    );
    c.push_str(&format!(
        "\n[storage]\nbackend = \"postgres\"\npostgres_url = \"{}\"\nrecord_usage = true\n",
        pg.url()
    ));
    if let Some(dir) = local {
        c.push_str(&format!(
            "sqlite_path = \"{}\"\n",
            dir.join("base.db").display()
        ));
    }
    c
}

fn api(gw: std::net::SocketAddr, method: &str, path: &str, body: Option<&Value>) -> Response {
    let body = body.map(Value::to_string).unwrap_or_default();
    request(
        gw,
        method,
        path,
        &[
            ("Authorization", &format!("Bearer {KEY}")),
            ("Content-Type", "application/json"),
        ],
        body.as_bytes(),
    )
}

fn chat(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "hi there"}]})
}

fn chat_as(gw: std::net::SocketAddr, key: &str) -> u16 {
    post_json(gw, "/v1/chat/completions", key, &chat("u-oa")).status
}

fn keys_cli(config: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_modelswitch"))
        .arg("--config")
        .arg(config)
        .arg("keys")
        .args(args)
        .output()
        .unwrap()
}

fn usage_rows(pg: &Postgres) -> i64 {
    pg.scalar("SELECT count(*) FROM usage")
}

/// Waits until the table holds `n` rows; the count seen last.
fn wait_for_rows(pg: &Postgres, n: i64, within: Duration) -> i64 {
    let mut seen = 0;
    wait_until(within, || {
        seen = usage_rows(pg);
        seen >= n
    });
    seen
}

fn now_ms() -> i64 {
    i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "modelswitch-pg-{tag}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn two_gateways_and_the_cli_share_one_databases_keys() {
    let pg = Postgres::start();
    let m = mock();
    let text = with_postgres(&m, &pg, None);
    let a = live_gateway(&text);
    let b = live_gateway(&text);

    // Made through one gateway, served by the other.
    let r = api(
        a.addr(),
        "POST",
        "/api/keys",
        Some(&json!({"name": "shared"})),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let secret = r.json()["key"].as_str().unwrap().to_owned();
    assert!(
        wait_until(KEY_CHANGE, || chat_as(b.addr(), &secret) == 200),
        "gateway b never served a key made through a"
    );
    let r = api(b.addr(), "GET", "/api/keys", None);
    assert!(r.text().contains("\"shared\""), "{}", r.text());

    // The CLI reads the same [storage] and sees it; a key it makes is
    // served by both gateways.
    let listed = keys_cli(&a.path, &["list"]);
    assert!(
        listed.status.success(),
        "{}",
        String::from_utf8_lossy(&listed.stderr)
    );
    assert!(String::from_utf8_lossy(&listed.stdout).contains("shared"));
    let made = keys_cli(&a.path, &["create", "--name", "from-cli"]);
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let cli_secret = String::from_utf8_lossy(&made.stdout).trim().to_owned();
    for gw in [&a, &b] {
        assert!(
            wait_until(KEY_CHANGE, || chat_as(gw.addr(), &cli_secret) == 200),
            "a key made by the CLI is not served"
        );
    }
    // A name taken in the database is taken for every writer.
    let again = keys_cli(&b.path, &["create", "--name", "shared"]);
    assert_eq!(again.status.code(), Some(1));
    let r = api(
        b.addr(),
        "POST",
        "/api/keys",
        Some(&json!({"name": "from-cli"})),
    );
    assert_eq!(r.status, 409, "{}", r.text());

    // Revoked through b: refused by a.
    let r = api(b.addr(), "DELETE", "/api/keys/shared", None);
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        wait_until(KEY_CHANGE, || chat_as(a.addr(), &secret) == 401),
        "gateway a still serves a key revoked through b"
    );
    assert_eq!(chat_as(a.addr(), &cli_secret), 200);

    // Only hashes and prefixes are stored; nothing logs the password.
    let stored = pg.psql("SELECT name, hash, prefix, spec FROM keys");
    assert!(stored.contains("from-cli"), "{stored}");
    assert!(!stored.contains(&cli_secret[10..]), "{stored}");
    for gw in [&a, &b] {
        assert!(!gw.log().contains(&pg.password), "{}", gw.log());
    }
}

/// `ms_session=<token>` of a login's `Set-Cookie`.
fn session_cookie(r: &Response) -> String {
    let c = r.header("set-cookie").expect("a session cookie");
    c.split(';').next().unwrap().to_owned()
}

#[test]
fn ui_sessions_and_the_password_are_shared_by_every_replica() {
    let pg = Postgres::start();
    let m = mock();
    let text = with_postgres(&m, &pg, None);
    let a = live_gateway(&text);
    let b = live_gateway(&text);
    let set = {
        use std::io::Write;
        use std::process::Stdio;
        let mut child = Command::new(env!("CARGO_BIN_EXE_modelswitch"))
            .args(["admin", "set-password", "--password-stdin", "--config"])
            .arg(&a.path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(b"a shared admin passphrase\n").unwrap();
        drop(stdin);
        child.wait_with_output().unwrap()
    };
    assert!(
        set.status.success(),
        "{}",
        String::from_utf8_lossy(&set.stderr)
    );

    // A login through a is a session on b.
    let r = request(
        a.addr(),
        "POST",
        "/api/login",
        &[("Content-Type", "application/json")],
        json!({"password": "a shared admin passphrase"})
            .to_string()
            .as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let cookie = session_cookie(&r);
    let csrf = r.json()["csrf"].as_str().unwrap().to_owned();
    let on_b = |method: &str, path: &str| {
        request(
            b.addr(),
            method,
            path,
            &[("Cookie", cookie.as_str()), ("X-CSRF-Token", csrf.as_str())],
            b"",
        )
    };
    assert_eq!(on_b("GET", "/api/keys").status, 200);
    let list = on_b("GET", "/api/sessions").json();
    let id = list["sessions"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(list["sessions"][0]["via"], "password", "{list}");

    // Revoked through a: refused by b at once, no poll to wait for.
    let r = api(a.addr(), "DELETE", &format!("/api/sessions/{id}"), None);
    assert_eq!(r.status, 204, "{}", r.text());
    assert_eq!(on_b("GET", "/api/keys").status, 401);
    // The database holds a hash of the password, never the password.
    let dump = pg.psql("SELECT value FROM settings");
    assert!(dump.contains("$argon2id$"), "{dump}");
    assert!(!dump.contains("shared admin passphrase"));
}

#[test]
fn every_request_has_one_row_in_postgres() {
    let pg = Postgres::start();
    let m = mock();
    let gw = live_gateway(&with_postgres(&m, &pg, None));
    let from = now_ms();
    let n = 12;
    for i in 0..n {
        let model = if i % 3 == 0 { "u-an" } else { "u-oa" };
        let r = post_json(gw.addr(), "/v1/chat/completions", KEY, &chat(model));
        assert_eq!(r.status, 200, "{}", r.text());
    }
    // A refusal has its row too.
    let r = post_json(
        gw.addr(),
        "/v1/chat/completions",
        KEY,
        &chat("no-such-model"),
    );
    assert_eq!(r.status, 404, "{}", r.text());
    let total = n + 1;
    // Every admin call below has a row too: the window closes before them.
    let window = format!("from={from}&to={}", now_ms() + 1);
    std::thread::sleep(Duration::from_millis(5));
    assert_eq!(wait_for_rows(&pg, total, Duration::from_secs(10)), total);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(usage_rows(&pg), total, "no row twice");
    assert_eq!(
        pg.psql(
            "SELECT provider, count(*) FROM usage WHERE status = 200 \
             GROUP BY provider ORDER BY provider"
        )
        .lines()
        .collect::<Vec<_>>(),
        ["anthropic|4", "openai|8"]
    );
    assert_eq!(
        pg.scalar("SELECT count(*) FROM usage WHERE key_name = 'admin' AND NOT stream"),
        total
    );
    assert_eq!(
        pg.scalar(
            "SELECT count(*) FROM usage WHERE status = 200 AND input_uncached > 0 AND output > 0"
        ),
        n
    );
    assert_eq!(
        pg.scalar("SELECT count(DISTINCT request_id) FROM usage"),
        total
    );

    // The usage API reads the same rows back from PostgreSQL.
    let r = api(
        gw.addr(),
        "GET",
        &format!("/api/usage?{window}&group_by=provider,day"),
        None,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["totals"]["requests"], total, "{v}");
    assert_eq!(v["totals"]["errors"], 1, "{v}");
    let sum = |col: &str| pg.scalar(&format!("SELECT sum({col}) FROM usage"));
    for col in ["input_uncached", "output", "cache_read"] {
        assert_eq!(v["totals"][col], sum(col), "{col}: {v}");
    }
    let served = v["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["provider"] == "anthropic")
        .unwrap_or_else(|| panic!("{v}"));
    assert_eq!(served["requests"], 4, "{v}");
    // The call history, five rows a page: each row once.
    let mut ids = std::collections::HashSet::new();
    let mut path = format!("/api/usage/requests?{window}&limit=5");
    for _ in 0..10 {
        let page = api(gw.addr(), "GET", &path, None).json();
        for row in page["data"].as_array().unwrap_or_else(|| panic!("{page}")) {
            assert!(ids.insert(row["request_id"].as_str().unwrap().to_owned()));
        }
        match page["next_cursor"].as_str() {
            Some(c) => path = format!("/api/usage/requests?{window}&limit=5&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(ids.len(), usize::try_from(total).unwrap());
}

/// A usage row as the spill file holds it (one JSON object per line).
fn spilled_row(id: &str) -> Value {
    json!({
        "ts": 1_700_000_000_000_i64, "request_id": id, "key_name": "spilled",
        "dialect": "openai", "endpoint": "/v1/chat/completions", "model": "u-oa",
        "provider": "openai", "upstream_model": "mock", "attempts": "[]",
        "status": 200, "stream": true, "input_uncached": 3, "cache_read": 0,
        "cache_write": 0, "output": 4, "reasoning": 0, "cost_nanos": null,
        "currency": null, "latency_ms": 2.5, "ttfb_ms": 1.0, "overhead_ms": null,
        "bytes_in": 10, "bytes_out": 20, "client_addr": "127.0.0.1:9",
        "user_agent": "t", "session_id": null, "error": null
    })
}

#[test]
fn a_spill_file_beside_the_sqlite_path_is_replayed_into_postgres() {
    let pg = Postgres::start();
    let m = mock();
    let local = temp_dir("spill");
    // Left by an earlier run that could not reach the database: the file
    // is named after sqlite_path, though with Postgres no SQLite file is.
    let spill = local.join("base.db.usage-spill.jsonl");
    let lines: Vec<String> = (0..40)
        .map(|i| spilled_row(&format!("spilled-{i}")).to_string())
        .collect();
    std::fs::write(&spill, lines.join("\n") + "\n").unwrap();
    let gw = live_gateway(&with_postgres(&m, &pg, Some(&local)));
    assert_eq!(wait_for_rows(&pg, 40, Duration::from_secs(10)), 40);
    assert_eq!(
        pg.scalar("SELECT count(*) FROM usage WHERE key_name = 'spilled' AND stream"),
        40
    );
    assert!(
        wait_until(Duration::from_secs(5), || !spill.exists()),
        "the spill file stays after its replay"
    );
    // New requests add their rows after the replayed ones.
    assert_eq!(chat_as(gw.addr(), KEY), 200);
    assert_eq!(wait_for_rows(&pg, 41, Duration::from_secs(10)), 41);
    assert!(!local.join("base.db").exists(), "a SQLite file was made");
    drop(gw);
    let _ = std::fs::remove_dir_all(&local);
}

#[test]
fn a_database_stopped_while_requests_flow_loses_no_row() {
    let mut pg = Postgres::start();
    let m = mock();
    let local = temp_dir("outage");
    let gw = live_gateway(&with_postgres(&m, &pg, Some(&local)));
    let addr = gw.addr();
    let answered = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let slowest = std::thread::scope(|s| {
        let client = s.spawn(|| {
            let mut slowest = Duration::ZERO;
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                let r = post_json(addr, "/v1/chat/completions", KEY, &chat("u-oa"));
                slowest = slowest.max(t.elapsed());
                assert_eq!(r.status, 200, "{}", r.text());
                answered.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(20));
            }
            slowest
        });
        std::thread::sleep(Duration::from_millis(500));
        pg.stop();
        let stopped = answered.load(Ordering::Relaxed);
        std::thread::sleep(Duration::from_secs(3));
        assert!(
            answered.load(Ordering::Relaxed) > stopped + 20,
            "requests stopped flowing with the database"
        );
        pg.start_again();
        std::thread::sleep(Duration::from_millis(500));
        stop.store(true, Ordering::Relaxed);
        client.join().unwrap()
    });
    // The request path never waited on the database.
    assert!(
        slowest < Duration::from_secs(1),
        "a request took {slowest:?}"
    );
    let sent = i64::try_from(answered.load(Ordering::Relaxed)).unwrap();
    // The writer backs off up to 5 s between tries while the database is
    // gone: its next try after the restart writes what waited.
    assert_eq!(wait_for_rows(&pg, sent, Duration::from_secs(15)), sent);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(usage_rows(&pg), sent, "a row was written twice");
    assert!(!gw.log().contains(&pg.password), "{}", gw.log());
    drop(gw);
    let _ = std::fs::remove_dir_all(&local);
}

#[test]
fn a_gateway_without_its_database_refuses_to_start_and_says_why() {
    let pg = Postgres::start();
    let m = mock();
    let text = with_postgres(&m, &pg, None).replace(&pg.password, "Not-The-Password-42");
    let dir = temp_dir("refuse");
    let path = dir.join("gateway.toml");
    std::fs::write(&path, text.replace("LISTEN", &free_addr().to_string())).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_modelswitch"))
        .arg("--config")
        .arg(&path)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("cannot open the key store"), "{err}");
    assert!(
        err.contains("postgres://modelswitch:***@127.0.0.1"),
        "{err}"
    );
    assert!(!err.contains("Not-The-Password-42"), "{err}");
    // `check` validates the URL without connecting.
    let bad = text.replace("postgres://", "mysql://");
    std::fs::write(&path, bad.replace("LISTEN", &free_addr().to_string())).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_modelswitch"))
        .arg("--config")
        .arg(&path)
        .arg("check")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("storage.postgres_url: must start with postgres://"),
        "{err}"
    );
    assert!(!err.contains("Not-The-Password-42"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
