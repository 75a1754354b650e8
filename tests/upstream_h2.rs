//! Upstream HTTP/2 (`http2 = true`) against the mock's h2c (prior
//! knowledge) port: both dialects, streaming or not; many concurrent
//! streams on one connection per worker, within the server's stream
//! limit; faults behave as over HTTP/1.1; `http2 = false` stays HTTP/1.1.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers: a failed unwrap is a failed assertion"
)]

mod common;

use common::*;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::time::Duration;

/// `openai-h2` and `anthropic-h2`: the mock's providers over HTTP/2.
fn h2_providers(mock: SocketAddr) -> String {
    format!(
        r#"
[[providers]]
name = "openai-h2"
type = "openai"
base_url = "http://{mock}/v1"
api_key = "{UPSTREAM_OPENAI_KEY}"
http2 = true

[[providers]]
name = "anthropic-h2"
type = "anthropic"
base_url = "http://{mock}"
api_key = "{UPSTREAM_ANTHROPIC_KEY}"
http2 = true
"#
    )
}

fn h2_config(mock: SocketAddr, models: &[(&str, &[(&str, &str)])], threads: usize) -> String {
    config(mock, models, "").replace("threads = 2", &format!("threads = {threads}"))
        + &h2_providers(mock)
}

fn openai(model: &str, stream: bool, text: &str) -> Value {
    json!({"model": model, "stream": stream, "messages": [{"role": "user", "content": text}]})
}

fn anthropic(model: &str, stream: bool, text: &str) -> Value {
    json!({"model": model, "stream": stream, "max_tokens": 64,
           "messages": [{"role": "user", "content": text}]})
}

