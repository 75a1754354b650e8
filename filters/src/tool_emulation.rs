//! Prompt-based tool calling for targets without native function calling
//! (`capabilities = { tools = false }`, `tool_emulation = true`): the
//! request's tool definitions are written into the system prompt and its
//! tool history into plain text, and the model's text answer is read back
//! into tool calls, so agents work against text-only models.
//!
//! The convention is Hermes / Qwen 2.5's, which many open models were
//! trained on: definitions inside `<tools></tools>`, one call per
//! `<tool_call>{"name": …, "arguments": {…}}</tool_call>` block, results
//! back in the user turn inside `<tool_response></tool_response>`.
//!
//! Pure: the request side rewrites a canonical [`Request`], the response
//! side a canonical [`Response`] or a run of [`StreamEvent`]s.

use crate::canonical::{
    new_id, FinishReason, Message, Part, Request, Response, Role, StreamEvent, TextPart, Tool,
    ToolCall, ToolChoice, ToolResult,
};
use serde_json::Value;
use std::collections::HashMap;

/// Opens a call in the model's text.
pub const CALL_OPEN: &str = "<tool_call>";
/// Closes a call.
pub const CALL_CLOSE: &str = "</tool_call>";
/// Opens a tool result in a user turn.
pub const RESPONSE_OPEN: &str = "<tool_response>";
/// Closes a tool result.
pub const RESPONSE_CLOSE: &str = "</tool_response>";

/// How much of one call a stream holds back while waiting for its
/// closing tag; past it, the block is given up on and relayed as text.
pub const MAX_CALL_BYTES: usize = 1024 * 1024;

/// The fixed instruction's head (Qwen 2.5's wording, which models of
/// that family recognise); the tool list follows it.
const INSTRUCTION_HEAD: &str = "# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>\n";

/// How a call is written, after the tool list.
const INSTRUCTION_FORMAT: &str = "</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call>\n\nYou may call several functions in one answer, each in its own <tool_call></tool_call> block. After your last call, stop: the results come back in the next user turn, each inside <tool_response></tool_response> tags. Never write a <tool_response> yourself.";

/// When the request has tool history but offers no tools now (or forbids
/// calling them): the tags in the history still need explaining.
const HISTORY_ONLY: &str = "# Tools\n\nEarlier turns show function calls inside <tool_call></tool_call> tags and their results inside <tool_response></tool_response> tags. Do not call any function now: answer in plain text.";

/// Whether emulation has anything to do for `req`: it offers tools or
/// carries tool calls or results in its history.
pub fn applies(req: &Request) -> bool {
    !req.tools.is_empty()
        || req
            .messages
            .iter()
            .flat_map(|m| &m.parts)
            .any(|p| matches!(p, Part::ToolCall(_) | Part::ToolResult(_)))
}

/// The system prompt text that explains tools to a text-only model:
/// the definitions and the call format, with `tool_choice` (and
/// `parallel_tool_calls = false`) as sentences. `tools` empty or the
/// choice `none`: only how to read the history.
pub fn instruction(tools: &[Tool], choice: Option<&ToolChoice>, parallel: Option<bool>) -> String {
    if tools.is_empty() || choice == Some(&ToolChoice::None) {
        return HISTORY_ONLY.to_owned();
    }
    let mut s = String::with_capacity(1024 + tools.len() * 256);
    s.push_str(INSTRUCTION_HEAD);
    for t in tools {
        s.push_str(&tool_line(t));
        s.push('\n');
    }
    s.push_str(INSTRUCTION_FORMAT);
    match choice {
        Some(ToolChoice::Required) => {
            s.push_str("\n\nYou must call at least one function in this answer.");
        }
        Some(ToolChoice::Named(name)) => {
            s.push_str("\n\nYou must call the function ");
            s.push_str(&json_string(name));
            s.push_str(" in this answer.");
        }
        Some(ToolChoice::Auto | ToolChoice::None) | None => {}
    }
    if parallel == Some(false) {
        s.push_str("\n\nCall at most one function per answer.");
    }
    s
}

/// One definition, as Qwen's template writes it: OpenAI's function shape.
fn tool_line(t: &Tool) -> String {
    // Written by hand so the keys keep this order whatever serde_json's
    // map does (the model reads it; a stable text also caches better).
    let mut s = String::from("{\"type\": \"function\", \"function\": {\"name\": ");
    s.push_str(&json_string(&t.name));
    if let Some(d) = t.description.as_deref().filter(|d| !d.is_empty()) {
        s.push_str(", \"description\": ");
        s.push_str(&json_string(d));
    }
    s.push_str(", \"parameters\": ");
    let schema = if t.schema.is_null() {
        "{\"type\": \"object\", \"properties\": {}}".to_owned()
    } else {
        t.schema.to_string()
    };
    s.push_str(&schema);
    s.push_str("}}");
    s
}

