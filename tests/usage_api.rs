//! The usage API over real sockets (issue 12, item 5): requests through
//! the gateway and the mock upstream, then `/api/usage` totals that match
//! the usage each client was told, exactly, grouped by key, model,
//! provider, day and hour; the call history paged so every row comes once;
//! the CSV export; and who may read what (a `user` key its own rows only).
//!
//! Every admin call is itself a request with a usage row, so the checks
//! read a time window that closes before the first of them.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const VIEWER_KEY: &str = "sk-test-viewer-key";
const OTHER_USER_KEY: &str = "sk-test-other-user";
const UPSTREAM_OA: &str = "mock;cached=40;reasoning=1";
const UPSTREAM_AN: &str = "mock;cached=24";

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn config_text(m: SocketAddr, record: bool) -> String {
    let mut c = config(
        m,
        &[
            ("u-oa", &[("openai", UPSTREAM_OA)]),
            ("u-an", &[("anthropic", UPSTREAM_AN)]),
        ],
        "",
    );
    c.push_str(&format!(
        r#"
[[api_keys]]
key = "{VIEWER_KEY}"
name = "viewer"
roles = ["viewer"]

[[api_keys]]
key = "{OTHER_USER_KEY}"
name = "other"
roles = ["user"]

[storage]
sqlite_path = "keys.db"
record_usage = {record}
"#
    ));
    c
}

fn get(addr: SocketAddr, path: &str, key: &str) -> Response {
    request(
        addr,
        "GET",
        path,
        &[("Authorization", &format!("Bearer {key}"))],
        b"",
    )
}

/// What the client was told of one request, in the usage row's buckets.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Told {
    input_uncached: u64,
    cache_read: u64,
    cache_write: u64,
    output: u64,
    reasoning: u64,
}

impl Told {
    fn add(&mut self, o: Told) {
        self.input_uncached += o.input_uncached;
        self.cache_read += o.cache_read;
        self.cache_write += o.cache_write;
        self.output += o.output;
        self.reasoning += o.reasoning;
    }

    fn of_chat(u: &Value) -> Told {
        let cached = u["prompt_tokens_details"]["cached_tokens"]
            .as_u64()
            .unwrap_or(0);
        Told {
            input_uncached: u["prompt_tokens"].as_u64().unwrap() - cached,
            cache_read: cached,
            cache_write: 0,
            output: u["completion_tokens"].as_u64().unwrap(),
            reasoning: u["completion_tokens_details"]["reasoning_tokens"]
                .as_u64()
                .unwrap_or(0),
        }
    }

    fn of_messages(u: &Value) -> Told {
        Told {
            input_uncached: u["input_tokens"].as_u64().unwrap(),
            cache_read: u["cache_read_input_tokens"].as_u64().unwrap_or(0),
            cache_write: u["cache_creation_input_tokens"].as_u64().unwrap_or(0),
            output: u["output_tokens"].as_u64().unwrap(),
            reasoning: 0,
        }
    }

    fn matches(&self, g: &Value) {
        let got = Told {
            input_uncached: g["input_uncached"].as_u64().unwrap(),
            cache_read: g["cache_read"].as_u64().unwrap(),
            cache_write: g["cache_write"].as_u64().unwrap(),
            output: g["output"].as_u64().unwrap(),
            reasoning: g["reasoning"].as_u64().unwrap(),
        };
        assert_eq!(got, *self, "{g}");
        assert_eq!(
            g["input"].as_u64().unwrap(),
            self.input_uncached + self.cache_read + self.cache_write
        );
    }
}

/// One request made: who, which model and provider, what it was told.
#[derive(Debug, Clone)]
struct Made {
    id: String,
    key: &'static str,
    model: &'static str,
    provider: Option<&'static str>,
    status: u16,
    told: Told,
}

fn chat(addr: SocketAddr, key: &str, model: &str, ua: &str) -> Response {
    request(
        addr,
        "POST",
        "/v1/chat/completions",
        &[
            ("Authorization", &format!("Bearer {key}")),
            ("Content-Type", "application/json"),
            ("User-Agent", ua),
        ],
        json!({"model": model, "messages": [{"role": "user", "content": "hi there"}]})
            .to_string()
            .as_bytes(),
    )
}

