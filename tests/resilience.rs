//! Resilience over real sockets: upstream key pools (rotation on 429,
//! disabling on 401), circuit breakers (open → half-open probe → closed),
//! the admin statistics endpoint, and upstream connection reuse.

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
            ("flaky-only", &[("flaky", "m-flaky;status=500")]),
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
    assert!(attempts.contains("=429 key#0"), "{attempts}");
    assert!(
        !attempts.contains("***"),
        "no key fragment reaches a client: {attempts}"
    );
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

/// Reads a streaming response's first bytes, then hangs up.
fn read_a_little_then_leave(gw: std::net::SocketAddr, body: &Value) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(gw).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let body = body.to_string();
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {KEY}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body.as_bytes()).unwrap();
    let mut buf = [0u8; 512];
    let n = s.read(&mut buf).unwrap();
    assert!(
        n > 0 && buf.starts_with(b"HTTP/1.1 200"),
        "{:?}",
        String::from_utf8_lossy(&buf[..n])
    );
}

/// Polls for up to 1.5 s: well under every budget of the test config, so
/// only a gateway that drops the upstream call at once passes.
fn wait_for_abort(m: &Proc, model: &str) -> u64 {
    for _ in 0..30 {
        let n = mock_stats(m.addr)["aborted"][model].as_u64().unwrap_or(0);
        if n > 0 {
            return n;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    0
}

#[test]
fn a_client_that_leaves_mid_stream_cancels_the_upstream_call() {
    let m = mock();
    // The mock goes silent after its fourth event: only the client's
    // departure can end this stream early.
    let slow = "m-slow;fault=stall;after=4";
    let gw = gateway(&config(m.addr, &[("slow", &[("openai", slow)])], ""));
    read_a_little_then_leave(
        gw.addr,
        &json!({"model": "slow", "stream": true, "messages": [{"role": "user", "content": "hi"}]}),
    );
    assert_eq!(wait_for_abort(&m, slow), 1);
    assert_eq!(
        mock_stats(m.addr)["by_model"][slow],
        1,
        "and nothing is retried"
    );
}

#[test]
fn a_client_that_leaves_before_the_first_token_cancels_the_upstream_call() {
    use std::io::Write;
    let m = mock();
    let slow = "m-slow-start;first_ms=2500";
    let gw = gateway(&config(m.addr, &[("slow", &[("openai", slow)])], ""));
    let body =
        json!({"model": "slow", "stream": true, "messages": [{"role": "user", "content": "hi"}]})
            .to_string();
    let mut s = std::net::TcpStream::connect(gw.addr).unwrap();
    let head = format!("POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {KEY}\r\nContent-Length: {}\r\n\r\n", body.len());
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body.as_bytes()).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    drop(s);
    assert_eq!(wait_for_abort(&m, slow), 1);
}

#[test]
fn the_total_timeout_ends_a_long_stream_with_an_error_event() {
    let m = mock();
    let mut c = config(m.addr, &[], "");
    c.push_str("\n[[models]]\nname = \"long\"\ntargets = [{ provider = \"openai\", model = \"m-long;chunks=100;delay_ms=30\" }]\ntotal_timeout = \"1s\"\n");
    let gw = gateway(&c);
    let r = post_json(
        gw.addr,
        "/v1/messages",
        KEY,
        &json!({"model": "long", "max_tokens": 10, "stream": true, "messages": [{"role": "user", "content": "hi"}]}),
    );
    let evs = r.events();
    let last = &evs.last().unwrap().1;
    assert_eq!(last["type"], "error", "{}", r.text());
    assert_eq!(last["error"]["type"], "timeout_error");
    assert!(last["error"]["message"]
        .as_str()
        .unwrap()
        .contains("total_timeout"));
    assert!(
        evs.iter().any(|(n, _)| n == "content_block_delta"),
        "it streamed before the budget ran out"
    );
}

#[test]
fn a_large_request_falls_over_twice_and_arrives_whole_at_the_third_target() {
    let m = mock();
    let gw = gateway(&config(
        m.addr,
        &[(
            "three",
            &[
                ("openai", "big-a;status=503"),
                ("dead", "big-b"),
                ("anthropic", "big-c"),
            ],
        )],
        "",
    ));
    let big = "y".repeat(1024 * 1024 + 17);
    let body = json!({"model": "three", "messages": [{"role": "user", "content": big}]});
    let r = post_json(gw.addr, "/v1/chat/completions", KEY, &body);
    assert_eq!(r.status, 200, "{}", r.text());
    let attempts = r.header("x-modelswitch-attempts").unwrap();
    assert!(
        attempts.contains("big-a;status=503=503") && attempts.contains("dead/big-b=connect"),
        "{attempts}"
    );
    let s = mock_stats(m.addr);
    assert!(s["last"]["big-a;status=503"]["body_len"].as_u64().unwrap() > 1024 * 1024);
    assert!(s["last"]["big-c"]["body_len"].as_u64().unwrap() > 1024 * 1024);
    assert_eq!(s["by_model"]["big-a;status=503"], 1);
    assert_eq!(s["by_model"]["big-c"], 1, "each target called once");
    assert!(r.json()["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .starts_with("Hello from the mock upstream! You said: yyy"));
}

fn replica_config(a: std::net::SocketAddr, b: std::net::SocketAddr, extra: &str) -> String {
    let mut c = config(
        a,
        &[
            ("rep", &[("replicated", "m-rep")]),
            ("rep-slow", &[("replicated", "m-rep;first_ms=1500")]),
            (
                "rep-chain",
                &[("replicated", "m-rep"), ("openai", "m-backup")],
            ),
        ],
        "",
    );
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

fn served(m: &Proc, model: &str) -> u64 {
    mock_stats(m.addr)["by_model"][model].as_u64().unwrap_or(0)
}

#[test]
fn replicas_share_the_load_round_robin() {
    let (a, b) = (mock(), mock());
    let gw = gateway(&replica_config(a.addr, b.addr, "weights = [3, 1]"));
    for _ in 0..8 {
        assert_eq!(
            post_json(gw.addr, "/v1/chat/completions", KEY, &chat("rep")).status,
            200
        );
    }
    assert_eq!(
        (served(&a, "m-rep"), served(&b, "m-rep")),
        (6, 2),
        "weighted 3:1"
    );
}

#[test]
fn a_dead_replica_is_found_by_health_checks_and_skipped() {
    let (a, b) = (mock(), mock());
    let gw = gateway(&replica_config(
        a.addr,
        b.addr,
        r#"health_check = { path = "/health", interval = "100ms", timeout = "200ms", unhealthy_threshold = 1 }"#,
    ));
    assert_eq!(
        post_json(gw.addr, "/v1/chat/completions", KEY, &chat("rep")).status,
        200
    );
    drop(b);
    std::thread::sleep(Duration::from_millis(600));
    for _ in 0..6 {
        let r = post_json(gw.addr, "/v1/chat/completions", KEY, &chat("rep"));
        assert_eq!(r.status, 200, "{}", r.text());
    }
    assert!(served(&a, "m-rep") >= 6);
    // With no replica alive the target is skipped, not tried.
    drop(a);
    std::thread::sleep(Duration::from_millis(600));
    let r = post_json(gw.addr, "/v1/chat/completions", KEY, &chat("rep-chain"));
    assert_eq!(
        r.status,
        502,
        "the backup shares the dead mock: {}",
        r.text()
    );
    assert!(r
        .header("x-modelswitch-attempts")
        .unwrap()
        .contains("replicated/m-rep=unhealthy"));
}

#[test]
fn least_in_flight_sends_work_to_the_idle_replica() {
    let (a, b) = (mock(), mock());
    let gw = gateway(&replica_config(
        a.addr,
        b.addr,
        r#"balance = "least_inflight""#,
    ));
    let gw_addr = gw.addr;
    // One slow request holds a replica busy…
    let slow = std::thread::spawn(move || {
        post_json(
            gw_addr,
            "/v1/chat/completions",
            KEY,
            &json!({"model": "rep-slow", "messages": [{"role": "user", "content": "x"}]}),
        )
    });
    std::thread::sleep(Duration::from_millis(300));
    // …so every quick one goes to the other.
    for _ in 0..4 {
        assert_eq!(
            post_json(gw.addr, "/v1/chat/completions", KEY, &chat("rep")).status,
            200
        );
    }
    let (qa, qb) = (served(&a, "m-rep"), served(&b, "m-rep"));
    let busy_is_a = served(&a, "m-rep;first_ms=1500") == 1;
    assert_eq!(slow.join().unwrap().status, 200);
    assert_eq!(
        if busy_is_a { (qa, qb) } else { (qb, qa) },
        (0, 4),
        "a={qa} b={qb}"
    );
}

#[test]
fn a_target_silent_past_its_first_event_budget_falls_over() {
    let m = mock();
    let mut c = config(m.addr, &[], "");
    c.push_str("\n[[models]]\nname = \"sleepy\"\ntargets = [{ provider = \"openai\", model = \"m-sleepy;first_ms=2000\" }, { provider = \"anthropic\", model = \"m-awake\" }]\nfirst_event_timeout = \"300ms\"\n");
    let gw = gateway(&c);
    for stream in [false, true] {
        let r = post_json(
            gw.addr,
            "/v1/chat/completions",
            KEY,
            &json!({"model": "sleepy", "stream": stream, "messages": [{"role": "user", "content": "hi"}]}),
        );
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.header("x-modelswitch-target"), Some("anthropic/m-awake"));
        let attempts = r.header("x-modelswitch-attempts").unwrap();
        let want = if stream {
            "=timeout-first-event"
        } else {
            "=timeout-"
        };
        assert!(attempts.contains(want), "{attempts}");
    }
}

#[test]
fn when_every_breaker_is_open_the_earliest_is_probed_rather_than_nothing_tried() {
    let m = mock();
    let gw = gateway(&pool_config(m.addr));
    let c_only = |n: u64| {
        let r = post_json(gw.addr, "/v1/chat/completions", KEY, &chat("flaky-only"));
        assert_eq!(r.status, 500, "{}", r.text());
        assert_eq!(mock_stats(m.addr)["by_model"]["m-flaky;status=500"], n);
        r
    };
    c_only(1);
    c_only(2); // now open
    let r = c_only(3); // all open: probed anyway, and the client gets the real error
    assert!(r
        .header("x-modelswitch-attempts")
        .unwrap()
        .contains("=circuit-open"));
}

#[test]
fn upstream_connections_are_reused_across_requests() {
    let m = mock();
    let gw = gateway(&config(m.addr, &[], ""));
    for stream in [false, true, false, true] {
        for _ in 0..5 {
            let mut body = chat("oa");
            body["stream"] = json!(stream);
            let r = post_json(gw.addr, "/v1/chat/completions", KEY, &body);
            assert_eq!(r.status, 200, "{}", r.text());
        }
    }
    // 20 sequential requests, each on a new client connection that lands on
    // one of the two workers: at most one upstream connection per worker.
    let s = mock_stats(m.addr);
    assert_eq!(s["by_model"]["mock"], 20);
    let opened = s["connections"].as_u64().unwrap() - 1; // minus the stats call
    assert!(
        (1..=2).contains(&opened),
        "{opened} upstream connections for 20 requests"
    );
}

#[test]
fn a_connection_the_upstream_closed_while_parked_is_not_reused() {
    let m = mock();
    let gw = gateway(&config(
        m.addr,
        &[("hangup", &[("openai", "mock;hangup=1")])],
        "",
    ));
    for i in 0..6 {
        let r = post_json(gw.addr, "/v1/chat/completions", KEY, &chat("hangup"));
        assert_eq!(r.status, 200, "request {i}: {}", r.text());
        assert_eq!(r.header("x-modelswitch-attempts"), None, "request {i}");
        // Let the mock's close arrive before the next request, sometimes.
        if i % 2 == 0 {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let s = mock_stats(m.addr);
    assert_eq!(
        s["by_model"]["mock;hangup=1"], 6,
        "each request answered once"
    );
    assert_eq!(s["connections"].as_u64().unwrap() - 1, 6);
}

/// A process's open descriptors, and how many of them (past stdio) are
/// /dev/null: the gateway's reserve and whatever else the process opened
/// there.
fn descriptors(pid: u32) -> (u32, u32) {
    let (mut all, mut held) = (0, 0);
    for entry in std::fs::read_dir(format!("/proc/{pid}/fd")).unwrap() {
        let entry = entry.unwrap();
        all += 1;
        let fd: u32 = entry.file_name().to_string_lossy().parse().unwrap();
        let target = std::fs::read_link(entry.path()).unwrap_or_default();
        if fd > 2 && target == std::path::Path::new("/dev/null") {
            held += 1;
        }
    }
    (all, held)
}

#[test]
fn out_of_descriptors_a_request_waits_for_one_instead_of_failing() {
    let m = mock();
    // The gateway's own descriptors (listeners, one runtime per worker and
    // per background service, the store's files) and 8 more: far fewer than
    // 12 held streams need (a client socket and an upstream socket each).
    // Waiting for a descriptor counts against the first-event budget: give
    // the queue of 12 room on a busy machine (the point is that they wait).
    let text = config(
        m.addr,
        &[("slow", &[("openai", "slow;chunks=4;delay_ms=100")])],
        "",
    )
    .replace(
        "first_event_timeout = \"3s\"",
        "first_event_timeout = \"20s\"",
    );
    // What the gateway holds by itself, measured rather than assumed: it
    // grows with every background service (each has its own runtime). The
    // descriptors it holds back for upstream connections (on /dev/null) are
    // not its own: they are a share of the limit.
    let (probe_all, probe_null) = {
        let probe = gateway(&text);
        // A first request makes the usage writer open its connection.
        let r = post_json(probe.addr, "/v1/chat/completions", KEY, &chat("slow"));
        assert_eq!(r.status, 200, "{}", r.text());
        std::thread::sleep(Duration::from_millis(300));
        descriptors(probe.pid())
    };
    // Under a high limit the reserve is its most, 16.
    let own = probe_all - 16;
    let limit = own + 8;
    let gw = gateway_with_open_files(&text, limit);
    assert_eq!(
        descriptors(gw.pid()).1 + 16 - probe_null,
        limit / 16,
        "the reserve is a 16th of a low limit"
    );
    let before = mock_stats(m.addr)["by_model"]["slow;chunks=4;delay_ms=100"]
        .as_u64()
        .unwrap_or(0);
    // All at once: the accept loop may take every free descriptor for
    // client sockets before any request connects upstream; the reserve is
    // what keeps them from waiting on each other until the deadline.
    let start = std::sync::Arc::new(std::sync::Barrier::new(12));
    let clients: Vec<_> = (0..12)
        .map(|_| {
            let (addr, start) = (gw.addr, start.clone());
            std::thread::spawn(move || {
                let mut body = chat("slow");
                body["stream"] = json!(true);
                start.wait();
                post_json(addr, "/v1/chat/completions", KEY, &body)
            })
        })
        .collect();
    for c in clients {
        let r = c.join().unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
        assert!(r.text().ends_with("data: [DONE]\n\n"), "{}", r.text());
    }
    assert_eq!(
        mock_stats(m.addr)["by_model"]["slow;chunks=4;delay_ms=100"],
        before + 12
    );
}
