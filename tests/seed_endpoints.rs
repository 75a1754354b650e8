//! The endpoints earlier gateways exposed, over real sockets (issue 14):
//! `POST /v1/models/{model}/test`, `GET /v1/health`,
//! `GET /api/config/health`, `GET /v1/api-keys/stats`, and Claude Code's
//! `…/api/v1/claude-code` base URL as one more Anthropic Messages entry.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::time::Duration;

const VIEWER_KEY: &str = "sk-test-viewer-key";
/// A user key allowed `oa` only, one request a minute.
const RPM_KEY: &str = "sk-test-one-a-minute";

fn config_text(m: SocketAddr, extra: &str) -> String {
    let mut c = config(
        m,
        &[
            (
                "chain",
                &[("openai", "mock;status=503"), ("anthropic", "mock")],
            ),
            (
                "broken",
                &[
                    ("openai", "mock;status=503"),
                    ("anthropic", "mock;status=500"),
                ],
            ),
            ("an", &[("anthropic", "mock")]),
        ],
        "",
    );
    c.push_str(&format!(
        "\n[[api_keys]]\nkey = \"{VIEWER_KEY}\"\nname = \"viewer\"\nroles = [\"viewer\"]\n\
         \n[[api_keys]]\nkey = \"{RPM_KEY}\"\nname = \"rpm\"\nallowed_models = [\"oa\"]\nlimits = {{ rpm = 1 }}\n{extra}"
    ));
    c
}

fn get(addr: SocketAddr, path: &str, key: &str) -> Response {
    api_call(addr, "GET", path, key, None)
}

fn test_model(addr: SocketAddr, model: &str, key: &str, body: Option<&Value>) -> Response {
    api_call(addr, "POST", &format!("/v1/models/{model}/test"), key, body)
}

/// An OpenAI error object with this status.
fn assert_openai_error(r: &Response, status: u16) {
    assert_eq!(r.status, status, "{}", r.text());
    let v = r.json();
    assert!(v["error"]["message"].is_string(), "{v}");
    assert!(v["error"]["type"].is_string(), "{v}");
}

// ------------------------------------------------------------- model test

#[test]
fn a_model_test_reports_every_target_up_to_the_one_that_answers() {
    let m = mock();
    let g = gateway(&config_text(m.addr, ""));
    let r = test_model(
        g.addr,
        "chain",
        KEY,
        Some(&json!({"test_message": "seed-echo-42"})),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["model"], "chain");
    assert_eq!(v["success"], true);
    assert_eq!(
        v["served_by"],
        json!({"provider": "anthropic", "model": "mock"})
    );
    let results = v["results"].as_array().unwrap();
    assert_eq!(results.len(), 2, "{v}");
    assert_eq!(results[0]["provider"], "openai");
    assert_eq!(results[0]["model"], "mock;status=503");
    assert_eq!(results[0]["success"], false);
    assert_eq!(results[0]["status"], 503);
    assert_eq!(results[0]["response"], Value::Null);
    assert!(results[0]["error"].as_str().unwrap().contains("503"), "{v}");
    assert_eq!(results[1]["success"], true);
    assert_eq!(results[1]["status"], 200);
    assert_eq!(results[1]["error"], Value::Null);
    assert!(results[1]["latency_ms"].is_u64());
    // The mock quotes what it was sent: the message reached the upstream.
    assert!(
        results[1]["response"]
            .as_str()
            .unwrap()
            .contains("seed-echo-42"),
        "{v}"
    );
    // No body: the default tiny message.
    let r = test_model(g.addr, "oa", KEY, None);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["success"], true);
    assert!(r.json()["results"][0]["response"]
        .as_str()
        .unwrap()
        .contains("OK"));
}

