//! Gemini streams (`streamGenerateContent?alt=sse`): the upstream side
//! (each `data:` a whole `GenerateContentResponse` chunk → canonical
//! events) and the client side (canonical events → chunks google-genai
//! accepts: only `data: ` lines, no comments, no `event:` lines, whole
//! `functionCall`s with object `args`, the last chunk carrying
//! `finishReason` and `usageMetadata`, then the connection closes).
//!
//! Signatures: the decoder emits a part's `thoughtSignature` just before
//! that part's content, so the encoder, which holds a Gemini signature
//! until the next part, puts it back on the same part. Another vendor's
//! signature signs the reasoning already sent, and goes out at once on an
//! empty thought part, base64-encoded (see `parts` for why and for how it
//! comes back).

use super::parts::{self, read_part, WirePart};
use super::response::{finish_from_wire, finish_to_wire, usage_from_wire, usage_to_wire};
use crate::canonical::*;
use crate::error::{ApiError, ErrorKind};
use crate::wire::sse::{encode_event, SseEvent};
use bytes::BytesMut;
use serde_json::{json, Value};

// ------------------------------------------------------------------ decoder

/// The members of a chunk the decoder reads, typed: unknown members
/// (`modelVersion`, `responseId`, `index`, safety ratings) are skipped
/// without building a tree, which was most of a text chunk's cost.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireChunk {
    #[serde(default)]
    candidates: Vec<WireCandidate>,
    usage_metadata: Option<Value>,
    error: Option<Value>,
    prompt_feedback: Option<WireFeedback>,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireCandidate {
    content: Option<WireContent>,
    finish_reason: Option<String>,
}

#[derive(Debug, Default, serde::Deserialize)]
struct WireContent {
    #[serde(default)]
    parts: Vec<Value>,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireFeedback {
    block_reason: Option<Value>,
}

#[derive(Debug, Default)]
pub struct StreamDecoder {
    started: bool,
    next_ordinal: usize,
    finish: Option<FinishReason>,
    usage: Option<Usage>,
    done: bool,
}

impl StreamDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn feed(&mut self, ev: &SseEvent, out: &mut Vec<StreamEvent>) {
        let data = ev.data.trim();
        if self.done || data.is_empty() {
            return;
        }
        // A JSON-array framed body fed as one event: its chunks in order.
        let parsed = if data.starts_with('[') {
            serde_json::from_str::<Vec<WireChunk>>(data)
        } else {
            serde_json::from_str::<WireChunk>(data).map(|c| vec![c])
        };
        match parsed {
            Ok(chunks) => chunks.iter().for_each(|c| self.chunk(c, out)),
            Err(e) => {
                self.done = true;
                out.push(StreamEvent::Error(ApiError::new(
                    ErrorKind::Api,
                    format!("upstream sent a malformed stream chunk: {e}"),
                )));
            }
        }
    }

    fn chunk(&mut self, v: &WireChunk, out: &mut Vec<StreamEvent>) {
        if self.done {
            return;
        }
        if let Some(e) = v.error.as_ref().filter(|e| !e.is_null()) {
            self.done = true;
            let payload = json!({ "error": e });
            out.push(StreamEvent::Error(ApiError::from_stream_payload(&payload)));
            return;
        }
        let usage = v.usage_metadata.as_ref().map(usage_from_wire);
        if !self.started {
            self.started = true;
            self.usage = usage;
            out.push(StreamEvent::Start { usage });
        }
        let cand = v.candidates.first();
        if let Some(content) = cand.and_then(|c| c.content.as_ref()) {
            for p in &content.parts {
                self.part(p, out);
            }
        }
        let blocked = v
            .prompt_feedback
            .as_ref()
            .is_some_and(|f| f.block_reason.is_some());
        if let Some(f) = cand.and_then(|c| c.finish_reason.as_deref()) {
            self.finish = Some(finish_from_wire(f));
        } else if cand.is_none() && blocked {
            self.finish = Some(FinishReason::ContentFilter);
        }
        if let Some(u) = usage.filter(|u| Some(*u) != self.usage) {
            self.usage = Some(u);
            out.push(StreamEvent::Usage(u));
        }
    }

