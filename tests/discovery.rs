//! Model discovery over real sockets: `GET /api/providers/{name}/models`
//! asks each kind of provider (OpenAI, Anthropic and Gemini paged, an
//! `ollama` and an `lmstudio` preset, LM Studio's fallback to its OpenAI
//! list) what it serves, with the provider's own key, and answers one
//! normalized list; a missing key is a clear error with the upstream's
//! status; `POST` adds chosen models to the config file (comments kept, a
//! new `[[models]]` and an appended target) and they answer at once;
//! viewers and stale etags are refused.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use serde_json::{json, Value};
use std::net::SocketAddr;

const VIEWER_KEY: &str = "sk-test-viewer-key";
const GEMINI_KEY: &str = "sk-upstream-gemini-secret";
const LOCAL_KEY: &str = "sk-upstream-local-secret";

fn config_text(mock: SocketAddr) -> String {
    format!(
        r#"# Discovery test gateway.
[server]
listen = "LISTEN"
threads = 2
first_event_timeout = "3s"
idle_timeout = "2s"
connect_timeout = "1s"

[[providers]]
name = "openai"
type = "openai"
base_url = "http://{mock}/v1"
api_key = "{UPSTREAM_OPENAI_KEY}"
display_name = "OpenAI"
description = "The mock, as OpenAI"
tags = ["cloud"]

[[providers]]
name = "anthropic"
type = "anthropic"
base_url = "http://{mock}"
api_key = "{UPSTREAM_ANTHROPIC_KEY}"

[[providers]]
name = "gemini"
type = "gemini"
base_url = "http://{mock}"
api_key = "{GEMINI_KEY}"

# A local Ollama (the mock wants a key all the same).
[[providers]]
name = "local"
preset = "ollama"
base_url = "http://{mock}/v1"
api_key = "{LOCAL_KEY}"

[[providers]]
name = "lms"
preset = "lmstudio"
base_url = "http://{mock}/v1"
api_key = "{LOCAL_KEY}"

# An older LM Studio: no /api/v0, only its OpenAI list.
[[providers]]
name = "lms-old"
preset = "lmstudio"
base_url = "http://{mock}/old/v1"
api_key = "{LOCAL_KEY}"

[[providers]]
name = "nokey"
type = "openai"
base_url = "http://{mock}/v1"

[[api_keys]]
key = "{KEY}"
name = "admin"
roles = ["admin"]

[[api_keys]]
key = "{VIEWER_KEY}"
name = "viewer"
roles = ["viewer"]

# The main chat model.
[[models]]
name = "oa"   # keep this comment
targets = [{{ provider = "openai", model = "mock" }}]
display_name = "Mock chat"
description = "Answers with an echo"
"#
    )
}

fn list(gw: SocketAddr, provider: &str, key: &str) -> Response {
    api_call(
        gw,
        "GET",
        &format!("/api/providers/{provider}/models"),
        key,
        None,
    )
}

fn listed(gw: SocketAddr, provider: &str) -> Value {
    let r = list(gw, provider, KEY);
    assert_eq!(r.status, 200, "{provider}: {}", r.text());
    let v = r.json();
    assert_eq!(v["provider"], provider);
    v
}

fn ids(v: &Value) -> Vec<String> {
    v["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect()
}

fn model<'a>(v: &'a Value, id: &str) -> &'a Value {
    v["models"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == id)
        .unwrap_or_else(|| panic!("{id} not listed: {v}"))
}

