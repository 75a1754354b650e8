//! Tool emulation over real sockets: a target configured `capabilities =
//! { tools = false }, tool_emulation = true` in front of the mock's
//! text-only model (`text_only=1`: it refuses native tools with a 400 and
//! writes calls as `<tool_call>` text). Each client dialect (OpenAI Chat,
//! Anthropic, Responses, Gemini) gets real tool calls on turn 1 and,
//! having sent the result back, the text answer quoting it on turn 2; the
//! mock saw no native tools, the rendered instruction and the
//! `<tool_response>`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use serde_json::{json, Value};

const RESULT: &str = "sunny, 21C in Paris";

/// One gateway + mock: `te-*` models emulate tools on the mock's text-only
/// model (OpenAI and Anthropic upstreams, and a sloppy writer of calls);
/// `raw` sends native tools to it (the mock's 400, proving it checks).
struct Env {
    mock: Proc,
    gw: Proc,
}

fn env() -> Env {
    let mock = mock();
    let mut config = config(mock.addr, &[], "");
    for (name, provider, model) in [
        ("te-openai", "openai", "mock;text_only=1"),
        ("te-anthropic", "anthropic", "mock;text_only=1;u=a"),
        ("te-loose", "openai", "mock;text_only=loose"),
    ] {
        config.push_str(&format!(
            "\n[[models]]\nname = \"{name}\"\ncapabilities = {{ tools = false }}\ntool_emulation = true\ntargets = [{{ provider = \"{provider}\", model = \"{model}\" }}]\n"
        ));
    }
    config.push_str(
        "\n[[models]]\nname = \"raw\"\ntargets = [{ provider = \"openai\", model = \"mock;text_only=1;u=raw\" }]\n",
    );
    let gw = gateway(&config);
    Env { mock, gw }
}

fn upstream_model(model: &str) -> &'static str {
    match model {
        "te-openai" => "mock;text_only=1",
        "te-anthropic" => "mock;text_only=1;u=a",
        "te-loose" => "mock;text_only=loose",
        _ => panic!("{model}"),
    }
}

/// The body the mock last got for `model`, as text.
fn seen_by_mock(e: &Env, model: &str) -> Value {
    let stats = mock_stats(e.mock.addr);
    stats["last"][upstream_model(model)]["body"].clone()
}

/// Turn 1 reached the mock as text only: no native tools, the
/// instruction with the tool in the system prompt.
fn assert_turn1_upstream(e: &Env, model: &str) {
    let body = seen_by_mock(e, model);
    assert!(
        body.get("tools").is_none(),
        "native tools reached the mock: {body}"
    );
    assert!(body.get("tool_choice").is_none(), "{body}");
    let text = body.to_string();
    assert!(
        text.contains("You are provided with function signatures within <tools></tools> XML tags"),
        "instruction missing: {body}"
    );
    assert!(
        text.contains("get_weather") && text.contains("<tool_call>"),
        "{body}"
    );
}

/// Turn 2 reached the mock as text: the call as `<tool_call>` text, the
/// result in a `<tool_response>`.
fn assert_turn2_upstream(e: &Env, model: &str) {
    let body = seen_by_mock(e, model);
    assert!(
        body.get("tools").is_none(),
        "native tools reached the mock: {body}"
    );
    let text = body.to_string();
    assert!(text.contains("<tool_response>"), "no tool_response: {body}");
    assert!(text.contains(RESULT), "{body}");
    assert!(
        !text.contains("tool_call_id") && !text.contains("tool_use_id"),
        "{body}"
    );
    assert!(!text.contains("\"role\":\"tool\""), "{body}");
}

#[derive(Debug, Default)]
struct Answer {
    text: String,
    /// (id, name, arguments)
    calls: Vec<(String, String, Value)>,
    finish: String,
}

// ------------------------------------------------------------ OpenAI chat

