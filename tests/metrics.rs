//! `GET /metrics` over real sockets: after requests served, refused by a
//! limit, for an unknown model and fallen over, the scrape parses as
//! Prometheus text (a strict parser below), its request counters match the
//! requests made and its token counters the usage the responses reported.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::time::Duration;

#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// The text exposition format, strictly: `# HELP` and `# TYPE` lines,
/// `name{label="value",...} value` samples, and every sample's family
/// declared by a `# TYPE` before it (histograms by their `_bucket`,
/// `_sum` and `_count` series).
fn parse(text: &str) -> Result<Vec<Sample>, String> {
    let mut types: HashMap<String, String> = HashMap::new();
    let mut samples = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let err = |what: &str| format!("line {}: {what}: {line:?}", n + 1);
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, _) = rest
                .split_once(' ')
                .ok_or_else(|| err("HELP without text"))?;
            valid_name(name)
                .then_some(())
                .ok_or_else(|| err("bad name"))?;
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest
                .split_once(' ')
                .ok_or_else(|| err("TYPE without type"))?;
            valid_name(name)
                .then_some(())
                .ok_or_else(|| err("bad name"))?;
            if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind) {
                return Err(err("unknown type"));
            }
            if types.insert(name.to_owned(), kind.to_owned()).is_some() {
                return Err(err("family declared twice"));
            }
            continue;
        }
        if line.starts_with('#') {
            return Err(err("unknown comment line"));
        }
        let name_end = line.find(['{', ' ']).ok_or_else(|| err("no value"))?;
        let name = &line[..name_end];
        valid_name(name)
            .then_some(())
            .ok_or_else(|| err("bad name"))?;
        let mut rest = &line[name_end..];
        let mut labels = BTreeMap::new();
        if let Some(body) = rest.strip_prefix('{') {
            let (parsed, after) = parse_labels(body).map_err(|e| err(&e))?;
            labels = parsed;
            rest = after;
        }
        let value = rest
            .strip_prefix(' ')
            .ok_or_else(|| err("no space before value"))?;
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().map_err(|_| err("bad value"))?,
        };
        let family = match types.get(name).map(String::as_str) {
            Some(_) => name,
            None => ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
                .filter(|f| types.get(*f).map(String::as_str) == Some("histogram"))
                .ok_or_else(|| err("sample of an undeclared family"))?,
        };
        if name.ends_with("_bucket") && family != name && !labels.contains_key("le") {
            return Err(err("bucket without le"));
        }
        samples.push(Sample {
            name: name.to_owned(),
            labels,
            value,
        });
    }
    Ok(samples)
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// `key="value",...}` and what follows the closing brace.
fn parse_labels(mut s: &str) -> Result<(BTreeMap<String, String>, &str), String> {
    let mut labels = BTreeMap::new();
    loop {
        if let Some(after) = s.strip_prefix('}') {
            return Ok((labels, after));
        }
        let (key, rest) = s.split_once("=\"").ok_or("label without =\"")?;
        if !valid_name(key) {
            return Err(format!("bad label name {key:?}"));
        }
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            match chars.next().ok_or("unterminated label value")? {
                (i, '"') => break i,
                (_, '\\') => match chars.next().ok_or("dangling escape")?.1 {
                    'n' => value.push('\n'),
                    c @ ('\\' | '"') => value.push(c),
                    c => return Err(format!("bad escape \\{c}")),
                },
                (_, c) => value.push(c),
            }
        };
        if labels.insert(key.to_owned(), value).is_some() {
            return Err(format!("label {key} twice"));
        }
        s = &rest[end + 1..];
        s = s.strip_prefix(',').unwrap_or(s);
    }
}

fn scrape(gw: SocketAddr) -> Vec<Sample> {
    let r = request(gw, "GET", "/metrics", &[], b"");
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        r.header("content-type")
            .is_some_and(|t| t.starts_with("text/plain; version=0.0.4")),
        "{:?}",
        r.headers
    );
    parse(&r.text()).unwrap_or_else(|e| panic!("{e}\n{}", r.text()))
}

