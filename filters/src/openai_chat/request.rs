//! OpenAI Chat Completions requests ⇄ the canonical request. Where an
//! OpenAI-compatible backend differs from OpenAI (token limit field,
//! `reasoning_effort`, mid-conversation system messages), its provider
//! config decides.

use crate::canonical::*;
use crate::error::ApiError;
use serde::Deserialize;
use serde_json::{json, Map, Value};

#[derive(Deserialize)]
struct WireRequest {
    model: String,
    messages: Vec<WireMessage>,
    tools: Option<Vec<WireTool>>,
    tool_choice: Option<Value>,
    parallel_tool_calls: Option<bool>,
    max_tokens: Option<u64>,
    max_completion_tokens: Option<u64>,
    temperature: Option<f64>,
    top_p: Option<f64>,
    stop: Option<Value>,
    n: Option<u64>,
    seed: Option<i64>,
    presence_penalty: Option<f64>,
    frequency_penalty: Option<f64>,
    reasoning_effort: Option<String>,
    response_format: Option<Value>,
    user: Option<String>,
    stream: Option<bool>,
    stream_options: Option<WireStreamOptions>,
}

#[derive(Deserialize)]
struct WireStreamOptions {
    include_usage: Option<bool>,
}

#[derive(Deserialize)]
struct WireMessage {
    role: String,
    #[serde(default)]
    content: Value,
    tool_calls: Option<Vec<WireToolCall>>,
    tool_call_id: Option<String>,
    reasoning_content: Option<String>,
    refusal: Option<String>,
}

#[derive(Deserialize)]
struct WireToolCall {
    id: Option<String>,
    function: WireFunctionCall,
}

#[derive(Deserialize)]
struct WireFunctionCall {
    name: String,
    #[serde(default)]
    arguments: Value,
}

#[derive(Deserialize)]
struct WireTool {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    function: Option<WireFunction>,
}

#[derive(Deserialize)]
struct WireFunction {
    name: String,
    description: Option<String>,
    parameters: Option<Value>,
    strict: Option<bool>,
}

/// Decodes a client's Chat Completions body.
pub fn decode(body: &[u8]) -> Result<Request, ApiError> {
    let w: WireRequest = crate::error::parse_body(body)?;
    let mut req = Request {
        model: w.model,
        stream: w.stream.unwrap_or(false),
        include_usage: w
            .stream_options
            .and_then(|o| o.include_usage)
            .unwrap_or(false),
        parallel_tool_calls: w.parallel_tool_calls,
        user: w.user,
        ..Request::default()
    };
    decode_messages(&mut req, w.messages)?;
    if req.messages.is_empty() && req.system.is_empty() {
        return Err(
            ApiError::invalid("messages: at least one message is required").with_param("messages"),
        );
    }
    req.tools = decode_tools(w.tools.unwrap_or_default())?;
    req.tool_choice = decode_tool_choice(w.tool_choice)?;
    req.sampling = Sampling {
        max_output_tokens: w.max_completion_tokens.or(w.max_tokens),
        temperature: w.temperature,
        top_p: w.top_p,
        top_k: None,
        stop: decode_stop(w.stop)?,
        n: w.n,
        seed: w.seed,
        presence_penalty: w.presence_penalty,
        frequency_penalty: w.frequency_penalty,
    };
    req.reasoning = decode_reasoning_effort(w.reasoning_effort)?;
    req.output_format = w.response_format.and_then(decode_response_format);
    Ok(req)
}

/// Decodes `messages` into leading system text and the conversation.
fn decode_messages(req: &mut Request, messages: Vec<WireMessage>) -> Result<(), ApiError> {
    let mut leading = true;
    for (i, m) in messages.into_iter().enumerate() {
        let at = |field: &str| format!("messages[{i}].{field}");
        match m.role.as_str() {
            "system" | "developer" => {
                let parts = text_parts(&m.content, &at("content"))?;
                if leading {
                    req.system.extend(parts);
                } else {
                    req.messages.push(Message {
                        role: Role::System,
                        parts: parts.into_iter().map(Part::Text).collect(),
                    });
                }
            }
            "user" => {
                leading = false;
                let parts = user_parts(&m.content, &at("content"))?;
                req.messages.push(Message {
                    role: Role::User,
                    parts,
                });
            }
            "assistant" => {
                leading = false;
                req.messages.push(assistant_message(m, &at)?);
            }
            "tool" | "function" => {
                leading = false;
                req.messages.push(tool_message(m, &at)?);
            }
            other => {
                return Err(ApiError::invalid(format!(
                    "{}: unsupported role '{other}'",
                    at("role")
                )))
            }
        }
    }
    Ok(())
}

