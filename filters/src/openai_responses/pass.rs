//! A same-dialect Responses stream, forwarded event by event: only
//! `response.model` in the lifecycle events is rewritten; usage, the end
//! and errors are read on the way. Delta events, the hot path, are looked
//! at only as far as their top-level members.

use crate::canonical::Observed;
use crate::error::ApiError;
use crate::wire::json_peek;
use crate::wire::sse::{encode_event, SseEvent};
use bytes::BytesMut;
use serde_json::{json, Value};

pub struct PassThrough {
    /// The client's model name as a JSON string, quoted once; `None` when
    /// it equals the upstream's.
    rename_json: Option<Vec<u8>>,
    /// The response id from `response.created`, for a failure we write.
    response_id: Option<String>,
    /// The next `sequence_number` a gateway-written event must carry.
    next_seq: u64,
    done: bool,
}

/// Events that carry the whole response object under `response`.
fn is_lifecycle(name: &str) -> bool {
    matches!(
        name,
        "response.created"
            | "response.in_progress"
            | "response.queued"
            | "response.completed"
            | "response.incomplete"
            | "response.failed"
    )
}

impl PassThrough {
    pub fn new(rename: Option<&str>) -> Self {
        Self {
            rename_json: rename.and_then(|r| serde_json::to_vec(r).ok()),
            response_id: None,
            next_seq: 0,
            done: false,
        }
    }

    pub fn event(&mut self, ev: &SseEvent, out: &mut BytesMut) -> Observed {
        let data = ev.data.trim();
        let m = match json_peek::members(data.as_bytes()) {
            Ok(m) => m,
            Err(e) => return Observed::malformed(e),
        };
        if let Some(seq) = m
            .raw("sequence_number")
            .and_then(|r| std::str::from_utf8(r).ok())
        {
            if let Ok(n) = seq.parse::<u64>() {
                self.next_seq = self.next_seq.max(n.saturating_add(1));
            }
        }
        let peeked;
        let name: &str = if ev.event.is_empty() {
            peeked = m.str("type").unwrap_or_default();
            &peeked
        } else {
            &ev.event
        };
        if name == "response.failed" || name == "error" {
            let v: Value = serde_json::from_str(data).unwrap_or(Value::Null);
            let err = v
                .pointer("/response/error")
                .or_else(|| v.get("error"))
                .filter(|e| e.is_object())
                .unwrap_or(&v);
            return Observed::Error(super::error::from_wire(err));
        }
        if !is_lifecycle(name) {
            encode_event(out, (!name.is_empty()).then_some(name), data.as_bytes());
            return if name.is_empty() {
                Observed::Nothing
            } else {
                Observed::Content
            };
        }
        self.lifecycle(name, &m, data, out)
    }

    /// A lifecycle event: the model renamed inside `response`, usage and
    /// the end read from it.
    fn lifecycle(
        &mut self,
        name: &str,
        m: &json_peek::Members<'_>,
        data: &str,
        out: &mut BytesMut,
    ) -> Observed {
        let resp_raw = m.raw("response").unwrap_or_default();
        let resp = json_peek::members(resp_raw).ok();
        if self.response_id.is_none() {
            self.response_id = resp.as_ref().and_then(|r| r.str("id"));
        }
        let renamed = match (&self.rename_json, &resp) {
            (Some(quoted), Some(r)) => r
                .replace("model", quoted)
                .and_then(|new_resp| m.replace("response", &new_resp)),
            _ => None,
        };
        encode_event(
            out,
            Some(name),
            renamed.as_deref().unwrap_or(data.as_bytes()),
        );
        if name != "response.completed" && name != "response.incomplete" {
            return Observed::Nothing;
        }
        // The end and the usage arrive together; `finish` reports the end.
        self.done = true;
        let usage = resp
            .as_ref()
            .and_then(|r| r.raw("usage"))
            .filter(|u| u.first() == Some(&b'{'))
            .and_then(super::response::usage_from_raw);
        usage.map_or(Observed::Done, Observed::Usage)
    }

    /// The upstream closed the body: complete only after
    /// `response.completed` or `response.incomplete`.
    pub fn finish(&self, _out: &mut BytesMut) -> bool {
        self.done
    }

    /// The id the upstream gave this response (from `response.created`).
    pub fn response_id(&self) -> Option<&str> {
        self.response_id.as_deref()
    }

