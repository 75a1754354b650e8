//! OpenTelemetry traces over real sockets: the gateway with `[telemetry]
//! otlp_endpoint` pointing at a small OTLP/HTTP receiver on a loopback
//! port, which decodes each body as a collector would (OTLP/JSON). A
//! request that falls over is one request span with one child per
//! attempt; a caller's `traceparent` is continued (and its "not sampled"
//! followed); GenAI attributes and token counts match what the mock
//! reported. Without an endpoint the receiver gets nothing; a reload turns
//! traces on and off; SIGTERM sends what is still queued.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

/// One export as the receiver got it.
struct Export {
    head: String,
    body: Value,
}

/// An OTLP/HTTP receiver: answers every POST with `200 {}` and keeps what
/// it was sent. Stops when dropped.
struct Receiver {
    addr: SocketAddr,
    got: Arc<Mutex<Vec<Export>>>,
    stop: Arc<AtomicBool>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn receiver() -> Receiver {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let got = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let (sink, stopped) = (got.clone(), stop.clone());
    std::thread::spawn(move || {
        while !stopped.load(Ordering::Relaxed) {
            match listener.accept() {
                Ok((s, _)) => {
                    if let Some(export) = serve(s) {
                        sink.lock().unwrap().push(export);
                    }
                }
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
    });
    Receiver { addr, got, stop }
}

/// One request: its head, and its body parsed as OTLP/JSON.
fn serve(mut s: TcpStream) -> Option<Export> {
    s.set_nonblocking(false).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let (head, body) = loop {
        let n = s.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
        let length: usize = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse().ok())?
            })
            .unwrap_or(0);
        if buf.len() >= end + 4 + length {
            break (head, buf[end + 4..end + 4 + length].to_vec());
        }
    };
    s.write_all(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}",
    )
    .ok()?;
    Some(Export {
        head,
        body: serde_json::from_slice(&body).expect("an OTLP/JSON body"),
    })
}

impl Receiver {
    /// Every span received so far, with its resource's attributes.
    fn spans(&self) -> Vec<(Value, Value)> {
        let got = self.got.lock().unwrap();
        let mut out = Vec::new();
        for e in got.iter() {
            for rs in e.body["resourceSpans"].as_array().unwrap() {
                for ss in rs["scopeSpans"].as_array().unwrap() {
                    for span in ss["spans"].as_array().unwrap() {
                        out.push((rs["resource"].clone(), span.clone()));
                    }
                }
            }
        }
        out
    }

    fn count(&self) -> usize {
        self.got.lock().unwrap().len()
    }
}

/// An attribute's value: strings as they are, integers parsed from their
/// OTLP/JSON strings.
fn attr(span: &Value, key: &str) -> Option<Value> {
    let kv = span["attributes"]
        .as_array()?
        .iter()
        .find(|kv| kv["key"] == key)?;
    let v = &kv["value"];
    Some(if let Some(n) = v.get("intValue") {
        json!(n.as_str().unwrap().parse::<i64>().unwrap())
    } else if let Some(s) = v.get("stringValue") {
        s.clone()
    } else if let Some(b) = v.get("boolValue") {
        b.clone()
    } else {
        v.get("doubleValue").cloned()?
    })
}

fn nanos(span: &Value, key: &str) -> u64 {
    span[key].as_str().unwrap().parse().unwrap()
}

