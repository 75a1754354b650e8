use super::*;
use crate::record::Attempt;
use filters::canonical::Usage;
use filters::failure::{FailureKind, Phase};
use filters::Dialect;
use std::collections::BTreeSet;
use std::sync::Arc;

const CONFIG: &str = r#"
    [[providers]]
    name = "a"
    type = "openai"
    base_url = "http://127.0.0.1:9/v1"
    api_keys = ["sk-key-number-one", "sk-key-number-two"]

    [[models]]
    name = "m"
    targets = [{ provider = "a", model = "up-m" }]

    [[api_keys]]
    key = "sk-client-key"
    name = "c"
"#;

fn live() -> Live {
    crate::state::Registry::default()
        .bind(crate::config::parse(CONFIG).unwrap())
        .unwrap()
}

fn attempt(live: &Live, outcome: AttemptOutcome) -> Attempt {
    Attempt {
        provider: live.config.providers[0].clone(),
        model: Arc::from("up-m"),
        key: Some(0),
        outcome,
        to_status: Some(Duration::from_millis(5)),
        to_first_event: Some(Duration::from_millis(20)),
        started: std::time::Instant::now(),
        ended: std::time::Instant::now(),
    }
}

fn record(status: u16, attempts: Vec<Attempt>) -> RequestRecord {
    let mut r = RequestRecord::new("req_1".into());
    r.client.dialect = Some(Dialect::OpenAiChat);
    r.client.model = Some("m".into());
    r.result.status = status;
    r.result.served_by = attempts
        .iter()
        .position(|a| a.outcome == AttemptOutcome::Ok);
    r.attempts = attempts;
    r
}

#[test]
fn model_label_is_a_configured_route_or_other() {
    let live = live();
    let mut r = record(200, vec![]);
    assert_eq!(model_label(&r, &live), "m");
    r.client.model = Some("gpt-client-made-this-up".into());
    assert_eq!(model_label(&r, &live), "other");
    r.client.model = None;
    assert_eq!(model_label(&r, &live), "none");
}

#[test]
fn status_label_writes_three_digits_without_allocating() {
    let mut buf = [0u8; 3];
    assert_eq!(status_label(200, &mut buf), "200");
    assert_eq!(status_label(503, &mut buf), "503");
    assert_eq!(status_label(499, &mut buf), "499");
    assert_eq!(status_label(0, &mut buf), "0");
    assert_eq!(status_label(1000, &mut buf), "0");
}

#[test]
fn outcome_from_the_record() {
    let live = live();
    let ok = attempt(&live, AttemptOutcome::Ok);
    let failed = attempt(&live, AttemptOutcome::Failed(FailureKind::Status(503)));
    let upstream_429 = attempt(&live, AttemptOutcome::Failed(FailureKind::Status(429)));
    let left = attempt(&live, AttemptOutcome::ClientLeft);

    assert_eq!(outcome(&record(200, vec![ok.clone()])), "ok");
    // Fell over: the client was served.
    assert_eq!(
        outcome(&record(200, vec![failed.clone(), ok.clone()])),
        "ok"
    );
    assert_eq!(outcome(&record(404, vec![])), "client_error");
    assert_eq!(outcome(&record(401, vec![])), "client_error");
    assert_eq!(
        outcome(&record(503, vec![failed.clone()])),
        "upstream_error"
    );
    assert_eq!(outcome(&record(429, vec![])), "refused");
    assert_eq!(outcome(&record(429, vec![upstream_429])), "upstream_error");
    assert_eq!(outcome(&record(499, vec![left])), "client_left");
    assert_eq!(outcome(&record(0, vec![])), "client_left");

    let mut mid_stream = record(200, vec![ok.clone()]);
    mid_stream.result.error = Some("client went away mid-stream".into());
    assert_eq!(outcome(&mid_stream), "client_left");
    let mut after_commit = record(200, vec![ok]);
    after_commit.result.error = Some("after commit: upstream stalled".into());
    assert_eq!(outcome(&after_commit), "upstream_error");
}

#[test]
fn attempt_labels_equal_their_display() {
    let mut all = vec![
        AttemptOutcome::Ok,
        AttemptOutcome::CircuitOpen,
        AttemptOutcome::Unhealthy,
        AttemptOutcome::KeysCooling,
        AttemptOutcome::ProviderLimit,
        AttemptOutcome::NotAllowed,
        AttemptOutcome::ClientLeft,
        AttemptOutcome::Lacks(filters::routing::Lack::Vision),
        AttemptOutcome::Lacks(filters::routing::Lack::Tools),
        AttemptOutcome::Lacks(filters::routing::Lack::Context),
    ];
    let kinds = [
        FailureKind::Connect,
        FailureKind::Io,
        FailureKind::BadResponse,
        FailureKind::Status(503),
        FailureKind::Status(429),
        FailureKind::Timeout(Phase::FirstByte),
        FailureKind::Timeout(Phase::FirstEvent),
        FailureKind::Timeout(Phase::Body),
        FailureKind::Timeout(Phase::Idle),
        FailureKind::Timeout(Phase::Total),
    ];
    all.extend(kinds.map(AttemptOutcome::Failed));
    for o in all {
        let mut label = OutcomeLabel::default();
        assert_eq!(label.of(o), o.to_string());
    }
}

#[test]
fn token_types_follow_the_usage_buckets() {
    let u = Usage {
        input_uncached: 10,
        cache_read: 20,
        cache_write: 30,
        output_total: 40,
        reasoning: 5,
    };
    assert_eq!(
        token_counts(&u),
        [
            ("input", 10),
            ("cache_read", 20),
            ("cache_write", 30),
            ("output", 40),
            ("reasoning", 5)
        ]
    );
}

