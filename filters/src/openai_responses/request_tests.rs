use super::*;
use crate::error::ErrorKind;

fn decode_json(v: Value) -> Result<Request, ApiError> {
    decode(v.to_string().as_bytes())
}

fn codex_body() -> Value {
    json!({
        "model": "gpt-5-codex", "stream": true, "instructions": "be terse",
        "input": [
            {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "sandbox rules"}]},
            {"type": "message", "role": "user", "content": [
                {"type": "input_text", "text": "look"},
                {"type": "input_image", "image_url": "data:image/png;base64,AAAA", "detail": "low"},
                {"type": "input_file", "filename": "a.pdf", "file_data": "JVBE"}]},
            {"type": "reasoning", "id": "rs_1", "summary": [
                {"type": "summary_text", "text": "first"}, {"type": "summary_text", "text": "second"}],
             "encrypted_content": "ENC"},
            {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "on it"}]},
            {"type": "function_call", "id": "fc_1", "call_id": "call_a", "name": "shell", "arguments": "{\"cmd\":\"ls\"}"},
            {"type": "function_call", "call_id": "call_b", "name": "shell", "arguments": ""},
            {"type": "function_call_output", "id": "fco_1", "call_id": "call_a", "output": "a.txt"},
            {"type": "function_call_output", "call_id": "call_b", "output": [{"type": "input_text", "text": "b"}]},
            {"role": "developer", "content": "mid note"},
            {"role": "user", "content": "thanks"},
            {"type": "web_search_call", "id": "ws_1", "status": "completed"}
        ],
        "tools": [
            {"type": "function", "name": "shell", "description": "run", "strict": false,
             "parameters": {"type": "object", "properties": {"cmd": {"type": "string"}}}},
            {"type": "web_search"},
            {"type": "namespace", "name": "ns", "description": "d", "tools": []}
        ],
        "tool_choice": "auto", "parallel_tool_calls": true,
        "reasoning": {"effort": "high", "summary": "auto"},
        "text": {"format": {"type": "json_schema", "name": "out", "schema": {"type": "object"}, "strict": true}},
        "max_output_tokens": 500, "temperature": 0.5, "top_p": 0.9, "user": "u1",
        "metadata": {"k": "v"}, "previous_response_id": "resp_prev", "store": false,
        "include": ["reasoning.encrypted_content"], "prompt_cache_key": "pck",
        "service_tier": "auto", "truncation": "disabled", "stream_options": {"include_obfuscation": false},
        "client_metadata": {"x": 1}
    })
}

#[test]
fn decodes_every_field_codex_sends() {
    let req = decode_json(codex_body()).unwrap();
    assert_eq!(req.model, "gpt-5-codex");
    assert!(req.stream && req.include_usage);
    let system: Vec<&str> = req.system.iter().map(|t| t.text.as_str()).collect();
    assert_eq!(system, ["be terse", "sandbox rules"]);
    assert_eq!(req.messages.len(), 5);
    let user = &req.messages[0];
    assert_eq!(user.role, Role::User);
    assert_eq!(
        user.parts[1],
        Part::Image(Media::Base64 {
            mime: "image/png".into(),
            data: "AAAA".into()
        })
    );
    assert_eq!(
        user.parts[2],
        Part::Document(Media::Base64 {
            mime: "application/pdf".into(),
            data: "JVBE".into()
        })
    );
    assert_eq!(req.tools.len(), 1);
    assert_eq!(req.tools[0].strict, Some(false));
    assert_eq!(req.hosted_tools.len(), 2);
    assert!(req.hosted_tools.iter().all(|h| h.issuer == Issuer::OpenAi));
    assert_eq!(req.hosted_tools[1].spec["type"], "namespace");
    assert_eq!(req.tool_choice, Some(ToolChoice::Auto));
    assert_eq!(req.parallel_tool_calls, Some(true));
    assert_eq!(req.reasoning.unwrap().effort, Some(Effort::High));
    assert_eq!(
        req.output_format,
        Some(OutputFormat::JsonSchema {
            name: "out".into(),
            schema: json!({"type": "object"}),
            strict: Some(true)
        })
    );
    assert_eq!(req.sampling.max_output_tokens, Some(500));
    assert_eq!(req.sampling.temperature, Some(0.5));
    assert_eq!(req.sampling.top_p, Some(0.9));
    assert_eq!(req.user.as_deref(), Some("u1"));
    assert_eq!(req.metadata, Some(json!({"k": "v"})));
    assert_eq!(req.previous_response_id.as_deref(), Some("resp_prev"));
    assert_eq!(req.store, Some(false));
}