fn messages(addr: SocketAddr, key: &str, model: &str) -> Response {
    request(
        addr,
        "POST",
        "/v1/messages",
        &[
            ("x-api-key", key),
            ("anthropic-version", "2023-06-01"),
            ("Content-Type", "application/json"),
        ],
        json!({"model": model, "max_tokens": 50, "messages": [{"role": "user", "content": "hello"}]})
            .to_string()
            .as_bytes(),
    )
}

const ODD_AGENT: &str = "agent, \"quoted\" =1";

/// The requests every test below reads back.
fn make_requests(addr: SocketAddr) -> Vec<Made> {
    let mut made = Vec::new();
    let mut one = |r: Response,
                   key: &'static str,
                   model: &'static str,
                   provider: Option<&'static str>,
                   told: fn(&Value) -> Told| {
        let id = r.header("x-request-id").unwrap().to_owned();
        let t = if r.status == 200 {
            told(&r.json()["usage"])
        } else {
            Told::default()
        };
        made.push(Made {
            id,
            key,
            model,
            provider,
            status: r.status,
            told: t,
        });
    };
    for i in 0..4 {
        let ua = if i == 0 { ODD_AGENT } else { "test" };
        let r = chat(addr, KEY, "u-oa", ua);
        assert_eq!(r.status, 200, "{}", r.text());
        one(r, "admin", "u-oa", Some("openai"), Told::of_chat);
    }
    for _ in 0..3 {
        let r = messages(addr, KEY, "u-an");
        assert_eq!(r.status, 200, "{}", r.text());
        one(r, "admin", "u-an", Some("anthropic"), Told::of_messages);
    }
    for _ in 0..3 {
        let r = chat(addr, LIMITED_KEY, "oa", "test");
        assert_eq!(r.status, 200, "{}", r.text());
        one(r, "limited", "oa", Some("openai"), Told::of_chat);
    }
    for _ in 0..2 {
        let r = messages(addr, OTHER_USER_KEY, "u-an");
        assert_eq!(r.status, 200, "{}", r.text());
        one(r, "other", "u-an", Some("anthropic"), Told::of_messages);
    }
    // An error: a model nobody configured.
    let r = chat(addr, KEY, "nope", "test");
    assert_eq!(r.status, 404, "{}", r.text());
    one(r, "admin", "nope", None, Told::of_chat);
    made
}

/// Waits (bounded) until `/api/usage` over the window counts `n` rows.
fn wait_for_rows(addr: SocketAddr, window: &str, n: u64) {
    let mut seen = Value::Null;
    let ok = wait_until(Duration::from_secs(10), || {
        let r = get(addr, &format!("/api/usage?{window}"), KEY);
        assert_eq!(r.status, 200, "{}", r.text());
        seen = r.json();
        seen["totals"]["requests"].as_u64() == Some(n)
    });
    assert!(ok, "rows never reached {n}: {seen}");
}

fn group<'a>(v: &'a Value, fields: &[(&str, Value)]) -> &'a Value {
    v["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| fields.iter().all(|(k, want)| &g[*k] == want))
        .unwrap_or_else(|| panic!("no group {fields:?} in {v}"))
}

struct Setup {
    _mock: Proc,
    gw: LiveGateway,
    made: Vec<Made>,
    window: String,
}

fn setup() -> Setup {
    let mock = mock();
    let gw = live_gateway(&config_text(mock.addr, true));
    let from = now_ms();
    let made = make_requests(gw.addr());
    // Rows' times are their requests' starts: every one is before this,
    // and every admin call after it.
    let to = now_ms() + 1;
    std::thread::sleep(Duration::from_millis(5));
    let window = format!("from={from}&to={to}");
    wait_for_rows(gw.addr(), &window, made.len() as u64);
    Setup {
        _mock: mock,
        gw,
        made,
        window,
    }
}

