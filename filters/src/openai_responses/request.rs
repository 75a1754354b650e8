//! OpenAI Responses requests ⇄ the canonical request. A Responses input is
//! a flat list of items where Chat has messages: consecutive assistant-side
//! items (reasoning, assistant text, function calls) are one assistant turn,
//! consecutive `function_call_output` items one tool turn. Tools other than
//! functions run at OpenAI, so they travel as hosted tools that only a
//! Responses upstream accepts.

use crate::canonical::*;
use crate::error::ApiError;
use serde::Deserialize;
use serde_json::{json, Map, Value};

#[derive(Deserialize)]
struct WireRequest {
    model: String,
    #[serde(default)]
    input: Value,
    #[serde(default)]
    instructions: Value,
    tools: Option<Vec<Value>>,
    tool_choice: Option<Value>,
    parallel_tool_calls: Option<bool>,
    max_output_tokens: Option<u64>,
    temperature: Option<f64>,
    top_p: Option<f64>,
    #[serde(default)]
    reasoning: Value,
    #[serde(default)]
    text: Value,
    user: Option<String>,
    metadata: Option<Value>,
    previous_response_id: Option<String>,
    store: Option<bool>,
    stream: Option<bool>,
}

/// Decodes a client's Responses body.
pub fn decode(body: &[u8]) -> Result<Request, ApiError> {
    let w: WireRequest = crate::error::parse_body(body)?;
    let mut req = Request {
        model: w.model,
        stream: w.stream.unwrap_or(false),
        // Every Responses stream ends with usage in `response.completed`.
        include_usage: true,
        parallel_tool_calls: w.parallel_tool_calls,
        user: w.user,
        previous_response_id: w.previous_response_id.filter(|s| !s.is_empty()),
        store: w.store,
        ..Request::default()
    };
    req.system = decode_instructions(&w.instructions)?;
    decode_input(&mut req, &w.input)?;
    if req.messages.is_empty() && req.previous_response_id.is_none() {
        return Err(
            ApiError::invalid("input: at least one input item is required").with_param("input"),
        );
    }
    (req.tools, req.hosted_tools) = decode_tools(w.tools.unwrap_or_default())?;
    req.tool_choice = decode_tool_choice(w.tool_choice)?;
    req.sampling = Sampling {
        max_output_tokens: w.max_output_tokens,
        temperature: w.temperature,
        top_p: w.top_p,
        ..Sampling::default()
    };
    req.reasoning = decode_reasoning(&w.reasoning)?;
    req.output_format = decode_text_format(&w.text)?;
    req.metadata = match w.metadata {
        None | Some(Value::Null) => None,
        Some(m @ Value::Object(_)) => Some(m),
        Some(_) => {
            return Err(ApiError::invalid("metadata: expected an object").with_param("metadata"))
        }
    };
    Ok(req)
}

fn text_part(text: &str) -> TextPart {
    TextPart {
        text: text.to_owned(),
        cache: false,
    }
}

/// Decodes `instructions`: the leading system text.
fn decode_instructions(v: &Value) -> Result<Vec<TextPart>, ApiError> {
    match v {
        Value::Null => Ok(Vec::new()),
        Value::String(s) if s.is_empty() => Ok(Vec::new()),
        Value::String(s) => Ok(vec![text_part(s)]),
        _ => Err(ApiError::invalid("instructions: expected a string").with_param("instructions")),
    }
}

/// Decodes `input`: one user message as a string, or a list of items.
fn decode_input(req: &mut Request, input: &Value) -> Result<(), ApiError> {
    match input {
        Value::Null => Ok(()),
        Value::String(s) => {
            req.messages.push(Message {
                role: Role::User,
                parts: vec![Part::Text(text_part(s))],
            });
            Ok(())
        }
        Value::Array(items) => {
            // System and developer messages before anything else are the
            // leading system text; later ones stay where they are.
            let mut leading = true;
            for (i, item) in items.iter().enumerate() {
                decode_item(req, item, i, &mut leading)?;
            }
            Ok(())
        }
        _ => Err(
            ApiError::invalid("input: expected a string or an array of items").with_param("input"),
        ),
    }
}