/// Decodes an assistant message: reasoning, text, refusal, then tool calls.
fn assistant_message(m: WireMessage, at: &impl Fn(&str) -> String) -> Result<Message, ApiError> {
    let mut parts = Vec::new();
    if let Some(r) = m.reasoning_content.filter(|r| !r.is_empty()) {
        parts.push(Part::Reasoning(Reasoning {
            text: r,
            signature: None,
            redacted: None,
        }));
    }
    parts.extend(
        text_parts(&m.content, &at("content"))?
            .into_iter()
            .map(Part::Text),
    );
    if let Some(r) = m.refusal.filter(|r| !r.is_empty()) {
        parts.push(Part::Text(TextPart {
            text: r,
            cache: false,
        }));
    }
    for (j, tc) in m.tool_calls.unwrap_or_default().into_iter().enumerate() {
        parts.push(Part::ToolCall(ToolCall {
            id: tc
                .id
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| new_id("call_")),
            name: tc.function.name,
            arguments: arguments_text(&tc.function.arguments)
                .map_err(|e| e.with_param(at(&format!("tool_calls[{j}].function.arguments"))))?,
        }));
    }
    Ok(Message {
        role: Role::Assistant,
        parts,
    })
}

/// Decodes a `tool` (or legacy `function`) message into one tool result.
fn tool_message(m: WireMessage, at: &impl Fn(&str) -> String) -> Result<Message, ApiError> {
    let call_id = m.tool_call_id.ok_or_else(|| {
        ApiError::invalid(format!(
            "{} is required for tool messages",
            at("tool_call_id")
        ))
    })?;
    let content = text_parts(&m.content, &at("content"))?
        .into_iter()
        .map(Part::Text)
        .collect();
    Ok(Message {
        role: Role::Tool,
        parts: vec![Part::ToolResult(ToolResult {
            call_id,
            content,
            is_error: false,
        })],
    })
}

/// Decodes `tools`: function tools only.
fn decode_tools(tools: Vec<WireTool>) -> Result<Vec<Tool>, ApiError> {
    let mut out = Vec::new();
    for (i, t) in tools.into_iter().enumerate() {
        match (t.kind.as_deref(), t.function) {
            (None | Some("function"), Some(f)) => out.push(Tool {
                name: f.name,
                description: f.description,
                schema: f
                    .parameters
                    .unwrap_or_else(|| json!({"type": "object", "properties": {}})),
                strict: f.strict,
            }),
            (kind, _) => {
                return Err(ApiError::invalid(format!(
                    "tools[{i}]: tool type '{}' is not supported by this route",
                    kind.unwrap_or("?")
                ))
                .with_param(format!("tools[{i}]")))
            }
        }
    }
    Ok(out)
}

/// Decodes `tool_choice`: a mode string or a named function.
fn decode_tool_choice(choice: Option<Value>) -> Result<Option<ToolChoice>, ApiError> {
    Ok(match choice {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(match s.as_str() {
            "auto" => ToolChoice::Auto,
            "none" => ToolChoice::None,
            "required" => ToolChoice::Required,
            _ => {
                return Err(
                    ApiError::invalid(format!("tool_choice: unknown value '{s}'"))
                        .with_param("tool_choice"),
                )
            }
        }),
        Some(v) => Some(ToolChoice::Named(
            v.pointer("/function/name")
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    ApiError::invalid("tool_choice.function.name is required")
                        .with_param("tool_choice")
                })?
                .to_owned(),
        )),
    })
}

/// Decodes `stop`: a string or an array of strings.
fn decode_stop(stop: Option<Value>) -> Result<Vec<String>, ApiError> {
    Ok(match stop {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => vec![s],
        Some(Value::Array(a)) => a
            .into_iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        Some(_) => {
            return Err(
                ApiError::invalid("stop: expected a string or an array of strings")
                    .with_param("stop"),
            )
        }
    })
}

/// Decodes `reasoning_effort` into a reasoning config.
fn decode_reasoning_effort(effort: Option<String>) -> Result<Option<ReasoningConfig>, ApiError> {
    Ok(match effort {
        None => None,
        Some(e) => Some(ReasoningConfig {
            effort: Some(Effort::parse(&e).ok_or_else(|| {
                ApiError::invalid(format!("reasoning_effort: unknown value '{e}'"))
                    .with_param("reasoning_effort")
            })?),
            budget_tokens: None,
        }),
    })
}

