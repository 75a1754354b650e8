//! End to end over real sockets: every ingress dialect × every upstream
//! dialect, streaming and not, with parallel tool calls; auth, bad input,
//! large bodies and fallback.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use serde_json::{json, Value};
use std::collections::HashMap;

const TEXT: &str = "Hello from the mock upstream! You said: hi there";

fn tools_openai() -> Value {
    json!([{"type": "function", "function": {"name": "get_weather", "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]}}}])
}

fn tools_anthropic() -> Value {
    json!([{"name": "get_weather", "description": "Weather for a city",
        "input_schema": {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]}}])
}

fn openai_req(model: &str, stream: bool, tools: bool) -> Value {
    let mut v = json!({"model": model, "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi there"}],
                       "stream": stream, "some_future_field": {"x": 1}});
    if stream {
        v["stream_options"] = json!({"include_usage": true});
    }
    if tools {
        v["tools"] = tools_openai();
    }
    v
}

fn anthropic_req(model: &str, stream: bool, tools: bool) -> Value {
    let mut v = json!({"model": model, "max_tokens": 256, "system": "be brief",
                       "messages": [{"role": "user", "content": "hi there"}], "stream": stream, "future_field": true});
    if tools {
        v["tools"] = tools_anthropic();
    }
    v
}

struct Outcome {
    text: String,
    calls: Vec<(String, String, Value)>,
    finish: String,
    input_tokens: u64,
}

fn openai_unary(r: &Response, model: &str) -> Outcome {
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["model"], model, "echo the client's model name");
    let msg = &v["choices"][0]["message"];
    let calls = msg["tool_calls"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|c| {
                    (
                        c["id"].as_str().unwrap().to_owned(),
                        c["function"]["name"].as_str().unwrap().to_owned(),
                        serde_json::from_str(c["function"]["arguments"].as_str().unwrap()).unwrap(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    Outcome {
        text: msg["content"].as_str().unwrap_or_default().to_owned(),
        calls,
        finish: v["choices"][0]["finish_reason"]
            .as_str()
            .unwrap()
            .to_owned(),
        input_tokens: v["usage"]["prompt_tokens"].as_u64().unwrap(),
    }
}

/// Accumulates an OpenAI stream the way the strict SDKs do, asserting what
/// they require on the way: `role` on the first chunk, 0-based tool indices
/// with id and name only on a call's first delta, `choices` on every chunk,
/// a `finish_reason`, then `[DONE]`.
fn openai_stream(r: &Response, model: &str) -> Outcome {
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r
        .header("content-type")
        .unwrap()
        .starts_with("text/event-stream"));
    let evs = r.events();
    assert_eq!(evs.last().unwrap().1, "[DONE]", "terminated with [DONE]");
    let chunks = &evs[..evs.len() - 1];
    assert_eq!(
        chunks[0].1["choices"][0]["delta"]["role"], "assistant",
        "first chunk carries the role"
    );
    let mut text = String::new();
    let mut calls: Vec<(String, String, String)> = Vec::new();
    let mut finish = None;
    let mut input_tokens = 0;
    for (name, c) in chunks {
        assert!(name.is_empty(), "OpenAI chunks have no event line");
        assert_eq!(c["model"], model);
        let choices = c["choices"].as_array().expect("every chunk has choices");
        if choices.is_empty() {
            input_tokens = c["usage"]["prompt_tokens"].as_u64().unwrap();
            continue;
        }
        let d = &choices[0]["delta"];
        if let Some(t) = d["content"].as_str() {
            text.push_str(t);
        }
        for tc in d["tool_calls"].as_array().into_iter().flatten() {
            let i = tc["index"].as_u64().unwrap() as usize;
            if i == calls.len() {
                calls.push((
                    tc["id"].as_str().unwrap().to_owned(),
                    tc["function"]["name"].as_str().unwrap().to_owned(),
                    String::new(),
                ));
            } else {
                assert!(i < calls.len(), "tool index {i} skips a call");
                assert!(
                    tc.get("id").is_none() && tc["function"].get("name").is_none(),
                    "id/name only on the first delta"
                );
            }
            calls[i]
                .2
                .push_str(tc["function"]["arguments"].as_str().unwrap_or_default());
        }
        if let Some(f) = choices[0]["finish_reason"].as_str() {
            finish = Some(f.to_owned());
        }
    }
    Outcome {
        text,
        calls: calls
            .into_iter()
            .map(|(i, n, a)| (i, n, serde_json::from_str(&a).unwrap()))
            .collect(),
        finish: finish.expect("a finish_reason"),
        input_tokens,
    }
}

fn anthropic_unary(r: &Response, model: &str) -> Outcome {
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["type"], "message");
    assert_eq!(v["model"], model);
    let mut text = String::new();
    let mut calls = Vec::new();
    for b in v["content"].as_array().unwrap() {
        match b["type"].as_str().unwrap() {
            "text" => text.push_str(b["text"].as_str().unwrap()),
            "tool_use" => calls.push((
                b["id"].as_str().unwrap().to_owned(),
                b["name"].as_str().unwrap().to_owned(),
                b["input"].clone(),
            )),
            _ => {}
        }
    }
    let u = &v["usage"];
    Outcome {
        text,
        calls,
        finish: v["stop_reason"].as_str().unwrap().to_owned(),
        input_tokens: u["input_tokens"].as_u64().unwrap()
            + u["cache_read_input_tokens"].as_u64().unwrap(),
    }
}

/// Accumulates an Anthropic stream, asserting what the Anthropic SDKs and
/// Claude Code require: `event:` lines, contiguous 0-based blocks, deltas
/// only to open blocks of their type, tool input only via
/// `input_json_delta`, every block stopped and the stream finished.
fn anthropic_stream(r: &Response, model: &str) -> Outcome {
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r
        .header("content-type")
        .unwrap()
        .starts_with("text/event-stream"));
    let evs = r.events();
    assert_eq!(evs[0].0, "message_start");
    assert_eq!(evs[0].1["message"]["model"], model);
    assert!(
        evs[0].1["message"]["usage"]["input_tokens"]
            .as_u64()
            .unwrap()
            > 0,
        "message_start carries input tokens"
    );
    let mut open: HashMap<u64, (String, String, String, String)> = HashMap::new(); // idx -> (type, text/json, id, name)
    let mut done: Vec<(String, String, String, String)> = Vec::new();
    let mut next = 0;
    let mut finish = None;
    let mut input_tokens = evs[0].1["message"]["usage"]["input_tokens"]
        .as_u64()
        .unwrap();
    for (name, v) in &evs {
        assert_eq!(v["type"], name.as_str(), "event line equals data.type");
        match name.as_str() {
            "content_block_start" => {
                assert_eq!(v["index"], next, "block indices are contiguous from 0");
                next += 1;
                let b = &v["content_block"];
                let ty = b["type"].as_str().unwrap().to_owned();
                if ty == "tool_use" {
                    assert_eq!(
                        b["input"],
                        json!({}),
                        "tool input only via input_json_delta"
                    );
                }
                open.insert(
                    v["index"].as_u64().unwrap(),
                    (
                        ty,
                        String::new(),
                        b["id"].as_str().unwrap_or("").into(),
                        b["name"].as_str().unwrap_or("").into(),
                    ),
                );
            }
            "content_block_delta" => {
                let blk = open
                    .get_mut(&v["index"].as_u64().unwrap())
                    .expect("delta to an open block");
                let d = &v["delta"];
                match d["type"].as_str().unwrap() {
                    "text_delta" => {
                        assert_eq!(blk.0, "text");
                        blk.1.push_str(d["text"].as_str().unwrap());
                    }
                    "input_json_delta" => {
                        assert_eq!(blk.0, "tool_use");
                        blk.1.push_str(d["partial_json"].as_str().unwrap());
                    }
                    "thinking_delta" | "signature_delta" => assert_eq!(blk.0, "thinking"),
                    other => panic!("unexpected delta {other}"),
                }
            }
            "content_block_stop" => done.push(
                open.remove(&v["index"].as_u64().unwrap())
                    .expect("stop of an open block"),
            ),
            "message_delta" => {
                finish = Some(v["delta"]["stop_reason"].as_str().unwrap().to_owned());
                if let Some(i) = v["usage"]["input_tokens"].as_u64() {
                    input_tokens = i + v["usage"]["cache_read_input_tokens"].as_u64().unwrap_or(0);
                }
            }
            _ => {}
        }
    }
    assert_eq!(evs.last().unwrap().0, "message_stop", "always finished");
    assert_eq!(evs[evs.len() - 2].0, "message_delta");
    assert!(open.is_empty(), "every block stopped");
    Outcome {
        text: done
            .iter()
            .filter(|b| b.0 == "text")
            .map(|b| b.1.clone())
            .collect(),
        calls: done
            .iter()
            .filter(|b| b.0 == "tool_use")
            .map(|b| {
                (
                    b.2.clone(),
                    b.3.clone(),
                    serde_json::from_str(&b.1).unwrap(),
                )
            })
            .collect(),
        finish: finish.unwrap(),
        input_tokens,
    }
}

#[test]
fn every_ingress_and_upstream_pair_streaming_and_not_with_parallel_tools() {
    let m = mock();
    let gw = gateway(&config(
        m.addr,
        &[
            ("to-openai", &[("openai", "mock")]),
            ("to-anthropic", &[("anthropic", "mock")]),
        ],
        "",
    ));
    for upstream in ["to-openai", "to-anthropic"] {
        for stream in [false, true] {
            for tools in [false, true] {
                let ctx = format!("upstream={upstream} stream={stream} tools={tools}");
                // OpenAI client
                let r = post_json(
                    gw.addr,
                    "/v1/chat/completions",
                    KEY,
                    &openai_req(upstream, stream, tools),
                );
                let o = if stream {
                    openai_stream(&r, upstream)
                } else {
                    openai_unary(&r, upstream)
                };
                check(&o, tools, "tool_calls", "stop", &ctx);
                // Anthropic client
                let r = post_json(
                    gw.addr,
                    "/v1/messages?beta=true",
                    KEY,
                    &anthropic_req(upstream, stream, tools),
                );
                let o = if stream {
                    anthropic_stream(&r, upstream)
                } else {
                    anthropic_unary(&r, upstream)
                };
                check(&o, tools, "tool_use", "end_turn", &ctx);
            }
        }
    }
}

fn check(o: &Outcome, tools: bool, tool_finish: &str, stop_finish: &str, ctx: &str) {
    assert!(o.input_tokens > 0, "{ctx}: usage carried");
    if tools {
        assert_eq!(o.finish, tool_finish, "{ctx}");
        let got: Vec<(&str, &Value)> = o.calls.iter().map(|(_, n, a)| (n.as_str(), a)).collect();
        assert_eq!(
            got,
            vec![
                ("get_weather", &json!({"location": "Paris"})),
                ("get_weather", &json!({"location": "Tokyo"}))
            ],
            "{ctx}"
        );
        assert!(
            o.calls[0].0 != o.calls[1].0 && !o.calls[0].0.is_empty(),
            "{ctx}: distinct call ids"
        );
    } else {
        assert_eq!(o.finish, stop_finish, "{ctx}");
        assert_eq!(o.text, TEXT, "{ctx}");
        assert!(o.calls.is_empty());
    }
}

#[test]
fn interleaved_parallel_openai_tool_calls_reach_anthropic_clients_intact() {
    let m = mock();
    let gw = gateway(&config(
        m.addr,
        &[("inter", &[("openai", "mock;calls=3;interleave=1")])],
        "",
    ));
    let r = post_json(
        gw.addr,
        "/v1/messages",
        KEY,
        &anthropic_req("inter", true, true),
    );
    let o = anthropic_stream(&r, "inter");
    let args: Vec<Value> = o.calls.iter().map(|c| c.2.clone()).collect();
    assert_eq!(
        args,
        vec![
            json!({"location": "Paris"}),
            json!({"location": "Tokyo"}),
            json!({"location": "Lima"})
        ]
    );
    assert_eq!(o.finish, "tool_use");
}

#[test]
fn tool_results_round_trip_across_dialects() {
    let m = mock();
    let gw = gateway(&config(
        m.addr,
        &[
            ("to-anthropic", &[("anthropic", "mock")]),
            ("to-openai", &[("openai", "mock")]),
        ],
        "",
    ));
    // OpenAI client, Anthropic upstream: two results become one user turn.
    let body = json!({"model": "to-anthropic", "tools": tools_openai(), "messages": [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": null, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"location\":\"Paris\"}"}},
            {"id": "functions.get_weather:1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"location\":\"Tokyo\"}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
        {"role": "tool", "tool_call_id": "functions.get_weather:1", "content": "rain"}]});
    let o = openai_unary(
        &post_json(gw.addr, "/v1/chat/completions", KEY, &body),
        "to-anthropic",
    );
    assert_eq!(o.text, "Tool results: sunny | rain");
    let sent = &mock_stats(m.addr)["last"]["mock"]["body"];
    let turn = &sent["messages"][2];
    assert_eq!(turn["role"], "user");
    assert_eq!(
        turn["content"][1]["tool_use_id"], "functions_get_weather_1",
        "ids sanitized identically for use and result"
    );
    assert_eq!(
        sent["messages"][1]["content"][1]["id"],
        "functions_get_weather_1"
    );

    // Anthropic client, OpenAI upstream: results become tool messages.
    let body = json!({"model": "to-openai", "max_tokens": 100, "tools": tools_anthropic(), "messages": [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"location": "Oslo"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "text", "text": "snow"}]}]}]});
    let o = anthropic_unary(&post_json(gw.addr, "/v1/messages", KEY, &body), "to-openai");
    assert_eq!(o.text, "Tool results: snow");
    let sent = &mock_stats(m.addr)["last"]["mock"]["body"];
    assert_eq!(
        sent["messages"][2],
        json!({"role": "tool", "tool_call_id": "toolu_1", "content": "snow"})
    );
    assert_eq!(
        sent["messages"][1]["tool_calls"][0]["function"]["arguments"],
        "{\"location\":\"Oslo\"}"
    );
}