fn invalid_at(at: String, what: &str) -> ApiError {
    ApiError::invalid(format!("{at}{what}")).with_param(at)
}

/// Decodes one input item into the conversation.
fn decode_item(
    req: &mut Request,
    item: &Value,
    i: usize,
    leading: &mut bool,
) -> Result<(), ApiError> {
    let at = format!("input[{i}]");
    if !item.is_object() {
        return Err(invalid_at(at, ": expected an object"));
    }
    // Easy input messages may leave out `type`.
    let kind = item
        .get("type")
        .and_then(Value::as_str)
        .or_else(|| item.get("role").map(|_| "message"));
    if kind != Some("message") {
        *leading = false;
    }
    match kind {
        Some("message") => decode_message(req, item, &at, leading)?,
        Some("function_call") => {
            let call = ToolCall {
                id: required_str(item, "call_id", &at)?,
                name: required_str(item, "name", &at)?,
                arguments: arguments_text(item.get("arguments").unwrap_or(&Value::Null))
                    .map_err(|e| e.with_param(format!("{at}.arguments")))?,
            };
            push_part(&mut req.messages, Role::Assistant, Part::ToolCall(call));
        }
        Some("function_call_output") => {
            let result = ToolResult {
                call_id: required_str(item, "call_id", &at)?,
                content: output_parts(item.get("output"), &format!("{at}.output"))?,
                is_error: false,
            };
            push_part(&mut req.messages, Role::Tool, Part::ToolResult(result));
        }
        Some("reasoning") => {
            if let Some(r) = reasoning_part(item) {
                push_part(&mut req.messages, Role::Assistant, r);
            }
        }
        Some("item_reference") => {
            return Err(invalid_at(
                at,
                ": item references need the upstream's stored items; send the items themselves",
            ))
        }
        // Hosted tool calls and their results (web search, file search,
        // computer use...) were run and answered at OpenAI; no other
        // provider can use them.
        _ => {}
    }
    Ok(())
}

fn required_str(item: &Value, key: &str, at: &str) -> Result<String, ApiError> {
    item.get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| invalid_at(format!("{at}.{key}"), " is required"))
}

/// Appends `part` to the last message when it has `role` (consecutive
/// assistant-side items are one turn, consecutive outputs one tool turn),
/// else opens a new message.
fn push_part(messages: &mut Vec<Message>, role: Role, part: Part) {
    match messages.last_mut() {
        Some(m) if m.role == role => m.parts.push(part),
        _ => messages.push(Message {
            role,
            parts: vec![part],
        }),
    }
}

/// Decodes a `message` item by its role.
fn decode_message(
    req: &mut Request,
    item: &Value,
    at: &str,
    leading: &mut bool,
) -> Result<(), ApiError> {
    let content = item.get("content").unwrap_or(&Value::Null);
    let content_at = format!("{at}.content");
    match item.get("role").and_then(Value::as_str) {
        Some("system" | "developer") => {
            let parts = content_parts(content, &content_at)?;
            let texts = parts.into_iter().filter_map(|p| match p {
                Part::Text(t) => Some(t),
                _ => None,
            });
            if *leading {
                req.system.extend(texts);
            } else {
                req.messages.push(Message {
                    role: Role::System,
                    parts: texts.map(Part::Text).collect(),
                });
            }
        }
        Some("user") => {
            *leading = false;
            let parts = content_parts(content, &content_at)?;
            req.messages.push(Message {
                role: Role::User,
                parts,
            });
        }
        Some("assistant") => {
            *leading = false;
            for p in content_parts(content, &content_at)? {
                push_part(&mut req.messages, Role::Assistant, p);
            }
        }
        Some(other) => {
            return Err(invalid_at(
                format!("{at}.role"),
                &format!(": unsupported role '{other}'"),
            ))
        }
        None => return Err(invalid_at(format!("{at}.role"), " is required")),
    }
    Ok(())
}