#[test]
fn every_kind_of_listing_is_normalized() {
    let mock = mock();
    let gw = gateway(&config_text(mock.addr));

    let v = listed(gw.addr, "openai");
    assert_eq!(v["listing"], "openai");
    assert_eq!(
        ids(&v),
        [
            "gpt-4o",
            "gpt-4o-mini",
            "mock",
            "o3-mini",
            "text-embedding-3-small"
        ]
    );
    assert_eq!(model(&v, "mock")["configured"], json!(["oa"]));
    assert_eq!(model(&v, "gpt-4o")["configured"], json!([]));
    assert_eq!(model(&v, "gpt-4o")["kind"], "chat");
    assert_eq!(model(&v, "gpt-4o")["owned_by"], "system");
    assert_eq!(model(&v, "text-embedding-3-small")["kind"], "embeddings");

    // Two pages, followed by after_id.
    let v = listed(gw.addr, "anthropic");
    assert_eq!(v["listing"], "anthropic");
    assert_eq!(
        ids(&v),
        [
            "claude-3-5-haiku-20241022",
            "claude-3-7-sonnet-20250219",
            "claude-opus-4-1-20250805",
            "claude-sonnet-4-5-20250929"
        ]
    );
    assert_eq!(
        model(&v, "claude-sonnet-4-5-20250929")["display_name"],
        "Claude Sonnet 4.5"
    );

    // Two pages by pageToken; the image model is left out, the embedding
    // model kept and marked.
    let v = listed(gw.addr, "gemini");
    assert_eq!(v["listing"], "gemini");
    assert_eq!(
        ids(&v),
        [
            "gemini-2.0-flash",
            "gemini-2.5-flash",
            "gemini-2.5-pro",
            "text-embedding-004"
        ]
    );
    let pro = model(&v, "gemini-2.5-pro");
    assert_eq!(pro["display_name"], "Gemini 2.5 Pro");
    assert_eq!(pro["context_window"], 1_048_576);
    assert_eq!(pro["kind"], "chat");
    assert_eq!(model(&v, "text-embedding-004")["kind"], "embeddings");

    let v = listed(gw.addr, "local");
    assert_eq!(v["listing"], "ollama");
    assert_eq!(
        ids(&v),
        ["llama3.2:3b", "nomic-embed-text:latest", "qwen3:8b"]
    );
    assert_eq!(model(&v, "qwen3:8b")["parameter_size"], "8.2B");
    assert_eq!(model(&v, "qwen3:8b")["kind"], "chat");
    assert_eq!(model(&v, "nomic-embed-text:latest")["kind"], "embeddings");

    let v = listed(gw.addr, "lms");
    assert_eq!(v["listing"], "lmstudio");
    assert_eq!(
        ids(&v),
        [
            "google/gemma-3-12b",
            "qwen2.5-7b-instruct",
            "text-embedding-nomic-embed-text-v1.5"
        ]
    );
    let q = model(&v, "qwen2.5-7b-instruct");
    assert_eq!(
        (q["loaded"].clone(), q["context_window"].clone()),
        (json!(true), json!(32768))
    );
    assert_eq!(model(&v, "google/gemma-3-12b")["loaded"], false);
    assert_eq!(
        model(&v, "text-embedding-nomic-embed-text-v1.5")["kind"],
        "embeddings"
    );

    // /api/v0 is 404 there: the OpenAI list instead.
    let v = listed(gw.addr, "lms-old");
    assert_eq!(v["listing"], "lmstudio");
    assert!(ids(&v).contains(&"gpt-4o".to_owned()), "{v}");

    let stats = mock_stats(mock.addr);
    assert_eq!(stats["by_endpoint"]["list:anthropic"], 2, "{stats}");
    assert_eq!(stats["by_endpoint"]["list:gemini"], 2, "{stats}");
    // Every listing carried the provider's key (the mock refuses others).
    let r = list(gw.addr, "openai", VIEWER_KEY);
    assert_eq!(r.status, 200, "viewers may list: {}", r.text());
}

