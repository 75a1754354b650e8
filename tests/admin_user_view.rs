//! The per-developer view over real sockets (issue 15, item 8): a `user`
//! key logs in to the UI and reads only its own usage, requests and agent
//! sessions; every other admin endpoint answers 403, a `?key=` naming
//! another key is refused, and disabling the key ends the session. The
//! sessions endpoint's numbers (requests, tokens, cost, cache-hit ratio)
//! are checked exactly against what the mock upstream told each client.
//!
//! Every admin call may itself leave a usage row (refusals do), so the
//! checks read a time window that closes before the first of them.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const VIEWER_KEY: &str = "sk-test-viewer-key";
/// Cache reads and writes in every Anthropic answer.
const UPSTREAM: &str = "mock;cached=30;cache_write=10";

/// Per 1M tokens, USD: input 1, output 2, cache reads 0.5, writes 4 — in
/// nanos per token 1000, 2000, 500 and 4000.
const PRICES: &str = r#"
[[prices]]
model = "mock*"
currency = "USD"
input = 1
output = 2
cache_read = "0.5"
cache_write = 4
"#;

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn config_text(m: SocketAddr) -> String {
    let mut c = config(m, &[("sess", &[("anthropic", UPSTREAM)])], "");
    c.push_str(&format!(
        r#"
[[api_keys]]
key = "{VIEWER_KEY}"
name = "viewer"
roles = ["viewer"]

[storage]
sqlite_path = "keys.db"
record_usage = true
{PRICES}"#
    ));
    c
}

fn with_key(
    addr: SocketAddr,
    method: &str,
    path: &str,
    key: &str,
    body: Option<&Value>,
) -> Response {
    let body = body.map(Value::to_string).unwrap_or_default();
    request(
        addr,
        method,
        path,
        &[
            ("Authorization", &format!("Bearer {key}")),
            ("Content-Type", "application/json"),
        ],
        body.as_bytes(),
    )
}

/// A logged-in browser: the session cookie's token and its CSRF token.
struct Browser {
    addr: SocketAddr,
    token: String,
    csrf: String,
}

fn log_in(addr: SocketAddr, key: &str) -> (Browser, Value) {
    let r = request(
        addr,
        "POST",
        "/api/login",
        &[("Content-Type", "application/json")],
        json!({ "key": key }).to_string().as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let cookie = r.header("set-cookie").expect("a session cookie");
    let token = cookie
        .strip_prefix("ms_session=")
        .and_then(|rest| rest.split(';').next())
        .unwrap()
        .to_owned();
    let v = r.json();
    let b = Browser {
        addr,
        token,
        csrf: v["csrf"].as_str().unwrap().to_owned(),
    };
    (b, v)
}

impl Browser {
    fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Response {
        let cookie = format!("ms_session={}", self.token);
        let body = body.map(Value::to_string).unwrap_or_default();
        request(
            self.addr,
            method,
            path,
            &[
                ("Cookie", cookie.as_str()),
                ("Content-Type", "application/json"),
                ("X-CSRF-Token", self.csrf.as_str()),
            ],
            body.as_bytes(),
        )
    }

    fn get(&self, path: &str) -> Response {
        self.call("GET", path, None)
    }

    fn ok(&self, path: &str) -> Value {
        let r = self.get(path);
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        r.json()
    }
}

/// What one answer told its client, in the usage row's buckets.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Told {
    requests: u64,
    input_uncached: u64,
    cache_read: u64,
    cache_write: u64,
    output: u64,
}

impl Told {
    fn of(u: &Value) -> Self {
        Self {
            requests: 1,
            input_uncached: u["input_tokens"].as_u64().unwrap(),
            cache_read: u["cache_read_input_tokens"].as_u64().unwrap(),
            cache_write: u["cache_creation_input_tokens"].as_u64().unwrap(),
            output: u["output_tokens"].as_u64().unwrap(),
        }
    }