    /// One part: its signature first, then its content; each functionCall
    /// arrives whole, so its arguments are one fragment.
    fn part(&mut self, p: &Value, out: &mut Vec<StreamEvent>) {
        if let Some(s) = parts::signature(p) {
            out.push(StreamEvent::ReasoningSignature(signature_minted(
                Issuer::Gemini,
                s,
            )));
        }
        match read_part(p, "part") {
            Ok(WirePart::Thought(t)) if !t.is_empty() => out.push(StreamEvent::Reasoning(t)),
            Ok(WirePart::Text(t)) if !t.is_empty() => out.push(StreamEvent::Text(t)),
            Ok(WirePart::Call {
                id,
                name,
                arguments,
            }) => {
                let index = self.next_ordinal;
                self.next_ordinal += 1;
                out.push(StreamEvent::ToolCallStart {
                    index,
                    id: id.unwrap_or_else(|| new_id("call_")),
                    name,
                });
                out.push(StreamEvent::ToolCallArgs {
                    index,
                    fragment: arguments,
                });
            }
            // Empty text, media output, unknown parts; a call whose args are
            // not an object is dropped rather than passed on broken.
            _ => {}
        }
    }

    /// The upstream closed the body: Gemini has no terminator, so a stream
    /// that gave a finish reason ended properly, any other was cut.
    pub fn finish(&mut self, out: &mut Vec<StreamEvent>) {
        if self.done {
            return;
        }
        self.done = true;
        let Some(mut reason) = self.finish else {
            out.push(StreamEvent::Error(ApiError::new(
                ErrorKind::Api,
                "upstream closed the stream before it finished",
            )));
            return;
        };
        if self.next_ordinal > 0 {
            reason = FinishReason::ToolCalls;
        }
        out.push(StreamEvent::Finish {
            reason,
            stop_sequence: None,
        });
        out.push(StreamEvent::Done);
    }
}

// ------------------------------------------------------------------ encoder

#[derive(Debug)]
struct PendingCall {
    id: String,
    name: String,
    args: String,
    signature: Option<String>,
}

/// Canonical events → Gemini SSE chunks for a Gemini client.
#[derive(Debug)]
pub struct StreamEncoder {
    model: String,
    id: String,
    /// A Gemini signature (wire form) waiting for the part it belongs to.
    pending_signature: Option<String>,
    /// Tool calls by canonical index, sent whole once their arguments are
    /// complete (before the next text, or in the last chunk).
    calls: Vec<Option<PendingCall>>,
    usage: Option<Usage>,
    finish: Option<FinishReason>,
    scratch: Vec<u8>,
    /// `"modelVersion":…,"responseId":…}`, serialised once: a text chunk is
    /// the hot path and is written without a JSON tree.
    tail: Vec<u8>,
}

/// A one-text-part chunk up to the text.
const TEXT_HEAD: &[u8] = b"{\"candidates\":[{\"content\":{\"role\":\"model\",\"parts\":[{\"text\":";

impl StreamEncoder {
    pub fn new(model: &str) -> Self {
        let id = new_id("");
        // The object without its opening brace.
        let tail = serde_json::to_vec(&json!({"modelVersion": model, "responseId": id}))
            .unwrap_or_default()
            .get(1..)
            .map(<[u8]>::to_vec)
            .unwrap_or_default();
        Self {
            tail,
            model: model.to_owned(),
            id,
            pending_signature: None,
            calls: Vec::new(),
            usage: None,
            finish: None,
            scratch: Vec::with_capacity(256),
        }
    }

    fn emit(&mut self, out: &mut BytesMut, v: &Value) {
        self.scratch.clear();
        if serde_json::to_writer(&mut self.scratch, v).is_ok() {
            encode_event(out, None, &self.scratch);
        }
    }

    /// One chunk with `parts`; the last also has the finish and usage.
    fn chunk(&mut self, out: &mut BytesMut, parts: Vec<Value>, last: bool) {
        let mut cand = json!({"content": {"role": "model", "parts": parts}, "index": 0});
        let mut v = json!({"candidates": [], "modelVersion": self.model, "responseId": self.id});
        if last {
            let reason = self.finish.unwrap_or(FinishReason::Stop);
            cand["finishReason"] = json!(finish_to_wire(reason));
            v["usageMetadata"] = usage_to_wire(&self.usage.unwrap_or_default());
        }
        v["candidates"] = json!([cand]);
        self.emit(out, &v);
    }

