//! OpenAI Responses (`/v1/responses`): what a request asks, and the answer
//! as a Response object or its full event sequence.

use crate::plan::{Inputs, Plan};
use serde_json::{json, Value};

/// The opaque reasoning state the mock mints.
pub(crate) const ENCRYPTED: &str = "mock-openai-encrypted";

/// Text of a message item's `content` (a string or `input_text` /
/// `output_text` / `text` parts).
fn content_text(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| match p.get("type").and_then(Value::as_str) {
                Some("input_text" | "output_text" | "text") => {
                    p.get("text").and_then(Value::as_str).map(str::to_owned)
                }
                _ => None,
            })
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    }
}

/// `input` (a string or items) and the flat function `tools`.
pub(crate) fn inputs(req: &Value) -> Inputs {
    let tools = req
        .get("tools")
        .and_then(Value::as_array)
        .map(|ts| {
            ts.iter()
                .filter(|t| {
                    t.get("type").and_then(Value::as_str).unwrap_or("function") == "function"
                })
                .filter_map(|t| {
                    let name = t.get("name").and_then(Value::as_str)?;
                    Some((
                        name.to_owned(),
                        t.get("parameters").cloned().unwrap_or(Value::Null),
                    ))
                })
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    let (tools, schemas): (Vec<String>, Vec<Value>) = tools.into_iter().unzip();
    let items = match req.get("input") {
        Some(Value::String(s)) => {
            return Inputs {
                results: Vec::new(),
                last_user: s.clone(),
                tools,
                schemas,
            }
        }
        Some(Value::Array(items)) => items.as_slice(),
        _ => &[],
    };
    // Tool results closing the input: answer with what they said.
    let mut results: Vec<String> = items
        .iter()
        .rev()
        .take_while(|it| it.get("type").and_then(Value::as_str) == Some("function_call_output"))
        .map(|it| content_text(it.get("output").unwrap_or(&Value::Null)))
        .collect();
    results.reverse();
    let last_user = items
        .iter()
        .rev()
        .find(|it| {
            it.get("role").and_then(Value::as_str) == Some("user")
                && it.get("type").and_then(Value::as_str).unwrap_or("message") == "message"
        })
        .map(|it| content_text(it.get("content").unwrap_or(&Value::Null)))
        .unwrap_or_default();
    Inputs {
        results,
        last_user,
        tools,
        schemas,
    }
}

fn reasoning_tokens(plan: &Plan) -> u64 {
    if plan.reasoning.is_some() {
        5
    } else {
        0
    }
}

/// OpenAI's convention: input includes cached, output includes reasoning.
fn usage(plan: &Plan) -> Value {
    let input = plan.prompt_tokens + plan.cached;
    let output = plan.completion_tokens();
    json!({"input_tokens": input, "input_tokens_details": {"cached_tokens": plan.cached},
           "output_tokens": output, "output_tokens_details": {"reasoning_tokens": reasoning_tokens(plan)},
           "total_tokens": input + output})
}

/// The Response envelope with `status`, `output` and `usage`.
fn envelope(plan: &Plan, model: &str, status: &str, output: Vec<Value>, usage: Value) -> Value {
    json!({"id": plan.response_id, "object": "response", "created_at": 1, "status": status,
           "model": model, "output": output, "parallel_tool_calls": true,
           "previous_response_id": plan.previous_response_id, "error": null,
           "incomplete_details": null, "usage": usage})
}

const REASONING_ID: &str = "rs_mock";
const MESSAGE_ID: &str = "msg_mock";

fn reasoning_item(r: &str) -> Value {
    json!({"type": "reasoning", "id": REASONING_ID, "summary": [{"type": "summary_text", "text": r}],
           "encrypted_content": ENCRYPTED})
}

fn text_part(text: &str) -> Value {
    json!({"type": "output_text", "text": text, "annotations": []})
}

fn message_item(text: &str, status: &str) -> Value {
    let content = if status == "completed" {
        vec![text_part(text)]
    } else {
        Vec::new()
    };
    json!({"type": "message", "id": MESSAGE_ID, "status": status, "role": "assistant", "content": content})
}

fn call_item(i: usize, call_id: &str, name: &str, args: &str, status: &str) -> Value {
    json!({"type": "function_call", "id": format!("fc_mock{i}"), "call_id": call_id, "name": name,
           "arguments": args, "status": status})
}

/// The output items: reasoning, then the message or the calls.
fn output(plan: &Plan) -> Vec<Value> {
    let mut out = Vec::new();
    if let Some(r) = &plan.reasoning {
        out.push(reasoning_item(r));
    }
    if plan.calls.is_empty() {
        out.push(message_item(&plan.text(), "completed"));
    }
    for (i, (id, name, args)) in plan.calls.iter().enumerate() {
        out.push(call_item(i, id, name, args, "completed"));
    }
    out
}

/// The whole Response: `completed`, or `incomplete` (reason
/// `max_output_tokens`) with `finish=length`.
pub(crate) fn body(plan: &Plan, model: &str) -> Value {
    if incomplete(plan) {
        let mut v = envelope(plan, model, "incomplete", output(plan), usage(plan));
        v["incomplete_details"] = json!({"reason": "max_output_tokens"});
        return v;
    }
    envelope(plan, model, "completed", output(plan), usage(plan))
}

fn incomplete(plan: &Plan) -> bool {
    plan.truncated && plan.calls.is_empty()
}

/// One event: `event: <type>` and its data with `sequence_number`.
fn event(seq: usize, kind: &str, mut v: Value) -> String {
    v["type"] = json!(kind);
    v["sequence_number"] = json!(seq);
    format!("event: {kind}\ndata: {v}\n\n")
}

/// The event sequence, from `response.created` to `response.completed`.
pub(crate) fn events(plan: &Plan, model: &str) -> Vec<String> {
    let mut evs: Vec<(&str, Value)> = Vec::new();
    let started = envelope(plan, model, "in_progress", Vec::new(), Value::Null);
    evs.push(("response.created", json!({"response": started})));
    evs.push(("response.in_progress", json!({"response": started})));
    let mut oi = 0;
    if let Some(r) = &plan.reasoning {
        let at = json!({"item_id": REASONING_ID, "output_index": oi, "summary_index": 0});
        let with = |extra: Value| {
            let mut v = at.clone();
            if let (Some(v), Value::Object(e)) = (v.as_object_mut(), extra) {
                v.extend(e);
            }
            v
        };
        evs.push((
            "response.output_item.added",
            json!({"output_index": oi,
            "item": {"type": "reasoning", "id": REASONING_ID, "summary": []}}),
        ));
        evs.push((
            "response.reasoning_summary_part.added",
            with(json!({"part": {"type": "summary_text", "text": ""}})),
        ));
        for piece in plan.reasoning_pieces() {
            evs.push((
                "response.reasoning_summary_text.delta",
                with(json!({"delta": piece})),
            ));
        }
        evs.push((
            "response.reasoning_summary_text.done",
            with(json!({"text": r})),
        ));
        evs.push((
            "response.reasoning_summary_part.done",
            with(json!({"part": {"type": "summary_text", "text": r}})),
        ));
        evs.push((
            "response.output_item.done",
            json!({"output_index": oi, "item": reasoning_item(r)}),
        ));
        oi += 1;
    }
    if plan.calls.is_empty() {
        let text = plan.text();
        let at = |extra: Value| {
            let mut v = json!({"item_id": MESSAGE_ID, "output_index": oi, "content_index": 0});
            if let (Some(v), Value::Object(e)) = (v.as_object_mut(), extra) {
                v.extend(e);
            }
            v
        };
        evs.push((
            "response.output_item.added",
            json!({"output_index": oi, "item": message_item("", "in_progress")}),
        ));
        evs.push((
            "response.content_part.added",
            at(json!({"part": text_part("")})),
        ));
        for p in &plan.pieces {
            evs.push((
                "response.output_text.delta",
                at(json!({"delta": p, "logprobs": []})),
            ));
        }
        evs.push((
            "response.output_text.done",
            at(json!({"text": text, "logprobs": []})),
        ));
        evs.push((
            "response.content_part.done",
            at(json!({"part": text_part(&text)})),
        ));
        evs.push((
            "response.output_item.done",
            json!({"output_index": oi, "item": message_item(&text, "completed")}),
        ));
    }
    // Each call: added, its arguments in two halves, done; `interleave=1`
    // opens every call before any arguments and alternates the halves.
    let base = oi;
    let added = |i: usize| {
        let (id, name, _) = &plan.calls[i];
        (
            "response.output_item.added",
            json!({"output_index": base + i, "item": call_item(i, id, name, "", "in_progress")}),
        )
    };
    let delta = |i: usize, s: &str| {
        (
            "response.function_call_arguments.delta",
            json!({"item_id": format!("fc_mock{i}"), "output_index": base + i, "delta": s}),
        )
    };
    let done = |i: usize| {
        let (id, name, args) = &plan.calls[i];
        [
            (
                "response.function_call_arguments.done",
                json!({"item_id": format!("fc_mock{i}"), "output_index": base + i, "arguments": args}),
            ),
            (
                "response.output_item.done",
                json!({"output_index": base + i, "item": call_item(i, id, name, args, "completed")}),
            ),
        ]
    };
    let halves: Vec<(&str, &str)> = plan
        .calls
        .iter()
        .map(|(_, _, a)| a.split_at(a.len() / 2))
        .collect();
    if plan.interleave {
        evs.extend((0..halves.len()).map(added));
        evs.extend(halves.iter().enumerate().map(|(i, h)| delta(i, h.0)));
        evs.extend(halves.iter().enumerate().map(|(i, h)| delta(i, h.1)));
        evs.extend((0..halves.len()).flat_map(done));
    } else {
        for (i, h) in halves.iter().enumerate() {
            evs.push(added(i));
            evs.push(delta(i, h.0));
            evs.push(delta(i, h.1));
            evs.extend(done(i));
        }
    }
    let last = if incomplete(plan) {
        "response.incomplete"
    } else {
        "response.completed"
    };
    evs.push((last, json!({"response": body(plan, model)})));
    evs.into_iter()
        .enumerate()
        .map(|(seq, (kind, v))| event(seq, kind, v))
        .collect()
}

/// `response.failed` at sequence number `seq`.
pub(crate) fn failed_event(plan: &Plan, model: &str, seq: usize) -> String {
    let mut r = envelope(plan, model, "failed", Vec::new(), Value::Null);
    r["error"] = json!({"code": "server_error", "message": "mock: overloaded mid-stream"});
    event(seq, "response.failed", json!({"response": r}))
}

/// A broken event.
pub(crate) const MALFORMED: &str =
    "event: response.output_text.delta\ndata: {\"type\": \"response.output_text.delta\", \"delta\": \n\n";
