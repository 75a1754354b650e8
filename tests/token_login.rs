//! Token-login providers over real sockets: the mock upstream's login
//! (`POST /login`, `src/bin/mock_upstream/login.rs`) hands out `tok-N`, and
//! models with `login=1` answer 401 without a live one. Checked at the
//! mock: how many logins, which token each call carried, how many calls
//! were refused; and at the gateway: its log and its errors never hold the
//! username, the password or a token.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::time::Duration;

const USER: &str = "svc-llm-user-7f3a";
const PASSWORD: &str = "pw-s3cr3t-91b2c4";
const WRONG_PASSWORD: &str = "pw-wrong-5e6f0a";

fn login_mock() -> Proc {
    mock_with(&["--login-user", USER, "--login-password", PASSWORD])
}

/// `sso`: a login provider (its login answers after `delay_ms`, tokens
/// live `ttl` s); `sso-x`: the same login, token sent as `X-Token: Token
/// …`; `bad`: a wrong password; `fixed`: `auth.token`; `custom`: an
/// `api_key` in `X-Token`. Models: `chat` (gated by the token), `chat-x`,
/// `bad`, `fixed`, `custom`.
fn config(mock: SocketAddr, login_query: &str) -> String {
    format!(
        r#"
[server]
listen = "LISTEN"
threads = 4
first_event_timeout = "5s"
idle_timeout = "2s"
connect_timeout = "1s"

[[providers]]
name = "sso"
type = "openai"
base_url = "http://{mock}/v1"
auth = {{ login_url = "http://{mock}/login?{login_query}", username = "{USER}", password = "{PASSWORD}", token_path = "data.token" }}

[[providers]]
name = "sso-x"
type = "openai"
base_url = "http://{mock}/v1"
auth = {{ login_url = "http://{mock}/auth/login", username = "{USER}", password = "{PASSWORD}", token_path = "data.token", header = "X-Token", format = "Token {{token}}" }}

# The same login as `sso`, over HTTP/2: the same token.
[[providers]]
name = "sso-h2"
type = "openai"
base_url = "http://{mock}/v1"
http2 = true
auth = {{ login_url = "http://{mock}/login?{login_query}", username = "{USER}", password = "{PASSWORD}", token_path = "data.token" }}

[[providers]]
name = "bad"
type = "openai"
base_url = "http://{mock}/v1"
auth = {{ login_url = "http://{mock}/login", username = "{USER}", password = "{WRONG_PASSWORD}", token_path = "data.token" }}

[[providers]]
name = "fixed"
type = "openai"
base_url = "http://{mock}/v1"
auth = {{ token = "fixed-tok-0123456789" }}

[[providers]]
name = "custom"
type = "openai"
base_url = "http://{mock}/v1"
api_key = "sk-custom-0123456789"
auth = {{ header = "X-Token", format = "Token {{key}}" }}

[[api_keys]]
key = "{KEY}"
name = "admin"
roles = ["admin"]

[[models]]
name = "chat"
targets = [{{ provider = "sso", model = "mock;login=1" }}]

[[models]]
name = "chat-h2"
targets = [{{ provider = "sso-h2", model = "mock;login=1;via=h2" }}]

[[models]]
name = "chat-x"
targets = [{{ provider = "sso-x", model = "mock;via=x" }}]

[[models]]
name = "bad"
targets = [{{ provider = "bad", model = "mock;login=1;via=bad" }}]

[[models]]
name = "fixed"
targets = [{{ provider = "fixed", model = "mock;via=fixed" }}]

[[models]]
name = "custom"
targets = [{{ provider = "custom", model = "mock;via=custom" }}]
"#
    )
}

fn chat(gw: SocketAddr, model: &str) -> Response {
    post_json(
        gw,
        "/v1/chat/completions",
        KEY,
        &json!({"model": model, "messages": [{"role": "user", "content": "hello"}]}),
    )
}

fn login_stats(mock: SocketAddr) -> Value {
    mock_stats(mock)["login"].clone()
}

fn post(mock: SocketAddr, path: &str) {
    assert_eq!(request(mock, "POST", path, &[], b"").status, 200, "{path}");
}

#[test]
fn the_first_call_logs_in_and_carries_the_token() {
    let mock = login_mock();
    let gw = gateway(&config(mock.addr, "ttl=3600"));
    let r = chat(gw.addr, "chat");
    assert_eq!(r.status, 200, "{}", r.text());
    let stats = mock_stats(mock.addr);
    assert_eq!(stats["login"]["logins"], 1);
    assert_eq!(
        stats["last"]["mock;login=1"]["authorization"],
        "Bearer tok-1"
    );
    // The next calls reuse it.
    for _ in 0..3 {
        assert_eq!(chat(gw.addr, "chat").status, 200);
    }
    let login = login_stats(mock.addr);
    assert_eq!(login["logins"], 1);
    assert_eq!(login["calls"]["tok-1"], 4);
    assert_eq!(login["rejected"], 0);
}

