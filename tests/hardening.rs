//! Hardening over real sockets: request bodies that two readers could read
//! differently (duplicate JSON keys, a string `stream`, deep nesting),
//! request smuggling shapes, downstream timeouts and the connection cap,
//! graceful shutdown on SIGTERM, pipelining, key rests on 429, an endless
//! SSE line, what an upstream 401 may not leak, the output-token cap, and
//! the request-head limits. Every wait has a deadline.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use serde_json::{json, Value};
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

/// What a "~1 s" bound may take on a busy test machine.
const ONE_SECOND_AND_SLACK: Duration = Duration::from_millis(2500);

fn chat(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "hi there"}]})
}

fn mock_total(m: &Proc) -> u64 {
    mock_stats(m.addr)["total"].as_u64().unwrap_or(0)
}

fn short(s: &str) -> String {
    s.chars().take(600).collect()
}

/// A POST of `body` as is (not re-encoded: duplicate keys survive).
fn post_raw(gw: SocketAddr, path: &str, body: &str) -> Response {
    let auth = format!("Bearer {KEY}");
    request(
        gw,
        "POST",
        path,
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
            ("anthropic-version", "2023-06-01"),
        ],
        body.as_bytes(),
    )
}

/// Reads into `buf` until the peer closes (true), the connection fails
/// (true), or `deadline` passes (false).
fn read_until_closed(s: &mut TcpStream, buf: &mut Vec<u8>, deadline: Instant) -> bool {
    let mut tmp = [0u8; 64 * 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        s.set_read_timeout(Some(left.min(Duration::from_millis(100))))
            .unwrap();
        match s.read(&mut tmp) {
            Ok(0) => return true,
            Ok(n) => buf.extend_from_slice(&tmp[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return true,
        }
    }
}

/// Reads into `buf` until it holds `needle` (true) or `deadline` passes or
/// the connection ends (false).
fn read_until_contains(
    s: &mut TcpStream,
    buf: &mut Vec<u8>,
    needle: &[u8],
    deadline: Instant,
) -> bool {
    let mut tmp = [0u8; 16 * 1024];
    loop {
        if find(buf, needle).is_some() {
            return true;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        s.set_read_timeout(Some(left.min(Duration::from_millis(100))))
            .unwrap();
        match s.read(&mut tmp) {
            Ok(0) => return false,
            Ok(n) => buf.extend_from_slice(&tmp[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
}

fn find(h: &[u8], n: &[u8]) -> Option<usize> {
    h.windows(n.len()).position(|w| w == n)
}

fn count(h: &[u8], n: &[u8]) -> usize {
    h.windows(n.len()).filter(|w| *w == n).count()
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
    s
}

/// Writes `bytes` in one write on a fresh connection and reads until the
/// gateway closes it or `within` passes: (what came back, closed).
fn exchange_raw(addr: SocketAddr, bytes: &[u8], within: Duration) -> (Vec<u8>, bool) {
    let mut s = connect(addr);
    let _ = s.write_all(bytes);
    let mut buf = Vec::new();
    let closed = read_until_closed(&mut s, &mut buf, Instant::now() + within);
    (buf, closed)
}

/// Where the response starting at `raw[0]` ends (its head and its body by
/// content-length or chunked framing; without either, the rest).
fn response_end(raw: &[u8]) -> Option<usize> {
    let head_end = find(raw, b"\r\n\r\n")? + 4;
    let head = String::from_utf8_lossy(&raw[..head_end]).to_ascii_lowercase();
    let header = |name: &str| {
        head.lines()
            .find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_owned()))
    };
    if let Some(n) = header("content-length:").and_then(|v| v.parse::<usize>().ok()) {
        return Some((head_end + n).min(raw.len()));
    }
    if !header("transfer-encoding:").is_some_and(|v| v.contains("chunked")) {
        return Some(raw.len());
    }
    let mut pos = head_end;
    loop {
        let line = find(&raw[pos..], b"\r\n")?;
        let size_text = String::from_utf8_lossy(&raw[pos..pos + line]).into_owned();
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        pos += line + 2;
        if size == 0 {
            return Some((pos + 2).min(raw.len()));
        }
        pos += size + 2;
        if pos > raw.len() {
            return None;
        }
    }
}

/// The responses in a byte stream from one connection, in order.
fn split_responses(mut raw: &[u8]) -> Vec<Response> {
    let mut out = Vec::new();
    while find(raw, b"\r\n\r\n").is_some() {
        let Some(end) = response_end(raw) else {
            out.push(parse_response(raw, false));
            break;
        };
        out.push(parse_response(&raw[..end], false));
        raw = &raw[end..];
    }
    out
}

fn sigterm(pid: u32) {
    let status = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -TERM {pid}");
}

// ------------------------------------------------------------ 1. JSON bodies

fn json_config(m: SocketAddr) -> String {
    config(
        m,
        &[
            ("cheap", &[("openai", "m-cheap")]),
            ("expensive", &[("openai", "m-expensive")]),
            ("cheap-an", &[("anthropic", "m-cheap-an")]),
            ("cross", &[("anthropic", "m-cross")]),
        ],
        "",
    )
}

/// The error shape of each dialect: OpenAI `{"error":{…}}`, Anthropic
/// `{"type":"error","error":{…}}`.
fn assert_dialect_error(r: &Response, anthropic: bool, what: &str) {
    let v = r.json();
    if anthropic {
        assert_eq!(v["type"], "error", "{what}: {}", r.text());
        assert_eq!(
            v["error"]["type"],
            "invalid_request_error",
            "{what}: {}",
            r.text()
        );
    } else {
        assert!(v.get("type").is_none(), "{what}: {}", r.text());
        assert_eq!(
            v["error"]["type"],
            "invalid_request_error",
            "{what}: {}",
            r.text()
        );
    }
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{what}: {}",
        r.text()
    );
}

#[test]
fn duplicate_json_keys_are_refused_in_the_callers_dialect_and_never_sent_upstream() {
    let m = mock();
    let gw = gateway(&json_config(m.addr));
    let msgs = r#""messages":[{"role":"user","content":"hi"}]"#;
    let bodies = [
        (
            "duplicate model",
            format!(r#"{{"model":"cheap","model":"expensive","max_tokens":10,{msgs}}}"#),
        ),
        (
            "escaped duplicate model",
            format!(r#"{{"model":"cheap","mod\u0065l":"x","max_tokens":10,{msgs}}}"#),
        ),
        (
            "duplicate stream",
            format!(r#"{{"model":"cheap","stream":false,"max_tokens":10,{msgs},"stream":true}}"#),
        ),
        (
            "a case variant of model (Go's encoding/json folds case)",
            format!(r#"{{"model":"cheap","MODEL":"expensive","max_tokens":10,{msgs}}}"#),
        ),
        (
            "a folded variant of stream",
            format!("{{\"model\":\"cheap\",\"\u{17F}tream\":true,\"max_tokens\":10,{msgs}}}"),
        ),
    ];
    for (path, anthropic) in [("/v1/chat/completions", false), ("/v1/messages", true)] {
        for (what, body) in &bodies {
            let r = post_raw(gw.addr, path, body);
            let what = format!("{what} on {path}");
            assert_eq!(r.status, 400, "{what}: {}", r.text());
            assert_dialect_error(&r, anthropic, &what);
        }
    }
    assert_eq!(mock_total(&m), 0, "the mock received nothing");
}

#[test]
fn a_string_stream_flag_is_refused_with_param_stream() {
    let m = mock();
    let gw = gateway(&json_config(m.addr));
    let body = r#"{"model":"cheap","max_tokens":10,"stream":"true","messages":[{"role":"user","content":"hi"}]}"#;
    let r = post_raw(gw.addr, "/v1/chat/completions", body);
    assert_eq!(r.status, 400, "{}", r.text());
    assert_dialect_error(&r, false, "openai");
    assert_eq!(r.json()["error"]["param"], "stream", "{}", r.text());
    let r = post_raw(gw.addr, "/v1/messages", body);
    assert_eq!(r.status, 400, "{}", r.text());
    assert_dialect_error(&r, true, "anthropic");
    assert_eq!(mock_total(&m), 0, "the mock received nothing");
}

#[test]
fn the_upstream_receives_exactly_the_routed_model() {
    let m = mock();
    let gw = gateway(&json_config(m.addr));
    let r = post_json(gw.addr, "/v1/chat/completions", KEY, &chat("cheap"));
    assert_eq!(r.status, 200, "{}", r.text());
    let r = post_json(
        gw.addr,
        "/v1/messages",
        KEY,
        &json!({"model": "cheap-an", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let s = mock_stats(m.addr);
    let seen: Vec<&String> = s["by_model"].as_object().unwrap().keys().collect();
    assert_eq!(seen, ["m-cheap", "m-cheap-an"], "{s}");
    assert_eq!(s["last"]["m-cheap"]["body"]["model"], "m-cheap");
    assert_eq!(s["last"]["m-cheap-an"]["body"]["model"], "m-cheap-an");
}

#[test]
fn json_nested_past_128_levels_is_refused_and_the_gateway_keeps_serving() {
    let m = mock();
    let gw = gateway(&json_config(m.addr));
    let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
    // Same dialect (pass-through) and across dialects (decoded).
    for model in ["cheap", "cross"] {
        let body = format!(
            r#"{{"model":"{model}","messages":[{{"role":"user","content":"hi","extra":{deep}}}]}}"#
        );
        let r = post_raw(gw.addr, "/v1/chat/completions", &body);
        assert_eq!(r.status, 400, "{model}: {}", short(&r.text()));
        assert_dialect_error(&r, false, model);
    }
    assert_eq!(mock_total(&m), 0, "refused by the gateway itself");
    assert_eq!(
        request(gw.addr, "GET", "/health", &[], b"").status,
        200,
        "still answering"
    );
    let r = post_json(gw.addr, "/v1/chat/completions", KEY, &chat("cheap"));
    assert_eq!(r.status, 200, "{}", r.text());
}

// --------------------------------------------------------------- 2. smuggling

const SMUGGLED: &str = "GET /health HTTP/1.1\r\nHost: gw\r\n\r\n";

/// Sends a POST with `framing` (header lines) and `body` on one connection
/// and asserts it is refused (4xx or 501) or closed unanswered, that the
/// request hidden in the body is never answered, and that nothing reaches
/// the upstream. Each body is a valid chat request under one reading of its
/// framing: only the framing itself can be the reason to refuse it.
fn assert_smuggling_refused(framing: &str, body: &str) {
    let m = mock();
    let gw = gateway(&config(m.addr, &[], ""));
    let bytes = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {KEY}\r\nContent-Type: application/json\r\n{framing}\r\n{body}"
    );
    let (raw, closed) = exchange_raw(gw.addr, bytes.as_bytes(), Duration::from_secs(4));
    let text = String::from_utf8_lossy(&raw).into_owned();
    let answers = count(&raw, b"HTTP/1.1 ");
    assert!(
        answers <= 1,
        "the smuggled request was answered ({answers} responses): {}",
        short(&text)
    );
    match split_responses(&raw).first().map(|r| r.status) {
        None => assert!(closed, "no answer, and the connection stayed open"),
        Some(s) => assert!(
            (400..500).contains(&s) || s == 501,
            "not refused (closed={closed}): {}",
            short(&text)
        ),
    }
    assert_eq!(mock_total(&m), 0, "nothing reached the upstream");
}

fn chunked_then_smuggled() -> String {
    let json = chat("oa").to_string();
    format!("{:x}\r\n{json}\r\n0\r\n\r\n{SMUGGLED}", json.len())
}

fn json_then_smuggled() -> (usize, String) {
    let json = chat("oa").to_string();
    (json.len(), format!("{json}{SMUGGLED}"))
}

#[test]
fn smuggling_content_length_with_transfer_encoding_is_refused() {
    let body = chunked_then_smuggled();
    assert_smuggling_refused(
        &format!(
            "Content-Length: {}\r\nTransfer-Encoding: chunked\r\n",
            body.len()
        ),
        &body,
    );
}

#[test]
fn smuggling_two_conflicting_content_lengths_is_refused() {
    let (n, body) = json_then_smuggled();
    assert_smuggling_refused(
        &format!("Content-Length: {n}\r\nContent-Length: {}\r\n", body.len()),
        &body,
    );
}

#[test]
fn smuggling_an_obs_folded_header_is_refused() {
    let (n, body) = json_then_smuggled();
    assert_smuggling_refused(
        &format!("X-Note: a\r\n folded\r\nContent-Length: {n}\r\n"),
        &body,
    );
}

#[test]
fn smuggling_transfer_encoding_gzip_chunked_is_refused() {
    assert_smuggling_refused(
        "Transfer-Encoding: gzip, chunked\r\n",
        &chunked_then_smuggled(),
    );
}

// --------------------------------------------------------- 3. client timeouts

fn timeout_config(m: SocketAddr, models: &[(&str, &[(&str, &str)])]) -> String {
    config(
        m,
        models,
        "client_header_timeout = \"1s\"\nclient_body_timeout = \"1s\"\nclient_idle_timeout = \"1s\"\nclient_write_timeout = \"1s\"",
    )
}

#[test]
fn a_head_trickled_a_byte_at_a_time_is_cut_off_at_the_header_timeout() {
    let m = mock();
    let gw = gateway(&timeout_config(m.addr, &[]));
    let mut s = connect(gw.addr);
    let mut reader = s.try_clone().unwrap();
    let start = Instant::now();
    let watcher = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let closed = read_until_closed(&mut reader, &mut buf, start + Duration::from_secs(8));
        (closed, start.elapsed(), buf)
    });
    // ~20 s worth of head at this pace.
    let head =
        b"GET /health HTTP/1.1\r\nHost: gateway.example\r\nX-Trickle: aaaaaaaaaaaaaaaaaa\r\n\r\n";
    for b in head {
        if watcher.is_finished() || s.write_all(&[*b]).is_err() {
            break;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    let (closed, at, buf) = watcher.join().unwrap();
    assert!(
        closed,
        "still open after 8 s: {:?}",
        String::from_utf8_lossy(&buf)
    );
    assert!(
        at <= ONE_SECOND_AND_SLACK,
        "closed after {at:?}, not ~1 s: {:?}",
        String::from_utf8_lossy(&buf)
    );
    assert!(
        !buf.starts_with(b"HTTP/1.1 200"),
        "{:?}",
        String::from_utf8_lossy(&buf)
    );
}

#[test]
fn a_body_that_stops_short_gets_408_or_a_close_at_the_body_timeout() {
    let m = mock();
    let gw = gateway(&timeout_config(m.addr, &[]));
    let mut s = connect(gw.addr);
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {KEY}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"model\":\""
    );
    assert_eq!(head.len() - head.find("\r\n\r\n").unwrap() - 4, 10);
    s.write_all(head.as_bytes()).unwrap();
    let start = Instant::now();
    let mut buf = Vec::new();
    // The first byte of an answer, or the close.
    let mut tmp = [0u8; 4096];
    let deadline = start + Duration::from_secs(8);
    let mut ended = None;
    while Instant::now() < deadline {
        s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        match s.read(&mut tmp) {
            Ok(0) => {
                ended = Some(start.elapsed());
                break;
            }
            Ok(n) => {
                buf.extend_from_slice(&tmp[..n]);
                ended.get_or_insert(start.elapsed());
                if find(&buf, b"\r\n\r\n").is_some() {
                    break;
                }
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => {
                ended = Some(start.elapsed());
                break;
            }
        }
    }
    let text = String::from_utf8_lossy(&buf).into_owned();
    let at = ended.unwrap_or_else(|| panic!("no answer and no close in 8 s: {text:?}"));
    assert!(
        at <= ONE_SECOND_AND_SLACK,
        "after {at:?}, not ~1 s: {text:?}"
    );
    assert!(
        buf.is_empty() || buf.starts_with(b"HTTP/1.1 408"),
        "408 or a close: {text:?}"
    );
    assert_eq!(mock_total(&m), 0);
}

#[test]
fn an_idle_kept_alive_connection_is_closed_at_the_idle_timeout() {
    let m = mock();
    let gw = gateway(&timeout_config(m.addr, &[]));
    let mut s = connect(gw.addr);
    s.write_all(b"GET /health HTTP/1.1\r\nHost: gw\r\n\r\n")
        .unwrap();
    let mut buf = Vec::new();
    assert!(
        read_until_contains(
            &mut s,
            &mut buf,
            b"{\"status\":\"ok\"}",
            Instant::now() + Duration::from_secs(5)
        ),
        "{:?}",
        String::from_utf8_lossy(&buf)
    );
    assert!(buf.starts_with(b"HTTP/1.1 200"));
    let answered = Instant::now();
    let closed = read_until_closed(&mut s, &mut buf, answered + Duration::from_secs(8));
    let at = answered.elapsed();
    assert!(closed, "still open 8 s after the answer");
    assert!(at <= ONE_SECOND_AND_SLACK, "closed {at:?} after the answer");
}

#[test]
fn a_client_that_never_reads_a_long_stream_is_dropped_and_the_upstream_call_aborted() {
    let m = mock();
    // ~12 KB per event (the text and the model name are both in it), one
    // per millisecond, 24 MB in all: several times what the socket buffers
    // on both sides of the gateway hold (the mock builds it all first).
    let flood = format!("m-flood;chunks=2000;delay_ms=1;text={}", "x".repeat(6000));
    let gw = gateway(&timeout_config(m.addr, &[("flood", &[("openai", &flood)])]));
    let body =
        json!({"model": "flood", "stream": true, "messages": [{"role": "user", "content": "hi"}]})
            .to_string();
    let mut s = connect(gw.addr);
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {KEY}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body.as_bytes()).unwrap();
    let start = Instant::now();
    // Never read.
    let aborted = wait_until(Duration::from_secs(12), || {
        mock_stats(m.addr)["aborted"][&flood].as_u64().unwrap_or(0) > 0
    });
    let at = start.elapsed();
    assert!(aborted, "the upstream stream was not aborted within 12 s");
    assert!(
        at <= Duration::from_secs(8),
        "aborted only after {at:?} (write timeout 1 s)"
    );
    drop(s);
}

// ------------------------------------------------------------ 4. connection cap

#[test]
fn past_max_connections_a_new_connection_gets_a_fast_503_and_is_served_once_one_closes() {
    let m = mock();
    let gw = gateway(&config(m.addr, &[], "max_connections = 3"));
    // The harness's readiness probes close; let the gateway count them out.
    std::thread::sleep(Duration::from_millis(300));
    // One connection mid-keep-alive, two that have sent nothing yet.
    let mut kept = connect(gw.addr);
    kept.write_all(b"GET /health HTTP/1.1\r\nHost: gw\r\n\r\n")
        .unwrap();
    let mut buf = Vec::new();
    assert!(read_until_contains(
        &mut kept,
        &mut buf,
        b"{\"status\":\"ok\"}",
        Instant::now() + Duration::from_secs(5)
    ));
    let silent_a = connect(gw.addr);
    let _silent_b = connect(gw.addr);
    std::thread::sleep(Duration::from_millis(300));

    let start = Instant::now();
    let fourth = TcpStream::connect_timeout(&gw.addr, Duration::from_secs(2));
    if let Ok(mut fourth) = fourth {
        let mut raw = Vec::new();
        let closed = read_until_closed(&mut fourth, &mut raw, start + Duration::from_secs(5));
        let at = start.elapsed();
        let text = String::from_utf8_lossy(&raw).into_owned();
        assert!(closed, "the 4th connection was held open: {text:?}");
        assert!(
            at <= Duration::from_millis(1500),
            "not fast: {at:?}: {text:?}"
        );
        assert!(
            raw.is_empty() || raw.starts_with(b"HTTP/1.1 503"),
            "{text:?}"
        );
    }
    drop(silent_a);
    std::thread::sleep(Duration::from_millis(300));
    let r = request(gw.addr, "GET", "/health", &[], b"");
    assert_eq!(r.status, 200, "{}", r.text());
    drop(kept);
}

// ------------------------------------------------------------------ 5. SIGTERM

/// A streaming request on a raw socket, read up to its first event.
fn start_stream(gw: SocketAddr, path: &str, body: &Value) -> (TcpStream, Vec<u8>) {
    let body = body.to_string();
    let mut s = connect(gw);
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {KEY}\r\nanthropic-version: 2023-06-01\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body.as_bytes()).unwrap();
    let mut buf = Vec::new();
    assert!(
        read_until_contains(
            &mut s,
            &mut buf,
            b"data: ",
            Instant::now() + Duration::from_secs(5)
        ),
        "{path}: no first event: {:?}",
        String::from_utf8_lossy(&buf)
    );
    assert!(buf.starts_with(b"HTTP/1.1 200"));
    (s, buf)
}

/// The SSE blocks of a raw chunked stream response.
fn sse_blocks(raw: &[u8]) -> Vec<String> {
    parse_response(raw, false)
        .text()
        .split("\n\n")
        .filter(|b| !b.trim().is_empty())
        .map(str::to_owned)
        .collect()
}

#[test]
fn sigterm_mid_stream_ends_streams_with_an_error_event_logs_them_and_exits_zero() {
    let m = mock();
    let gw_text = config(
        m.addr,
        &[
            ("long-oa", &[("openai", "m-long-oa;chunks=200;delay_ms=50")]),
            (
                "long-an",
                &[("anthropic", "m-long-an;chunks=200;delay_ms=50")],
            ),
        ],
        "shutdown_grace = \"2s\"",
    );
    let mut gw = live_gateway(&gw_text);
    let addr = gw.addr();
    let (mut oa, mut oa_raw) = start_stream(
        addr,
        "/v1/chat/completions",
        &json!({"model": "long-oa", "stream": true, "messages": [{"role": "user", "content": "hi"}]}),
    );
    let (mut an, mut an_raw) = start_stream(
        addr,
        "/v1/messages",
        &json!({"model": "long-an", "stream": true, "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}),
    );
    sigterm(gw.pid());
    let signalled = Instant::now();

    // New connections are not served.
    std::thread::sleep(Duration::from_millis(300));
    if let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) {
        let _ = s.write_all(b"GET /health HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n");
        let mut raw = Vec::new();
        read_until_closed(&mut s, &mut raw, Instant::now() + Duration::from_secs(2));
        assert!(
            !raw.starts_with(b"HTTP/1.1 200"),
            "a new connection was served after SIGTERM: {:?}",
            String::from_utf8_lossy(&raw)
        );
    }

    let end = signalled + Duration::from_secs(5);
    let oa_closed = read_until_closed(&mut oa, &mut oa_raw, end);
    let an_closed = read_until_closed(&mut an, &mut an_raw, end);
    let exited = wait_until(
        (signalled + Duration::from_secs(4)).saturating_duration_since(Instant::now()),
        || gw.proc.try_wait().is_some(),
    );
    let exit_at = signalled.elapsed();
    let status = gw.proc.try_wait();
    let oa_blocks = sse_blocks(&oa_raw);
    let an_blocks = sse_blocks(&an_raw);
    let oa_text = String::from_utf8_lossy(&oa_raw).into_owned();
    let an_text = String::from_utf8_lossy(&an_raw).into_owned();
    let tail = |s: &str| {
        s.chars()
            .rev()
            .take(400)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<String>()
    };
    assert!(oa_closed, "openai stream still open: {}", tail(&oa_text));
    assert!(an_closed, "anthropic stream still open: {}", tail(&an_text));
    let oa_last = oa_blocks.last().cloned().unwrap_or_default();
    let oa_done = oa_last == "data: [DONE]";
    let oa_error = oa_last.starts_with("data: {\"error\"") && !oa_text.contains("[DONE]");
    assert!(
        oa_done || oa_error,
        "openai stream ended silently: {}",
        tail(&oa_text)
    );
    let an_last = an_blocks.last().cloned().unwrap_or_default();
    assert!(
        an_last.starts_with("event: message_stop") || an_last.starts_with("event: error"),
        "anthropic stream ended silently: {}",
        tail(&an_text)
    );
    assert!(
        exited,
        "still running {exit_at:?} after SIGTERM (grace 2 s)"
    );
    assert!(
        status.is_some_and(|s| s.success()),
        "exit status {status:?}"
    );
    for path in ["/v1/chat/completions", "/v1/messages"] {
        let logged = wait_until(Duration::from_secs(2), || {
            gw.log()
                .lines()
                .any(|l| l.contains(path) && l.contains("status=200"))
        });
        assert!(
            logged,
            "no access-log line for {path}:\n{}",
            short(&gw.log())
        );
    }
}

#[test]
fn sigterm_with_nothing_in_flight_exits_within_a_second() {
    let m = mock();
    let mut gw = live_gateway(&config(m.addr, &[], "shutdown_grace = \"10s\""));
    assert_eq!(request(gw.addr(), "GET", "/health", &[], b"").status, 200);
    sigterm(gw.pid());
    let signalled = Instant::now();
    let exited = wait_until(Duration::from_secs(4), || gw.proc.try_wait().is_some());
    let at = signalled.elapsed();
    assert!(exited, "still running 4 s after SIGTERM");
    assert!(at <= Duration::from_millis(1500), "exited after {at:?}");
    let status = gw.proc.try_wait();
    assert!(
        status.is_some_and(|s| s.success()),
        "exit status {status:?}"
    );
}

// --------------------------------------------------------------- 6. pipelining

#[test]
fn two_pipelined_health_checks_are_both_answered_in_order() {
    let m = mock();
    let gw = gateway(&config(m.addr, &[], ""));
    let two = b"GET /health HTTP/1.1\r\nHost: gw\r\n\r\nGET /health HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n";
    let (raw, closed) = exchange_raw(gw.addr, two, Duration::from_secs(5));
    let text = String::from_utf8_lossy(&raw).into_owned();
    assert!(closed, "not closed after the second: {text:?}");
    let rs = split_responses(&raw);
    assert_eq!(rs.len(), 2, "{text:?}");
    for r in &rs {
        assert_eq!(r.status, 200, "{text:?}");
        assert_eq!(r.text(), "{\"status\":\"ok\"}");
    }
}

#[test]
fn a_pipelined_chat_completion_then_health_are_both_answered_and_nothing_aborts() {
    let m = mock();
    let slow = "m-pipe;chunks=5;delay_ms=50";
    let gw = gateway(&config(
        m.addr,
        &[("oa", &[("openai", "mock")]), ("slow", &[("openai", slow)])],
        "",
    ));
    for (model, stream) in [("oa", false), ("slow", true)] {
        let body = json!({"model": model, "stream": stream, "messages": [{"role": "user", "content": "hi"}]})
            .to_string();
        let bytes = format!(
            "POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {KEY}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}GET /health HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n",
            body.len()
        );
        let (raw, closed) = exchange_raw(gw.addr, bytes.as_bytes(), Duration::from_secs(8));
        let text = String::from_utf8_lossy(&raw).into_owned();
        assert!(closed, "stream={stream}: not closed: {}", short(&text));
        let rs = split_responses(&raw);
        assert_eq!(rs.len(), 2, "stream={stream}: {}", short(&text));
        assert_eq!(rs[0].status, 200, "stream={stream}: {}", short(&text));
        if stream {
            assert!(
                rs[0].text().ends_with("data: [DONE]\n\n"),
                "the stream finished: {}",
                short(&rs[0].text())
            );
        } else {
            assert!(
                rs[0].json()["choices"][0]["message"]["content"]
                    .as_str()
                    .is_some_and(|c| c.starts_with("Hello from the mock upstream")),
                "{}",
                rs[0].text()
            );
        }
        assert_eq!(rs[1].status, 200);
        assert_eq!(rs[1].text(), "{\"status\":\"ok\"}");
    }
    let s = mock_stats(m.addr);
    assert_eq!(s["by_model"]["mock"], 1);
    assert_eq!(s["by_model"][slow], 1);
    assert_eq!(s["aborted"], json!({}), "no abort recorded: {s}");
}

// ---------------------------------------------------------------- 7. key rests

#[test]
fn a_single_key_rate_limited_without_retry_after_is_still_asked_each_time() {
    let m = mock();
    let rl = "m-rl;status=429;retry_after=none";
    let gw = gateway(&config(m.addr, &[("rl", &[("openai", rl)])], ""));
    for i in 0..2 {
        let r = post_json(gw.addr, "/v1/chat/completions", KEY, &chat("rl"));
        assert_eq!(r.status, 429, "request {i}: {}", r.text());
        let attempts = r.header("x-modelswitch-attempts").unwrap_or_default();
        assert!(
            attempts.contains(&format!("openai/{rl}=429 key#0")),
            "request {i}: the upstream's own 429: {attempts}"
        );
        assert!(!attempts.contains("***"), "{attempts}");
        assert!(
            r.json()["error"]["message"]
                .as_str()
                .is_some_and(|msg| msg.contains("openai")),
            "{}",
            r.text()
        );
    }
    assert_eq!(
        mock_stats(m.addr)["by_model"][rl],
        2,
        "both requests reached the upstream"
    );
}

#[test]
fn an_extreme_retry_after_date_is_clamped_to_max_cooldown() {
    let m = mock();
    let far =
        "m-far;fail_key=sk-capped-one;fail_status=429;retry_after=Fri, 31 Dec 9999 23:59:59 GMT";
    let mut c = config(m.addr, &[("far", &[("capped", far)])], "");
    c.push_str(&format!(
        r#"
[[providers]]
name = "capped"
type = "openai"
base_url = "http://{}/v1"
api_keys = ["sk-capped-one", "sk-capped-two"]
max_cooldown = "2s"
"#,
        m.addr
    ));
    let gw = gateway(&c);
    let r = post_json(gw.addr, "/v1/chat/completions", KEY, &chat("far"));
    let rested = Instant::now();
    assert_eq!(r.status, 200, "{}", r.text());
    let attempts = r.header("x-modelswitch-attempts").unwrap_or_default();
    assert!(
        attempts.contains("=429 key#0"),
        "key one got the 429: {attempts}"
    );
    assert_eq!(
        request(gw.addr, "GET", "/health", &[], b"").status,
        200,
        "still answering"
    );
    // Resting: the next request goes straight to key two.
    let r = post_json(gw.addr, "/v1/chat/completions", KEY, &chat("far"));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.header("x-modelswitch-attempts"),
        None,
        "key one rests for now"
    );
    std::thread::sleep(
        (rested + Duration::from_millis(2200)).saturating_duration_since(Instant::now()),
    );
    let r = post_json(gw.addr, "/v1/chat/completions", KEY, &chat("far"));
    assert_eq!(r.status, 200, "{}", r.text());
    let attempts = r.header("x-modelswitch-attempts").unwrap_or_default();
    assert!(
        attempts.contains("=429 key#0"),
        "after max_cooldown key one is used again: {attempts:?}"
    );
    assert_eq!(mock_stats(m.addr)["by_model"][far], 5);
}

// ------------------------------------------------------- 8. an endless SSE line

#[test]
fn an_endless_sse_line_falls_over_to_the_next_target() {
    let m = mock();
    let endless = "m-endless;fault=endless_line";
    let gw = gateway(&config(
        m.addr,
        &[("endless", &[("openai", endless), ("anthropic", "m-good")])],
        "max_event_bytes = 65536",
    ));
    let start = Instant::now();
    let mut body = chat("endless");
    body["stream"] = json!(true);
    let r = post_json(gw.addr, "/v1/chat/completions", KEY, &body);
    assert!(start.elapsed() < Duration::from_secs(10));
    assert_eq!(r.status, 200, "{}", short(&r.text()));
    assert_eq!(r.header("x-modelswitch-target"), Some("anthropic/m-good"));
    let attempts = r.header("x-modelswitch-attempts").unwrap_or_default();
    let first = attempts.split(", ").next().unwrap_or_default();
    assert!(
        first.starts_with(&format!("openai/{endless}=")) && !first.contains("=ok"),
        "the endless line failed first: {attempts}"
    );
    let text = r.text();
    assert!(text.ends_with("data: [DONE]\n\n"), "{}", short(&text));
    let said: String = r
        .events()
        .iter()
        .filter_map(|(_, v)| {
            v["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    assert!(
        said.starts_with("Hello from the mock upstream"),
        "{said}: {}",
        short(&text)
    );
    assert_eq!(mock_stats(m.addr)["by_model"]["m-good"], 1);
}

// -------------------------------------------------------------------- 9. leaks

#[test]
fn an_upstream_401_body_never_reaches_the_client() {
    let m = mock();
    let gw = gateway(&config(
        m.addr,
        &[("leaky", &[("openai", "m-leak;fault=leaky_401")])],
        "",
    ));
    let r = post_json(gw.addr, "/v1/chat/completions", KEY, &chat("leaky"));
    let text = r.text();
    assert!(r.status >= 400, "{text}");
    for secret in ["sk-proj", "****", "platform.openai.com"] {
        assert!(!text.contains(secret), "{secret} leaked: {text}");
    }
    assert!(text.contains("openai"), "names the provider: {text}");
    let id = r.header("x-request-id").unwrap_or_default();
    assert!(
        !id.is_empty() && text.contains(id),
        "carries the request id {id:?}: {text}"
    );
    let attempts = r.header("x-modelswitch-attempts").unwrap_or_default();
    assert!(
        attempts.contains("key#0") && !attempts.contains("***"),
        "{attempts}"
    );
    assert_eq!(mock_stats(m.addr)["by_model"]["m-leak;fault=leaky_401"], 1);
}

// ------------------------------------------------------- 10. max_output_tokens

#[test]
fn max_output_tokens_caps_same_dialect_requests() {
    let m = mock();
    let mut c = config(m.addr, &[], "");
    c.push_str(
        r#"
[[models]]
name = "cap-oa"
targets = [{ provider = "openai", model = "m-cap-oa" }]
max_output_tokens = 1000

[[models]]
name = "cap-an"
targets = [{ provider = "anthropic", model = "m-cap-an" }]
max_output_tokens = 1000
"#,
    );
    let gw = gateway(&c);
    for (asked, want) in [(5000, 1000), (100, 100)] {
        let r = post_json(
            gw.addr,
            "/v1/chat/completions",
            KEY,
            &json!({"model": "cap-oa", "max_tokens": asked, "messages": [{"role": "user", "content": "hi"}]}),
        );
        assert_eq!(r.status, 200, "{}", r.text());
        let r = post_json(
            gw.addr,
            "/v1/messages",
            KEY,
            &json!({"model": "cap-an", "max_tokens": asked, "messages": [{"role": "user", "content": "hi"}]}),
        );
        assert_eq!(r.status, 200, "{}", r.text());
        let s = mock_stats(m.addr);
        assert_eq!(
            s["last"]["m-cap-oa"]["body"]["max_tokens"], want,
            "openai asked {asked}: {}",
            s["last"]["m-cap-oa"]["body"]
        );
        assert_eq!(
            s["last"]["m-cap-an"]["body"]["max_tokens"], want,
            "anthropic asked {asked}: {}",
            s["last"]["m-cap-an"]["body"]
        );
    }
}

// ------------------------------------------------------- 11. request head limits

#[test]
fn too_many_or_too_large_request_headers_get_431() {
    let m = mock();
    let gw = gateway(&config(
        m.addr,
        &[],
        "max_request_headers = 20\nmax_request_header_bytes = 2048",
    ));
    let auth = format!("Bearer {KEY}");
    let body = chat("oa").to_string();
    let ask = |extra: &[(String, String)]| {
        let mut headers: Vec<(&str, &str)> = vec![
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ];
        headers.extend(extra.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        request(
            gw.addr,
            "POST",
            "/v1/chat/completions",
            &headers,
            body.as_bytes(),
        )
    };
    let pads = |n: usize| -> Vec<(String, String)> {
        (0..n)
            .map(|i| (format!("X-Pad-{i}"), "v".to_owned()))
            .collect()
    };
    // Host, Connection, Content-Length, Authorization, Content-Type: 5.
    let r = ask(&pads(10));
    assert_eq!(r.status, 200, "15 headers are fine: {}", r.text());
    let r = ask(&pads(25));
    assert_eq!(r.status, 431, "30 headers: {}", r.text());
    let r = ask(&[("X-Big".to_owned(), "b".repeat(4096))]);
    assert_eq!(r.status, 431, "a 4 KB header: {}", r.text());
    assert_eq!(mock_total(&m), 1, "only the first reached the upstream");
}
