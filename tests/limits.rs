//! Client keys and their limits over real sockets (issue 11): refusals in
//! the caller's dialect with `Retry-After`, the rate-limit headers SDKs
//! read, token reservations settled to the real usage, per-key rules
//! (denied params, output cap, model globs, provider allow-list, disabled
//! and expired keys, the localhost key), exact counting under concurrent
//! load, model and provider limits shared by every key, the admin API, the
//! `keys` CLI against a running gateway, the key store's file, and limits
//! shared through a real Redis — including an outage. Every wait has a
//! deadline; no test waits out a minute window.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::redis::Redis;
use common::*;
use serde_json::{json, Value};
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::Barrier;
use std::time::{Duration, Instant};

/// A key change must be served within 1 s; the margin covers a busy
/// machine running the suite in parallel.
const KEY_CHANGE: Duration = Duration::from_millis(1000 + 750);

/// An upstream stream the tests hold open: a first event at once, then
/// nineteen more 100 ms apart (about 2 s).
const SLOW: &str = "m-slow;chunks=20;delay_ms=100";

// ------------------------------------------------------------ refusals

#[test]
fn rpm_refusal_speaks_the_callers_dialect() {
    let m = mock();
    let gw = gateway(&with(
        &m,
        r#"
[[api_keys]]
key = "sk-test-lim"
name = "lim"
limits = { rpm = 2 }
"#,
    ));
    for _ in 0..2 {
        let r = chat_as(gw.addr, "sk-test-lim", &chat("free"));
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let want = "rate limit reached for key 'lim': rpm = 2 (requests per minute)";

    let r = chat_as(gw.addr, "sk-test-lim", &chat("free"));
    assert_refused(&r, want);
    let e = &r.json()["error"];
    assert_eq!(e["code"], "rate_limit_exceeded", "{}", r.text());
    assert_eq!(
        openai_headers(&r, "requests").map(|h| (h.0, h.1)),
        Some((2, 0))
    );

    let r = post_json(
        gw.addr,
        "/v1/messages",
        "sk-test-lim",
        &anthropic("free-an", 50),
    );
    assert_refused(&r, want);
    let v = r.json();
    assert_eq!(v["type"], "error", "{v}");
    assert_eq!(v["error"]["type"], "rate_limit_error", "{v}");
    assert_eq!(
        anthropic_headers(&r, "requests").map(|h| (h.0, h.1)),
        Some((2, 0))
    );

    let r = post_json(gw.addr, "/v1/responses", "sk-test-lim", &responses("free"));
    assert_refused(&r, want);
    assert_eq!(
        r.json()["error"]["code"],
        "rate_limit_exceeded",
        "{}",
        r.text()
    );

    let r = post_json(
        gw.addr,
        "/v1beta/models/free:generateContent",
        "sk-test-lim",
        &gemini(),
    );
    assert_refused(&r, want);
    assert!(openai_headers(&r, "requests").is_some(), "{:?}", r.headers);

    assert_eq!(mock_total(&m), 2, "no refused request reaches the upstream");
}

#[test]
fn a_request_larger_than_tpm_is_told_to_lower_max_tokens() {
    let m = mock();
    let gw = gateway(&with(
        &m,
        r#"
[[api_keys]]
key = "sk-test-small"
name = "small"
limits = { tpm = 1000 }
"#,
    ));
    let mut body = chat("free");
    body["max_tokens"] = json!(5000);
    let r = chat_as(gw.addr, "sk-test-small", &body);
    assert_eq!(r.status, 429, "{}", r.text());
    let msg = message(&r);
    assert!(msg.contains("lower max_tokens"), "{msg}");
    assert!(msg.contains("key 'small'") && msg.contains("tpm"), "{msg}");
    assert_eq!(
        r.header("retry-after"),
        None,
        "it can never pass: no Retry-After"
    );
    assert_eq!(
        r.header("x-should-retry"),
        Some("false"),
        "SDKs must not retry it"
    );
    assert_eq!(mock_total(&m), 0);

    // The same request with room to spare is served.
    body["max_tokens"] = json!(100);
    let r = chat_as(gw.addr, "sk-test-small", &body);
    assert_eq!(r.status, 200, "{}", r.text());
}

// ------------------------------------------------------- rate-limit headers

#[test]
fn every_answer_of_a_limited_key_carries_rate_limit_headers() {
    let m = mock();
    let gw = gateway(&with(
        &m,
        r#"
[[api_keys]]
key = "sk-test-metered"
name = "metered"
limits = { rpm = 50, tpm = 100000 }
"#,
    ));
    let k = "sk-test-metered";
    let mut stream = chat("free");
    stream["stream"] = json!(true);
    let openai_family = [
        ("/v1/chat/completions", chat("free")),
        ("/v1/chat/completions", stream),
        ("/v1/responses", responses("free")),
        ("/v1beta/models/free:generateContent", gemini()),
    ];
    let mut sent = 0;
    for (path, body) in &openai_family {
        let r = post_json(gw.addr, path, k, body);
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        sent += 1;
        let (limit, remaining, reset) = openai_headers(&r, "requests")
            .unwrap_or_else(|| panic!("{path}: no x-ratelimit-*-requests: {:?}", r.headers));
        assert_eq!((limit, remaining), (50, 50 - sent), "{path}");
        assert!((1.0..=61.5).contains(&reset), "{path}: reset {reset}");
        let (limit, remaining, _) = openai_headers(&r, "tokens")
            .unwrap_or_else(|| panic!("{path}: no x-ratelimit-*-tokens: {:?}", r.headers));
        assert_eq!(limit, 100_000, "{path}");
        assert!(
            remaining < 100_000,
            "{path}: tokens are reserved: {remaining}"
        );
        assert_eq!(
            r.header("anthropic-ratelimit-requests-limit"),
            None,
            "{path}"
        );
    }

    let r = post_json(gw.addr, "/v1/messages", k, &anthropic("free-an", 50));
    assert_eq!(r.status, 200, "{}", r.text());
    sent += 1;
    let now = unix_now();
    let (limit, remaining, reset) = anthropic_headers(&r, "requests")
        .unwrap_or_else(|| panic!("no anthropic-ratelimit-requests-*: {:?}", r.headers));
    assert_eq!((limit, remaining), (50, 50 - sent));
    assert!(
        (now..=now + 63).contains(&reset),
        "requests reset {reset} is not within a minute of {now}"
    );
    let (limit, _, _) = anthropic_headers(&r, "tokens")
        .unwrap_or_else(|| panic!("no anthropic-ratelimit-tokens-*: {:?}", r.headers));
    assert_eq!(limit, 100_000);
    assert_eq!(r.header("x-ratelimit-limit-requests"), None);
}

#[test]
fn keys_and_models_without_limits_get_no_rate_limit_headers() {
    let m = mock();
    let gw = gateway(&with(
        &m,
        r#"
[[api_keys]]
key = "sk-test-rpm-only"
name = "rpm-only"
limits = { rpm = 50 }
"#,
    ));
    for (path, body) in [
        ("/v1/chat/completions", chat("free")),
        ("/v1/messages", anthropic("free-an", 50)),
    ] {
        let r = post_json(gw.addr, path, KEY, &body);
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        let limit_headers: Vec<&(String, String)> = r
            .headers
            .iter()
            .filter(|(k, _)| k.starts_with("x-ratelimit-") || k.starts_with("anthropic-ratelimit-"))
            .collect();
        assert!(limit_headers.is_empty(), "{path}: {limit_headers:?}");
    }
    // A key with a request limit only: no token headers.
    let r = chat_as(gw.addr, "sk-test-rpm-only", &chat("free"));
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(openai_headers(&r, "requests").is_some(), "{:?}", r.headers);
    assert!(openai_headers(&r, "tokens").is_none(), "{:?}", r.headers);
}

// ------------------------------------------------------- token accounting

#[test]
fn reservation_is_the_input_estimate_plus_the_output_cap() {
    let m = mock();
    let mut keys = String::new();
    for name in [
        "default",
        "asked",
        "completion",
        "resp",
        "gem",
        "key-cap",
        "key-cap-asked",
        "model-cap",
    ] {
        let cap = if name.starts_with("key-cap") {
            "max_output_tokens = 20\n"
        } else {
            ""
        };
        keys.push_str(&format!(
            "\n[[api_keys]]\nkey = \"sk-test-r-{name}\"\nname = \"r-{name}\"\nlimits = {{ tpm = 100000 }}\n{cap}"
        ));
    }
    let gw = gateway(&with(
        &m,
        &format!(
            r#"
[limits]
default_reserve_output = 100

[[models]]
name = "capped"
targets = [{{ provider = "openai", model = "m-capped" }}]
max_output_tokens = 30
{keys}"#
        ),
    ));
    let with_field = |mut body: Value, field: &str, n: u64| {
        body[field] = json!(n);
        body
    };
    let gemini_max = {
        let mut g = gemini();
        g["generationConfig"] = json!({"maxOutputTokens": 13});
        g
    };
    let cases: [(&str, &str, Value, u64); 8] = [
        ("default", "/v1/chat/completions", chat("free"), 100),
        (
            "asked",
            "/v1/chat/completions",
            with_field(chat("free"), "max_tokens", 7),
            7,
        ),
        (
            "completion",
            "/v1/chat/completions",
            with_field(chat("free"), "max_completion_tokens", 9),
            9,
        ),
        (
            "resp",
            "/v1/responses",
            with_field(responses("free"), "max_output_tokens", 11),
            11,
        ),
        ("gem", "/v1beta/models/free:generateContent", gemini_max, 13),
        ("key-cap", "/v1/chat/completions", chat("free"), 20),
        (
            "key-cap-asked",
            "/v1/chat/completions",
            with_field(chat("free"), "max_tokens", 5000),
            20,
        ),
        ("model-cap", "/v1/chat/completions", chat("capped"), 30),
    ];
    for (name, path, body, output) in cases {
        let r = post_json(gw.addr, path, &format!("sk-test-r-{name}"), &body);
        assert_eq!(r.status, 200, "{name}: {}", r.text());
        let reserved = body.to_string().len().div_ceil(3) as u64 + output;
        let (_, remaining, _) = openai_headers(&r, "tokens")
            .unwrap_or_else(|| panic!("{name}: no token headers: {:?}", r.headers));
        assert_eq!(
            100_000 - remaining,
            reserved,
            "{name}: reserved ceil(bytes/3) + {output}"
        );
    }
}

#[test]
fn tokens_settle_to_the_real_usage_when_the_request_ends() {
    let m = mock();
    let gw = gateway(&with(
        &m,
        r#"
[[models]]
name = "broken"
targets = [{ provider = "dead", model = "m-dead" }]

[[api_keys]]
key = "sk-test-settle"
name = "settle"
limits = { rpm = 100, tpm = 100000 }

[[api_keys]]
key = "sk-test-unknown"
name = "unknown"
limits = { tpm = 100000 }

[[api_keys]]
key = "sk-test-failed"
name = "failed"
limits = { rpm = 100, tpm = 100000 }
"#,
    ));
    // Served with a usage: the reservation is replaced by it.
    let mut body = chat("free");
    body["max_tokens"] = json!(500);
    let r = chat_as(gw.addr, "sk-test-settle", &body);
    assert_eq!(r.status, 200, "{}", r.text());
    let usage = &r.json()["usage"];
    let real =
        usage["prompt_tokens"].as_u64().unwrap() + usage["completion_tokens"].as_u64().unwrap();
    let reserved = body.to_string().len().div_ceil(3) as u64 + 500;
    assert!(
        real < reserved,
        "the test needs a usage below the reservation"
    );
    settles_to(gw.addr, "settle", "tpm", real);

    // A Chat stream that did not ask for usage: the gateway asks the
    // upstream for it, settles to it, and does not forward it.
    let mut body = chat("free");
    body["stream"] = json!(true);
    body["max_tokens"] = json!(400);
    let r = chat_as(gw.addr, "sk-test-unknown", &body);
    assert_eq!(r.status, 200, "{}", r.text());
    let text = r.text();
    assert!(
        !text.contains("prompt_tokens") && !text.contains("\"choices\":[]"),
        "the usage chunk reached a client that did not ask: {text}"
    );
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    let reserved = body.to_string().len().div_ceil(3) as u64 + 400;
    let mut last = Value::Null;
    let settled = wait_until(KEY_CHANGE, || {
        last = limits_of(gw.addr, "unknown");
        let used = last["tpm"]["used"].as_u64().unwrap_or(0);
        used > 0 && used < reserved
    });
    assert!(
        settled,
        "tpm should settle to the real usage (< {reserved}): {last}"
    );

    // Nothing served: counted as a request, no tokens.
    let r = chat_as(gw.addr, "sk-test-failed", &chat("broken"));
    assert!(r.status >= 500, "{} {}", r.status, r.text());
    settles_to(gw.addr, "failed", "tpm", 0);
    assert_eq!(limits_of(gw.addr, "failed")["rpm"]["used"], 1);
}

// ------------------------------------------------------- per-key rules

#[test]
fn denied_params_are_refused_before_the_upstream() {
    let m = mock();
    let gw = gateway(&with(
        &m,
        r#"
[[api_keys]]
key = "sk-test-strict"
name = "strict"
deny_params = ["n", "logit_bias"]
"#,
    ));
    for (field, value) in [("n", json!(2)), ("logit_bias", json!({"50256": -100}))] {
        let mut body = chat("free");
        body[field] = value;
        let r = chat_as(gw.addr, "sk-test-strict", &body);
        assert_eq!(r.status, 400, "{field}: {}", r.text());
        let e = &r.json()["error"];
        assert_eq!(e["param"], field, "{e}");
        assert!(
            e["message"]
                .as_str()
                .unwrap()
                .contains(&format!("'{field}'")),
            "{e}"
        );
    }
    assert_eq!(mock_total(&m), 0, "nothing was sent upstream");
    let r = chat_as(gw.addr, "sk-test-strict", &chat("free"));
    assert_eq!(r.status, 200, "{}", r.text());
    // Another key may set them.
    let mut body = chat("free");
    body["n"] = json!(1);
    let r = chat_as(gw.addr, KEY, &body);
    assert_eq!(r.status, 200, "{}", r.text());
}

#[test]
fn a_keys_output_cap_clamps_max_tokens_in_both_dialects() {
    let m = mock();
    let gw = gateway(&with(
        &m,
        r#"
[[api_keys]]
key = "sk-test-capped"
name = "capped"
max_output_tokens = 100
"#,
    ));
    for (asked, want) in [(5000, 100), (50, 50)] {
        let mut body = chat("free");
        body["max_tokens"] = json!(asked);
        let r = chat_as(gw.addr, "sk-test-capped", &body);
        assert_eq!(r.status, 200, "{}", r.text());
        let r = post_json(
            gw.addr,
            "/v1/messages",
            "sk-test-capped",
            &anthropic("free-an", asked),
        );
        assert_eq!(r.status, 200, "{}", r.text());
        let s = mock_stats(m.addr);
        assert_eq!(
            s["last"]["m-free"]["body"]["max_tokens"], want,
            "openai asked {asked}"
        );
        assert_eq!(
            s["last"]["m-free-an"]["body"]["max_tokens"], want,
            "anthropic asked {asked}"
        );
    }
    // The admin key has no cap.
    let mut body = chat("free");
    body["max_tokens"] = json!(5000);
    let r = chat_as(gw.addr, KEY, &body);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        mock_stats(m.addr)["last"]["m-free"]["body"]["max_tokens"],
        5000
    );
}

