//! Providers over real sockets: each preset's request shape at the mock
//! (path, credential, token-limit field, how reasoning is asked for, what
//! becomes of a mid-conversation system message, reasoning sent back),
//! a preset's Anthropic-compatible endpoint, `check --explain`,
//! `enabled = false` (and `is_active`) at every level, labels in
//! `/v1/models`, and a config in the earlier systems' shape.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::process::Command;

/// What each preset's vendor expects, written out here rather than read
/// from the preset table, so the table is checked. The base URL path is the
/// vendor's (the host is the mock's).
struct Expect {
    preset: &'static str,
    /// The preset's base URL path, kept when pointing it at the mock.
    prefix: &'static str,
    /// The key's variable (`None`: no credential sent).
    key_env: Option<&'static str>,
    max_field: &'static str,
    /// The fields a request for high-effort reasoning becomes.
    reasoning: Value,
    /// The role a mid-conversation system message is sent as.
    mid_system: &'static str,
    /// Earlier reasoning goes back with its turn.
    history: bool,
}

fn expectations() -> Vec<Expect> {
    let e = |preset, prefix, key_env, max_field, reasoning, mid_system, history| Expect {
        preset,
        prefix,
        key_env,
        max_field,
        reasoning,
        mid_system,
        history,
    };
    let thinking = json!({"thinking": {"type": "enabled"}});
    let enable = json!({"enable_thinking": true});
    let effort = json!({"reasoning_effort": "high"});
    // No field of its own: the client's `reasoning_effort` goes as sent.
    let none = effort.clone();
    vec![
        e(
            "openai",
            "/v1",
            Some("OPENAI_API_KEY"),
            "max_completion_tokens",
            effort.clone(),
            "system",
            false,
        ),
        e(
            "deepseek",
            "",
            Some("DEEPSEEK_API_KEY"),
            "max_tokens",
            thinking.clone(),
            "system",
            true,
        ),
        e(
            "qwen",
            "/compatible-mode/v1",
            Some("DASHSCOPE_API_KEY"),
            "max_tokens",
            enable.clone(),
            "user",
            false,
        ),
        e(
            "glm",
            "/api/paas/v4",
            Some("ZHIPUAI_API_KEY"),
            "max_tokens",
            thinking.clone(),
            "system",
            true,
        ),
        e(
            "glm-intl",
            "/api/paas/v4",
            Some("ZAI_API_KEY"),
            "max_tokens",
            thinking.clone(),
            "system",
            true,
        ),
        e(
            "kimi",
            "/v1",
            Some("MOONSHOT_API_KEY"),
            "max_tokens",
            none.clone(),
            "system",
            true,
        ),
        e(
            "openrouter",
            "/api/v1",
            Some("OPENROUTER_API_KEY"),
            "max_tokens",
            json!({"reasoning": {"effort": "high"}}),
            "system",
            false,
        ),
        e(
            "siliconflow",
            "/v1",
            Some("SILICONFLOW_API_KEY"),
            "max_tokens",
            enable,
            "system",
            false,
        ),
        e(
            "ark",
            "/api/v3",
            Some("ARK_API_KEY"),
            "max_tokens",
            thinking,
            "system",
            false,
        ),
        e(
            "xai",
            "/v1",
            Some("XAI_API_KEY"),
            "max_tokens",
            none.clone(),
            "system",
            false,
        ),
        e(
            "groq",
            "/openai/v1",
            Some("GROQ_API_KEY"),
            "max_completion_tokens",
            none.clone(),
            "system",
            false,
        ),
        e(
            "minimax",
            "/v1",
            Some("MINIMAX_API_KEY"),
            "max_tokens",
            none.clone(),
            "system",
            false,
        ),
        e("ollama", "/v1", None, "max_tokens", effort, "system", false),
        e("lmstudio", "/v1", None, "max_tokens", none, "system", false),
        e(
            "vllm",
            "/v1",
            Some("VLLM_API_KEY"),
            "max_tokens",
            json!({"chat_template_kwargs": {"enable_thinking": true}}),
            "user",
            false,
        ),
    ]
}

fn chat(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "hi there"}]})
}

