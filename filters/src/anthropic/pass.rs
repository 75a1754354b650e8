//! A same-dialect Anthropic stream, forwarded event by event: only the
//! model name in `message_start` is rewritten; usage, the end and errors
//! are read on the way.

use crate::canonical::{Observed, Usage};
use crate::error::ApiError;
use crate::wire::json_peek;
use crate::wire::sse::{encode_event, SseEvent};
use bytes::BytesMut;
use serde_json::Value;

pub struct PassThrough {
    /// The client's model name, when it differs from the upstream's.
    rename: Option<String>,
    /// Usage so far: `message_start` brings the input counts, each
    /// `message_delta` the output so far (and may omit the input).
    usage: Usage,
}

impl PassThrough {
    pub fn new(rename: Option<&str>) -> Self {
        Self {
            rename: rename.map(str::to_owned),
            usage: Usage::default(),
        }
    }

    pub fn event(&mut self, ev: &SseEvent, out: &mut BytesMut) -> Observed {
        let peeked;
        let name: &str = if ev.event.is_empty() {
            peeked = json_peek::members(ev.data.as_bytes())
                .ok()
                .and_then(|m| m.str("type"));
            peeked.as_deref().unwrap_or_default()
        } else {
            &ev.event
        };
        match name {
            "message_start" | "message_delta" | "error" => {
                let mut v: Value = match serde_json::from_str(&ev.data) {
                    Ok(v) => v,
                    Err(e) => return Observed::malformed(e),
                };
                if name == "error" {
                    return Observed::Error(ApiError::from_stream_payload(&v));
                }
                let usage = if name == "message_start" {
                    if let (Some(model), Some(slot)) =
                        (&self.rename, v.pointer_mut("/message/model"))
                    {
                        *slot = Value::String(model.clone());
                    }
                    v.pointer("/message/usage")
                } else {
                    v.get("usage")
                }
                .map(|u| super::response::usage_from_wire(u, self.usage));
                if let Some(u) = usage {
                    self.usage = u;
                }
                let data = serde_json::to_vec(&v).unwrap_or_default();
                encode_event(out, Some(name), &data);
                usage.map_or(Observed::Nothing, Observed::Usage)
            }
            "message_stop" => {
                encode_event(out, Some(name), ev.data.as_bytes());
                Observed::Done
            }
            "" => Observed::Nothing,
            _ => {
                encode_event(out, Some(name), ev.data.as_bytes());
                if name.starts_with("content_block") {
                    Observed::Content
                } else {
                    Observed::Nothing
                }
            }
        }
    }

    /// The upstream closed the body without `message_stop`: never complete.
    pub fn finish(&self, _out: &mut BytesMut) -> bool {
        false
    }
}