#[test]
fn totals_are_exact_per_key_model_provider_day_and_hour() {
    let s = setup();
    let addr = s.gw.addr();
    let usage = |q: &str| {
        let r = get(addr, &format!("/api/usage?{}&{q}", s.window), KEY);
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()
    };

    let all = usage("");
    assert_eq!(all["object"], "usage.summary");
    assert_eq!(all["totals"]["requests"], s.made.len());
    assert_eq!(all["totals"]["errors"], 1);
    let mut total = Told::default();
    s.made.iter().for_each(|m| total.add(m.told));
    total.matches(&all["totals"]);
    assert!(total.reasoning > 0 && total.cache_read > 0, "{total:?}");

    // By key.
    let by_key = usage("group_by=key");
    assert_eq!(by_key["groups"].as_array().unwrap().len(), 3);
    for key in ["admin", "limited", "other"] {
        let g = group(&by_key, &[("key", json!(key))]);
        let mine: Vec<&Made> = s.made.iter().filter(|m| m.key == key).collect();
        assert_eq!(g["requests"], mine.len(), "{key}");
        let mut t = Told::default();
        mine.iter().for_each(|m| t.add(m.told));
        t.matches(g);
    }

    // Drill-down: provider, then model, then key.
    let by_pmk = usage("group_by=provider,model,key");
    let mut want: BTreeMap<(Option<&str>, &str, &str), (u64, Told)> = BTreeMap::new();
    for m in &s.made {
        let e = want.entry((m.provider, m.model, m.key)).or_default();
        e.0 += 1;
        e.1.add(m.told);
    }
    assert_eq!(by_pmk["groups"].as_array().unwrap().len(), want.len());
    for ((provider, model, key), (n, t)) in &want {
        let g = group(
            &by_pmk,
            &[
                ("provider", json!(provider)),
                ("model", json!(model)),
                ("key", json!(key)),
            ],
        );
        assert_eq!(g["requests"], *n);
        t.matches(g);
    }
    let failed = group(&by_pmk, &[("model", json!("nope"))]);
    assert_eq!(failed["errors"], 1);
    assert_eq!(failed["provider"], Value::Null);

    // A filter narrows the drill-down.
    let anthropic = usage("provider=anthropic&group_by=key");
    assert_eq!(anthropic["totals"]["requests"], 5);
    assert_eq!(group(&anthropic, &[("key", json!("other"))])["requests"], 2);
    assert_eq!(usage("status=error")["totals"]["requests"], 1);
    let client_errors = usage("status=4xx");
    assert_eq!(client_errors["totals"]["requests"], 1);
    assert_eq!(client_errors["filters"]["status"], "4xx");
    assert_eq!(usage("status=200")["totals"]["requests"], s.made.len() - 1);
    assert_eq!(usage("model=u-an&key=admin")["totals"]["requests"], 3);

    // Days (of [limits] timezone, UTC here) and UTC hours add up to the whole.
    for by in ["day", "hour", "day,hour,provider"] {
        let v = usage(&format!("group_by={by}"));
        let groups = v["groups"].as_array().unwrap();
        let n: u64 = groups.iter().map(|g| g["requests"].as_u64().unwrap()).sum();
        assert_eq!(n, s.made.len() as u64, "{v}");
        for g in groups {
            if let Some(day) = g.get("day") {
                let day = day.as_str().unwrap();
                assert!(day.len() == 10 && day.as_bytes()[4] == b'-', "{day}");
            }
            if let Some(hour) = g.get("hour") {
                assert!(hour.as_str().unwrap().ends_with(":00:00Z"), "{hour}");
            }
        }
    }
    assert_eq!(usage("group_by=day")["timezone"], "UTC");

    // Costs per currency agree with the rows'.
    let rows = get(
        addr,
        &format!("/api/usage/requests?{}&limit=500", s.window),
        KEY,
    )
    .json();
    let mut cost: BTreeMap<String, i64> = BTreeMap::new();
    let mut unpriced = 0;
    for r in rows["data"].as_array().unwrap() {
        match (r["cost_nanos"].as_i64(), r["currency"].as_str()) {
            (Some(n), Some(c)) => *cost.entry(c.to_owned()).or_default() += n,
            _ => unpriced += 1,
        }
    }
    assert_eq!(all["totals"]["cost_nanos"], json!(cost));
    assert_eq!(all["totals"]["unpriced"], unpriced);
}

