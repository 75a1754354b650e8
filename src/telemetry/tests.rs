use super::collector::{read_head, request_head, Collector};
use super::context::{hex, TraceParent};
use super::span::{build, Clock, Inbound, Span, SpanKind, Status, Value};
use super::*;
use crate::config::{parse, Telemetry};
use crate::record::{Attempt, AttemptOutcome};
use filters::canonical::Usage;
use filters::failure::FailureKind;
use filters::Dialect;
use pingora::connectors::TransportConnector;
use serde_json::Value as Json;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const PARENT: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

fn config(telemetry: &str) -> String {
    format!(
        r#"
        [[providers]]
        name = "down"
        type = "openai"
        base_url = "http://127.0.0.1:9/v1"
        api_keys = ["sk-key-number-one", "sk-key-number-two"]

        [[providers]]
        name = "claude"
        type = "anthropic"
        base_url = "https://api.anthropic.com"
        api_key = "sk-ant-key-number-one"

        [[models]]
        name = "m"
        targets = [{{ provider = "down", model = "up-a" }}, {{ provider = "claude", model = "up-b" }}]

        [[api_keys]]
        key = "sk-client-key"
        name = "team"

        {telemetry}
        "#
    )
}

fn snapshot(telemetry: &str) -> crate::config::Snapshot {
    parse(&config(telemetry)).unwrap()
}

fn settings(telemetry: &str) -> Telemetry {
    snapshot(telemetry).telemetry.unwrap()
}

// --- traceparent -----------------------------------------------------------

#[test]
fn traceparent_parses_ids_and_the_sampled_flag() {
    let p = TraceParent::parse(PARENT).unwrap();
    assert_eq!(hex(&p.trace_id), "0af7651916cd43dd8448eb211c80319c");
    assert_eq!(hex(&p.span_id), "b7ad6b7169203331");
    assert!(p.sampled);
    let unsampled = PARENT.replace("-01", "-00");
    assert!(!TraceParent::parse(&unsampled).unwrap().sampled);
    // Other flag bits say nothing about sampling.
    let other = PARENT.replace("-01", "-02");
    assert!(!TraceParent::parse(&other).unwrap().sampled);
    // Optional whitespace around the value.
    assert_eq!(TraceParent::parse(&format!(" {PARENT}\t")), Some(p));
}

#[test]
fn traceparent_of_a_later_version_reads_its_first_fields() {
    let later = PARENT.replacen("00", "01", 1);
    assert!(TraceParent::parse(&later).is_some());
    assert!(TraceParent::parse(&format!("{later}-what-comes-next")).is_some());
    // Past 55 characters only after a separator.
    assert_eq!(TraceParent::parse(&format!("{later}x")), None);
}

#[test]
fn invalid_traceparents_are_no_parent() {
    let cases = [
        String::new(),
        "garbage".to_owned(),
        // Version ff is forbidden; version 00 is exactly 55 characters.
        PARENT.replacen("00", "ff", 1),
        format!("{PARENT}-extra"),
        PARENT[..54].to_owned(),
        // Uppercase, non-hex, all-zero ids, wrong separators.
        PARENT.to_uppercase(),
        PARENT.replace("0af7", "0ag7"),
        "00-00000000000000000000000000000000-b7ad6b7169203331-01".to_owned(),
        "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01".to_owned(),
        PARENT.replace('-', "_"),
        "00-0af7651916cd43dd8448eb211c80319cb-7ad6b7169203331-01".to_owned(),
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-0x".to_owned(),
    ];
    for c in cases {
        assert_eq!(TraceParent::parse(&c), None, "{c:?}");
    }
}

// --- spans from a record ---------------------------------------------------

fn attempt(
    snap: &crate::config::Snapshot,
    provider: usize,
    model: &str,
    key: Option<usize>,
    outcome: AttemptOutcome,
    started: Instant,
    ended: Instant,
) -> Attempt {
    Attempt {
        provider: snap.providers[provider].clone(),
        model: Arc::from(model),
        key,
        outcome,
        to_status: Some(Duration::from_millis(3)),
        to_first_event: Some(Duration::from_millis(8)),
        started,
        ended,
    }
}

/// A request that fell over: the first target answered 503, the second
/// served; 100 ms in all, the end at `clock`.
fn fallen_over(snap: &crate::config::Snapshot) -> (RequestRecord, Clock) {
    let mut rec = RequestRecord::new("req_fallback".into());
    let t0 = rec.started;
    let ms = |n| t0 + Duration::from_millis(n);
    rec.client.dialect = Some(Dialect::OpenAiChat);
    rec.client.key_name = Some("team".into());
    rec.client.model = Some("m".into());
    let failed = AttemptOutcome::Failed(FailureKind::Status(503));
    rec.attempts
        .push(attempt(snap, 0, "up-a", Some(1), failed, ms(2), ms(20)));
    rec.attempts.push(attempt(
        snap,
        1,
        "up-b",
        Some(0),
        AttemptOutcome::Ok,
        ms(21),
        ms(95),
    ));
    rec.result.status = 200;
    rec.result.served_by = Some(1);
    rec.result.usage = Some(Usage {
        input_uncached: 10,
        cache_read: 5,
        cache_write: 0,
        output_total: 7,
        reasoning: 2,
    });
    let clock = Clock {
        wall: UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        at: ms(100),
    };
    (rec, clock)
}