fn chat(gw: SocketAddr, model: &str, traceparent: Option<&str>) -> Value {
    let auth = format!("Bearer {KEY}");
    let mut headers = vec![
        ("Authorization", auth.as_str()),
        ("Content-Type", "application/json"),
        ("tracestate", "caller=1"),
    ];
    if let Some(tp) = traceparent {
        headers.push(("traceparent", tp));
    }
    let body = json!({"model": model, "messages": [{"role": "user", "content": "hi there"}]});
    let r = request(
        gw,
        "POST",
        "/v1/chat/completions",
        &headers,
        body.to_string().as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

fn models() -> Vec<(&'static str, &'static [(&'static str, &'static str)])> {
    vec![
        (
            "fo",
            &[
                ("openai", "m-down;status=503"),
                ("openai", "mock;cached=40"),
            ],
        ),
        ("plain", &[("openai", "mock")]),
    ]
}

#[test]
fn a_fallback_is_one_request_span_with_an_attempt_span_each() {
    let otlp = receiver();
    let m = mock();
    let mut cfg = config(m.addr, &models(), "");
    cfg.push_str(&format!(
        r#"
[telemetry]
otlp_endpoint = "http://{}"
service_name = "gw-under-test"
batch_interval = "50ms"
headers = {{ authorization = "Bearer otlp-test-token" }}
"#,
        otlp.addr
    ));
    let gw = gateway(&cfg);

    // The caller did not sample its trace: the gateway records nothing.
    let unsampled_trace = "11111111111111111111111111111111";
    chat(
        gw.addr,
        "plain",
        Some(&format!("00-{unsampled_trace}-{CALLER_SPAN}-00")),
    );
    // The caller sampled: its trace goes on through the gateway.
    let served = chat(gw.addr, "fo", Some(&format!("00-{TRACE}-{CALLER_SPAN}-01")));
    // No caller: a trace of the gateway's own.
    chat(gw.addr, "plain", None);

    let arrived = wait_until(Duration::from_secs(10), || otlp.spans().len() >= 5);
    let spans = otlp.spans();
    assert!(arrived, "{} spans arrived", spans.len());
    // A little longer: had the unsampled request been traced, it would be here.
    std::thread::sleep(Duration::from_millis(300));
    let spans = otlp.spans();
    assert_eq!(spans.len(), 5, "{spans:#?}");
    assert!(spans.iter().all(|(_, s)| s["traceId"] != unsampled_trace));

    // How the collector was called.
    {
        let got = otlp.got.lock().unwrap();
        let head = got[0].head.to_ascii_lowercase();
        assert!(head.starts_with("post /v1/traces http/1.1"), "{head}");
        assert!(
            head.contains("\r\ncontent-type: application/json"),
            "{head}"
        );
        assert!(
            head.contains("\r\nauthorization: bearer otlp-test-token"),
            "{head}"
        );
    }
    for (resource, _) in &spans {
        assert!(resource["attributes"]
            .as_array()
            .unwrap()
            .contains(&json!({"key": "service.name", "value": {"stringValue": "gw-under-test"}})));
    }

    // The fallback: one request span in the caller's trace, two children.
    let in_trace: Vec<&Value> = spans
        .iter()
        .map(|(_, s)| s)
        .filter(|s| s["traceId"] == TRACE)
        .collect();
    assert_eq!(in_trace.len(), 3, "{in_trace:#?}");
    let root = in_trace
        .iter()
        .find(|s| s["parentSpanId"] == CALLER_SPAN)
        .expect("the request span is the caller's child");
    assert_eq!(root["kind"], 2, "server");
    assert_eq!(root["name"], "chat fo");
    assert_eq!(root["traceState"], "caller=1");
    let mut children: Vec<&Value> = in_trace
        .iter()
        .copied()
        .filter(|s| s["parentSpanId"] == root["spanId"])
        .collect();
    assert_eq!(children.len(), 2);
    children.sort_by_key(|s| nanos(s, "startTimeUnixNano"));
    let (failed, ok) = (children[0], children[1]);

    // Times nest: the attempts in order, inside the request.
    let start = |s: &Value| nanos(s, "startTimeUnixNano");
    let end = |s: &Value| nanos(s, "endTimeUnixNano");
    assert!(start(root) <= start(failed));
    assert!(start(failed) <= end(failed));
    assert!(end(failed) <= start(ok));
    assert!(start(ok) <= end(ok));
    assert!(end(ok) <= end(root));

    // The usage the client got is the usage the trace carries.
    let usage = &served["usage"];
    let prompt = usage["prompt_tokens"].as_i64().unwrap();
    let completion = usage["completion_tokens"].as_i64().unwrap();
    let cached = usage["prompt_tokens_details"]["cached_tokens"]
        .as_i64()
        .unwrap();
    assert_eq!(cached, 40);
    for s in [*root, ok] {
        assert_eq!(attr(s, "gen_ai.usage.input_tokens"), Some(json!(prompt)));
        assert_eq!(
            attr(s, "gen_ai.usage.output_tokens"),
            Some(json!(completion))
        );
        assert_eq!(
            attr(s, "gen_ai.usage.cache_read.input_tokens"),
            Some(json!(40))
        );
        assert_eq!(
            attr(s, "gen_ai.response.model"),
            Some(json!("mock;cached=40"))
        );
    }
    assert_eq!(attr(failed, "gen_ai.usage.input_tokens"), None);

    // The request's span: what was asked, by whom, how it ended.
    assert_eq!(attr(root, "gen_ai.operation.name"), Some(json!("chat")));
    assert_eq!(attr(root, "gen_ai.request.model"), Some(json!("fo")));
    assert_eq!(attr(root, "gen_ai.provider.name"), Some(json!("openai")));
    assert_eq!(attr(root, "http.response.status_code"), Some(json!(200)));
    assert_eq!(attr(root, "modelswitch.key.name"), Some(json!("admin")));
    assert_eq!(
        attr(root, "modelswitch.client.dialect"),
        Some(json!("openai"))
    );
    assert_eq!(attr(root, "modelswitch.fallback.position"), Some(json!(1)));
    assert_eq!(root["status"]["code"], 0);

    // The attempts: each target, its outcome, the key by index only.
    assert_eq!(failed["kind"], 3, "client");
    assert_eq!(failed["name"], "chat m-down;status=503");
    assert_eq!(
        attr(failed, "gen_ai.request.model"),
        Some(json!("m-down;status=503"))
    );
    assert_eq!(attr(failed, "http.response.status_code"), Some(json!(503)));
    assert_eq!(attr(failed, "error.type"), Some(json!("503")));
    assert_eq!(failed["status"]["code"], 2);
    assert_eq!(
        attr(failed, "server.address"),
        Some(json!(m.addr.ip().to_string()))
    );
    assert_eq!(
        attr(failed, "server.port"),
        Some(json!(i64::from(m.addr.port())))
    );
    assert_eq!(
        attr(failed, "modelswitch.fallback.position"),
        Some(json!(0))
    );
    assert_eq!(
        attr(failed, "modelswitch.provider.key_index"),
        Some(json!(0))
    );
    assert_eq!(attr(ok, "modelswitch.attempt.outcome"), Some(json!("ok")));
    assert_eq!(attr(ok, "modelswitch.fallback.position"), Some(json!(1)));
    assert_eq!(ok["status"]["code"], 0);

    // The third request: a trace of its own, its span a root.
    let own: Vec<&Value> = spans
        .iter()
        .map(|(_, s)| s)
        .filter(|s| s["traceId"] != TRACE)
        .collect();
    assert_eq!(own.len(), 2);
    let root = own
        .iter()
        .find(|s| s.get("parentSpanId").is_none())
        .unwrap();
    assert_eq!(root["name"], "chat plain");
    assert!(root.get("traceState").is_none());
    assert_ne!(root["traceId"], json!("0".repeat(32)));

    // Neither the client's key nor the provider's ever leaves in a span.
    let all = serde_json::to_string(&spans.iter().map(|(_, s)| s).collect::<Vec<_>>()).unwrap();
    for secret in [KEY, UPSTREAM_OPENAI_KEY] {
        assert!(!all.contains(secret));
    }
}

#[test]
fn traces_follow_reloads_on_and_off() {
    let otlp = receiver();
    let m = mock();
    let base = config(m.addr, &models(), "");
    let on = format!(
        "{base}\n[telemetry]\notlp_endpoint = \"http://{}\"\nbatch_interval = \"50ms\"\n",
        otlp.addr
    );
    // The receiver's address is in the file, but not as an endpoint.
    let off = format!(
        "{base}\n[telemetry]\nservice_name = \"not-at-{}\"\nbatch_interval = \"50ms\"\n",
        otlp.addr
    );
    let gw = live_gateway(&off);
    chat(
        gw.addr(),
        "fo",
        Some(&format!("00-{TRACE}-{CALLER_SPAN}-01")),
    );
    chat(gw.addr(), "plain", None);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(otlp.count(), 0, "off: the collector hears nothing");

    let mark = gw.log_mark();
    gw.replace_file(&on);
    assert!(
        gw.wait_for_log(mark, "config reloaded", Duration::from_secs(10)),
        "{}",
        gw.log_since(mark)
    );
    chat(gw.addr(), "plain", None);
    assert!(
        wait_until(Duration::from_secs(10), || otlp.spans().len() == 2),
        "on: one request span and its attempt"
    );

    let mark = gw.log_mark();
    gw.replace_file(&off);
    assert!(gw.wait_for_log(mark, "config reloaded", Duration::from_secs(10)));
    chat(gw.addr(), "plain", None);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(otlp.spans().len(), 2, "off again");
}

#[test]
fn sigterm_sends_the_spans_still_queued() {
    let otlp = receiver();
    let m = mock();
    let mut cfg = config(m.addr, &models(), "");
    // A batch would wait a minute to fill: only the exit sends it.
    cfg.push_str(&format!(
        "\n[telemetry]\notlp_endpoint = \"http://{}\"\nbatch_interval = \"60s\"\n",
        otlp.addr
    ));
    let mut gw = gateway(&cfg);
    chat(gw.addr, "fo", None);
    chat(gw.addr, "plain", None);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(otlp.count(), 0, "still filling its batch");
    let status = std::process::Command::new("kill")
        .args(["-TERM", &gw.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert!(
        wait_until(Duration::from_secs(15), || gw.try_wait().is_some()),
        "the gateway did not exit"
    );
    assert_eq!(otlp.spans().len(), 5, "3 of the fallback, 2 of the other");
}