#[test]
fn pages_visit_every_row_once_and_the_export_is_proper_csv() {
    let s = setup();
    let addr = s.gw.addr();
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut path = format!("/api/usage/requests?{}&limit=4", s.window);
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let r = get(addr, &path, KEY);
        assert_eq!(r.status, 200, "{}", r.text());
        let v = r.json();
        let data = v["data"].as_array().unwrap();
        assert!(data.len() <= 4);
        seen.extend(data.iter().cloned());
        pages += 1;
        assert!(pages <= 10, "pagination does not end");
        match v["next_cursor"].as_str() {
            Some(c) => {
                assert_eq!(v["has_more"], true);
                cursor = Some(c.to_owned());
            }
            None => break,
        }
    }
    assert_eq!(pages, s.made.len().div_ceil(4));
    let ids: Vec<&str> = seen
        .iter()
        .map(|r| r["request_id"].as_str().unwrap())
        .collect();
    let unique: HashSet<&str> = ids.iter().copied().collect();
    assert_eq!(unique.len(), ids.len(), "a row came twice");
    let made: HashSet<&str> = s.made.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(unique, made);
    // Newest first.
    let ts: Vec<i64> = seen.iter().map(|r| r["ts"].as_i64().unwrap()).collect();
    assert!(ts.windows(2).all(|w| w[0] >= w[1]), "{ts:?}");

    // One row, every field.
    for m in &s.made {
        let r = get(addr, &format!("/api/usage/requests/{}", m.id), KEY);
        assert_eq!(r.status, 200, "{}", r.text());
        let v = r.json();
        assert_eq!(v["request_id"], m.id.as_str());
        assert_eq!(v["key_name"], m.key);
        assert_eq!(v["model"], m.model);
        assert_eq!(v["provider"], json!(m.provider));
        assert_eq!(v["status"], m.status);
        assert_eq!(v["output"], m.told.output);
        assert!(v["attempts"].is_array(), "{v}");
        assert!(v["time"].as_str().unwrap().ends_with('Z'));
        for field in [
            "dialect",
            "endpoint",
            "upstream_model",
            "stream",
            "input_uncached",
            "cache_read",
            "cache_write",
            "reasoning",
            "cost_nanos",
            "currency",
            "latency_ms",
            "ttfb_ms",
            "overhead_ms",
            "bytes_in",
            "bytes_out",
            "client_addr",
            "user_agent",
            "session_id",
            "error",
        ] {
            assert!(v.get(field).is_some(), "{field} missing: {v}");
        }
        if m.provider.is_some() {
            assert_eq!(v["attempts"][0]["outcome"], "ok", "{v}");
        }
    }
    let r = get(addr, "/api/usage/requests/req_nothing", KEY);
    assert_eq!(r.status, 404, "{}", r.text());

    // The export: every row once, quoted by RFC 4180.
    let r = get(addr, &format!("/api/usage/export?{}", s.window), KEY);
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.header("content-type").unwrap().starts_with("text/csv"));
    let disposition = r.header("content-disposition").unwrap();
    assert!(
        disposition.starts_with("attachment; filename=\"usage-") && disposition.ends_with(".csv\""),
        "{disposition}"
    );
    let text = r.text();
    assert!(text.ends_with("\r\n"));
    let records = parse_csv(&text);
    let header = &records[0];
    assert_eq!(header[0], "time");
    assert_eq!(records.len(), s.made.len() + 1, "{text}");
    assert!(records.iter().all(|r| r.len() == header.len()), "{text}");
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    let csv_ids: HashSet<&str> = records[1..]
        .iter()
        .map(|r| r[col("request_id")].as_str())
        .collect();
    assert_eq!(csv_ids, made);
    // The odd user agent survives quoting.
    assert!(text.contains("\"agent, \"\"quoted\"\" =1\""), "{text}");
    assert!(records[1..]
        .iter()
        .any(|r| r[col("user_agent")] == ODD_AGENT));
    // Attempts are a JSON cell.
    let attempts = &records[1][col("attempts")];
    assert!(serde_json::from_str::<Value>(attempts).unwrap().is_array());
    // A filter applies to the export too.
    let r = get(
        addr,
        &format!("/api/usage/export?{}&key=limited", s.window),
        KEY,
    );
    assert_eq!(parse_csv(&r.text()).len(), 1 + 3);
}