fn json_string(s: &str) -> String {
    Value::String(s.to_owned()).to_string()
}

/// A call as the model is told to write it.
pub fn render_call(name: &str, arguments: &str) -> String {
    // Arguments are a JSON object text; anything else is quoted so the
    // rendered block stays valid JSON.
    let args = match serde_json::from_str::<Value>(arguments) {
        Ok(v @ Value::Object(_)) => v.to_string(),
        _ if arguments.trim().is_empty() => "{}".to_owned(),
        _ => json_string(arguments),
    };
    format!(
        "{CALL_OPEN}\n{{\"name\": {}, \"arguments\": {args}}}\n{CALL_CLOSE}",
        json_string(name)
    )
}

/// A result as the model reads it; its images and documents are returned
/// apart, to follow the text.
fn render_result(r: &ToolResult, name: Option<&str>) -> (String, Vec<Part>) {
    let mut text = String::new();
    let mut media = Vec::new();
    for p in &r.content {
        match p {
            Part::Text(t) => {
                if !text.is_empty() {
                    text.push('\n');
                }
                text.push_str(&t.text);
            }
            other => media.push(other.clone()),
        }
    }
    let head = match name {
        Some(n) => format!("\"name\": {}", json_string(n)),
        None => format!("\"call_id\": {}", json_string(&r.call_id)),
    };
    let error = if r.is_error {
        ", \"is_error\": true"
    } else {
        ""
    };
    let rendered = format!(
        "{RESPONSE_OPEN}\n{{{head}, \"content\": {}{error}}}\n{RESPONSE_CLOSE}",
        json_string(&text)
    );
    (rendered, media)
}

/// Appends `text` to the last part when it is plain, uncached text, else
/// as a part of its own.
fn push_text(parts: &mut Vec<Part>, text: String) {
    if let Some(Part::Text(last)) = parts.last_mut() {
        if !last.cache {
            if !last.text.is_empty() {
                last.text.push('\n');
            }
            last.text.push_str(&text);
            return;
        }
    }
    parts.push(Part::Text(TextPart { text, cache: false }));
}

/// Rewrites `req` for a model that only reads and writes text: the
/// instruction is appended to the system prompt (after the client's, so
/// its cached prefix stays a prefix), assistant tool calls become
/// `<tool_call>` text, tool results become user text in
/// `<tool_response>` blocks (in the order given, merged into one user
/// turn with the user's words that follow), and `tools`, `tool_choice`
/// and `parallel_tool_calls` are removed.
pub fn rewrite_request(req: &mut Request) {
    let text = instruction(
        &req.tools,
        req.tool_choice.as_ref(),
        req.parallel_tool_calls,
    );
    req.system.push(TextPart { text, cache: false });
    let mut names: HashMap<String, String> = HashMap::new();
    let mut messages: Vec<Message> = Vec::with_capacity(req.messages.len());
    // The previous message came from tool results: the next user turn
    // joins it (strict alternation for upstreams that want it).
    let mut previous_from_tools = false;
    for m in std::mem::take(&mut req.messages) {
        let mut from_tools = m.role == Role::Tool;
        let mut parts = Vec::with_capacity(m.parts.len());
        for p in m.parts {
            match p {
                Part::ToolCall(c) => {
                    push_text(&mut parts, render_call(&c.name, &c.arguments));
                    names.insert(c.id, c.name);
                }
                Part::ToolResult(r) => {
                    from_tools = true;
                    let (text, media) =
                        render_result(&r, names.get(&r.call_id).map(String::as_str));
                    push_text(&mut parts, text);
                    parts.extend(media);
                }
                other => parts.push(other),
            }
        }
        let role = if m.role == Role::Tool {
            Role::User
        } else {
            m.role
        };
        match messages.last_mut() {
            Some(prev)
                if prev.role == Role::User
                    && role == Role::User
                    && (previous_from_tools || from_tools) =>
            {
                prev.parts.extend(parts);
            }
            _ => messages.push(Message { role, parts }),
        }
        previous_from_tools = from_tools;
    }
    req.messages = messages;
    req.tools.clear();
    req.tool_choice = None;
    req.parallel_tool_calls = None;
}