#[test]
fn sixteen_concurrent_first_calls_share_one_login() {
    let mock = login_mock();
    // The login takes 300 ms: every call arrives while it runs.
    let gw = gateway(&config(mock.addr, "delay_ms=300"));
    let addr = gw.addr;
    let calls: Vec<_> = (0..16)
        .map(|_| std::thread::spawn(move || chat(addr, "chat").status))
        .collect();
    for c in calls {
        assert_eq!(c.join().unwrap(), 200);
    }
    let login = login_stats(mock.addr);
    assert_eq!(login["logins"], 1, "{login}");
    assert_eq!(login["calls"]["tok-1"], 16, "{login}");
    assert_eq!(login["rejected"], 0, "{login}");
}

#[test]
fn a_401_logs_in_again_once_and_a_second_401_is_the_answer() {
    let mock = login_mock();
    let gw = gateway(&config(mock.addr, "ttl=3600"));
    assert_eq!(chat(gw.addr, "chat").status, 200);
    // The upstream drops every token: the next call is refused once, the
    // gateway logs in again and the client never knows.
    post(mock.addr, "/_mock/login/revoke");
    let r = chat(gw.addr, "chat");
    assert_eq!(r.status, 200, "{}", r.text());
    let login = login_stats(mock.addr);
    assert_eq!(login["logins"], 2, "{login}");
    assert_eq!(login["rejected"], 1, "{login}");
    assert_eq!(login["calls"]["tok-2"], 1, "{login}");
    // Refused twice in a row: one more login, one retry, then the 401 is
    // the answer (no loop).
    post(mock.addr, "/_mock/login/deny?n=2");
    let r = chat(gw.addr, "chat");
    assert_ne!(r.status, 200, "{}", r.text());
    assert!(
        r.text().contains("rejected the gateway's credentials"),
        "{}",
        r.text()
    );
    let login = login_stats(mock.addr);
    assert_eq!(login["logins"], 3, "{login}");
    assert_eq!(login["rejected"], 3, "{login}");
    // And the fresh token serves the next call.
    assert_eq!(chat(gw.addr, "chat").status, 200);
    let login = login_stats(mock.addr);
    assert_eq!(login["logins"], 3, "{login}");
    assert_eq!(login["calls"]["tok-3"], 1, "{login}");
}

#[test]
fn many_calls_refused_at_once_cause_one_login() {
    let mock = login_mock();
    let gw = gateway(&config(mock.addr, "ttl=3600"));
    assert_eq!(chat(gw.addr, "chat").status, 200);
    post(mock.addr, "/_mock/login/revoke");
    let addr = gw.addr;
    let calls: Vec<_> = (0..16)
        .map(|_| std::thread::spawn(move || chat(addr, "chat").status))
        .collect();
    for c in calls {
        assert_eq!(c.join().unwrap(), 200);
    }
    let login = login_stats(mock.addr);
    // Each refused call dropped tok-1 only if it was still the token: one
    // new login, whatever the interleaving.
    assert_eq!(login["logins"], 2, "{login}");
    assert_eq!(login["calls"]["tok-2"], 16, "{login}");
    assert!(login["rejected"].as_u64().unwrap() >= 1, "{login}");
}

#[test]
fn providers_and_reloads_with_the_same_login_share_its_token() {
    let mock = login_mock();
    let text = config(mock.addr, "ttl=3600");
    let gw = live_gateway(&text);
    assert_eq!(chat(gw.addr(), "chat").status, 200);
    // Another provider with the same login, spoken to over HTTP/2.
    let r = chat(gw.addr(), "chat-h2");
    assert_eq!(r.status, 200, "{}", r.text());
    let last = &mock_stats(mock.addr)["last"]["mock;login=1;via=h2"];
    assert_eq!(last["protocol"], "h2");
    assert_eq!(last["authorization"], "Bearer tok-1");
    // A reload that keeps the login keeps the token.
    let mark = gw.log_mark();
    gw.replace_file(&format!(
        "{text}\n[[models]]\nname = \"chat-2\"\ntargets = [{{ provider = \"sso\", model = \"mock;login=1\" }}]\n"
    ));
    assert!(
        gw.wait_for_log(mark, "config reloaded", Duration::from_secs(5)),
        "{}",
        gw.log_since(mark)
    );
    assert_eq!(chat(gw.addr(), "chat-2").status, 200);
    assert_eq!(chat(gw.addr(), "chat").status, 200);
    let login = login_stats(mock.addr);
    assert_eq!(login["logins"], 1, "{login}");
    assert_eq!(login["calls"]["tok-1"], 4, "{login}");
}