#[test]
fn a_user_key_reads_its_own_rows_only_and_a_viewer_reads_all() {
    let s = setup();
    let addr = s.gw.addr();
    let n_limited = s.made.iter().filter(|m| m.key == "limited").count();

    // The user key's totals and history are its own.
    let r = get(
        addr,
        &format!("/api/usage?{}&group_by=key", s.window),
        LIMITED_KEY,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["totals"]["requests"], n_limited);
    assert_eq!(v["groups"].as_array().unwrap().len(), 1);
    assert_eq!(v["groups"][0]["key"], "limited");
    assert_eq!(v["filters"]["key"], "limited");
    let r = get(
        addr,
        &format!("/api/usage?{}&key=limited", s.window),
        LIMITED_KEY,
    );
    assert_eq!(r.json()["totals"]["requests"], n_limited);
    let r = get(
        addr,
        &format!("/api/usage/requests?{}", s.window),
        LIMITED_KEY,
    );
    let data = r.json()["data"].as_array().unwrap().clone();
    assert_eq!(data.len(), n_limited);
    assert!(data.iter().all(|r| r["key_name"] == "limited"));
    let r = get(
        addr,
        &format!("/api/usage/export?{}", s.window),
        LIMITED_KEY,
    );
    assert_eq!(parse_csv(&r.text()).len(), 1 + n_limited);

    // Asking for another key's rows is refused, in the caller's dialect.
    for path in [
        format!("/api/usage?{}&key=admin", s.window),
        format!("/api/usage/requests?{}&key=other", s.window),
        format!("/api/usage/export?{}&key=admin", s.window),
    ] {
        let r = get(addr, &path, LIMITED_KEY);
        assert_eq!(r.status, 403, "{path}: {}", r.text());
        assert_eq!(r.json()["error"]["param"], "key", "{}", r.text());
    }
    let r = request(
        addr,
        "GET",
        "/api/usage?key=admin",
        &[
            ("x-api-key", LIMITED_KEY),
            ("anthropic-version", "2023-06-01"),
        ],
        b"",
    );
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(r.json()["type"], "error");
    assert_eq!(r.json()["error"]["type"], "permission_error");
    // Another key's single row is not there for it.
    let admins = s.made.iter().find(|m| m.key == "admin").unwrap();
    let r = get(
        addr,
        &format!("/api/usage/requests/{}", admins.id),
        LIMITED_KEY,
    );
    assert_eq!(r.status, 404, "{}", r.text());
    let own = s.made.iter().find(|m| m.key == "limited").unwrap();
    let r = get(
        addr,
        &format!("/api/usage/requests/{}", own.id),
        LIMITED_KEY,
    );
    assert_eq!(r.status, 200, "{}", r.text());

    // A viewer reads everything.
    let r = get(addr, &format!("/api/usage?{}", s.window), VIEWER_KEY);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["totals"]["requests"], s.made.len());
    let r = get(
        addr,
        &format!("/api/usage/requests?{}&key=other", s.window),
        VIEWER_KEY,
    );
    assert_eq!(r.json()["data"].as_array().unwrap().len(), 2);

    // No key, a bad key.
    assert_eq!(get(addr, "/api/usage", "sk-wrong").status, 401);
    let r = request(addr, "GET", "/api/usage", &[], b"");
    assert_eq!(r.status, 401, "{}", r.text());

    // Bad parameters are 400s that name themselves.
    for (q, param) in [
        ("from=yesterday", "from"),
        ("to=2026-13-40T00:00:00Z", "to"),
        ("from=2000&to=1000", "from"),
        ("group_by=week", "group_by"),
        ("status=teapot", "status"),
        ("colour=red", "colour"),
    ] {
        let r = get(addr, &format!("/api/usage?{q}"), KEY);
        assert_eq!(r.status, 400, "{q}: {}", r.text());
        assert_eq!(r.json()["error"]["param"], param, "{q}: {}", r.text());
    }
    for (q, param) in [
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("cursor=abc", "cursor"),
    ] {
        let r = get(addr, &format!("/api/usage/requests?{q}"), KEY);
        assert_eq!(r.status, 400, "{q}: {}", r.text());
        assert_eq!(r.json()["error"]["param"], param, "{q}: {}", r.text());
    }
    let r = request(
        addr,
        "POST",
        "/api/usage",
        &[("Authorization", &format!("Bearer {KEY}"))],
        b"",
    );
    assert_eq!(r.status, 405, "{}", r.text());
    assert_eq!(get(addr, "/api/usage/nothing", KEY).status, 404);
}

