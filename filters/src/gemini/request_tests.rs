use super::*;

fn dec(v: Value) -> Request {
    decode(v.to_string().as_bytes()).unwrap()
}

fn enc(req: &Request) -> Value {
    encode(req, "gemini-up", &EncodeOptions::default(), None).unwrap()
}

#[test]
fn every_generation_field_decodes() {
    let req = dec(json!({
        "systemInstruction": {"parts": [{"text": "be brief"}, {"text": "and kind"}]},
        "contents": [{"role": "user", "parts": [{"text": "hi"}]}],
        "tools": [
            {"functionDeclarations": [
                {"name": "get", "description": "d", "parameters": {"type": "OBJECT", "properties": {"c": {"type": "STRING"}}}},
                {"name": "put", "parametersJsonSchema": {"type": "object", "additionalProperties": false}},
                {"name": "bare"}]},
            {"googleSearch": {}}, {"code_execution": {}}],
        "toolConfig": {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get"]}},
        "generationConfig": {"maxOutputTokens": 100, "temperature": 0.5, "topP": 0.9, "topK": 40.0,
            "stopSequences": ["x"], "candidateCount": 2, "seed": 7, "presencePenalty": 0.1,
            "frequencyPenalty": 0.2, "responseMimeType": "application/json",
            "responseSchema": {"type": "OBJECT", "properties": {"a": {"type": "INTEGER"}}},
            "thinkingConfig": {"thinkingBudget": 4000, "includeThoughts": true}},
        "safetySettings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}]
    }));
    assert_eq!(req.model, "");
    assert!(!req.stream);
    assert_eq!(req.system.len(), 2);
    assert_eq!(req.tools.len(), 3);
    assert_eq!(req.tools[0].schema["properties"]["c"]["type"], "string");
    assert_eq!(req.tools[1].schema["additionalProperties"], false);
    assert_eq!(
        req.tools[2].schema,
        json!({"type": "object", "properties": {}})
    );
    assert_eq!(req.hosted_tools.len(), 2);
    assert!(req.hosted_tools.iter().all(|h| h.issuer == Issuer::Gemini));
    assert_eq!(req.hosted_tools[0].spec, json!({"googleSearch": {}}));
    assert_eq!(req.tool_choice, Some(ToolChoice::Named("get".into())));
    let s = &req.sampling;
    assert_eq!(
        (
            s.max_output_tokens,
            s.temperature,
            s.top_p,
            s.top_k,
            s.n,
            s.seed
        ),
        (Some(100), Some(0.5), Some(0.9), Some(40), Some(2), Some(7))
    );
    assert_eq!(s.stop, vec!["x".to_string()]);
    assert_eq!(
        (s.presence_penalty, s.frequency_penalty),
        (Some(0.1), Some(0.2))
    );
    assert_eq!(
        req.reasoning,
        Some(ReasoningConfig {
            effort: Some(Effort::Medium),
            budget_tokens: Some(4000)
        })
    );
    assert!(matches!(&req.output_format,
        Some(OutputFormat::JsonSchema { name, schema, .. }) if name == "response" && schema["properties"]["a"]["type"] == "integer"));
}

#[test]
fn snake_case_bodies_decode_too() {
    let req = dec(json!({
        "system_instruction": {"parts": [{"text": "sys"}]},
        "contents": [{"role": "user", "parts": [{"inline_data": {"mime_type": "application/pdf", "data": "JVBE"}}]}],
        "generation_config": {"max_output_tokens": 5, "thinking_config": {"thinking_budget": 0},
            "response_mime_type": "application/json"},
        "tool_config": {"function_calling_config": {"mode": "none"}}
    }));
    assert_eq!(req.system[0].text, "sys");
    assert!(
        matches!(&req.messages[0].parts[0], Part::Document(Media::Base64 { mime, .. }) if mime == "application/pdf")
    );
    assert_eq!(req.sampling.max_output_tokens, Some(5));
    assert_eq!(req.reasoning.unwrap().effort, Some(Effort::None));
    assert_eq!(req.output_format, Some(OutputFormat::JsonObject));
    assert_eq!(req.tool_choice, Some(ToolChoice::None));
}

#[test]
fn thinking_controls_map_to_efforts() {
    let effort = |tc: Value| {
        dec(json!({"contents": [{"parts": [{"text": "q"}]}], "generationConfig": {"thinkingConfig": tc}}))
            .reasoning
    };
    assert_eq!(
        effort(json!({"thinkingBudget": -1})).unwrap().effort,
        Some(Effort::Medium)
    );
    assert_eq!(
        effort(json!({"thinkingLevel": "HIGH"})).unwrap().effort,
        Some(Effort::High)
    );
    assert_eq!(
        effort(json!({"thinkingLevel": "low"})).unwrap().effort,
        Some(Effort::Low)
    );
    assert_eq!(
        effort(json!({"includeThoughts": true})).unwrap().effort,
        Some(Effort::Medium)
    );
    assert_eq!(effort(json!({})), None);
    let mode = |m: &str| {
        dec(json!({"contents": [{"parts": [{"text": "q"}]}],
            "toolConfig": {"functionCallingConfig": {"mode": m, "allowedFunctionNames": ["a", "b"]}}}))
        .tool_choice
    };
    assert_eq!(mode("AUTO"), Some(ToolChoice::Auto));
    assert_eq!(mode("VALIDATED"), Some(ToolChoice::Auto));
    assert_eq!(mode("ANY"), Some(ToolChoice::Required));
}

#[test]
fn bad_input_names_the_field() {
    let err = |v: Value| decode(v.to_string().as_bytes()).unwrap_err().message;
    assert!(err(json!({"contents": []})).contains("contents"));
    assert!(err(json!({"contents": [{"role": "bot", "parts": []}]})).contains("contents[0].role"));
    assert!(
        err(json!({"contents": [{"parts": [{"text": 1}]}]})).contains("contents[0].parts[0].text")
    );
    assert!(err(json!({"contents": [{"parts": [{"text": "a"}]}], "generationConfig": {"temperature": "hot"}}))
        .contains("generationConfig.temperature"));
    assert!(err(json!({"contents": [{"role": "model", "parts": [{"functionCall": {"name": "f", "args": "nope"}}]}]}))
        .contains("JSON object"));
    assert!(err(
        json!({"contents": [{"parts": [{"text": "a"}]}], "tools": [{"functionDeclarations": [{}]}]})
    )
    .contains("tools[0].functionDeclarations[0].name"));
    assert!(decode(b"{not json").is_err());
    assert!(decode(&[0xff, 0xfe]).is_err());
}

/// A two-step tool loop with parallel calls of one name and no ids.
fn tool_loop() -> Value {
    json!({"contents": [
        {"role": "user", "parts": [{"text": "weather in a and b?"}]},
        {"role": "model", "parts": [
            {"functionCall": {"name": "get", "args": {"c": "a"}}, "thoughtSignature": "SIG1"},
            {"functionCall": {"name": "get", "args": {"c": "b"}}},
            {"functionCall": {"name": "time", "args": {}}}]},
        {"role": "user", "parts": [
            {"functionResponse": {"name": "time", "response": {"result": "noon"}}},
            {"functionResponse": {"name": "get", "response": {"result": "sunny"}}},
            {"functionResponse": {"name": "get", "response": {"error": "no data"}}}]},
        {"role": "model", "parts": [{"text": "a is sunny"}, {"text": "", "thoughtSignature": "SIG2"}]},
        {"role": "user", "parts": [{"text": "thanks"}]}
    ]})
}

#[test]
fn function_responses_match_calls_by_name_and_order() {
    let req = dec(tool_loop());
    let roles: Vec<Role> = req.messages.iter().map(|m| m.role).collect();
    assert_eq!(
        roles,
        vec![
            Role::User,
            Role::Assistant,
            Role::Tool,
            Role::Assistant,
            Role::User
        ]
    );
    let calls: Vec<(&str, &str)> = req.messages[1]
        .parts
        .iter()
        .filter_map(|p| match p {
            Part::ToolCall(c) => Some((c.id.as_str(), c.name.as_str())),
            _ => None,
        })
        .collect();
    assert_eq!(
        calls,
        vec![
            ("call_1_0", "get"),
            ("call_1_1", "get"),
            ("call_1_2", "time")
        ]
    );
    let results: Vec<(&str, bool)> = req.messages[2]
        .parts
        .iter()
        .filter_map(|p| match p {
            Part::ToolResult(r) => Some((r.call_id.as_str(), r.is_error)),
            _ => None,
        })
        .collect();
    assert_eq!(
        results,
        vec![("call_1_2", false), ("call_1_0", false), ("call_1_1", true)]
    );
    assert!(matches!(&req.messages[2].parts[1], Part::ToolResult(r)
        if r.content == vec![Part::Text(TextPart { text: "sunny".into(), cache: false })]));
    // the signature on the call sits just before it, signature-only
    assert!(matches!(&req.messages[1].parts[0], Part::Reasoning(r)
        if r.text.is_empty() && r.signature.as_deref() == Some("modelswitch-gemini:SIG1")));
    // the same history always gets the same ids
    assert_eq!(dec(tool_loop()).messages, req.messages);
}

#[test]
fn ids_win_over_names_and_stale_calls_are_skipped() {
    let req = dec(json!({"contents": [
        {"role": "model", "parts": [{"functionCall": {"name": "f", "args": {}}}]},
        {"role": "user", "parts": [{"text": "never answered"}]},
        {"role": "model", "parts": [
            {"functionCall": {"name": "f", "args": {}, "id": "x1"}},
            {"functionCall": {"name": "f", "args": {}}}]},
        {"role": "user", "parts": [
            {"functionResponse": {"name": "f", "response": {"a": 1}}},
            {"functionResponse": {"name": "f", "id": "x1", "response": {}}}]}
    ]}));
    let ids: Vec<&str> = req.messages[3]
        .parts
        .iter()
        .filter_map(|p| match p {
            Part::ToolResult(r) => Some(r.call_id.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(ids, vec!["call_2_1", "x1"]);
    assert!(matches!(&req.messages[3].parts[0], Part::ToolResult(r)
        if r.content == vec![Part::Text(TextPart { text: r#"{"a":1}"#.into(), cache: false })]));
}

#[test]
fn a_gemini_history_round_trips_with_its_signatures_in_place() {
    let req = dec(tool_loop());
    let v = enc(&req);
    let contents = v["contents"].as_array().unwrap();
    assert_eq!(contents.len(), 5);
    let model = &contents[1]["parts"];
    assert_eq!(
        model[0],
        json!({"functionCall": {"name": "get", "args": {"c": "a"}}, "thoughtSignature": "SIG1"})
    );
    assert_eq!(
        model[1],
        json!({"functionCall": {"name": "get", "args": {"c": "b"}}})
    );
    let user = &contents[2]["parts"];
    assert_eq!(
        user[0],
        json!({"functionResponse": {"name": "time", "response": {"result": "noon"}}})
    );
    assert_eq!(
        user[2],
        json!({"functionResponse": {"name": "get", "response": {"error": "no data"}}})
    );
    assert_eq!(
        contents[3]["parts"],
        json!([{"text": "a is sunny"}, {"text": "", "thoughtSignature": "SIG2"}])
    );
    // decoding what was encoded gives the same canonical request
    let again = dec(v);
    assert_eq!(again.messages, req.messages);
}

#[test]
fn cross_vendor_history_gets_names_placeholder_and_no_foreign_reasoning() {
    let req = crate::anthropic::request::decode(
        json!({"model": "m", "max_tokens": 10,
            "system": [{"type": "text", "text": "x-anthropic-billing-header: cc_version=1;\nYou are helpful."}],
            "messages": [
                {"role": "user", "content": "go"},
                {"role": "system", "content": "env"},
                {"role": "assistant", "content": [
                    {"type": "thinking", "thinking": "plan", "signature": "anthropic-sig"},
                    {"type": "text", "text": "ok"},
                    {"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": {"command": "ls"}}]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": [
                        {"type": "text", "text": "{\"files\": 2}"},
                        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AA=="}}]},
                    {"type": "tool_result", "tool_use_id": "toolu_gone", "content": "orphan"},
                    {"type": "text", "text": "next"}]}],
            "tools": [{"name": "Bash", "input_schema": {"$schema": "x", "type": "object",
                "properties": {"command": {"type": "string"}}, "additionalProperties": false}}]})
        .to_string()
        .as_bytes(),
    )
    .unwrap();
    let v = enc(&req);
    assert_eq!(
        v["systemInstruction"],
        json!({"parts": [{"text": "You are helpful."}]})
    );
    let contents = v["contents"].as_array().unwrap();
    assert_eq!(
        contents[0],
        json!({"role": "user", "parts": [{"text": "go"}, {"text": "env"}]})
    );
    assert_eq!(
        contents[1]["parts"],
        json!([{"text": "ok"}, {"functionCall": {"name": "Bash", "args": {"command": "ls"}},
            "thoughtSignature": "skip_thought_signature_validator"}])
    );
    assert_eq!(
        contents[2]["parts"],
        json!([{"functionResponse": {"name": "Bash", "response": {"files": 2}}},
               {"inlineData": {"mimeType": "image/png", "data": "AA=="}},
               {"text": "next"}])
    );
    let decl = &v["tools"][0]["functionDeclarations"][0];
    assert!(decl["parameters"].get("$schema").is_none());
    assert!(decl["parameters"].get("additionalProperties").is_none());
    let opts = EncodeOptions {
        omit_placeholder_signature: true,
    };
    let v = encode(&req, "g", &opts, None).unwrap();
    assert!(v["contents"][1]["parts"][1]
        .get("thoughtSignature")
        .is_none());
}

#[test]
fn sampling_reasoning_format_and_caps_encode() {
    let mut req = dec(json!({"contents": [{"parts": [{"text": "q"}]}]}));
    req.sampling = Sampling {
        max_output_tokens: Some(50_000),
        temperature: Some(3.0),
        stop: (0..7).map(|i| i.to_string()).collect(),
        n: Some(2),
        ..Sampling::default()
    };
    req.reasoning = Some(ReasoningConfig {
        effort: Some(Effort::Max),
        budget_tokens: None,
    });
    req.output_format = Some(OutputFormat::JsonSchema {
        name: "x".into(),
        schema: json!({"type": "object", "properties": {"a": {"const": "b"}}, "additionalProperties": false}),
        strict: Some(true),
    });
    req.tools = vec![Tool {
        name: "t".into(),
        description: None,
        schema: json!({}),
        strict: None,
    }];
    req.tool_choice = Some(ToolChoice::Required);
    let v = encode(&req, "g", &EncodeOptions::default(), Some(8192)).unwrap();
    let g = &v["generationConfig"];
    assert_eq!(g["maxOutputTokens"], 8192);
    assert_eq!(g["temperature"], 2.0);
    assert_eq!(g["stopSequences"].as_array().unwrap().len(), 5);
    assert_eq!(g["candidateCount"], 2);
    assert_eq!(
        g["thinkingConfig"],
        json!({"includeThoughts": true, "thinkingBudget": 24576})
    );
    assert_eq!(g["responseMimeType"], "application/json");
    assert_eq!(
        g["responseSchema"],
        json!({"type": "object", "properties": {"a": {"type": "string", "enum": ["b"]}}})
    );
    assert_eq!(
        v["toolConfig"],
        json!({"functionCallingConfig": {"mode": "ANY"}})
    );
    assert_eq!(
        v["tools"][0]["functionDeclarations"][0]["parameters"],
        json!({"type": "object", "properties": {}})
    );
    assert!(v.get("model").is_none());

    req.sampling.max_output_tokens = None;
    req.reasoning = Some(ReasoningConfig {
        effort: Some(Effort::None),
        budget_tokens: Some(0),
    });
    let v = encode(&req, "g", &EncodeOptions::default(), Some(1000)).unwrap();
    assert_eq!(v["generationConfig"]["maxOutputTokens"], 1000);
    assert_eq!(
        v["generationConfig"]["thinkingConfig"],
        json!({"thinkingBudget": 0})
    );
    req.reasoning = Some(ReasoningConfig {
        effort: Some(Effort::None),
        budget_tokens: None,
    });
    let v = enc(&req);
    assert!(v["generationConfig"].get("thinkingConfig").is_none());
}

#[test]
fn hosted_tools_go_only_to_their_vendor() {
    let mut req =
        dec(json!({"contents": [{"parts": [{"text": "q"}]}], "tools": [{"googleSearch": {}}]}));
    assert_eq!(enc(&req)["tools"], json!([{"googleSearch": {}}]));
    req.hosted_tools.push(HostedTool {
        issuer: Issuer::OpenAi,
        spec: json!({"type": "web_search"}),
    });
    let e = encode(&req, "g", &EncodeOptions::default(), None).unwrap_err();
    assert_eq!(e.param.as_deref(), Some("tools"));
    assert!(e.message.contains("web_search"));
}

#[test]
fn foreign_thinking_round_trips_through_a_gemini_client() {
    // An Anthropic thought, as the gateway hands it to a Gemini client in a
    // stream (several thought parts, the signature after them), comes back
    // as one signed reasoning for the Anthropic upstream.
    let req = dec(json!({"contents": [
        {"role": "user", "parts": [{"text": "q"}]},
        {"role": "model", "parts": [
            {"text": "pla", "thought": true}, {"text": "n", "thought": true},
            {"text": "", "thought": true, "thoughtSignature": "bW9kZWxzd2l0Y2gtYW50aHJvcGljOmFzaWc="},
            {"text": "answer"}]},
        {"role": "user", "parts": [{"text": "more"}]}]}));
    assert_eq!(
        req.messages[1].parts[0],
        Part::Reasoning(Reasoning {
            text: "plan".into(),
            signature: Some("asig".into()),
            redacted: None
        })
    );
    let v = enc(&req);
    assert_eq!(v["contents"][1]["parts"], json!([{"text": "answer"}]));
}

#[test]
fn count_tokens_bodies() {
    let r = decode_count_tokens(br#"{"contents":[{"parts":[{"text":"hello"}]}]}"#).unwrap();
    assert_eq!(r.messages.len(), 1);
    let r = decode_count_tokens(
        br#"{"generateContentRequest":{"model":"models/g","contents":[{"parts":[{"text":"hi"}]}],
            "systemInstruction":{"parts":[{"text":"s"}]}}}"#,
    )
    .unwrap();
    assert_eq!(r.system[0].text, "s");
    assert!(decode_count_tokens(br#"{}"#).unwrap().messages.is_empty());
    assert_eq!(count_tokens_body(12), json!({"totalTokens": 12}));
    assert_eq!(
        count_tokens_from_upstream(br#"{"totalTokens": 31, "cachedContentTokenCount": 0}"#),
        Some(31)
    );
    assert_eq!(count_tokens_from_upstream(b"nope"), None);
    let up = count_tokens_request(&r, "gemini-x").unwrap();
    assert_eq!(up["generateContentRequest"]["model"], "models/gemini-x");
    assert_eq!(
        up["generateContentRequest"]["contents"][0]["parts"][0]["text"],
        "hi"
    );
}

#[test]
fn gateway_tokens_are_spotted_for_the_pass_through_decision() {
    let foreign = json!({"contents": [{"role": "model", "parts": [
        {"text": "", "thought": true, "thoughtSignature": "bW9kZWxzd2l0Y2gtYW50aHJvcGljOmFzaWc="}]}]});
    assert!(carries_gateway_signature(foreign.to_string().as_bytes()));
    assert!(carries_gateway_signature(
        br#"{"x":"modelswitch-openai:t"}"#
    ));
    let own = json!({"contents": [{"role": "model", "parts": [
        {"functionCall": {"name": "f", "args": {}}, "thoughtSignature": "Q2lBQkFCQw=="}]}]});
    assert!(!carries_gateway_signature(own.to_string().as_bytes()));
}