fn inbound(parent: Option<TraceParent>) -> Inbound {
    Inbound {
        operation: "chat",
        method: "POST".into(),
        path: "/v1/chat/completions".into(),
        parent,
        trace_state: parent.map(|_| "vendor=abc".to_owned()),
    }
}

fn int(s: &Span, key: &str) -> Option<i64> {
    match s.attribute(key) {
        Some(Value::Int(n)) => Some(*n),
        _ => None,
    }
}

fn text<'a>(s: &'a Span, key: &str) -> Option<&'a str> {
    match s.attribute(key) {
        Some(Value::Str(v)) => Some(v),
        _ => None,
    }
}

#[test]
fn a_fallback_is_one_request_span_with_a_child_per_attempt() {
    let snap = snapshot("");
    let (rec, clock) = fallen_over(&snap);
    let parent = TraceParent::parse(PARENT);
    let spans = build(
        &rec,
        &inbound(parent),
        &clock,
        &mut fastrand::Rng::with_seed(7),
    );
    let [root, first, second] = spans.as_slice() else {
        panic!("{spans:#?}")
    };
    // The caller's trace goes on; the request's span is its child, and
    // each attempt the request's.
    let parent = parent.unwrap();
    for s in &spans {
        assert_eq!(s.trace_id, parent.trace_id);
        assert_ne!(s.span_id, [0; 8]);
    }
    assert_eq!(root.parent_span_id, Some(parent.span_id));
    assert_eq!(root.trace_state.as_deref(), Some("vendor=abc"));
    assert_eq!(first.parent_span_id, Some(root.span_id));
    assert_eq!(second.parent_span_id, Some(root.span_id));
    assert_ne!(first.span_id, second.span_id);
    assert_ne!(root.span_id, first.span_id);
    // Times: the request from its start to the clock, attempts in order
    // inside it, each where the record put it.
    let base = 1_700_000_000_000_000_000u64;
    assert_eq!(root.start_unix_nanos, base - 100_000_000);
    assert_eq!(root.end_unix_nanos, base);
    assert_eq!(first.start_unix_nanos, base - 98_000_000);
    assert_eq!(first.end_unix_nanos, base - 80_000_000);
    assert_eq!(second.start_unix_nanos, base - 79_000_000);
    assert_eq!(second.end_unix_nanos, base - 5_000_000);
    // Names and kinds per the GenAI conventions.
    assert_eq!(root.name, "chat m");
    assert_eq!(root.kind, SpanKind::Server);
    assert_eq!(first.name, "chat up-a");
    assert_eq!(second.name, "chat up-b");
    assert_eq!(first.kind, SpanKind::Client);
    // The request: what was asked, who served, what it used.
    assert_eq!(text(root, "gen_ai.operation.name"), Some("chat"));
    assert_eq!(text(root, "gen_ai.request.model"), Some("m"));
    assert_eq!(text(root, "gen_ai.response.model"), Some("up-b"));
    assert_eq!(text(root, "gen_ai.provider.name"), Some("anthropic"));
    assert_eq!(int(root, "gen_ai.usage.input_tokens"), Some(15));
    assert_eq!(int(root, "gen_ai.usage.output_tokens"), Some(7));
    assert_eq!(int(root, "gen_ai.usage.cache_read.input_tokens"), Some(5));
    assert_eq!(int(root, "gen_ai.usage.reasoning.output_tokens"), Some(2));
    // Zero counts are left out.
    assert_eq!(
        root.attribute("gen_ai.usage.cache_creation.input_tokens"),
        None
    );
    assert_eq!(int(root, "http.response.status_code"), Some(200));
    assert_eq!(text(root, "modelswitch.key.name"), Some("team"));
    assert_eq!(text(root, "modelswitch.client.dialect"), Some("openai"));
    assert_eq!(int(root, "modelswitch.fallback.position"), Some(1));
    assert_eq!(int(root, "modelswitch.attempts"), Some(2));
    assert_eq!(root.status, Status::Unset);
    assert_eq!(root.attribute("error.type"), None);
    // The failed attempt: its status and outcome, the key by index.
    assert_eq!(text(first, "gen_ai.provider.name"), Some("openai"));
    assert_eq!(text(first, "gen_ai.request.model"), Some("up-a"));
    assert_eq!(text(first, "server.address"), Some("127.0.0.1"));
    assert_eq!(int(first, "server.port"), Some(9));
    assert_eq!(int(first, "http.response.status_code"), Some(503));
    assert_eq!(text(first, "error.type"), Some("503"));
    assert_eq!(text(first, "modelswitch.attempt.outcome"), Some("503"));
    assert_eq!(int(first, "modelswitch.provider.key_index"), Some(1));
    assert_eq!(int(first, "modelswitch.fallback.position"), Some(0));
    assert_eq!(first.status, Status::Error("503".into()));
    assert_eq!(first.attribute("gen_ai.usage.input_tokens"), None);
    // The serving one carries the usage.
    assert_eq!(text(second, "server.address"), Some("api.anthropic.com"));
    assert_eq!(int(second, "server.port"), Some(443));
    assert_eq!(text(second, "gen_ai.response.model"), Some("up-b"));
    assert_eq!(int(second, "gen_ai.usage.input_tokens"), Some(15));
    assert_eq!(text(second, "modelswitch.attempt.outcome"), Some("ok"));
    assert_eq!(second.status, Status::Unset);
    // No secret anywhere: neither the provider's keys nor the client's.
    let all = format!("{spans:?}");
    for secret in ["sk-key-number", "sk-ant-key", "sk-client-key"] {
        assert!(!all.contains(secret), "{secret} in {all}");
    }
}