#[test]
fn a_chain_where_every_target_fails_is_still_a_200_with_each_error() {
    let m = mock();
    let g = gateway(&config_text(m.addr, ""));
    let r = test_model(g.addr, "broken", KEY, Some(&json!({"test_message": "x"})));
    assert_eq!(r.status, 200, "the test ran: {}", r.text());
    let v = r.json();
    assert_eq!(v["success"], false);
    assert_eq!(v["served_by"], Value::Null);
    let statuses: Vec<&Value> = v["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| &t["status"])
        .collect();
    assert_eq!(statuses, [&json!(503), &json!(500)], "{v}");
    assert!(v["results"]
        .as_array()
        .unwrap()
        .iter()
        .all(|t| t["success"] == false && t["error"].is_string()));
}

#[test]
fn model_test_refusals_are_openai_errors() {
    let m = mock();
    let g = gateway(&config_text(m.addr, ""));
    let unknown = test_model(g.addr, "nope", KEY, None);
    assert_openai_error(&unknown, 404);
    assert_eq!(unknown.json()["error"]["code"], "model_not_found");
    // Admin keys only: a user key, even for a model it may use, and a
    // viewer get 403; a wrong key is a 401.
    assert_openai_error(&test_model(g.addr, "oa", LIMITED_KEY, None), 403);
    assert_openai_error(&test_model(g.addr, "chain", LIMITED_KEY, None), 403);
    assert_openai_error(&test_model(g.addr, "oa", VIEWER_KEY, None), 403);
    assert_openai_error(&test_model(g.addr, "oa", "sk-nobody", None), 401);
    // A body that is not the test's.
    assert_openai_error(
        &test_model(g.addr, "oa", KEY, Some(&json!({"test_message": 3}))),
        400,
    );
    // A test message is tiny, not a prompt sent past every limit.
    let long = "x".repeat(8 * 1024 + 1);
    assert_openai_error(
        &test_model(g.addr, "oa", KEY, Some(&json!({"test_message": long}))),
        400,
    );
    // The model's own path still answers GET; the test's does not.
    assert_eq!(get(g.addr, "/v1/models/chain", KEY).json()["id"], "chain");
    assert_openai_error(&get(g.addr, "/v1/models/chain/test", KEY), 405);
}

#[test]
fn a_refused_user_key_spends_none_of_its_limits() {
    let m = mock();
    let g = gateway(&config_text(m.addr, ""));
    // One request a minute: the refused test is not that request.
    assert_openai_error(&test_model(g.addr, "oa", RPM_KEY, None), 403);
    let chat = api_call(
        g.addr,
        "POST",
        "/v1/chat/completions",
        RPM_KEY,
        Some(&json!({"model": "oa", "messages": [{"role": "user", "content": "hi"}]})),
    );
    assert_eq!(chat.status, 200, "{}", chat.text());
}

// ---------------------------------------------------------------- health

fn health_checked(m: SocketAddr, checked: SocketAddr) -> String {
    let mut c = config_text(m, "");
    c.push_str(&format!(
        r#"
[[providers]]
name = "checked-secret-name"
type = "openai"
base_url = "http://{checked}/v1"
health_check = {{ path = "/health", interval = "100ms", timeout = "200ms", unhealthy_threshold = 1 }}

[[providers]]
name = "flaky"
type = "openai"
base_url = "http://{m}/v1"
breaker = {{ consecutive_failures = 1, cooldown = "60s" }}

[[models]]
name = "flaky"
targets = [{{ provider = "flaky", model = "mock;status=500" }}]
"#
    ));
    c
}

#[test]
fn v1_health_is_open_counts_providers_and_degrades_without_naming_them() {
    let m = mock();
    let checked = mock();
    let g = gateway(&health_checked(m.addr, checked.addr));
    let total = 6; // openai, anthropic, anthropic-2, dead + the two above
    let healthy = |g: SocketAddr| request(g, "GET", "/v1/health", &[], b"").json();
    let v = healthy(g.addr);
    assert_eq!(v["status"], "ok", "{v}");
    assert_eq!(v["providers"], json!({"total": total, "healthy": total}));
    assert!(v["version"].is_string() && v["uptime_seconds"].is_u64());
    let head = request(g.addr, "HEAD", "/v1/health", &[], b"");
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());

    // The checked provider's only replica goes away.
    let checked_addr = checked.addr;
    drop(checked);
    assert!(
        wait_until(Duration::from_secs(5), || healthy(g.addr)["status"]
            == "degraded"),
        "{}",
        healthy(g.addr)
    );
    let r = request(g.addr, "GET", "/v1/health", &[], b"");
    assert_eq!(r.status, 200, "degraded still answers 200");
    assert_eq!(r.json()["providers"]["healthy"], total - 1);
    for leak in [
        "checked-secret-name",
        &checked_addr.to_string(),
        "127.0.0.1",
    ] {
        assert!(!r.text().contains(leak), "{leak} in {}", r.text());
    }
    // An open breaker makes a provider unhealthy too.
    let chat = post_json(
        g.addr,
        "/v1/chat/completions",
        KEY,
        &json!({"model": "flaky", "messages": [{"role": "user", "content": "x"}]}),
    );
    assert!(chat.status >= 500, "{}", chat.text());
    assert_eq!(healthy(g.addr)["providers"]["healthy"], total - 2);

    // The admin view names them.
    let c = get(g.addr, "/api/config/health", VIEWER_KEY);
    assert_eq!(c.status, 200, "{}", c.text());
    let v = c.json();
    assert_eq!(v["status"], "degraded");
    let provider = |name: &str| {
        v["providers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("no {name} in {v}"))
            .clone()
    };
    let checked = provider("checked-secret-name");
    assert_eq!(checked["healthy"], false);
    assert_eq!(checked["replicas"], json!({"healthy": 0, "total": 1}));
    let flaky = provider("flaky");
    assert_eq!(flaky["healthy"], false);
    assert_eq!(
        flaky["targets"],
        json!([{"model": "mock;status=500", "breaker": "open"}])
    );
    let openai = provider("openai");
    assert_eq!(openai["healthy"], true);
    assert_eq!(openai["replicas"], Value::Null);
    assert!(openai["targets"]
        .as_array()
        .unwrap()
        .iter()
        .all(|t| t["breaker"] == "closed"));
}

#[test]
fn config_health_is_for_admins_and_viewers_and_shows_a_failed_reload() {
    let m = mock();
    let text = config_text(m.addr, "");
    let gw = live_gateway(&text);
    assert_openai_error(&get(gw.addr(), "/api/config/health", LIMITED_KEY), 403);
    assert_openai_error(&get(gw.addr(), "/api/config/health", "sk-nobody"), 401);
    assert_eq!(
        api_call(gw.addr(), "POST", "/api/config/health", KEY, None).status,
        405
    );
    let v = get(gw.addr(), "/api/config/health", VIEWER_KEY).json();
    assert_eq!(
        v["path"],
        std::path::absolute(&gw.path).unwrap().display().to_string()
    );
    assert!(v["loaded_at"].as_u64().unwrap() > 1_700_000_000);
    assert_eq!(v["last_reload"], Value::Null);
    assert_eq!(v["status"], "ok");

    // A broken file: the running config stays, the error is shown.
    let mark = gw.log_mark();
    let broken = text.replacen("type = \"openai\"", "type = \"nonsense\"", 1);
    gw.replace_file(&broken);
    assert!(
        gw.wait_for_log(mark, "config reload failed", Duration::from_secs(5)),
        "{}",
        gw.log_since(mark)
    );
    let v = get(gw.addr(), "/api/config/health", KEY).json();
    let last = &v["last_reload"];
    assert_eq!(last["ok"], false, "{v}");
    assert_eq!(last["trigger"], "file changed");
    assert!(
        last["error"]
            .as_str()
            .unwrap()
            .contains("providers[0].type"),
        "{v}"
    );
    assert_eq!(last["issues"][0]["path"], "providers[0].type", "{v}");
    let chat = post_json(
        gw.addr(),
        "/v1/chat/completions",
        KEY,
        &json!({"model": "oa", "messages": [{"role": "user", "content": "still here"}]}),
    );
    assert_eq!(chat.status, 200, "{}", chat.text());

    // Fixed: published, and the load time moves.
    let loaded = v["loaded_at"].as_u64().unwrap();
    let mark = gw.log_mark();
    gw.replace_file(&format!("# fixed\n{text}"));
    assert!(gw.wait_for_log(mark, "config reloaded", Duration::from_secs(5)));
    let v = get(gw.addr(), "/api/config/health", KEY).json();
    assert_eq!(v["last_reload"]["ok"], true, "{v}");
    assert_eq!(v["last_reload"]["error"], Value::Null);
    assert!(v["loaded_at"].as_u64().unwrap() >= loaded);
}

// ------------------------------------------------------------ key stats

#[test]
fn v1_api_key_stats_has_a_success_rate_per_masked_key() {
    let m = mock();
    let mut c = config(
        m.addr,
        &[(
            "rl",
            &[(
                "pool",
                "m-rl;fail_key=sk-pool-key-one;fail_status=429;retry_after=60",
            )],
        )],
        "",
    );
    c.push_str(&format!(
        "\n[[providers]]\nname = \"pool\"\ntype = \"openai\"\nbase_url = \"http://{}/v1\"\n\
         api_keys = [\"sk-pool-key-one\", \"sk-pool-key-two\"]\nkey_cooldown = \"60s\"\n\
         \n[[api_keys]]\nkey = \"{VIEWER_KEY}\"\nname = \"viewer\"\nroles = [\"viewer\"]\n",
        m.addr
    ));
    let g = gateway(&c);
    // Key one is refused (429), key two answers: one failure, one success.
    let r = post_json(
        g.addr,
        "/v1/chat/completions",
        KEY,
        &json!({"model": "rl", "messages": [{"role": "user", "content": "x"}]}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let v1 = get(g.addr, "/v1/api-keys/stats", KEY);
    assert_eq!(v1.status, 200, "{}", v1.text());
    let keys = |v: &Value, name: &str| {
        v["providers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["provider"] == name)
            .unwrap()["keys"]
            .clone()
    };
    let pool = keys(&v1.json(), "pool");
    assert_eq!(pool[0]["key"], "***-one");
    assert_eq!(
        (&pool[0]["failures"], &pool[0]["success_rate"]),
        (&json!(1), &json!(0.0))
    );
    assert_eq!(
        (&pool[1]["successes"], &pool[1]["success_rate"]),
        (&json!(1), &json!(1.0))
    );
    assert_eq!(
        keys(&v1.json(), "anthropic")[0]["success_rate"],
        Value::Null
    );
    assert!(!v1.text().contains("sk-pool-key"), "masked only");
    // Both paths agree.
    let api = get(g.addr, "/api/upstream-keys/stats", KEY);
    let rates = |keys: &Value| -> Vec<Value> {
        keys.as_array()
            .unwrap()
            .iter()
            .map(|k| json!([k["key"], k["successes"], k["failures"], k["success_rate"]]))
            .collect()
    };
    assert_eq!(rates(&keys(&api.json(), "pool")), rates(&pool));
    // The same roles: admins only.
    assert_openai_error(&get(g.addr, "/v1/api-keys/stats", VIEWER_KEY), 403);
    assert_openai_error(&get(g.addr, "/v1/api-keys/stats", LIMITED_KEY), 403);
}

// ----------------------------------------------------------- claude code

fn messages(stream: bool) -> Value {
    json!({"model": "an", "max_tokens": 64, "stream": stream,
           "messages": [{"role": "user", "content": "hi there"}]})
}

fn claude_post(addr: SocketAddr, path: &str, body: &Value) -> Response {
    request(
        addr,
        "POST",
        path,
        &[
            ("x-api-key", KEY),
            ("anthropic-version", "2023-06-01"),
            ("content-type", "application/json"),
        ],
        body.to_string().as_bytes(),
    )
}

/// Both spellings of the entry, unary and streaming, and token counting.
fn assert_claude_code_paths(addr: SocketAddr) {
    for base in ["/api/v1/claude-code", "/api/v1/claude-code/v1"] {
        let r = claude_post(
            addr,
            &format!("{base}/messages?beta=true"),
            &messages(false),
        );
        assert_eq!(r.status, 200, "{base}: {}", r.text());
        let v = r.json();
        assert_eq!(v["type"], "message", "{v}");
        assert!(v["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("You said: hi there"));

        let r = claude_post(addr, &format!("{base}/messages"), &messages(true));
        assert_eq!(r.status, 200, "{base}: {}", r.text());
        assert!(r
            .header("content-type")
            .unwrap()
            .starts_with("text/event-stream"));
        let names: Vec<String> = r.events().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names.first().map(String::as_str), Some("message_start"));
        assert_eq!(names.last().map(String::as_str), Some("message_stop"));
        assert!(
            names.iter().any(|n| n == "content_block_delta"),
            "{names:?}"
        );

        let r = claude_post(
            addr,
            &format!("{base}/messages/count_tokens"),
            &json!({"model": "an", "messages": [{"role": "user", "content": "hi there"}]}),
        );
        assert_eq!(r.status, 200, "{base}: {}", r.text());
        assert!(r.json()["input_tokens"].as_u64().unwrap() > 0);
    }
    // Errors speak Anthropic's dialect there.
    let r = claude_post(
        addr,
        "/api/v1/claude-code/v1/messages",
        &json!({"model": "nope", "max_tokens": 8, "messages": [{"role": "user", "content": "x"}]}),
    );
    assert_eq!(r.status, 404, "{}", r.text());
    assert_eq!(r.json()["type"], "error");
}

#[test]
fn claude_code_base_url_is_an_anthropic_messages_entry() {
    let m = mock();
    let g = gateway(&config_text(m.addr, ""));
    assert_claude_code_paths(g.addr);
    let r = request(g.addr, "GET", "/api/v1/claude-code/v1/messages", &[], b"");
    assert_eq!(r.status, 405);
    assert_eq!(r.json()["type"], "error", "Anthropic's error shape");
}

#[test]
fn with_an_admin_listener_claude_code_stays_on_the_llm_listener() {
    let m = mock();
    let admin = free_addr();
    let g = gateway(&config_text(
        m.addr,
        &format!("\n[admin]\nlisten = \"{admin}\"\n"),
    ));
    assert!(wait_until(Duration::from_secs(5), || {
        std::net::TcpStream::connect(admin).is_ok()
    }));
    assert_claude_code_paths(g.addr);
    let r = claude_post(admin, "/api/v1/claude-code/v1/messages", &messages(false));
    assert_eq!(r.status, 404, "not on the admin listener: {}", r.text());
    // The model test is LLM traffic; the statistics and config health are
    // the admin plane's; health answers on both.
    assert_eq!(test_model(g.addr, "oa", KEY, None).status, 200);
    assert_eq!(test_model(admin, "oa", KEY, None).status, 404);
    assert_eq!(get(g.addr, "/v1/api-keys/stats", KEY).status, 404);
    assert_eq!(get(admin, "/v1/api-keys/stats", KEY).status, 200);
    assert_eq!(get(g.addr, "/api/config/health", KEY).status, 404);
    assert_eq!(get(admin, "/api/config/health", KEY).status, 200);
    for addr in [g.addr, admin] {
        assert_eq!(request(addr, "GET", "/v1/health", &[], b"").status, 200);
    }
}