#[test]
fn assistant_side_items_merge_into_one_turn_in_order() {
    let req = decode_json(codex_body()).unwrap();
    let assistant = &req.messages[1];
    assert_eq!(assistant.role, Role::Assistant);
    assert_eq!(assistant.parts.len(), 4);
    assert_eq!(
        assistant.parts[0],
        Part::Reasoning(Reasoning {
            text: "first\n\nsecond".into(),
            signature: Some(signature_minted(Issuer::OpenAi, "ENC")),
            redacted: None,
        })
    );
    assert!(matches!(&assistant.parts[1], Part::Text(t) if t.text == "on it"));
    assert!(
        matches!(&assistant.parts[2], Part::ToolCall(c) if c.id == "call_a" && c.arguments == "{\"cmd\":\"ls\"}")
    );
    assert!(
        matches!(&assistant.parts[3], Part::ToolCall(c) if c.id == "call_b" && c.arguments == "{}")
    );
    let tool = &req.messages[2];
    assert_eq!(tool.role, Role::Tool);
    assert_eq!(tool.parts.len(), 2, "consecutive outputs are one tool turn");
    let Part::ToolResult(r) = &tool.parts[1] else {
        panic!("expected a tool result")
    };
    assert_eq!(r.call_id, "call_b");
    assert!(matches!(&r.content[0], Part::Text(t) if t.text == "b"));
    assert_eq!(
        req.messages[3].role,
        Role::System,
        "a later developer message stays in place"
    );
    assert_eq!(req.messages[4].role, Role::User);
}

#[test]
fn string_input_and_untyped_items() {
    let req = decode_json(json!({"model": "m", "input": "hi"})).unwrap();
    assert_eq!(req.messages.len(), 1);
    assert_eq!(req.messages[0].parts, vec![Part::Text(text_part("hi"))]);
    assert!(!req.stream);
    let req = decode_json(json!({"model": "m", "input": [
        {"role": "user", "content": "a"},
        {"role": "assistant", "content": [{"type": "output_text", "text": "b"}, {"type": "refusal", "refusal": "no"}]},
        {"role": "assistant", "content": "c"}
    ]}))
    .unwrap();
    assert_eq!(
        req.messages.len(),
        2,
        "two assistant messages in a row are one turn"
    );
    assert_eq!(req.messages[1].parts.len(), 3);
    let req =
        decode_json(json!({"model": "m", "previous_response_id": "resp_1", "input": []})).unwrap();
    assert!(req.messages.is_empty(), "a continuation may add nothing");
}

#[test]
fn bad_input_is_a_400_naming_the_field() {
    for (body, needle) in [
        (json!({"input": "x"}), "model"),
        (json!({"model": "m"}), "input"),
        (json!({"model": "m", "input": 5}), "input"),
        (json!({"model": "m", "input": [5]}), "input[0]"),
        (
            json!({"model": "m", "input": [{"role": "wizard", "content": "x"}]}),
            "input[0].role",
        ),
        (
            json!({"model": "m", "input": [{"type": "function_call", "name": "f", "arguments": "{}"}]}),
            "input[0].call_id",
        ),
        (
            json!({"model": "m", "input": [{"type": "function_call", "call_id": "c", "name": "f", "arguments": "{oops"}]}),
            "JSON object",
        ),
        (
            json!({"model": "m", "input": [{"type": "function_call_output", "call_id": "c", "output": 5}]}),
            "input[0].output",
        ),
        (
            json!({"model": "m", "input": [{"role": "user", "content": [{"type": "input_image", "file_id": "file-1"}]}]}),
            "file ids",
        ),
        (
            json!({"model": "m", "input": [{"role": "user", "content": [{"type": "input_audio"}]}]}),
            "input[0].content[0]",
        ),
        (
            json!({"model": "m", "input": [{"type": "item_reference", "id": "msg_1"}]}),
            "item references",
        ),
        (
            json!({"model": "m", "input": "x", "instructions": 5}),
            "instructions",
        ),
        (
            json!({"model": "m", "input": "x", "tools": [{"type": "function"}]}),
            "tools[0].name",
        ),
        (
            json!({"model": "m", "input": "x", "tool_choice": "sometimes"}),
            "tool_choice",
        ),
        (
            json!({"model": "m", "input": "x", "reasoning": {"effort": "extreme"}}),
            "reasoning.effort",
        ),
        (json!({"model": "m", "input": "x", "text": "json"}), "text"),
        (
            json!({"model": "m", "input": "x", "metadata": [1]}),
            "metadata",
        ),
        (
            json!({"model": "m", "input": "x", "max_output_tokens": -1}),
            "max_output_tokens",
        ),
    ] {
        let e = decode_json(body.clone()).unwrap_err();
        assert_eq!(e.kind, ErrorKind::InvalidRequest, "{body}");
        assert!(e.message.contains(needle), "{} !~ {needle}", e.message);
    }
    assert!(decode(b"{not json").is_err());
    assert!(decode(b"\xff").is_err());
}