#[test]
fn allowed_models_globs_refuse_other_models() {
    let m = mock();
    let mut extra = String::from(
        r#"
[[api_keys]]
key = "sk-test-globbed"
name = "globbed"
allowed_models = ["exact", "gpt-*"]
"#,
    );
    for name in ["exact", "exact-2", "gpt-4o", "gpt-mini", "gpt", "other"] {
        extra.push_str(&format!(
            "\n[[models]]\nname = \"{name}\"\ntargets = [{{ provider = \"openai\", model = \"m-{name}\" }}]\n"
        ));
    }
    let gw = gateway(&with(&m, &extra));
    for (model, want) in [
        ("exact", 200),
        ("gpt-4o", 200),
        ("gpt-mini", 200),
        ("exact-2", 403),
        ("gpt", 403),
        ("other", 403),
    ] {
        let r = chat_as(gw.addr, "sk-test-globbed", &chat(model));
        assert_eq!(r.status, want, "{model}: {}", r.text());
        if want == 403 {
            assert!(message(&r).contains(&format!("'{model}'")), "{}", r.text());
        }
    }
    assert_eq!(mock_total(&m), 3);
}

#[test]
fn allowed_providers_skip_targets_of_other_providers() {
    let m = mock();
    let gw = gateway(&with(
        &m,
        r#"
[[models]]
name = "both"
targets = [{ provider = "openai", model = "m-both-oa" }, { provider = "anthropic", model = "m-both-an" }]

[[api_keys]]
key = "sk-test-anthro-only"
name = "anthro-only"
allowed_providers = ["anthropic"]
"#,
    ));
    let k = "sk-test-anthro-only";
    let r = chat_as(gw.addr, k, &chat("both"));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.header("x-modelswitch-target"),
        Some("anthropic/m-both-an")
    );
    let attempts = r.header("x-modelswitch-attempts").unwrap_or_default();
    assert!(
        attempts.contains("openai/m-both-oa=not-allowed"),
        "{attempts}"
    );
    let r = chat_as(gw.addr, k, &chat("free"));
    assert_eq!(r.status, 403, "only openai serves 'free': {}", r.text());
    let stats = mock_stats(m.addr);
    assert_eq!(stats["by_model"]["m-both-an"], 1, "{stats}");
    assert_eq!(stats["total"], 1, "no other provider was asked: {stats}");
    // The admin key may use any provider: the first target serves.
    let r = chat_as(gw.addr, KEY, &chat("both"));
    assert_eq!(r.header("x-modelswitch-target"), Some("openai/m-both-oa"));
}

