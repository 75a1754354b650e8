//! Routing over real sockets: names (globs, aliases, the default), every
//! rule condition, capability skips, tags with an open breaker,
//! `/route/invoke`, the classifier (scenes, the per-session cache, its
//! timeout), `anthropic_beta`, and `/v1/models` with capabilities. The
//! mock upstream counts requests per upstream model, so each test checks
//! where a request really went.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use serde_json::{json, Value};
use std::net::SocketAddr;

const USER_KEY: &str = "sk-test-user-alice";
const SONNET_ONLY: &str = "sk-test-sonnet-only";

/// Providers on the mock: `oa` (OpenAI), `an` (Anthropic), `an-drop` and
/// `an-allow` (Anthropic with beta policies), `flaky` (a dead port whose
/// breaker opens after one failure); then `models`, `routing`.
fn routing_config(mock: SocketAddr, models: &str, routing: &str) -> String {
    format!(
        r#"
[server]
listen = "LISTEN"
threads = 2
first_event_timeout = "3s"
connect_timeout = "1s"

[[providers]]
name = "oa"
type = "openai"
base_url = "http://{mock}/v1"
api_key = "{UPSTREAM_OPENAI_KEY}"

[[providers]]
name = "an"
type = "anthropic"
base_url = "http://{mock}"
api_key = "{UPSTREAM_ANTHROPIC_KEY}"

[[providers]]
name = "an-drop"
type = "anthropic"
base_url = "http://{mock}"
api_key = "{UPSTREAM_ANTHROPIC_KEY}"
anthropic_beta = "drop"

[[providers]]
name = "an-allow"
type = "anthropic"
base_url = "http://{mock}"
api_key = "{UPSTREAM_ANTHROPIC_KEY}"
anthropic_beta = ["interleaved-thinking-2025-05-14"]

[[providers]]
name = "flaky"
type = "openai"
base_url = "http://127.0.0.1:9/v1"
breaker = {{ consecutive_failures = 1, cooldown = "60s" }}

[[api_keys]]
key = "{KEY}"
name = "admin"
roles = ["admin"]

[[api_keys]]
key = "{USER_KEY}"
name = "alice"
roles = ["user"]

{models}

{routing}
"#
    )
}

fn chat(
    gw: SocketAddr,
    key: &str,
    model: &str,
    extra: Value,
    headers: &[(&str, &str)],
) -> Response {
    let mut body =
        json!({"model": model, "messages": [{"role": "user", "content": "hello there"}]});
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            b.insert(k.clone(), v.clone());
        }
    }
    let auth = format!("Bearer {key}");
    let mut h = vec![
        ("Authorization", auth.as_str()),
        ("Content-Type", "application/json"),
    ];
    h.extend_from_slice(headers);
    request(
        gw,
        "POST",
        "/v1/chat/completions",
        &h,
        body.to_string().as_bytes(),
    )
}

fn messages(gw: SocketAddr, model: &str, extra: Value, headers: &[(&str, &str)]) -> Response {
    let mut body = json!({"model": model, "max_tokens": 64,
        "messages": [{"role": "user", "content": "hello there"}]});
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            b.insert(k.clone(), v.clone());
        }
    }
    let mut h = vec![
        ("x-api-key", KEY),
        ("anthropic-version", "2023-06-01"),
        ("Content-Type", "application/json"),
    ];
    h.extend_from_slice(headers);
    request(gw, "POST", "/v1/messages", &h, body.to_string().as_bytes())
}

/// `x-modelswitch-attempts` (what was tried before, after how the model
/// was routed) and, after `|`, `x-modelswitch-target` (what served).
fn attempts(r: &Response) -> String {
    let tried = r.header("x-modelswitch-attempts").unwrap_or_default();
    match r.header("x-modelswitch-target") {
        Some(served) if tried.is_empty() => served.to_owned(),
        Some(served) => format!("{tried} | {served}"),
        None => tried.to_owned(),
    }
}

/// Requests each upstream model of the mock has seen.
fn seen(mock: SocketAddr, upstream_model: &str) -> u64 {
    mock_stats(mock)["by_model"][upstream_model]
        .as_u64()
        .unwrap_or(0)
}