#[test]
fn without_a_parent_a_request_starts_its_own_trace() {
    let snap = snapshot("");
    let (rec, clock) = fallen_over(&snap);
    let mut rng = fastrand::Rng::with_seed(1);
    let a = build(&rec, &inbound(None), &clock, &mut rng);
    let b = build(&rec, &inbound(None), &clock, &mut rng);
    assert_ne!(a[0].trace_id, [0; 16]);
    assert_ne!(a[0].trace_id, b[0].trace_id);
    assert_eq!(a[0].parent_span_id, None);
    assert_eq!(a[0].trace_state, None);
    assert!(a.iter().all(|s| s.trace_id == a[0].trace_id));
}

#[test]
fn a_failed_request_and_a_skipped_target() {
    let snap = snapshot("");
    let mut rec = RequestRecord::new("req_failed".into());
    rec.client.model = Some("m".into());
    let skipped = Attempt::untried(&snap.routes["m"].targets[0], AttemptOutcome::CircuitOpen);
    rec.attempts.push(skipped);
    rec.result.status = 502;
    rec.result.error = Some("every target failed".into());
    let clock = Clock::now();
    let spans = build(
        &rec,
        &inbound(None),
        &clock,
        &mut fastrand::Rng::with_seed(3),
    );
    assert_eq!(spans.len(), 2);
    assert_eq!(text(&spans[0], "error.type"), Some("502"));
    assert_eq!(spans[0].status, Status::Error("every target failed".into()));
    assert_eq!(spans[0].attribute("gen_ai.response.model"), None);
    // A decision, not a call: internal, no error of its own.
    assert_eq!(spans[1].kind, SpanKind::Internal);
    assert_eq!(spans[1].status, Status::Unset);
    assert_eq!(
        text(&spans[1], "modelswitch.attempt.outcome"),
        Some("circuit-open")
    );
    assert!(spans[1].start_unix_nanos <= spans[1].end_unix_nanos);
    assert!(spans[0].start_unix_nanos <= spans[1].start_unix_nanos);
}

#[test]
fn the_clock_places_instants_on_either_side_of_now() {
    let at = Instant::now();
    let clock = Clock {
        wall: UNIX_EPOCH + Duration::from_secs(10),
        at,
    };
    assert_eq!(clock.unix_nanos(at), 10_000_000_000);
    assert_eq!(
        clock.unix_nanos(at + Duration::from_millis(1)),
        10_001_000_000
    );
    if let Some(before) = at.checked_sub(Duration::from_secs(1)) {
        assert_eq!(clock.unix_nanos(before), 9_000_000_000);
    }
    let real = Clock::now();
    let unix = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let diff = (real.unix_nanos(real.at) as i128) - (unix.as_nanos() as i128);
    assert!(diff.abs() < 1_000_000_000);
}

// --- OTLP/JSON ---------------------------------------------------------------