/// Decodes message content: a string, or a list of content parts.
fn content_parts(content: &Value, at: &str) -> Result<Vec<Part>, ApiError> {
    match content {
        Value::Null => Ok(Vec::new()),
        Value::String(s) => Ok(vec![Part::Text(text_part(s))]),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .filter_map(|(i, p)| content_part(p, &format!("{at}[{i}]")).transpose())
            .collect(),
        _ => Err(invalid_at(
            at.to_owned(),
            ": expected a string or an array of parts",
        )),
    }
}

/// Decodes one content part; `None` for parts that carry nothing.
fn content_part(p: &Value, at: &str) -> Result<Option<Part>, ApiError> {
    let field = |k: &str| p.get(k).and_then(Value::as_str);
    Ok(Some(match p.get("type").and_then(Value::as_str) {
        Some("input_text" | "output_text" | "text") => {
            Part::Text(text_part(field("text").ok_or_else(|| {
                invalid_at(format!("{at}.text"), " must be a string")
            })?))
        }
        Some("refusal") => match field("refusal") {
            Some(r) => Part::Text(text_part(r)),
            None => return Ok(None),
        },
        Some("input_image") => match field("image_url") {
            Some(url) => Part::Image(media_from_url(url)),
            None => return Err(file_id_refused(at)),
        },
        Some("input_file") => Part::Document(input_file(p, at)?),
        other => {
            return Err(invalid_at(
                at.to_owned(),
                &format!(": unsupported content part type '{}'", other.unwrap_or("?")),
            ))
        }
    }))
}

/// The canonical model has no file store to resolve OpenAI file ids in.
fn file_id_refused(at: &str) -> ApiError {
    invalid_at(
        at.to_owned(),
        ": file ids are not supported; send the content inline (a data URL) or as a URL",
    )
}

/// Decodes an `input_file` part: inline data, a URL, or (refused) a file id.
fn input_file(p: &Value, at: &str) -> Result<Media, ApiError> {
    let field = |k: &str| p.get(k).and_then(Value::as_str).filter(|s| !s.is_empty());
    if let Some(data) = field("file_data") {
        if data.starts_with("data:") {
            return Ok(media_from_url(data));
        }
        return Ok(Media::Base64 {
            mime: mime_from_filename(field("filename").unwrap_or_default()).to_owned(),
            data: data.to_owned(),
        });
    }
    match field("file_url") {
        Some(url) => Ok(Media::Url(url.to_owned())),
        None => Err(file_id_refused(at)),
    }
}

/// The media type of inline file data, from its name (PDF when unsure:
/// what `input_file` carries most).
fn mime_from_filename(name: &str) -> &'static str {
    let ext = name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
    match ext.as_deref() {
        Some("txt") => "text/plain",
        Some("md") => "text/markdown",
        Some("csv") => "text/csv",
        Some("json") => "application/json",
        Some("html" | "htm") => "text/html",
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        _ => "application/pdf",
    }
}

/// `data:<mime>;base64,<data>` → inline bytes; anything else → a URL.
fn media_from_url(url: &str) -> Media {
    if let Some((mime, data)) = url
        .strip_prefix("data:")
        .and_then(|rest| rest.split_once(";base64,"))
    {
        return Media::Base64 {
            mime: mime.to_owned(),
            data: data.to_owned(),
        };
    }
    Media::Url(url.to_owned())
}

/// Decodes a `function_call_output.output`: a string or content parts.
fn output_parts(output: Option<&Value>, at: &str) -> Result<Vec<Part>, ApiError> {
    match output {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(v @ (Value::String(_) | Value::Array(_))) => content_parts(v, at),
        Some(_) => Err(invalid_at(
            at.to_owned(),
            ": expected a string or an array of parts",
        )),
    }
}