/// A call's inner text (between the tags) as `(name, arguments)`: JSON,
/// maybe inside a code fence, with `arguments` an object, a JSON string
/// holding one, or absent (`{}`). `None`: not a call, left as text.
pub fn parse_call(inner: &str) -> Option<(String, String)> {
    let body = strip_fence(inner.trim());
    let v: Value = serde_json::from_str(body).ok()?;
    let mut obj = v.as_object()?;
    // `{"function": {"name": …, "arguments": …}}`, as some models echo
    // OpenAI's wire shape.
    if let Some(f) = obj.get("function").and_then(Value::as_object) {
        if !obj.contains_key("name") {
            obj = f;
        }
    }
    let name = obj.get("name")?.as_str()?.trim();
    if name.is_empty() {
        return None;
    }
    let args = obj
        .get("arguments")
        .or_else(|| obj.get("parameters"))
        .or_else(|| obj.get("input"));
    let arguments = match args {
        None | Some(Value::Null) => "{}".to_owned(),
        Some(v @ Value::Object(_)) => v.to_string(),
        Some(Value::String(s)) if s.trim().is_empty() => "{}".to_owned(),
        Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
            Ok(v @ Value::Object(_)) => v.to_string(),
            _ => return None,
        },
        Some(_) => return None,
    };
    Some((name.to_owned(), arguments))
}

/// The text inside a Markdown code fence (```` ```json … ``` ````), or
/// the text itself.
fn strip_fence(s: &str) -> &str {
    let Some(rest) = s.strip_prefix("```") else {
        return s;
    };
    // The info string (`json`) runs to the end of the first line.
    let rest = match rest.find('\n') {
        Some(i) => &rest[i + 1..],
        None => rest,
    };
    rest.trim_end().strip_suffix("```").unwrap_or(rest).trim()
}

/// The length of the longest end of `s` that could begin `tag` (a tag
/// split across deltas), never `tag` whole.
fn partial_tag_len(s: &str, tag: &str) -> usize {
    let max = (tag.len() - 1).min(s.len());
    (1..=max)
        .rev()
        .find(|&n| s.is_char_boundary(s.len() - n) && tag.starts_with(&s[s.len() - n..]))
        .unwrap_or(0)
}

/// Reads a model's text, delta by delta, into text and tool-call events.
/// Text goes out at once, except an end that may begin `<tool_call>`
/// (held until the next delta says whether it is the tag); a call is held
/// until its closing tag, at most [`MAX_CALL_BYTES`], then goes out whole
/// as a tool call, or as the text it was when it does not parse.
#[derive(Debug)]
pub struct StreamParser {
    buf: String,
    in_call: bool,
    calls: usize,
    /// A call went out and no text since: whitespace between calls (and
    /// after the last) is formatting, dropped.
    after_call: bool,
    limit: usize,
    /// Native calls the upstream sent anyway, by their index: renumbered
    /// after the parsed ones so indexes stay distinct.
    native: Vec<(usize, usize)>,
}

impl Default for StreamParser {
    fn default() -> Self {
        Self::new()
    }
}

impl StreamParser {
    pub fn new() -> Self {
        Self::with_limit(MAX_CALL_BYTES)
    }

    /// A parser that holds at most `limit` bytes of one call.
    pub fn with_limit(limit: usize) -> Self {
        Self {
            buf: String::new(),
            in_call: false,
            calls: 0,
            after_call: false,
            limit,
            native: Vec::new(),
        }
    }

    /// How many calls went out so far.
    pub fn calls(&self) -> usize {
        self.calls
    }

    /// How much text is held back.
    pub fn held(&self) -> usize {
        self.buf.len()
    }

    /// Feeds a text delta; appends what can go out now.
    pub fn push_text(&mut self, text: &str, out: &mut Vec<StreamEvent>) {
        self.buf.push_str(text);
        loop {
            if self.in_call {
                if let Some(end) = self.buf.find(CALL_CLOSE) {
                    let rest = self.buf.split_off(end + CALL_CLOSE.len());
                    let mut inner = std::mem::replace(&mut self.buf, rest);
                    inner.truncate(end);
                    self.in_call = false;
                    self.block(&inner, true, out);
                    continue;
                }
                if self.buf.len() > self.limit {
                    // Too long to be a call worth holding: what it was.
                    let held = std::mem::take(&mut self.buf);
                    self.in_call = false;
                    self.text(format!("{CALL_OPEN}{held}"), out);
                }
                return;
            }
            if let Some(at) = self.buf.find(CALL_OPEN) {
                let rest = self.buf.split_off(at + CALL_OPEN.len());
                let mut before = std::mem::replace(&mut self.buf, rest);
                before.truncate(at);
                self.text(before, out);
                self.in_call = true;
                continue;
            }
            let keep = partial_tag_len(&self.buf, CALL_OPEN);
            let rest = self.buf.split_off(self.buf.len() - keep);
            let ready = std::mem::replace(&mut self.buf, rest);
            self.text(ready, out);
            return;
        }
    }

    /// The text ended: what was held goes out (a call missing only its
    /// closing tag is still a call).
    pub fn flush(&mut self, out: &mut Vec<StreamEvent>) {
        let held = std::mem::take(&mut self.buf);
        if std::mem::take(&mut self.in_call) {
            self.block(&held, false, out);
        } else {
            self.text(held, out);
        }
    }