/// The answer text of an OpenAI Chat response, streamed or not.
fn openai_text(r: &Response, stream: bool) -> String {
    assert_eq!(r.status, 200, "{}", r.text());
    if !stream {
        return r.json()["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .to_owned();
    }
    assert!(r.text().contains("data: [DONE]"), "{}", r.text());
    r.events()
        .iter()
        .filter_map(|(_, v)| v.pointer("/choices/0/delta/content")?.as_str())
        .collect()
}

/// The answer text of an Anthropic Messages response, streamed or not.
fn anthropic_text(r: &Response, stream: bool) -> String {
    assert_eq!(r.status, 200, "{}", r.text());
    if !stream {
        return r.json()["content"][0]["text"].as_str().unwrap().to_owned();
    }
    let evs = r.events();
    assert_eq!(evs.last().unwrap().0, "message_stop", "{}", r.text());
    evs.iter()
        .filter_map(|(_, v)| v.pointer("/delta/text")?.as_str())
        .collect()
}

#[test]
fn an_http2_provider_serves_both_dialects_streaming_or_not_over_h2() {
    let m = mock();
    let gw = gateway(&h2_config(
        m.addr,
        &[
            ("h2-oa", &[("openai-h2", "mock-oa")]),
            ("h2-an", &[("anthropic-h2", "mock-an")]),
        ],
        2,
    ));
    for stream in [false, true] {
        let r = post_json(
            gw.addr,
            "/v1/chat/completions",
            KEY,
            &openai("h2-oa", stream, "over h2 please"),
        );
        assert!(
            openai_text(&r, stream).ends_with("You said: over h2 please"),
            "{}",
            r.text()
        );
        let r = post_json(
            gw.addr,
            "/v1/messages",
            KEY,
            &anthropic("h2-an", stream, "over h2 too"),
        );
        assert!(
            anthropic_text(&r, stream).ends_with("You said: over h2 too"),
            "{}",
            r.text()
        );
    }
    // A prompt many times the default flow-control window goes through.
    let big = "x".repeat(600 * 1024);
    let r = post_json(
        gw.addr,
        "/v1/chat/completions",
        KEY,
        &openai("h2-oa", false, &big),
    );
    assert!(openai_text(&r, false).ends_with(&big[..200]));
    let s = mock_stats(m.addr);
    assert!(s["last"]["mock-oa"]["body_len"].as_u64().unwrap() > 600 * 1024);
    assert_eq!(s["by_protocol"]["h2"], 5, "{s}");
    assert_eq!(s["last"]["mock-oa"]["protocol"], "h2");
    assert_eq!(s["last"]["mock-an"]["protocol"], "h2");
    // The credentials went as headers on the stream.
    assert_eq!(
        s["last"]["mock-oa"]["authorization"],
        format!("Bearer {UPSTREAM_OPENAI_KEY}")
    );
    assert_eq!(s["last"]["mock-an"]["x_api_key"], UPSTREAM_ANTHROPIC_KEY);
    // At most one connection per worker, and only the stats call besides.
    let h2 = s["h2_connections"].as_u64().unwrap();
    assert!((1..=2).contains(&h2), "{s}");
    assert_eq!(s["connections"].as_u64().unwrap(), h2 + 1, "{s}");
}

/// `n` streaming chat requests at once; each one's answer text.
fn concurrent_streams(gw: SocketAddr, model: &'static str, n: usize) -> Vec<String> {
    let threads: Vec<_> = (0..n)
        .map(|i| {
            std::thread::spawn(move || {
                let r = post_json(
                    gw,
                    "/v1/chat/completions",
                    KEY,
                    &openai(model, true, &format!("request {i}")),
                );
                openai_text(&r, true)
            })
        })
        .collect();
    threads.into_iter().map(|t| t.join().unwrap()).collect()
}

#[test]
fn fifty_concurrent_streams_share_one_upstream_connection() {
    let m = mock();
    // One worker: every request shares its one upstream connection.
    let gw = gateway(&h2_config(
        m.addr,
        &[("slow", &[("openai-h2", "mock;delay_ms=30;first_ms=50")])],
        1,
    ));
    let texts = concurrent_streams(gw.addr, "slow", 50);
    for (i, text) in texts.iter().enumerate() {
        assert!(text.ends_with(&format!("You said: request {i}")), "{text}");
    }
    let s = mock_stats(m.addr);
    assert_eq!(s["by_protocol"]["h2"], 50, "{s}");
    assert_eq!(s["h2_connections"], 1, "{s}");
    assert_eq!(
        s["connections"], 2,
        "one HTTP/2 connection and the stats call: {s}"
    );
    // Many streams at once, not one after another.
    let peak = s["h2_streams_peak"].as_u64().unwrap();
    assert!(peak >= 10, "at most {peak} streams at once");
}

#[test]
fn the_servers_stream_limit_holds_requests_until_a_stream_frees() {
    let m = mock_with(&["--h2-max-streams", "4"]);
    let gw = gateway(&h2_config(
        m.addr,
        &[("slow", &[("openai-h2", "mock;delay_ms=20")])],
        1,
    ));
    let texts = concurrent_streams(gw.addr, "slow", 20);
    for (i, text) in texts.iter().enumerate() {
        assert!(text.ends_with(&format!("You said: request {i}")), "{text}");
    }
    let s = mock_stats(m.addr);
    assert_eq!(s["by_protocol"]["h2"], 20, "{s}");
    assert_eq!(s["h2_connections"], 1, "{s}");
    let peak = s["h2_streams_peak"].as_u64().unwrap();
    assert!((2..=4).contains(&peak), "{peak} streams at once, limit 4");
}

#[test]
fn upstream_faults_over_h2_fail_over_or_end_the_stream_as_over_http1() {
    let m = mock();
    let gw = gateway(&h2_config(
        m.addr,
        &[
            (
                "f-close",
                &[
                    ("openai-h2", "a;fault=close_before_first"),
                    ("anthropic-h2", "b"),
                ],
            ),
            (
                "f-mid",
                &[
                    ("openai-h2", "a;fault=close_mid;after=3"),
                    ("anthropic-h2", "b"),
                ],
            ),
            (
                "f-503",
                &[("openai-h2", "a;status=503"), ("anthropic-h2", "b")],
            ),
        ],
        1,
    ));
    // Before the commit: the next target serves, the failure is listed.
    for model in ["f-close", "f-503"] {
        for stream in [false, true] {
            let r = post_json(
                gw.addr,
                "/v1/chat/completions",
                KEY,
                &openai(model, stream, "fail over"),
            );
            assert!(
                openai_text(&r, stream).ends_with("You said: fail over"),
                "{model} stream={stream}"
            );
            let attempts = r.header("x-modelswitch-attempts").unwrap();
            assert!(
                attempts.starts_with("openai-h2/a;") && !attempts.contains("=ok"),
                "{model}: the failed first target is listed: {attempts}"
            );
        }
    }
    // After the commit: the dialect's in-stream error, never a clean finish,
    // and no retry.
    let r = post_json(
        gw.addr,
        "/v1/chat/completions",
        KEY,
        &openai("f-mid", true, "cut"),
    );
    assert_eq!(r.status, 200);
    let evs = r.events();
    assert!(evs.last().unwrap().1.get("error").is_some(), "{}", r.text());
    assert!(!r.text().contains("[DONE]"));
    let r = post_json(
        gw.addr,
        "/v1/messages",
        KEY,
        &anthropic("f-mid", true, "cut"),
    );
    let evs = r.events();
    assert_eq!(evs.last().unwrap().0, "error", "{}", r.text());
    assert!(!evs.iter().any(|(n, _)| n == "message_stop"));
    let s = mock_stats(m.addr);
    assert_eq!(s["by_model"]["a;fault=close_mid;after=3"], 2, "{s}");
    // A reset stream leaves its connection serving the others.
    assert_eq!(s["h2_connections"], 1, "{s}");
    assert_eq!(s["by_protocol"]["http/1.1"], Value::Null, "{s}");
}

#[test]
fn without_http2_the_provider_speaks_http1() {
    let m = mock();
    let gw = gateway(&h2_config(m.addr, &[("h1", &[("openai", "mock-h1")])], 2));
    for stream in [false, true] {
        let r = post_json(
            gw.addr,
            "/v1/chat/completions",
            KEY,
            &openai("h1", stream, "plain"),
        );
        assert!(openai_text(&r, stream).ends_with("You said: plain"));
    }
    let s = mock_stats(m.addr);
    assert_eq!(s["last"]["mock-h1"]["protocol"], "http/1.1");
    assert_eq!(s["by_protocol"]["http/1.1"], 2, "{s}");
    assert_eq!(s["h2_connections"], 0, "{s}");
}

#[test]
fn a_client_that_leaves_cancels_its_stream_and_the_connection_serves_on() {
    use std::io::Write;
    let m = mock();
    let slow = "mock;delay_ms=200;chunks=50";
    let gw = gateway(&h2_config(
        m.addr,
        &[
            ("slow", &[("openai-h2", slow)]),
            ("h2-oa", &[("openai-h2", "mock-oa")]),
        ],
        1,
    ));
    // Read the response head and the first event, then hang up.
    let mut s = std::net::TcpStream::connect(gw.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let body = openai("slow", true, "leaving").to_string();
    write!(
        s,
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut first = [0u8; 512];
    let n = std::io::Read::read(&mut s, &mut first).unwrap();
    assert!(String::from_utf8_lossy(&first[..n]).starts_with("HTTP/1.1 200"));
    drop(s);
    // The gateway resets the stream; the mock's handler sees its reader go.
    let aborted = wait_until(Duration::from_secs(10), || {
        mock_stats(m.addr)["aborted"][slow].as_u64().unwrap_or(0) == 1
    });
    assert!(aborted, "{}", mock_stats(m.addr));
    // The connection itself carries on.
    let r = post_json(
        gw.addr,
        "/v1/chat/completions",
        KEY,
        &openai("h2-oa", true, "still here"),
    );
    assert!(openai_text(&r, true).ends_with("You said: still here"));
    assert_eq!(mock_stats(m.addr)["h2_connections"], 1);
}
