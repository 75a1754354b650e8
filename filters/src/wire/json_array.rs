//! The framing Gemini's REST API streams in when the client did not ask for
//! `alt=sse`: one JSON array, an element per chunk, sent as the chunks come
//! (`[{…}\r\n,\r\n{…}\r\n]`). Stream encoders write SSE; this turns their
//! output into array elements, so each encoder has one output format.

use super::sse::{SseDecoder, SseEvent};
use bytes::BytesMut;

#[derive(Debug, Default)]
pub struct JsonArrayFraming {
    sse: SseDecoder,
    events: Vec<SseEvent>,
    opened: bool,
    closed: bool,
}

impl JsonArrayFraming {
    pub fn new() -> Self {
        Self::default()
    }

    /// `sse`: complete events as an encoder wrote them; each `data`
    /// becomes an element of the array.
    pub fn reframe(&mut self, sse: &[u8], out: &mut BytesMut) {
        if self.closed {
            return;
        }
        self.sse.feed(sse, &mut self.events);
        for ev in self.events.drain(..) {
            if ev.data.is_empty() {
                continue;
            }
            out.extend_from_slice(if self.opened { b"\r\n,\r\n" } else { b"[" });
            self.opened = true;
            out.extend_from_slice(ev.data.as_bytes());
        }
    }

    /// Ends the array (an empty one if no element was sent).
    pub fn close(&mut self, out: &mut BytesMut) {
        if self.closed {
            return;
        }
        self.closed = true;
        out.extend_from_slice(if self.opened { b"\r\n]" } else { b"[]" });
    }

    /// Whitespace between elements is valid JSON: a keep-alive that
    /// parsers skip.
    pub fn keepalive(&self, out: &mut BytesMut) {
        if self.opened && !self.closed {
            out.extend_from_slice(b"\r\n");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sse_events_become_one_array() {
        let mut f = JsonArrayFraming::new();
        let mut out = BytesMut::new();
        f.reframe(b"data: {\"a\":1}\r\n\r\n: comment\n\n", &mut out);
        f.keepalive(&mut out);
        f.reframe(b"data: {\"b\":2}\n\ndata: {\"c\":3}\n\n", &mut out);
        f.close(&mut out);
        f.close(&mut out);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v, serde_json::json!([{"a":1},{"b":2},{"c":3}]));
        let mut empty = JsonArrayFraming::new();
        let mut out = BytesMut::new();
        empty.close(&mut out);
        assert_eq!(&out[..], b"[]");
    }
}
