//! Gemini `generateContent` requests ⇄ the canonical request. The model and
//! the stream flag live in the URL path (`models/{m}:streamGenerateContent`),
//! so the caller sets them; the body carries everything else.
//!
//! Tool call ids: Gemini's `functionCall.id` is optional and usually absent.
//! Decoding, a missing id is made up from the call's position
//! (`call_{content}_{part}`), so the same history always gets the same ids
//! (an upstream's prompt cache sees the same prefix), and a
//! `functionResponse` is matched to its call by id, else by name and order
//! within the latest model turn that has an unanswered call of that name.
//! Encoding, ids are never sent: Gemini matches responses by name and order
//! itself, and an id minted by another vendor means nothing to it.

use super::parts::{self, get, push_signature, read_part, Audience, WirePart};
use super::schema;
use crate::canonical::*;
use crate::error::ApiError;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::collections::HashMap;

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct WireRequest {
    #[serde(default)]
    contents: Vec<WireContent>,
    #[serde(alias = "system_instruction")]
    system_instruction: Option<Value>,
    #[serde(default)]
    tools: Vec<Value>,
    #[serde(alias = "tool_config")]
    tool_config: Option<Value>,
    #[serde(alias = "generation_config")]
    generation_config: Option<WireGenerationConfig>,
}