    fn add(&mut self, o: Self) {
        self.requests += o.requests;
        self.input_uncached += o.input_uncached;
        self.cache_read += o.cache_read;
        self.cache_write += o.cache_write;
        self.output += o.output;
    }

    /// At the prices above, in nanos.
    fn cost_nanos(&self) -> i64 {
        (self.input_uncached * 1000
            + self.output * 2000
            + self.cache_read * 500
            + self.cache_write * 4000) as i64
    }

    fn ratio(&self) -> f64 {
        self.cache_read as f64 / (self.input_uncached + self.cache_read + self.cache_write) as f64
    }

    /// `g` (a session of `/api/usage/sessions`) holds exactly these sums.
    fn matches(&self, g: &Value) {
        assert_eq!(g["requests"], self.requests, "{g}");
        assert_eq!(g["input_uncached"], self.input_uncached, "{g}");
        assert_eq!(g["cache_read"], self.cache_read, "{g}");
        assert_eq!(g["cache_write"], self.cache_write, "{g}");
        assert_eq!(g["output"], self.output, "{g}");
        assert_eq!(g["cost_nanos"], json!({ "USD": self.cost_nanos() }), "{g}");
        assert_eq!(g["unpriced"], 0, "{g}");
        let ratio = g["cache_hit_ratio"].as_f64().unwrap();
        assert!((ratio - self.ratio()).abs() < 1e-12, "{ratio} {g}");
    }
}

