//! Config hot reload over real sockets: the gateway runs from a file the
//! test rewrites (renamed over, as editors do, or overwritten in place);
//! a valid change is served within 2 s without a restart, a broken one
//! changes nothing and is logged with its TOML paths, requests in flight
//! finish on the config they started with, breaker and key-pool state
//! carry over, `reload = false` leaves it to SIGHUP, and settings that
//! need a restart keep their running value.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use serde_json::{json, Value};
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

/// A change must be served within 2 s; the margin covers the polling
/// request itself on a busy machine.
const PUBLISH: Duration = Duration::from_millis(2000 + 750);

/// The load test takes this exclusively, every other test shares it: the
/// 2 s deadlines are not measured while another test saturates the CPU.
static LOAD: RwLock<()> = RwLock::new(());

fn shared() -> RwLockReadGuard<'static, ()> {
    LOAD.read().unwrap_or_else(|e| e.into_inner())
}

fn exclusive() -> RwLockWriteGuard<'static, ()> {
    LOAD.write().unwrap_or_else(|e| e.into_inner())
}

fn chat(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "hi there"}]})
}

fn ask(gw: SocketAddr, model: &str) -> Response {
    post_json(gw, "/v1/chat/completions", KEY, &chat(model))
}

/// Asks for `model` every 25 ms until the answer has `status`; that first
/// answer, or None after `within`.
fn poll_for(gw: SocketAddr, model: &str, status: u16, within: Duration) -> Option<Response> {
    let deadline = Instant::now() + within;
    loop {
        let r = ask(gw, model);
        if r.status == status {
            return Some(r);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

fn model_ids(gw: SocketAddr) -> Vec<String> {
    let auth = format!("Bearer {KEY}");
    let r = request(gw, "GET", "/v1/models", &[("Authorization", &auth)], b"");
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect()
}

fn served(m: &Proc, model: &str) -> u64 {
    mock_stats(m.addr)["by_model"][model].as_u64().unwrap_or(0)
}

fn short(s: &str) -> String {
    s.chars().take(600).collect()
}

/// The log's lines about the config (not the access log).
fn config_lines(log: &str) -> String {
    log.lines()
        .filter(|l| l.contains("config") || l.contains("restart"))
        .collect::<Vec<_>>()
        .join("\n")
}

// ------------------------------------------------------ adding and removing

#[test]
fn a_model_added_to_the_file_is_served_within_two_seconds() {
    let _s = shared();
    let m = mock();
    let gw = live_gateway(&config(m.addr, &[("a", &[("openai", "m-a")])], ""));
    assert_eq!(ask(gw.addr(), "a").status, 200);
    assert_eq!(ask(gw.addr(), "b").status, 404);

    let mark = gw.log_mark();
    let written = Instant::now();
    gw.replace_file(&config(
        m.addr,
        &[("a", &[("openai", "m-a")]), ("b", &[("anthropic", "m-b")])],
        "",
    ));
    let r = poll_for(gw.addr(), "b", 200, PUBLISH).unwrap_or_else(|| {
        panic!(
            "model b not served {:?} after the rename; log:\n{}",
            written.elapsed(),
            gw.log_since(mark)
        )
    });
    assert!(
        r.json()["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .starts_with("Hello from the mock upstream!"),
        "{}",
        r.text()
    );
    assert_eq!(served(&m, "m-b"), 1, "served by the new target");
    assert_eq!(
        ask(gw.addr(), "a").status,
        200,
        "the old model still answers"
    );
    assert_eq!(model_ids(gw.addr()), vec!["a", "b", "oa"]);
    assert!(
        gw.wait_for_log(mark, "config reloaded", Duration::from_secs(1)),
        "{}",
        gw.log_since(mark)
    );
}

#[test]
fn a_model_removed_from_the_file_answers_404() {
    let _s = shared();
    let m = mock();
    let gw = live_gateway(&config(
        m.addr,
        &[("a", &[("openai", "m-a")]), ("b", &[("anthropic", "m-b")])],
        "",
    ));
    assert_eq!(ask(gw.addr(), "b").status, 200);

    // In place this time: same inode, truncated and rewritten.
    let mark = gw.log_mark();
    gw.overwrite_file(&config(m.addr, &[("a", &[("openai", "m-a")])], ""));
    let r = poll_for(gw.addr(), "b", 404, PUBLISH)
        .unwrap_or_else(|| panic!("model b still served; log:\n{}", gw.log_since(mark)));
    assert_eq!(r.json()["error"]["code"], "model_not_found", "{}", r.text());
    assert_eq!(ask(gw.addr(), "a").status, 200);
    assert_eq!(model_ids(gw.addr()), vec!["a", "oa"]);

    // And a second in-place edit brings it back.
    gw.overwrite_file(&config(
        m.addr,
        &[("a", &[("openai", "m-a")]), ("b", &[("anthropic", "m-b")])],
        "",
    ));
    assert!(
        poll_for(gw.addr(), "b", 200, PUBLISH).is_some(),
        "{}",
        gw.log_since(mark)
    );
}

// ------------------------------------------------------------ broken files

/// Writes `text` (renamed over), waits for the failure to be logged, and
/// checks the log line and that the running config is untouched: `a` and
/// `oa` answer, `new` does not.
fn expect_rejected(gw: &LiveGateway, text: &str, errors: &[String]) {
    let mark = gw.log_mark();
    gw.replace_file(text);
    assert!(
        gw.wait_for_log(mark, "config reload failed", PUBLISH),
        "no `config reload failed` logged; log:\n{}",
        gw.log_since(mark)
    );
    // The errors may follow on the next lines: give them a moment.
    for e in errors {
        gw.wait_for_log(mark, e, Duration::from_secs(1));
    }
    let log = gw.log_since(mark);
    let at = log.find("config reload failed").unwrap();
    let line_start = log[..at].rfind('\n').map_or(0, |p| p + 1);
    let line_end = log[at..].find('\n').map_or(log.len(), |p| at + p);
    let line = &log[line_start..line_end];
    assert!(line.contains("WARN"), "not logged at warn level: {line}");
    let after = &log[at..];
    for e in errors {
        assert!(
            after.contains(e.as_str()),
            "the log does not name `{e}`:\n{log}"
        );
    }
    // Nothing changed.
    assert_eq!(ask(gw.addr(), "a").status, 200);
    assert_eq!(ask(gw.addr(), "oa").status, 200);
    let r = ask(gw.addr(), "new");
    assert_eq!(r.status, 404, "{}", r.text());
    assert_eq!(model_ids(gw.addr()), vec!["a", "oa"]);
}

#[test]
fn a_broken_file_changes_nothing_and_the_log_names_the_toml_path() {
    let _s = shared();
    let m = mock();
    let gw = live_gateway(&config(m.addr, &[("a", &[("openai", "m-a")])], ""));
    assert_eq!(ask(gw.addr(), "a").status, 200);
    // Models: a = 0, new = 1, oa = 2 (the harness appends it).
    let with_new = config(
        m.addr,
        &[
            ("a", &[("openai", "m-a")]),
            ("new", &[("anthropic", "m-new")]),
        ],
        "",
    );

    // A TOML syntax error.
    let syntax = format!("{with_new}\nthis line is not toml\n");
    let errors = check_config(&gw.render(&syntax)).unwrap_err();
    assert!(
        !errors.is_empty() && errors[0].starts_with("line "),
        "check: {errors:?}"
    );
    expect_rejected(&gw, &syntax, &errors);

    // Unknown providers in two targets: every error is named.
    let mut unknown = with_new.clone();
    unknown.push_str(
        "\n[[models]]\nname = \"ghostly\"\ntargets = [{ provider = \"openai\", model = \"m-g\" }, { provider = \"nobody\", model = \"m-n\" }]\n",
    );
    unknown.push_str(
        "\n[[models]]\nname = \"spooky\"\ntargets = [{ provider = \"ghost\", model = \"m-s\" }]\n",
    );
    let errors = check_config(&gw.render(&unknown)).unwrap_err();
    assert_eq!(
        errors,
        vec![
            "models[3].targets[1].provider: no provider named 'nobody'".to_owned(),
            "models[4].targets[0].provider: no provider named 'ghost'".to_owned(),
        ],
        "what `modelswitch check` prints"
    );
    expect_rejected(&gw, &unknown, &errors);
    assert_eq!(ask(gw.addr(), "ghostly").status, 404);

    // The watch survives failures: the next valid file is published.
    gw.replace_file(&with_new);
    assert!(
        poll_for(gw.addr(), "new", 200, PUBLISH).is_some(),
        "{}",
        gw.log()
    );
}

// ------------------------------------------------------- state carries over

const RL: &str = "m-rl;fail_key=sk-pool-key-one;fail_status=429;retry_after=60";
const FLAKY: &str = "m-flaky;status=500";

/// `flaky` falls over from a failing target (breaker after 2 failures, 60 s
/// cooldown) to a good one; `rl` goes through a key pool whose first key is
/// rate limited for 60 s. `extra` adds a model to the chain of none of them.
fn stateful_config(
    mock: SocketAddr,
    with_flaky: bool,
    extra: Option<&str>,
    pool_keys: &str,
) -> String {
    let mut c = config(mock, &[("rl", &[("pool", RL)])], "");
    if with_flaky {
        c.push_str(&format!(
            "\n[[models]]\nname = \"flaky\"\ntargets = [{{ provider = \"flaky\", model = \"{FLAKY}\" }}, {{ provider = \"openai\", model = \"m-ok\" }}]\n"
        ));
    }
    if let Some(name) = extra {
        c.push_str(&format!(
            "\n[[models]]\nname = \"{name}\"\ntargets = [{{ provider = \"anthropic\", model = \"m-extra\" }}]\n"
        ));
    }
    c.push_str(&format!(
        r#"
[[providers]]
name = "pool"
type = "openai"
base_url = "http://{mock}/v1"
api_keys = [{pool_keys}]
key_cooldown = "60s"

[[providers]]
name = "flaky"
type = "openai"
base_url = "http://{mock}/v1"
breaker = {{ consecutive_failures = 2, cooldown = "60s" }}
"#
    ));
    c
}

const TWO_KEYS: &str = r#""sk-pool-key-one", "sk-pool-key-two""#;
const THREE_KEYS: &str = r#""sk-pool-key-one", "sk-pool-key-two", "sk-pool-key-three""#;

fn pool_keys(gw: SocketAddr, provider: &str) -> Vec<Value> {
    let auth = format!("Bearer {KEY}");
    let r = request(
        gw,
        "GET",
        "/api/upstream-keys/stats",
        &[("Authorization", &auth)],
        b"",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["providers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["provider"] == provider)
        .map(|p| p["keys"].as_array().unwrap().clone())
        .unwrap_or_default()
}

/// Opens the `flaky` breaker and rests the pool's first key.
fn open_breaker_and_rest_key(gw: SocketAddr, m: &Proc) {
    for _ in 0..2 {
        let r = ask(gw, "flaky");
        assert_eq!(r.status, 200, "{}", r.text());
    }
    assert_eq!(served(m, FLAKY), 2);
    let r = ask(gw, "flaky");
    assert_eq!(r.status, 200);
    let attempts = r.header("x-modelswitch-attempts").unwrap();
    assert!(
        attempts.contains(&format!("flaky/{FLAKY}=circuit-open")),
        "{attempts}"
    );
    assert_eq!(served(m, FLAKY), 2, "open: not asked");

    let r = ask(gw, "rl");
    assert_eq!(r.status, 200, "{}", r.text());
    let attempts = r.header("x-modelswitch-attempts").unwrap();
    assert!(attempts.contains("=429 key#0"), "{attempts}");
    let keys = pool_keys(gw, "pool");
    assert_eq!(keys[0]["state"], "cooling", "{keys:?}");
}

#[test]
fn an_open_breaker_and_a_resting_key_survive_an_unrelated_reload() {
    let _s = shared();
    let m = mock();
    let gw = live_gateway(&stateful_config(m.addr, true, None, TWO_KEYS));
    open_breaker_and_rest_key(gw.addr(), &m);

    // An unrelated change: one more model.
    gw.replace_file(&stateful_config(m.addr, true, Some("extra"), TWO_KEYS));
    assert!(
        poll_for(gw.addr(), "extra", 200, PUBLISH).is_some(),
        "{}",
        gw.log()
    );

    // The breaker is still open: the failing target is skipped, not asked.
    let r = ask(gw.addr(), "flaky");
    assert_eq!(r.status, 200, "{}", r.text());
    let attempts = r.header("x-modelswitch-attempts").unwrap_or_default();
    assert!(
        attempts.contains(&format!("flaky/{FLAKY}=circuit-open")),
        "the breaker was reset by the reload: {attempts}"
    );
    assert_eq!(served(&m, FLAKY), 2, "the open target was asked");

    // The key still rests: one upstream call, with the second key.
    let before = served(&m, RL);
    let r = ask(gw.addr(), "rl");
    assert_eq!(r.status, 200, "{}", r.text());
    let attempts = r.header("x-modelswitch-attempts").unwrap_or_default();
    assert!(
        !attempts.contains("=429"),
        "the resting key was tried: {attempts}"
    );
    assert_eq!(served(&m, RL), before + 1);
    assert_eq!(
        mock_stats(m.addr)["last"][RL]["authorization"],
        "Bearer sk-pool-key-two"
    );
    let keys = pool_keys(gw.addr(), "pool");
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert_eq!(keys[0]["key"], "***-one");
    assert_eq!(keys[0]["state"], "cooling", "{keys:?}");
    assert_eq!(keys[0]["status_counts"]["429"], 1, "{keys:?}");
    assert_eq!(keys[1]["state"], "active", "{keys:?}");
}

#[test]
fn a_changed_key_list_starts_a_fresh_pool_and_a_removed_target_loses_its_breaker() {
    let _s = shared();
    let m = mock();
    let gw = live_gateway(&stateful_config(m.addr, true, None, TWO_KEYS));
    open_breaker_and_rest_key(gw.addr(), &m);

    // Remove the `flaky` model (its failing target with it) and add a key.
    gw.replace_file(&stateful_config(m.addr, false, None, THREE_KEYS));
    assert!(
        poll_for(gw.addr(), "flaky", 404, PUBLISH).is_some(),
        "{}",
        gw.log()
    );
    assert!(
        wait_until(PUBLISH, || pool_keys(gw.addr(), "pool").len() == 3),
        "{}",
        gw.log()
    );
    let keys = pool_keys(gw.addr(), "pool");
    assert!(
        keys.iter().all(|k| k["state"] == "active"),
        "a changed key list starts a fresh pool: {keys:?}"
    );
    // The first key is tried again (and rests again).
    let r = ask(gw.addr(), "rl");
    assert_eq!(r.status, 200, "{}", r.text());
    let attempts = r.header("x-modelswitch-attempts").unwrap_or_default();
    assert!(attempts.contains("=429 key#0"), "{attempts}");

    // Back again: its breaker starts closed, so the target is asked.
    gw.replace_file(&stateful_config(m.addr, true, None, THREE_KEYS));
    let r = poll_for(gw.addr(), "flaky", 200, PUBLISH).unwrap_or_else(|| panic!("{}", gw.log()));
    let attempts = r.header("x-modelswitch-attempts").unwrap_or_default();
    assert!(
        !attempts.contains("circuit-open") && attempts.contains(&format!("flaky/{FLAKY}=500")),
        "the removed target's breaker came back: {attempts}"
    );
    assert_eq!(served(&m, FLAKY), 3);
}

// --------------------------------------------------------- in-flight streams

/// A streaming request whose response is read a piece at a time.
struct OpenStream {
    sock: TcpStream,
    raw: Vec<u8>,
    ended: bool,
}

impl OpenStream {
    /// Sends the request and reads until the response head and the first
    /// event have arrived.
    fn start(gw: SocketAddr, path: &str, body: &Value) -> Self {
        let mut sock = TcpStream::connect_timeout(&gw, Duration::from_secs(5)).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(15)))
            .unwrap();
        sock.set_write_timeout(Some(Duration::from_secs(15)))
            .unwrap();
        let body = body.to_string();
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {gw}\r\nConnection: close\r\nAuthorization: Bearer {KEY}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        sock.write_all(head.as_bytes()).unwrap();
        sock.write_all(body.as_bytes()).unwrap();
        let mut s = OpenStream {
            sock,
            raw: Vec::new(),
            ended: false,
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let mut buf = [0u8; 4096];
            let n = s.sock.read(&mut buf).unwrap();
            assert!(n > 0, "closed before the first event: {}", s.text());
            s.raw.extend_from_slice(&buf[..n]);
            let text = s.text();
            if let Some(p) = text.find("\r\n\r\n") {
                if text[p..].contains("data: ") {
                    break;
                }
            }
            assert!(Instant::now() < deadline, "no first event: {}", s.text());
        }
        assert!(s.raw.starts_with(b"HTTP/1.1 200"), "{}", s.text());
        s
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.raw).into_owned()
    }

    /// Reads what has arrived without waiting for more; true once the
    /// gateway has closed the connection.
    fn read_available(&mut self) -> bool {
        self.sock
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let mut buf = [0u8; 16 * 1024];
        // Bounded in wall time too: a stream that keeps sending would
        // otherwise be read to its end here.
        let until = Instant::now() + Duration::from_millis(100);
        while Instant::now() < until {
            match self.sock.read(&mut buf) {
                Ok(0) => {
                    self.ended = true;
                    break;
                }
                Ok(n) => self.raw.extend_from_slice(&buf[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => break,
                Err(e) => panic!("stream read: {e}"),
            }
        }
        self.sock
            .set_read_timeout(Some(Duration::from_secs(15)))
            .unwrap();
        self.ended
    }

    fn finish(mut self) -> Response {
        if !self.ended {
            self.sock.read_to_end(&mut self.raw).unwrap();
        }
        parse_response(&self.raw, false)
    }
}

/// What the mock streams for `chunks` pieces when the user said `said`.
fn mock_text(said: &str, chunks: usize) -> String {
    let text = format!("Hello from the mock upstream! You said: {said}");
    let words: Vec<&str> = text.split_inclusive(' ').collect();
    (0..chunks).map(|i| words[i % words.len()]).collect()
}

#[test]
fn a_stream_started_before_a_reload_that_removes_its_model_completes() {
    let _s = shared();
    let m = mock();
    // 103 events 50 ms apart: about 5 s, longer than a reload may take.
    let long = "m-long;chunks=100;delay_ms=50";
    let gw = live_gateway(&config(m.addr, &[("long", &[("openai", long)])], ""));
    let started = Instant::now();
    let mut oa = OpenStream::start(
        gw.addr(),
        "/v1/chat/completions",
        &json!({"model": "long", "stream": true, "messages": [{"role": "user", "content": "hi"}]}),
    );
    let mut an = OpenStream::start(
        gw.addr(),
        "/v1/messages",
        &json!({"model": "long", "max_tokens": 1000, "stream": true, "messages": [{"role": "user", "content": "hi"}]}),
    );

    gw.replace_file(&config(m.addr, &[], ""));
    assert!(
        poll_for(gw.addr(), "long", 404, PUBLISH).is_some(),
        "{}",
        gw.log()
    );
    // Both streams are still going: the reload was published under them.
    let published_at = started.elapsed();
    assert!(
        !oa.read_available() && !oa.text().contains("[DONE]"),
        "the stream ended before the reload was published ({published_at:?}): {}\n{}",
        oa.text(),
        gw.log()
    );
    assert!(
        !an.read_available() && !an.text().contains("message_stop"),
        "the stream ended before the reload was published ({published_at:?})"
    );

    let want = mock_text("hi", 100);
    let r = oa.finish();
    assert_eq!(r.status, 200);
    assert!(r.text().ends_with("data: [DONE]\n\n"), "{}", r.text());
    let evs = r.events();
    assert!(
        evs.iter().all(|(_, v)| v.get("error").is_none()),
        "{}",
        r.text()
    );
    let got: String = evs
        .iter()
        .filter_map(|(_, v)| v["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(got, want, "every chunk arrived");
    assert!(
        evs.iter()
            .any(|(_, v)| v["choices"][0]["finish_reason"] == "stop"),
        "{}",
        r.text()
    );

    let r = an.finish();
    assert_eq!(r.status, 200);
    let evs = r.events();
    assert!(evs.iter().all(|(n, _)| n != "error"), "{}", r.text());
    assert_eq!(evs.last().unwrap().0, "message_stop", "{}", r.text());
    let got: String = evs
        .iter()
        .filter(|(n, _)| n == "content_block_delta")
        .filter_map(|(_, v)| v["delta"]["text"].as_str())
        .collect();
    assert_eq!(got, want, "every chunk arrived");
    assert!(
        evs.iter()
            .any(|(n, v)| n == "message_delta" && v["delta"]["stop_reason"] == "end_turn"),
        "{}",
        r.text()
    );

    // The polls for the 404 asked the mock too, before the reload landed.
    let s = mock_stats(m.addr);
    assert!(s["by_model"][long].as_u64() >= Some(2), "{s}");
    assert!(s["aborted"][long].is_null(), "no stream was cut: {s}");
}

// -------------------------------------------------------------- under load

/// One request of the load loop: non-streaming OpenAI, or streaming
/// Anthropic; Err describes a failure.
fn one_request(gw: SocketAddr, stream: bool) -> Result<(), String> {
    if stream {
        let r = post_json(
            gw,
            "/v1/messages",
            KEY,
            &json!({"model": "an", "max_tokens": 100, "stream": true, "messages": [{"role": "user", "content": "hi"}]}),
        );
        if r.status != 200 || !r.text().contains("event: message_stop") {
            return Err(format!("stream: {} {}", r.status, short(&r.text())));
        }
    } else {
        let r = ask(gw, "oa");
        if r.status != 200 {
            return Err(format!("unary: {} {}", r.status, short(&r.text())));
        }
    }
    Ok(())
}

#[test]
fn under_load_twenty_rewrites_valid_and_broken_fail_no_request() {
    let _x = exclusive();
    let m = mock();
    let valid = |i: usize| {
        let extra = format!("extra-{i}");
        config(
            m.addr,
            &[
                ("an", &[("anthropic", "m-an")]),
                (extra.as_str(), &[("openai", "m-extra")]),
            ],
            "",
        )
    };
    let gw = live_gateway(&valid(100));
    let addr = gw.addr();
    assert_eq!(ask(addr, "oa").status, 200);

    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..3)
        .map(|t| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut done = 0u64;
                let mut failures: Vec<String> = Vec::new();
                let mut i = t;
                while !stop.load(Ordering::Relaxed) {
                    i += 1;
                    let stream = i % 2 == 0;
                    match std::panic::catch_unwind(move || one_request(addr, stream)) {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => failures.push(e),
                        Err(_) => failures.push("the request panicked (see stderr)".into()),
                    }
                    done += 1;
                }
                (done, failures)
            })
        })
        .collect();

    // 20 rewrites over 10 s, alternating: broken (a syntax error or an
    // unknown provider), valid, broken, … valid.
    let start = Instant::now();
    for i in 0..20usize {
        let at = start + Duration::from_millis(500 * i as u64);
        std::thread::sleep(at.saturating_duration_since(Instant::now()));
        let text = match i % 4 {
            0 => format!("{}\n[[models]\nname = \"half\"\n", valid(i)),
            2 => format!(
                "{}\n[[models]]\nname = \"lost\"\ntargets = [{{ provider = \"nobody\", model = \"m\" }}]\n",
                valid(i)
            ),
            _ => valid(i),
        };
        gw.replace_file(&text);
    }
    std::thread::sleep((start + Duration::from_secs(10)).saturating_duration_since(Instant::now()));
    stop.store(true, Ordering::Relaxed);

    let mut total = 0;
    let mut failures = Vec::new();
    for c in clients {
        let (done, f) = c.join().unwrap();
        total += done;
        failures.extend(f);
    }
    assert!(
        failures.is_empty(),
        "{} of {total} requests failed, first: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    assert!(total >= 100, "only {total} requests in 10 s");

    // The last version was valid and is served.
    assert!(
        poll_for(addr, "extra-19", 200, PUBLISH).is_some(),
        "{}",
        config_lines(&gw.log())
    );
    let log = gw.log();
    assert!(
        log.contains("config reloaded") && log.contains("config reload failed"),
        "{}",
        config_lines(&log)
    );
}

// ------------------------------------------------ reload = false, restarts

#[test]
fn with_reload_off_only_sighup_rereads_the_file_and_listen_needs_a_restart() {
    let _s = shared();
    let m = mock();
    let off = "reload = false";
    let gw = live_gateway(&config(m.addr, &[("a", &[("openai", "m-a")])], off));
    assert_eq!(ask(gw.addr(), "a").status, 200);

    // Not watched: the change is not picked up.
    gw.replace_file(&config(
        m.addr,
        &[
            ("a", &[("openai", "m-a")]),
            ("late", &[("openai", "m-late")]),
        ],
        off,
    ));
    assert!(
        !wait_until(PUBLISH, || ask(gw.addr(), "late").status != 404),
        "picked up with reload = false"
    );

    // SIGHUP re-reads it.
    let mark = gw.log_mark();
    gw.sighup();
    assert!(
        poll_for(gw.addr(), "late", 200, PUBLISH).is_some(),
        "SIGHUP did not publish; log:\n{}",
        gw.log_since(mark)
    );
    assert!(
        gw.wait_for_log(mark, "config reloaded", Duration::from_secs(1)),
        "{}",
        gw.log_since(mark)
    );

    // A new listen address needs a restart: the old one keeps serving, and
    // the rest of the change is published.
    let moved_to = free_addr();
    let moved = config(
        m.addr,
        &[
            ("a", &[("openai", "m-a")]),
            ("late", &[("openai", "m-late")]),
            ("after", &[("openai", "m-after")]),
        ],
        off,
    )
    .replace("LISTEN", &moved_to.to_string());
    let mark = gw.log_mark();
    gw.overwrite_file(&moved);
    gw.sighup();
    assert!(
        gw.wait_for_log(mark, "needs a restart", PUBLISH),
        "log:\n{}",
        gw.log_since(mark)
    );
    assert!(
        poll_for(gw.addr(), "after", 200, PUBLISH).is_some(),
        "log:\n{}",
        gw.log_since(mark)
    );
    assert_eq!(ask(gw.addr(), "a").status, 200);
    assert!(
        TcpStream::connect_timeout(&moved_to, Duration::from_millis(300)).is_err(),
        "the gateway moved to {moved_to} without a restart"
    );
}
