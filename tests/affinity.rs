//! Session affinity over real sockets: a session stays on the replica,
//! chain target and upstream key that last served it (checked at the
//! mocks), moves when that place is sick, is read from every source agent
//! CLIs use, is shared by two gateways through a real Redis (and survives
//! Redis going away), and is off with `enabled = false`. Every wait is
//! bounded.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::redis::Redis;
use common::*;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

fn chat(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "hi there"}]})
}

/// Providers on the common mock, a `replicated` provider over mocks `a`
/// and `b` (round robin) serving model `rep`, and `extra` at the end.
fn replica_config(mock: SocketAddr, a: SocketAddr, b: SocketAddr, extra: &str) -> String {
    let mut c = config(mock, &[("rep", &[("replicated", "m-rep")])], "");
    c.push_str(&format!(
        r#"
[[providers]]
name = "replicated"
type = "openai"
base_url = ["http://{a}/v1", "http://{b}/v1"]

{extra}
"#
    ));
    c
}

/// A chat request to `model` carrying `headers`.
fn chat_with(gw: SocketAddr, model: &str, headers: &[(&str, &str)]) -> Response {
    let auth = format!("Bearer {KEY}");
    let mut all = vec![
        ("Authorization", auth.as_str()),
        ("Content-Type", "application/json"),
    ];
    all.extend_from_slice(headers);
    let r = request(
        gw,
        "POST",
        "/v1/chat/completions",
        &all,
        chat(model).to_string().as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    r
}

fn served(m: &Proc, model: &str) -> u64 {
    mock_stats(m.addr)["by_model"][model].as_u64().unwrap_or(0)
}

fn attempts(r: &Response) -> String {
    r.header("x-modelswitch-attempts").unwrap_or("").to_owned()
}

/// Requests served by each of two replica mocks since `before`.
fn counts(a: &Proc, b: &Proc, before: (u64, u64)) -> (u64, u64) {
    (served(a, "m-rep") - before.0, served(b, "m-rep") - before.1)
}

#[test]
fn a_session_stays_on_one_replica_while_sessionless_requests_alternate() {
    let (m, a, b) = (mock(), mock(), mock());
    let gw = gateway(&replica_config(m.addr, a.addr, b.addr, ""));
    for i in 0..10 {
        let r = chat_with(gw.addr, "rep", &[("X-Claude-Code-Session-Id", "sess-one")]);
        // The first request finds no entry; every later one is sticky.
        assert_eq!(attempts(&r).ends_with(" sticky"), i > 0, "{}", attempts(&r));
    }
    let c = counts(&a, &b, (0, 0));
    assert!(
        c == (10, 0) || c == (0, 10),
        "one replica took them all: {c:?}"
    );
    for _ in 0..10 {
        let r = chat_with(gw.addr, "rep", &[]);
        assert!(!attempts(&r).contains("sticky"), "{}", attempts(&r));
    }
    let after = counts(&a, &b, c);
    assert_eq!(after, (5, 5), "sessionless requests alternate");
}

#[test]
fn a_dead_sticky_replica_moves_the_session_and_it_stays_moved() {
    let (m, a, b) = (mock(), mock(), mock());
    let health = r#"health_check = { path = "/health", interval = "100ms", timeout = "200ms", unhealthy_threshold = 1 }"#;
    let mut c = replica_config(m.addr, a.addr, b.addr, "");
    c = c.replace(
        &format!(
            "base_url = [\"http://{}/v1\", \"http://{}/v1\"]",
            a.addr, b.addr
        ),
        &format!(
            "base_url = [\"http://{}/v1\", \"http://{}/v1\"]\n{health}",
            a.addr, b.addr
        ),
    );
    let gw = gateway(&c);
    let session = [("session_id", "codex-sess")];
    chat_with(gw.addr, "rep", &session);
    let (sticky, other) = if served(&a, "m-rep") == 1 {
        (a, b)
    } else {
        (b, a)
    };
    for _ in 0..3 {
        chat_with(gw.addr, "rep", &session);
    }
    assert_eq!(served(&sticky, "m-rep"), 4, "stuck before the failure");
    // The sticky replica dies; the health check finds it.
    drop(sticky);
    std::thread::sleep(Duration::from_millis(600));
    for _ in 0..6 {
        chat_with(gw.addr, "rep", &session);
    }
    assert_eq!(served(&other, "m-rep"), 6, "the session moved and stayed");
}

/// A chain whose first target fails: the session is served by the second,
/// and stays there once the first is healthy again (and across a reload).
#[test]
fn a_failed_over_session_keeps_its_new_target_when_the_first_heals() {
    let m = mock();
    let chain = |first: &str| {
        config(
            m.addr,
            &[("chain", &[("openai", first), ("anthropic", "m-second")])],
            "",
        )
    };
    let gw = live_gateway(&chain("m-first;status=503"));
    let session = [("X-Claude-Code-Session-Id", "sess-chain")];
    let r = chat_with(gw.addr(), "chain", &session);
    assert_eq!(r.header("x-modelswitch-target"), Some("anthropic/m-second"));
    assert!(attempts(&r).contains("=503"), "{}", attempts(&r));

    let mark = gw.log_mark();
    gw.replace_file(&chain("m-first"));
    gw.sighup();
    assert!(gw.wait_for_log(mark, "config reloaded", Duration::from_secs(5)));
    let r = chat_with(gw.addr(), "chain", &[]);
    assert_eq!(
        r.header("x-modelswitch-target"),
        Some("openai/m-first"),
        "healthy again"
    );
    for _ in 0..3 {
        let r = chat_with(gw.addr(), "chain", &session);
        assert_eq!(r.header("x-modelswitch-target"), Some("anthropic/m-second"));
        assert_eq!(attempts(&r), "anthropic/m-second=ok sticky");
    }
    // Another session starts at the head of the chain.
    let r = chat_with(
        gw.addr(),
        "chain",
        &[("X-Claude-Code-Session-Id", "sess-new")],
    );
    assert_eq!(r.header("x-modelswitch-target"), Some("openai/m-first"));

    // The sticky target falls sick (its provider now points nowhere): it
    // is tried first, fails over, and the session moves for good.
    let sick = chain("m-first").replace(
        &format!(
            "name = \"anthropic\"\ntype = \"anthropic\"\nbase_url = \"http://{}\"",
            m.addr
        ),
        "name = \"anthropic\"\ntype = \"anthropic\"\nbase_url = \"http://127.0.0.1:9\"",
    );
    assert_ne!(sick, chain("m-first"));
    let mark = gw.log_mark();
    gw.replace_file(&sick);
    gw.sighup();
    assert!(gw.wait_for_log(mark, "config reloaded", Duration::from_secs(5)));
    let r = chat_with(gw.addr(), "chain", &session);
    assert_eq!(r.header("x-modelswitch-target"), Some("openai/m-first"));
    assert!(
        attempts(&r).starts_with("anthropic/m-second=connect key#0 sticky"),
        "{}",
        attempts(&r)
    );
    let r = chat_with(gw.addr(), "chain", &session);
    assert_eq!(r.header("x-modelswitch-target"), Some("openai/m-first"));
    assert_eq!(attempts(&r), "openai/m-first=ok sticky", "moved");
}

#[test]
fn a_session_sticks_to_one_upstream_key() {
    let m = mock();
    let mut c = config(m.addr, &[("keys", &[("pool", "m-keys")])], "");
    c.push_str(&format!(
        r#"
[[providers]]
name = "pool"
type = "openai"
base_url = "http://{}/v1"
api_keys = ["sk-pool-key-one", "sk-pool-key-two"]
"#,
        m.addr
    ));
    let gw = gateway(&c);
    let last_key = || {
        mock_stats(m.addr)["last"]["m-keys"]["authorization"]
            .as_str()
            .unwrap_or("")
            .to_owned()
    };
    let mut seen = Vec::new();
    for _ in 0..3 {
        chat_with(gw.addr, "keys", &[]);
        seen.push(last_key());
    }
    assert_ne!(seen[0], seen[1], "sessionless requests rotate the keys");
    let mut sticky = Vec::new();
    for _ in 0..6 {
        let r = chat_with(gw.addr, "keys", &[("X-Claude-Code-Session-Id", "sess-key")]);
        sticky.push(last_key());
        // A sessionless request between: the rotation moves, the session does not.
        chat_with(gw.addr, "keys", &[]);
        let _ = r;
    }
    assert!(sticky.iter().all(|k| *k == sticky[0]), "{sticky:?}");
}

/// Sends four requests of one session with `send`; they all reach one replica.
fn sticks(a: &Proc, b: &Proc, what: &str, mut send: impl FnMut() -> Response) {
    let before = counts(a, b, (0, 0));
    for i in 0..4 {
        let r = send();
        assert_eq!(r.status, 200, "{what}: {}", r.text());
        assert_eq!(
            attempts(&r).ends_with(" sticky"),
            i > 0,
            "{what}: {}",
            attempts(&r)
        );
    }
    let c = counts(a, b, before);
    assert!(c == (4, 0) || c == (0, 4), "{what}: {c:?}");
}

#[test]
fn sessions_are_read_from_every_source() {
    let (m, a, b) = (mock(), mock(), mock());
    let extra = "[routing.affinity]\nheader = \"X-Team-Session\"";
    let gw = gateway(&replica_config(m.addr, a.addr, b.addr, extra));
    let addr = gw.addr;
    sticks(&a, &b, "claude code header", || {
        chat_with(addr, "rep", &[("X-Claude-Code-Session-Id", "s-claude")])
    });
    sticks(&a, &b, "codex header", || {
        chat_with(addr, "rep", &[("session_id", "s-codex")])
    });
    sticks(&a, &b, "configured header", || {
        chat_with(addr, "rep", &[("X-Team-Session", "s-team")])
    });
    // The configured header is read first.
    sticks(&a, &b, "configured header over the others", || {
        let id = format!("s-other-{}", fastrand());
        chat_with(
            addr,
            "rep",
            &[("X-Team-Session", "s-team-2"), ("session_id", &id)],
        )
    });
    let messages = |user_id: &str| {
        let body = json!({
            "model": "rep",
            "max_tokens": 50,
            "metadata": {"user_id": user_id},
            "messages": [{"role": "user", "content": "hi there"}],
        });
        post_json(addr, "/v1/messages", KEY, &body)
    };
    sticks(&a, &b, "metadata.user_id JSON", || {
        messages(r#"{"device_id":"d1","account_uuid":"","session_id":"4f1b2c3d-json"}"#)
    });
    sticks(&a, &b, "metadata.user_id legacy", || {
        messages("user_abc123_account_0a1b_session_9e8f7a6b-legacy")
    });
}

fn fastrand() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

#[test]
fn disabled_affinity_keeps_the_plain_rotation() {
    let (m, a, b) = (mock(), mock(), mock());
    let extra = "[routing.affinity]\nenabled = false";
    let gw = gateway(&replica_config(m.addr, a.addr, b.addr, extra));
    for _ in 0..10 {
        let r = chat_with(gw.addr, "rep", &[("X-Claude-Code-Session-Id", "sess-off")]);
        assert!(!attempts(&r).contains("sticky"), "{}", attempts(&r));
    }
    assert_eq!(counts(&a, &b, (0, 0)), (5, 5));
}

/// `GET key` on the test's Redis, over raw RESP.
fn redis_get(port: u16, key: &str) -> Option<String> {
    let mut s = TcpStream::connect_timeout(
        &SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(500),
    )
    .ok()?;
    s.set_read_timeout(Some(Duration::from_millis(500))).ok()?;
    let cmd = format!("*2\r\n$3\r\nGET\r\n${}\r\n{key}\r\n", key.len());
    s.write_all(cmd.as_bytes()).ok()?;
    let mut buf = vec![0u8; 4096];
    let n = s.read(&mut buf).ok()?;
    let reply = String::from_utf8_lossy(&buf[..n]).into_owned();
    if reply.starts_with("$-1") {
        return None;
    }
    reply.split("\r\n").nth(1).map(str::to_owned)
}

#[test]
fn gateways_sharing_redis_keep_a_session_in_one_place_and_serve_without_it() {
    let mut redis = Redis::start();
    let (m, a, b) = (mock(), mock(), mock());
    let extra = format!(
        "[limits]\nbackend = \"redis\"\nredis_url = \"{}\"\nredis_timeout = \"500ms\"\n",
        redis.url()
    );
    let text = replica_config(m.addr, a.addr, b.addr, &extra);
    let (gw_a, gw_b) = (gateway(&text), gateway(&text));
    // Each gateway's Redis connection is made on first use; a throwaway
    // session makes it before the ones the test watches.
    chat_with(gw_a.addr, "rep", &[("session_id", "warm-up-a")]);
    chat_with(gw_b.addr, "rep", &[("session_id", "warm-up-b")]);
    std::thread::sleep(Duration::from_millis(300));
    for i in 0..4 {
        let session = format!("shared-{i}");
        let before = counts(&a, &b, (0, 0));
        chat_with(gw_a.addr, "rep", &[("session_id", &session)]);
        let on_a = counts(&a, &b, before);
        let key = format!("ms:aff:rep:{session}");
        assert!(
            wait_until(Duration::from_secs(2), || redis_get(redis.port, &key)
                .is_some()),
            "the entry reaches Redis"
        );
        let value = redis_get(redis.port, &key).unwrap();
        assert!(
            value.contains("replicated") && value.contains("m-rep"),
            "{value}"
        );
        let before = counts(&a, &b, (0, 0));
        let r = chat_with(gw_b.addr, "rep", &[("session_id", &session)]);
        let found = attempts(&r).ends_with(" sticky");
        assert!(found, "gateway B read the session from Redis");
        let on_b = counts(&a, &b, before);
        assert_eq!(
            (on_a.0 > 0, on_a.1 > 0),
            (on_b.0 > 0, on_b.1 > 0),
            "same replica on both gateways"
        );
    }
    // Redis goes away: requests are still served, sessions or not, quickly.
    redis.stop();
    for i in 0..5 {
        let started = Instant::now();
        chat_with(gw_b.addr, "rep", &[("session_id", &format!("down-{i}"))]);
        chat_with(gw_a.addr, "rep", &[]);
        assert!(started.elapsed() < Duration::from_secs(3));
    }
}