/// Decodes a `reasoning` item: its summaries (or, without any, its raw
/// reasoning text) and its encrypted state, tagged as OpenAI's.
fn reasoning_part(item: &Value) -> Option<Part> {
    let texts = |key: &str| -> String {
        item.get(key)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|s| s.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n\n")
    };
    let mut text = texts("summary");
    if text.is_empty() {
        text = texts("content");
    }
    let signature = item
        .get("encrypted_content")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(|s| signature_from_client(s, Issuer::OpenAi));
    if text.is_empty() && signature.is_none() {
        return None;
    }
    Some(Part::Reasoning(Reasoning {
        text,
        signature,
        redacted: None,
    }))
}

/// Decodes `tools`: functions, and every other type as an OpenAI-hosted tool.
fn decode_tools(tools: Vec<Value>) -> Result<(Vec<Tool>, Vec<HostedTool>), ApiError> {
    let mut functions = Vec::new();
    let mut hosted = Vec::new();
    for (i, t) in tools.into_iter().enumerate() {
        let at = format!("tools[{i}]");
        if !t.is_object() {
            return Err(invalid_at(at, ": expected an object"));
        }
        match t.get("type").and_then(Value::as_str) {
            Some("function") | None => functions.push(Tool {
                name: required_str(&t, "name", &at)?,
                description: opt_str(&t, "description"),
                schema: t
                    .get("parameters")
                    .filter(|p| !p.is_null())
                    .cloned()
                    .unwrap_or_else(|| json!({"type": "object", "properties": {}})),
                strict: t.get("strict").and_then(Value::as_bool),
            }),
            Some(_) => hosted.push(HostedTool {
                issuer: Issuer::OpenAi,
                spec: t,
            }),
        }
    }
    Ok((functions, hosted))
}

/// Decodes `tool_choice`: a mode, a named function, or an object forcing
/// a hosted tool (only "some tool" survives of that).
fn decode_tool_choice(choice: Option<Value>) -> Result<Option<ToolChoice>, ApiError> {
    let bad = |what: String| {
        Err(ApiError::invalid(format!("tool_choice: {what}")).with_param("tool_choice"))
    };
    let mode = |s: &str| match s {
        "auto" => Some(ToolChoice::Auto),
        "none" => Some(ToolChoice::None),
        "required" => Some(ToolChoice::Required),
        _ => None,
    };
    Ok(match choice {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => match mode(&s) {
            Some(c) => Some(c),
            None => return bad(format!("unknown value '{s}'")),
        },
        Some(v) => match v.get("type").and_then(Value::as_str) {
            Some("function" | "custom") => {
                let name = v
                    .get("name")
                    .or_else(|| v.pointer("/function/name"))
                    .and_then(Value::as_str);
                match name {
                    Some(n) => Some(ToolChoice::Named(n.to_owned())),
                    None => return bad("a named function needs 'name'".into()),
                }
            }
            Some("allowed_tools") => v.get("mode").and_then(Value::as_str).and_then(mode),
            Some(_) => Some(ToolChoice::Required),
            None => return bad("expected a string or an object with 'type'".into()),
        },
    })
}

/// Decodes `reasoning`: present means reasoning is asked for, with or
/// without an effort (Codex sends only `summary`).
fn decode_reasoning(v: &Value) -> Result<Option<ReasoningConfig>, ApiError> {
    match v {
        Value::Null => Ok(None),
        Value::Object(o) => {
            let effort = match o.get("effort") {
                None | Some(Value::Null) => None,
                Some(Value::String(e)) => Some(Effort::parse(e).ok_or_else(|| {
                    ApiError::invalid(format!("reasoning.effort: unknown value '{e}'"))
                        .with_param("reasoning.effort")
                })?),
                Some(_) => {
                    return Err(ApiError::invalid("reasoning.effort: expected a string")
                        .with_param("reasoning.effort"))
                }
            };
            Ok(Some(ReasoningConfig {
                effort,
                budget_tokens: None,
            }))
        }
        _ => Err(ApiError::invalid("reasoning: expected an object").with_param("reasoning")),
    }
}