fn sum(samples: &[Sample], name: &str, want: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|s| s.name == name)
        .filter(|s| {
            want.iter()
                .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(v))
        })
        .map(|s| s.value)
        .sum()
}

/// Four-bucket usage of a Chat Completions `usage` object.
fn chat_usage(u: &Value) -> [u64; 5] {
    let n = |p: &str| u.pointer(p).and_then(Value::as_u64).unwrap_or(0);
    let cached = n("/prompt_tokens_details/cached_tokens");
    [
        n("/prompt_tokens") - cached,
        cached,
        0,
        n("/completion_tokens"),
        n("/completion_tokens_details/reasoning_tokens"),
    ]
}

fn anthropic_usage(u: &Value) -> [u64; 5] {
    let n = |k: &str| u[k].as_u64().unwrap_or(0);
    [
        n("input_tokens"),
        n("cache_read_input_tokens"),
        n("cache_creation_input_tokens"),
        n("output_tokens"),
        0,
    ]
}

const TYPES: [&str; 5] = ["input", "cache_read", "cache_write", "output", "reasoning"];

#[test]
fn metrics_count_what_was_served_refused_and_fallen_over() {
    let m = mock();
    let mut cfg = config(
        m.addr,
        &[
            ("served", &[("openai", "mock;reasoning=1;cached=40")]),
            ("fo", &[("openai", "m-down;status=503"), ("openai", "mock")]),
            ("st", &[("openai", "mock;chunks=4")]),
            ("an", &[("anthropic", "mock;cached=10")]),
        ],
        "",
    );
    cfg.push_str(
        "\n[[api_keys]]\nkey = \"sk-test-one-per-minute\"\nname = \"one\"\nlimits = { rpm = 1 }\n",
    );
    let gw = gateway(&cfg);
    let chat = |model: &str| json!({"model": model, "messages": [{"role": "user", "content": "hi there"}]});
    let mut tokens = [0u64; 5];
    let mut add = |u: [u64; 5]| {
        for (t, n) in tokens.iter_mut().zip(u) {
            *t += n;
        }
    };

    let r = post_json(gw.addr, "/v1/chat/completions", KEY, &chat("served"));
    assert_eq!(r.status, 200, "{}", r.text());
    add(chat_usage(&r.json()["usage"]));

    let r = post_json(
        gw.addr,
        "/v1/chat/completions",
        KEY,
        &chat("nope-not-configured"),
    );
    assert_eq!(r.status, 404, "{}", r.text());

    let r = post_json(gw.addr, "/v1/chat/completions", KEY, &chat("fo"));
    assert_eq!(r.status, 200, "{}", r.text());
    add(chat_usage(&r.json()["usage"]));

    let mut stream = chat("st");
    stream["stream"] = json!(true);
    stream["stream_options"] = json!({"include_usage": true});
    let r = post_json(gw.addr, "/v1/chat/completions", KEY, &stream);
    assert_eq!(r.status, 200, "{}", r.text());
    let usage = r
        .events()
        .into_iter()
        .rev()
        .find_map(|(_, v)| v.get("usage").filter(|u| u.is_object()).cloned())
        .unwrap_or_else(|| panic!("no usage chunk: {}", r.text()));
    add(chat_usage(&usage));

    let body = json!({"model": "an", "max_tokens": 50, "messages": [{"role": "user", "content": "hi there"}]});
    let r = post_json(gw.addr, "/v1/messages", KEY, &body);
    assert_eq!(r.status, 200, "{}", r.text());
    add(anthropic_usage(&r.json()["usage"]));

    // A key's limit: one served, the next refused.
    let r = post_json(
        gw.addr,
        "/v1/chat/completions",
        "sk-test-one-per-minute",
        &chat("oa"),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    add(chat_usage(&r.json()["usage"]));
    let r = post_json(
        gw.addr,
        "/v1/chat/completions",
        "sk-test-one-per-minute",
        &chat("oa"),
    );
    assert_eq!(r.status, 429, "{}", r.text());

    // Requests are observed in Pingora's logging hook, just after the
    // response went out: wait for the last of them.
    let mut samples = Vec::new();
    let counted = wait_until(Duration::from_secs(5), || {
        samples = scrape(gw.addr);
        sum(&samples, "modelswitch_requests_total", &[]) >= 7.0
    });
    assert!(counted, "{samples:#?}");

    let requests = |labels: &[(&str, &str)]| sum(&samples, "modelswitch_requests_total", labels);
    // Scrapes are not LLM API requests: exactly the seven made.
    assert_eq!(requests(&[]), 7.0);
    let ok = [("outcome", "ok"), ("status", "200")];
    assert_eq!(
        requests(
            &[
                &ok[..],
                &[
                    ("model", "served"),
                    ("provider", "openai"),
                    ("dialect", "openai")
                ]
            ]
            .concat()
        ),
        1.0
    );
    assert_eq!(
        requests(&[&ok[..], &[("model", "fo"), ("provider", "openai")]].concat()),
        1.0
    );
    assert_eq!(requests(&[&ok[..], &[("model", "st")]].concat()), 1.0);
    assert_eq!(
        requests(
            &[
                &ok[..],
                &[
                    ("model", "an"),
                    ("provider", "anthropic"),
                    ("dialect", "anthropic")
                ]
            ]
            .concat()
        ),
        1.0
    );
    // The unknown model is client input: counted under "other".
    assert_eq!(
        requests(&[
            ("model", "other"),
            ("provider", "none"),
            ("status", "404"),
            ("outcome", "client_error")
        ]),
        1.0
    );
    assert_eq!(requests(&[&ok[..], &[("model", "oa")]].concat()), 1.0);
    assert_eq!(
        requests(&[
            ("model", "oa"),
            ("provider", "none"),
            ("status", "429"),
            ("outcome", "refused")
        ]),
        1.0
    );
    assert_eq!(
        sum(
            &samples,
            "modelswitch_limit_refusals_total",
            &[("scope", "key"), ("dimension", "rpm")]
        ),
        1.0
    );
    assert!(samples
        .iter()
        .all(|s| s.labels.values().all(|v| !v.contains("nope"))));

    // The fallover's two attempts.
    let attempts = |labels: &[(&str, &str)]| sum(&samples, "modelswitch_attempts_total", labels);
    assert_eq!(
        attempts(&[("model", "m-down;status=503"), ("outcome", "503")]),
        1.0
    );
    assert_eq!(attempts(&[("outcome", "ok")]), 5.0);

    for (kind, want) in TYPES.iter().zip(tokens) {
        assert_eq!(
            sum(&samples, "modelswitch_tokens_total", &[("type", kind)]),
            want as f64,
            "{kind} tokens"
        );
    }
    assert!(
        tokens[1] > 0 && tokens[4] > 0,
        "cache and reasoning exercised: {tokens:?}"
    );

    assert_eq!(
        sum(&samples, "modelswitch_request_duration_seconds_count", &[]),
        7.0
    );
    assert_eq!(
        sum(
            &samples,
            "modelswitch_time_to_first_byte_seconds_count",
            &[("model", "st")]
        ),
        1.0
    );
    assert_eq!(sum(&samples, "modelswitch_streams_in_flight", &[]), 0.0);
    // One 503 does not open a breaker; every configured target is listed.
    assert_eq!(sum(&samples, "modelswitch_breaker_open", &[]), 0.0);
    assert!(samples.iter().any(|s| s.name == "modelswitch_breaker_open"
        && s.labels.get("model").map(String::as_str) == Some("m-down;status=503")));
    assert_eq!(
        sum(
            &samples,
            "modelswitch_upstream_keys",
            &[("provider", "openai"), ("state", "active")]
        ),
        1.0
    );
}

#[test]
fn the_parser_is_strict() {
    assert!(parse("# TYPE a counter\na 1\n").is_ok());
    assert!(parse("a 1\n").is_err(), "undeclared family");
    assert!(parse("# TYPE h histogram\nh_bucket{le=\"+Inf\"} 1\nh_sum 2\nh_count 1\n").is_ok());
    assert!(parse("# TYPE c counter\nc_count 1\n").is_err());
    assert!(parse("# TYPE a counter\na{x=\"1} 1\n").is_err());
    assert!(parse("# TYPE a counter\na{x=\"\\q\"} 1\n").is_err());
    assert!(parse("# TYPE a counter\na one\n").is_err());
    assert!(parse("# TYPE a counter\n# TYPE a counter\n").is_err());
    let s = parse("# TYPE a gauge\na{x=\"q\\\"uote\",y=\"b\"} 2.5\n").unwrap();
    assert_eq!(s[0].labels["x"], "q\"uote");
    assert_eq!(s[0].value, 2.5);
}

/// The counters and the usage rows come from the same record: after a mix
/// of dialects, a stream, a fallover and an unknown model, requests,
/// tokens by type and cost in `/metrics` equal the sums over the rows.
#[test]
fn counters_match_the_usage_rows() {
    let m = mock();
    let mut cfg = config(
        m.addr,
        &[
            ("served", &[("openai", "mock;reasoning=2;cached=40")]),
            ("fo", &[("openai", "m-down;status=503"), ("openai", "mock")]),
            ("st", &[("openai", "mock;chunks=4")]),
            ("an", &[("anthropic", "mock;cached=10;cache_write=7")]),
        ],
        "",
    );
    // Every mock model priced, cache and reasoning included.
    cfg.push_str(
        "\n[[prices]]\nmodel = \"mock*\"\ncurrency = \"USD\"\ninput = 3\noutput = 15\n\
         cache_read = 0.3\ncache_write = 3.75\nreasoning = 15\n",
    );
    let gw = live_gateway(&cfg);
    let chat = |model: &str| json!({"model": model, "messages": [{"role": "user", "content": "hi there"}]});
    for model in ["served", "fo", "nope-not-configured", "served"] {
        post_json(gw.addr(), "/v1/chat/completions", KEY, &chat(model));
    }
    let mut stream = chat("st");
    stream["stream"] = json!(true);
    let r = post_json(gw.addr(), "/v1/chat/completions", KEY, &stream);
    assert_eq!(r.status, 200, "{}", r.text());
    for _ in 0..2 {
        let body = json!({"model": "an", "max_tokens": 50, "messages": [{"role": "user", "content": "hi there"}]});
        let r = post_json(gw.addr(), "/v1/messages", KEY, &body);
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let made = 7;

    let db = gw.dir.join("modelswitch.db");
    let read = || -> Option<(i64, [i64; 5], i64)> {
        let c =
            rusqlite::Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
                .ok()?;
        c.query_row(
            "SELECT count(*), sum(input_uncached), sum(cache_read), sum(cache_write), \
             sum(output), sum(reasoning), sum(coalesce(cost_nanos, 0)) FROM usage \
             WHERE dialect IS NOT NULL",
            [],
            |r| {
                Ok((
                    r.get(0)?,
                    [r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?],
                    r.get(6)?,
                ))
            },
        )
        .ok()
    };
    let mut rows = None;
    wait_until(Duration::from_secs(10), || {
        rows = read();
        rows.is_some_and(|(n, _, _)| n >= made)
    });
    let (n, tokens, cost_nanos) = rows.unwrap();
    assert_eq!(n, made, "one row per request");
    let samples = scrape(gw.addr());
    assert_eq!(
        sum(&samples, "modelswitch_requests_total", &[]),
        made as f64
    );
    for (kind, want) in TYPES.iter().zip(tokens) {
        assert_eq!(
            sum(&samples, "modelswitch_tokens_total", &[("type", kind)]),
            want as f64,
            "{kind} tokens"
        );
    }
    assert!(
        tokens.iter().all(|&t| t > 0),
        "every bucket exercised: {tokens:?}"
    );
    let cost = sum(&samples, "modelswitch_cost_total", &[("currency", "USD")]);
    assert!(cost_nanos > 0);
    assert!(
        (cost - cost_nanos as f64 / 1e9).abs() < 1e-9 * made as f64,
        "metrics {cost} vs rows {cost_nanos} nanos"
    );
    assert!(sum(&samples, "modelswitch_usage_rows_written_total", &[]) >= made as f64);
    assert_eq!(
        sum(&samples, "modelswitch_usage_spilled_rows_total", &[]),
        0.0
    );
}
