//! What the mock answers, decided from the request and its options, and
//! how OpenAI Chat and Anthropic Messages write it (Gemini and Responses
//! have their own modules).

use crate::{Defaults, Dialect};
use serde_json::{json, Value};
use std::collections::HashMap;

const CITIES: [&str; 5] = ["Paris", "Tokyo", "Lima", "Oslo", "Cairo"];

/// What the mock will answer, decided from the request and its options.
pub(crate) struct Plan {
    pub(crate) reasoning: Option<String>,
    /// How many stream pieces the reasoning arrives in (`reasoning=N`).
    pub(crate) reasoning_chunks: usize,
    pub(crate) pieces: Vec<String>,
    pub(crate) calls: Vec<(String, String, String)>, // id, name, arguments
    pub(crate) interleave: bool,
    pub(crate) prompt_tokens: u64,
    pub(crate) cached: u64,
    /// Anthropic's `cache_creation_input_tokens` (no other dialect reports writes).
    pub(crate) cache_write: u64,
    pub(crate) first_ms: u64,
    pub(crate) delay_ms: u64,
    /// Responses: the id this answer carries (`resp_mock_N`) and the
    /// request's `previous_response_id`, echoed.
    pub(crate) response_id: String,
    pub(crate) previous_response_id: Value,
    /// Gemini: where the thought signature rides (`signature=` option).
    pub(crate) signature_on_thought: bool,
    pub(crate) signature_on_call: bool,
    /// `finish=length`: the answer stops at the output limit (Chat
    /// `length`, Anthropic `max_tokens`, Gemini `MAX_TOKENS`, Responses
    /// `incomplete` with `max_output_tokens`).
    pub(crate) truncated: bool,
}

/// What a request asks the mock about, read in its own dialect.
#[derive(Default)]
pub(crate) struct Inputs {
    /// Tool results in the last turn, in order.
    pub(crate) results: Vec<String>,
    /// The text of the last user turn.
    pub(crate) last_user: String,
    /// Names of the function tools offered.
    pub(crate) tools: Vec<String>,
    /// Their parameter schemas, in the same order (`null` when absent).
    pub(crate) schemas: Vec<Value>,
}

pub(crate) fn text_of(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| match p.get("type").and_then(Value::as_str) {
                Some("text") => p.get("text").and_then(Value::as_str).map(str::to_owned),
                Some("tool_result") => Some(text_of(p.get("content").unwrap_or(&Value::Null))),
                _ => None,
            })
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    }
}

/// OpenAI Chat and Anthropic Messages: `messages` and `tools`.
fn chat_inputs(req: &Value, dialect: Dialect) -> Inputs {
    let messages = req
        .get("messages")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    // Tool results in the last turn: answer with what they said.
    let mut results = Vec::new();
    for m in messages.iter().rev() {
        let role = m.get("role").and_then(Value::as_str).unwrap_or("");
        match (dialect, role) {
            (Dialect::OpenAi, "tool") => {
                results.push(text_of(m.get("content").unwrap_or(&Value::Null)))
            }
            (Dialect::Anthropic, "user") => {
                if let Some(blocks) = m.get("content").and_then(Value::as_array) {
                    for b in blocks.iter().rev() {
                        if b.get("type").and_then(Value::as_str) == Some("tool_result") {
                            results.push(text_of(b.get("content").unwrap_or(&Value::Null)));
                        }
                    }
                }
                break;
            }
            _ => break,
        }
    }
    results.reverse();
    let last_user = messages
        .iter()
        .rev()
        .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
        .map(|m| text_of(m.get("content").unwrap_or(&Value::Null)))
        .unwrap_or_default();
    let offered: Vec<(String, Value)> = req
        .get("tools")
        .and_then(Value::as_array)
        .map(|ts| {
            ts.iter()
                .filter_map(|t| {
                    let name = t
                        .pointer("/function/name")
                        .or_else(|| t.get("name"))
                        .and_then(Value::as_str)?;
                    let schema = t
                        .pointer("/function/parameters")
                        .or_else(|| t.get("input_schema"))
                        .cloned()
                        .unwrap_or(Value::Null);
                    Some((name.to_owned(), schema))
                })
                .collect()
        })
        .unwrap_or_default();
    let (tools, schemas) = offered.into_iter().unzip();
    Inputs {
        results,
        last_user,
        tools,
        schemas,
    }
}