#[test]
fn disabled_and_expired_keys_are_refused_with_401() {
    let m = mock();
    let gw = gateway(&with(
        &m,
        r#"
[[api_keys]]
key = "sk-test-off"
name = "off"
enabled = false

[[api_keys]]
key = "sk-test-old"
name = "old"
expires_at = "2020-01-01T00:00:00Z"

[[api_keys]]
key = "sk-test-later"
name = "later"
expires_at = "2999-01-01T00:00:00Z"
"#,
    ));
    let r = chat_as(gw.addr, "sk-test-off", &chat("free"));
    assert_eq!(r.status, 401, "{}", r.text());
    assert!(message(&r).contains("disabled"), "{}", r.text());
    let r = post_json(
        gw.addr,
        "/v1/messages",
        "sk-test-old",
        &anthropic("free-an", 50),
    );
    assert_eq!(r.status, 401, "{}", r.text());
    assert!(message(&r).contains("expired"), "{}", r.text());
    let r = chat_as(gw.addr, "sk-test-later", &chat("free"));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(mock_total(&m), 1);
}

#[test]
fn the_localhost_key_serves_keyless_loopback_requests_within_its_limits() {
    let m = mock();
    let local = r#"
[auth]
localhost_key = "local"

[[api_keys]]
key = "sk-test-local"
name = "local"
limits = { rpm = 1 }
"#;
    let gw = gateway(&with(&m, local));
    let r = keyless(gw.addr, &chat("free"));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        openai_headers(&r, "requests").map(|h| (h.0, h.1)),
        Some((1, 0))
    );
    let r = keyless(gw.addr, &chat("free"));
    assert_refused(&r, "rate limit reached for key 'local': rpm = 1");
    // A wrong key is still wrong.
    let r = chat_as(gw.addr, "sk-test-wrong", &chat("free"));
    assert_eq!(r.status, 401, "{}", r.text());
    // Never the admin API: any local process would be an admin.
    let r = request(gw.addr, "GET", "/api/keys", &[], b"");
    assert_eq!(r.status, 401, "{}", r.text());

    let plain = gateway(&with(&m, ""));
    let r = keyless(plain.addr, &chat("free"));
    assert_eq!(r.status, 401, "no localhost_key: {}", r.text());
    assert_eq!(mock_total(&m), 1);
}

// ------------------------------------------------------- exactness

#[test]
fn rpm_is_exact_under_100_concurrent_requests() {
    let m = mock();
    let gw = gateway(&with(
        &m,
        r#"
[[api_keys]]
key = "sk-test-ten"
name = "ten"
limits = { rpm = 10 }
"#,
    ));
    let statuses = concurrently(100, |_| {
        chat_as(gw.addr, "sk-test-ten", &chat("free")).status
    });
    assert_eq!(tally(&statuses), vec![(200, 10), (429, 90)]);
    assert_eq!(mock_total(&m), 10);
}

#[test]
fn tpm_refuses_while_a_reservation_is_held_and_settles_after() {
    let m = mock();
    let mut body = chat("slow");
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    body["max_tokens"] = json!(300);
    let reserved = body.to_string().len().div_ceil(3) as u64 + 300;
    // One reservation fits, two do not.
    let tpm = 2 * reserved - 1;
    let gw = gateway(&with(
        &m,
        &format!(
            r#"
[[api_keys]]
key = "sk-test-tok"
name = "tok"
limits = {{ tpm = {tpm} }}
"#
        ),
    ));
    let held = hold(gw.addr, "sk-test-tok", &body);
    let r = chat_as(gw.addr, "sk-test-tok", &body);
    assert_refused(
        &r,
        &format!("rate limit reached for key 'tok': tpm = {tpm} (tokens per minute)"),
    );
    let done = held.finish();
    let usage = done
        .events()
        .iter()
        .find_map(|(_, v)| v.get("usage").filter(|u| u.is_object()).cloned())
        .unwrap_or_else(|| panic!("no usage in the stream: {}", done.text()));
    let real = usage["total_tokens"].as_u64().unwrap();
    assert!(
        real + reserved <= tpm,
        "the test needs a small real usage: {real}"
    );
    // Settled to its real usage: another reservation fits (the same
    // request to a quick model: same size, same reservation).
    let mut quick = body.clone();
    quick["model"] = json!("free");
    assert_eq!(quick.to_string().len(), body.to_string().len());
    let r = poll_status(KEY_CHANGE, 200, || chat_as(gw.addr, "sk-test-tok", &quick));
    assert_eq!(
        r.status,
        200,
        "not admitted after the first settled: {}",
        r.text()
    );
}