/// Decodes `response_format`; `None` when it has no `type`.
fn decode_response_format(f: Value) -> Option<OutputFormat> {
    match f.get("type").and_then(Value::as_str)? {
        "json_object" => Some(OutputFormat::JsonObject),
        "json_schema" => {
            let s = f.get("json_schema")?;
            Some(OutputFormat::JsonSchema {
                name: s
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or("output")
                    .to_owned(),
                schema: s.get("schema").cloned().unwrap_or_else(|| json!({})),
                strict: s.get("strict").and_then(Value::as_bool),
            })
        }
        _ => Some(OutputFormat::Text),
    }
}

fn text_parts(content: &Value, at: &str) -> Result<Vec<TextPart>, ApiError> {
    match content {
        Value::Null => Ok(Vec::new()),
        Value::String(s) => Ok(vec![TextPart {
            text: s.clone(),
            cache: false,
        }]),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .filter_map(|(i, p)| match p.get("type").and_then(Value::as_str) {
                Some("text") | Some("input_text") | Some("output_text") => Some(
                    p.get("text")
                        .and_then(Value::as_str)
                        .map(|t| TextPart {
                            text: t.to_owned(),
                            cache: false,
                        })
                        .ok_or_else(|| {
                            ApiError::invalid(format!("{at}[{i}].text must be a string"))
                        }),
                ),
                Some("refusal") => p.get("refusal").and_then(Value::as_str).map(|t| {
                    Ok(TextPart {
                        text: t.to_owned(),
                        cache: false,
                    })
                }),
                _ => Some(Err(ApiError::invalid(format!(
                    "{at}[{i}]: only text parts are allowed here"
                )))),
            })
            .collect(),
        _ => Err(ApiError::invalid(format!(
            "{at}: expected a string or an array of parts"
        ))),
    }
}

fn user_parts(content: &Value, at: &str) -> Result<Vec<Part>, ApiError> {
    let Value::Array(items) = content else {
        return Ok(text_parts(content, at)?
            .into_iter()
            .map(Part::Text)
            .collect());
    };
    let mut parts = Vec::with_capacity(items.len());
    for (i, p) in items.iter().enumerate() {
        let field = |f: &str| p.pointer(f).and_then(Value::as_str);
        let part = match p.get("type").and_then(Value::as_str) {
            Some("text") => Part::Text(TextPart {
                text: field("/text")
                    .ok_or_else(|| ApiError::invalid(format!("{at}[{i}].text must be a string")))?
                    .to_owned(),
                cache: false,
            }),
            Some("image_url") => {
                let url = field("/image_url/url")
                    .or_else(|| field("/image_url"))
                    .ok_or_else(|| {
                        ApiError::invalid(format!("{at}[{i}].image_url.url is required"))
                    })?;
                Part::Image(media_from_url(url))
            }
            Some("file") => {
                let data = field("/file/file_data").ok_or_else(|| {
                    ApiError::invalid(format!(
                        "{at}[{i}].file.file_data is required (file ids are not supported)"
                    ))
                })?;
                Part::Document(media_from_url(data))
            }
            Some("input_audio") => {
                return Err(ApiError::invalid(format!(
                    "{at}[{i}]: audio input is not supported by this route"
                )))
            }
            other => {
                return Err(ApiError::invalid(format!(
                    "{at}[{i}]: unknown content part type '{}'",
                    other.unwrap_or("?")
                )))
            }
        };
        parts.push(part);
    }
    Ok(parts)
}

/// `data:<mime>;base64,<data>` → inline bytes; anything else → a URL.
pub(crate) fn media_from_url(url: &str) -> Media {
    if let Some(rest) = url.strip_prefix("data:") {
        if let Some((mime, data)) = rest.split_once(";base64,") {
            return Media::Base64 {
                mime: mime.to_owned(),
                data: data.to_owned(),
            };
        }
    }
    Media::Url(url.to_owned())
}

fn media_url(m: &Media) -> String {
    match m {
        Media::Base64 { mime, data } => format!("data:{mime};base64,{data}"),
        Media::Url(u) => u.clone(),
        Media::Text(t) => t.clone(),
    }
}

/// Whether a `messages` array (its JSON text) may hold a system message
/// after the first message, read without decoding it: any `"system"` but
/// a leading system message's role counts, so text that merely says
/// `"system"` errs on the side of a re-encode (correct, slower), never
/// the other way.
pub fn may_have_late_system(messages: &[u8]) -> bool {
    let hits = memchr::memmem::find_iter(messages, b"\"system\"")
        .take(2)
        .count();
    let leading = || {
        crate::wire::json_peek::first_element(messages)
            .and_then(|r| crate::wire::json_peek::members(&messages[r]).ok())
            .is_some_and(|m| m.raw("role") == Some(b"\"system\""))
    };
    match hits {
        0 => false,
        1 => !leading(),
        _ => true,
    }
}