#[test]
fn globs_aliases_and_the_default_model() {
    let m = mock();
    let models = r#"
[[models]]
name = "big"
aliases = ["sonnet", "claude-sonnet-4-5"]
capabilities = { context_window = 200000, vision = true, tools = true, reasoning = true }
tags = ["coding"]
targets = [{ provider = "oa", model = "up-big" }]

[[models]]
name = "claude-*"
targets = [{ provider = "an", model = "up-claude" }]

[[models]]
name = "fallback"
targets = [{ provider = "oa", model = "up-fallback" }]

# An allow-list may name an alias.
[[api_keys]]
key = "sk-test-sonnet-only"
name = "sonnet-only"
allowed_models = ["sonnet"]

[[api_keys]]
key = "sk-test-gpt-only"
name = "gpt-only"
allowed_models = ["gpt-4o*"]
"#;
    let gw = gateway(&routing_config(
        m.addr,
        models,
        "[routing]\ndefault_model = \"fallback\"",
    ));

    let r = chat(gw.addr, KEY, "sonnet", json!({}), &[]);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json()["model"],
        "sonnet",
        "the client hears the name it asked for"
    );
    assert_eq!(attempts(&r), "route=big by=alias | oa/up-big");
    // An alias beats the glob that also matches it.
    let r = chat(gw.addr, KEY, "claude-sonnet-4-5", json!({}), &[]);
    assert!(
        attempts(&r).starts_with("route=big by=alias"),
        "{}",
        attempts(&r)
    );
    let r = chat(gw.addr, KEY, "claude-haiku-4-5", json!({}), &[]);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(attempts(&r), "route=claude-* by=glob | an/up-claude");
    let r = chat(gw.addr, KEY, "gpt-9-unknown", json!({}), &[]);
    assert_eq!(attempts(&r), "route=fallback by=default | oa/up-fallback");
    // A model's own name: no route element.
    let r = chat(gw.addr, KEY, "big", json!({}), &[]);
    assert_eq!(attempts(&r), "oa/up-big");
    assert_eq!((seen(m.addr, "up-big"), seen(m.addr, "up-claude")), (3, 1));

    // An allow-list naming the alias allows the model it names, nothing else.
    let r = chat(gw.addr, SONNET_ONLY, "sonnet", json!({}), &[]);
    assert_eq!(r.status, 200, "{}", r.text());
    let r = chat(gw.addr, SONNET_ONLY, "claude-haiku-4-5", json!({}), &[]);
    assert_eq!(r.status, 403, "{}", r.text());
    // tags: among the key's models only.
    let r = chat(gw.addr, SONNET_ONLY, "tags:coding", json!({}), &[]);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(attempts(&r), "route=big by=tags | oa/up-big");
    // A name that only matches the key's glob does not reach the default.
    let r = chat(
        gw.addr,
        "sk-test-gpt-only",
        "gpt-4o-anything",
        json!({}),
        &[],
    );
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(
        seen(m.addr, "up-fallback"),
        1,
        "only the admin's request above"
    );

    // The listing: names and aliases (no glob), with capabilities.
    let auth = format!("Bearer {KEY}");
    let list = request(
        gw.addr,
        "GET",
        "/v1/models",
        &[("Authorization", &auth)],
        b"",
    )
    .json();
    let ids: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["big", "sonnet", "claude-sonnet-4-5", "fallback"]);
    assert_eq!(
        list["data"][1]["capabilities"],
        json!({"context_window": 200000, "vision": true, "tools": true, "reasoning": true})
    );
    assert_eq!(list["data"][1]["tags"], json!(["coding"]));
    assert_eq!(
        list["data"][3]["capabilities"]["context_window"],
        Value::Null
    );
    let one = request(
        gw.addr,
        "GET",
        "/v1/models/sonnet",
        &[("Authorization", &auth)],
        b"",
    );
    assert_eq!(one.status, 200);
    assert_eq!(one.json()["capabilities"]["context_window"], 200000);
    let none = request(
        gw.addr,
        "GET",
        "/v1/models/claude-x",
        &[("Authorization", &auth)],
        b"",
    );
    assert_eq!(none.status, 404, "a glob's names are not listed models");
    // Codex's model-list call.
    let codex = request(
        gw.addr,
        "GET",
        "/v1/models?client_version=0.171.0",
        &[("Authorization", &auth)],
        b"",
    )
    .json();
    assert_eq!(codex["models"], json!([]));
    assert_eq!(codex["data"].as_array().map(Vec::len), Some(4));

    // Without a default, an unknown name is a 404 naming what exists.
    let gw = gateway(&routing_config(m.addr, models, ""));
    let r = chat(gw.addr, KEY, "gpt-9-unknown", json!({}), &[]);
    assert_eq!(r.status, 404, "{}", r.text());
    assert_eq!(r.json()["error"]["code"], "model_not_found");
    assert!(
        r.text().contains("available: big, fallback"),
        "{}",
        r.text()
    );
}