#[test]
fn otlp_json_has_the_shape_collectors_read() {
    let snap = snapshot("");
    let (rec, clock) = fallen_over(&snap);
    let spans = build(
        &rec,
        &inbound(TraceParent::parse(PARENT)),
        &clock,
        &mut fastrand::Rng::with_seed(9),
    );
    let body: Json = serde_json::from_slice(&otlp::encode(&spans, "gw-test")).unwrap();
    let rs = &body["resourceSpans"][0];
    let resource: Vec<(&str, &Json)> = rs["resource"]["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|kv| (kv["key"].as_str().unwrap(), &kv["value"]))
        .collect();
    assert!(resource.contains(&(
        "service.name",
        &serde_json::json!({"stringValue": "gw-test"})
    )));
    let scope = &rs["scopeSpans"][0];
    assert_eq!(scope["scope"]["name"], "modelswitch");
    let out = scope["spans"].as_array().unwrap();
    assert_eq!(out.len(), 3);
    let root = &out[0];
    // Ids as lowercase hex, 64-bit integers as strings, enums as numbers.
    assert_eq!(root["traceId"], "0af7651916cd43dd8448eb211c80319c");
    assert_eq!(root["parentSpanId"], "b7ad6b7169203331");
    assert_eq!(root["traceState"], "vendor=abc");
    assert_eq!(root["spanId"].as_str().unwrap().len(), 16);
    assert_eq!(root["kind"], 2);
    assert_eq!(out[1]["kind"], 3);
    assert_eq!(root["startTimeUnixNano"], "1699999999900000000");
    assert_eq!(root["endTimeUnixNano"], "1700000000000000000");
    assert_eq!(root["name"], "chat m");
    assert_eq!(out[1]["parentSpanId"], root["spanId"]);
    let attr = |span: &Json, key: &str| {
        span["attributes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|kv| kv["key"] == key)
            .map(|kv| kv["value"].clone())
    };
    assert_eq!(
        attr(root, "gen_ai.usage.input_tokens"),
        Some(serde_json::json!({"intValue": "15"}))
    );
    assert_eq!(
        attr(root, "modelswitch.stream"),
        Some(serde_json::json!({"boolValue": false}))
    );
    assert_eq!(
        attr(&out[1], "modelswitch.time_to_first_event_ms"),
        Some(serde_json::json!({"doubleValue": 8.0}))
    );
    assert_eq!(root["status"], serde_json::json!({"code": 0}));
    assert_eq!(
        out[1]["status"],
        serde_json::json!({"code": 2, "message": "503"})
    );
    // A root span has no parent field at all.
    let own = build(
        &rec,
        &inbound(None),
        &clock,
        &mut fastrand::Rng::with_seed(9),
    );
    let body: Json = serde_json::from_slice(&otlp::encode(&own, "s")).unwrap();
    let root = &body["resourceSpans"][0]["scopeSpans"][0]["spans"][0];
    assert!(root.get("parentSpanId").is_none());
    assert!(root.get("traceState").is_none());
}

// --- the request path's handle ----------------------------------------------

fn head(method: &str, path: &str, headers: &[(&str, &str)]) -> pingora::http::RequestHeader {
    let mut h = pingora::http::RequestHeader::build(method, path.as_bytes(), None).unwrap();
    for (k, v) in headers {
        h.insert_header(k.to_string(), v.to_string()).unwrap();
    }
    h
}

fn queued(t: &Tracer) -> usize {
    let mut p = t.pending.try_lock().unwrap();
    let mut n = 0;
    while let Ok(spans) = p.queue.try_recv() {
        n += spans.len();
    }
    n
}

#[test]
fn record_traces_model_calls_only_and_only_when_on() {
    let snap = snapshot("");
    let (rec, _) = fallen_over(&snap);
    let on = settings("[telemetry]\notlp_endpoint = \"http://127.0.0.1:4318\"");
    let tracer = Tracer::with_capacity(16);
    let chat = head("POST", "/v1/chat/completions", &[]);
    tracer.record(&chat, &rec, None);
    assert_eq!(queued(&tracer), 0, "off: nothing");
    tracer.record(&chat, &rec, Some(&on));
    assert_eq!(queued(&tracer), 3);
    tracer.record(&head("GET", "/health", &[]), &rec, Some(&on));
    tracer.record(&head("GET", "/v1/models", &[]), &rec, Some(&on));
    assert_eq!(queued(&tracer), 0, "not model calls");
    let embeddings = head("POST", "/v1/embeddings", &[]);
    tracer.record(&embeddings, &rec, Some(&on));
    let p = &mut tracer.pending.try_lock().unwrap();
    let spans = p.queue.try_recv().unwrap();
    assert_eq!(spans[0].name, "embeddings m");
}

#[test]
fn the_callers_sampling_decision_is_followed() {
    let snap = snapshot("");
    let (rec, _) = fallen_over(&snap);
    let never =
        settings("[telemetry]\notlp_endpoint = \"http://127.0.0.1:4318\"\nsample_ratio = 0.0");
    let always = settings("[telemetry]\notlp_endpoint = \"http://127.0.0.1:4318\"");
    let tracer = Tracer::with_capacity(16);
    let unsampled = PARENT.replace("-01", "-00");
    let chat = |tp: &str| {
        head(
            "POST",
            "/v1/chat/completions",
            &[("traceparent", tp), ("tracestate", "k=v")],
        )
    };
    tracer.record(&chat(&unsampled), &rec, Some(&always));
    assert_eq!(queued(&tracer), 0, "the caller did not sample");
    tracer.record(&chat(PARENT), &rec, Some(&never));
    assert_eq!(queued(&tracer), 3, "the caller sampled");
    tracer.record(
        &head("POST", "/v1/chat/completions", &[]),
        &rec,
        Some(&never),
    );
    assert_eq!(queued(&tracer), 0, "ratio 0 without a caller");
    // An invalid parent is no parent: a trace of its own, by the ratio.
    tracer.record(&chat("00-bad"), &rec, Some(&always));
    let p = &mut tracer.pending.try_lock().unwrap();
    let spans = p.queue.try_recv().unwrap();
    assert_eq!(spans[0].parent_span_id, None);
    assert_eq!(
        spans[0].trace_state, None,
        "tracestate goes with a valid parent only"
    );
}

#[test]
fn a_full_queue_drops_and_counts() {
    let snap = snapshot("");
    let (rec, _) = fallen_over(&snap);
    let on = settings("[telemetry]\notlp_endpoint = \"http://127.0.0.1:4318\"");
    let tracer = Tracer::with_capacity(1);
    let chat = head("POST", "/v1/chat/completions", &[]);
    tracer.record(&chat, &rec, Some(&on));
    tracer.record(&chat, &rec, Some(&on));
    tracer.record(&chat, &rec, Some(&on));
    assert_eq!(tracer.counts(), (0, 6));
    assert_eq!(queued(&tracer), 3);
}

// --- config -----------------------------------------------------------------

#[test]
fn telemetry_settings_and_their_defaults() {
    assert!(snapshot("").telemetry.is_none(), "off without an endpoint");
    assert!(snapshot("[telemetry]\nservice_name = \"x\"")
        .telemetry
        .is_none());
    let t = settings("[telemetry]\notlp_endpoint = \"http://collector:4318/\"");
    assert!(!t.tls);
    assert_eq!((t.host.as_str(), t.port), ("collector", 4318));
    assert_eq!(t.path, "/v1/traces");
    assert_eq!(t.host_header, "collector:4318");
    assert_eq!(t.service_name, "modelswitch");
    assert_eq!(t.sample_ratio, 1.0);
    assert_eq!(t.batch_max, 512);
    assert_eq!(t.batch_interval, Duration::from_secs(1));
    let t = settings(
        r#"[telemetry]
        otlp_endpoint = "https://otlp.example.com/otlp"
        service_name = "gw-eu"
        sample_ratio = 0.25
        batch_max = 100
        batch_interval = "250ms"
        headers = { "x-team" = "ml infra" }
        "#,
    );
    assert!(t.tls);
    assert_eq!((t.port, t.path.as_str()), (443, "/otlp/v1/traces"));
    assert_eq!(t.host_header, "otlp.example.com");
    assert_eq!(
        (t.service_name.as_str(), t.sample_ratio, t.batch_max),
        ("gw-eu", 0.25, 100)
    );
    assert_eq!(t.batch_interval, Duration::from_millis(250));
    assert_eq!(t.headers[0].0.as_str(), "x-team");
    assert_eq!(t.headers[0].1.expose(), "ml infra");
}

#[test]
fn telemetry_errors_name_the_setting_and_never_a_secret() {
    let var = "MODELSWITCH_TEST_OTLP_AUTH_UNSET";
    let text = config(&format!(
        r#"[telemetry]
        otlp_endpoint = "ftp://collector"
        sample_ratio = 1.5
        batch_max = 0
        batch_interval = "2m"
        service_name = ""
        headers = {{ "authorization" = "Bearer sk-otlp-secret\n", "content-length" = "3", "bad header" = "x" }}
        headers_env = {{ "x-api-key" = "{var}" }}
        "#
    ));
    let errs = parse(&text).unwrap_err().0.join("\n");
    assert!(
        errs.contains("telemetry.otlp_endpoint: not an http(s) URL"),
        "{errs}"
    );
    // An endpoint is never echoed: it may carry a credential.
    let with_key = text.replace(
        "ftp://collector",
        "http://collector:4318/?api-key=sk-otlp-in-url",
    );
    let errs = parse(&with_key).unwrap_err().0.join("\n");
    assert!(
        errs.contains("telemetry.otlp_endpoint: not an http(s) URL"),
        "{errs}"
    );
    assert!(!errs.contains("sk-otlp-in-url"), "{errs}");
    // The endpoint failed: the rest is not checked further.
    let text = text.replace("ftp://collector", "http://collector:4318");
    let errs = parse(&text).unwrap_err().0.join("\n");
    for expected in [
        "telemetry.sample_ratio: must be from 0 to 1",
        "telemetry.batch_max: 0 is too small",
        "telemetry.batch_interval: 2m is too long",
        "telemetry.service_name: must not be empty",
        "telemetry.headers.authorization: not a valid header value",
        "telemetry.headers.content-length: the exporter sets this header itself",
        "telemetry.headers.bad header: not a valid header name",
        &format!("telemetry.headers_env.x-api-key: environment variable {var} is not set"),
    ] {
        assert!(errs.contains(expected), "{expected}\n{errs}");
    }
    assert!(!errs.contains("sk-otlp-secret"), "{errs}");
}

// --- the exporter's HTTP ----------------------------------------------------

#[test]
fn the_request_head_carries_the_path_length_and_headers() {
    let mut t = settings(
        "[telemetry]\notlp_endpoint = \"http://127.0.0.1:4318/base\"\nheaders = { authorization = \"Bearer abc\" }",
    );
    t.headers.truncate(1);
    let head = request_head(&t, 42);
    assert!(
        head.starts_with("POST /base/v1/traces HTTP/1.1\r\nHost: 127.0.0.1:4318\r\n"),
        "{head}"
    );
    assert!(head.contains("\r\nContent-Type: application/json\r\n"));
    assert!(head.contains("\r\nContent-Length: 42\r\n"));
    assert!(head.contains("\r\nauthorization: Bearer abc\r\n"));
    assert!(head.ends_with("\r\n\r\n"));
}

#[tokio::test]
async fn the_collectors_answer_is_read_past_informational_heads() {
    let mut ok: &[u8] =
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}";
    let (head, rest) = read_head(&mut ok).await.unwrap();
    assert_eq!(
        (head.status, head.length, head.keep_alive),
        (200, Some(2), true)
    );
    assert_eq!(rest, b"{}");
    let mut busy: &[u8] =
        b"HTTP/1.1 503 Service Unavailable\r\nConnection: keep-alive, close\r\n\r\n";
    let (head, _) = read_head(&mut busy).await.unwrap();
    assert_eq!(
        (head.status, head.length, head.keep_alive),
        (503, None, false)
    );
    let mut old: &[u8] = b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n";
    assert!(!read_head(&mut old).await.unwrap().0.keep_alive);
    let mut chunked: &[u8] =
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 2\r\n\r\n";
    assert_eq!(read_head(&mut chunked).await.unwrap().0.length, None);
    // Nothing at all: the collector had closed (a kept connection may be
    // retried on a fresh one); half an answer is not that.
    let mut nothing: &[u8] = b"";
    assert!(read_head(&mut nothing).await.unwrap_err().silent);
    let mut cut: &[u8] = b"HTTP/1.1 20";
    assert!(!read_head(&mut cut).await.unwrap_err().silent);
    let mut junk: &[u8] = b"not http at all\r\n\r\n";
    assert!(read_head(&mut junk).await.is_err());
}

/// A collector on a loopback port answering each POST with the next
/// status of `statuses`; the bodies it got come back through the handle.
async fn collector(statuses: Vec<u16>) -> (u16, tokio::task::JoinHandle<Vec<Vec<u8>>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        let mut bodies = Vec::new();
        for status in statuses {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            let body = loop {
                let n = s.read(&mut chunk).await.unwrap();
                buf.extend_from_slice(&chunk[..n]);
                let mut headers = [httparse::EMPTY_HEADER; 32];
                let mut req = httparse::Request::new(&mut headers);
                if let Ok(httparse::Status::Complete(len)) = req.parse(&buf) {
                    let cl: usize = req
                        .headers
                        .iter()
                        .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                        .map(|h| std::str::from_utf8(h.value).unwrap().parse().unwrap())
                        .unwrap();
                    if buf.len() >= len + cl {
                        break buf[len..len + cl].to_vec();
                    }
                }
                assert!(n > 0, "closed mid-request");
            };
            bodies.push(body);
            let answer = format!("HTTP/1.1 {status} X\r\nContent-Length: 0\r\n\r\n");
            s.write_all(answer.as_bytes()).await.unwrap();
        }
        bodies
    });
    (port, task)
}