/// What differs between OpenAI-compatible upstreams, from provider config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncodeOptions {
    /// Send the limit as `max_completion_tokens` (OpenAI reasoning models
    /// reject `max_tokens`) rather than `max_tokens` (older compatibles).
    pub max_completion_tokens_field: bool,
    /// How a request for reasoning is put to this backend (non-reasoning
    /// models reject fields they do not know).
    pub reasoning: ReasoningParam,
    /// Earlier turns' reasoning is sent back (`reasoning_content`).
    pub reasoning_history: bool,
    /// The token-limit field and the reasoning field were chosen (by the
    /// provider's config or its preset), not defaulted: an OpenAI client's
    /// own request is held to them too, not only a translated one.
    pub strict_limit_field: bool,
    pub strict_reasoning: bool,
    pub mid_system: MidSystem,
}

impl Default for EncodeOptions {
    fn default() -> Self {
        Self {
            max_completion_tokens_field: false,
            reasoning: ReasoningParam::None,
            reasoning_history: false,
            strict_limit_field: false,
            strict_reasoning: false,
            mid_system: MidSystem::Keep,
        }
    }
}

/// The field an OpenAI-compatible backend reads a request for reasoning
/// from: each vendor chose its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReasoningParam {
    /// Not sent: the model decides (or reasons by its name).
    None,
    /// `reasoning_effort: "low" | "medium" | "high"` (OpenAI, xAI, Groq,
    /// Ollama).
    Effort,
    /// `enable_thinking: true` and `thinking_budget` (Qwen on DashScope,
    /// SiliconFlow).
    EnableThinking,
    /// `thinking: {"type": "enabled"}` (GLM, DeepSeek, Kimi).
    Thinking,
    /// `reasoning: {"effort"}` or `{"max_tokens"}` (OpenRouter).
    Reasoning,
    /// `chat_template_kwargs: {"enable_thinking": true}` (vLLM, SGLang
    /// serving Qwen-style templates).
    ChatTemplateKwargs,
}

impl ReasoningParam {
    /// Its config name (`reasoning_param = "…"`).
    pub fn name(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Effort => "reasoning_effort",
            Self::EnableThinking => "enable_thinking",
            Self::Thinking => "thinking",
            Self::Reasoning => "reasoning",
            Self::ChatTemplateKwargs => "chat_template_kwargs",
        }
    }

    pub fn named(name: &str) -> Option<Self> {
        [
            Self::None,
            Self::Effort,
            Self::EnableThinking,
            Self::Thinking,
            Self::Reasoning,
            Self::ChatTemplateKwargs,
        ]
        .into_iter()
        .find(|p| p.name() == name)
    }
}

/// What to do with a system message in the middle of a conversation, for
/// backends whose chat templates reject it (vLLM/Qwen templates want system
/// messages only at the start; Claude Code sends one on nearly every request).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MidSystem {
    Keep,
    DemoteToUser,
    MergeIntoLeading,
    Drop,
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

/// Encodes the canonical request as a Chat Completions body for `model`.
pub fn encode(
    req: &Request,
    model: &str,
    opts: &EncodeOptions,
    max_output_cap: Option<u64>,
) -> Value {
    let mut out = Map::new();
    out.insert("model".into(), json!(model));
    out.insert("messages".into(), Value::Array(encode_messages(req, opts)));
    encode_tools(req, &mut out);
    encode_sampling(req, opts, max_output_cap, &mut out);
    put(
        &mut out,
        "response_format",
        req.output_format.as_ref().map(|f| match f {
            OutputFormat::Text => json!({"type": "text"}),
            OutputFormat::JsonObject => json!({"type": "json_object"}),
            OutputFormat::JsonSchema { name, schema, strict } => {
                json!({"type": "json_schema", "json_schema": {"name": name, "schema": schema, "strict": strict}})
            }
        }),
    );
    if req.stream {
        put(&mut out, "stream", Some(json!(true)));
        // Anthropic clients need usage; OpenAI upstreams send it only if asked.
        put(
            &mut out,
            "stream_options",
            Some(json!({"include_usage": true})),
        );
    }
    Value::Object(out)
}

/// Inserts `k` into `out` when `v` is present.
fn put(out: &mut Map<String, Value>, k: &str, v: Option<Value>) {
    if let Some(v) = v {
        out.insert(k.into(), v);
    }
}