impl Plan {
    pub(crate) fn new(
        req: &Value,
        dialect: Dialect,
        opts: &HashMap<String, String>,
        d: Defaults,
        body_len: usize,
    ) -> Self {
        let num = |k: &str| opts.get(k).and_then(|v| v.parse::<u64>().ok());
        let Inputs {
            results,
            last_user,
            tools,
            schemas,
        } = match dialect {
            Dialect::OpenAi | Dialect::Anthropic => chat_inputs(req, dialect),
            Dialect::Gemini => crate::gemini::inputs(req),
            Dialect::Responses => crate::responses::inputs(req),
        };
        let n_calls = num("calls").unwrap_or(2) as usize;
        let mut calls = Vec::new();
        let shell = (num("shell") == Some(1))
            .then(|| shell_call(&tools, &schemas))
            .flatten()
            .or_else(|| opts.get("agent").and_then(|a| agent_call(&tools, a)));
        let text_only = opts
            .get("text_only")
            .map(String::as_str)
            .filter(|m| matches!(*m, "1" | "loose"));
        let emulated = text_only.and_then(|mode| {
            let system = crate::text_only::system_text(req, dialect);
            crate::text_only::answer(&system, &last_user, mode == "loose")
        });
        let text = if let Some(t) = emulated {
            t
        } else if !results.is_empty() {
            format!("Tool results: {}", results.join(" | "))
        } else if let Some((name, args)) = shell {
            let id = match dialect {
                Dialect::Anthropic => "toolu_mock0",
                _ => "call_mock0",
            };
            calls.push((id.to_owned(), name, args));
            String::new()
        } else if !tools.is_empty() && n_calls > 0 {
            for i in 0..n_calls {
                let id = match dialect {
                    Dialect::OpenAi | Dialect::Gemini | Dialect::Responses => {
                        format!("call_mock{i}")
                    }
                    Dialect::Anthropic => format!("toolu_mock{i}"),
                };
                let args = json!({"location": CITIES[i % CITIES.len()]}).to_string();
                calls.push((id, tools[i % tools.len()].clone(), args));
            }
            String::new()
        } else if let Some(t) = opts.get("text") {
            t.clone()
        } else {
            let said: String = last_user.chars().take(200).collect();
            format!("Hello from the mock upstream! You said: {said}")
        };
        let words: Vec<String> = text.split_inclusive(' ').map(str::to_owned).collect();
        let pieces = match num("chunks").map(|n| n as usize).or(d.chunks) {
            _ if text_only.is_some() => crate::text_only::pieces(&text),
            Some(n) if !words.is_empty() && calls.is_empty() => {
                (0..n).map(|i| words[i % words.len()].clone()).collect()
            }
            _ => words,
        };
        Plan {
            reasoning: (num("reasoning").unwrap_or(0) >= 1)
                .then(|| "Let me think about that.".to_owned()),
            reasoning_chunks: num("reasoning_chunks")
                .or(num("reasoning"))
                .unwrap_or(1)
                .max(1) as usize,
            pieces,
            calls,
            interleave: num("interleave") == Some(1),
            prompt_tokens: (body_len as u64 / 4).max(1),
            cached: num("cached").unwrap_or(0),
            cache_write: num("cache_write").unwrap_or(0),
            first_ms: num("first_ms").unwrap_or(d.first_ms),
            delay_ms: num("delay_ms").unwrap_or(d.delay_ms),
            response_id: String::new(),
            previous_response_id: req
                .get("previous_response_id")
                .cloned()
                .unwrap_or(Value::Null),
            signature_on_thought: matches!(
                opts.get("signature").map(String::as_str),
                None | Some("thought" | "both")
            ),
            signature_on_call: matches!(
                opts.get("signature").map(String::as_str),
                Some("call" | "both")
            ),
            truncated: opts.get("finish").is_some_and(|f| f == "length"),
        }
    }