#[test]
fn with_recording_off_the_usage_api_says_so() {
    let mock = mock();
    let gw = gateway(&config_text(mock.addr, false));
    for path in ["/api/usage", "/api/usage/requests", "/api/usage/export"] {
        let r = get(gw.addr, path, KEY);
        assert_eq!(r.status, 409, "{path}: {}", r.text());
        let msg = r.json()["error"]["message"].as_str().unwrap().to_owned();
        assert!(msg.contains("[storage] record_usage"), "{msg}");
    }
}

/// A strict RFC 4180 reader: CRLF records, quoted cells with doubled
/// quotes and line breaks inside.
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut records = Vec::new();
    let mut record = Vec::new();
    let mut cell = String::new();
    let mut chars = text.chars().peekable();
    let mut quoted = false;
    let mut at_start = true;
    while let Some(c) = chars.next() {
        if quoted {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    cell.push('"');
                }
                '"' => {
                    quoted = false;
                    assert!(
                        matches!(chars.peek(), None | Some(',') | Some('\r')),
                        "text after a closing quote"
                    );
                }
                c => cell.push(c),
            }
            continue;
        }
        match c {
            '"' if at_start => {
                quoted = true;
                at_start = false;
            }
            '"' => panic!("a quote inside an unquoted cell"),
            ',' => {
                record.push(std::mem::take(&mut cell));
                at_start = true;
            }
            '\r' => {
                assert_eq!(chars.next(), Some('\n'), "CR without LF");
                record.push(std::mem::take(&mut cell));
                records.push(std::mem::take(&mut record));
                at_start = true;
            }
            '\n' => panic!("a bare LF ends a record"),
            c => {
                cell.push(c);
                at_start = false;
            }
        }
    }
    assert!(!quoted, "unterminated quote");
    assert!(
        record.is_empty() && cell.is_empty(),
        "no CRLF after the last record"
    );
    records
}

/// Time, request id, key, cost (nanos, currency).
type BulkRow = (i64, String, &'static str, Option<(i64, &'static str)>);

