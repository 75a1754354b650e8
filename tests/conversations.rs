//! The conversation log and the recent log lines over real sockets (issue
//! 12, item 4): a key with `log_conversations = true` has every request
//! written — the request as JSON, the answer assembled from a translated
//! stream, a translated body and a pass-through body, tool calls included —
//! while other keys have nothing written; no provider or client key ever
//! reaches the files; `/api/conversations` lists and fetches them with a
//! `user` key confined to its own; `/api/logs` finds a request's access
//! line by its id.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use serde_json::{json, Value};
use std::path::Path;
use std::time::Duration;

const LOGGED_KEY: &str = "sk-test-logged-user-key";
const BODY_SECRET: &str = "sk-body-secret-abcdefghijklmnop";

fn gateway(m: &Proc) -> LiveGateway {
    live_gateway(&config_text(m, false))
}

fn config_text(m: &Proc, global: bool) -> String {
    let mut c = config(
        m.addr,
        &[
            ("conv-oa", &[("openai", "mock")]),
            ("conv-an", &[("anthropic", "mock")]),
        ],
        "",
    );
    c.push_str(&format!(
        r#"
[[api_keys]]
key = "{LOGGED_KEY}"
name = "logged"
log_conversations = true

[logging]
conversations = {global}
"#
    ));
    c
}

/// Every line of every conversation file, oldest file first.
fn lines(dir: &Path) -> Vec<Value> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut paths: Vec<_> = entries.map(|e| e.unwrap().path()).collect();
    paths.sort();
    paths
        .iter()
        .flat_map(|p| {
            std::fs::read_to_string(p)
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str::<Value>(l).unwrap())
                .collect::<Vec<_>>()
        })
        .collect()
}

fn get(addr: std::net::SocketAddr, path: &str, key: &str) -> Response {
    let auth = format!("Bearer {key}");
    request(addr, "GET", path, &[("Authorization", &auth)], b"")
}

fn weather_tool_anthropic() -> Value {
    json!([{"name": "get_weather", "description": "weather",
            "input_schema": {"type": "object", "properties": {"location": {"type": "string"}}}}])
}

fn weather_tool_openai() -> Value {
    json!([{"type": "function", "function": {"name": "get_weather", "description": "weather",
            "parameters": {"type": "object", "properties": {"location": {"type": "string"}}}}}])
}

