//! A same-dialect Gemini stream, forwarded chunk by chunk: only
//! `modelVersion` is rewritten; finish reasons, usage and errors are read
//! on the way, from the chunk's top-level members without building a tree.

use crate::canonical::Observed;
use crate::error::ApiError;
use crate::wire::json_peek;
use crate::wire::lenient::IsString;
use crate::wire::sse::{encode_event, SseEvent};
use bytes::BytesMut;
use serde_json::Value;

pub struct PassThrough {
    /// The client's model name as a JSON string, quoted once for every
    /// chunk to reuse; `None` when it equals the upstream's.
    rename_json: Option<Vec<u8>>,
    finish_seen: bool,
    content_seen: bool,
}

/// A candidate, as far as its end is concerned.
#[derive(serde::Deserialize)]
struct FinishOnly {
    #[serde(default, rename = "finishReason")]
    finish_reason: IsString,
}

impl PassThrough {
    pub fn new(rename: Option<&str>) -> Self {
        Self {
            rename_json: rename.and_then(|r| serde_json::to_vec(r).ok()),
            finish_seen: false,
            content_seen: false,
        }
    }

    pub fn event(&mut self, ev: &SseEvent, out: &mut BytesMut) -> Observed {
        let data = ev.data.trim();
        if data.is_empty() {
            return Observed::Nothing;
        }
        let m = match json_peek::members(data.as_bytes()) {
            Ok(m) => m,
            Err(e) => return Observed::malformed(e),
        };
        if m.raw("error").is_some_and(|e| e != b"null") {
            let v: Value = serde_json::from_str(data).unwrap_or(Value::Null);
            return Observed::Error(ApiError::from_stream_payload(&v));
        }
        let renamed = self
            .rename_json
            .as_ref()
            .and_then(|quoted| m.replace("modelVersion", quoted));
        encode_event(out, None, renamed.as_deref().unwrap_or(data.as_bytes()));
        let candidates = m.raw("candidates").filter(|c| c.len() > 2 && *c != b"[]");
        let finished = match candidates {
            Some(c) => {
                data.contains("\"finishReason\"")
                    && serde_json::from_slice::<Vec<FinishOnly>>(c)
                        .is_ok_and(|cs| cs.iter().any(|c| c.finish_reason.0))
            }
            // A prompt blocked before any candidate ends the stream too.
            None => m
                .raw("promptFeedback")
                .is_some_and(|p| memchr::memmem::find(p, b"\"blockReason\"").is_some()),
        };
        self.finish_seen |= finished;
        let usage = m
            .raw("usageMetadata")
            .and_then(super::response::usage_from_raw);
        let content = candidates.is_some() || finished;
        // One observation per chunk, and most chunks carry both content and
        // usage: the first content commits the stream (later chunks restate
        // usage cumulatively), except on the last chunk, whose usage is final.
        match usage {
            Some(u) if self.content_seen || finished || !content => Observed::Usage(u),
            _ if content => {
                self.content_seen = true;
                Observed::Content
            }
            _ => Observed::Nothing,
        }
    }

    /// The upstream closed the body: Gemini has no terminator, so the
    /// stream is complete when a candidate gave its finish reason.
    pub fn finish(&self, _out: &mut BytesMut) -> bool {
        self.finish_seen
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canonical::Usage;

    fn ev(data: &str) -> SseEvent {
        SseEvent {
            event: String::new(),
            data: data.into(),
        }
    }

    #[test]
    fn renames_tracks_usage_and_finish() {
        let mut p = PassThrough::new(Some("client \"x\""));
        let mut out = BytesMut::new();
        let first = r#"{"candidates":[{"content":{"role":"model","parts":[{"text":"Hi"}]},"index":0}],"usageMetadata":{"promptTokenCount":4,"totalTokenCount":4},"modelVersion":"gemini-2.5-flash","responseId":"r"}"#;
        assert!(matches!(p.event(&ev(first), &mut out), Observed::Content));
        assert!(!p.finish(&mut out));
        let last = r#"{"candidates":[{"content":{"role":"model","parts":[{"text":"!"}]},"finishReason":"STOP","index":0}],"usageMetadata":{"promptTokenCount":4,"candidatesTokenCount":2,"thoughtsTokenCount":3,"totalTokenCount":9},"modelVersion":"gemini-2.5-flash","responseId":"r"}"#;
        let Observed::Usage(u) = p.event(&ev(last), &mut out) else {
            panic!("usage expected")
        };
        assert_eq!(
            u,
            Usage {
                input_uncached: 4,
                output_total: 5,
                reasoning: 3,
                ..Usage::default()
            }
        );
        assert!(p.finish(&mut out));
        let text = String::from_utf8(out.to_vec()).unwrap();
        assert_eq!(text.matches(r#""modelVersion":"client \"x\"""#).count(), 2);
        assert!(!text.contains("gemini-2.5-flash"));
        assert!(text.starts_with("data: {") && text.ends_with("}\n\n"));
    }

    #[test]
    fn without_rename_bytes_pass_unchanged() {
        let mut p = PassThrough::new(None);
        let mut out = BytesMut::new();
        let chunk = r#"{"candidates": [{"content": {"parts": [{"text": "é"}]}, "finishReason": "MAX_TOKENS"}], "modelVersion": "m"}"#;
        assert!(matches!(p.event(&ev(chunk), &mut out), Observed::Content));
        assert_eq!(&out[..], format!("data: {chunk}\n\n").as_bytes());
        assert!(p.finish(&mut out));
    }

    #[test]
    fn errors_blocks_and_garbage() {
        let mut p = PassThrough::new(Some("c"));
        let mut out = BytesMut::new();
        let err = r#"{"error":{"code":503,"message":"overloaded","status":"UNAVAILABLE"}}"#;
        let Observed::Error(e) = p.event(&ev(err), &mut out) else {
            panic!("error expected")
        };
        assert_eq!(e.kind, crate::error::ErrorKind::Overloaded);
        assert!(
            out.is_empty(),
            "the caller writes the error in the client's dialect"
        );
        assert!(matches!(
            p.event(&ev("{oops"), &mut out),
            Observed::Error(_)
        ));
        let blocked =
            r#"{"promptFeedback":{"blockReason":"SAFETY"},"usageMetadata":{"promptTokenCount":2}}"#;
        assert!(matches!(
            p.event(&ev(blocked), &mut out),
            Observed::Usage(_)
        ));
        assert!(p.finish(&mut out));
    }
}