/// Decodes `text.format` into an output format (unknown types: none).
fn decode_text_format(text: &Value) -> Result<Option<OutputFormat>, ApiError> {
    let format = match text {
        Value::Null => return Ok(None),
        Value::Object(_) => text.get("format").unwrap_or(&Value::Null),
        _ => return Err(ApiError::invalid("text: expected an object").with_param("text")),
    };
    Ok(match format.get("type").and_then(Value::as_str) {
        Some("json_schema") => Some(OutputFormat::JsonSchema {
            name: opt_str(format, "name").unwrap_or_else(|| "output".into()),
            schema: format.get("schema").cloned().unwrap_or_else(|| json!({})),
            strict: format.get("strict").and_then(Value::as_bool),
        }),
        Some("json_object") => Some(OutputFormat::JsonObject),
        Some("text") => Some(OutputFormat::Text),
        _ => None,
    })
}

// ------------------------------------------------------------------ encode

/// How a request is encoded for one Responses upstream, from its provider
/// config.
#[derive(Debug, Clone, Default)]
pub struct EncodeOptions {
    /// Forward `reasoning` (and ask for its encrypted state): models
    /// without reasoning reject the parameter, as in Chat.
    pub reasoning: bool,
}

/// OpenAI refuses `max_output_tokens` below 16; clients ask for less (a
/// one-token probe), so the floor is raised rather than the request failed.
const MIN_OUTPUT_TOKENS: u64 = 16;

/// Encodes the canonical request as a Responses body for `model`.
pub fn encode(
    req: &Request,
    model: &str,
    opts: &EncodeOptions,
    max_output_cap: Option<u64>,
) -> Result<Value, ApiError> {
    if req.sampling.n.is_some_and(|n| n > 1) {
        return Err(ApiError::invalid("n must be 1 for this model").with_param("n"));
    }
    let mut out = Map::new();
    out.insert("model".into(), json!(model));
    let instructions: Vec<String> = req
        .system
        .iter()
        .map(|p| strip_billing_header(&p.text).unwrap_or_else(|| p.text.clone()))
        .filter(|t| !t.trim().is_empty())
        .collect();
    if !instructions.is_empty() {
        out.insert("instructions".into(), json!(instructions.join("\n\n")));
    }
    out.insert("input".into(), Value::Array(encode_input(req)));
    encode_tools(req, &mut out)?;
    encode_sampling(req, opts, max_output_cap, &mut out);
    let put = |out: &mut Map<String, Value>, k: &str, v: Option<Value>| {
        if let Some(v) = v {
            out.insert(k.into(), v);
        }
    };
    put(&mut out, "user", req.user.as_ref().map(|u| json!(u)));
    put(&mut out, "metadata", req.metadata.clone());
    put(
        &mut out,
        "previous_response_id",
        req.previous_response_id.as_ref().map(|p| json!(p)),
    );
    put(&mut out, "store", req.store.map(|s| json!(s)));
    out.insert("stream".into(), json!(req.stream));
    Ok(Value::Object(out))
}

/// Claude Code puts a per-request billing line in the first system block;
/// it destroys prefix caching anywhere but at Anthropic.
fn strip_billing_header(text: &str) -> Option<String> {
    if !text.contains("x-anthropic-billing-header:") {
        return None;
    }
    Some(
        text.lines()
            .filter(|l| !l.trim_start().starts_with("x-anthropic-billing-header:"))
            .collect::<Vec<_>>()
            .join("\n"),
    )
}

/// Encodes the conversation as input items.
fn encode_input(req: &Request) -> Vec<Value> {
    let mut items = Vec::with_capacity(req.messages.len());
    for m in &req.messages {
        match m.role {
            Role::User | Role::System => {
                let content = input_content(&m.parts);
                if !content.is_empty() {
                    let role = if m.role == Role::User {
                        "user"
                    } else {
                        "system"
                    };
                    items.push(json!({"type": "message", "role": role, "content": content}));
                }
            }
            Role::Assistant => assistant_items(&m.parts, &mut items),
            Role::Tool => {
                for p in &m.parts {
                    if let Part::ToolResult(r) = p {
                        items.push(json!({"type": "function_call_output", "call_id": r.call_id,
                            "output": tool_output(r)}));
                    }
                }
            }
        }
    }
    items
}