fn openai_tools() -> Value {
    json!([{"type": "function", "function": {"name": "get_weather", "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]}}}])
}

fn openai_turn1(model: &str, stream: bool) -> Value {
    json!({"model": model, "stream": stream, "tools": openai_tools(),
           "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "weather in Paris?"}]})
}

fn openai_parse(r: &Response, stream: bool) -> Answer {
    assert_eq!(r.status, 200, "{}", r.text());
    let mut a = Answer::default();
    if !stream {
        let v = r.json();
        let msg = &v["choices"][0]["message"];
        a.text = msg["content"].as_str().unwrap_or_default().to_owned();
        for c in msg["tool_calls"].as_array().into_iter().flatten() {
            a.calls.push((
                c["id"].as_str().unwrap().to_owned(),
                c["function"]["name"].as_str().unwrap().to_owned(),
                serde_json::from_str(c["function"]["arguments"].as_str().unwrap()).unwrap(),
            ));
        }
        a.finish = v["choices"][0]["finish_reason"]
            .as_str()
            .unwrap()
            .to_owned();
        return a;
    }
    let mut args: Vec<String> = Vec::new();
    let events = r.events();
    assert_eq!(events.last().unwrap().1, json!("[DONE]"), "{}", r.text());
    for (_, v) in &events {
        let Some(choice) = v.pointer("/choices/0") else {
            continue;
        };
        let delta = &choice["delta"];
        if let Some(t) = delta["content"].as_str() {
            a.text.push_str(t);
        }
        for c in delta["tool_calls"].as_array().into_iter().flatten() {
            let i = c["index"].as_u64().unwrap() as usize;
            if i == a.calls.len() {
                a.calls.push((
                    c["id"].as_str().unwrap().to_owned(),
                    c["function"]["name"].as_str().unwrap().to_owned(),
                    Value::Null,
                ));
                args.push(String::new());
            }
            args[i].push_str(c["function"]["arguments"].as_str().unwrap_or_default());
        }
        if let Some(f) = choice["finish_reason"].as_str() {
            a.finish = f.to_owned();
        }
    }
    for (c, s) in a.calls.iter_mut().zip(args) {
        c.2 = serde_json::from_str(&s).unwrap();
    }
    a
}

fn openai_round_trip(e: &Env, model: &str, stream: bool) {
    let body = openai_turn1(model, stream);
    let a = openai_parse(
        &post_json(e.gw.addr, "/v1/chat/completions", KEY, &body),
        stream,
    );
    assert_eq!(a.finish, "tool_calls", "{model} stream={stream}: {a:?}");
    assert_eq!(a.calls.len(), 1, "{a:?}");
    let (id, name, args) = &a.calls[0];
    assert_eq!(name, "get_weather");
    assert_eq!(args, &json!({"location": "Paris"}));
    assert!(id.starts_with("call_"), "{id}");
    assert_eq!(a.text.trim(), "Let me check that.", "{a:?}");
    assert!(!a.text.contains("<tool_call"), "{a:?}");
    assert_turn1_upstream(e, model);

    let mut body2 = body.clone();
    let msgs = body2["messages"].as_array_mut().unwrap();
    msgs.push(json!({"role": "assistant", "content": a.text, "tool_calls": [
        {"id": id, "type": "function", "function": {"name": name, "arguments": args.to_string()}}]}));
    msgs.push(json!({"role": "tool", "tool_call_id": id, "content": RESULT}));
    let a2 = openai_parse(
        &post_json(e.gw.addr, "/v1/chat/completions", KEY, &body2),
        stream,
    );
    assert_eq!(a2.finish, "stop", "{a2:?}");
    assert!(a2.calls.is_empty(), "{a2:?}");
    assert_eq!(a2.text, format!("Tool results: {RESULT}"));
    assert_turn2_upstream(e, model);
}

#[test]
fn openai_chat_clients_get_real_tool_calls_from_a_text_only_model() {
    let e = env();
    for model in ["te-openai", "te-anthropic"] {
        for stream in [false, true] {
            openai_round_trip(&e, model, stream);
        }
    }
}

// -------------------------------------------------------------- Anthropic

fn anthropic_parse(r: &Response, stream: bool) -> Answer {
    assert_eq!(r.status, 200, "{}", r.text());
    let mut a = Answer::default();
    if !stream {
        let v = r.json();
        for b in v["content"].as_array().unwrap() {
            match b["type"].as_str().unwrap() {
                "text" => a.text.push_str(b["text"].as_str().unwrap()),
                "tool_use" => a.calls.push((
                    b["id"].as_str().unwrap().to_owned(),
                    b["name"].as_str().unwrap().to_owned(),
                    b["input"].clone(),
                )),
                _ => {}
            }
        }
        a.finish = v["stop_reason"].as_str().unwrap().to_owned();
        return a;
    }
    let events = r.events();
    assert_eq!(events.last().unwrap().0, "message_stop", "{}", r.text());
    let mut args: Vec<String> = Vec::new();
    let mut block_is_call: Vec<Option<usize>> = Vec::new();
    for (name, v) in &events {
        match name.as_str() {
            "content_block_start" => {
                let b = &v["content_block"];
                if b["type"] == "tool_use" {
                    block_is_call.push(Some(a.calls.len()));
                    a.calls.push((
                        b["id"].as_str().unwrap().to_owned(),
                        b["name"].as_str().unwrap().to_owned(),
                        Value::Null,
                    ));
                    args.push(String::new());
                } else {
                    block_is_call.push(None);
                }
            }
            "content_block_delta" => {
                let d = &v["delta"];
                match d["type"].as_str().unwrap() {
                    "text_delta" => a.text.push_str(d["text"].as_str().unwrap()),
                    "input_json_delta" => {
                        let i = v["index"].as_u64().unwrap() as usize;
                        let call = block_is_call[i].unwrap();
                        args[call].push_str(d["partial_json"].as_str().unwrap());
                    }
                    _ => {}
                }
            }
            "message_delta" => {
                a.finish = v["delta"]["stop_reason"].as_str().unwrap().to_owned();
            }
            _ => {}
        }
    }
    for (c, s) in a.calls.iter_mut().zip(args) {
        c.2 = serde_json::from_str(&s).unwrap();
    }
    a
}

fn anthropic_round_trip(e: &Env, model: &str, stream: bool) {
    let body = json!({"model": model, "max_tokens": 256, "stream": stream, "system": "be brief",
        "tools": [{"name": "get_weather", "description": "Weather for a city",
                   "input_schema": {"type": "object", "properties": {"location": {"type": "string"}}}}],
        "messages": [{"role": "user", "content": "weather in Paris?"}]});
    let headers = [
        ("x-api-key", KEY),
        ("anthropic-version", "2023-06-01"),
        ("content-type", "application/json"),
    ];
    let send = |b: &Value| {
        request(
            e.gw.addr,
            "POST",
            "/v1/messages",
            &headers,
            b.to_string().as_bytes(),
        )
    };
    let a = anthropic_parse(&send(&body), stream);
    assert_eq!(a.finish, "tool_use", "{model} stream={stream}: {a:?}");
    assert_eq!(a.calls.len(), 1, "{a:?}");
    let (id, name, input) = &a.calls[0];
    assert_eq!(name, "get_weather");
    assert_eq!(input, &json!({"location": "Paris"}));
    assert!(!id.is_empty());
    assert_eq!(a.text.trim(), "Let me check that.", "{a:?}");
    assert_turn1_upstream(e, model);

    let mut body2 = body.clone();
    let msgs = body2["messages"].as_array_mut().unwrap();
    msgs.push(json!({"role": "assistant", "content": [
        {"type": "text", "text": a.text},
        {"type": "tool_use", "id": id, "name": name, "input": input}]}));
    msgs.push(json!({"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": id, "content": RESULT}]}));
    let a2 = anthropic_parse(&send(&body2), stream);
    assert_eq!(a2.finish, "end_turn", "{a2:?}");
    assert!(a2.calls.is_empty(), "{a2:?}");
    assert_eq!(a2.text, format!("Tool results: {RESULT}"));
    assert_turn2_upstream(e, model);
}

#[test]
fn anthropic_clients_get_real_tool_calls_from_a_text_only_model() {
    let e = env();
    for model in ["te-anthropic", "te-openai"] {
        for stream in [false, true] {
            anthropic_round_trip(&e, model, stream);
        }
    }
}

// -------------------------------------------------------------- Responses

fn responses_parse(r: &Response, stream: bool) -> Answer {
    assert_eq!(r.status, 200, "{}", r.text());
    let response = if stream {
        let events = r.events();
        let done = events
            .iter()
            .find(|(name, _)| name == "response.completed")
            .unwrap_or_else(|| panic!("no response.completed: {}", r.text()));
        done.1["response"].clone()
    } else {
        r.json()
    };
    let mut a = Answer::default();
    for item in response["output"].as_array().unwrap() {
        match item["type"].as_str().unwrap() {
            "message" => {
                for c in item["content"].as_array().unwrap() {
                    a.text.push_str(c["text"].as_str().unwrap_or_default());
                }
            }
            "function_call" => a.calls.push((
                item["call_id"].as_str().unwrap().to_owned(),
                item["name"].as_str().unwrap().to_owned(),
                serde_json::from_str(item["arguments"].as_str().unwrap()).unwrap(),
            )),
            _ => {}
        }
    }
    a.finish = response["status"].as_str().unwrap().to_owned();
    a
}

#[test]
fn responses_clients_get_function_calls_from_a_text_only_model() {
    let e = env();
    let model = "te-openai";
    for stream in [false, true] {
        let user = json!({"type": "message", "role": "user",
                          "content": [{"type": "input_text", "text": "weather in Paris?"}]});
        let body = json!({"model": model, "stream": stream, "store": false,
            "instructions": "be brief", "input": [user],
            "tools": [{"type": "function", "name": "get_weather", "description": "Weather for a city",
                       "parameters": {"type": "object", "properties": {"location": {"type": "string"}}}}]});
        let a = responses_parse(&post_json(e.gw.addr, "/v1/responses", KEY, &body), stream);
        assert_eq!(a.calls.len(), 1, "stream={stream}: {a:?}");
        let (call_id, name, args) = &a.calls[0];
        assert_eq!(name, "get_weather");
        assert_eq!(args, &json!({"location": "Paris"}));
        assert_eq!(a.finish, "completed");
        assert_turn1_upstream(&e, model);

        let mut body2 = body.clone();
        let input = body2["input"].as_array_mut().unwrap();
        input.push(
            json!({"type": "function_call", "call_id": call_id, "name": name,
                          "arguments": args.to_string()}),
        );
        input.push(json!({"type": "function_call_output", "call_id": call_id, "output": RESULT}));
        let a2 = responses_parse(&post_json(e.gw.addr, "/v1/responses", KEY, &body2), stream);
        assert!(a2.calls.is_empty(), "{a2:?}");
        assert_eq!(a2.text, format!("Tool results: {RESULT}"));
        assert_turn2_upstream(&e, model);
    }
}

// ----------------------------------------------------------------- edges

#[test]
fn a_sloppily_written_call_is_still_a_call() {
    let e = env();
    for stream in [false, true] {
        let r = post_json(
            e.gw.addr,
            "/v1/chat/completions",
            KEY,
            &openai_turn1("te-loose", stream),
        );
        let a = openai_parse(&r, stream);
        assert_eq!(a.finish, "tool_calls", "stream={stream}: {a:?}");
        assert_eq!(a.calls.len(), 1, "{a:?}");
        assert_eq!(a.calls[0].1, "get_weather");
        assert_eq!(a.calls[0].2, json!({"location": "Paris"}));
        assert_eq!(a.text.trim(), "Let me check that.");
    }
}

#[test]
fn without_tools_an_emulated_target_answers_plain_text() {
    let e = env();
    for stream in [false, true] {
        let body = json!({"model": "te-openai", "stream": stream,
                          "messages": [{"role": "user", "content": "hi there"}]});
        let a = openai_parse(
            &post_json(e.gw.addr, "/v1/chat/completions", KEY, &body),
            stream,
        );
        assert_eq!(a.finish, "stop");
        assert!(a.calls.is_empty());
        assert!(a.text.ends_with("You said: hi there"), "{a:?}");
        let seen = seen_by_mock(&e, "te-openai");
        assert!(!seen.to_string().contains("<tools>"), "{seen}");
    }
}

#[test]
fn the_text_only_mock_refuses_native_tools() {
    // Proof that the round trips above really removed the tools: sent
    // natively (no emulation configured), the mock says 400.
    let e = env();
    let r = post_json(
        e.gw.addr,
        "/v1/chat/completions",
        KEY,
        &openai_turn1("raw", false),
    );
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(
        r.text().contains("text_only model got native tools"),
        "{}",
        r.text()
    );
}

// ----------------------------------------------------------------- Gemini

#[test]
fn gemini_clients_get_function_calls_from_a_text_only_model() {
    let e = env();
    let model = "te-anthropic";
    let tools = json!([{"functionDeclarations": [{"name": "get_weather", "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"location": {"type": "string"}}}}]}]);
    let user = json!({"role": "user", "parts": [{"text": "weather in Paris?"}]});
    let body = json!({"contents": [user], "tools": tools});
    let headers = [
        ("x-goog-api-key", KEY),
        ("content-type", "application/json"),
    ];
    let path = format!("/v1beta/models/{model}:generateContent");
    let send = |b: &Value| request(e.gw.addr, "POST", &path, &headers, b.to_string().as_bytes());
    let r = send(&body);
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    let parts = v["candidates"][0]["content"]["parts"]
        .as_array()
        .unwrap()
        .clone();
    let call = parts
        .iter()
        .find_map(|p| p.get("functionCall"))
        .unwrap_or_else(|| panic!("no functionCall: {v}"));
    assert_eq!(call["name"], "get_weather");
    assert_eq!(call["args"], json!({"location": "Paris"}));
    assert_turn1_upstream(&e, model);

    let mut body2 = body.clone();
    let contents = body2["contents"].as_array_mut().unwrap();
    contents.push(json!({"role": "model", "parts": parts}));
    contents.push(
        json!({"role": "user", "parts": [{"functionResponse": {"name": "get_weather",
        "id": call.get("id").cloned().unwrap_or(Value::Null), "response": {"result": RESULT}}}]}),
    );
    let r2 = send(&body2);
    assert_eq!(r2.status, 200, "{}", r2.text());
    let v2 = r2.json();
    let text: String = v2["candidates"][0]["content"]["parts"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["text"].as_str())
        .collect();
    assert!(
        text.starts_with("Tool results: ") && text.contains(RESULT),
        "{v2}"
    );
    assert_turn2_upstream(&e, model);
}