#[derive(Deserialize)]
struct WireContent {
    role: Option<String>,
    #[serde(default)]
    parts: Vec<Value>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct WireGenerationConfig {
    #[serde(alias = "max_output_tokens")]
    max_output_tokens: Option<u64>,
    temperature: Option<f64>,
    #[serde(alias = "top_p")]
    top_p: Option<f64>,
    /// An integer on the wire, but some clients send `40.0`.
    #[serde(alias = "top_k")]
    top_k: Option<f64>,
    #[serde(alias = "stop_sequences")]
    stop_sequences: Option<Vec<String>>,
    #[serde(alias = "candidate_count")]
    candidate_count: Option<u64>,
    seed: Option<i64>,
    #[serde(alias = "presence_penalty")]
    presence_penalty: Option<f64>,
    #[serde(alias = "frequency_penalty")]
    frequency_penalty: Option<f64>,
    #[serde(alias = "response_mime_type")]
    response_mime_type: Option<String>,
    #[serde(alias = "response_schema")]
    response_schema: Option<Value>,
    #[serde(alias = "response_json_schema")]
    response_json_schema: Option<Value>,
    #[serde(alias = "thinking_config")]
    thinking_config: Option<WireThinking>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct WireThinking {
    #[serde(alias = "thinking_budget")]
    thinking_budget: Option<i64>,
    #[serde(alias = "thinking_level")]
    thinking_level: Option<String>,
    #[serde(alias = "include_thoughts")]
    include_thoughts: Option<bool>,
}

/// Decodes a client's `generateContent` body (model and stream unset).
pub fn decode(body: &[u8]) -> Result<Request, ApiError> {
    let w: WireRequest = crate::error::parse_body(body)?;
    let req = decode_wire(w)?;
    if req.messages.is_empty() {
        return Err(
            ApiError::invalid("contents: at least one content is required").with_param("contents"),
        );
    }
    Ok(req)
}

fn decode_wire(w: WireRequest) -> Result<Request, ApiError> {
    let mut req = Request {
        // Gemini streams always carry usage.
        include_usage: true,
        ..Request::default()
    };
    if let Some(s) = &w.system_instruction {
        req.system = decode_system(s)?;
    }
    decode_contents(&w.contents, &mut req.messages)?;
    decode_tools(&w.tools, &mut req)?;
    if let Some(tc) = &w.tool_config {
        req.tool_choice = decode_tool_choice(tc)?;
    }
    if let Some(g) = w.generation_config {
        decode_generation_config(g, &mut req);
    }
    Ok(req)
}

/// `systemInstruction`: a Content (role ignored), or a bare string.
fn decode_system(s: &Value) -> Result<Vec<TextPart>, ApiError> {
    let text_part = |t: &str| TextPart {
        text: t.to_owned(),
        cache: false,
    };
    if let Some(t) = s.as_str() {
        return Ok(vec![text_part(t)]);
    }
    let parts = s.get("parts").and_then(Value::as_array).ok_or_else(|| {
        ApiError::invalid("systemInstruction.parts must be an array")
            .with_param("systemInstruction")
    })?;
    Ok(parts
        .iter()
        .filter_map(|p| p.get("text").and_then(Value::as_str))
        .map(text_part)
        .collect())
}

/// A call seen so far, to match function responses to.
struct SeenCall {
    content: usize,
    id: String,
    name: String,
    /// The client gave the id (so its response will name it too).
    given_id: bool,
    answered: bool,
}

#[derive(Default)]
struct Calls {
    list: Vec<SeenCall>,
}

impl Calls {
    /// The call a response answers: by id if it names a known call, else
    /// the first unanswered call of that name in the latest model turn that
    /// has one (calls whose id the client gave wait for a response naming
    /// it); a stray response keeps (or gets) an id of its own.
    fn answer(&mut self, id: Option<String>, name: &str, fallback: String) -> String {
        if let Some(c) = id
            .as_deref()
            .and_then(|id| self.list.iter_mut().find(|c| c.id == id))
        {
            c.answered = true;
            return c.id.clone();
        }
        let pick = |given: bool, list: &mut Vec<SeenCall>| {
            let open = |c: &&mut SeenCall| !c.answered && c.name == name && c.given_id == given;
            let turn = list.iter_mut().rev().find(open).map(|c| c.content)?;
            let c = list.iter_mut().filter(open).find(|c| c.content == turn)?;
            c.answered = true;
            Some(c.id.clone())
        };
        pick(false, &mut self.list)
            .or_else(|| pick(true, &mut self.list))
            .or(id)
            .unwrap_or(fallback)
    }
}

fn decode_contents(contents: &[WireContent], messages: &mut Vec<Message>) -> Result<(), ApiError> {
    let mut calls = Calls::default();
    for (i, c) in contents.iter().enumerate() {
        let role = match c.role.as_deref() {
            None | Some("" | "user" | "function") => Role::User,
            Some("model") => Role::Assistant,
            Some(other) => {
                return Err(ApiError::invalid(format!(
                    "contents[{i}].role: unsupported role '{other}' (expected user or model)"
                ))
                .with_param(format!("contents[{i}].role")))
            }
        };
        let mut parts = Vec::new();
        let mut results = Vec::new();
        for (j, p) in c.parts.iter().enumerate() {
            let at = format!("contents[{i}].parts[{j}]");
            let sig = parts::signature(p).map(parts::signature_from_gemini_client);
            let wire = read_part(p, &at)?;
            decode_part(wire, sig, (i, j), &mut calls, &mut parts, &mut results);
        }
        let had_results = !results.is_empty();
        if had_results {
            messages.push(Message {
                role: Role::Tool,
                parts: results,
            });
        }
        if !parts.is_empty() || !had_results {
            messages.push(Message { role, parts });
        }
    }
    Ok(())
}

/// Files one read part (with its signature) into the turn's parts, or into
/// `results` for a function response.
fn decode_part(
    wire: WirePart,
    sig: Option<String>,
    (i, j): (usize, usize),
    calls: &mut Calls,
    parts: &mut Vec<Part>,
    results: &mut Vec<Part>,
) {
    if let WirePart::Thought(t) = wire {
        match sig {
            Some(s) => push_signature(parts, s, Some(t)),
            None => parts.push(Part::Reasoning(Reasoning {
                text: t,
                signature: None,
                redacted: None,
            })),
        }
        return;
    }
    if let Some(s) = sig {
        push_signature(parts, s, None);
    }
    match wire {
        WirePart::Text(t) if !t.is_empty() => parts.push(Part::Text(TextPart {
            text: t,
            cache: false,
        })),
        WirePart::Media(m) => parts.push(m),
        WirePart::Call {
            id,
            name,
            arguments,
        } => {
            let given_id = id.is_some();
            let id = id.unwrap_or_else(|| format!("call_{i}_{j}"));
            calls.list.push(SeenCall {
                content: i,
                id: id.clone(),
                name: name.clone(),
                given_id,
                answered: false,
            });
            parts.push(Part::ToolCall(ToolCall {
                id,
                name,
                arguments,
            }));
        }
        WirePart::Response {
            id,
            name,
            content,
            is_error,
        } => results.push(Part::ToolResult(ToolResult {
            call_id: calls.answer(id, &name, format!("call_{i}_{j}")),
            content,
            is_error,
        })),
        WirePart::Text(_) | WirePart::Thought(_) | WirePart::Skip => {}
    }
}

/// `tools[]`: function declarations become tools; anything else in a tool
/// entry (googleSearch, codeExecution, urlContext, ...) is a Gemini-hosted tool.
fn decode_tools(tools: &[Value], req: &mut Request) -> Result<(), ApiError> {
    for (i, t) in tools.iter().enumerate() {
        let obj = t.as_object().ok_or_else(|| {
            ApiError::invalid(format!("tools[{i}]: expected an object"))
                .with_param(format!("tools[{i}]"))
        })?;
        for (k, v) in obj {
            if k != "functionDeclarations" && k != "function_declarations" {
                req.hosted_tools.push(HostedTool {
                    issuer: Issuer::Gemini,
                    spec: json!({ k.as_str(): v }),
                });
                continue;
            }
            let decls = v.as_array().ok_or_else(|| {
                ApiError::invalid(format!("tools[{i}].functionDeclarations must be an array"))
                    .with_param(format!("tools[{i}]"))
            })?;
            for (j, d) in decls.iter().enumerate() {
                req.tools.push(decode_declaration(
                    d,
                    &format!("tools[{i}].functionDeclarations[{j}]"),
                )?);
            }
        }
    }
    Ok(())
}

fn decode_declaration(d: &Value, at: &str) -> Result<Tool, ApiError> {
    let name = d
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::invalid(format!("{at}.name is required")).with_param(at))?;
    let schema = if let Some(s) = get(d, "parametersJsonSchema", "parameters_json_schema") {
        s.clone()
    } else if let Some(p) = d.get("parameters") {
        schema::to_json_schema(p)
    } else {
        json!({"type": "object", "properties": {}})
    };
    Ok(Tool {
        name: name.to_owned(),
        description: opt_str(d, "description"),
        schema,
        strict: None,
    })
}

/// `toolConfig.functionCallingConfig`: AUTO / ANY (one allowed name:
/// that tool) / NONE; VALIDATED has no equivalent elsewhere and reads as AUTO.
fn decode_tool_choice(tc: &Value) -> Result<Option<ToolChoice>, ApiError> {
    let Some(fcc) = get(tc, "functionCallingConfig", "function_calling_config") else {
        return Ok(None);
    };
    let allowed: Vec<&str> = get(fcc, "allowedFunctionNames", "allowed_function_names")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let mode = fcc
        .get("mode")
        .and_then(Value::as_str)
        .map(str::to_ascii_uppercase);
    Ok(match mode.as_deref() {
        None | Some("MODE_UNSPECIFIED") => None,
        Some("AUTO" | "VALIDATED") => Some(ToolChoice::Auto),
        Some("NONE") => Some(ToolChoice::None),
        Some("ANY") => Some(match allowed.as_slice() {
            [one] => ToolChoice::Named((*one).to_owned()),
            _ => ToolChoice::Required,
        }),
        Some(other) => {
            return Err(ApiError::invalid(format!(
                "toolConfig.functionCallingConfig.mode: unknown value '{other}'"
            ))
            .with_param("toolConfig"))
        }
    })
}

fn decode_generation_config(g: WireGenerationConfig, req: &mut Request) {
    req.sampling = Sampling {
        max_output_tokens: g.max_output_tokens,
        temperature: g.temperature,
        top_p: g.top_p,
        top_k: g
            .top_k
            .filter(|k| k.is_finite() && *k >= 0.0)
            .map(|k| k.round() as u64),
        stop: g.stop_sequences.unwrap_or_default(),
        n: g.candidate_count,
        seed: g.seed,
        presence_penalty: g.presence_penalty,
        frequency_penalty: g.frequency_penalty,
    };
    req.reasoning = g.thinking_config.as_ref().and_then(decode_thinking);
    req.output_format = match g.response_mime_type.as_deref() {
        Some("application/json") => Some(
            match (g.response_json_schema, g.response_schema) {
                (Some(s), _) => Some(s),
                (None, Some(s)) => Some(schema::to_json_schema(&s)),
                (None, None) => None,
            }
            .map_or(OutputFormat::JsonObject, |schema| {
                OutputFormat::JsonSchema {
                    name: "response".into(),
                    schema,
                    strict: None,
                }
            }),
        ),
        Some("text/plain") => Some(OutputFormat::Text),
        _ => None,
    };
}

/// `thinkingConfig`: budget 0 turns thinking off, -1 is dynamic (medium),
/// a level names the effort; `includeThoughts` alone asks for dynamic thinking.
fn decode_thinking(t: &WireThinking) -> Option<ReasoningConfig> {
    if let Some(b) = t.thinking_budget {
        return Some(match u64::try_from(b) {
            Ok(0) => ReasoningConfig {
                effort: Some(Effort::None),
                budget_tokens: Some(0),
            },
            Ok(b) => ReasoningConfig {
                effort: Some(Effort::from_budget(b)),
                budget_tokens: Some(b),
            },
            Err(_) => ReasoningConfig {
                effort: Some(Effort::Medium),
                budget_tokens: None,
            },
        });
    }
    if let Some(level) = &t.thinking_level {
        let effort = match level.to_ascii_lowercase().as_str() {
            "minimal" => Effort::Minimal,
            "low" => Effort::Low,
            "high" => Effort::High,
            _ => Effort::Medium,
        };
        return Some(ReasoningConfig {
            effort: Some(effort),
            budget_tokens: None,
        });
    }
    (t.include_thoughts == Some(true)).then_some(ReasoningConfig {
        effort: Some(Effort::Medium),
        budget_tokens: None,
    })
}

// ------------------------------------------------------------------ encode

/// What differs between Gemini upstreams.
#[derive(Debug, Clone, Default)]
pub struct EncodeOptions {
    /// Do not put Google's documented placeholder signature on the first
    /// `functionCall` of a model turn that has no real one. Gemini 3 answers
    /// 400 "Function call is missing a thought_signature" for history from
    /// another vendor without it; set this only for a Gemini-compatible
    /// server that rejects the field.
    pub omit_placeholder_signature: bool,
}

/// Google's documented value for a function call whose real signature is
/// unknown (history from another model); it turns validation off for it.
const PLACEHOLDER_SIGNATURE: &str = "skip_thought_signature_validator";

/// Largest `thinkingBudget` every thinking model accepts (2.5 Flash's
/// ceiling; Pro goes to 32768), and the smallest (Flash-Lite's floor).
const MAX_THINKING_BUDGET: u64 = 24_576;
const MIN_THINKING_BUDGET: u64 = 512;

/// Encodes the canonical request as the body for
/// `POST /v1beta/models/{model}:generateContent` (the model is in the path).
pub fn encode(
    req: &Request,
    _model: &str,
    opts: &EncodeOptions,
    max_output_cap: Option<u64>,
) -> Result<Value, ApiError> {
    let mut out = Map::new();
    encode_tools(req, &mut out)?;
    out.insert("contents".into(), Value::Array(encode_contents(req, opts)));
    if let Some(s) = system_instruction(req) {
        out.insert("systemInstruction".into(), s);
    }
    let g = generation_config(req, max_output_cap);
    if !g.is_empty() {
        out.insert("generationConfig".into(), Value::Object(g));
    }
    Ok(Value::Object(out))
}

/// Claude Code's per-request billing line: it would defeat Gemini's
/// implicit prefix caching.
fn strip_billing_header(text: &str) -> String {
    if !text.contains("x-anthropic-billing-header:") {
        return text.to_owned();
    }
    text.lines()
        .filter(|l| !l.trim_start().starts_with("x-anthropic-billing-header:"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn system_instruction(req: &Request) -> Option<Value> {
    let parts: Vec<Value> = req
        .system
        .iter()
        .map(|t| strip_billing_header(&t.text))
        .filter(|t| !t.trim().is_empty())
        .map(|t| json!({ "text": t }))
        .collect();
    (!parts.is_empty()).then(|| json!({ "parts": parts }))
}

/// The conversation as `contents`: user/model turns, consecutive turns of
/// one role merged (tool results first in their user turn), mid-conversation
/// system text as user text.
fn encode_contents(req: &Request, opts: &EncodeOptions) -> Vec<Value> {
    let names: HashMap<&str, &str> = req
        .messages
        .iter()
        .flat_map(|m| &m.parts)
        .filter_map(|p| match p {
            Part::ToolCall(c) => Some((c.id.as_str(), c.name.as_str())),
            _ => None,
        })
        .collect();
    let mut turns: Vec<(&'static str, Vec<Value>)> = Vec::new();
    for m in &req.messages {
        let role = if m.role == Role::Assistant {
            "model"
        } else {
            "user"
        };
        let mut parts = Vec::with_capacity(m.parts.len());
        if m.role == Role::Tool {
            tool_result_parts(m, &names, &mut parts);
        } else {
            parts::encode_parts(&m.parts, Audience::Upstream, &mut parts);
        }
        if parts.is_empty() {
            continue;
        }
        match turns.last_mut() {
            Some((r, prev)) if *r == role => {
                let at = if m.role == Role::Tool {
                    prev.iter()
                        .take_while(|p| p.get("functionResponse").is_some())
                        .count()
                } else {
                    prev.len()
                };
                prev.splice(at..at, parts);
            }
            _ => turns.push((role, parts)),
        }
    }
    if !opts.omit_placeholder_signature {
        for (_, parts) in turns.iter_mut().filter(|(r, _)| *r == "model") {
            placeholder_signature(parts);
        }
    }
    turns
        .into_iter()
        .map(|(role, parts)| json!({"role": role, "parts": parts}))
        .collect()
}

fn placeholder_signature(parts: &mut [Value]) {
    if let Some(first) = parts.iter_mut().find(|p| p.get("functionCall").is_some()) {
        if first.get("thoughtSignature").is_none() {
            first["thoughtSignature"] = json!(PLACEHOLDER_SIGNATURE);
        }
    }
}

/// Tool results as `functionResponse` parts named after their calls, media
/// they carried after them. A result whose call is not in the history is
/// left out: Gemini needs the name and would refuse an unmatched response.
fn tool_result_parts(m: &Message, names: &HashMap<&str, &str>, out: &mut Vec<Value>) {
    let mut media = Vec::new();
    for p in &m.parts {
        let Part::ToolResult(r) = p else { continue };
        let Some(name) = names.get(r.call_id.as_str()) else {
            continue;
        };
        let mut text = String::new();
        for c in &r.content {
            match c {
                Part::Text(TextPart { text: t, .. }) | Part::Document(Media::Text(t)) => {
                    if !text.is_empty() {
                        text.push('\n');
                    }
                    text.push_str(t);
                }
                Part::Image(mm) => media.push(parts::media_value(mm, true)),
                Part::Document(mm) => media.push(parts::media_value(mm, false)),
                _ => {}
            }
        }
        out.push(json!({"functionResponse": {"name": name, "response": result_object(&text, r.is_error)}}));
    }
    out.extend(media);
}

/// `response` must be an object: a JSON object result as itself, anything
/// else as `{"result": text}`; failures as `{"error": ...}`.
fn result_object(text: &str, is_error: bool) -> Value {
    let v = match serde_json::from_str::<Value>(text) {
        Ok(o @ Value::Object(_)) => o,
        _ => Value::String(text.to_owned()),
    };
    if is_error {
        json!({ "error": v })
    } else if v.is_object() {
        v
    } else {
        json!({ "result": v })
    }
}

/// `tools` (function declarations, then Gemini-hosted tools) and
/// `toolConfig`; another vendor's hosted tool is a 400.
fn encode_tools(req: &Request, out: &mut Map<String, Value>) -> Result<(), ApiError> {
    let mut tools = Vec::new();
    if !req.tools.is_empty() {
        let decls: Vec<Value> = req
            .tools
            .iter()
            .map(|t| {
                let mut d = json!({"name": t.name, "parameters": schema::parameters(&t.schema)});
                if let Some(desc) = &t.description {
                    d["description"] = json!(desc);
                }
                d
            })
            .collect();
        tools.push(json!({ "functionDeclarations": decls }));
        if let Some(tc) = &req.tool_choice {
            let fcc = match tc {
                ToolChoice::Auto => json!({"mode": "AUTO"}),
                ToolChoice::None => json!({"mode": "NONE"}),
                ToolChoice::Required => json!({"mode": "ANY"}),
                ToolChoice::Named(n) => json!({"mode": "ANY", "allowedFunctionNames": [n]}),
            };
            out.insert("toolConfig".into(), json!({ "functionCallingConfig": fcc }));
        }
    }
    HostedTool::check_all(&req.hosted_tools, Some(Issuer::Gemini), "Gemini")?;
    for h in req
        .hosted_tools
        .iter()
        .filter(|h| h.issuer == Issuer::Gemini)
    {
        tools.push(h.spec.clone());
    }
    if !tools.is_empty() {
        out.insert("tools".into(), Value::Array(tools));
    }
    Ok(())
}

fn generation_config(req: &Request, max_output_cap: Option<u64>) -> Map<String, Value> {
    let s = &req.sampling;
    let mut g = Map::new();
    let mut put = |k: &str, v: Option<Value>| {
        if let Some(v) = v {
            g.insert(k.into(), v);
        }
    };
    let max = match (s.max_output_tokens, max_output_cap) {
        (Some(m), Some(cap)) => Some(m.min(cap)),
        (m, cap) => m.or(cap),
    };
    put("maxOutputTokens", max.map(|m| json!(m)));
    put(
        "temperature",
        s.temperature.map(|t| json!(t.clamp(0.0, 2.0))),
    );
    put("topP", s.top_p.map(|p| json!(p)));
    put("topK", s.top_k.map(|k| json!(k)));
    // Gemini takes at most five stop sequences.
    put(
        "stopSequences",
        (!s.stop.is_empty()).then(|| json!(s.stop.iter().take(5).collect::<Vec<_>>())),
    );
    put("candidateCount", s.n.map(|n| json!(n)));
    put("seed", s.seed.map(|x| json!(x)));
    put("presencePenalty", s.presence_penalty.map(|x| json!(x)));
    put("frequencyPenalty", s.frequency_penalty.map(|x| json!(x)));
    match &req.output_format {
        Some(OutputFormat::JsonObject) => put("responseMimeType", Some(json!("application/json"))),
        Some(OutputFormat::JsonSchema { schema: js, .. }) => {
            put("responseMimeType", Some(json!("application/json")));
            put("responseSchema", Some(schema::response_schema(js)));
        }
        Some(OutputFormat::Text) | None => {}
    }
    put(
        "thinkingConfig",
        req.reasoning.as_ref().and_then(thinking_config),
    );
    g
}

/// Reasoning → `thinkingConfig`. An explicit budget of 0 turns thinking
/// off; effort `none` without one leaves the model's default (Gemini 2.5
/// Pro and 3 refuse a 0 budget); otherwise thoughts are asked for, with the
/// budget clamped to what every thinking model accepts.
fn thinking_config(r: &ReasoningConfig) -> Option<Value> {
    if r.budget_tokens == Some(0) {
        return Some(json!({"thinkingBudget": 0}));
    }
    if r.effort == Some(Effort::None) {
        return None;
    }
    let mut t = json!({"includeThoughts": true});
    if let Some(b) = r
        .budget_tokens
        .or_else(|| r.effort.and_then(Effort::budget_tokens))
    {
        t["thinkingBudget"] = json!(b.clamp(MIN_THINKING_BUDGET, MAX_THINKING_BUDGET));
    }
    Some(t)
}

/// Whether a client's body holds a reasoning token the gateway handed out
/// (another vendor's, tagged, plain or base64-encoded): a Gemini upstream
/// must never see one, so such a body is decoded (which drops it) rather
/// than passed through.
pub fn carries_gateway_signature(body: &[u8]) -> bool {
    memchr::memmem::find(body, b"modelswitch-").is_some()
        || memchr::memmem::find(body, parts::TAGGED_BASE64_PREFIX.as_bytes()).is_some()
}

// ------------------------------------------------------------ count tokens

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireCountTokens {
    #[serde(alias = "generate_content_request")]
    generate_content_request: Option<WireRequest>,
    #[serde(default)]
    contents: Vec<WireContent>,
}

/// Decodes a `countTokens` body: `{"contents":[...]}` or
/// `{"generateContentRequest":{...}}`.
pub fn decode_count_tokens(body: &[u8]) -> Result<Request, ApiError> {
    let w: WireCountTokens = crate::error::parse_body(body)?;
    decode_wire(match w.generate_content_request {
        Some(g) => g,
        None => WireRequest {
            contents: w.contents,
            ..WireRequest::default()
        },
    })
}

/// The body of a `countTokens` call to a Gemini upstream: the full request,
/// which then needs its model inside.
pub fn count_tokens_request(req: &Request, model: &str) -> Result<Value, ApiError> {
    let mut inner = encode(req, model, &EncodeOptions::default(), None)?;
    inner["model"] = json!(format!("models/{model}"));
    Ok(json!({ "generateContentRequest": inner }))
}

pub fn count_tokens_body(total: u64) -> Value {
    json!({ "totalTokens": total })
}

pub fn count_tokens_from_upstream(body: &[u8]) -> Option<u64> {
    serde_json::from_slice::<Value>(body)
        .ok()?
        .get("totalTokens")?
        .as_u64()
}

#[cfg(test)]
#[path = "request_tests.rs"]
mod tests;