#[test]
fn reasoning_crosses_dialects() {
    let m = mock();
    let gw = gateway(&config(
        m.addr,
        &[
            ("think-oa", &[("openai", "mock;reasoning=1")]),
            ("think-an", &[("anthropic", "mock;reasoning=1")]),
        ],
        "",
    ));
    // OpenAI reasoning_content → Anthropic thinking block, signed by the gateway.
    let r = post_json(
        gw.addr,
        "/v1/messages",
        KEY,
        &anthropic_req("think-oa", true, false),
    );
    let evs = r.events();
    let start = evs
        .iter()
        .find(|(n, v)| n == "content_block_start" && v["content_block"]["type"] == "thinking")
        .expect("thinking block");
    assert_eq!(start.1["index"], 0);
    assert!(evs
        .iter()
        .any(|(_, v)| v["delta"]["thinking"] == "Let me think about that."));
    assert!(evs
        .iter()
        .any(|(_, v)| v["delta"]["type"] == "signature_delta"));
    anthropic_stream(&r, "think-oa");
    // Anthropic thinking → OpenAI reasoning_content.
    let r = post_json(
        gw.addr,
        "/v1/chat/completions",
        KEY,
        &openai_req("think-an", false, false),
    );
    assert_eq!(
        r.json()["choices"][0]["message"]["reasoning_content"],
        "Let me think about that."
    );
    let r = post_json(
        gw.addr,
        "/v1/chat/completions",
        KEY,
        &openai_req("think-an", true, false),
    );
    assert!(r
        .events()
        .iter()
        .any(|(_, v)| v["choices"][0]["delta"]["reasoning_content"] == "Let me think about that."));
}