fn key_of(var: &str) -> String {
    format!("sk-{}-from-env", var.to_ascii_lowercase().replace('_', "-"))
}

/// Every preset key variable set, each to its own value: the gateway
/// inherits them (one process per test under nextest, and the same values
/// in every test).
fn set_key_env() {
    for e in expectations() {
        if let Some(var) = e.key_env {
            std::env::set_var(var, key_of(var));
        }
    }
}

fn preset_config(mock: SocketAddr) -> String {
    let mut c = String::from(
        "[server]\nlisten = \"LISTEN\"\nthreads = 1\nfirst_event_timeout = \"3s\"\n\n",
    );
    for e in expectations() {
        c.push_str(&format!(
            "[[providers]]\nname = \"{p}\"\npreset = \"{p}\"\nbase_url = \"http://{mock}{prefix}\"\n\n\
             [[models]]\nname = \"m-{p}\"\ntargets = [{{ provider = \"{p}\", model = \"up-{p}\" }}]\n\n",
            p = e.preset,
            prefix = e.prefix
        ));
    }
    c.push_str(&format!(
        "[[api_keys]]\nkey = \"{KEY}\"\nname = \"admin\"\nroles = [\"admin\"]\n"
    ));
    c
}

/// A turn that exercises every quirk: a limit, a request for reasoning, a
/// system message mid-conversation, and an earlier tool call with its
/// reasoning.
fn quirky_chat(model: &str) -> Value {
    json!({
        "model": model,
        "max_tokens": 100,
        "reasoning_effort": "high",
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "weather in Paris?"},
            {"role": "assistant", "content": null, "reasoning_content": "use the tool",
             "tool_calls": [{"id": "call_1", "type": "function",
                             "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
            {"role": "system", "content": "answer in French"},
            {"role": "user", "content": "so?"}
        ],
        "tools": [{"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}]
    })
}

#[test]
fn each_preset_sends_what_its_vendor_expects() {
    set_key_env();
    let m = mock();
    let gw = gateway(&preset_config(m.addr));
    for e in expectations() {
        let p = e.preset;
        let r = post_json(
            gw.addr,
            "/v1/chat/completions",
            KEY,
            &quirky_chat(&format!("m-{p}")),
        );
        assert_eq!(r.status, 200, "{p}: {}", r.text());
        let seen = &mock_stats(m.addr)["last"][format!("up-{p}")];
        assert_eq!(
            seen["path"],
            format!("{}/chat/completions", e.prefix),
            "{p}"
        );
        let auth = e.key_env.map(|v| format!("Bearer {}", key_of(v)));
        assert_eq!(seen["authorization"].as_str(), auth.as_deref(), "{p}");
        let body = &seen["body"];
        assert_eq!(body[e.max_field], 100, "{p}: {body}");
        let other = if e.max_field == "max_tokens" {
            "max_completion_tokens"
        } else {
            "max_tokens"
        };
        assert!(body.get(other).is_none(), "{p}: {body}");
        // Exactly the vendor's reasoning fields, and no other's.
        for field in [
            "reasoning_effort",
            "enable_thinking",
            "thinking",
            "reasoning",
            "chat_template_kwargs",
        ] {
            assert_eq!(
                body.get(field),
                e.reasoning.get(field),
                "{p}: {field} in {body}"
            );
        }
        let messages = body["messages"].as_array().unwrap();
        let roles: Vec<&str> = messages
            .iter()
            .map(|m| m["role"].as_str().unwrap())
            .collect();
        assert_eq!(
            roles,
            ["system", "user", "assistant", "tool", e.mid_system, "user"],
            "{p}"
        );
        assert_eq!(messages[4]["content"], "answer in French", "{p}");
        // An Anthropic client's turn, translated: its thinking goes back
        // with the tool call where the vendor wants it.
        let r = post_json(
            gw.addr,
            "/v1/messages",
            KEY,
            &thinking_turn(&format!("m-{p}")),
        );
        assert_eq!(r.status, 200, "{p}: {}", r.text());
        let seen = &mock_stats(m.addr)["last"][format!("up-{p}")]["body"];
        let assistant = &seen["messages"][2];
        assert_eq!(assistant["role"], "assistant", "{p}: {seen}");
        assert_eq!(assistant["tool_calls"][0]["id"], "toolu_1", "{p}: {seen}");
        let back = assistant.get("reasoning_content").and_then(Value::as_str);
        assert_eq!(
            back,
            e.history.then_some("use the tool"),
            "{p}: {assistant}"
        );
    }
}

/// An Anthropic turn with thinking and a tool call in its history.
fn thinking_turn(model: &str) -> Value {
    json!({
        "model": model,
        "max_tokens": 100,
        "system": "be brief",
        "thinking": {"type": "enabled", "budget_tokens": 1024},
        "tools": [{"name": "weather", "input_schema": {"type": "object"}}],
        "messages": [
            {"role": "user", "content": "weather in Paris?"},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "use the tool", "signature": "c2ln"},
                {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Paris"}}
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"}
            ]}
        ]
    })
}

#[test]
fn a_local_servers_key_is_sent_only_when_it_is_set() {
    // VLLM_API_KEY unset (this process never sets it here): no credential.
    std::env::remove_var("VLLM_API_KEY");
    let m = mock();
    let gw = gateway(&format!(
        "[server]\nlisten = \"LISTEN\"\n\n[[providers]]\nname = \"v\"\npreset = \"vllm\"\nbase_url = \"http://{}/v1\"\n\n\
         [[models]]\nname = \"local\"\ntargets = [{{ provider = \"v\", model = \"qwen3\" }}]\n\n\
         [[api_keys]]\nkey = \"{KEY}\"\nname = \"admin\"\nroles = [\"admin\"]\n",
        m.addr
    ));
    let r = post_json(gw.addr, "/v1/chat/completions", KEY, &chat("local"));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        mock_stats(m.addr)["last"]["qwen3"]["authorization"],
        Value::Null
    );
}