/// Encodes the system text and the conversation as the `messages` array.
fn encode_messages(req: &Request, opts: &EncodeOptions) -> Vec<Value> {
    let mut messages: Vec<Value> = Vec::with_capacity(req.messages.len() + 1);
    let mut leading: Vec<String> = req
        .system
        .iter()
        .map(|p| strip_billing_header(&p.text).unwrap_or_else(|| p.text.clone()))
        .filter(|t| !t.trim().is_empty())
        .collect();
    let mut body_msgs: Vec<Value> = Vec::with_capacity(req.messages.len());
    for m in &req.messages {
        match m.role {
            Role::System => {
                let text = join_text(&m.parts);
                match opts.mid_system {
                    MidSystem::Keep => body_msgs.push(json!({"role": "system", "content": text})),
                    MidSystem::DemoteToUser => {
                        body_msgs.push(json!({"role": "user", "content": text}))
                    }
                    MidSystem::MergeIntoLeading => leading.push(text),
                    MidSystem::Drop => {}
                }
            }
            Role::User => {
                body_msgs.push(json!({"role": "user", "content": user_content(&m.parts)}))
            }
            Role::Assistant => body_msgs.push(assistant_json(m, opts.reasoning_history)),
            Role::Tool => tool_json(m, &mut body_msgs),
        }
    }
    if !leading.is_empty() {
        messages.push(json!({"role": "system", "content": leading.join("\n\n")}));
    }
    messages.extend(body_msgs);
    messages
}

/// Encodes an assistant message: its text and any tool calls.
/// `reasoning_history`: the turn's reasoning goes back as
/// `reasoning_content` (DeepSeek and GLM refuse a tool-call turn without it
/// while thinking).
fn assistant_json(m: &Message, reasoning_history: bool) -> Value {
    let text = join_text(&m.parts);
    let calls: Vec<Value> = m
        .parts
        .iter()
        .filter_map(|p| match p {
            Part::ToolCall(c) => Some(json!({
                "id": c.id, "type": "function",
                "function": {"name": c.name, "arguments": c.arguments},
            })),
            _ => None,
        })
        .collect();
    let mut msg = json!({"role": "assistant", "content": if text.is_empty() && !calls.is_empty() { Value::Null } else { Value::String(text) }});
    if !calls.is_empty() {
        msg["tool_calls"] = Value::Array(calls);
    }
    if reasoning_history {
        let reasoning: String = m
            .parts
            .iter()
            .filter_map(|p| match p {
                Part::Reasoning(r) if r.redacted.is_none() => Some(r.text.as_str()),
                _ => None,
            })
            .collect();
        if !reasoning.is_empty() {
            msg["reasoning_content"] = Value::String(reasoning);
        }
    }
    msg
}

/// Encodes a tool message's results, one `tool` message each, into `body_msgs`.
fn tool_json(m: &Message, body_msgs: &mut Vec<Value>) {
    // OpenAI tool messages are text-only: media inside a result
    // follows as a user message.
    let mut media = Vec::new();
    for p in &m.parts {
        if let Part::ToolResult(r) = p {
            let mut text = join_text(&r.content);
            if r.is_error {
                text = format!("[tool error] {text}");
            }
            body_msgs.push(json!({"role": "tool", "tool_call_id": r.call_id, "content": text}));
            media.extend(
                r.content
                    .iter()
                    .filter(|p| matches!(p, Part::Image(_) | Part::Document(_)))
                    .cloned(),
            );
        }
    }
    if !media.is_empty() {
        body_msgs.push(json!({"role": "user", "content": user_content(&media)}));
    }
}

/// Encodes `tools`, `parallel_tool_calls` and `tool_choice`.
fn encode_tools(req: &Request, out: &mut Map<String, Value>) {
    if !req.tools.is_empty() {
        let tools: Vec<Value> = req
            .tools
            .iter()
            .map(|t| {
                let mut f = json!({"name": t.name, "parameters": t.schema});
                if let Some(d) = &t.description {
                    f["description"] = json!(d);
                }
                if let Some(s) = t.strict {
                    f["strict"] = json!(s);
                }
                json!({"type": "function", "function": f})
            })
            .collect();
        out.insert("tools".into(), Value::Array(tools));
        if let Some(p) = req.parallel_tool_calls {
            out.insert("parallel_tool_calls".into(), json!(p));
        }
    }
    if let Some(tc) = &req.tool_choice {
        out.insert(
            "tool_choice".into(),
            match tc {
                ToolChoice::Auto => json!("auto"),
                ToolChoice::None => json!("none"),
                ToolChoice::Required => json!("required"),
                ToolChoice::Named(n) => json!({"type": "function", "function": {"name": n}}),
            },
        );
    }
}