/// An assistant turn as items, in order: text as `output_text` messages,
/// calls as `function_call`, and reasoning only when OpenAI minted it
/// (any other vendor's token would be rejected or misread).
fn assistant_items(parts: &[Part], items: &mut Vec<Value>) {
    let mut text = String::new();
    let flush = |text: &mut String, items: &mut Vec<Value>| {
        if !text.is_empty() {
            items.push(json!({"type": "message", "role": "assistant",
                "content": [{"type": "output_text", "text": std::mem::take(text), "annotations": []}]}));
        }
    };
    for p in parts {
        match p {
            Part::Text(t) => text.push_str(&t.text),
            Part::ToolCall(c) => {
                flush(&mut text, items);
                items.push(
                    json!({"type": "function_call", "call_id": c.id, "name": c.name,
                    "arguments": c.arguments}),
                );
            }
            Part::Reasoning(r) => {
                let Some(raw) = r
                    .signature
                    .as_deref()
                    .and_then(|s| signature_issued_by(s, Issuer::OpenAi))
                else {
                    continue;
                };
                flush(&mut text, items);
                let summary: Vec<Value> = if r.text.is_empty() {
                    Vec::new()
                } else {
                    vec![json!({"type": "summary_text", "text": r.text})]
                };
                items.push(
                    json!({"type": "reasoning", "summary": summary, "encrypted_content": raw}),
                );
            }
            _ => {}
        }
    }
    flush(&mut text, items);
}

fn data_url(mime: &str, data: &str) -> String {
    format!("data:{mime};base64,{data}")
}

/// User-side content parts: text, images and files.
fn input_content(parts: &[Part]) -> Vec<Value> {
    parts
        .iter()
        .filter_map(|p| match p {
            Part::Text(t) => Some(json!({"type": "input_text", "text": t.text})),
            Part::Image(Media::Base64 { mime, data }) => Some(
                json!({"type": "input_image", "image_url": data_url(mime, data), "detail": "auto"}),
            ),
            Part::Image(Media::Url(u)) => {
                Some(json!({"type": "input_image", "image_url": u, "detail": "auto"}))
            }
            Part::Image(Media::Text(t)) | Part::Document(Media::Text(t)) => {
                Some(json!({"type": "input_text", "text": t}))
            }
            Part::Document(Media::Base64 { mime, data }) => Some(json!({"type": "input_file",
                "filename": document_name(mime), "file_data": data_url(mime, data)})),
            Part::Document(Media::Url(u)) => Some(json!({"type": "input_file", "file_url": u})),
            _ => None,
        })
        .collect()
}

/// OpenAI wants a file name with inline file data; only its extension matters.
fn document_name(mime: &str) -> String {
    let ext = match mime {
        "text/plain" => "txt",
        "text/markdown" => "md",
        "text/csv" => "csv",
        "application/json" => "json",
        "text/html" => "html",
        _ => "pdf",
    };
    format!("document.{ext}")
}

/// A tool result's `output`: a string when it is all text, else parts.
fn tool_output(r: &ToolResult) -> Value {
    let all_text = r
        .content
        .iter()
        .all(|p| matches!(p, Part::Text(_) | Part::Document(Media::Text(_))));
    if all_text {
        let mut text = String::new();
        if r.is_error {
            text.push_str("[tool error] ");
        }
        for p in &r.content {
            match p {
                Part::Text(t) => text.push_str(&t.text),
                Part::Document(Media::Text(t)) => text.push_str(t),
                _ => {}
            }
        }
        return json!(text);
    }
    let mut parts = input_content(&r.content);
    if r.is_error {
        parts.insert(0, json!({"type": "input_text", "text": "[tool error]"}));
    }
    Value::Array(parts)
}