#[test]
fn concurrency_counts_requests_in_flight() {
    let m = mock();
    let gw = gateway(&with(
        &m,
        r#"
[[api_keys]]
key = "sk-test-conc"
name = "conc"
limits = { concurrency = 2 }
"#,
    ));
    let mut body = chat("slow");
    body["stream"] = json!(true);
    let first = hold(gw.addr, "sk-test-conc", &body);
    let second = hold(gw.addr, "sk-test-conc", &body);
    let r = chat_as(gw.addr, "sk-test-conc", &chat("free"));
    assert_refused(
        &r,
        "rate limit reached for key 'conc': concurrency = 2 (requests in flight)",
    );
    let done = first.finish();
    assert_eq!(done.status, 200);
    let r = poll_status(KEY_CHANGE, 200, || {
        chat_as(gw.addr, "sk-test-conc", &chat("free"))
    });
    assert_eq!(r.status, 200, "not admitted after one ended: {}", r.text());
    assert_eq!(second.finish().status, 200);
}

// ------------------------------------------------------- shared limits

#[test]
fn a_model_limit_is_shared_by_every_key() {
    let m = mock();
    let gw = gateway(&with(
        &m,
        r#"
[[models]]
name = "shared"
targets = [{ provider = "openai", model = "m-shared" }]
limits = { rpm = 2 }

[[api_keys]]
key = "sk-test-a"
name = "a"

[[api_keys]]
key = "sk-test-b"
name = "b"
"#,
    ));
    let r = chat_as(gw.addr, "sk-test-a", &chat("shared"));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        openai_headers(&r, "requests").map(|h| (h.0, h.1)),
        Some((2, 1))
    );
    let r = post_json(
        gw.addr,
        "/v1/messages",
        "sk-test-b",
        &anthropic("shared", 50),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let want = "rate limit reached for model 'shared': rpm = 2 (requests per minute)";
    for key in ["sk-test-a", "sk-test-b"] {
        let r = chat_as(gw.addr, key, &chat("shared"));
        assert_refused(&r, want);
    }
    // Other models are not affected.
    let r = chat_as(gw.addr, "sk-test-a", &chat("free"));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(mock_stats(m.addr)["by_model"]["m-shared"], 2);
}

#[test]
fn a_provider_over_its_limit_is_skipped_for_the_next_target() {
    let m = mock();
    let gw = gateway(&with(
        &m,
        &format!(
            r#"
[[providers]]
name = "metered"
type = "openai"
base_url = "http://{}/v1"
api_key = "sk-upstream-metered"
limits = {{ rpm = 1 }}

[[models]]
name = "fallback"
targets = [{{ provider = "metered", model = "m-met" }}, {{ provider = "openai", model = "m-fb" }}]

[[models]]
name = "met-only"
targets = [{{ provider = "metered", model = "m-met-only" }}]
"#,
            m.addr
        ),
    ));
    let r = chat_as(gw.addr, KEY, &chat("fallback"));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-modelswitch-target"), Some("metered/m-met"));
    let r = chat_as(gw.addr, KEY, &chat("fallback"));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-modelswitch-target"), Some("openai/m-fb"));
    let attempts = r.header("x-modelswitch-attempts").unwrap_or_default();
    assert!(
        attempts.contains("metered/m-met=provider-limit"),
        "{attempts}"
    );
    let r = chat_as(gw.addr, KEY, &chat("met-only"));
    assert_refused(
        &r,
        "rate limit reached for provider 'metered': rpm = 1 (requests per minute)",
    );
    let stats = mock_stats(m.addr);
    assert_eq!(stats["by_model"]["m-met"], 1, "{stats}");
    assert_eq!(stats["total"], 2, "{stats}");
}

// ------------------------------------------------------- admin API

#[test]
fn the_admin_api_needs_admin_to_write_and_viewer_to_read() {
    let m = mock();
    let gw = gateway(&with(&m, ROLES));
    for (role, key, get, post) in [
        ("admin", KEY, 200, 201),
        ("viewer", "sk-test-viewer", 200, 403),
        ("user", "sk-test-user", 403, 403),
    ] {
        let r = api_call(gw.addr, "GET", "/api/keys", key, None);
        assert_eq!(r.status, get, "GET as {role}: {}", r.text());
        let body = json!({"name": format!("made-by-{role}")});
        let r = api_call(gw.addr, "POST", "/api/keys", key, Some(&body));
        assert_eq!(r.status, post, "POST as {role}: {}", r.text());
        let r = api_call(gw.addr, "GET", "/api/keys/admin/limits", key, None);
        assert_eq!(r.status, get, "GET limits as {role}: {}", r.text());
    }
    for method in ["PATCH", "DELETE"] {
        let body = json!({"enabled": false});
        let r = api_call(
            gw.addr,
            method,
            "/api/keys/made-by-admin",
            "sk-test-viewer",
            Some(&body),
        );
        assert_eq!(r.status, 403, "{method} as viewer: {}", r.text());
    }
    let r = api_call(gw.addr, "GET", "/api/keys/made-by-viewer", KEY, None);
    assert_eq!(
        r.status,
        404,
        "a refused POST creates nothing: {}",
        r.text()
    );
    let r = request(gw.addr, "GET", "/api/keys", &[], b"");
    assert_eq!(r.status, 401, "{}", r.text());
}

