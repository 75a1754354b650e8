//! `text_only=1`: a model without native function calling, for the
//! gateway's tool emulation. It refuses (400) a request that carries
//! native `tools`, never answers with native tool calls, and speaks the
//! Hermes / Qwen convention in text: when its system prompt lists tools
//! in a `<tools>` block under the emulation instruction and the last user
//! turn holds no `<tool_response>`, it answers `Let me check that.` and a
//! `<tool_call>` block calling the first tool listed with
//! `{"location": "Paris"}`; when the last user turn holds
//! `<tool_response>` blocks, it answers `Tool results: <each content,
//! joined by " | ">`. `text_only=loose` writes the call the way sloppy
//! models do: inside a code fence, arguments as a JSON string, and no
//! closing tag.
//!
//! Deliberately independent of the gateway's code: it reads the prompt
//! as a model would.

use crate::Dialect;
use serde_json::{json, Value};

/// What the gateway's instruction says before its tool list.
const MARKER: &str = "You are provided with function signatures within <tools></tools> XML tags";

/// Whether the request offers native tools (it must not, in this mode).
pub(crate) fn has_native_tools(req: &Value) -> bool {
    let non_empty = |k: &str| req.get(k).is_some_and(|v| !v.is_null() && v != &json!([]));
    non_empty("tools") || non_empty("functions") || non_empty("tool_choice")
}

/// The 400 for native tools, in the dialect's error shape.
pub(crate) fn refusal(dialect: Dialect) -> Value {
    let msg = "mock: text_only model got native tools";
    match dialect {
        Dialect::Anthropic => {
            json!({"type": "error", "error": {"type": "invalid_request_error", "message": msg}})
        }
        Dialect::Gemini => crate::gemini::error_body(400, msg, None),
        Dialect::OpenAi | Dialect::Responses => {
            json!({"error": {"message": msg, "type": "invalid_request_error", "param": "tools", "code": null}})
        }
    }
}

fn texts(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

/// The system prompt, wherever the dialect puts it.
pub(crate) fn system_text(req: &Value, dialect: Dialect) -> String {
    match dialect {
        Dialect::Anthropic => texts(req.get("system").unwrap_or(&Value::Null)),
        Dialect::Gemini => req
            .pointer("/systemInstruction/parts")
            .or_else(|| req.pointer("/system_instruction/parts"))
            .map(texts)
            .unwrap_or_default(),
        Dialect::OpenAi | Dialect::Responses => {
            let mut s = req
                .get("instructions")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            let list = req
                .get("messages")
                .or_else(|| req.get("input"))
                .and_then(Value::as_array);
            for m in list.into_iter().flatten() {
                if matches!(
                    m.get("role").and_then(Value::as_str),
                    Some("system" | "developer")
                ) {
                    s.push('\n');
                    s.push_str(&texts(m.get("content").unwrap_or(&Value::Null)));
                }
            }
            s
        }
    }
}

/// The first tool the instruction lists.
fn first_tool(system: &str) -> Option<String> {
    let (_, list) = system.split_once(MARKER)?;
    let (_, list) = list.split_once("<tools>")?;
    let line = list.lines().map(str::trim).find(|l| l.starts_with('{'))?;
    let v: Value = serde_json::from_str(line).ok()?;
    v.pointer("/function/name")
        .or_else(|| v.get("name"))
        .and_then(Value::as_str)
        .map(str::to_owned)
}

/// What the contents of the `<tool_response>` blocks in `text` say.
fn tool_responses(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("<tool_response>") {
        rest = &rest[at + "<tool_response>".len()..];
        let end = rest.find("</tool_response>").unwrap_or(rest.len());
        let inner = rest[..end].trim();
        let content = match serde_json::from_str::<Value>(inner) {
            Ok(v) => match v.get("content") {
                Some(Value::String(s)) => s.clone(),
                Some(other) => other.to_string(),
                None => inner.to_owned(),
            },
            Err(_) => inner.to_owned(),
        };
        out.push(content);
        rest = &rest[end..];
    }
    out
}

/// The answer's text, when the conversation is about tools; `None`: the
/// ordinary answer.
pub(crate) fn answer(system: &str, last_user: &str, loose: bool) -> Option<String> {
    let results = tool_responses(last_user);
    if !results.is_empty() {
        return Some(format!("Tool results: {}", results.join(" | ")));
    }
    let name = first_tool(system)?;
    let name = Value::String(name).to_string();
    Some(if loose {
        format!("Let me check that.\n<tool_call>\n```json\n{{\"name\": {name}, \"arguments\": \"{{\\\"location\\\": \\\"Paris\\\"}}\"}}\n```\n")
    } else {
        format!("Let me check that.\n<tool_call>\n{{\"name\": {name}, \"arguments\": {{\"location\": \"Paris\"}}}}\n</tool_call>")
    })
}

/// `text` in pieces of about 7 bytes (cut at characters), so tags arrive
/// split across stream events.
pub(crate) fn pieces(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for c in text.chars() {
        cur.push(c);
        if cur.len() >= 7 {
            out.push(std::mem::take(&mut cur));
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}