/// Encodes the token limit, sampling parameters and `reasoning_effort`.
fn encode_sampling(
    req: &Request,
    opts: &EncodeOptions,
    max_output_cap: Option<u64>,
    out: &mut Map<String, Value>,
) {
    let s = &req.sampling;
    if let Some(max) = s.max_output_tokens {
        let max = max_output_cap.map_or(max, |cap| max.min(cap));
        let field = if opts.max_completion_tokens_field {
            "max_completion_tokens"
        } else {
            "max_tokens"
        };
        out.insert(field.into(), json!(max));
    }
    put(out, "temperature", s.temperature.map(|t| json!(t)));
    put(out, "top_p", s.top_p.map(|t| json!(t)));
    put(out, "n", s.n.map(|t| json!(t)));
    put(out, "seed", s.seed.map(|t| json!(t)));
    put(
        out,
        "presence_penalty",
        s.presence_penalty.map(|t| json!(t)),
    );
    put(
        out,
        "frequency_penalty",
        s.frequency_penalty.map(|t| json!(t)),
    );
    if !s.stop.is_empty() {
        put(
            out,
            "stop",
            Some(json!(s.stop.iter().take(4).collect::<Vec<_>>())),
        );
    }
    encode_reasoning(req.reasoning, opts.reasoning, out);
}

/// A request for reasoning in the backend's own field; nothing when the
/// client asked for none.
fn encode_reasoning(
    asked: Option<ReasoningConfig>,
    param: ReasoningParam,
    out: &mut Map<String, Value>,
) {
    let Some(r) = asked else { return };
    let effort = r
        .effort
        .or_else(|| r.budget_tokens.map(Effort::from_budget));
    // `reasoning_effort: "none"`, a zero budget: reasoning asked off, in
    // the field's own words for off.
    let off = effort == Some(Effort::None) || r.budget_tokens == Some(0);
    match param {
        ReasoningParam::None => {}
        ReasoningParam::Effort => put(out, "reasoning_effort", effort.map(|e| json!(e.as_str()))),
        ReasoningParam::EnableThinking => {
            out.insert("enable_thinking".into(), json!(!off));
            if !off {
                put(out, "thinking_budget", r.budget_tokens.map(|b| json!(b)));
            }
        }
        ReasoningParam::Thinking => {
            let kind = if off { "disabled" } else { "enabled" };
            out.insert("thinking".into(), json!({ "type": kind }));
        }
        ReasoningParam::Reasoning => {
            let how = match (off, r.budget_tokens, effort) {
                (true, _, _) => json!({"effort": "none"}),
                (false, Some(b), _) => json!({"max_tokens": b}),
                (false, None, Some(e)) => json!({"effort": e.as_str()}),
                (false, None, None) => json!({"enabled": true}),
            };
            out.insert("reasoning".into(), how);
        }
        ReasoningParam::ChatTemplateKwargs => {
            out.insert(
                "chat_template_kwargs".into(),
                json!({ "enable_thinking": !off }),
            );
        }
    }
}

fn join_text(parts: &[Part]) -> String {
    let mut out = String::new();
    for p in parts {
        if let Part::Text(t) = p {
            out.push_str(&t.text);
        } else if let Part::Document(Media::Text(t)) = p {
            out.push_str(t);
        }
    }
    out
}