#[test]
fn a_token_near_its_end_is_renewed_before_a_call() {
    let mock = login_mock();
    // A 10 s token (the shortest the gateway uses one for) is renewed
    // once half of it is gone (refresh_before, 60 s by default, is at
    // most half a token's life).
    let gw = gateway(&config(mock.addr, "ttl=10"));
    assert_eq!(chat(gw.addr, "chat").status, 200);
    std::thread::sleep(Duration::from_millis(3000));
    assert_eq!(chat(gw.addr, "chat").status, 200);
    assert_eq!(login_stats(mock.addr)["logins"], 1);
    std::thread::sleep(Duration::from_millis(2300));
    let r = chat(gw.addr, "chat");
    assert_eq!(r.status, 200, "{}", r.text());
    let login = login_stats(mock.addr);
    assert_eq!(login["logins"], 2, "{login}");
    assert_eq!(login["calls"]["tok-1"], 2, "{login}");
    assert_eq!(login["calls"]["tok-2"], 1, "{login}");
    // Renewed before the call: the upstream refused nothing.
    assert_eq!(login["rejected"], 0, "{login}");
}

#[test]
fn fixed_tokens_and_custom_headers_are_sent_as_configured() {
    let mock = login_mock();
    let gw = gateway(&config(mock.addr, "ttl=3600"));
    for model in ["fixed", "custom", "chat-x"] {
        let r = chat(gw.addr, model);
        assert_eq!(r.status, 200, "{model}: {}", r.text());
    }
    let last = &mock_stats(mock.addr)["last"];
    let fixed = &last["mock;via=fixed"];
    assert_eq!(fixed["authorization"], "Bearer fixed-tok-0123456789");
    assert_eq!(fixed["x_token"], Value::Null);
    let custom = &last["mock;via=custom"];
    assert_eq!(custom["x_token"], "Token sk-custom-0123456789");
    assert_eq!(custom["authorization"], Value::Null);
    // A login's token in its own header and format (`/auth/login`).
    let x = &last["mock;via=x"];
    assert_eq!(x["x_token"], "Token tok-1");
    assert_eq!(x["authorization"], Value::Null);
    assert_eq!(login_stats(mock.addr)["logins"], 1);
}

#[test]
fn credentials_and_tokens_never_reach_the_log_or_the_client() {
    let mock = login_mock();
    let gw = live_gateway_logging(&config(mock.addr, "ttl=3600"), "debug");
    assert_eq!(chat(gw.addr(), "chat").status, 200);
    post(mock.addr, "/_mock/login/revoke");
    assert_eq!(chat(gw.addr(), "chat").status, 200);
    assert_eq!(login_stats(mock.addr)["logins"], 2);
    // A wrong password: a clear error in the client's dialect, naming the
    // login, quoting nothing of it (the mock's answer echoes the password).
    let r = chat(gw.addr(), "bad");
    assert_eq!(r.status, 502, "{}", r.text());
    let err = r.json();
    let message = err["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("could not log in"), "{err}");
    // The same in Anthropic's dialect.
    let r = post_json(
        gw.addr(),
        "/v1/messages",
        KEY,
        &json!({"model": "bad", "max_tokens": 16,
                "messages": [{"role": "user", "content": "hello"}]}),
    );
    assert_eq!(r.status, 502, "{}", r.text());
    assert_eq!(r.json()["type"], "error", "{}", r.text());
    assert!(r.text().contains("could not log in"), "{}", r.text());
    let login = login_stats(mock.addr);
    assert!(login["failed_logins"].as_u64().unwrap() >= 1, "{login}");
    assert!(wait_until(Duration::from_secs(5), || gw
        .log()
        .contains("login at 127.0.0.1 answered 401")));
    let log = gw.log();
    for (what, secret) in [
        ("username", USER),
        ("password", PASSWORD),
        ("wrong password", WRONG_PASSWORD),
        ("token", "tok-1"),
        ("token", "tok-2"),
    ] {
        assert!(!log.contains(secret), "the {what} is in the log:\n{log}");
        assert!(!r.text().contains(secret), "the {what} reached the client");
    }
    assert!(log.contains("refused its login token (401)"), "{log}");
    // Debug lines were captured: the logins are logged, without what they got.
    assert!(log.contains("logged in at 127.0.0.1 (token #"), "{log}");
}