#[test]
fn tool_choice_forms() {
    let choice = |tc: Value| {
        decode_json(json!({"model": "m", "input": "x", "tool_choice": tc}))
            .unwrap()
            .tool_choice
    };
    assert_eq!(choice(json!("required")), Some(ToolChoice::Required));
    assert_eq!(choice(json!("none")), Some(ToolChoice::None));
    assert_eq!(
        choice(json!({"type": "function", "name": "f"})),
        Some(ToolChoice::Named("f".into()))
    );
    assert_eq!(
        choice(json!({"type": "allowed_tools", "mode": "required", "tools": []})),
        Some(ToolChoice::Required)
    );
    assert_eq!(
        choice(json!({"type": "web_search_preview"})),
        Some(ToolChoice::Required)
    );
    let req =
        decode_json(json!({"model": "m", "input": "x", "reasoning": {"summary": "auto"}})).unwrap();
    assert_eq!(req.reasoning, Some(ReasoningConfig::default()));
}

fn opts() -> EncodeOptions {
    EncodeOptions { reasoning: true }
}

#[test]
fn a_request_survives_the_round_trip() {
    let req = decode_json(codex_body()).unwrap();
    let v = encode(&req, "up-model", &opts(), Some(300)).unwrap();
    assert_eq!(v["model"], "up-model");
    assert_eq!(v["instructions"], "be terse\n\nsandbox rules");
    assert_eq!(v["max_output_tokens"], 300);
    assert_eq!(v["temperature"], 0.5);
    assert_eq!(v["top_p"], 0.9);
    assert_eq!(v["reasoning"], json!({"effort": "high", "summary": "auto"}));
    assert_eq!(v["include"], json!(["reasoning.encrypted_content"]));
    assert_eq!(
        v["text"],
        json!({"format": {"type": "json_schema", "name": "out", "schema": {"type": "object"}, "strict": true}})
    );
    assert_eq!(v["tools"][1], json!({"type": "web_search"}));
    assert_eq!(v["tool_choice"], "auto");
    assert_eq!(v["parallel_tool_calls"], true);
    assert_eq!(v["user"], "u1");
    assert_eq!(v["metadata"], json!({"k": "v"}));
    assert_eq!(v["previous_response_id"], "resp_prev");
    assert_eq!(v["store"], false);
    assert_eq!(v["stream"], true);
    let input = v["input"].as_array().unwrap();
    let kinds: Vec<&str> = input.iter().map(|i| i["type"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "message",
            "reasoning",
            "message",
            "function_call",
            "function_call",
            "function_call_output",
            "function_call_output",
            "message",
            "message"
        ]
    );
    assert_eq!(
        input[1],
        json!({"type": "reasoning", "summary": [{"type": "summary_text", "text": "first\n\nsecond"}], "encrypted_content": "ENC"})
    );
    assert_eq!(input[2]["content"][0]["type"], "output_text");
    assert_eq!(input[6]["output"], "b", "all-text output is a string");

    let back = decode(v.to_string().as_bytes()).unwrap();
    assert_eq!(back.messages, req.messages);
    assert_eq!(back.tools, req.tools);
    assert_eq!(back.hosted_tools, req.hosted_tools);
    assert_eq!(back.output_format, req.output_format);
    assert_eq!(back.reasoning, req.reasoning);
    assert_eq!(back.metadata, req.metadata);
}

fn with_reasoning(sig: Option<String>) -> Request {
    Request {
        model: "m".into(),
        messages: vec![
            Message {
                role: Role::User,
                parts: vec![Part::Text(text_part("q"))],
            },
            Message {
                role: Role::Assistant,
                parts: vec![
                    Part::Reasoning(Reasoning {
                        text: "plan".into(),
                        signature: sig,
                        redacted: None,
                    }),
                    Part::Text(text_part("a")),
                ],
            },
        ],
        ..Request::default()
    }
}