fn user_content(parts: &[Part]) -> Value {
    if parts.iter().all(|p| matches!(p, Part::Text(_))) {
        let texts: Vec<&str> = parts
            .iter()
            .filter_map(|p| match p {
                Part::Text(t) => Some(t.text.as_str()),
                _ => None,
            })
            .collect();
        return json!(texts.join("\n\n"));
    }
    Value::Array(
        parts
            .iter()
            .filter_map(|p| match p {
                Part::Text(t) => Some(json!({"type": "text", "text": t.text})),
                Part::Image(m) => Some(json!({"type": "image_url", "image_url": {"url": media_url(m)}})),
                Part::Document(Media::Text(t)) => Some(json!({"type": "text", "text": t})),
                Part::Document(m) => Some(json!({"type": "file", "file": {"file_data": media_url(m), "filename": "document.pdf"}})),
                _ => None,
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_json(v: Value) -> Result<Request, ApiError> {
        decode(v.to_string().as_bytes())
    }

    #[test]
    fn decodes_system_tools_images_and_tool_results() {
        let req = decode_json(json!({
            "model": "m", "stream": true, "stream_options": {"include_usage": true},
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "developer", "content": [{"type": "text", "text": "and kind"}]},
                {"role": "user", "content": [
                    {"type": "text", "text": "what is this?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA", "detail": "low"}}]},
                {"role": "assistant", "content": null, "reasoning_content": "hmm",
                 "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "look", "arguments": ""}}]},
                {"role": "tool", "tool_call_id": "call_1", "content": "a cat"},
                {"role": "system", "content": "mid"}
            ],
            "tools": [{"type": "function", "function": {"name": "look"}}],
            "tool_choice": {"type": "function", "function": {"name": "look"}},
            "max_tokens": 100, "stop": "END", "reasoning_effort": "high", "unknown_field": 1
        }))
        .unwrap();
        assert_eq!(req.system.len(), 2);
        assert!(req.stream && req.include_usage);
        assert_eq!(req.messages.len(), 4);
        assert_eq!(
            req.messages[0].parts[1],
            Part::Image(Media::Base64 {
                mime: "image/png".into(),
                data: "AAAA".into()
            })
        );
        assert!(matches!(&req.messages[1].parts[0], Part::Reasoning(r) if r.text == "hmm"));
        assert!(matches!(&req.messages[1].parts[1], Part::ToolCall(c) if c.arguments == "{}"));
        assert_eq!(req.messages[2].role, Role::Tool);
        assert_eq!(req.messages[3].role, Role::System);
        assert_eq!(
            req.tools[0].schema,
            json!({"type":"object","properties":{}})
        );
        assert_eq!(req.tool_choice, Some(ToolChoice::Named("look".into())));
        assert_eq!(req.sampling.max_output_tokens, Some(100));
        assert_eq!(req.sampling.stop, vec!["END".to_string()]);
        assert_eq!(req.reasoning.unwrap().effort, Some(Effort::High));
    }

    #[test]
    fn bad_input_is_a_clear_400() {
        for (body, needle) in [
            (json!({"model": "m"}), "messages"),
            (json!({"model": "m", "messages": "hi"}), "messages"),
            (json!({"model": 5, "messages": []}), "model"),
            (json!({"model": "m", "messages": []}), "at least one"),
            (
                json!({"model": "m", "messages": [{"role": "wizard", "content": "x"}]}),
                "unsupported role",
            ),
            (
                json!({"model": "m", "messages": [{"role": "assistant", "tool_calls": [{"id": "a", "function": {"name": "f", "arguments": "{oops"}}]}]}),
                "JSON object",
            ),
        ] {
            let e = decode_json(body).unwrap_err();
            assert_eq!(e.kind, crate::error::ErrorKind::InvalidRequest);
            assert!(e.message.contains(needle), "{} !~ {needle}", e.message);
        }
        assert!(decode(b"{not json").is_err());
    }

    #[test]
    fn encodes_for_openai_compatible_upstreams() {
        let mut req = decode_json(json!({
            "model": "client-name",
            "messages": [{"role": "user", "content": "hi"}],
            "max_tokens": 99999, "stream": true
        }))
        .unwrap();
        req.system.push(TextPart {
            text: "x-anthropic-billing-header: cc_version=1; cch=2;\nreal".into(),
            cache: true,
        });
        req.messages.push(Message {
            role: Role::System,
            parts: vec![Part::Text(TextPart {
                text: "note".into(),
                cache: false,
            })],
        });
        let opts = EncodeOptions {
            max_completion_tokens_field: true,
            mid_system: MidSystem::DemoteToUser,
            ..Default::default()
        };
        let v = encode(&req, "up-model", &opts, Some(4096));
        assert_eq!(v["model"], "up-model");
        assert_eq!(
            v["messages"][0],
            json!({"role": "system", "content": "real"})
        );
        assert_eq!(v["messages"][2], json!({"role": "user", "content": "note"}));
        assert_eq!(v["max_completion_tokens"], 4096);
        assert_eq!(v["stream_options"]["include_usage"], true);
    }

    #[test]
    fn a_request_for_reasoning_goes_in_each_backends_own_field() {
        let asked = |extra: Value| {
            let mut body = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]});
            body.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            decode_json(body).unwrap()
        };
        let high = asked(json!({"reasoning_effort": "high"}));
        let plain = asked(json!({}));
        let sent = |req: &Request, reasoning: ReasoningParam| {
            let opts = EncodeOptions {
                reasoning,
                ..Default::default()
            };
            let mut v = encode(req, "up", &opts, None);
            let m = v.as_object_mut().unwrap();
            for k in ["model", "messages", "stream", "stream_options"] {
                m.remove(k);
            }
            v
        };
        assert_eq!(sent(&high, ReasoningParam::None), json!({}));
        assert_eq!(
            sent(&high, ReasoningParam::Effort),
            json!({"reasoning_effort": "high"})
        );
        assert_eq!(
            sent(&high, ReasoningParam::EnableThinking),
            json!({"enable_thinking": true})
        );
        assert_eq!(
            sent(&high, ReasoningParam::Thinking),
            json!({"thinking": {"type": "enabled"}})
        );
        assert_eq!(
            sent(&high, ReasoningParam::Reasoning),
            json!({"reasoning": {"effort": "high"}})
        );
        assert_eq!(
            sent(&high, ReasoningParam::ChatTemplateKwargs),
            json!({"chat_template_kwargs": {"enable_thinking": true}})
        );
        // A budget (Anthropic `thinking.budget_tokens`) is kept where a
        // field takes one.
        let mut budget = plain.clone();
        budget.reasoning = Some(ReasoningConfig {
            effort: None,
            budget_tokens: Some(2048),
        });
        assert_eq!(
            sent(&budget, ReasoningParam::EnableThinking),
            json!({"enable_thinking": true, "thinking_budget": 2048})
        );
        assert_eq!(
            sent(&budget, ReasoningParam::Reasoning),
            json!({"reasoning": {"max_tokens": 2048}})
        );
        // Asked off: each field's own "off".
        let none = asked(json!({"reasoning_effort": "none"}));
        assert_eq!(
            sent(&none, ReasoningParam::EnableThinking),
            json!({"enable_thinking": false})
        );
        assert_eq!(
            sent(&none, ReasoningParam::Thinking),
            json!({"thinking": {"type": "disabled"}})
        );
        assert_eq!(
            sent(&none, ReasoningParam::Reasoning),
            json!({"reasoning": {"effort": "none"}})
        );
        assert_eq!(
            sent(&none, ReasoningParam::ChatTemplateKwargs),
            json!({"chat_template_kwargs": {"enable_thinking": false}})
        );
        assert_eq!(
            sent(&none, ReasoningParam::Effort),
            json!({"reasoning_effort": "none"})
        );
        let mut zero = plain.clone();
        zero.reasoning = Some(ReasoningConfig {
            effort: None,
            budget_tokens: Some(0),
        });
        assert_eq!(
            sent(&zero, ReasoningParam::EnableThinking),
            json!({"enable_thinking": false})
        );
        // Nothing asked, nothing sent, whatever the field.
        for p in [
            "none",
            "reasoning_effort",
            "enable_thinking",
            "thinking",
            "reasoning",
            "chat_template_kwargs",
        ] {
            let p = ReasoningParam::named(p).unwrap();
            assert_eq!(p.name(), ReasoningParam::named(p.name()).unwrap().name());
            assert_eq!(sent(&plain, p), json!({}), "{p:?}");
        }
        assert_eq!(ReasoningParam::named("effort"), None);
    }

    #[test]
    fn reasoning_goes_back_with_its_turn_only_where_asked() {
        let req = decode_json(json!({
            "model": "m",
            "messages": [
                {"role": "user", "content": "weather?"},
                {"role": "assistant", "content": null, "reasoning_content": "call the tool",
                 "tool_calls": [{"id": "c1", "type": "function",
                                 "function": {"name": "w", "arguments": "{}"}}]},
                {"role": "tool", "tool_call_id": "c1", "content": "sunny"}
            ]
        }))
        .unwrap();
        let with = |reasoning_history| {
            let opts = EncodeOptions {
                reasoning_history,
                ..Default::default()
            };
            encode(&req, "up", &opts, None)["messages"][1].clone()
        };
        assert_eq!(with(true)["reasoning_content"], "call the tool");
        assert_eq!(with(true)["tool_calls"][0]["id"], "c1");
        assert!(with(false).get("reasoning_content").is_none());
    }

    #[test]
    fn a_late_system_message_is_found_without_decoding() {
        let late = |j: &str| may_have_late_system(j.as_bytes());
        assert!(!late(r#"[{"role":"user","content":"hi"}]"#));
        assert!(!late(
            r#"[{"role": "system", "content": "be brief"}, {"role":"user","content":"hi"}]"#
        ));
        assert!(late(
            r#"[{"role":"user","content":"hi"},{"role":"system","content":"x"}]"#
        ));
        assert!(late(
            r#"[{"role":"system","content":"a"},{"role":"user"},{"role":"system","content":"b"}]"#
        ));
        // Words are not roles, but a string that is just "system" is taken
        // for one: a re-encode, never a late system message passed on.
        assert!(!late(r#"[{"role":"user","content":"the system is down"}]"#));
        assert!(!late(r#"[{"role":"user","content":"say \"system\""}]"#));
        assert!(late(r#"[{"role":"user","content":"system"}]"#));
        assert!(!late("[]"));
    }
}