    /// A text (or thought) chunk; written directly when nothing else
    /// rides along (no buffered calls, no held signature).
    fn text_part(&mut self, out: &mut BytesMut, text: &str, thought: bool) {
        if self.pending_signature.is_some() || self.calls.iter().any(Option::is_some) {
            let mut part = json!({ "text": text });
            if thought {
                part["thought"] = json!(true);
            }
            return self.part(out, part);
        }
        self.scratch.clear();
        self.scratch.extend_from_slice(TEXT_HEAD);
        if serde_json::to_writer(&mut self.scratch, text).is_err() {
            return;
        }
        if thought {
            self.scratch.extend_from_slice(b",\"thought\":true");
        }
        self.scratch.extend_from_slice(b"}]},\"index\":0}],");
        self.scratch.extend_from_slice(&self.tail);
        encode_event(out, None, &self.scratch);
    }

    /// A content part, carrying the signature held for it.
    fn part(&mut self, out: &mut BytesMut, mut part: Value) {
        let mut parts = self.take_calls();
        if let Some(s) = self.pending_signature.take() {
            part["thoughtSignature"] = json!(s);
        }
        parts.push(part);
        self.chunk(out, parts, false);
    }

    /// Buffered calls as whole `functionCall` parts, in order.
    fn take_calls(&mut self) -> Vec<Value> {
        self.calls
            .drain(..)
            .flatten()
            .map(|c| {
                let mut p = parts::call_value(&c.id, &c.name, &c.args, true);
                if let Some(s) = c.signature {
                    p["thoughtSignature"] = json!(s);
                }
                p
            })
            .collect()
    }

    pub fn encode(&mut self, ev: &StreamEvent, out: &mut BytesMut) {
        match ev {
            StreamEvent::Start { usage } => {
                if usage.is_some() {
                    self.usage = *usage;
                }
            }
            StreamEvent::Text(t) => self.text_part(out, t, false),
            StreamEvent::Reasoning(t) => self.text_part(out, t, true),
            StreamEvent::ReasoningSignature(s) => self.signature(s, out),
            StreamEvent::ToolCallStart { index, id, name } => {
                if self.calls.len() <= *index {
                    self.calls.resize_with(index + 1, || None);
                }
                self.calls[*index] = Some(PendingCall {
                    id: id.clone(),
                    name: name.clone(),
                    args: String::new(),
                    signature: self.pending_signature.take(),
                });
            }
            StreamEvent::ToolCallArgs { index, fragment } => {
                if let Some(Some(c)) = self.calls.get_mut(*index) {
                    c.args.push_str(fragment);
                }
            }
            StreamEvent::Usage(u) => self.usage = Some(*u),
            StreamEvent::Finish { reason, .. } => self.finish = Some(*reason),
            StreamEvent::Done => {
                let mut parts = self.take_calls();
                if let Some(s) = self.pending_signature.take() {
                    parts.push(json!({"text": "", "thoughtSignature": s}));
                }
                if parts.is_empty() {
                    parts.push(json!({"text": ""}));
                }
                self.chunk(out, parts, true);
            }
            StreamEvent::Error(e) => self.fail(e, out),
        }
    }

    /// A Gemini signature waits for its part; another vendor's goes out
    /// now, on an empty thought part after the reasoning it signs.
    fn signature(&mut self, s: &str, out: &mut BytesMut) {
        if let Some(raw) = signature_issued_by(s, Issuer::Gemini) {
            if let Some(older) = self.pending_signature.replace(raw.to_owned()) {
                self.chunk(
                    out,
                    vec![json!({"text": "", "thoughtSignature": older})],
                    false,
                );
            }
            return;
        }
        let mut parts = self.take_calls();
        parts.push(json!({"text": "", "thought": true,
            "thoughtSignature": parts::client_signature(s)}));
        self.chunk(out, parts, false);
    }

    /// The in-stream error after commit: `data: {"error":{...}}`, then the
    /// connection closes without a finish.
    pub fn fail(&mut self, e: &ApiError, out: &mut BytesMut) {
        let v = super::error::body(e);
        self.emit(out, &v);
    }

    /// Gemini clients break on SSE comments and `event:` lines, and there is
    /// no empty chunk they would ignore: a Gemini stream has no keep-alive.
    pub fn keepalive(_out: &mut BytesMut) {}
}

#[cfg(test)]
#[path = "stream_tests.rs"]
mod tests;