#[test]
fn credentials_are_replaced_and_query_strings_not_forwarded() {
    let m = mock();
    let gw = gateway(&config(
        m.addr,
        &[
            ("to-openai", &[("openai", "up-oa")]),
            ("to-anthropic", &[("anthropic", "up-an")]),
        ],
        "",
    ));
    let r = request(
        gw.addr,
        "POST",
        "/v1/messages?beta=true",
        &[
            ("x-api-key", KEY),
            ("anthropic-beta", "claude-code-20250219"),
            ("Accept-Encoding", "gzip"),
        ],
        anthropic_req("to-openai", false, false)
            .to_string()
            .as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let r2 = request(
        gw.addr,
        "POST",
        "/v1/messages?beta=true",
        &[
            ("x-api-key", KEY),
            ("anthropic-beta", "claude-code-20250219"),
        ],
        anthropic_req("to-anthropic", false, false)
            .to_string()
            .as_bytes(),
    );
    assert_eq!(r2.status, 200, "{}", r2.text());
    let s = mock_stats(m.addr);
    let oa = &s["last"]["up-oa"];
    assert_eq!(oa["path"], "/v1/chat/completions");
    assert_eq!(oa["authorization"], format!("Bearer {UPSTREAM_OPENAI_KEY}"));
    assert_eq!(oa["x_api_key"], Value::Null);
    assert_eq!(
        oa["anthropic_beta"],
        Value::Null,
        "betas are not forwarded across dialects"
    );
    assert_eq!(oa["accept_encoding"], Value::Null);
    let an = &s["last"]["up-an"];
    assert_eq!(an["path"], "/v1/messages");
    assert_eq!(an["x_api_key"], UPSTREAM_ANTHROPIC_KEY);
    assert_eq!(an["authorization"], Value::Null);
    assert_eq!(an["anthropic_version"], "2023-06-01");
    assert_eq!(
        an["anthropic_beta"], "claude-code-20250219",
        "same dialect keeps the client's betas"
    );
}

#[test]
fn bodies_over_one_mebibyte_arrive_whole_both_ways() {
    let m = mock();
    let gw = gateway(&config(
        m.addr,
        &[
            ("to-openai", &[("openai", "big-oa")]),
            ("to-anthropic", &[("anthropic", "big-an")]),
        ],
        "",
    ));
    let big = "x".repeat(1_300_000);
    for (path, model) in [
        ("/v1/chat/completions", "to-openai"),
        ("/v1/chat/completions", "to-anthropic"),
        ("/v1/messages", "to-openai"),
        ("/v1/messages", "to-anthropic"),
    ] {
        let mut body = if path.contains("chat") {
            openai_req(model, true, false)
        } else {
            anthropic_req(model, true, false)
        };
        body["messages"] = json!([{"role": "user", "content": big}]);
        let r = post_json(gw.addr, path, KEY, &body);
        assert_eq!(r.status, 200, "{path} {model}: {}", r.text());
        let up = if model == "to-openai" {
            "big-oa"
        } else {
            "big-an"
        };
        let last = &mock_stats(m.addr)["last"][up];
        assert!(
            last["body_len"].as_u64().unwrap() > 1_300_000,
            "{path} {model}"
        );
        assert_eq!(
            last["content_length"],
            last["body_len"].to_string(),
            "exact content-length"
        );
    }
}

#[test]
fn auth_and_routing_errors_speak_the_callers_dialect() {
    let m = mock();
    let gw = gateway(&config(
        m.addr,
        &[
            ("oa", &[("openai", "mock")]),
            ("other", &[("openai", "mock")]),
        ],
        "",
    ));
    let oa = openai_req("oa", false, false);
    let an = anthropic_req("oa", false, false);

    let r = post_json(gw.addr, "/v1/chat/completions", "sk-wrong-key-123", &oa);
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["error"]["code"], "invalid_api_key");
    let r = request(
        gw.addr,
        "POST",
        "/v1/messages",
        &[("x-api-key", "sk-wrong-key-123")],
        an.to_string().as_bytes(),
    );
    assert_eq!(r.status, 401);
    assert_eq!(
        r.json(),
        json!({"type": "error", "error": {"type": "authentication_error", "message": "invalid API key"}})
    );
    let r = request(
        gw.addr,
        "POST",
        "/v1/messages",
        &[],
        an.to_string().as_bytes(),
    );
    assert_eq!(r.status, 401);

    // bare `Authorization: sk-…`
    let r = request(
        gw.addr,
        "POST",
        "/v1/chat/completions",
        &[("Authorization", KEY)],
        oa.to_string().as_bytes(),
    );
    assert_eq!(r.status, 200);

    let r = post_json(
        gw.addr,
        "/v1/messages",
        LIMITED_KEY,
        &anthropic_req("other", false, false),
    );
    assert_eq!(r.status, 403);
    assert_eq!(r.json()["error"]["type"], "permission_error");
    let r = post_json(
        gw.addr,
        "/v1/chat/completions",
        KEY,
        &openai_req("nope", false, false),
    );
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["error"]["code"], "model_not_found");
    let r = post_json(
        gw.addr,
        "/anthropic/messages",
        KEY,
        &anthropic_req("nope", false, false),
    );
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["error"]["type"], "not_found_error");
    assert_eq!(r.header("x-should-retry"), Some("false"));
}