    /// The client's in-stream failure after a forwarded prefix: a
    /// `response.failed` for the same response, continuing the upstream's
    /// sequence numbers (what Codex and the SDKs expect, rather than a bare
    /// `error` event).
    pub fn fail(&mut self, e: &ApiError, out: &mut BytesMut) {
        let id = self.response_id.clone().unwrap_or_default();
        let v = json!({"type": "response.failed", "sequence_number": self.next_seq,
            "response": {"id": id, "object": "response", "status": "failed", "output": [],
                "error": {"code": super::error::failed_code(e), "message": super::error::failed_message(e)}}});
        self.next_seq += 1;
        encode_event(out, Some("response.failed"), v.to_string().as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canonical::Usage;
    use crate::error::ErrorKind;

    fn ev(name: &str, data: Value) -> SseEvent {
        SseEvent {
            event: name.into(),
            data: data.to_string(),
        }
    }

    fn stream() -> Vec<SseEvent> {
        let resp = |status: &str| {
            json!({"id": "resp_1", "object": "response", "status": status,
            "model": "gpt-up", "output": [], "usage": null})
        };
        let mut done = resp("completed");
        done["usage"] = json!({"input_tokens": 10, "input_tokens_details": {"cached_tokens": 4},
            "output_tokens": 3, "output_tokens_details": {"reasoning_tokens": 1}, "total_tokens": 13});
        vec![
            ev(
                "response.created",
                json!({"type": "response.created", "sequence_number": 0, "response": resp("in_progress")}),
            ),
            ev(
                "response.in_progress",
                json!({"type": "response.in_progress", "sequence_number": 1, "response": resp("in_progress")}),
            ),
            ev(
                "",
                json!({"type": "response.output_text.delta", "sequence_number": 2, "item_id": "msg_1",
                "output_index": 0, "content_index": 0, "delta": "model gpt-up"}),
            ),
            ev(
                "response.completed",
                json!({"type": "response.completed", "sequence_number": 3, "response": done}),
            ),
        ]
    }

    #[test]
    fn renames_lifecycle_models_and_reports_usage_and_the_end() {
        let mut p = PassThrough::new(Some("client"));
        let mut out = BytesMut::new();
        let seen: Vec<Observed> = stream().iter().map(|e| p.event(e, &mut out)).collect();
        assert!(matches!(seen[0], Observed::Nothing));
        assert!(matches!(seen[2], Observed::Content));
        let Observed::Usage(u) = seen[3] else {
            panic!("usage at completion: {:?}", seen[3])
        };
        assert_eq!(
            u,
            Usage {
                input_uncached: 6,
                cache_read: 4,
                output_total: 3,
                reasoning: 1,
                ..Usage::default()
            }
        );
        assert!(p.finish(&mut out));
        let text = String::from_utf8(out.to_vec()).unwrap();
        assert_eq!(text.matches("\"model\":\"client\"").count(), 3);
        assert!(
            text.contains("\"delta\":\"model gpt-up\""),
            "deltas are untouched"
        );
        assert!(!text.contains("\"model\":\"gpt-up\""));
        assert_eq!(text.matches("event: ").count(), 4, "every event is named");
        assert!(text.contains("event: response.output_text.delta\n"));
    }

    #[test]
    fn without_rename_bytes_are_forwarded_as_they_came() {
        let mut p = PassThrough::new(None);
        let mut out = BytesMut::new();
        for e in stream() {
            p.event(&e, &mut out);
        }
        let expected: String = stream()
            .iter()
            .map(|e| {
                let name = json_peek::members(e.data.as_bytes())
                    .unwrap()
                    .str("type")
                    .unwrap();
                format!("event: {name}\ndata: {}\n\n", e.data)
            })
            .collect();
        assert_eq!(String::from_utf8(out.to_vec()).unwrap(), expected);
    }

    #[test]
    fn failures_errors_and_cut_streams() {
        let mut p = PassThrough::new(None);
        let mut out = BytesMut::new();
        let events = stream();
        p.event(&events[0], &mut out);
        p.event(&events[2], &mut out);
        assert!(!p.finish(&mut out), "no completion yet");
        let failed = ev(
            "response.failed",
            json!({"type": "response.failed", "sequence_number": 3,
            "response": {"id": "resp_1", "status": "failed", "error": {"code": "rate_limit_exceeded", "message": "slow"}}}),
        );
        let Observed::Error(e) = p.event(&failed, &mut out) else {
            panic!("an error")
        };
        assert_eq!(e.kind, ErrorKind::RateLimited);
        let error = ev(
            "error",
            json!({"type": "error", "code": "server_error", "message": "boom", "sequence_number": 4}),
        );
        assert!(matches!(p.event(&error, &mut out), Observed::Error(e) if e.message == "boom"));
        assert!(matches!(
            p.event(&ev("", json!(["not an object"])), &mut out),
            Observed::Error(_)
        ));
        let before = out.len();
        p.fail(
            &ApiError::new(ErrorKind::Timeout, "upstream went quiet"),
            &mut out,
        );
        let text = String::from_utf8(out[before..].to_vec()).unwrap();
        assert!(text.starts_with("event: response.failed\ndata: "));
        let v: Value = serde_json::from_str(
            text.trim_end()
                .trim_start_matches("event: response.failed\ndata: "),
        )
        .unwrap();
        assert_eq!(v["sequence_number"], 5);
        assert_eq!(v["response"]["id"], "resp_1");
        assert_eq!(v["response"]["error"]["code"], "server_error");
    }
}