#[test]
fn a_missing_key_is_a_clear_error_with_the_upstream_status() {
    let mock = mock();
    let gw = gateway(&config_text(mock.addr));
    let r = list(gw.addr, "nokey", KEY);
    assert_eq!(r.status, 502, "{}", r.text());
    let msg = r.json()["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(msg.contains("nokey"), "{msg}");
    assert!(msg.contains("401"), "{msg}");
    assert!(msg.contains("API key"), "the upstream's words: {msg}");
    assert_eq!(list(gw.addr, "nope", KEY).status, 404);
    // The listing never shows a key.
    for secret in [UPSTREAM_OPENAI_KEY, LOCAL_KEY, GEMINI_KEY] {
        assert!(!listed(gw.addr, "lms").to_string().contains(secret));
        assert!(!r.text().contains(secret));
    }
}

#[test]
fn chosen_models_are_added_to_the_file_and_answer_at_once() {
    let mock = mock();
    let gw = live_gateway(&config_text(mock.addr));
    let add = json!({"models": [
        {"id": "qwen3:8b", "name": "qwen3-8b"},
        {"id": "llama3.2:3b", "name": "oa"},
        {"id": "mock", "name": "oa"},
    ]});

    // Viewers cannot add; a stale etag is refused; the file is untouched.
    let before = std::fs::read_to_string(&gw.path).unwrap();
    let r = api_call(
        gw.addr(),
        "POST",
        "/api/providers/local/models",
        VIEWER_KEY,
        Some(&add),
    );
    assert_eq!(r.status, 403, "{}", r.text());
    let mut stale = add.clone();
    stale["etag"] = json!("0".repeat(64));
    let r = api_call(
        gw.addr(),
        "POST",
        "/api/providers/local/models",
        KEY,
        Some(&stale),
    );
    assert_eq!(r.status, 409, "{}", r.text());
    let auth = format!("Bearer {KEY}");
    let r = request(
        gw.addr(),
        "POST",
        "/api/providers/local/models",
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
            ("If-Match", "\"stale\""),
        ],
        add.to_string().as_bytes(),
    );
    assert_eq!(r.status, 409, "If-Match is checked too: {}", r.text());
    assert_eq!(std::fs::read_to_string(&gw.path).unwrap(), before);

    // With the etag the file was read with.
    let etag = api_call(gw.addr(), "GET", "/api/config", KEY, None).json()["etag"].clone();
    let mut fresh = add.clone();
    fresh["etag"] = etag;
    let r = api_call(
        gw.addr(),
        "POST",
        "/api/providers/local/models",
        KEY,
        Some(&fresh),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    let changes: Vec<(String, String, String)> = v["added"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["name"].as_str().unwrap().to_owned(),
                a["model"].as_str().unwrap().to_owned(),
                a["change"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        changes,
        [
            ("qwen3-8b".into(), "qwen3:8b".into(), "added".into()),
            ("oa".into(), "llama3.2:3b".into(), "appended".into()),
            // `oa` already sends openai "mock", not local "mock".
            ("oa".into(), "mock".into(), "appended".into()),
        ]
    );

    let text = std::fs::read_to_string(&gw.path).unwrap();
    assert!(text.starts_with("# Discovery test gateway.\n"), "{text}");
    assert!(text.contains("# A local Ollama (the mock wants a key all the same)."));
    assert!(text.contains(
        "name = \"oa\"   # keep this comment\ntargets = [{ provider = \"openai\", model = \"mock\" }, { provider = \"local\", model = \"llama3.2:3b\" }, { provider = \"local\", model = \"mock\" }]\n"
    ), "{text}");
    assert!(
        text.contains(
            "\n[[models]]\nname = \"qwen3-8b\"\ntargets = [{ provider = \"local\", model = \"qwen3:8b\" }]\n"
        ),
        "{text}"
    );

    // Served right after the answer.
    let r = post_json(
        gw.addr(),
        "/v1/chat/completions",
        KEY,
        &json!({"model": "qwen3-8b", "messages": [{"role": "user", "content": "hello there"}]}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("hello there"), "{}", r.text());
    let stats = mock_stats(mock.addr);
    assert!(stats["last"]["qwen3:8b"].is_object(), "{stats}");

    // The listing now says so.
    let v = listed(gw.addr(), "local");
    assert_eq!(model(&v, "qwen3:8b")["configured"], json!(["qwen3-8b"]));
    assert_eq!(model(&v, "llama3.2:3b")["configured"], json!(["oa"]));

    // Added again: nothing changes.
    let r = api_call(
        gw.addr(),
        "POST",
        "/api/providers/local/models",
        KEY,
        Some(&json!({"models": [{"id": "qwen3:8b", "name": "qwen3-8b"}]})),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["added"][0]["change"], "unchanged");

    // Bad bodies are clear 400s, an unknown provider a 404.
    for bad in [
        json!({"models": []}),
        json!({"models": [{"id": " "}]}),
        json!({"x": 1}),
    ] {
        let r = api_call(
            gw.addr(),
            "POST",
            "/api/providers/local/models",
            KEY,
            Some(&bad),
        );
        assert_eq!(r.status, 400, "{bad}: {}", r.text());
    }
    let r = api_call(
        gw.addr(),
        "POST",
        "/api/providers/nope/models",
        KEY,
        Some(&add),
    );
    assert_eq!(r.status, 404);
}

#[test]
fn the_views_show_names_descriptions_presets_and_tags() {
    let mock = mock();
    let gw = gateway(&config_text(mock.addr));
    let p = api_call(gw.addr, "GET", "/api/providers/openai", KEY, None).json();
    assert_eq!(p["display_name"], "OpenAI");
    assert_eq!(p["description"], "The mock, as OpenAI");
    assert_eq!(p["tags"], json!(["cloud"]));
    assert_eq!(p["enabled"], true);
    assert_eq!(p["preset"], Value::Null);
    let p = api_call(gw.addr, "GET", "/api/providers/local", KEY, None).json();
    assert_eq!(p["preset"], "ollama");
    assert_eq!(p["listing"], "ollama");
    let m = api_call(gw.addr, "GET", "/api/models/oa", KEY, None).json();
    assert_eq!(m["display_name"], "Mock chat");
    assert_eq!(m["description"], "Answers with an echo");
}
