//! Resilience over real sockets: upstream key pools (rotation on 429,
//! disabling on 401), circuit breakers (open → half-open probe → closed),
//! and the admin statistics endpoint.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers: a failed unwrap is a failed assertion"
)]

mod common;

use common::*;
use serde_json::{json, Value};
use std::time::Duration;

fn chat(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "hi there"}]})
}

fn pool_config(mock: std::net::SocketAddr) -> String {
    let mut c = config(
        mock,
        &[
            (
                "rl",
                &[(
                    "pool",
                    "m-rl;fail_key=sk-pool-key-one;fail_status=429;retry_after=60",
                )],
            ),
            (
                "bad",
                &[("pool2", "m-bad;fail_key=sk-pool-bad-key;fail_status=401")],
            ),
            (
                "flaky",
                &[("flaky", "m-flaky;status=500"), ("openai", "m-ok")],
            ),
        ],
        "",
    );
    c.push_str(&format!(
        r#"
[[providers]]
name = "pool"
type = "openai"
base_url = "http://{mock}/v1"
api_keys = ["sk-pool-key-one", "sk-pool-key-two"]
key_cooldown = "60s"

[[providers]]
name = "pool2"
type = "anthropic"
base_url = "http://{mock}"
api_keys = ["sk-pool-bad-key", "sk-pool-good-key"]

[[providers]]
name = "flaky"
type = "openai"
base_url = "http://{mock}/v1"
breaker = {{ consecutive_failures = 2, cooldown = "1s" }}
"#
    ));
    c
}

fn stats(gw: std::net::SocketAddr, key: &str) -> Response {
    let auth = format!("Bearer {key}");
    request(
        gw,
        "GET",
        "/api/upstream-keys/stats",
        &[("Authorization", &auth)],
        b"",
    )
}

fn provider_keys(v: &Value, name: &str) -> Vec<Value> {
    v["providers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["provider"] == name)
        .unwrap()["keys"]
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn a_rate_limited_key_cools_down_and_the_next_key_answers() {
    let m = mock();
    let gw = gateway(&pool_config(m.addr));
    let r = post_json(gw.addr, "/v1/chat/completions", KEY, &chat("rl"));
    assert_eq!(r.status, 200, "{}", r.text());
    let attempts = r.header("x-modelswitch-attempts").unwrap();
    assert!(attempts.contains("=429 key=***-one"), "{attempts}");
    assert_eq!(
        mock_stats(m.addr)["last"]["m-rl;fail_key=sk-pool-key-one;fail_status=429;retry_after=60"]
            ["authorization"],
        "Bearer sk-pool-key-two"
    );
    // The cooling key is not tried again: one upstream call per request now.
    let before = mock_stats(m.addr)["total"].as_u64().unwrap();
    for _ in 0..3 {
        assert_eq!(
            post_json(gw.addr, "/v1/chat/completions", KEY, &chat("rl")).status,
            200
        );
    }
    assert_eq!(mock_stats(m.addr)["total"].as_u64().unwrap(), before + 3);
    let s = stats(gw.addr, KEY);
    assert_eq!(s.status, 200);
    let keys = provider_keys(&s.json(), "pool");
    assert_eq!(keys[0]["key"], "***-one");
    assert_eq!(keys[0]["state"], "cooling");
    assert_eq!(keys[0]["status_counts"]["429"], 1);
    assert_eq!(keys[1]["state"], "active");
    assert_eq!(keys[1]["successes"], 4);
    assert!(!s.text().contains("sk-pool-key"), "key values never appear");
}

#[test]
fn a_rejected_key_is_disabled() {
    let m = mock();
    let gw = gateway(&pool_config(m.addr));
    for _ in 0..3 {
        let r = post_json(
            gw.addr,
            "/v1/messages",
            KEY,
            &json!({"model": "bad", "max_tokens": 10, "messages": [{"role": "user", "content": "x"}]}),
        );
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let keys = provider_keys(&stats(gw.addr, KEY).json(), "pool2");
    assert_eq!(keys[0]["state"], "disabled");
    assert_eq!(keys[0]["requests"], 1, "a disabled key is never used again");
    assert_eq!(keys[1]["successes"], 3);
}

#[test]
fn stats_need_the_admin_role() {
    let m = mock();
    let gw = gateway(&pool_config(m.addr));
    assert_eq!(stats(gw.addr, LIMITED_KEY).status, 403);
    assert_eq!(stats(gw.addr, "sk-nobody-at-all").status, 401);
}

#[test]
fn the_breaker_opens_probes_after_cooldown_and_stays_open_on_failure() {
    let m = mock();
    let gw = gateway(&pool_config(m.addr));
    let flaky = "m-flaky;status=500";
    let hits = |m: &Proc| mock_stats(m.addr)["by_model"][flaky].as_u64().unwrap_or(0);
    for _ in 0..2 {
        assert_eq!(
            post_json(gw.addr, "/v1/chat/completions", KEY, &chat("flaky")).status,
            200
        );
    }
    assert_eq!(hits(&m), 2);
    // Open: skipped without a call.
    let r = post_json(gw.addr, "/v1/chat/completions", KEY, &chat("flaky"));
    assert_eq!(r.status, 200);
    assert!(r
        .header("x-modelswitch-attempts")
        .unwrap()
        .contains("flaky/m-flaky;status=500=circuit-open"));
    assert_eq!(hits(&m), 2);
    // After the cooldown, exactly one probe; it fails, so open again.
    std::thread::sleep(Duration::from_millis(1100));
    for _ in 0..3 {
        assert_eq!(
            post_json(gw.addr, "/v1/chat/completions", KEY, &chat("flaky")).status,
            200
        );
    }
    assert_eq!(hits(&m), 3, "one half-open probe");
}