    /// The reasoning in `reasoning_chunks` pieces cut at word ends (fewer
    /// when it has fewer words); they concatenate to the whole text.
    pub(crate) fn reasoning_pieces(&self) -> Vec<String> {
        let Some(r) = &self.reasoning else {
            return Vec::new();
        };
        let words: Vec<&str> = r.split_inclusive(' ').collect();
        let n = self.reasoning_chunks.min(words.len()).max(1);
        let per = words.len().div_ceil(n);
        words.chunks(per).map(|w| w.concat()).collect()
    }

    pub(crate) fn completion_tokens(&self) -> u64 {
        (self.pieces.len() + self.calls.len() * 3 + usize::from(self.reasoning.is_some()) * 5)
            as u64
    }

    /// Chat's `finish_reason`.
    pub(crate) fn openai_finish(&self) -> &'static str {
        if !self.calls.is_empty() {
            "tool_calls"
        } else if self.truncated {
            "length"
        } else {
            "stop"
        }
    }

    /// Anthropic's `stop_reason`.
    pub(crate) fn anthropic_stop(&self) -> &'static str {
        if !self.calls.is_empty() {
            "tool_use"
        } else if self.truncated {
            "max_tokens"
        } else {
            "end_turn"
        }
    }

    pub(crate) fn text(&self) -> String {
        self.pieces.concat()
    }

    pub(crate) fn openai_usage(&self) -> Value {
        let prompt = self.prompt_tokens + self.cached;
        let completion = self.completion_tokens();
        json!({"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
               "prompt_tokens_details": {"cached_tokens": self.cached},
               "completion_tokens_details": {"reasoning_tokens": if self.reasoning.is_some() { 5 } else { 0 }}})
    }

    pub(crate) fn anthropic_usage(&self) -> Value {
        json!({"input_tokens": self.prompt_tokens, "output_tokens": self.completion_tokens(),
               "cache_read_input_tokens": self.cached, "cache_creation_input_tokens": self.cache_write})
    }

    pub(crate) fn openai_body(&self, model: &str) -> Value {
        let mut msg = json!({"role": "assistant", "content": if self.calls.is_empty() { json!(self.text()) } else { Value::Null }});
        if let Some(r) = &self.reasoning {
            msg["reasoning_content"] = json!(r);
        }
        if !self.calls.is_empty() {
            msg["tool_calls"] = self
                .calls
                .iter()
                .map(|(id, name, args)| json!({"id": id, "type": "function", "function": {"name": name, "arguments": args}}))
                .collect();
        }
        json!({"id": "chatcmpl-mock", "object": "chat.completion", "created": 1, "model": model,
               "choices": [{"index": 0, "message": msg, "finish_reason": self.openai_finish()}],
               "usage": self.openai_usage()})
    }

    pub(crate) fn anthropic_body(&self, model: &str) -> Value {
        let mut content = Vec::new();
        if let Some(r) = &self.reasoning {
            content.push(json!({"type": "thinking", "thinking": r, "signature": "mock-signature"}));
        }
        if self.calls.is_empty() {
            content.push(json!({"type": "text", "text": self.text()}));
        }
        for (id, name, args) in &self.calls {
            let input: Value = serde_json::from_str(args).unwrap_or(Value::Null);
            content.push(json!({"type": "tool_use", "id": id, "name": name, "input": input}));
        }
        json!({"id": "msg_mock", "type": "message", "role": "assistant", "model": model, "content": content,
               "stop_reason": self.anthropic_stop(), "stop_sequence": null,
               "usage": self.anthropic_usage()})
    }

    pub(crate) fn openai_events(&self, model: &str, include_usage: bool) -> Vec<String> {
        let chunk = |delta: Value, finish: Value| {
            format!(
                "data: {}\n\n",
                json!({"id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": 1, "model": model,
                       "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
            )
        };
        let mut out = vec![chunk(
            json!({"role": "assistant", "content": ""}),
            Value::Null,
        )];
        for r in self.reasoning_pieces() {
            out.push(chunk(json!({"reasoning_content": r}), Value::Null));
        }
        for p in &self.pieces {
            out.push(chunk(json!({"content": p}), Value::Null));
        }
        // Each call: a head with id and name, then its arguments in two halves.
        let halves: Vec<(String, String)> = self
            .calls
            .iter()
            .map(|(_, _, a)| {
                let mid = a.len() / 2;
                (a[..mid].to_owned(), a[mid..].to_owned())
            })
            .collect();
        let head = |i: usize| {
            let (id, name, _) = &self.calls[i];
            chunk(
                json!({"tool_calls": [{"index": i, "id": id, "type": "function", "function": {"name": name, "arguments": ""}}]}),
                Value::Null,
            )
        };
        let part = |i: usize, s: &str| {
            chunk(
                json!({"tool_calls": [{"index": i, "function": {"arguments": s}}]}),
                Value::Null,
            )
        };
        if self.interleave {
            for i in 0..self.calls.len() {
                out.push(head(i));
            }
            for (i, h) in halves.iter().enumerate() {
                out.push(part(i, &h.0));
            }
            for (i, h) in halves.iter().enumerate() {
                out.push(part(i, &h.1));
            }
        } else {
            for (i, h) in halves.iter().enumerate() {
                out.push(head(i));
                out.push(part(i, &h.0));
                out.push(part(i, &h.1));
            }
        }
        out.push(chunk(json!({}), json!(self.openai_finish())));
        if include_usage {
            out.push(format!(
                "data: {}\n\n",
                json!({"id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": 1, "model": model, "choices": [], "usage": self.openai_usage()})
            ));
        }
        out.push("data: [DONE]\n\n".to_owned());
        out
    }

    pub(crate) fn anthropic_events(&self, model: &str) -> Vec<String> {
        let ev = |name: &str, v: Value| format!("event: {name}\ndata: {v}\n\n");
        let mut out = vec![ev(
            "message_start",
            json!({"type": "message_start", "message": {"id": "msg_mock", "type": "message", "role": "assistant", "model": model,
                   "content": [], "stop_reason": null, "stop_sequence": null,
                   "usage": {"input_tokens": self.prompt_tokens, "output_tokens": 1, "cache_read_input_tokens": self.cached, "cache_creation_input_tokens": self.cache_write}}}),
        )];
        out.push(ev("ping", json!({"type": "ping"})));
        let mut idx = 0;
        if self.reasoning.is_some() {
            out.push(ev("content_block_start", json!({"type": "content_block_start", "index": idx, "content_block": {"type": "thinking", "thinking": "", "signature": ""}})));
            for r in self.reasoning_pieces() {
                out.push(ev("content_block_delta", json!({"type": "content_block_delta", "index": idx, "delta": {"type": "thinking_delta", "thinking": r}})));
            }
            out.push(ev("content_block_delta", json!({"type": "content_block_delta", "index": idx, "delta": {"type": "signature_delta", "signature": "mock-signature"}})));
            out.push(ev(
                "content_block_stop",
                json!({"type": "content_block_stop", "index": idx}),
            ));
            idx += 1;
        }
        if self.calls.is_empty() {
            out.push(ev("content_block_start", json!({"type": "content_block_start", "index": idx, "content_block": {"type": "text", "text": ""}})));
            for p in &self.pieces {
                out.push(ev("content_block_delta", json!({"type": "content_block_delta", "index": idx, "delta": {"type": "text_delta", "text": p}})));
            }
            out.push(ev(
                "content_block_stop",
                json!({"type": "content_block_stop", "index": idx}),
            ));
        }
        for (id, name, args) in &self.calls {
            let mid = args.len() / 2;
            out.push(ev("content_block_start", json!({"type": "content_block_start", "index": idx, "content_block": {"type": "tool_use", "id": id, "name": name, "input": {}}})));
            for frag in [&args[..mid], &args[mid..]] {
                out.push(ev("content_block_delta", json!({"type": "content_block_delta", "index": idx, "delta": {"type": "input_json_delta", "partial_json": frag}})));
            }
            out.push(ev(
                "content_block_stop",
                json!({"type": "content_block_stop", "index": idx}),
            ));
            idx += 1;
        }
        out.push(ev("message_delta", json!({"type": "message_delta", "delta": {"stop_reason": self.anthropic_stop(), "stop_sequence": null}, "usage": {"output_tokens": self.completion_tokens()}})));
        out.push(ev("message_stop", json!({"type": "message_stop"})));
        out
    }
}

/// The command `shell=1` asks a client's shell tool to run: only a shell
/// that really ran it prints `modelswitch-42`.
pub(crate) const SHELL_COMMAND: &str = "echo modelswitch-$((6*7))";

/// Tool names `shell=1` looks for first, in the order offered.
const SHELL_TOOLS: [&str; 5] = [
    "Bash",
    "shell",
    "exec_command",
    "local_shell",
    "shell_command",
];

/// `agent=NAME`: a call to Claude Code's subagent tool (`Task`, `Agent`
/// in newer releases) running the subagent `NAME`, when it is offered.
fn agent_call(tools: &[String], agent: &str) -> Option<(String, String)> {
    let name = tools.iter().find(|n| *n == "Task" || *n == "Agent")?;
    // In the foreground: its report is the call's result (Claude Code
    // runs agents in the background unless told).
    let args = json!({"description": "Ask the helper", "prompt": "Report back in one line.",
                      "subagent_type": agent, "run_in_background": false});
    Some((name.clone(), args.to_string()))
}

/// `shell=1`: the first offered tool named one of [`SHELL_TOOLS`] (else
/// the first offered tool), with arguments running [`SHELL_COMMAND`]
/// shaped by its parameter schema: a `cmd` property (and no `command`)
/// takes the command as a string (Codex's `exec_command`); a `command`
/// property of type array takes `["bash", "-lc", …]` (Codex's `shell`,
/// `local_shell`), else the string; a `description` property (Claude
/// Code's `Bash`) gets `"print"`. Without a schema the name decides
/// (`exec_command`: `cmd`; `shell`, `local_shell`, `container.exec`: an
/// array; others: a string).
fn shell_call(tools: &[String], schemas: &[Value]) -> Option<(String, String)> {
    let i = tools
        .iter()
        .position(|n| SHELL_TOOLS.contains(&n.as_str()))
        .or((!tools.is_empty()).then_some(0))?;
    let name = tools[i].as_str();
    let props = schemas
        .get(i)
        .and_then(|s| s.get("properties"))
        .and_then(Value::as_object);
    let prop_type = |k: &str| {
        props
            .and_then(|p| p.get(k))
            .and_then(|p| p.get("type"))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let array = json!(["bash", "-lc", SHELL_COMMAND]);
    let mut args = match props {
        Some(p) if p.contains_key("cmd") && !p.contains_key("command") => {
            json!({"cmd": SHELL_COMMAND})
        }
        Some(p) if p.contains_key("command") => match prop_type("command").as_deref() {
            Some("array") => json!({"command": array}),
            _ => json!({"command": SHELL_COMMAND}),
        },
        _ => match name {
            "exec_command" => json!({"cmd": SHELL_COMMAND}),
            "shell" | "local_shell" | "container.exec" => json!({"command": array}),
            _ => json!({"command": SHELL_COMMAND}),
        },
    };
    if props.is_some_and(|p| p.contains_key("description")) {
        args["description"] = json!("print");
    }
    Some((name.to_owned(), args.to_string()))
}