/// Encodes `tools` (functions, then OpenAI's hosted tools as given),
/// `parallel_tool_calls` and `tool_choice`.
fn encode_tools(req: &Request, out: &mut Map<String, Value>) -> Result<(), ApiError> {
    let mut tools: Vec<Value> = Vec::with_capacity(req.tools.len() + req.hosted_tools.len());
    for t in &req.tools {
        // Responses makes functions strict unless told otherwise, and a
        // strict function's schema must meet rules most clients' schemas
        // do not: strict only when the client asked.
        let mut v = json!({"type": "function", "name": t.name, "parameters": t.schema,
            "strict": t.strict.unwrap_or(false)});
        if let Some(d) = &t.description {
            v["description"] = json!(d);
        }
        tools.push(v);
    }
    HostedTool::check_all(&req.hosted_tools, Some(Issuer::OpenAi), "OpenAI Responses")?;
    for h in req
        .hosted_tools
        .iter()
        .filter(|h| h.issuer == Issuer::OpenAi)
    {
        tools.push(h.spec.clone());
    }
    if !tools.is_empty() {
        out.insert("tools".into(), Value::Array(tools));
    }
    if let Some(p) = req.parallel_tool_calls {
        out.insert("parallel_tool_calls".into(), json!(p));
    }
    if let Some(tc) = &req.tool_choice {
        let v = match tc {
            ToolChoice::Auto => json!("auto"),
            ToolChoice::None => json!("none"),
            ToolChoice::Required => json!("required"),
            ToolChoice::Named(n) => json!({"type": "function", "name": n}),
        };
        out.insert("tool_choice".into(), v);
    }
    Ok(())
}

/// Encodes the token limit, sampling, `reasoning`, `include` and `text`.
fn encode_sampling(
    req: &Request,
    opts: &EncodeOptions,
    max_output_cap: Option<u64>,
    out: &mut Map<String, Value>,
) {
    let s = &req.sampling;
    if let Some(max) = s.max_output_tokens {
        let max = max_output_cap.map_or(max, |cap| max.min(cap));
        out.insert(
            "max_output_tokens".into(),
            json!(max.max(MIN_OUTPUT_TOKENS)),
        );
    }
    if let Some(t) = s.temperature {
        out.insert("temperature".into(), json!(t));
    }
    if let Some(t) = s.top_p {
        out.insert("top_p".into(), json!(t));
    }
    // `stop`, `seed`, penalties and `top_k` have no Responses equivalent:
    // dropped, as for any target that lacks a sampling knob.
    if let Some(r) = req.reasoning.filter(|_| opts.reasoning) {
        let effort = r
            .effort
            .or_else(|| r.budget_tokens.map(Effort::from_budget));
        let mut v = json!({"summary": "auto"});
        if let Some(e) = effort {
            // OpenAI's scale ends at xhigh.
            v["effort"] = json!(if e == Effort::Max {
                "xhigh"
            } else {
                e.as_str()
            });
        }
        out.insert("reasoning".into(), v);
        // Without storage the reasoning state comes back only encrypted,
        // and the next turn needs it.
        if effort != Some(Effort::None) && req.store != Some(true) {
            out.insert("include".into(), json!(["reasoning.encrypted_content"]));
        }
    }
    if let Some(f) = &req.output_format {
        let format = match f {
            OutputFormat::Text => json!({"type": "text"}),
            OutputFormat::JsonObject => json!({"type": "json_object"}),
            OutputFormat::JsonSchema {
                name,
                schema,
                strict,
            } => {
                let mut v = json!({"type": "json_schema", "name": name, "schema": schema});
                if let Some(s) = strict {
                    v["strict"] = json!(s);
                }
                v
            }
        };
        out.insert("text".into(), json!({"format": format}));
    }
}

#[cfg(test)]
#[path = "request_tests.rs"]
mod tests;