#[test]
fn every_rule_condition_routes() {
    let m = mock();
    let mut models = String::new();
    for name in [
        "plain",
        "by-model",
        "by-dialect",
        "by-key",
        "by-role",
        "by-header",
        "by-tools",
        "by-images",
        "by-thinking",
        "by-search",
        "by-long",
        "by-background",
    ] {
        models.push_str(&format!(
            "[[models]]\nname = \"{name}\"\ntargets = [{{ provider = \"oa\", model = \"up-{name}\" }}]\n"
        ));
    }
    let rules = r#"
[routing]
default_model = "plain"

[[routing.rules]]
name = "background"
when = { background = true }
use = "by-background"

[[routing.rules]]
name = "model"
when = { model = "gpt-4*" }
use = "by-model"

[[routing.rules]]
name = "dialect"
when = { dialect = "anthropic", has_tools = false, thinking = false }
use = "by-dialect"

[[routing.rules]]
name = "key"
when = { key = "ali*", model = "key-test" }
use = "by-key"

[[routing.rules]]
name = "role"
when = { role = "user" }
use = "by-role"

[[routing.rules]]
name = "header"
when = { header = { x-team = "core-*" } }
use = "by-header"

[[routing.rules]]
name = "images"
when = { has_images = true }
use = "by-images"

[[routing.rules]]
name = "search"
when = { web_search = true }
use = "by-search"

[[routing.rules]]
name = "tools"
when = { has_tools = true }
use = "by-tools"

[[routing.rules]]
name = "thinking"
when = { thinking = true }
use = "by-thinking"

[[routing.rules]]
name = "long"
when = { min_input_tokens = 2000 }
use = "by-long"
"#;
    let gw = gateway(&routing_config(m.addr, &models, rules));
    let routed = |r: &Response| -> String {
        assert_eq!(r.status, 200, "{}", r.text());
        let a = attempts(r);
        a.split(" | ").next().unwrap_or_default().to_owned()
    };
    let tool =
        json!([{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]);
    let image = json!([{"role": "user", "content": [
        {"type": "text", "text": "what is this"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]}]);
    let long = "word ".repeat(2000);
    let cases: Vec<(Response, &str)> = vec![
        (
            chat(gw.addr, KEY, "claude-3-5-haiku-latest", json!({}), &[]),
            "route=by-background by=background",
        ),
        (
            chat(gw.addr, KEY, "gpt-4o", json!({}), &[]),
            "route=by-model by=model",
        ),
        (
            messages(gw.addr, "anything", json!({}), &[]),
            "route=by-dialect by=dialect",
        ),
        (
            chat(gw.addr, USER_KEY, "key-test", json!({}), &[]),
            "route=by-key by=key",
        ),
        (
            chat(gw.addr, USER_KEY, "other", json!({}), &[]),
            "route=by-role by=role",
        ),
        (
            chat(
                gw.addr,
                KEY,
                "other",
                json!({}),
                &[("X-Team", "core-infra")],
            ),
            "route=by-header by=header",
        ),
        (
            chat(gw.addr, KEY, "other", json!({"messages": image}), &[]),
            "route=by-images by=images",
        ),
        (
            chat(
                gw.addr,
                KEY,
                "other",
                json!({"web_search_options": {}}),
                &[],
            ),
            "route=by-search by=search",
        ),
        (
            chat(gw.addr, KEY, "other", json!({"tools": tool}), &[]),
            "route=by-tools by=tools",
        ),
        (
            chat(
                gw.addr,
                KEY,
                "other",
                json!({"reasoning_effort": "high"}),
                &[],
            ),
            "route=by-thinking by=thinking",
        ),
        (
            chat(
                gw.addr,
                KEY,
                "other",
                json!({"messages": [{"role": "user", "content": long}]}),
                &[],
            ),
            "route=by-long by=long",
        ),
        // Nothing holds: the default.
        (
            chat(gw.addr, KEY, "other", json!({}), &[("X-Team", "web")]),
            "route=plain by=default",
        ),
    ];
    for (r, want) in &cases {
        assert_eq!(routed(r), *want);
    }
    // A header rule is not fooled by a missing header; an Anthropic request
    // with thinking fails the dialect rule's `thinking = false` and falls
    // to the thinking rule.
    let r = messages(
        gw.addr,
        "anything",
        json!({"thinking": {"type": "enabled", "budget_tokens": 1024}}),
        &[],
    );
    assert_eq!(routed(&r), "route=by-thinking by=thinking");
    assert_eq!(seen(m.addr, "up-by-thinking"), 2);
    assert_eq!(seen(m.addr, "up-by-background"), 1);
}

#[test]
fn targets_lacking_a_capability_are_skipped() {
    let m = mock();
    let models = r#"
[[models]]
name = "vis"
targets = [
  { provider = "oa", model = "up-blind", capabilities = { vision = false } },
  { provider = "oa", model = "up-eyes" },
]

[[models]]
name = "notools"
capabilities = { tools = false }
targets = [{ provider = "oa", model = "up-notools" }]

[[models]]
name = "window"
targets = [
  { provider = "oa", model = "up-small-window", capabilities = { context_window = 500 } },
  { provider = "oa", model = "up-big-window" },
]
"#;
    let gw = gateway(&routing_config(m.addr, models, ""));
    let image = json!([{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]}]);
    let r = chat(gw.addr, KEY, "vis", json!({"messages": image}), &[]);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(attempts(&r), "oa/up-blind=lacks-vision | oa/up-eyes");
    // Text only: the first target serves.
    let r = chat(gw.addr, KEY, "vis", json!({}), &[]);
    assert_eq!(attempts(&r), "oa/up-blind");

    let tool =
        json!([{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]);
    let r = chat(gw.addr, KEY, "notools", json!({"tools": tool}), &[]);
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("lacks-tools"), "{}", r.text());
    assert_eq!(r.json()["error"]["type"], "invalid_request_error");
    assert_eq!(attempts(&r), "oa/up-notools=lacks-tools");
    assert_eq!(seen(m.addr, "up-notools"), 0, "never sent");

    let long = "word ".repeat(1000);
    let r = chat(
        gw.addr,
        KEY,
        "window",
        json!({"messages": [{"role": "user", "content": long}]}),
        &[],
    );
    assert_eq!(
        attempts(&r),
        "oa/up-small-window=lacks-context | oa/up-big-window"
    );
    let r = chat(gw.addr, KEY, "window", json!({}), &[]);
    assert_eq!(attempts(&r), "oa/up-small-window");
}

#[test]
fn tags_pick_the_best_healthy_model_and_route_invoke_answers() {
    let m = mock();
    let models = r#"
[[models]]
name = "best-but-down"
tags = ["coding", "cheap"]
priority = 10
targets = [{ provider = "flaky", model = "up-down" }]

[[models]]
name = "good"
tags = ["coding", "cheap", "fast"]
priority = 5
targets = [{ provider = "oa", model = "up-good" }]

[[models]]
name = "pricey"
tags = ["coding"]
priority = 50
targets = [{ provider = "oa", model = "up-pricey" }]
"#;
    let gw = gateway(&routing_config(m.addr, models, ""));
    // Highest priority with every tag: the dead one, which fails and opens.
    let r = chat(gw.addr, KEY, "tags:coding,cheap", json!({}), &[]);
    assert_eq!(r.status, 502, "{}", r.text());
    assert!(
        attempts(&r).starts_with("route=best-but-down by=tags, flaky/up-down="),
        "{}",
        attempts(&r)
    );
    // Its breaker is open now: the next best healthy one.
    let r = chat(gw.addr, KEY, "tags:coding,cheap", json!({}), &[]);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(attempts(&r), "route=good by=tags | oa/up-good");
    assert_eq!(r.json()["model"], "tags:coding,cheap");
    // Any dialect.
    let r = messages(gw.addr, "tags:coding", json!({}), &[]);
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        attempts(&r).starts_with("route=pricey by=tags"),
        "{}",
        attempts(&r)
    );
    let r = chat(gw.addr, KEY, "tags:gpu", json!({}), &[]);
    assert_eq!(r.status, 404, "{}", r.text());

    // /route/invoke: the same query, answered in the OpenAI shape.
    let r = post_json(
        gw.addr,
        "/route/invoke",
        KEY,
        &json!({"query": {"tags": ["coding", "fast"]}, "request": {"prompt": "say hi", "max_tokens": 20}}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["object"], "chat.completion");
    assert!(v["choices"][0]["message"]["content"]
        .as_str()
        .unwrap_or_default()
        .contains("say hi"));
    assert_eq!(attempts(&r), "route=good by=tags | oa/up-good");
    assert_eq!(
        mock_stats(m.addr)["last"]["up-good"]["body"]["max_tokens"],
        20
    );
    // Streaming too.
    let r = post_json(
        gw.addr,
        "/route/invoke",
        KEY,
        &json!({"query": {"tags": ["fast"]}, "request": {"messages": [{"role": "user", "content": "x"}], "stream": true}}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("chat.completion.chunk") && r.text().contains("[DONE]"));
    // A bad body: an OpenAI error naming what is missing.
    let r = post_json(
        gw.addr,
        "/route/invoke",
        KEY,
        &json!({"request": {"prompt": "x"}}),
    );
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["param"], "query.tags");
    let r = post_json(gw.addr, "/route/invoke", "sk-wrong-key-000", &json!({}));
    assert_eq!(r.status, 401);
}

fn classifier_config(mock: SocketAddr, classifier_model: &str, timeout: &str) -> String {
    let models = format!(
        r#"
[[models]]
name = "small"
targets = [{{ provider = "oa", model = "{classifier_model}" }}]

[[models]]
name = "m-chat"
targets = [{{ provider = "oa", model = "up-chat" }}]

[[models]]
name = "m-code"
targets = [{{ provider = "an", model = "up-code" }}]

[[models]]
name = "m-reason"
targets = [{{ provider = "oa", model = "up-reason" }}]
"#
    );
    let routing = format!(
        r#"
[routing.classifier]
model = "small"
scenes = {{ chat = "m-chat", code = "m-code", reasoning = {{ model = "m-reason", description = "proofs and puzzles" }} }}
default = "m-chat"
timeout = "{timeout}"
"#
    );
    routing_config(mock, &models, &routing)
}

fn said(gw: SocketAddr, text: &str, session: Option<&str>) -> Response {
    let mut h = vec![];
    if let Some(s) = session {
        h.push(("X-Claude-Code-Session-Id", s));
    }
    chat(
        gw,
        KEY,
        "auto",
        json!({"messages": [{"role": "user", "content": text}]}),
        &h,
    )
}

#[test]
fn the_classifier_picks_scenes_caches_per_session_and_times_out() {
    let m = mock();
    // The mock echoes the user's text, so the classifier "answers" with the
    // scene the turn starts with.
    let gw = gateway(&classifier_config(m.addr, "up-classifier", "2s"));
    let r = said(gw.addr, "code: write a parser", None);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        attempts(&r),
        "route=m-code by=scene scene=code | an/up-code"
    );
    let r = said(gw.addr, "reasoning about a proof", None);
    assert_eq!(
        attempts(&r),
        "route=m-reason by=scene scene=reasoning | oa/up-reason"
    );
    // No scene in the answer: the default.
    let r = said(gw.addr, "bonjour", None);
    assert_eq!(attempts(&r), "route=m-chat by=scene-default | oa/up-chat");
    let classified = seen(m.addr, "up-classifier");
    assert_eq!(classified, 3);
    // What the classifier was asked: the fixed prompt and the turn.
    let asked = &mock_stats(m.addr)["last"]["up-classifier"]["body"];
    let system = asked["messages"][0]["content"].as_str().unwrap_or_default();
    assert!(
        system.contains("- reasoning: proofs and puzzles"),
        "{system}"
    );
    assert!(system.contains("- code: writing, reading"), "{system}");
    assert_eq!(asked["messages"][1]["content"], "bonjour");
    assert_eq!(asked["max_tokens"], 8);

    // A session keeps its first scene; the classifier is asked once.
    let r = said(gw.addr, "code: first turn", Some("sess-1"));
    assert!(attempts(&r).starts_with("route=m-code"), "{}", attempts(&r));
    let r = said(gw.addr, "reasoning: second turn", Some("sess-1"));
    assert!(
        attempts(&r).starts_with("route=m-code by=scene scene=code"),
        "{}",
        attempts(&r)
    );
    assert_eq!(seen(m.addr, "up-classifier"), classified + 1);
    // Another session is classified on its own, and so is the same id
    // sent by another key.
    let r = said(gw.addr, "reasoning: other session", Some("sess-2"));
    assert!(
        attempts(&r).starts_with("route=m-reason"),
        "{}",
        attempts(&r)
    );
    let r = chat(
        gw.addr,
        USER_KEY,
        "auto",
        json!({"messages": [{"role": "user", "content": "reasoning: not yours"}]}),
        &[("X-Claude-Code-Session-Id", "sess-1")],
    );
    assert!(
        attempts(&r).starts_with("route=m-reason"),
        "{}",
        attempts(&r)
    );

    // A slow classifier: the default within the timeout.
    let gw = gateway(&classifier_config(m.addr, "mock;first_ms=5000", "300ms"));
    let started = std::time::Instant::now();
    let r = said(gw.addr, "code: slow", Some("sess-3"));
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        started.elapsed() < std::time::Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(attempts(&r), "route=m-chat by=scene-default | oa/up-chat");
    // A failing one too (the dead provider).
    let gw = gateway(&classifier_config(m.addr, "mock;status=500", "2s"));
    let r = said(gw.addr, "code: failing", None);
    assert_eq!(attempts(&r), "route=m-chat by=scene-default | oa/up-chat");
}