fn live_store(telemetry: &str) -> crate::state::LiveStore {
    let live = crate::state::Registry::default()
        .bind(snapshot(telemetry))
        .unwrap();
    Arc::new(arc_swap::ArcSwap::from_pointee(live))
}

#[tokio::test]
async fn a_batch_is_retried_on_503_then_sent() {
    let (port, task) = collector(vec![503, 200]).await;
    let store = live_store(&format!(
        "[telemetry]\notlp_endpoint = \"http://127.0.0.1:{port}\"\nbatch_interval = \"10ms\""
    ));
    let tracer = Tracer::with_capacity(8);
    let snap = snapshot("");
    let (rec, clock) = fallen_over(&snap);
    tracer.push(build(
        &rec,
        &inbound(None),
        &clock,
        &mut fastrand::Rng::with_seed(2),
    ));
    let mut collector = Collector::new(TransportConnector::new(None));
    let step = tokio::time::timeout(Duration::from_secs(10), tracer.step(&mut collector, &store));
    assert!(step.await.is_ok());
    assert_eq!(tracer.counts(), (3, 0));
    let bodies = task.await.unwrap();
    assert_eq!(bodies.len(), 2);
    assert_eq!(bodies[0], bodies[1], "the same batch, sent again");
    let json: Json = serde_json::from_slice(&bodies[1]).unwrap();
    assert_eq!(
        json["resourceSpans"][0]["scopeSpans"][0]["spans"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
}

#[tokio::test]
async fn a_refused_batch_is_dropped_at_once_and_the_exit_flush_sends_the_rest() {
    let (port, task) = collector(vec![400, 200]).await;
    let store = live_store(&format!(
        "[telemetry]\notlp_endpoint = \"http://127.0.0.1:{port}\"\nbatch_interval = \"10ms\"\nbatch_max = 2"
    ));
    let tracer = Tracer::with_capacity(8);
    let snap = snapshot("");
    let (rec, clock) = fallen_over(&snap);
    let mut rng = fastrand::Rng::with_seed(4);
    tracer.push(build(&rec, &inbound(None), &clock, &mut rng));
    let mut collector = Collector::new(TransportConnector::new(None));
    let step = tokio::time::timeout(Duration::from_secs(10), tracer.step(&mut collector, &store));
    assert!(step.await.is_ok());
    // Two spans went (a batch of `batch_max`) and were refused; the third
    // waits in the carry for the exit flush.
    assert_eq!(tracer.counts(), (0, 2));
    let settings = store.load().config.telemetry.clone().unwrap();
    let finish = tokio::time::timeout(
        Duration::from_secs(10),
        tracer.finish(&mut collector, &settings),
    );
    assert!(finish.await.is_ok());
    assert_eq!(tracer.counts(), (1, 2));
    assert_eq!(task.await.unwrap().len(), 2);
    // Closed by the flush: later spans are dropped, counted.
    tracer.push(build(&rec, &inbound(None), &clock, &mut rng));
    assert_eq!(tracer.counts(), (1, 5));
}

#[tokio::test]
async fn the_exit_flush_takes_over_from_a_batch_still_filling() {
    let (port, task) = collector(vec![200]).await;
    // A batch would wait a minute to fill: the exit must not.
    let store = live_store(&format!(
        "[telemetry]\notlp_endpoint = \"http://127.0.0.1:{port}\"\nbatch_interval = \"60s\""
    ));
    let tracer = Arc::new(Tracer::with_capacity(8));
    let snap = snapshot("");
    let (rec, clock) = fallen_over(&snap);
    tracer.push(build(
        &rec,
        &inbound(None),
        &clock,
        &mut fastrand::Rng::with_seed(5),
    ));
    let exporter = {
        let (tracer, store) = (tracer.clone(), store.clone());
        tokio::spawn(async move {
            let mut collector = Collector::new(TransportConnector::new(None));
            tracer.step(&mut collector, &store).await
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!exporter.is_finished(), "the batch waits to fill");
    let flush = {
        let (tracer, store) = (tracer.clone(), store.clone());
        tokio::task::spawn_blocking(move || flush_now(&tracer, &store, Duration::from_secs(5)))
    };
    let step = tokio::time::timeout(Duration::from_secs(2), exporter).await;
    assert!(matches!(step, Ok(Ok(export::Step::Closed))));
    tokio::time::timeout(Duration::from_secs(10), flush)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(tracer.counts(), (3, 0));
    let bodies = task.await.unwrap();
    let json: Json = serde_json::from_slice(&bodies[0]).unwrap();
    assert_eq!(
        json["resourceSpans"][0]["scopeSpans"][0]["spans"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
}

/// A self-signed certificate for `localhost` (end-entity, so rustls takes
/// it) made by the `openssl` tool (`make deps` installs it).
fn localhost_certificate(dir: &std::path::Path) -> (String, String) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let made = std::process::Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        ])
        .args(["-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=DNS:localhost"])
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("the openssl tool is missing: run 'apt-get install -y openssl'");
    assert!(made.success(), "openssl req failed");
    (
        cert.to_string_lossy().into_owned(),
        key.to_string_lossy().into_owned(),
    )
}

#[tokio::test]
async fn an_https_collector_is_reached_over_tls_and_its_certificate_checked() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = std::env::temp_dir().join(format!(
        "modelswitch-otlp-tls-{}-{}",
        std::process::id(),
        fastrand::u64(..)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key) = localhost_certificate(&dir);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // `openssl s_server` terminates TLS: what the client sends comes out on
    // its stdout, what goes into its stdin is sent back.
    let mut server = tokio::process::Command::new("openssl")
        .args(["s_server", "-quiet"])
        .args(["-accept", &format!("127.0.0.1:{port}")])
        .args(["-cert", &cert, "-key", &key])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let listening = async {
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), listening)
        .await
        .unwrap();
    // The probe's connection closed without a handshake: s_server waits
    // for the next one, the exporter's.
    let store = live_store(&format!(
        "[telemetry]\notlp_endpoint = \"https://localhost:{port}\"\nbatch_interval = \"10ms\""
    ));
    let tracer = Arc::new(Tracer::with_capacity(8));
    let snap = snapshot("");
    let (rec, clock) = fallen_over(&snap);
    tracer.push(build(
        &rec,
        &inbound(None),
        &clock,
        &mut fastrand::Rng::with_seed(6),
    ));
    let mut options = pingora::connectors::ConnectorOptions::new(1);
    options.ca_file = Some(cert.clone());
    let exporter = {
        let (tracer, store) = (tracer.clone(), store.clone());
        tokio::spawn(async move {
            let mut collector = Collector::new(TransportConnector::new(Some(options)));
            tracer.step(&mut collector, &store).await
        })
    };
    // The request, decrypted: head, then the body of its Content-Length.
    let mut out = server.stdout.take().unwrap();
    let read = async {
        let mut got = Vec::new();
        let mut chunk = [0u8; 8192];
        loop {
            let n = out.read(&mut chunk).await.unwrap();
            assert!(n > 0, "s_server closed: {}", String::from_utf8_lossy(&got));
            got.extend_from_slice(&chunk[..n]);
            let text = String::from_utf8_lossy(&got);
            if let Some(end) = text.find("\r\n\r\n") {
                let length: usize = text[..end]
                    .lines()
                    .find_map(|l| l.strip_prefix("Content-Length: "))
                    .unwrap()
                    .parse()
                    .unwrap();
                if got.len() >= end + 4 + length {
                    return (
                        text[..end].to_owned(),
                        got[end + 4..end + 4 + length].to_vec(),
                    );
                }
            }
        }
    };
    let (head, body) = tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .unwrap();
    assert!(
        head.starts_with("POST /v1/traces HTTP/1.1\r\nHost: localhost:"),
        "{head}"
    );
    let json: Json = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        json["resourceSpans"][0]["scopeSpans"][0]["spans"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    let mut stdin = server.stdin.take().unwrap();
    stdin
        .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        .await
        .unwrap();
    stdin.flush().await.unwrap();
    let step = tokio::time::timeout(Duration::from_secs(10), exporter).await;
    assert!(matches!(step, Ok(Ok(export::Step::Sent))));
    assert_eq!(tracer.counts(), (3, 0));

    // A certificate the exporter does not trust: no spans leave.
    let untrusted = Tracer::with_capacity(8);
    untrusted.push(build(
        &rec,
        &inbound(None),
        &clock,
        &mut fastrand::Rng::with_seed(8),
    ));
    let settings = store.load().config.telemetry.clone().unwrap();
    let mut system_roots = Collector::new(TransportConnector::new(None));
    let _ = server.kill().await;
    let mut server = tokio::process::Command::new("openssl")
        .args(["s_server", "-quiet"])
        .args(["-accept", &format!("127.0.0.1:{port}")])
        .args(["-cert", &cert, "-key", &key])
        // Held open: s_server would take its end as the end of the session.
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let listening = async {
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), listening)
        .await
        .unwrap();
    let finish = untrusted.finish(&mut system_roots, &settings);
    tokio::time::timeout(Duration::from_secs(20), finish)
        .await
        .unwrap();
    assert_eq!(untrusted.counts(), (0, 3));
    let _ = server.kill().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// A collector that answers every request on a connection (keep-alive),
/// counting its connections; the bodies come back through the handle once
/// `requests` have been answered.
async fn keep_alive_collector(
    requests: usize,
) -> (u16, tokio::task::JoinHandle<(usize, Vec<Vec<u8>>)>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        let (mut bodies, mut connections) = (Vec::new(), 0);
        while bodies.len() < requests {
            let (mut s, _) = listener.accept().await.unwrap();
            connections += 1;
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            while bodies.len() < requests {
                let mut headers = [httparse::EMPTY_HEADER; 32];
                let mut req = httparse::Request::new(&mut headers);
                if let Ok(httparse::Status::Complete(len)) = req.parse(&buf) {
                    let cl: usize = req
                        .headers
                        .iter()
                        .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                        .map(|h| std::str::from_utf8(h.value).unwrap().parse().unwrap())
                        .unwrap();
                    if buf.len() >= len + cl {
                        bodies.push(buf[len..len + cl].to_vec());
                        buf.drain(..len + cl);
                        let answer = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}";
                        s.write_all(answer.as_bytes()).await.unwrap();
                        continue;
                    }
                }
                let n = s.read(&mut chunk).await.unwrap();
                if n == 0 {
                    break;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
        }
        (connections, bodies)
    });
    (port, task)
}

#[tokio::test]
async fn batches_share_a_kept_connection() {
    let (port, task) = keep_alive_collector(3).await;
    let store = live_store(&format!(
        "[telemetry]\notlp_endpoint = \"http://127.0.0.1:{port}\"\nbatch_interval = \"10ms\"\nbatch_max = 2"
    ));
    let tracer = Tracer::with_capacity(8);
    let snap = snapshot("");
    let (rec, clock) = fallen_over(&snap);
    let mut rng = fastrand::Rng::with_seed(10);
    tracer.push(build(&rec, &inbound(None), &clock, &mut rng));
    tracer.push(build(&rec, &inbound(None), &clock, &mut rng));
    let mut collector = Collector::new(TransportConnector::new(None));
    for _ in 0..3 {
        let step =
            tokio::time::timeout(Duration::from_secs(10), tracer.step(&mut collector, &store));
        assert_eq!(step.await.unwrap(), export::Step::Sent);
    }
    assert_eq!(tracer.counts(), (6, 0));
    let (connections, bodies) = tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(bodies.len(), 3);
    assert_eq!(connections, 1, "three batches, one connection");
}