    /// The stream failed: what was held goes out as the text it was.
    fn flush_raw(&mut self, out: &mut Vec<StreamEvent>) {
        let held = std::mem::take(&mut self.buf);
        if std::mem::take(&mut self.in_call) {
            self.text(format!("{CALL_OPEN}{held}"), out);
        } else {
            self.text(held, out);
        }
    }

    fn block(&mut self, inner: &str, closed: bool, out: &mut Vec<StreamEvent>) {
        match parse_call(inner) {
            Some((name, arguments)) => {
                let index = self.calls;
                self.calls += 1;
                self.after_call = true;
                out.push(StreamEvent::ToolCallStart {
                    index,
                    id: new_id("call_"),
                    name,
                });
                out.push(StreamEvent::ToolCallArgs {
                    index,
                    fragment: arguments,
                });
            }
            None => {
                let close = if closed { CALL_CLOSE } else { "" };
                self.text(format!("{CALL_OPEN}{inner}{close}"), out);
            }
        }
    }

    fn text(&mut self, text: String, out: &mut Vec<StreamEvent>) {
        let text = if self.after_call {
            let trimmed = text.trim_start();
            if trimmed.is_empty() {
                return;
            }
            self.after_call = false;
            trimmed.to_owned()
        } else {
            text
        };
        if text.is_empty() {
            return;
        }
        match out.last_mut() {
            Some(StreamEvent::Text(t)) => t.push_str(&text),
            _ => out.push(StreamEvent::Text(text)),
        }
    }

    /// Rewrites one batch of decoded upstream events: text through the
    /// parser, what is held flushed before the finish (or the end), and
    /// the finish reason made tool use when calls were found.
    pub fn transform(&mut self, events: &mut Vec<StreamEvent>) {
        if events.is_empty() {
            return;
        }
        let mut out = Vec::with_capacity(events.len() + 2);
        for ev in events.drain(..) {
            match ev {
                StreamEvent::Text(t) => self.push_text(&t, &mut out),
                StreamEvent::Finish {
                    reason,
                    stop_sequence,
                } => {
                    self.flush(&mut out);
                    out.push(finish_event(reason, stop_sequence, self.calls));
                }
                StreamEvent::Done => {
                    self.flush(&mut out);
                    out.push(StreamEvent::Done);
                }
                StreamEvent::Error(e) => {
                    self.flush_raw(&mut out);
                    out.push(StreamEvent::Error(e));
                }
                StreamEvent::ToolCallStart { index, id, name } => {
                    let ours = self.calls;
                    self.calls += 1;
                    self.native.push((index, ours));
                    out.push(StreamEvent::ToolCallStart {
                        index: ours,
                        id,
                        name,
                    });
                }
                StreamEvent::ToolCallArgs { index, fragment } => {
                    if let Some(&(_, ours)) = self.native.iter().find(|(n, _)| *n == index) {
                        out.push(StreamEvent::ToolCallArgs {
                            index: ours,
                            fragment,
                        });
                    }
                }
                other => out.push(other),
            }
        }
        *events = out;
    }
}

/// The finish a client sees: tool use once calls were found (a content
/// filter's stop stays what it was).
fn finish_event(reason: FinishReason, stop_sequence: Option<String>, calls: usize) -> StreamEvent {
    if calls > 0 && reason != FinishReason::ContentFilter {
        StreamEvent::Finish {
            reason: FinishReason::ToolCalls,
            stop_sequence: None,
        }
    } else {
        StreamEvent::Finish {
            reason,
            stop_sequence,
        }
    }
}