#[test]
fn only_openai_reasoning_state_goes_to_a_responses_upstream() {
    let ours = with_reasoning(Some(signature_minted(Issuer::OpenAi, "ENC")));
    let v = encode(&ours, "m", &opts(), None).unwrap();
    assert_eq!(v["input"][1]["encrypted_content"], "ENC");
    for issuer in [Issuer::Anthropic, Issuer::Gemini] {
        let theirs = with_reasoning(Some(signature_minted(issuer, "SIG")));
        let v = encode(&theirs, "m", &opts(), None).unwrap();
        let text = v.to_string();
        assert!(
            !text.contains("SIG") && !text.contains("reasoning"),
            "{issuer:?}: {text}"
        );
        assert_eq!(v["input"][1]["type"], "message");
    }
    let unsigned = encode(&with_reasoning(None), "m", &opts(), None).unwrap();
    assert_eq!(unsigned["input"].as_array().unwrap().len(), 2);
}

#[test]
fn hosted_tools_of_other_vendors_are_refused() {
    let mut req = with_reasoning(None);
    req.hosted_tools.push(HostedTool {
        issuer: Issuer::Gemini,
        spec: json!({"googleSearch": {}}),
    });
    let e = encode(&req, "m", &opts(), None).unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidRequest);
    assert_eq!(e.param.as_deref(), Some("tools"));
    assert!(e.message.contains("OpenAI Responses"), "{}", e.message);
}

#[test]
fn reasoning_include_strictness_and_limits() {
    let mut req = with_reasoning(None);
    req.reasoning = Some(ReasoningConfig {
        effort: None,
        budget_tokens: Some(20000),
    });
    req.sampling.max_output_tokens = Some(1);
    req.tools.push(Tool {
        name: "f".into(),
        description: None,
        schema: json!({"type": "object"}),
        strict: None,
    });
    req.tool_choice = Some(ToolChoice::Named("f".into()));
    let v = encode(&req, "m", &opts(), None).unwrap();
    assert_eq!(v["reasoning"]["effort"], "high");
    assert_eq!(v["max_output_tokens"], MIN_OUTPUT_TOKENS);
    assert_eq!(v["tools"][0]["strict"], false, "strict only when asked");
    assert_eq!(v["tool_choice"], json!({"type": "function", "name": "f"}));
    assert_eq!(v["stream"], false);
    assert!(v.get("instructions").is_none());
    req.store = Some(true);
    let v = encode(&req, "m", &opts(), None).unwrap();
    assert!(
        v.get("include").is_none(),
        "stored responses keep their own state"
    );
    let v = encode(&req, "m", &EncodeOptions::default(), None).unwrap();
    assert!(v.get("reasoning").is_none() && v.get("include").is_none());
    req.store = None;
    req.reasoning = Some(ReasoningConfig {
        effort: Some(Effort::Max),
        budget_tokens: None,
    });
    let v = encode(&req, "m", &opts(), None).unwrap();
    assert_eq!(v["reasoning"]["effort"], "xhigh");
    req.sampling.n = Some(2);
    assert!(encode(&req, "m", &opts(), None).is_err());
}

#[test]
fn system_media_and_tool_errors_encode() {
    let req = Request {
        model: "m".into(),
        system: vec![TextPart {
            text: "x-anthropic-billing-header: cc_version=1;\nreal".into(),
            cache: true,
        }],
        messages: vec![
            Message {
                role: Role::User,
                parts: vec![
                    Part::Image(Media::Url("https://x/i.png".into())),
                    Part::Document(Media::Base64 {
                        mime: "text/plain".into(),
                        data: "aGk=".into(),
                    }),
                ],
            },
            Message {
                role: Role::Tool,
                parts: vec![Part::ToolResult(ToolResult {
                    call_id: "c".into(),
                    content: vec![Part::Text(text_part("boom"))],
                    is_error: true,
                })],
            },
            Message {
                role: Role::System,
                parts: vec![Part::Text(text_part("note"))],
            },
        ],
        ..Request::default()
    };
    let v = encode(&req, "m", &opts(), None).unwrap();
    assert_eq!(v["instructions"], "real");
    assert_eq!(v["input"][0]["content"][0]["image_url"], "https://x/i.png");
    assert_eq!(
        v["input"][0]["content"][1],
        json!({"type": "input_file", "filename": "document.txt", "file_data": "data:text/plain;base64,aGk="})
    );
    assert_eq!(v["input"][1]["output"], "[tool error] boom");
    assert_eq!(v["input"][2]["role"], "system");
    let back = decode(v.to_string().as_bytes()).unwrap();
    assert_eq!(back.messages[0], req.messages[0]);
}
