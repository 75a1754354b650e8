//! A same-dialect OpenAI stream, forwarded chunk by chunk: only `model` is
//! rewritten; finish reasons, usage and errors are read on the way.

use crate::canonical::Observed;
use crate::error::ApiError;
use crate::wire::json_peek;
use crate::wire::lenient::IsString;
use crate::wire::sse::{encode_event, SseEvent, OPENAI_DONE};
use bytes::BytesMut;
use serde_json::Value;

pub struct PassThrough {
    /// The client's model name as a JSON string, quoted once for every
    /// chunk to reuse; `None` when it equals the upstream's.
    rename_json: Option<Vec<u8>>,
    finish_seen: bool,
    /// The gateway asked the upstream for usage the client did not ask
    /// for: the usage-only chunk is read, not forwarded.
    hide_usage_chunk: bool,
}

/// A choice, as far as its end is concerned.
#[derive(serde::Deserialize)]
struct FinishOnly {
    #[serde(default)]
    finish_reason: IsString,
}

impl PassThrough {
    pub fn new(rename: Option<&str>) -> Self {
        Self {
            rename_json: rename.and_then(|r| serde_json::to_vec(r).ok()),
            finish_seen: false,
            hide_usage_chunk: false,
        }
    }

    /// Reads the usage-only chunk without forwarding it (the client did not
    /// set `stream_options.include_usage`; the gateway did, to count).
    pub fn hide_usage_chunk(&mut self) {
        self.hide_usage_chunk = true;
    }

    pub fn event(&mut self, ev: &SseEvent, out: &mut BytesMut) -> Observed {
        let data = ev.data.trim();
        if data == "[DONE]" {
            out.extend_from_slice(OPENAI_DONE);
            return Observed::Done;
        }
        let m = match json_peek::members(data.as_bytes()) {
            Ok(m) => m,
            Err(e) => return Observed::malformed(e),
        };
        if m.raw("error").is_some_and(|e| e != b"null") {
            let v: Value = serde_json::from_str(data).unwrap_or(Value::Null);
            return Observed::Error(ApiError::from_stream_payload(&v));
        }
        let usage_only = self.hide_usage_chunk
            && m.raw("choices") == Some(b"[]")
            && m.raw("usage").is_some_and(|u| u.first() == Some(&b'{'));
        if !usage_only {
            let renamed = self
                .rename_json
                .as_ref()
                .and_then(|quoted| m.replace("model", quoted));
            encode_event(out, None, renamed.as_deref().unwrap_or(data.as_bytes()));
        }
        // Every OpenAI chunk carries `"finish_reason": null`; only a string
        // ends a choice. Read just that field of each choice, without a tree.
        if data.contains("\"finish_reason\"")
            && m.raw("choices")
                .and_then(|c| serde_json::from_slice::<Vec<FinishOnly>>(c).ok())
                .is_some_and(|choices| choices.iter().any(|c| c.finish_reason.0))
        {
            self.finish_seen = true;
        }
        if let Some(u) = m.raw("usage").filter(|u| u.first() == Some(&b'{')) {
            if let Some(usage) = super::response::usage_from_raw(u) {
                return Observed::Usage(usage);
            }
        }
        match m.raw("choices") {
            Some(c) if c.len() > 2 && c != b"[]" => Observed::Content,
            _ => Observed::Nothing,
        }
    }

    /// The upstream closed the body: a stream whose choices finished is
    /// complete even without `[DONE]` (some servers omit it), and the
    /// client gets the `[DONE]` its SDK waits for.
    pub fn finish(&self, out: &mut BytesMut) -> bool {
        if self.finish_seen {
            out.extend_from_slice(OPENAI_DONE);
        }
        self.finish_seen
    }
}