#[test]
fn overhead_only_when_every_upstream_time_is_known() {
    let live = live();
    let ok = attempt(&live, AttemptOutcome::Ok);
    let skipped = Attempt::untried(
        &live.config.routes["m"].targets[0],
        AttemptOutcome::CircuitOpen,
    );
    let total = Duration::from_millis(100);
    let r = record(200, vec![skipped, ok.clone()]);
    assert_eq!(overhead(&r, total), Some(Duration::from_millis(80)));

    let mut connect = attempt(&live, AttemptOutcome::Failed(FailureKind::Connect));
    connect.to_status = None;
    connect.to_first_event = None;
    assert_eq!(
        overhead(&record(200, vec![connect, ok.clone()]), total),
        None
    );

    let mut stream = record(200, vec![ok]);
    stream.client.stream = true;
    assert_eq!(overhead(&stream, total), None);
    assert_eq!(overhead(&record(404, vec![]), total), None);
}

/// A scrape of fresh metrics after two served requests, one refused and
/// one to the gateway's own endpoints.
fn scrape() -> String {
    let live = live();
    let m = Metrics::new().unwrap();
    let mut r = record(200, vec![attempt(&live, AttemptOutcome::Ok)]);
    r.result.usage = Some(Usage {
        input_uncached: 7,
        output_total: 3,
        ..Usage::default()
    });
    r.result.cost = Some(filters::pricing::Cost {
        currency: filters::pricing::Currency::parse("USD").unwrap(),
        total: 1_500_000_000,
        input: 500_000_000,
        cache_read: 0,
        cache_write: 0,
        output: 1_000_000_000,
        reasoning: 0,
        long_context: false,
    });
    m.observe(&r, &live);
    m.observe(&r, &live);
    // The gateway's own endpoints carry no dialect and are not counted.
    let mut health = RequestRecord::new("req_2".into());
    health.result.status = 200;
    m.observe(&health, &live);
    let mut refused = record(429, vec![]);
    refused.result.refused = Some((filters::limits::Scope::Key, filters::limits::Dimension::Rpm));
    m.observe(&refused, &live);
    refused.result.refused = Some((
        filters::limits::Scope::Model,
        filters::limits::Dimension::DailyBudget,
    ));
    m.observe(&refused, &live);
    String::from_utf8(m.render(&live).unwrap()).unwrap()
}

/// The families a scrape declares.
fn exported() -> BTreeSet<String> {
    scrape()
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .map(str::to_owned)
        .collect()
}

#[test]
fn observe_then_render_counts_and_scrape_gauges() {
    let text = scrape();
    let has = |line: &str| text.lines().any(|l| l == line);
    assert!(
        has(
            r#"modelswitch_requests_total{dialect="openai",model="m",outcome="ok",provider="a",status="200"} 2"#
        ),
        "{text}"
    );
    assert!(has(
        r#"modelswitch_tokens_total{model="m",provider="a",type="input"} 14"#
    ));
    assert!(has(
        r#"modelswitch_tokens_total{model="m",provider="a",type="output"} 6"#
    ));
    assert!(has(
        r#"modelswitch_attempts_total{model="up-m",outcome="ok",provider="a"} 2"#
    ));
    assert!(has(
        r#"modelswitch_breaker_open{model="up-m",provider="a"} 0"#
    ));
    assert!(has(
        r#"modelswitch_upstream_keys{provider="a",state="active"} 2"#
    ));
    assert!(has(
        r#"modelswitch_upstream_keys{provider="a",state="cooling"} 0"#
    ));
    assert!(has("modelswitch_streams_in_flight 0"));
    assert!(has(
        r#"modelswitch_limit_refusals_total{dimension="rpm",scope="key"} 1"#
    ));
    assert!(has(&format!(
        r#"modelswitch_limit_refusals_total{{dimension="{}",scope="model"}} 1"#,
        filters::limits::Dimension::DailyBudget.name()
    )));
    assert!(has(
        r#"modelswitch_requests_total{dialect="openai",model="m",outcome="refused",provider="none",status="429"} 2"#
    ));
    assert!(has(
        r#"modelswitch_cost_total{currency="USD",model="m",provider="a"} 3"#
    ));
    assert!(has("modelswitch_usage_queue_rows 0"));
    assert!(!text.contains("other"), "{text}");
    assert_eq!(exported().len(), 16, "{text}");
}

/// `modelswitch_...` names in a PromQL expression, with the histogram
/// suffixes stripped to their family.
fn families_in(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = expr;
    while let Some(i) = rest.find("modelswitch_") {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_lowercase() || c == '_'))
            .unwrap_or(tail.len());
        let name = &tail[..end];
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .unwrap_or(name);
        out.push(family.to_owned());
        rest = &tail[end..];
    }
    out
}

fn exprs(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("expr", serde_json::Value::String(e)) => out.push(e.clone()),
                    _ => exprs(v, out),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| exprs(v, out)),
        _ => {}
    }
}

#[test]
fn grafana_dashboard_queries_only_exported_families() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/conf/grafana-dashboard.json");
    let text = std::fs::read_to_string(path).unwrap();
    let dashboard: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut all = Vec::new();
    exprs(&dashboard, &mut all);
    assert!(all.len() >= 6, "the dashboard has its panels: {all:?}");
    let exported = exported();
    for expr in &all {
        let names = families_in(expr);
        assert!(!names.is_empty(), "a query names no metric: {expr}");
        for name in names {
            assert!(
                exported.contains(&name),
                "{name} in '{expr}' is not exported"
            );
        }
    }
    assert_eq!(
        families_in("histogram_quantile(0.99, sum by (le) (rate(modelswitch_request_duration_seconds_bucket[5m])))"),
        ["modelswitch_request_duration_seconds"]
    );
}