#[test]
fn anthropic_beta_forwarded_dropped_or_cut_per_provider() {
    let m = mock();
    let models = r#"
[[models]]
name = "fwd"
targets = [{ provider = "an", model = "up-fwd" }]

[[models]]
name = "drop"
targets = [{ provider = "an-drop", model = "up-drop" }]

[[models]]
name = "allow"
targets = [{ provider = "an-allow", model = "up-allow" }]
"#;
    let gw = gateway(&routing_config(m.addr, models, ""));
    let betas = "claude-code-20250219,interleaved-thinking-2025-05-14,brand-new-beta-2026-12-01";
    for model in ["fwd", "drop", "allow"] {
        let r = messages(gw.addr, model, json!({}), &[("anthropic-beta", betas)]);
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let s = mock_stats(m.addr);
    assert_eq!(s["last"]["up-fwd"]["anthropic_beta"], betas);
    assert_eq!(s["last"]["up-drop"]["anthropic_beta"], Value::Null);
    assert_eq!(
        s["last"]["up-allow"]["anthropic_beta"],
        "interleaved-thinking-2025-05-14"
    );
}

#[test]
fn routing_config_errors_name_their_place() {
    let m = mock();
    let models = r#"
[[models]]
name = "a"
aliases = ["b", "x*"]
tags = ["ok", "no,comma"]
targets = [{ provider = "oa", model = "up" }]

[[models]]
name = "b"
targets = [{ provider = "oa", model = "up" }]
"#;
    let routing = r#"
[routing]
default_model = "nope"

[[routing.rules]]
when = { dialect = "klingon", role = "god" }
use = "missing"

[[routing.rules]]
use = "tags:gpu"

[routing.classifier]
model = "a"
scenes = { odd = "b" }
default = "a"
"#;
    let errs = check_config(&routing_config(m.addr, models, routing)).unwrap_err();
    let has = |s: &str| errs.iter().any(|e| e.contains(s));
    for want in [
        "models[0].aliases: alias 'b' of 'a' is already a name of 'b'",
        "models[0].aliases: alias 'x*' has a '*'",
        "models[0].tags[1]",
        "routing.default_model: 'nope'",
        "routing.rules[0].use: no model named 'missing'",
        "routing.rules[0].when.dialect: 'klingon'",
        "routing.rules[0].when.role: 'god'",
        "routing.rules[1].use: no model has every tag of 'tags:gpu'",
        "routing.classifier.scenes.odd: a scene of its own needs a description",
    ] {
        assert!(has(want), "missing {want:?} in {errs:#?}");
    }
}