/// Rows written straight into the gateway's database: more than one
/// export page, over days of a zone 5:30 ahead of UTC, priced in two
/// currencies.
#[test]
fn a_large_export_streams_every_row_once_and_days_follow_the_zone() {
    let mock = mock();
    let mut text = config_text(mock.addr, true);
    text.push_str("\n[limits]\ntimezone = \"Asia/Kolkata\"\n");
    let gw = live_gateway(&text);
    let n = 2_500i64;
    // 2025-01-01T12:00:00Z (17:30 in Kolkata), one row a minute: about
    // 42 hours, on three of its days.
    let base = 1_735_732_800_000i64;
    let rows: Vec<BulkRow> = (0..n)
        .map(|i| {
            let key = if i % 3 == 0 { "limited" } else { "admin" };
            let cost = match i % 4 {
                0 => None,
                1 | 2 => Some((1_000_000 + i, "USD")),
                _ => Some((7 * i, "CNY")),
            };
            (base + i * 60_000, format!("req_bulk_{i:05}"), key, cost)
        })
        .collect();
    block_on(async {
        use sqlx::{ConnectOptions, Connection};
        let mut c = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(gw.dir.join("keys.db"))
            .busy_timeout(Duration::from_secs(5))
            .connect()
            .await
            .unwrap();
        let mut tx = c.begin().await.unwrap();
        for (ts, id, key, cost) in &rows {
            sqlx::query(
                "INSERT INTO usage (ts, request_id, key_name, dialect, endpoint, model, provider, \
                 upstream_model, attempts, status, stream, input_uncached, cache_read, cache_write, \
                 output, reasoning, cost_nanos, currency, latency_ms, user_agent) \
                 VALUES (?, ?, ?, 'openai', '/v1/chat/completions', 'u-oa', 'openai', 'up', '[]', \
                 200, 0, 10, 2, 1, 5, 1, ?, ?, 3.5, 'line one\nline \"two\", and more')",
            )
            .bind(ts)
            .bind(id)
            .bind(*key)
            .bind(cost.map(|c| c.0))
            .bind(cost.map(|c| c.1))
            .execute(&mut *tx)
            .await
            .unwrap();
        }
        tx.commit().await.unwrap();
    });
    let window = format!("from={base}&to={}", base + n * 60_000);
    let addr = gw.addr();

    // Days of Asia/Kolkata, exact.
    let r = get(addr, &format!("/api/usage?{window}&group_by=day"), KEY);
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["timezone"], "Asia/Kolkata");
    let zone = jiff::tz::TimeZone::get("Asia/Kolkata").unwrap();
    let mut want: BTreeMap<String, u64> = BTreeMap::new();
    for (ts, ..) in &rows {
        let day = jiff::Timestamp::from_millisecond(*ts)
            .unwrap()
            .to_zoned_datetime(zone.clone())
            .date()
            .to_string();
        *want.entry(day).or_default() += 1;
    }
    let got: BTreeMap<String, u64> = v["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["day"].as_str().unwrap().to_owned(),
                g["requests"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(got, want);
    assert_eq!(want.len(), 3, "{want:?}");

    // Costs per currency, to the nano.
    let usd: i64 = rows
        .iter()
        .filter_map(|r| r.3.filter(|c| c.1 == "USD").map(|c| c.0))
        .sum();
    let cny: i64 = rows
        .iter()
        .filter_map(|r| r.3.filter(|c| c.1 == "CNY").map(|c| c.0))
        .sum();
    assert_eq!(v["totals"]["cost_nanos"], json!({"USD": usd, "CNY": cny}));
    let decimal = |n: i64| {
        let frac = format!("{:09}", n % 1_000_000_000);
        format!("{}.{}", n / 1_000_000_000, frac.trim_end_matches('0'))
    };
    assert_eq!(
        v["totals"]["cost"],
        json!({"USD": decimal(usd), "CNY": decimal(cny)})
    );
    assert_eq!(v["totals"]["unpriced"], n / 4);
    assert_eq!(v["totals"]["output"], 5 * n);

    // Pages of 500: every row once.
    let mut seen = HashSet::new();
    let mut cursor = String::new();
    for page in 0.. {
        assert!(page < 10, "pagination does not end");
        let r = get(
            addr,
            &format!("/api/usage/requests?{window}&limit=500&cursor={cursor}"),
            KEY,
        );
        assert_eq!(r.status, 200, "{}", r.text());
        let v = r.json();
        for row in v["data"].as_array().unwrap() {
            assert!(seen.insert(row["request_id"].as_str().unwrap().to_owned()));
        }
        match v["next_cursor"].as_str() {
            Some(c) => cursor = c.to_owned(),
            None => break,
        }
    }
    assert_eq!(seen.len(), n as usize);

    // The export spans three pages of the store, streamed in chunks.
    let r = get(addr, &format!("/api/usage/export?{window}"), KEY);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("transfer-encoding"), Some("chunked"));
    assert_eq!(r.header("content-length"), None);
    let records = parse_csv(&r.text());
    assert_eq!(records.len(), 1 + n as usize);
    let col = |name: &str| records[0].iter().position(|h| h == name).unwrap();
    let ids: HashSet<&str> = records[1..]
        .iter()
        .map(|r| r[col("request_id")].as_str())
        .collect();
    assert_eq!(ids.len(), n as usize);
    // Line breaks and quotes inside a cell survive.
    assert!(records[1..]
        .iter()
        .all(|r| r[col("user_agent")] == "line one\nline \"two\", and more"));
    // Newest first.
    assert_eq!(
        records[1][col("request_id")],
        format!("req_bulk_{:05}", n - 1)
    );
    // A user key's export holds its own rows only.
    let r = get(addr, &format!("/api/usage/export?{window}"), LIMITED_KEY);
    let records = parse_csv(&r.text());
    assert_eq!(
        records.len() - 1,
        rows.iter().filter(|r| r.2 == "limited").count()
    );
}

/// Runs `f` on a small runtime of the test's own.
fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}