#[test]
fn a_presets_anthropic_endpoint_is_taken_with_type_anthropic() {
    set_key_env();
    let m = mock();
    // The vendor's Anthropic path, on the mock's host.
    let gw = gateway(&format!(
        "[server]\nlisten = \"LISTEN\"\n\n[[providers]]\nname = \"ds\"\npreset = \"deepseek\"\ntype = \"anthropic\"\n\
         base_url = \"http://{}/anthropic\"\n\n\
         [[models]]\nname = \"claude-via-deepseek\"\ntargets = [{{ provider = \"ds\", model = \"deepseek-chat\" }}]\n\n\
         [[api_keys]]\nkey = \"{KEY}\"\nname = \"admin\"\nroles = [\"admin\"]\n",
        m.addr
    ));
    let r = post_json(
        gw.addr,
        "/v1/messages",
        KEY,
        &json!({"model": "claude-via-deepseek", "max_tokens": 50,
                "messages": [{"role": "user", "content": "hi"}]}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let seen = &mock_stats(m.addr)["last"]["deepseek-chat"];
    assert_eq!(seen["path"], "/anthropic/v1/messages");
    assert_eq!(seen["x_api_key"], key_of("DEEPSEEK_API_KEY"));
    assert_eq!(seen["anthropic_version"], "2023-06-01");
}

/// `modelswitch check [--explain]` on `text`: (success, stdout, stderr).
fn check(text: &str, explain: bool) -> (bool, String, String) {
    let dir = fresh_dir();
    let path = dir.join("c.toml");
    std::fs::write(&path, text).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_modelswitch"));
    cmd.arg("check")
        .arg("--config")
        .arg(&path)
        .env("RUST_LOG", "warn");
    if explain {
        cmd.arg("--explain");
    }
    let out = cmd.output().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const ADMIN: &str =
    "[[api_keys]]\nkey = \"sk-test-admin-key\"\nname = \"admin\"\nroles = [\"admin\"]\n";

#[test]
fn check_explain_prints_what_a_preset_filled_in_and_never_a_key() {
    set_key_env();
    let text = format!(
        "[[providers]]\nname = \"ds\"\npreset = \"deepseek\"\n\n\
         [[providers]]\nname = \"ds-anthropic\"\npreset = \"deepseek\"\ntype = \"anthropic\"\n\n\
         [[providers]]\nname = \"qwen\"\npreset = \"qwen\"\nmax_tokens_field = \"max_completion_tokens\"\n\n\
         [[providers]]\nname = \"local\"\npreset = \"ollama\"\nbase_url = \"http://10.0.0.5:11434/v1\"\n\n\
         [[models]]\nname = \"m\"\ntargets = [{{ provider = \"ds\", model = \"deepseek-chat\" }}]\n\n{ADMIN}"
    );
    let (ok, out, err) = check(&text, true);
    assert!(ok, "{err}");
    let block = |name: &str| -> String {
        out.split("provider ")
            .find(|b| b.starts_with(&format!("{name}\n")))
            .unwrap_or_else(|| panic!("no block for {name}: {out}"))
            .to_owned()
    };
    let filled = |b: &str, field: &str, value: &str| {
        b.lines().any(|l| {
            l.trim_start().starts_with(&format!("filled in {field} "))
                && l.trim_end().ends_with(value)
        })
    };
    let ds = block("ds");
    assert!(filled(&ds, "type", "openai"), "{ds}");
    assert!(filled(&ds, "base_url", "https://api.deepseek.com"), "{ds}");
    assert!(filled(&ds, "api_key_env", "DEEPSEEK_API_KEY"), "{ds}");
    assert!(filled(&ds, "reasoning_param", "thinking"), "{ds}");
    assert!(filled(&ds, "reasoning_history", "true"), "{ds}");
    let dsa = block("ds-anthropic");
    assert!(
        filled(&dsa, "base_url", "https://api.deepseek.com/anthropic"),
        "{dsa}"
    );
    assert!(!dsa.contains("filled in type"), "type was given: {dsa}");
    // Set by hand: not the preset's.
    let qwen = block("qwen");
    assert!(!qwen.contains("filled in max_tokens_field"), "{qwen}");
    assert!(qwen.contains("max_completion_tokens"), "{qwen}");
    assert!(filled(&qwen, "mid_conversation_system", "demote"), "{qwen}");
    let local = block("local");
    assert!(!local.contains("filled in base_url"), "{local}");
    assert!(local.contains("http://10.0.0.5:11434/v1"), "{local}");
    assert!(local.contains("none (no key configured)"), "{local}");
    // The variable's name, never its value.
    assert!(!out.contains(&key_of("DEEPSEEK_API_KEY")), "{out}");
    assert!(!out.contains(&key_of("DASHSCOPE_API_KEY")), "{out}");
    // Without --explain, the one summary line.
    let (ok, out, _) = check(&text, false);
    assert!(ok && !out.contains("filled in"), "{out}");
}

#[test]
fn preset_mistakes_are_named_by_their_toml_path() {
    set_key_env();
    let bad = |provider: &str| {
        let text = format!(
            "[[providers]]\nname = \"p\"\n{provider}\n\n[[models]]\nname = \"m\"\ntargets = [{{ provider = \"p\", model = \"x\" }}]\n\n{ADMIN}"
        );
        check_config(&text).expect_err("must fail")
    };
    let e = bad("preset = \"deepsek\"");
    assert!(
        e.iter().any(
            |l| l.starts_with("providers[0].preset: 'deepsek' is not a preset (")
                && l.contains("deepseek")
        ),
        "{e:?}"
    );
    let e = bad("preset = \"siliconflow\"\ntype = \"gemini\"");
    assert!(
        e.iter()
            .any(|l| l.starts_with("providers[0].type:") && l.contains("set base_url")),
        "{e:?}"
    );
    // No preset: the type and URL are required, as before.
    let e = bad("api_key = \"sk-x-123456\"");
    assert!(
        e.iter()
            .any(|l| l.starts_with("providers[0].type: required")),
        "{e:?}"
    );
    assert!(
        e.iter()
            .any(|l| l.starts_with("providers[0].base_url: required")),
        "{e:?}"
    );
    // A preset's key variable unset: the same error a typed one gets.
    std::env::remove_var("GROQ_API_KEY");
    let e = bad("preset = \"groq\"");
    assert!(
        e.iter()
            .any(|l| l == "providers[0].api_key_env: environment variable GROQ_API_KEY is not set"),
        "{e:?}"
    );
    let e = bad("preset = \"ollama\"\nreasoning_param = \"effort\"");
    assert!(
        e.iter()
            .any(|l| l.starts_with("providers[0].reasoning_param: 'effort' is not")),
        "{e:?}"
    );
}

/// Providers `on`, `off` (disabled, its key variable unset) on the mock;
/// models over them with every switch.
fn switches_config(mock: SocketAddr, extra: &str) -> String {
    format!(
        r#"
[server]
listen = "LISTEN"
threads = 1
first_event_timeout = "3s"

[[providers]]
name = "on"
type = "openai"
base_url = "http://{mock}/v1"
api_key = "{UPSTREAM_OPENAI_KEY}"

[[providers]]
name = "off"
type = "openai"
base_url = "http://{mock}/v1"
api_key_env = "MODELSWITCH_TEST_UNSET_KEY"
enabled = false

# A disabled provider is skipped: its target is never called.
[[models]]
name = "skips-provider"
targets = [{{ provider = "off", model = "via-off" }}, {{ provider = "on", model = "via-on" }}]

[[models]]
name = "skips-target"
targets = [{{ provider = "on", model = "target-off", enabled = false }}, {{ provider = "on", model = "target-on" }}]

[[models]]
name = "model-off"
is_active = false
targets = [{{ provider = "on", model = "never" }}]

[[models]]
name = "nothing-left"
targets = [{{ provider = "off", model = "via-off" }}, {{ provider = "on", model = "never-2", is_active = false }}]

[[api_keys]]
key = "{KEY}"
name = "admin"
roles = ["admin"]

[[api_keys]]
key = "sk-test-retired-key"
name = "retired"
is_active = false

# An allow-list may still name a model out of service.
[[api_keys]]
key = "{LIMITED_KEY}"
name = "limited"
allowed_models = ["model-off", "skips-target"]
{extra}
"#
    )
}

#[test]
fn enabled_false_takes_each_level_out_of_service() {
    std::env::remove_var("MODELSWITCH_TEST_UNSET_KEY");
    let m = mock();
    let gw = gateway(&switches_config(m.addr, ""));
    for (model, reached) in [("skips-provider", "via-on"), ("skips-target", "target-on")] {
        let r = post_json(gw.addr, "/v1/chat/completions", KEY, &chat(model));
        assert_eq!(r.status, 200, "{model}: {}", r.text());
        let h = r.header("x-modelswitch-attempts").unwrap_or_default();
        assert!(!h.contains("via-off") && !h.contains("target-off"), "{h}");
        assert_eq!(mock_stats(m.addr)["by_model"][reached], 1, "{model}");
    }
    for model in ["model-off", "nothing-left"] {
        let r = post_json(gw.addr, "/v1/chat/completions", KEY, &chat(model));
        assert_eq!(r.status, 404, "{model}: {}", r.text());
        assert_eq!(r.json()["error"]["code"], "model_not_found", "{}", r.text());
    }
    let stats = mock_stats(m.addr);
    for never in ["via-off", "target-off", "never", "never-2"] {
        assert_eq!(stats["by_model"][never], Value::Null, "{never} was called");
    }
    let listed = api_call(gw.addr, "GET", "/v1/models", KEY, None).json();
    let ids: Vec<&str> = listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 2, "{ids:?}");
    assert!(
        ids.contains(&"skips-provider") && ids.contains(&"skips-target"),
        "{ids:?}"
    );
    // A key out of service is refused like an unknown one.
    let r = post_json(
        gw.addr,
        "/v1/chat/completions",
        "sk-test-retired-key",
        &chat("skips-target"),
    );
    assert_eq!(r.status, 401, "{}", r.text());
    // The limited key still reaches the model it may use that is in service.
    let r = post_json(
        gw.addr,
        "/v1/chat/completions",
        LIMITED_KEY,
        &chat("skips-target"),
    );
    assert_eq!(r.status, 200, "{}", r.text());
}

#[test]
fn a_switch_said_twice_must_agree() {
    let m = mock();
    let e = check_config(&switches_config(m.addr, "").replace(
        "name = \"model-off\"\nis_active = false",
        "name = \"model-off\"\nis_active = false\nenabled = true",
    ))
    .expect_err("two switches that disagree");
    assert!(
        e.iter()
            .any(|l| l.starts_with("models[2].is_active: disagrees with enabled")),
        "{e:?}"
    );
}

#[test]
fn a_model_out_of_service_shadows_nothing_and_its_rules_are_set_aside() {
    std::env::remove_var("MODELSWITCH_TEST_UNSET_KEY");
    let m = mock();
    // A rule to a model out of service, a disabled glob before a live one,
    // and the default behind them: the config loads and each request
    // finds what is in service.
    let extra = r#"
[[models]]
name = "gpt-*"
enabled = false
targets = [{ provider = "on", model = "never-glob" }]

[[models]]
name = "g*"
targets = [{ provider = "on", model = "live-glob" }]

[routing]
default_model = "skips-provider"
rules = [{ when = { model = "skips-target" }, use = "model-off" }]
"#;
    let text = switches_config(m.addr, "").replace(
        "[[api_keys]]\nkey = \"sk-test-admin-key\"",
        &format!("{extra}\n[[api_keys]]\nkey = \"sk-test-admin-key\""),
    );
    let gw = gateway(&text);
    let r = post_json(gw.addr, "/v1/chat/completions", KEY, &chat("skips-target"));
    assert_eq!(r.status, 200, "{}", r.text());
    let h = r
        .header("x-modelswitch-attempts")
        .unwrap_or_default()
        .to_owned();
    assert!(!h.contains("by=rule"), "the rule was set aside: {h}");
    let r = post_json(gw.addr, "/v1/chat/completions", KEY, &chat("gpt-4o"));
    assert_eq!(r.status, 200, "{}", r.text());
    let r = post_json(gw.addr, "/v1/chat/completions", KEY, &chat("other"));
    assert_eq!(r.status, 200, "{}", r.text());
    let stats = mock_stats(m.addr);
    assert_eq!(stats["by_model"]["target-on"], 1, "{stats}");
    assert_eq!(stats["by_model"]["live-glob"], 1, "{stats}");
    assert_eq!(stats["by_model"]["via-on"], 1, "the default: {stats}");
    assert_eq!(stats["by_model"]["never-glob"], Value::Null);
    assert_eq!(stats["by_model"]["never"], Value::Null);
}

/// A config as the earlier systems wrote it: `is_active`/`enabled`,
/// `display_name`, `description` and `tags` on providers and models,
/// presets by vendor name.
const EARLIER: &str = r#"
[server]
listen = "LISTEN"

[[providers]]
name = "deepseek"
preset = "deepseek"
base_url = "http://MOCK"
api_key = "sk-earlier-deepseek"
display_name = "DeepSeek 官方"
description = "Primary vendor"
tags = ["cn", "cheap"]
is_active = true

[[providers]]
name = "ollama-box"
preset = "ollama"
base_url = "http://MOCK/v1"
enabled = true
display_name = "Ollama on the GPU box"

[[models]]
name = "deepseek-chat"
display_name = "DeepSeek V3"
description = "General chat, fast"
tags = ["chat", "cheap"]
is_active = true
targets = [
  { provider = "deepseek", model = "deepseek-chat", is_active = true },
  { provider = "ollama-box", model = "qwen3:8b", enabled = true },
]

[[models]]
name = "old-model"
display_name = "Retired"
is_active = false
targets = [{ provider = "deepseek", model = "deepseek-coder" }]

[[api_keys]]
key = "sk-test-admin-key"
name = "admin"
roles = ["admin"]
is_active = true
"#;

#[test]
fn a_config_in_the_earlier_systems_shape_parses_and_its_labels_are_listed() {
    let m = mock();
    let gw = gateway(&EARLIER.replace("MOCK", &m.addr.to_string()));
    let r = post_json(gw.addr, "/v1/chat/completions", KEY, &chat("deepseek-chat"));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        mock_stats(m.addr)["last"]["deepseek-chat"]["path"],
        "/chat/completions"
    );
    let openai = api_call(gw.addr, "GET", "/v1/models", KEY, None).json();
    let entry = &openai["data"][0];
    assert_eq!(openai["data"].as_array().unwrap().len(), 1, "{openai}");
    assert_eq!(entry["id"], "deepseek-chat");
    assert_eq!(entry["display_name"], "DeepSeek V3");
    assert_eq!(entry["description"], "General chat, fast");
    assert_eq!(entry["tags"], json!(["chat", "cheap"]));
    // Each dialect's own label fields.
    let anthropic = request(
        gw.addr,
        "GET",
        "/v1/models",
        &[("x-api-key", KEY), ("anthropic-version", "2023-06-01")],
        b"",
    )
    .json();
    assert_eq!(
        anthropic["data"][0]["display_name"], "DeepSeek V3",
        "{anthropic}"
    );
    let gemini = request(
        gw.addr,
        "GET",
        "/v1beta/models",
        &[("x-goog-api-key", KEY)],
        b"",
    )
    .json();
    assert_eq!(
        gemini["models"][0]["displayName"], "DeepSeek V3",
        "{gemini}"
    );
    assert_eq!(
        gemini["models"][0]["description"], "General chat, fast",
        "{gemini}"
    );
}

#[test]
fn a_provider_without_quirks_chosen_passes_an_openai_clients_body_through() {
    let m = mock();
    let gw = gateway(&format!(
        "[server]\nlisten = \"LISTEN\"\n\n\
         [[providers]]\nname = \"plain\"\ntype = \"openai\"\nbase_url = \"http://{mock}/v1\"\n\n\
         [[providers]]\nname = \"stripped\"\ntype = \"openai\"\nbase_url = \"http://{mock}/v1\"\nreasoning_param = \"none\"\n\n\
         [[providers]]\nname = \"qwen\"\npreset = \"qwen\"\napi_key = \"sk-own-key-1\"\nbase_url = \"http://{mock}/v1\"\n\n\
         [[models]]\nname = \"plain\"\ntargets = [{{ provider = \"plain\", model = \"up-plain\" }}]\n\n\
         [[models]]\nname = \"stripped\"\ntargets = [{{ provider = \"stripped\", model = \"up-stripped\" }}]\n\n\
         [[models]]\nname = \"qwen\"\ntargets = [{{ provider = \"qwen\", model = \"up-qwen\" }}]\n\n{ADMIN}",
        mock = m.addr
    ));
    let body = |model: &str, extra: Value| {
        let mut b = json!({"model": model, "max_completion_tokens": 50, "reasoning_effort": "low",
                           "logit_bias": {"42": -100}, "top_k": 5,
                           "messages": [{"role": "user", "content": "hi"}]});
        b.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        b
    };
    let sent = |model: &str, extra: Value| {
        let r = post_json(gw.addr, "/v1/chat/completions", KEY, &body(model, extra));
        assert_eq!(r.status, 200, "{model}: {}", r.text());
        mock_stats(m.addr)["last"][format!("up-{model}")]["body"].clone()
    };
    // Nothing chosen: every member as the client sent it.
    let b = sent("plain", json!({}));
    assert_eq!(b["max_completion_tokens"], 50, "{b}");
    assert_eq!(b["reasoning_effort"], "low", "{b}");
    assert_eq!(b["logit_bias"], json!({"42": -100}), "{b}");
    assert_eq!(b["top_k"], 5, "{b}");
    // `reasoning_param = "none"` chosen: the client's effort is not sent
    // (the body is encoded for the provider, its default limit field too).
    let b = sent("stripped", json!({}));
    assert!(b.get("reasoning_effort").is_none(), "{b}");
    assert_eq!(b["max_tokens"], 50, "{b}");
    // A preset's choices hold for an OpenAI client's own request...
    let b = sent("qwen", json!({}));
    assert_eq!(b["max_tokens"], 50, "{b}");
    assert!(b.get("max_completion_tokens").is_none(), "{b}");
    assert_eq!(b["enable_thinking"], true, "{b}");
    assert!(b.get("reasoning_effort").is_none(), "{b}");
    // ...unless the body has what a re-encode would lose (n > 1): then it
    // goes as sent.
    let b = sent("qwen", json!({"n": 2}));
    assert_eq!(b["n"], 2, "{b}");
    assert_eq!(b["max_completion_tokens"], 50, "{b}");
}