/// Reads tool calls out of a whole answer's text: text parts become the
/// text around the calls (one part, whitespace at its end trimmed when
/// calls follow), then the calls, with fresh `call_…` ids; the finish
/// reason becomes tool use when any was found.
pub fn parse_response(resp: &mut Response) {
    if !resp.parts.iter().any(|p| matches!(p, Part::Text(_))) {
        return;
    }
    // The body is bounded already: no call is too long to hold.
    let mut parser = StreamParser::with_limit(usize::MAX);
    let mut events = Vec::new();
    let mut others = Vec::with_capacity(resp.parts.len());
    for p in resp.parts.drain(..) {
        match p {
            Part::Text(t) => parser.push_text(&t.text, &mut events),
            other => others.push(other),
        }
    }
    parser.flush(&mut events);
    let mut text = String::new();
    let mut calls: Vec<ToolCall> = Vec::new();
    for ev in events {
        match ev {
            StreamEvent::Text(t) => text.push_str(&t),
            StreamEvent::ToolCallStart { id, name, .. } => calls.push(ToolCall {
                id,
                name,
                arguments: String::new(),
            }),
            StreamEvent::ToolCallArgs { fragment, .. } => {
                if let Some(c) = calls.last_mut() {
                    c.arguments = fragment;
                }
            }
            _ => {}
        }
    }
    if !calls.is_empty() {
        text.truncate(text.trim_end().len());
    }
    // Reasoning first, then text, then calls: the canonical order.
    let (reasoning, rest): (Vec<Part>, Vec<Part>) = others
        .into_iter()
        .partition(|p| matches!(p, Part::Reasoning(_)));
    resp.parts = reasoning;
    if !text.is_empty() {
        resp.parts.push(Part::Text(TextPart { text, cache: false }));
    }
    let found = calls.len();
    resp.parts.extend(rest);
    resp.parts.extend(calls.into_iter().map(Part::ToolCall));
    if let StreamEvent::Finish {
        reason,
        stop_sequence,
    } = finish_event(resp.finish, resp.stop_sequence.take(), found)
    {
        resp.finish = reason;
        resp.stop_sequence = stop_sequence;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canonical::{Reasoning, Usage};
    use proptest::prelude::*;
    use serde_json::json;

    fn text(s: &str) -> Part {
        Part::Text(TextPart {
            text: s.into(),
            cache: false,
        })
    }

    fn weather() -> Tool {
        Tool {
            name: "get_weather".into(),
            description: Some("Weather \"now\" in a city".into()),
            schema: json!({"type": "object", "properties": {"city": {"type": "string"}}}),
            strict: None,
        }
    }

    fn request_with_history() -> Request {
        Request {
            model: "m".into(),
            system: vec![TextPart {
                text: "Be brief.".into(),
                cache: true,
            }],
            messages: vec![
                Message {
                    role: Role::User,
                    parts: vec![text("Weather in Paris and Oslo?")],
                },
                Message {
                    role: Role::Assistant,
                    parts: vec![
                        text("Checking."),
                        Part::ToolCall(ToolCall {
                            id: "c1".into(),
                            name: "get_weather".into(),
                            arguments: r#"{"city":"Paris"}"#.into(),
                        }),
                        Part::ToolCall(ToolCall {
                            id: "c2".into(),
                            name: "get_weather".into(),
                            arguments: r#"{"city":"Oslo"}"#.into(),
                        }),
                    ],
                },
                Message {
                    role: Role::Tool,
                    parts: vec![
                        Part::ToolResult(ToolResult {
                            call_id: "c1".into(),
                            content: vec![text("18C")],
                            is_error: false,
                        }),
                        Part::ToolResult(ToolResult {
                            call_id: "c2".into(),
                            content: vec![text("no data")],
                            is_error: true,
                        }),
                    ],
                },
                Message {
                    role: Role::User,
                    parts: vec![text("Thanks")],
                },
            ],
            tools: vec![weather()],
            tool_choice: Some(ToolChoice::Auto),
            parallel_tool_calls: Some(true),
            ..Request::default()
        }
    }

    fn events(parser: &mut StreamParser, deltas: &[&str]) -> Vec<StreamEvent> {
        let mut out = Vec::new();
        for d in deltas {
            parser.push_text(d, &mut out);
        }
        parser.flush(&mut out);
        out
    }

    /// Text and calls (name, arguments) out of events, texts joined.
    fn summary(evs: &[StreamEvent]) -> (String, Vec<(String, String)>) {
        let mut text = String::new();
        let mut calls = Vec::new();
        for e in evs {
            match e {
                StreamEvent::Text(t) => text.push_str(t),
                StreamEvent::ToolCallStart { index, id, name } => {
                    assert_eq!(*index, calls.len());
                    assert!(id.starts_with("call_") && id.len() > 10, "{id}");
                    calls.push((name.clone(), String::new()));
                }
                StreamEvent::ToolCallArgs { index, fragment } => calls[*index].1 = fragment.clone(),
                _ => {}
            }
        }
        (text, calls)
    }

    #[test]
    fn the_request_is_rewritten_for_a_text_only_model() {
        let mut req = request_with_history();
        assert!(applies(&req));
        rewrite_request(&mut req);
        assert!(req.tools.is_empty() && req.tool_choice.is_none());
        assert!(req.parallel_tool_calls.is_none());
        // The client's system part (and its cache mark) first, unchanged.
        assert_eq!(req.system[0].text, "Be brief.");
        assert!(req.system[0].cache);
        let sys = &req.system[1].text;
        assert!(sys.contains("<tools>\n{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", \"description\": \"Weather \\\"now\\\" in a city\", \"parameters\": {"), "{sys}");
        assert!(sys.contains("<tool_call></tool_call>") && !sys.contains("You must"));
        // Nothing but text is left in the history; roles alternate.
        let roles: Vec<Role> = req.messages.iter().map(|m| m.role).collect();
        assert_eq!(roles, [Role::User, Role::Assistant, Role::User]);
        let Part::Text(a) = &req.messages[1].parts[0] else {
            panic!("{:?}", req.messages[1]);
        };
        assert_eq!(req.messages[1].parts.len(), 1);
        assert_eq!(
            a.text,
            "Checking.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\":\"Paris\"}}\n</tool_call>\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\":\"Oslo\"}}\n</tool_call>"
        );
        let Part::Text(u) = &req.messages[2].parts[0] else {
            panic!("{:?}", req.messages[2]);
        };
        assert_eq!(
            u.text,
            "<tool_response>\n{\"name\": \"get_weather\", \"content\": \"18C\"}\n</tool_response>\n<tool_response>\n{\"name\": \"get_weather\", \"content\": \"no data\", \"is_error\": true}\n</tool_response>"
        );
        assert_eq!(req.messages[2].parts[1], text("Thanks"));
        assert!(!applies(&req));
        // What the assistant said parses back to the same calls.
        let (t, calls) = summary(&events(&mut StreamParser::new(), &[&a.text]));
        assert_eq!(t, "Checking.\n");
        assert_eq!(
            calls,
            [
                ("get_weather".into(), r#"{"city":"Paris"}"#.into()),
                ("get_weather".into(), r#"{"city":"Oslo"}"#.into())
            ]
        );
    }

    #[test]
    fn tool_choice_is_said_in_the_instruction() {
        let tools = [weather()];
        let required = instruction(&tools, Some(&ToolChoice::Required), None);
        assert!(required.ends_with("You must call at least one function in this answer."));
        let named = instruction(
            &tools,
            Some(&ToolChoice::Named("get_weather".into())),
            Some(false),
        );
        assert!(named.contains("You must call the function \"get_weather\" in this answer."));
        assert!(named.ends_with("Call at most one function per answer."));
        let none = instruction(&tools, Some(&ToolChoice::None), None);
        assert!(!none.contains("get_weather") && none.contains("Do not call any function"));
        assert_eq!(instruction(&[], None, None), none);
        // A tool without a schema still shows an object schema.
        let bare = Tool {
            name: "now".into(),
            description: None,
            schema: Value::Null,
            strict: None,
        };
        assert!(instruction(&[bare], None, None).contains(
            "{\"type\": \"function\", \"function\": {\"name\": \"now\", \"parameters\": {\"type\": \"object\", \"properties\": {}}}}"
        ));
    }

    #[test]
    fn results_without_their_call_keep_the_id_and_their_images() {
        let mut req = Request {
            messages: vec![Message {
                role: Role::Tool,
                parts: vec![Part::ToolResult(ToolResult {
                    call_id: "x9".into(),
                    content: vec![
                        text("a"),
                        Part::Image(crate::canonical::Media::Url("http://i".into())),
                    ],
                    is_error: false,
                })],
            }],
            ..Request::default()
        };
        assert!(applies(&req));
        rewrite_request(&mut req);
        assert_eq!(req.messages.len(), 1);
        assert_eq!(req.messages[0].role, Role::User);
        assert_eq!(
            req.messages[0].parts[0],
            text("<tool_response>\n{\"call_id\": \"x9\", \"content\": \"a\"}\n</tool_response>")
        );
        assert!(matches!(req.messages[0].parts[1], Part::Image(_)));
        assert!(req.system[0].text.contains("Do not call any function"));
    }

    #[test]
    fn calls_are_read_leniently() {
        let cases = [
            (
                r#"{"name": "f", "arguments": {"a": 1}}"#,
                Some(("f", r#"{"a":1}"#)),
            ),
            (
                "\n  {\"name\":\"f\",\"arguments\":\"{\\\"a\\\": 1}\"}  \n",
                Some(("f", r#"{"a":1}"#)),
            ),
            (
                "```json\n{\"name\": \"f\", \"arguments\": {}}\n```",
                Some(("f", "{}")),
            ),
            ("```\n{\"name\": \"f\"}```", Some(("f", "{}"))),
            (
                r#"{"name": "f", "parameters": {"b": true}}"#,
                Some(("f", r#"{"b":true}"#)),
            ),
            (
                r#"{"function": {"name": "f", "arguments": ""}}"#,
                Some(("f", "{}")),
            ),
            (r#"{"name": "f", "arguments": [1]}"#, None),
            (r#"{"name": "f", "arguments": "not json"}"#, None),
            (r#"{"name": "", "arguments": {}}"#, None),
            (r#"{"arguments": {}}"#, None),
            ("get_weather(city=Paris)", None),
        ];
        for (inner, want) in cases {
            let got = parse_call(inner);
            assert_eq!(
                got.as_ref().map(|(n, a)| (n.as_str(), a.as_str())),
                want,
                "{inner}"
            );
        }
    }

    #[test]
    fn a_stream_holds_back_only_what_may_be_a_tag() {
        let mut p = StreamParser::new();
        let mut out = Vec::new();
        p.push_text("Let me look <", &mut out);
        assert_eq!(out, [StreamEvent::Text("Let me look ".into())]);
        assert_eq!(p.held(), 1);
        out.clear();
        p.push_text("b> and <tool", &mut out);
        assert_eq!(out, [StreamEvent::Text("<b> and ".into())]);
        out.clear();
        p.push_text("_call>{\"name\": \"f\", \"argu", &mut out);
        assert!(out.is_empty());
        p.push_text("ments\": {\"x\": \"</tool\"}}</tool_call>\n\n", &mut out);
        let (text, calls) = summary(&out);
        assert_eq!(text, "");
        assert_eq!(calls, [("f".into(), r#"{"x":"</tool"}"#.into())]);
        out.clear();
        p.push_text("Done.", &mut out);
        p.flush(&mut out);
        assert_eq!(out, [StreamEvent::Text("Done.".into())]);
    }

    #[test]
    fn an_unclosed_call_at_the_end_is_a_call_and_a_broken_one_stays_text() {
        let (t, calls) = summary(&events(
            &mut StreamParser::new(),
            &["<tool_call>\n{\"name\": \"f\", \"arguments\": {}}\n"],
        ));
        assert_eq!((t.as_str(), calls.len()), ("", 1));
        let broken = "Try <tool_call>{\"name\": oops}</tool_call> then <tool_call>{\"na";
        let (t, calls) = summary(&events(&mut StreamParser::new(), &[broken]));
        assert_eq!((t.as_str(), calls.len()), (broken, 0));
        // A text ending in half a tag gets it back.
        let (t, _) = summary(&events(&mut StreamParser::new(), &["a <tool_c"]));
        assert_eq!(t, "a <tool_c");
    }

    #[test]
    fn a_call_over_the_limit_is_relayed_as_text() {
        let mut p = StreamParser::with_limit(16);
        let mut out = Vec::new();
        p.push_text(
            "<tool_call>{\"name\": \"f\", \"arguments\": {\"long\": 1}}",
            &mut out,
        );
        assert_eq!(p.held(), 0);
        p.push_text("</tool_call>", &mut out);
        p.flush(&mut out);
        let (t, calls) = summary(&out);
        assert!(calls.is_empty());
        assert_eq!(
            t,
            "<tool_call>{\"name\": \"f\", \"arguments\": {\"long\": 1}}</tool_call>"
        );
    }

    #[test]
    fn a_stream_of_events_gets_calls_and_a_tool_use_finish() {
        let mut p = StreamParser::new();
        let mut evs = vec![
            StreamEvent::Start { usage: None },
            StreamEvent::Reasoning("hm".into()),
            StreamEvent::Text("On it.\n<tool_".into()),
        ];
        p.transform(&mut evs);
        assert_eq!(evs[2], StreamEvent::Text("On it.\n".into()));
        assert_eq!(evs.len(), 3);
        let mut evs = vec![
            StreamEvent::Text("call>{\"name\": \"f\", \"arguments\": {\"a\": 2}}".into()),
            StreamEvent::Finish {
                reason: FinishReason::Stop,
                stop_sequence: None,
            },
            StreamEvent::Usage(Usage::default()),
            StreamEvent::Done,
        ];
        p.transform(&mut evs);
        assert!(
            matches!(&evs[0], StreamEvent::ToolCallStart { index: 0, name, .. } if name == "f")
        );
        assert_eq!(
            evs[1],
            StreamEvent::ToolCallArgs {
                index: 0,
                fragment: r#"{"a":2}"#.into()
            }
        );
        assert_eq!(
            evs[2],
            StreamEvent::Finish {
                reason: FinishReason::ToolCalls,
                stop_sequence: None
            }
        );
        assert_eq!(evs.len(), 5);
        // A native call the upstream sent anyway gets an index of its own.
        let mut evs = vec![
            StreamEvent::ToolCallStart {
                index: 0,
                id: "n".into(),
                name: "g".into(),
            },
            StreamEvent::ToolCallArgs {
                index: 0,
                fragment: "{}".into(),
            },
        ];
        p.transform(&mut evs);
        assert!(matches!(
            &evs[0],
            StreamEvent::ToolCallStart { index: 1, .. }
        ));
        assert!(matches!(
            &evs[1],
            StreamEvent::ToolCallArgs { index: 1, .. }
        ));
        // No calls: the finish is the upstream's.
        let mut p = StreamParser::new();
        let mut evs = vec![
            StreamEvent::Text("plain <".into()),
            StreamEvent::Finish {
                reason: FinishReason::Length,
                stop_sequence: None,
            },
        ];
        p.transform(&mut evs);
        // What was held joins the text before it, ahead of the finish.
        assert_eq!(evs[0], StreamEvent::Text("plain <".into()));
        assert!(matches!(
            evs[1],
            StreamEvent::Finish {
                reason: FinishReason::Length,
                ..
            }
        ));
    }

    #[test]
    fn a_whole_answer_gets_calls_after_its_text() {
        let mut resp = Response {
            id: "r".into(),
            model: "m".into(),
            parts: vec![
                Part::Reasoning(Reasoning {
                    text: "t".into(),
                    signature: None,
                    redacted: None,
                }),
                text("I'll check.\n\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>\n<tool_call>{\"name\": \"get_weather\", \"arguments\": \"{\\\"city\\\": \\\"Oslo\\\"}\"}"),
            ],
            finish: FinishReason::Stop,
            stop_sequence: Some("x".into()),
            usage: Usage::default(),
        };
        parse_response(&mut resp);
        assert_eq!(resp.finish, FinishReason::ToolCalls);
        assert!(resp.stop_sequence.is_none());
        assert!(matches!(resp.parts[0], Part::Reasoning(_)));
        assert_eq!(resp.parts[1], text("I'll check."));
        let calls: Vec<(&str, &str)> = resp.parts[2..]
            .iter()
            .map(|p| match p {
                Part::ToolCall(c) => (c.name.as_str(), c.arguments.as_str()),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            calls,
            [
                ("get_weather", r#"{"city":"Paris"}"#),
                ("get_weather", r#"{"city":"Oslo"}"#)
            ]
        );
        let Part::ToolCall(a) = &resp.parts[2] else {
            panic!()
        };
        let Part::ToolCall(b) = &resp.parts[3] else {
            panic!()
        };
        assert_ne!(a.id, b.id);
        // Plain text stays as it was.
        let mut plain = Response {
            parts: vec![text("Just text <b>.")],
            ..resp.clone()
        };
        plain.finish = FinishReason::Stop;
        parse_response(&mut plain);
        assert_eq!(plain.parts, [text("Just text <b>.")]);
        assert_eq!(plain.finish, FinishReason::Stop);
    }

    fn split_at_chars(s: &str, cuts: &[usize]) -> Vec<String> {
        let chars: Vec<char> = s.chars().collect();
        let mut points: Vec<usize> = cuts.iter().map(|c| c % (chars.len() + 1)).collect();
        points.push(0);
        points.push(chars.len());
        points.sort_unstable();
        points.dedup();
        points
            .windows(2)
            .map(|w| chars[w[0]..w[1]].iter().collect())
            .collect()
    }

    proptest! {
        /// However the text is cut into deltas, the same text and calls
        /// come out as from the whole text at once.
        #[test]
        fn any_split_gives_the_same_answer(
            before in "[a-zé <>/_]{0,20}",
            name in "[a-z_]{1,8}",
            value in "[a-zA-Z0-9 <>/]{0,12}",
            after in "[a-z <>]{0,12}",
            cuts in proptest::collection::vec(0usize..200, 0..8),
        ) {
            let whole = format!(
                "{before}<tool_call>\n{{\"name\": \"{name}\", \"arguments\": {{\"v\": \"{value}\"}}}}\n</tool_call>{after}"
            );
            let one = summary(&events(&mut StreamParser::new(), &[&whole]));
            let deltas = split_at_chars(&whole, &cuts);
            let refs: Vec<&str> = deltas.iter().map(String::as_str).collect();
            let many = summary(&events(&mut StreamParser::new(), &refs));
            prop_assert_eq!(&one, &many);
            prop_assert_eq!(one.1.len(), 1);
            prop_assert_eq!(&one.1[0].0, &name);
            let args: Value = serde_json::from_str(&one.1[0].1).unwrap();
            prop_assert_eq!(&args["v"], &json!(value));
        }

        /// Text without a call comes out unchanged, whatever the cuts,
        /// and nothing more than a tag's length is ever held.
        #[test]
        fn text_without_calls_is_unchanged(
            text in "[a-z <>/_\n]{0,60}",
            cuts in proptest::collection::vec(0usize..100, 0..8),
        ) {
            prop_assume!(!text.contains(CALL_OPEN));
            let mut p = StreamParser::new();
            let mut out = Vec::new();
            for d in split_at_chars(&text, &cuts) {
                p.push_text(&d, &mut out);
                prop_assert!(p.held() < CALL_OPEN.len());
            }
            p.flush(&mut out);
            prop_assert_eq!(summary(&out), (text, Vec::new()));
        }
    }
}