#[test]
fn bad_input_is_a_clear_error_never_a_crash() {
    let m = mock();
    let gw = gateway(&config(
        m.addr,
        &[("to-anthropic", &[("anthropic", "mock")])],
        "max_request_body_bytes = 2000000",
    ));
    let auth = format!("Bearer {KEY}");
    let h = [("Authorization", auth.as_str())];
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        ("/v1/chat/completions", b"{not json".to_vec(), 400, "not a valid JSON"),
        ("/v1/chat/completions", b"[1,2]".to_vec(), 400, "JSON object"),
        ("/v1/chat/completions", br#"{"model":"to-anthropic"}"#.to_vec(), 400, "messages"),
        ("/v1/chat/completions", br#"{"model":7,"messages":[]}"#.to_vec(), 400, "model"),
        ("/v1/chat/completions", br#"{"model":"to-anthropic","messages":[{"role":"user","content":5}]}"#.to_vec(), 400, "messages[0].content"),
        ("/v1/chat/completions", b"{\"model\":\"to-anthropic\",\"messages\":[{\"role\":\"user\",\"content\":\"\xff\xfe\"}]}".to_vec(), 400, "UTF-8"),
        ("/v1/messages", br#"{"model":"to-anthropic","messages":{"role":"user"}}"#.to_vec(), 400, "messages"),
        ("/v1/chat/completions", br#"{"model":"to-anthropic","messages":[{"role":"tool","content":"x"}]}"#.to_vec(), 400, "tool_call_id"),
        ("/v1/chat/completions", br#"{"model":"to-anthropic","messages":[{"role":"user","content":"x"}],"n":3}"#.to_vec(), 400, "n must be 1"),
    ];
    for (path, body, status, needle) in cases {
        let r = request(gw.addr, "POST", path, &h, &body);
        assert_eq!(
            r.status,
            status,
            "{path} {:?}: {}",
            String::from_utf8_lossy(&body),
            r.text()
        );
        let v = r.json();
        let msg = &v["error"]["message"];
        assert!(
            msg.as_str().unwrap().contains(needle),
            "{} !~ {needle}",
            msg
        );
        if path == "/v1/messages" {
            assert_eq!(v["type"], "error");
        }
    }
    let r = request(gw.addr, "POST", "/v1/messages", &h, &vec![b' '; 2_500_000]);
    assert_eq!(r.status, 413);
    assert_eq!(r.json()["type"], "error");
    // the gateway is still alive and well
    assert_eq!(request(gw.addr, "GET", "/health", &[], b"").status, 200);
}

#[test]
fn health_models_and_count_tokens() {
    let m = mock();
    let gw = gateway(&config(
        m.addr,
        &[
            ("oa", &[("openai", "mock")]),
            ("b", &[("anthropic", "mock")]),
        ],
        "",
    ));
    for (method, path) in [
        ("GET", "/"),
        ("HEAD", "/"),
        ("GET", "/health"),
        ("HEAD", "/health"),
    ] {
        assert_eq!(
            request(gw.addr, method, path, &[], b"").status,
            200,
            "{method} {path}"
        );
    }
    let auth = format!("Bearer {KEY}");
    let r = request(
        gw.addr,
        "GET",
        "/v1/models",
        &[("Authorization", &auth)],
        b"",
    );
    let ids: Vec<String> = r.json()["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, vec!["oa", "b"]);
    let r = request(
        gw.addr,
        "GET",
        "/v1/models",
        &[
            ("x-api-key", LIMITED_KEY),
            ("anthropic-version", "2023-06-01"),
        ],
        b"",
    );
    let v = r.json();
    assert_eq!(v["data"][0]["type"], "model");
    assert_eq!(v["data"].as_array().unwrap().len(), 1);
    assert_eq!(v["has_more"], false);
    assert_eq!(request(gw.addr, "GET", "/v1/models", &[], b"").status, 401);

    let short = post_json(
        gw.addr,
        "/v1/messages/count_tokens?beta=true",
        KEY,
        &json!({"model": "b", "messages": [{"role": "user", "content": "hi"}]}),
    );
    let long = post_json(
        gw.addr,
        "/v1/messages/count_tokens",
        KEY,
        &json!({"model": "b", "system": "x".repeat(4000), "messages": [{"role": "user", "content": "hi"}]}),
    );
    let (s, l) = (
        short.json()["input_tokens"].as_u64().unwrap(),
        long.json()["input_tokens"].as_u64().unwrap(),
    );
    assert!(s >= 1 && (1000..1100).contains(&l), "estimates {s} {l}");
}

#[test]
fn falls_over_before_commit_and_never_after() {
    let m = mock();
    let gw = gateway(&config(
        m.addr,
        &[
            ("f-503", &[("openai", "a;status=503"), ("anthropic", "b")]),
            ("f-429", &[("anthropic-2", "a;status=429"), ("openai", "b")]),
            ("f-dead", &[("dead", "x"), ("openai", "b")]),
            (
                "f-close",
                &[("openai", "a;fault=close_before_first"), ("anthropic", "b")],
            ),
            (
                "f-err-first",
                &[
                    ("anthropic", "a;fault=error_event;after=0"),
                    ("openai", "b"),
                ],
            ),
            (
                "f-malformed",
                &[("openai", "a;fault=malformed;after=0"), ("openai", "b")],
            ),
            ("f-400", &[("openai", "a;status=400"), ("anthropic", "b")]),
            (
                "f-all",
                &[("openai", "a;status=503"), ("anthropic-2", "b;status=429")],
            ),
            (
                "f-mid",
                &[("openai", "a;fault=close_mid;after=3"), ("anthropic", "b")],
            ),
            (
                "f-mid-an",
                &[
                    ("anthropic", "a;fault=error_event;after=5"),
                    ("openai", "b"),
                ],
            ),
        ],
        "",
    ));
    for model in [
        "f-503",
        "f-429",
        "f-dead",
        "f-close",
        "f-err-first",
        "f-malformed",
    ] {
        for stream in [false, true] {
            if !stream && matches!(model, "f-close" | "f-err-first") {
                continue;
            }
            let r = post_json(
                gw.addr,
                "/v1/chat/completions",
                KEY,
                &openai_req(model, stream, false),
            );
            let o = if stream {
                openai_stream(&r, model)
            } else {
                openai_unary(&r, model)
            };
            assert_eq!(o.text, TEXT, "{model} stream={stream}");
            let attempts = r
                .header("x-modelswitch-attempts")
                .unwrap_or_else(|| panic!("{model}: {:?}", r.headers));
            assert!(
                !attempts.contains("=ok") && attempts.contains('='),
                "{model}: the failed first target is listed: {attempts}"
            );
            let r = post_json(
                gw.addr,
                "/v1/messages",
                KEY,
                &anthropic_req(model, stream, false),
            );
            let o = if stream {
                anthropic_stream(&r, model)
            } else {
                anthropic_unary(&r, model)
            };
            assert_eq!(o.text, TEXT, "{model} stream={stream}");
        }
    }
    // A client error is not retried elsewhere, and keeps its status.
    let before = mock_stats(m.addr)["by_model"]["b"].as_u64().unwrap();
    let r = post_json(
        gw.addr,
        "/v1/messages",
        KEY,
        &anthropic_req("f-400", false, false),
    );
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["type"], "invalid_request_error");
    assert_eq!(
        mock_stats(m.addr)["by_model"]["b"].as_u64().unwrap(),
        before,
        "no fallback on 400"
    );
    // Everything failed: the rate limit wins, with its Retry-After.
    let r = post_json(
        gw.addr,
        "/v1/chat/completions",
        KEY,
        &openai_req("f-all", false, false),
    );
    assert_eq!(r.status, 429);
    assert_eq!(r.header("retry-after"), Some("1"));
    assert!(r
        .header("x-modelswitch-attempts")
        .unwrap()
        .contains("a;status=503=503"));

    // After commit: the dialect's in-stream error, never a clean finish.
    let r = post_json(
        gw.addr,
        "/v1/chat/completions",
        KEY,
        &openai_req("f-mid", true, false),
    );
    assert_eq!(r.status, 200);
    let evs = r.events();
    assert!(evs.last().unwrap().1.get("error").is_some(), "{}", r.text());
    assert!(!r.text().contains("[DONE]") && !r.text().contains("finish_reason\":\"stop"));
    let r = post_json(
        gw.addr,
        "/v1/messages",
        KEY,
        &anthropic_req("f-mid", true, false),
    );
    let evs = r.events();
    assert_eq!(evs.last().unwrap().0, "error", "{}", r.text());
    assert!(!evs.iter().any(|(n, _)| n == "message_stop"));
    let r = post_json(
        gw.addr,
        "/v1/chat/completions",
        KEY,
        &openai_req("f-mid-an", true, false),
    );
    let last = r.events().last().unwrap().1.clone();
    assert_eq!(
        last["error"]["message"],
        "mock: overloaded mid-stream",
        "{}",
        r.text()
    );
    // …and nothing was retried after the commit.
    let s = mock_stats(m.addr);
    assert_eq!(s["by_model"]["a;fault=close_mid;after=3"], 2);
    assert_eq!(s["by_model"]["a;fault=error_event;after=5"], 1);
}

#[test]
fn a_stalled_stream_after_commit_ends_with_an_error_event() {
    let m = mock();
    let gw = gateway(&config(
        m.addr,
        &[("slow", &[("anthropic", "a;fault=stall;after=4")])],
        "",
    ));
    let r = post_json(
        gw.addr,
        "/v1/messages",
        KEY,
        &anthropic_req("slow", true, false),
    );
    let evs = r.events();
    assert_eq!(evs.last().unwrap().0, "error");
    assert_eq!(evs.last().unwrap().1["error"]["type"], "timeout_error");
}

#[test]
fn a_second_gateway_on_a_taken_address_refuses_to_start() {
    let m = mock();
    let first = gateway(&config(m.addr, &[], ""));
    let dir = std::env::temp_dir().join(format!("modelswitch-dup-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("gateway.toml");
    std::fs::write(
        &path,
        config(m.addr, &[], "").replace("LISTEN", &first.addr.to_string()),
    )
    .unwrap();
    let mut second = std::process::Command::new(env!("CARGO_BIN_EXE_modelswitch"))
        .arg("--config")
        .arg(&path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Bounded: a gateway that wrongly starts would run forever.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let status = loop {
        if let Some(status) = second.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = second.kill();
            let _ = second.wait();
            panic!("the second gateway started on a taken address");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut second.stderr.take().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.code(), Some(2));
    assert!(
        stderr.contains(&format!("cannot listen on {}", first.addr)),
        "{stderr}"
    );
    assert_eq!(
        request(first.addr, "GET", "/health", &[], b"").status,
        200,
        "the first one is unaffected"
    );
}

#[test]
fn the_json_access_log_writes_one_parsable_object_per_request() {
    let m = mock();
    let text = config(m.addr, &[], "access_log = \"json\"");
    let gw = live_gateway(&text);
    let mark = gw.log_mark();
    let mut body =
        json!({"model": "oa", "messages": [{"role": "user", "content": "hi\n\"quoted\""}]});
    let r = post_json(gw.addr(), "/v1/chat/completions", KEY, &body);
    assert_eq!(r.status, 200, "{}", r.text());
    body["model"] = json!("no-such-model\n{\"forged\":1}");
    let r = post_json(gw.addr(), "/v1/chat/completions", KEY, &body);
    assert_eq!(r.status, 404, "{}", r.text());
    let mut lines = Vec::new();
    let found = wait_until(std::time::Duration::from_secs(5), || {
        lines = gw
            .log_since(mark)
            .lines()
            .filter(|l| l.starts_with('{'))
            .map(str::to_owned)
            .collect();
        lines.len() >= 2
    });
    assert!(found, "{}", gw.log_since(mark));
    let served: Value = serde_json::from_str(&lines[0]).unwrap();
    assert_eq!(served["status"], 200);
    assert_eq!(served["model"], "oa");
    assert_eq!(served["key"], "admin");
    assert_eq!(served["provider"], "openai");
    assert!(served["usage"]["input"].as_u64().unwrap() > 0, "{served}");
    assert_eq!(served["attempts"][0]["outcome"], "ok");
    let refused: Value = serde_json::from_str(&lines[1]).unwrap();
    assert_eq!(refused["status"], 404);
    assert!(refused["error"]
        .as_str()
        .unwrap()
        .contains("not configured"));
    // Client text stays inside its string: nothing forged a line.
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(!gw.log_since(mark).contains(KEY), "no key in the log");
}