#[test]
fn the_admin_api_lists_keys_without_their_secrets() {
    let m = mock();
    let gw = gateway(&with(&m, ROLES));
    let made = create_key(gw.addr, &json!({"name": "listed", "roles": ["user"]}));
    let secret = made["key"].as_str().unwrap().to_owned();
    let r = chat_as(gw.addr, &secret, &chat("free"));
    assert_eq!(r.status, 200, "{}", r.text());

    let r = api_call(gw.addr, "GET", "/api/keys", KEY, None);
    assert_eq!(r.status, 200, "{}", r.text());
    let text = r.text();
    for s in [
        KEY,
        LIMITED_KEY,
        "sk-test-viewer",
        "sk-test-user",
        secret.as_str(),
    ] {
        assert!(!text.contains(s), "the list shows the secret {s}: {text}");
    }
    let v = r.json();
    let find = |name: &str| {
        v["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("'{name}' is not listed: {v}"))
    };
    let listed = find("listed");
    assert_eq!(listed["source"], "store", "{listed}");
    assert_eq!(listed["prefix"], json!(&secret[..10]), "{listed}");
    assert!(listed["last_used_at"].is_string(), "used once: {listed}");
    let admin = find("admin");
    assert_eq!(admin["source"], "config", "{admin}");
    // Config keys may hide even their prefix; never more than one.
    match admin.get("prefix") {
        Some(Value::Null) => {}
        Some(Value::String(p)) => assert!(
            KEY.starts_with(p.as_str()) && p.len() < KEY.len(),
            "{admin}"
        ),
        other => panic!("prefix {other:?}: {admin}"),
    }
    assert!(
        admin["last_used_at"].is_string(),
        "the listing itself used it: {admin}"
    );
    let limited = find("limited");
    assert_eq!(
        limited["last_used_at"],
        Value::Null,
        "never used: {limited}"
    );
}

#[test]
fn a_key_created_through_the_api_works_at_once() {
    let m = mock();
    let gw = gateway(&with(&m, ROLES));
    let made = create_key(
        gw.addr,
        &json!({"name": "bot", "roles": ["user"], "rate_limit": 2, "daily_limit": 50}),
    );
    let secret = made["key"].as_str().unwrap().to_owned();
    let random = secret
        .strip_prefix("sk-ms-")
        .unwrap_or_else(|| panic!("{secret}"));
    assert!(
        random.len() == 32 && random.chars().all(|c| c.is_ascii_alphanumeric()),
        "sk-ms- + 32 base62: {secret}"
    );
    assert_eq!(made["limits"], json!({"rpm": 2, "rpd": 50}), "{made}");
    // No wait: the first request right after the 201 is served.
    for _ in 0..2 {
        let r = chat_as(gw.addr, &secret, &chat("free"));
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let r = chat_as(gw.addr, &secret, &chat("free"));
    assert_refused(&r, "rate limit reached for key 'bot': rpm = 2");

    let made = create_key(
        gw.addr,
        &json!({"name": "bot2", "limits": {"rate_limit": 1, "daily_limit": 9}}),
    );
    assert_eq!(made["limits"], json!({"rpm": 1, "rpd": 9}), "{made}");

    for name in ["bot", "limited"] {
        let r = api_call(
            gw.addr,
            "POST",
            "/api/keys",
            KEY,
            Some(&json!({"name": name})),
        );
        assert_eq!(r.status, 409, "duplicate '{name}': {}", r.text());
    }
}

#[test]
fn store_keys_can_be_changed_and_revoked_through_the_api() {
    let m = mock();
    let gw = gateway(&with(&m, ROLES));
    let made = create_key(gw.addr, &json!({"name": "temp"}));
    let secret = made["key"].as_str().unwrap().to_owned();
    let ask = || chat_as(gw.addr, &secret, &chat("free"));
    assert_eq!(ask().status, 200);

    let r = api_call(
        gw.addr,
        "PATCH",
        "/api/keys/temp",
        KEY,
        Some(&json!({"limits": {"rpm": 1}})),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["limits"], json!({"rpm": 1}));
    assert_eq!(ask().status, 200);
    assert_refused(&ask(), "rate limit reached for key 'temp': rpm = 1");

    let r = api_call(
        gw.addr,
        "PATCH",
        "/api/keys/temp",
        KEY,
        Some(&json!({"enabled": false})),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let r = poll_status(KEY_CHANGE, 401, ask);
    assert_eq!(
        r.status,
        401,
        "still served after PATCH enabled=false: {}",
        r.text()
    );
    assert!(message(&r).contains("disabled"), "{}", r.text());

    let r = api_call(gw.addr, "DELETE", "/api/keys/temp", KEY, None);
    assert_eq!(r.status, 200, "{}", r.text());
    let r = poll_status(KEY_CHANGE, 401, ask);
    assert_eq!(r.status, 401, "{}", r.text());
    assert!(
        !message(&r).contains("disabled"),
        "deleted, not disabled: {}",
        r.text()
    );
    let r = api_call(gw.addr, "GET", "/api/keys/temp", KEY, None);
    assert_eq!(r.status, 404, "{}", r.text());
}

#[test]
fn config_keys_are_read_only_in_the_api() {
    let m = mock();
    let gw = gateway(&with(&m, ROLES));
    let r = api_call(
        gw.addr,
        "PATCH",
        "/api/keys/limited",
        KEY,
        Some(&json!({"enabled": false})),
    );
    assert_eq!(r.status, 409, "{}", r.text());
    assert!(message(&r).contains("edit the file"), "{}", r.text());
    let r = api_call(gw.addr, "DELETE", "/api/keys/limited", KEY, None);
    assert_eq!(r.status, 409, "{}", r.text());
    assert!(message(&r).contains("edit the file"), "{}", r.text());
    let r = chat_as(gw.addr, LIMITED_KEY, &chat("oa"));
    assert_eq!(r.status, 200, "the key still works: {}", r.text());
}

#[test]
fn the_admin_api_shows_a_keys_live_limits() {
    let m = mock();
    let gw = gateway(&with(
        &m,
        r#"
[[api_keys]]
key = "sk-test-viewed"
name = "viewed"
limits = { rpm = 5, tpm = 10000, concurrency = 3 }
"#,
    ));
    let r = chat_as(gw.addr, "sk-test-viewed", &chat("free"));
    assert_eq!(r.status, 200, "{}", r.text());
    let usage = &r.json()["usage"];
    let real =
        usage["prompt_tokens"].as_u64().unwrap() + usage["completion_tokens"].as_u64().unwrap();
    settles_to(gw.addr, "viewed", "tpm", real);
    let l = limits_of(gw.addr, "viewed");
    let rpm = &l["rpm"];
    assert_eq!(
        (&rpm["limit"], &rpm["used"], &rpm["remaining"]),
        (&json!(5), &json!(1), &json!(4)),
        "{l}"
    );
    let reset = rpm["reset_seconds"].as_f64().unwrap();
    assert!(reset > 0.0 && reset <= 61.5, "{l}");
    assert_eq!(l["tpm"]["remaining"], json!(10000 - real), "{l}");
    assert_eq!(l["concurrency"]["limit"], 3, "{l}");
    assert_eq!(l["concurrency"]["used"], 0, "nothing in flight: {l}");
    assert_eq!(
        l.as_object().unwrap().len(),
        3,
        "only limited dimensions: {l}"
    );
    let l = limits_of(gw.addr, "admin");
    assert_eq!(l, json!({}), "no limits, nothing listed");
    let r = api_call(gw.addr, "GET", "/api/keys/nobody/limits", KEY, None);
    assert_eq!(r.status, 404, "{}", r.text());
}

// ------------------------------------------------------- CLI and store

#[test]
fn keys_cli_changes_reach_a_running_gateway_within_a_second() {
    let m = mock();
    let gw = live_gateway(&with(&m, "\n[storage]\nsqlite_path = \"keys.db\"\n"));
    let ask = |secret: &str| chat_as(gw.addr(), secret, &chat("free"));

    let a = cli_create(&gw.path, &["--name", "cli-a", "--rpm", "3"]);
    let b = cli_create(&gw.path, &["--name", "cli-b"]);
    let r = poll_status(KEY_CHANGE, 200, || ask(&a));
    assert_eq!(r.status, 200, "the created key is not served: {}", r.text());
    for _ in 0..2 {
        assert_eq!(ask(&a).status, 200);
    }
    assert_refused(&ask(&a), "rate limit reached for key 'cli-a': rpm = 3");
    assert_eq!(ask(&b).status, 200);

    cli(&gw.path, &["update", "cli-a", "--disable"]);
    let r = poll_status(KEY_CHANGE, 401, || ask(&a));
    assert_eq!(
        r.status,
        401,
        "still served after `keys update --disable`: {}",
        r.text()
    );
    assert!(message(&r).contains("disabled"), "{}", r.text());

    cli(&gw.path, &["revoke", "cli-b"]);
    let r = poll_status(KEY_CHANGE, 401, || ask(&b));
    assert_eq!(
        r.status,
        401,
        "still served after `keys revoke`: {}",
        r.text()
    );
}

#[test]
fn the_key_store_never_holds_a_key_in_plaintext() {
    let m = mock();
    let gw = live_gateway(&with(&m, "\n[storage]\nsqlite_path = \"keys.db\"\n"));
    let mut secrets = Vec::new();
    for i in 0..3 {
        let made = create_key(gw.addr(), &json!({"name": format!("api-{i}"), "rpm": 10}));
        secrets.push(made["key"].as_str().unwrap().to_owned());
    }
    secrets.push(cli_create(&gw.path, &["--name", "from-cli"]));
    for s in &secrets {
        let r = poll_status(KEY_CHANGE, 200, || chat_as(gw.addr(), s, &chat("free")));
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let r = api_call(
        gw.addr(),
        "PATCH",
        "/api/keys/api-0",
        KEY,
        Some(&json!({"description": "x"})),
    );
    assert_eq!(r.status, 200, "{}", r.text());

    let mut bytes = Vec::new();
    for file in ["keys.db", "keys.db-wal", "keys.db-shm"] {
        if let Ok(b) = std::fs::read(gw.dir.join(file)) {
            bytes.extend(b);
        }
    }
    assert!(
        find(&bytes, b"from-cli").is_some(),
        "the store files were not found or are empty"
    );
    for s in &secrets {
        assert!(
            find(&bytes, s.as_bytes()).is_none(),
            "{s} is in the store in plaintext"
        );
        // The random part beyond the displayed prefix, alone.
        assert!(
            find(&bytes, &s.as_bytes()[10..]).is_none(),
            "{s}'s secret part is in the store"
        );
    }
}

// ------------------------------------------------------- Redis

#[test]
fn redis_shares_an_exact_rpm_between_two_gateways() {
    let redis = Redis::start();
    let m = mock();
    let text = with(
        &m,
        &format!(
            r#"
[limits]
backend = "redis"
redis_url = "{}"
redis_timeout = "2s"
on_backend_error = "deny"

[[api_keys]]
key = "sk-test-ten"
name = "ten"
limits = {{ rpm = 10 }}

[[api_keys]]
key = "sk-test-warm"
name = "warm"
limits = {{ rpm = 1000 }}
"#,
            redis.url()
        ),
    );
    let gws = [gateway(&text), gateway(&text)];
    // Each gateway's connection to Redis is made before the burst.
    for gw in &gws {
        let r = chat_as(gw.addr, "sk-test-warm", &chat("free"));
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let statuses = concurrently(100, |i| {
        chat_as(gws[i % 2].addr, "sk-test-ten", &chat("free")).status
    });
    assert_eq!(tally(&statuses), vec![(200, 10), (429, 90)]);
    assert_eq!(mock_total(&m), 12);
}

#[test]
fn a_redis_outage_falls_back_or_refuses_and_sharing_resumes_after() {
    let mut redis = Redis::start();
    let m = mock();
    let text = |on_error: &str| {
        with(
            &m,
            &format!(
                r#"
[limits]
backend = "redis"
redis_url = "{}"
redis_timeout = "500ms"
on_backend_error = "{on_error}"

[[api_keys]]
key = "sk-test-lim"
name = "lim"
limits = {{ rpm = 3 }}

[[api_keys]]
key = "sk-test-probe"
name = "probe"
limits = {{ rpm = 1000 }}

[[api_keys]]
key = "sk-test-after"
name = "after"
limits = {{ rpm = 4 }}
"#,
                redis.url()
            ),
        )
    };
    let allow = gateway(&text("allow"));
    let deny = gateway(&text("deny"));
    let ask = |gw: &Proc, key: &str| chat_as(gw.addr, key, &chat("free"));

    // Up: both gateways count in Redis.
    assert_eq!(ask(&allow, "sk-test-lim").status, 200);
    assert_eq!(ask(&deny, "sk-test-lim").status, 200);
    assert_eq!(
        limits_of(allow.addr, "lim")["rpm"]["used"],
        2,
        "shared count"
    );

    redis.stop();
    // deny: 503 with Retry-After, nothing sent upstream.
    let before = mock_total(&m);
    for key in ["sk-test-probe", "sk-test-lim"] {
        let r = ask(&deny, key);
        assert_eq!(
            r.status,
            503,
            "{key} with Redis down and deny: {}",
            r.text()
        );
        retry_after(&r);
    }
    assert_eq!(mock_total(&m), before);
    // allow: served from this gateway's own counters, whose rpm still
    // applies: never more than 3, then a 429.
    let mut served = 0;
    let refused = loop {
        let r = ask(&allow, "sk-test-lim");
        if r.status != 200 {
            break r;
        }
        served += 1;
        assert!(served <= 3, "rpm = 3 does not hold with Redis down");
    };
    assert!(
        served >= 1,
        "Redis down and allow: not served: {}",
        refused.text()
    );
    assert_refused(&refused, "rate limit reached for key 'lim': rpm = 3");

    redis.restart();
    // Back within a few seconds: `deny` serves again, and `allow` reads
    // the count `deny` made in the new Redis (it never sent `probe`).
    let deadline = Instant::now() + Duration::from_secs(8);
    loop {
        let served = ask(&deny, "sk-test-probe").status == 200;
        if served
            && limits_of(allow.addr, "probe")["rpm"]["used"]
                .as_u64()
                .unwrap_or(0)
                >= 1
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "Redis is not used again 8 s after it restarted"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Shared again: 4 per minute between both gateways, not 4 each.
    let statuses: Vec<u16> = (0..10)
        .map(|i| ask(if i % 2 == 0 { &allow } else { &deny }, "sk-test-after").status)
        .collect();
    assert_eq!(statuses, [200, 200, 200, 200, 429, 429, 429, 429, 429, 429]);
}

// ------------------------------------------------------- helpers

/// Config keys with each role besides the harness's admin.
const ROLES: &str = r#"
[storage]
sqlite_path = "keys.db"

[[api_keys]]
key = "sk-test-viewer"
name = "viewer"
roles = ["viewer"]

[[api_keys]]
key = "sk-test-user"
name = "user"
roles = ["user"]
"#;

/// The harness config (providers `openai`, `anthropic`, `dead`; keys
/// `admin` and `limited`; model `oa`), models `free` (OpenAI upstream),
/// `free-an` (Anthropic) and `slow` (a held stream), then `extra`.
fn with(m: &Proc, extra: &str) -> String {
    let mut c = config(m.addr, &[], "");
    c.push_str(&format!(
        r#"
[[models]]
name = "free"
targets = [{{ provider = "openai", model = "m-free" }}]

[[models]]
name = "free-an"
targets = [{{ provider = "anthropic", model = "m-free-an" }}]

[[models]]
name = "slow"
targets = [{{ provider = "openai", model = "{SLOW}" }}]
"#
    ));
    c.push_str(extra);
    c
}

/// A Chat Completions request with `key`.
fn chat_as(gw: SocketAddr, key: &str, body: &Value) -> Response {
    post_json(gw, "/v1/chat/completions", key, body)
}

fn chat(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "hi there"}]})
}

fn anthropic(model: &str, max_tokens: u64) -> Value {
    json!({"model": model, "max_tokens": max_tokens, "messages": [{"role": "user", "content": "hi there"}]})
}

fn responses(model: &str) -> Value {
    json!({"model": model, "input": "hi there"})
}

fn gemini() -> Value {
    json!({"contents": [{"role": "user", "parts": [{"text": "hi there"}]}]})
}

/// A request without any credential.
fn keyless(gw: SocketAddr, body: &Value) -> Response {
    request(
        gw,
        "POST",
        "/v1/chat/completions",
        &[("Content-Type", "application/json")],
        body.to_string().as_bytes(),
    )
}

/// `POST /api/keys` as the admin; the 201's body.
fn create_key(gw: SocketAddr, body: &Value) -> Value {
    let r = api_call(gw, "POST", "/api/keys", KEY, Some(body));
    assert_eq!(r.status, 201, "{body}: {}", r.text());
    r.json()
}

/// `GET /api/keys/{name}/limits`'s `limits`.
fn limits_of(gw: SocketAddr, name: &str) -> Value {
    let r = api_call(gw, "GET", &format!("/api/keys/{name}/limits"), KEY, None);
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["limits"].clone()
}

/// Waits (bounded) until the key's `dimension` shows `used`: settlement
/// runs as the request ends, possibly just after the client has read it.
fn settles_to(gw: SocketAddr, name: &str, dimension: &str, used: u64) {
    let mut last = Value::Null;
    let ok = wait_until(KEY_CHANGE, || {
        last = limits_of(gw, name);
        last[dimension]["used"] == used
    });
    assert!(
        ok,
        "{name}: {dimension} used should settle to {used}: {last}"
    );
}

/// `modelswitch -c <config> keys …`, which must succeed; its stdout.
fn cli(config: &Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_modelswitch"))
        .arg("-c")
        .arg(config)
        .arg("keys")
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run modelswitch keys");
    assert!(
        out.status.success(),
        "keys {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `keys create … --json`; the new secret.
fn cli_create(config: &Path, args: &[&str]) -> String {
    let mut all = vec!["create"];
    all.extend_from_slice(args);
    all.push("--json");
    let out = cli(config, &all);
    let v: Value = serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"));
    v["key"]
        .as_str()
        .unwrap_or_else(|| panic!("no key: {out}"))
        .to_owned()
}

/// The error message, whatever the dialect's shape.
fn message(r: &Response) -> String {
    let v = r.json();
    v["error"]["message"]
        .as_str()
        .unwrap_or_else(|| panic!("no error message: {v}"))
        .to_owned()
}

/// A 429 whose message holds `want`, with a whole-second `Retry-After`.
fn assert_refused(r: &Response, want: &str) {
    assert_eq!(r.status, 429, "want a 429 '{want}': {}", r.text());
    let msg = message(r);
    assert!(msg.contains(want), "want '{want}' in: {msg}");
    retry_after(r);
}

/// `Retry-After` in whole seconds, at least 1.
fn retry_after(r: &Response) -> u64 {
    let v = r
        .header("retry-after")
        .unwrap_or_else(|| panic!("no Retry-After: {:?}", r.headers));
    let secs: u64 = v
        .parse()
        .unwrap_or_else(|_| panic!("Retry-After '{v}' is not whole seconds"));
    assert!(secs >= 1, "Retry-After {secs}");
    secs
}

/// OpenAI's `x-ratelimit-{limit,remaining,reset}-{kind}`: limit,
/// remaining, reset in seconds; None without them (all three or none).
fn openai_headers(r: &Response, kind: &str) -> Option<(u64, u64, f64)> {
    let get = |what: &str| r.header(&format!("x-ratelimit-{what}-{kind}"));
    let limit = get("limit")?;
    let (remaining, reset) = (get("remaining"), get("reset"));
    let (Some(remaining), Some(reset)) = (remaining, reset) else {
        panic!("x-ratelimit-*-{kind} incomplete: {:?}", r.headers)
    };
    Some((
        limit.parse().unwrap(),
        remaining.parse().unwrap(),
        openai_duration(reset),
    ))
}

/// Anthropic's `anthropic-ratelimit-{kind}-{limit,remaining,reset}`:
/// limit, remaining, reset as Unix seconds.
fn anthropic_headers(r: &Response, kind: &str) -> Option<(u64, u64, i64)> {
    let get = |what: &str| r.header(&format!("anthropic-ratelimit-{kind}-{what}"));
    let limit = get("limit")?;
    let (Some(remaining), Some(reset)) = (get("remaining"), get("reset")) else {
        panic!("anthropic-ratelimit-{kind}-* incomplete: {:?}", r.headers)
    };
    Some((
        limit.parse().unwrap(),
        remaining.parse().unwrap(),
        rfc3339(reset),
    ))
}

/// `20ms`, `6.5s`, `1m0s`, `1h2m3s` → seconds.
fn openai_duration(s: &str) -> f64 {
    if let Some(ms) = s.strip_suffix("ms") {
        return ms
            .parse::<f64>()
            .unwrap_or_else(|_| panic!("duration '{s}'"))
            / 1000.0;
    }
    let rest = s
        .strip_suffix('s')
        .unwrap_or_else(|| panic!("duration '{s}'"));
    let part = |p: &str| {
        p.parse::<f64>()
            .unwrap_or_else(|_| panic!("duration '{s}'"))
    };
    let (h, rest) = rest
        .split_once('h')
        .map_or((0.0, rest), |(h, r)| (part(h), r));
    let (m, rest) = rest
        .split_once('m')
        .map_or((0.0, rest), |(m, r)| (part(m), r));
    h * 3600.0 + m * 60.0 + part(rest)
}

/// `2026-12-03T00:01:00Z` → Unix seconds.
fn rfc3339(s: &str) -> i64 {
    let b = s.as_bytes();
    assert!(
        b.len() == 20
            && b[4] == b'-'
            && b[7] == b'-'
            && b[10] == b'T'
            && b[13] == b':'
            && b[16] == b':'
            && b[19] == b'Z',
        "not RFC 3339 UTC: '{s}'"
    );
    let n = |r: std::ops::Range<usize>| -> i64 { s[r].parse().unwrap_or_else(|_| panic!("'{s}'")) };
    let (y, mo, d) = (n(0..4), n(5..7), n(8..10));
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((mo + 9) % 12) + 2) / 5 + d - 1;
    let days = era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468;
    days * 86_400 + n(11..13) * 3600 + n(14..16) * 60 + n(17..19)
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn mock_total(m: &Proc) -> u64 {
    mock_stats(m.addr)["total"].as_u64().unwrap_or(0)
}

/// Runs `f(i)` for i in 0..n on n threads released together, each with
/// its own connection; the results in order.
fn concurrently<T: Send>(n: usize, f: impl Fn(usize) -> T + Sync) -> Vec<T> {
    let start = Barrier::new(n);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..n)
            .map(|i| {
                let (f, start) = (&f, &start);
                s.spawn(move || {
                    start.wait();
                    f(i)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

/// (status, count), by status.
fn tally(statuses: &[u16]) -> Vec<(u16, usize)> {
    let mut out: Vec<(u16, usize)> = Vec::new();
    for &s in statuses {
        match out.iter_mut().find(|(k, _)| *k == s) {
            Some((_, n)) => *n += 1,
            None => out.push((s, 1)),
        }
    }
    out.sort_unstable();
    out
}

/// Repeats `f` every 25 ms until it answers `status` or `within` passes;
/// the last answer.
fn poll_status(within: Duration, status: u16, mut f: impl FnMut() -> Response) -> Response {
    let deadline = Instant::now() + within;
    loop {
        let r = f();
        if r.status == status || Instant::now() >= deadline {
            return r;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

fn find(h: &[u8], n: &[u8]) -> Option<usize> {
    h.windows(n.len()).position(|w| w == n)
}

/// A streaming request the gateway has admitted and begun to answer,
/// held open until [`Held::finish`].
struct Held {
    s: TcpStream,
    buf: Vec<u8>,
}

/// Sends `body` as a streaming Chat request and returns once its first
/// event has arrived (so it holds its place in every limit).
fn hold(gw: SocketAddr, key: &str, body: &Value) -> Held {
    let mut s = TcpStream::connect_timeout(&gw, Duration::from_secs(5)).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
    let body = body.to_string();
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: {gw}\r\nConnection: close\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body.as_bytes()).unwrap();
    let mut held = Held { s, buf: Vec::new() };
    let got = held.read_until(Instant::now() + Duration::from_secs(5), |b| {
        find(b, b"data: ").is_some()
    });
    assert!(
        got && held.buf.starts_with(b"HTTP/1.1 200"),
        "the held stream did not start: {}",
        String::from_utf8_lossy(&held.buf)
    );
    held
}

impl Held {
    /// Reads until `done(buf)` (true), or the peer closes or `deadline`
    /// passes (false).
    fn read_until(&mut self, deadline: Instant, done: impl Fn(&[u8]) -> bool) -> bool {
        let mut tmp = [0u8; 16 * 1024];
        loop {
            if done(&self.buf) {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            self.s
                .set_read_timeout(Some(left.min(Duration::from_millis(100))))
                .unwrap();
            match self.s.read(&mut tmp) {
                Ok(0) => return false,
                Ok(n) => self.buf.extend_from_slice(&tmp[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                    ) => {}
                Err(_) => return false,
            }
        }
    }

    /// Reads the rest of the stream (bounded) and returns the whole answer.
    fn finish(mut self) -> Response {
        let deadline = Instant::now() + Duration::from_secs(10);
        self.read_until(deadline, |_| false);
        assert!(
            Instant::now() < deadline,
            "the held stream did not end within 10 s"
        );
        let r = parse_response(&self.buf, false);
        assert!(
            r.text().contains("[DONE]"),
            "the held stream was cut: {}",
            r.text()
        );
        r
    }
}

// ------------------------------------------------------- review fixes

#[test]
fn a_viewer_only_key_reads_the_admin_api_but_calls_no_model() {
    let m = mock();
    let gw = gateway(&with(&m, ROLES));
    let r = chat_as(gw.addr, "sk-test-viewer", &chat("free"));
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(message(&r).contains("viewer"), "{}", r.text());
    let r = api_call(gw.addr, "GET", "/api/keys", "sk-test-viewer", None);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(chat_as(gw.addr, "sk-test-user", &chat("free")).status, 200);
    assert_eq!(mock_total(&m), 1);
}

#[test]
fn patching_with_an_earlier_systems_name_replaces_the_limit() {
    let m = mock();
    let gw = gateway(&with(&m, "\n[storage]\nsqlite_path = \"keys.db\"\n"));
    create_key(
        gw.addr,
        &json!({"name": "aliased", "limits": {"rpm": 5, "rpd": 50}}),
    );
    for (patch, want) in [
        (json!({"rate_limit": 20}), json!({"rpm": 20, "rpd": 50})),
        (
            json!({"limits": {"daily_limit": 70}}),
            json!({"rpm": 20, "rpd": 70}),
        ),
        (json!({"limits": {"rpm": null}}), json!({"rpd": 70})),
    ] {
        let r = api_call(gw.addr, "PATCH", "/api/keys/aliased", KEY, Some(&patch));
        assert_eq!(r.status, 200, "{patch}: {}", r.text());
        assert_eq!(r.json()["limits"], want, "{patch}");
    }
    let r = api_call(gw.addr, "GET", "/api/keys/aliased/nothing", KEY, None);
    assert_eq!(r.status, 404, "{}", r.text());
    let r = api_call(gw.addr, "PUT", "/api/keys/aliased", KEY, None);
    assert_eq!(r.status, 405, "{}", r.text());
}

#[test]
fn the_cli_refuses_a_name_the_config_file_already_has() {
    let m = mock();
    let gw = live_gateway(&with(&m, "\n[storage]\nsqlite_path = \"keys.db\"\n"));
    let out = Command::new(env!("CARGO_BIN_EXE_modelswitch"))
        .arg("-c")
        .arg(&gw.path)
        .args(["keys", "create", "--name", "admin"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("config file"), "{stderr}");
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("sk-ms-"),
        "no dead key printed"
    );
}

#[test]
fn count_tokens_asks_only_a_provider_the_key_may_use() {
    let m = mock();
    let gw = gateway(&with(
        &m,
        r#"
[[models]]
name = "both"
targets = [{ provider = "anthropic", model = "m-count-a" }, { provider = "anthropic-2", model = "m-count-b" }]

[[api_keys]]
key = "sk-test-second-only"
name = "second-only"
allowed_providers = ["anthropic-2"]
"#,
    ));
    let body = json!({"model": "both", "messages": [{"role": "user", "content": "count me"}]});
    let r = post_json(
        gw.addr,
        "/v1/messages/count_tokens",
        "sk-test-second-only",
        &body,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let stats = mock_stats(m.addr);
    assert!(stats["last"].get("m-count-a").is_none(), "{stats}");
    assert!(stats["last"].get("m-count-b").is_some(), "{stats}");
}

#[test]
fn last_uses_reach_the_store_at_shutdown() {
    let m = mock();
    let gw = live_gateway(&with(&m, "\n[storage]\nsqlite_path = \"keys.db\"\n"));
    let secret = cli_create(&gw.path, &["--name", "used-at-exit"]);
    let r = poll_status(KEY_CHANGE, 200, || {
        chat_as(gw.addr(), &secret, &chat("free"))
    });
    assert_eq!(r.status, 200, "{}", r.text());
    // Well before the refresh service's five-second flush.
    let status = Command::new("kill")
        .args(["-TERM", &gw.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    // Nothing in flight: the exit (after its hooks) comes at once; "Z" is
    // a child that has exited and waits for this test to reap it.
    let stat = format!("/proc/{}/stat", gw.pid());
    let exited = wait_until(Duration::from_secs(2), || {
        std::fs::read_to_string(&stat).map_or(true, |s| {
            s.rsplit(')')
                .next()
                .is_some_and(|r| r.trim_start().starts_with('Z'))
        })
    });
    assert!(exited, "still running 2 s after SIGTERM");
    let mut shown = Value::Null;
    let written = wait_until(Duration::from_secs(5), || {
        let out = cli(&gw.path, &["show", "used-at-exit", "--json"]);
        shown = serde_json::from_str(out.trim()).unwrap_or(Value::Null);
        shown["last_used_at"].is_string()
    });
    assert!(written, "the last use was lost at exit: {shown}");
}
