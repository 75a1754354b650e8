//! A token login, for tests of token-login providers.
//!
//! ```text
//! POST /login, /auth/login       {"username","password"} (JSON, `content-type: application/json`)
//!                                against `mock-user` / `mock-pass` (or `--login-user`,
//!                                `--login-password`) → {"code":0,"data":{"token":"tok-N",
//!                                "expires_in":SECS}}, N counting logins from 1
//!     ?ttl=N                     the token's lifetime (default 3600; `ttl=none`: no
//!                                `expires_in` in the answer, the token lives an hour)
//!     ?delay_ms=N                answers after N ms (so concurrent first calls overlap)
//!     wrong credentials          401 {"code":401,"message":…} quoting what was sent, on
//!                                purpose: a gateway must not repeat a login's answer
//! "mock;login=1"                 (model option) a generation needs `authorization: Bearer
//!                                tok-N` of an issued, unexpired, unrevoked token, else 401
//! POST /_mock/login/revoke       every token issued so far is refused from now on
//! POST /_mock/login/deny?n=N     the next N gated calls get 401 whatever they carry
//! ```
//!
//! `GET /_mock/stats` holds `login`: `logins` (successful), `failed_logins`,
//! `rejected` (gated calls answered 401), `calls` (per token, the gated calls
//! it carried and were let through).

use crate::{write_plain, Io};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{LazyLock, Mutex, OnceLock};
use std::time::{Duration, Instant};

#[derive(Default)]
struct State {
    logins: u64,
    failed_logins: u64,
    rejected: u64,
    /// Gated calls let through, per token.
    calls: HashMap<String, u64>,
    /// Issued tokens: when each expires.
    tokens: HashMap<String, Instant>,
    /// Refuse this many gated calls, whatever they carry.
    deny: u64,
}

static STATE: LazyLock<Mutex<State>> = LazyLock::new(Mutex::default);
static CREDENTIALS: OnceLock<(String, String)> = OnceLock::new();

/// The credentials the login accepts (command-line options, else the
/// fixed test values).
pub(crate) fn configure(user: Option<String>, password: Option<String>) {
    let _ = CREDENTIALS.set((
        user.unwrap_or_else(|| "mock-user".into()),
        password.unwrap_or_else(|| "mock-pass".into()),
    ));
}

fn state() -> std::sync::MutexGuard<'static, State> {
    STATE.lock().unwrap_or_else(|e| e.into_inner())
}

pub(crate) fn stats() -> Value {
    let s = state();
    json!({"logins": s.logins, "failed_logins": s.failed_logins, "rejected": s.rejected,
           "calls": s.calls})
}

pub(crate) fn reset() {
    *state() = State::default();
}

fn query_param<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Answers the login and its control routes; `None` for other routes.
pub(crate) async fn respond(
    sock: &mut impl Io,
    method: &str,
    route: &str,
    query: &str,
    hdrs: &HashMap<String, String>,
    body: &[u8],
) -> std::io::Result<Option<bool>> {
    if method != "POST" {
        return Ok(None);
    }
    match route {
        "/login" | "/auth/login" => log_in(sock, query, hdrs, body).await.map(Some),
        "/_mock/login/revoke" => {
            state().tokens.clear();
            write_plain(sock, 200, "{}", "").await.map(Some)
        }
        "/_mock/login/deny" => {
            let n = query_param(query, "n").and_then(|v| v.parse().ok());
            state().deny = n.unwrap_or(1);
            write_plain(sock, 200, "{}", "").await.map(Some)
        }
        _ => Ok(None),
    }
}

async fn log_in(
    sock: &mut impl Io,
    query: &str,
    hdrs: &HashMap<String, String>,
    body: &[u8],
) -> std::io::Result<bool> {
    if let Some(ms) = query_param(query, "delay_ms").and_then(|v| v.parse().ok()) {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    let json_sent = hdrs
        .get("content-type")
        .is_some_and(|v| v.starts_with("application/json"));
    let sent: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let field = |k: &str| sent.get(k).and_then(Value::as_str).unwrap_or("");
    let (user, password) = CREDENTIALS
        .get()
        .map_or(("mock-user", "mock-pass"), |(u, p)| {
            (u.as_str(), p.as_str())
        });
    if !json_sent || field("username") != user || field("password") != password {
        state().failed_logins += 1;
        let answer = json!({"code": 401, "message": format!(
            "mock: bad credentials {}/{}", field("username"), field("password"))});
        return write_plain(sock, 401, &answer.to_string(), "").await;
    }
    let ttl = query_param(query, "ttl");
    let secs: u64 = ttl.and_then(|v| v.parse().ok()).unwrap_or(3600);
    let token = {
        let mut s = state();
        s.logins += 1;
        let token = format!("tok-{}", s.logins);
        s.tokens
            .insert(token.clone(), Instant::now() + Duration::from_secs(secs));
        token
    };
    let answer = if ttl == Some("none") {
        json!({"code": 0, "data": {"token": token}})
    } else {
        json!({"code": 0, "data": {"token": token, "expires_in": secs}})
    };
    write_plain(sock, 200, &answer.to_string(), "").await
}

/// Whether a gated call carries a token the login issued and still honours
/// (counted either way).
pub(crate) fn admit(hdrs: &HashMap<String, String>) -> bool {
    let sent = hdrs
        .get("authorization")
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    let mut s = state();
    let valid = s.deny == 0
        && s.tokens
            .get(sent)
            .is_some_and(|expires| Instant::now() < *expires);
    if valid {
        *s.calls.entry(sent.to_owned()).or_default() += 1;
    } else {
        s.deny = s.deny.saturating_sub(1);
        s.rejected += 1;
    }
    valid
}