/// An Anthropic request of `key`, in agent session `session` (none: no
/// session header), through the gateway to the mock.
fn message(addr: SocketAddr, key: &str, session: Option<&str>) -> (String, Told) {
    let mut headers = vec![
        ("x-api-key", key),
        ("anthropic-version", "2023-06-01"),
        ("Content-Type", "application/json"),
    ];
    if let Some(s) = session {
        headers.push(("X-Claude-Code-Session-Id", s));
    }
    let body = json!({"model": "sess", "max_tokens": 50,
        "messages": [{"role": "user", "content": "hello there"}]});
    let r = request(
        addr,
        "POST",
        "/v1/messages",
        &headers,
        body.to_string().as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let id = r.header("x-request-id").unwrap().to_owned();
    let told = Told::of(&r.json()["usage"]);
    assert!(told.cache_read > 0 && told.cache_write > 0, "{told:?}");
    (id, told)
}

struct Setup {
    _mock: Proc,
    gw: LiveGateway,
    alice_key: String,
    /// Per (key, session): the request ids, newest last, and the sums.
    sent: BTreeMap<(&'static str, &'static str), (Vec<String>, Told)>,
    /// Alice's request without a session, and what it told her; one of
    /// Bob's.
    alice_plain: String,
    alice_plain_told: Told,
    bob_any: String,
    window: String,
}

fn create_user(addr: SocketAddr, name: &str) -> String {
    let r = with_key(
        addr,
        "POST",
        "/api/keys",
        KEY,
        Some(&json!({"name": name, "roles": ["user"]})),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    r.json()["key"].as_str().unwrap().to_owned()
}

fn setup() -> Setup {
    let mock = mock();
    let gw = live_gateway(&config_text(mock.addr));
    let addr = gw.addr();
    let alice_key = create_user(addr, "alice");
    let bob_key = create_user(addr, "bob");

    let from = now_ms();
    let mut sent: BTreeMap<(&'static str, &'static str), (Vec<String>, Told)> = BTreeMap::new();
    let mut send = |who: &'static str, key: &str, session: &'static str| {
        let (id, told) = message(addr, key, Some(session));
        let e = sent.entry((who, session)).or_default();
        e.0.push(id);
        e.1.add(told);
        // Distinct milliseconds: the order of last use is certain.
        std::thread::sleep(Duration::from_millis(3));
    };
    for _ in 0..3 {
        send("alice", &alice_key, "sess-a1");
    }
    for _ in 0..2 {
        send("bob", &bob_key, "sess-b1");
    }
    // Bob sends Alice's session id: his own session, never counted in hers.
    send("bob", &bob_key, "sess-a1");
    for _ in 0..2 {
        send("alice", &alice_key, "sess-a2");
    }
    let (alice_plain, alice_plain_told) = message(addr, &alice_key, None);
    let bob_any = sent[&("bob", "sess-b1")].0[0].clone();
    std::thread::sleep(Duration::from_millis(2));
    let to = now_ms() + 1;
    std::thread::sleep(Duration::from_millis(5));
    let window = format!("from={from}&to={to}");
    let total = 9;
    let mut seen = Value::Null;
    let ok = wait_until(Duration::from_secs(10), || {
        let r = with_key(addr, "GET", &format!("/api/usage?{window}"), KEY, None);
        assert_eq!(r.status, 200, "{}", r.text());
        seen = r.json();
        seen["totals"]["requests"].as_u64() == Some(total)
    });
    assert!(ok, "rows never reached {total}: {seen}");
    Setup {
        _mock: mock,
        gw,
        alice_key,
        sent,
        alice_plain,
        alice_plain_told,
        bob_any,
        window,
    }
}

fn ids(v: &Value) -> Vec<String> {
    v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["request_id"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn a_user_key_logs_in_and_sees_only_its_own_usage_requests_and_sessions() {
    let s = setup();
    let addr = s.gw.addr();
    let (alice, v) = log_in(addr, &s.alice_key);
    assert_eq!(v["user"], "alice");
    assert_eq!(v["role"], "user");
    assert_eq!(alice.ok("/api/session")["role"], "user");

    // Usage: her six requests only, with `key` applied.
    let u = alice.ok(&format!("/api/usage?{}&group_by=key", s.window));
    assert_eq!(u["totals"]["requests"], 6);
    assert_eq!(u["filters"]["key"], "alice");
    assert_eq!(u["groups"].as_array().unwrap().len(), 1);
    let mut hers = s.alice_plain_told;
    for ((who, _), (_, t)) in &s.sent {
        if *who == "alice" {
            hers.add(*t);
        }
    }
    assert_eq!(u["totals"]["cache_read"], hers.cache_read);
    assert_eq!(
        u["totals"]["cost_nanos"],
        json!({ "USD": hers.cost_nanos() })
    );

    // Requests: hers, not Bob's; Bob's row is as absent as a missing one.
    let list = alice.ok(&format!("/api/usage/requests?{}&limit=500", s.window));
    let got: HashSet<String> = ids(&list).into_iter().collect();
    let mut want: HashSet<String> = s
        .sent
        .iter()
        .filter(|((who, _), _)| *who == "alice")
        .flat_map(|(_, (ids, _))| ids.clone())
        .collect();
    want.insert(s.alice_plain.clone());
    assert_eq!(got, want);
    assert!(list["data"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["key_name"] == "alice"));
    let one = alice.ok(&format!("/api/usage/requests/{}", s.alice_plain));
    assert_eq!(one["key_name"], "alice");
    assert_eq!(one["session_id"], Value::Null);
    assert_eq!(
        alice
            .get(&format!("/api/usage/requests/{}", s.bob_any))
            .status,
        404
    );

    // Sessions: hers, newest last use first, with exact numbers.
    let sessions = alice.ok(&format!("/api/usage/sessions?{}", s.window));
    let data = sessions["data"].as_array().unwrap();
    let names: Vec<&str> = data
        .iter()
        .map(|d| d["session_id"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["sess-a2", "sess-a1"], "{sessions}");
    assert!(data.iter().all(|d| d["key"] == "alice"));
    s.sent[&("alice", "sess-a2")].1.matches(&data[0]);
    s.sent[&("alice", "sess-a1")].1.matches(&data[1]);
    let ts = |d: &Value, f: &str| d[f].as_i64().unwrap();
    assert!(ts(&data[0], "first_ts") < ts(&data[0], "last_ts"));
    assert!(ts(&data[1], "last_ts") < ts(&data[0], "first_ts"));
    assert!(data[0]["first_seen"].as_str().unwrap().ends_with('Z'));
    assert_eq!(sessions["has_more"], false);

    // A session's requests: hers alone, not Bob's under the same id.
    let a1 = alice.ok("/api/usage/sessions/sess-a1");
    let mut want = s.sent[&("alice", "sess-a1")].0.clone();
    want.reverse();
    assert_eq!(ids(&a1), want);
    assert_eq!(a1["session_id"], "sess-a1");
    for r in a1["data"].as_array().unwrap() {
        assert_eq!(r["session_id"], "sess-a1");
        // Present, as the request detail shows them (null: chosen by name).
        for f in ["routed_model", "routed_by", "scene"] {
            assert!(r.as_object().unwrap().contains_key(f), "{f}: {r}");
        }
    }
    assert_eq!(alice.get("/api/usage/sessions/sess-b1").status, 404);
}

#[test]
fn a_user_session_cannot_widen_its_filter_or_reach_other_endpoints() {
    let s = setup();
    let addr = s.gw.addr();
    let (alice, _) = log_in(addr, &s.alice_key);

    // Naming another key is refused, never answered with nothing.
    for path in [
        format!("/api/usage?{}&key=bob", s.window),
        format!("/api/usage/requests?{}&key=bob", s.window),
        format!("/api/usage/sessions?{}&key=bob", s.window),
        "/api/usage/sessions/sess-b1?key=bob".to_owned(),
        "/api/usage/export?key=bob".to_owned(),
        "/api/conversations?key=bob".to_owned(),
    ] {
        let r = alice.get(&path);
        assert_eq!(r.status, 403, "{path}: {}", r.text());
    }
    // Her own name is allowed, and is the same as none.
    let mine = alice.ok(&format!("/api/usage/sessions?{}&key=alice", s.window));
    assert_eq!(mine["data"].as_array().unwrap().len(), 2);
    // A second `key` does not slip past the first.
    let r = alice.get(&format!(
        "/api/usage/sessions?{}&key=alice&key=bob",
        s.window
    ));
    assert_eq!(r.status, 400, "{}", r.text());

    // Everything that is not her own data: 403.
    for path in [
        "/api/keys",
        "/api/keys/alice",
        "/api/providers",
        "/api/models",
        "/api/config",
        "/api/config/health",
        "/api/logs",
        "/api/stats",
        "/api/overview",
        "/api/sessions",
    ] {
        let r = alice.get(path);
        assert_eq!(r.status, 403, "{path}: {}", r.text());
    }
    // Nor any change, CSRF token and all.
    for (method, path, body) in [
        (
            "POST",
            "/api/keys",
            json!({"name": "mine", "roles": ["admin"]}),
        ),
        ("PATCH", "/api/keys/alice", json!({"roles": ["admin"]})),
        ("DELETE", "/api/keys/bob", json!(null)),
        ("PUT", "/api/config", json!({"text": ""})),
        ("PUT", "/api/models/sess/targets", json!({"targets": []})),
        ("DELETE", "/api/sessions/0123456789abcdef", json!(null)),
    ] {
        let r = alice.call(method, path, Some(&body));
        assert_eq!(r.status, 403, "{method} {path}: {}", r.text());
    }
    // Made a viewer, the key's session still sees only its own rows: a
    // new login is needed for the wider view.
    let up = with_key(
        addr,
        "PATCH",
        "/api/keys/alice",
        KEY,
        Some(&json!({"roles": ["user", "viewer"]})),
    );
    assert_eq!(up.status, 200, "{}", up.text());
    assert_eq!(alice.get("/api/keys").status, 403);
    assert_eq!(alice.ok("/api/session")["role"], "user");
    let r = alice.get(&format!("/api/usage/sessions?{}&key=bob", s.window));
    assert_eq!(r.status, 403, "{}", r.text());
    let (wider, v) = log_in(addr, &s.alice_key);
    assert_eq!(v["role"], "viewer");
    assert_eq!(wider.get("/api/keys").status, 200);

    // Disabling the key ends the session.
    let off = with_key(
        addr,
        "PATCH",
        "/api/keys/alice",
        KEY,
        Some(&json!({"enabled": false})),
    );
    assert_eq!(off.status, 200, "{}", off.text());
    assert_eq!(alice.get("/api/usage/sessions").status, 401);
    assert_eq!(alice.get("/api/session").status, 401);
}

#[test]
fn admins_and_viewers_see_every_session_and_may_filter_by_key() {
    let s = setup();
    let addr = s.gw.addr();
    let (viewer, v) = log_in(addr, VIEWER_KEY);
    assert_eq!(v["role"], "viewer");
    let all = viewer.ok(&format!("/api/usage/sessions?{}", s.window));
    let data = all["data"].as_array().unwrap();
    let got: Vec<(&str, &str)> = data
        .iter()
        .map(|d| {
            (
                d["key"].as_str().unwrap(),
                d["session_id"].as_str().unwrap(),
            )
        })
        .collect();
    // Newest last use first; one id under two keys is two sessions.
    assert_eq!(
        got,
        [
            ("alice", "sess-a2"),
            ("bob", "sess-a1"),
            ("bob", "sess-b1"),
            ("alice", "sess-a1"),
        ]
    );
    for d in data {
        let key = match d["key"].as_str().unwrap() {
            "alice" => "alice",
            _ => "bob",
        };
        let session = match d["session_id"].as_str().unwrap() {
            "sess-a1" => "sess-a1",
            "sess-a2" => "sess-a2",
            _ => "sess-b1",
        };
        s.sent[&(key, session)].1.matches(d);
    }
    let bob = viewer.ok(&format!("/api/usage/sessions?{}&key=bob", s.window));
    assert_eq!(bob["data"].as_array().unwrap().len(), 2);
    assert_eq!(bob["filters"]["key"], "bob");
    // The admin's session detail holds both keys' requests of one id.
    let a1 = with_key(addr, "GET", "/api/usage/sessions/sess-a1", KEY, None);
    assert_eq!(a1.status, 200, "{}", a1.text());
    assert_eq!(a1.json()["data"].as_array().unwrap().len(), 4);
    let a1 = with_key(
        addr,
        "GET",
        "/api/usage/sessions/sess-a1?key=bob",
        KEY,
        None,
    );
    assert_eq!(ids(&a1.json()), s.sent[&("bob", "sess-a1")].0);

    // Pages of one visit every session once, in the same order.
    let mut walked = Vec::new();
    let mut cursor = String::new();
    for _ in 0..10 {
        let p = viewer.ok(&format!(
            "/api/usage/sessions?{}&limit=1&cursor={cursor}",
            s.window
        ));
        let d = p["data"].as_array().unwrap();
        assert_eq!(d.len(), 1, "{p}");
        walked.push((
            d[0]["key"].as_str().unwrap().to_owned(),
            d[0]["session_id"].as_str().unwrap().to_owned(),
        ));
        if p["has_more"] == false {
            assert_eq!(p["next_cursor"], Value::Null);
            break;
        }
        cursor = p["next_cursor"].as_str().unwrap().to_owned();
    }
    let want: Vec<(String, String)> = got
        .iter()
        .map(|(k, s)| ((*k).to_owned(), (*s).to_owned()))
        .collect();
    assert_eq!(walked, want);
    let r = viewer.get("/api/usage/sessions?cursor=nonsense");
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.json()["error"]["param"], "cursor");
}