#[test]
fn conversations_are_logged_per_key_assembled_and_served_to_their_owners() {
    let m = mock();
    let gw = gateway(&m);
    let addr = gw.addr();
    let dir = gw.dir.join("conversations");

    // 1. Anthropic client, OpenAI upstream, streamed, with tool calls.
    let streamed = request(
        addr,
        "POST",
        "/v1/messages",
        &[
            ("x-api-key", LOGGED_KEY),
            ("anthropic-version", "2023-06-01"),
            ("content-type", "application/json"),
        ],
        json!({"model": "conv-oa", "max_tokens": 100, "stream": true,
               "messages": [{"role": "user", "content": "stream the weather"}],
               "tools": weather_tool_anthropic()})
        .to_string()
        .as_bytes(),
    );
    assert_eq!(streamed.status, 200, "{}", streamed.text());
    assert!(streamed
        .events()
        .iter()
        .any(|(name, _)| name == "message_stop"));
    let streamed_id = streamed.header("x-request-id").unwrap().to_owned();

    // 2. OpenAI client, Anthropic upstream, unary, with tool calls.
    let unary = post_json(
        addr,
        "/v1/chat/completions",
        LOGGED_KEY,
        &json!({"model": "conv-an", "messages": [{"role": "user", "content": "unary weather"}],
                "tools": weather_tool_openai()}),
    );
    assert_eq!(unary.status, 200, "{}", unary.text());
    let unary_id = unary.header("x-request-id").unwrap().to_owned();

    // 3. Same dialect, passed through, with a secret in the body.
    let passed = post_json(
        addr,
        "/v1/chat/completions",
        LOGGED_KEY,
        &json!({"model": "oa", "api_key": BODY_SECRET,
                "messages": [{"role": "user", "content": "just text"}]}),
    );
    assert_eq!(passed.status, 200, "{}", passed.text());
    let passed_id = passed.header("x-request-id").unwrap().to_owned();

    // Keys without the setting: not logged.
    let body = json!({"model": "oa", "messages": [{"role": "user", "content": "not me"}]});
    let admin = post_json(addr, "/v1/chat/completions", KEY, &body);
    let limited = post_json(addr, "/v1/chat/completions", LIMITED_KEY, &body);
    assert_eq!((admin.status, limited.status), (200, 200));

    assert!(
        wait_until(Duration::from_secs(10), || lines(&dir).len() >= 3),
        "three lines written: {:?}",
        lines(&dir)
    );
    // The writer had time for the two unlogged ones too: there are none.
    std::thread::sleep(Duration::from_millis(500));
    let logged = lines(&dir);
    assert_eq!(logged.len(), 3, "{logged:#?}");
    let by_id = |id: &str| -> &Value {
        logged
            .iter()
            .find(|l| l["request_id"] == id)
            .unwrap_or_else(|| panic!("{id} not logged"))
    };
    assert!(logged.iter().all(|l| l["key"] == "logged"));

    let s = by_id(&streamed_id);
    assert_eq!(s["dialect"], "anthropic");
    assert_eq!(s["model"], "conv-oa");
    assert_eq!(
        (&s["provider"], &s["upstream_model"]),
        (&json!("openai"), &json!("mock"))
    );
    assert_eq!(s["stream"], true);
    assert_eq!(s["status"], 200);
    assert_eq!(s["preview"], "stream the weather");
    assert_eq!(s["request"]["messages"][0]["content"], "stream the weather");
    let calls = s["response"]["tool_calls"].as_array().unwrap();
    assert_eq!(calls.len(), 2, "{s:#}");
    assert!(calls.iter().all(|c| c["name"] == "get_weather"));
    assert!(calls[0]["arguments"]["location"].is_string(), "{s:#}");
    assert_eq!(s["response"]["finish"], "tool_calls");

    let u = by_id(&unary_id);
    assert_eq!(u["dialect"], "openai");
    assert_eq!(u["provider"], "anthropic");
    assert_eq!(u["stream"], false);
    let calls = u["response"]["tool_calls"].as_array().unwrap();
    assert_eq!(calls.len(), 2, "{u:#}");
    assert_eq!(calls[0]["id"], "toolu_mock0");
    assert!(calls[1]["arguments"]["location"].is_string());

    let p = by_id(&passed_id);
    assert_eq!(p["provider"], "openai");
    assert!(p["response"]["text"]
        .as_str()
        .unwrap()
        .starts_with("Hello from the mock upstream! You said: just text"));
    assert_eq!(p["request"]["api_key"], "[redacted]");
    assert!(p["usage"]["input"].as_u64().unwrap() > 0);

    // No key of any kind reached the files.
    for f in std::fs::read_dir(&dir).unwrap() {
        let text = std::fs::read_to_string(f.unwrap().path()).unwrap();
        for secret in [
            UPSTREAM_OPENAI_KEY,
            UPSTREAM_ANTHROPIC_KEY,
            KEY,
            LIMITED_KEY,
            LOGGED_KEY,
            BODY_SECRET,
        ] {
            assert!(!text.contains(secret), "{secret} in the conversation log");
        }
    }

    // Listing: admins see all, newest first; the owner sees its own.
    let listed = get(addr, "/api/conversations", KEY);
    assert_eq!(listed.status, 200, "{}", listed.text());
    let items = listed.json()["conversations"].as_array().unwrap().clone();
    let ids: Vec<&str> = items
        .iter()
        .map(|i| i["request_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 3);
    assert_eq!(ids[2], streamed_id, "oldest last: {ids:?}");
    assert!(ids.contains(&unary_id.as_str()) && ids.contains(&passed_id.as_str()));
    let first_listed = items
        .iter()
        .find(|i| i["request_id"] == streamed_id)
        .unwrap();
    assert_eq!(first_listed["preview"], "stream the weather");
    assert_eq!(first_listed["key"], "logged");
    let own = get(addr, "/api/conversations?limit=2", LOGGED_KEY);
    assert_eq!(own.status, 200);
    assert_eq!(own.json()["conversations"].as_array().unwrap().len(), 2);
    assert_eq!(
        get(addr, "/api/conversations?key=admin", LOGGED_KEY).status,
        403
    );
    // A user key without conversations sees an empty list, not others'.
    let none = get(addr, "/api/conversations", LIMITED_KEY);
    assert_eq!(none.status, 200);
    assert_eq!(none.json()["conversations"], json!([]));
    let future = get(addr, "/api/conversations?from=2999-01-01T00:00:00Z", KEY);
    assert_eq!(future.json()["conversations"], json!([]));

    // Fetching one: the whole line, to its owner and to admins only.
    let fetched = get(addr, &format!("/api/conversations/{unary_id}"), KEY);
    assert_eq!(fetched.status, 200, "{}", fetched.text());
    assert_eq!(fetched.json(), *u);
    assert_eq!(
        get(addr, &format!("/api/conversations/{unary_id}"), LOGGED_KEY).status,
        200
    );
    // Another key's is not found, as an unknown id is (nothing learned).
    let foreign = get(addr, &format!("/api/conversations/{unary_id}"), LIMITED_KEY);
    assert_eq!(foreign.status, 404, "{}", foreign.text());
    assert_eq!(get(addr, "/api/conversations/req_nothing", KEY).status, 404);

    // The access line of a request, by its id; viewers and admins only.
    let admin_id = admin.header("x-request-id").unwrap();
    let found = wait_until(Duration::from_secs(5), || {
        let r = get(addr, &format!("/api/logs?request_id={admin_id}"), KEY);
        r.json()["lines"].as_array().unwrap().iter().any(|l| {
            let m = l["message"].as_str().unwrap();
            l["key"] == "admin" && m.starts_with(admin_id) && m.contains("status=200")
        })
    });
    assert!(found, "the access line of {admin_id} is in /api/logs");
    let by_key = get(addr, "/api/logs?key=logged&limit=1000", KEY).json();
    let of_logged = by_key["lines"].as_array().unwrap();
    assert!(of_logged.len() >= 3, "{by_key:#}");
    assert!(of_logged.iter().all(|l| l["key"] == "logged"));
    let warnings = get(addr, "/api/logs?level=warn", KEY).json();
    assert!(warnings["lines"]
        .as_array()
        .unwrap()
        .iter()
        .all(|l| l["level"] == "WARN" || l["level"] == "ERROR"));
    assert_eq!(get(addr, "/api/logs", LIMITED_KEY).status, 403);
    assert_eq!(get(addr, "/api/logs?limit=0", KEY).status, 400);

    // The global setting reloads: the admin key's requests are logged now.
    let mark = gw.log_mark();
    gw.replace_file(&config_text(&m, true));
    assert!(gw.wait_for_log(mark, "config reloaded", Duration::from_secs(5)));
    let later = post_json(addr, "/v1/chat/completions", KEY, &body);
    let later_id = later.header("x-request-id").unwrap().to_owned();
    assert!(
        wait_until(Duration::from_secs(5), || lines(&dir)
            .iter()
            .any(|l| l["request_id"] == later_id && l["key"] == "admin")),
        "logged after the reload"
    );
}

/// Global on, one key off: the key's own setting wins; and a request
/// answered just before SIGTERM is in the file once the process has ended
/// (the writer polls; the exit flush writes what it had not taken yet).
#[test]
fn the_global_setting_yields_to_a_key_and_exit_writes_what_is_queued() {
    let m = mock();
    let mut c = config(m.addr, &[], "");
    c.push_str(&format!(
        r#"
[[api_keys]]
key = "{LOGGED_KEY}"
name = "quiet"
log_conversations = false

[logging]
conversations = true
dir = "logs/conv"
"#
    ));
    let mut gw = live_gateway(&c);
    let addr = gw.addr();
    let body = json!({"model": "oa", "messages": [{"role": "user", "content": "bye"}]});
    let quiet = post_json(addr, "/v1/chat/completions", LOGGED_KEY, &body);
    let admin = post_json(addr, "/v1/chat/completions", KEY, &body);
    assert_eq!((quiet.status, admin.status), (200, 200));
    // A runtime key sets it through the admin API, created and edited.
    let created = post_json(
        addr,
        "/api/keys",
        KEY,
        &json!({"name": "runtime", "log_conversations": false}),
    );
    assert_eq!(created.status, 201, "{}", created.text());
    assert_eq!(created.json()["log_conversations"], false);
    let runtime_key = created.json()["key"].as_str().unwrap().to_owned();
    let first = post_json(addr, "/v1/chat/completions", &runtime_key, &body);
    assert_eq!(first.status, 200);
    let auth = format!("Bearer {KEY}");
    let patched = request(
        addr,
        "PATCH",
        "/api/keys/runtime",
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        br#"{"log_conversations": true}"#,
    );
    assert_eq!(patched.status, 200, "{}", patched.text());
    let second = post_json(addr, "/v1/chat/completions", &runtime_key, &body);
    assert_eq!(second.status, 200);
    let status = std::process::Command::new("kill")
        .args(["-TERM", &gw.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert!(
        wait_until(Duration::from_secs(10), || gw.proc.try_wait().is_some()),
        "the gateway exits"
    );
    let logged = lines(&gw.dir.join("logs/conv"));
    assert_eq!(logged.len(), 2, "{logged:#?}");
    assert_eq!(logged[0]["key"], "admin");
    assert_eq!(
        logged[0]["request_id"],
        admin.header("x-request-id").unwrap()
    );
    assert_eq!(logged[0]["preview"], "bye");
    assert_eq!(logged[1]["key"], "runtime");
    assert_eq!(
        logged[1]["request_id"],
        second.header("x-request-id").unwrap()
    );
    let files = std::fs::read_dir(gw.dir.join("logs/conv")).unwrap();
    for f in files {
        let text = std::fs::read_to_string(f.unwrap().path()).unwrap();
        assert!(!text.contains(&runtime_key) && !text.contains(LOGGED_KEY));
    }
}
