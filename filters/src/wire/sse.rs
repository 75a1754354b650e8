//! Server-sent events: a lenient, byte-fed decoder for upstream streams and a
//! strict encoder for what we send to clients. Upstreams frame loosely (any
//! line ending, comments, `data:` without a space), so the decoder accepts
//! it all; client SDKs break on loose framing, so the encoder sends only
//! single-line JSON in `data: ` lines, with `event:` only where the dialect
//! needs it.
//!
//! The decoder never assumes reads align with events, lines or even UTF-8
//! characters: bytes are buffered until a blank line ends an event, and only
//! complete events are decoded as text.

use bytes::{BufMut, Bytes, BytesMut};

/// One dispatched SSE event. `event` is empty when the stream sent no
/// `event:` line; `data` is the `data:` lines joined with `\n`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SseEvent {
    pub event: String,
    pub data: String,
}

/// Incremental SSE decoder: `feed` bytes as they arrive, `finish` at EOF.
/// A line or event over the size limit stops it (`overflowed`): an
/// upstream that never ends a line must not grow a buffer without bound.
#[derive(Debug)]
pub struct SseDecoder {
    limit: usize,
    overflowed: bool,
    buf: BytesMut,
    /// Bytes of `buf` already scanned for a line end (avoids rescanning).
    scanned: usize,
    /// The previous read ended in `\r`: a `\n` starting the next read
    /// belongs to the same terminator.
    pending_cr: bool,
    started: bool,
    event: String,
    data: String,
    has_data: bool,
}

/// Appends `bytes`, replacing invalid UTF-8 (the fast validator first:
/// `from_utf8_lossy` walks byte by byte even when all is well).
fn push_lossy(to: &mut String, bytes: &[u8]) {
    match std::str::from_utf8(bytes) {
        Ok(s) => to.push_str(s),
        Err(_) => to.push_str(&String::from_utf8_lossy(bytes)),
    }
}

/// The default bound on one line or event: far above any real event (a
/// large tool call's arguments), far below a memory problem.
pub const DEFAULT_MAX_EVENT_BYTES: usize = 16 * 1024 * 1024;

impl Default for SseDecoder {
    fn default() -> Self {
        Self::with_limit(DEFAULT_MAX_EVENT_BYTES)
    }
}

impl SseDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// A decoder that refuses lines and events over `limit` bytes.
    pub fn with_limit(limit: usize) -> Self {
        Self {
            limit,
            overflowed: false,
            buf: BytesMut::new(),
            scanned: 0,
            pending_cr: false,
            started: false,
            event: String::new(),
            data: String::new(),
            has_data: false,
        }
    }

    /// A line or event went over the limit; nothing more is decoded.
    pub fn overflowed(&self) -> bool {
        self.overflowed
    }

    /// Feeds one read; pushes every event completed by it onto `out`.
    pub fn feed(&mut self, chunk: &[u8], out: &mut Vec<SseEvent>) {
        // An empty read must not forget a `\r` that may pair with a `\n`.
        if self.overflowed || chunk.is_empty() {
            return;
        }
        let mut chunk = chunk;
        if self.pending_cr {
            self.pending_cr = false;
            if let Some(rest) = chunk.strip_prefix(b"\n") {
                chunk = rest;
            }
        }
        self.buf.extend_from_slice(chunk);
        loop {
            let Some(rel) = memchr::memchr2(b'\n', b'\r', &self.buf[self.scanned..]) else {
                self.scanned = self.buf.len();
                if self.buf.len() > self.limit {
                    self.overflow();
                }
                return;
            };
            let end = self.scanned + rel;
            let term_len = if self.buf[end] == b'\r' {
                match self.buf.get(end + 1) {
                    Some(b'\n') => 2,
                    Some(_) => 1,
                    None => {
                        // A lone `\r` at the end of this read: the line is
                        // complete, but a `\n` may open the next read.
                        self.pending_cr = true;
                        1
                    }
                }
            } else {
                1
            };
            let line = self.buf.split_to(end + term_len).freeze();
            self.scanned = 0;
            self.line(&line[..end], out);
            if self.data.len() > self.limit {
                self.overflow();
                return;
            }
        }
    }

    fn overflow(&mut self) {
        self.overflowed = true;
        self.buf = BytesMut::new();
        self.data = String::new();
        self.scanned = 0;
    }

    /// Ends the stream: an event whose blank line never came is still
    /// dispatched (some upstreams omit the final terminator).
    pub fn finish(&mut self, out: &mut Vec<SseEvent>) {
        if self.overflowed {
            return;
        }
        if !self.buf.is_empty() {
            let line = self.buf.split().freeze();
            self.line(&line, out);
        }
        self.pending_cr = false;
        self.dispatch(out);
    }

    fn line(&mut self, mut line: &[u8], out: &mut Vec<SseEvent>) {
        if !self.started {
            self.started = true;
            line = line.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(line);
        }
        if line.is_empty() {
            self.dispatch(out);
            return;
        }
        if line[0] == b':' {
            return; // comment / keep-alive
        }
        let (field, value) = match line.iter().position(|&b| b == b':') {
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (line, &b""[..]),
        };
        match field {
            b"data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                push_lossy(&mut self.data, value);
                self.has_data = true;
            }
            b"event" => {
                self.event.clear();
                push_lossy(&mut self.event, value);
            }
            _ => {} // id:, retry:, unknown fields
        }
    }

    fn dispatch(&mut self, out: &mut Vec<SseEvent>) {
        if self.has_data {
            out.push(SseEvent {
                event: std::mem::take(&mut self.event),
                data: std::mem::take(&mut self.data),
            });
        } else {
            self.event.clear();
        }
        self.has_data = false;
    }
}

/// Appends one event, framed strictly: an optional `event:` line, one
/// `data:` line (the payload must be single-line JSON), a blank line.
pub fn encode_event(out: &mut BytesMut, event: Option<&str>, data: &[u8]) {
    if let Some(name) = event {
        out.reserve(name.len() + data.len() + 16);
        out.put_slice(b"event: ");
        out.put_slice(name.as_bytes());
        out.put_slice(b"\n");
    } else {
        out.reserve(data.len() + 8);
    }
    out.put_slice(b"data: ");
    out.put_slice(data);
    out.put_slice(b"\n\n");
}

/// `data: [DONE]`, the OpenAI Chat terminator.
pub const OPENAI_DONE: &[u8] = b"data: [DONE]\n\n";

/// Convenience for tests and one-off frames.
pub fn event_bytes(event: Option<&str>, data: &str) -> Bytes {
    let mut b = BytesMut::new();
    encode_event(&mut b, event, data.as_bytes());
    b.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_or_event_over_the_limit_stops_the_decoder() {
        let mut d = SseDecoder::with_limit(64);
        let mut out = Vec::new();
        d.feed(b"data: {\"a\":1}\n\n", &mut out);
        assert_eq!(out.len(), 1);
        for _ in 0..10 {
            d.feed(&[b'x'; 10], &mut out);
        }
        assert!(d.overflowed(), "a line that never ends");
        d.feed(b"\n\ndata: more\n\n", &mut out);
        d.finish(&mut out);
        assert_eq!(out.len(), 1, "nothing after the overflow");

        let mut d = SseDecoder::with_limit(64);
        for _ in 0..10 {
            d.feed(b"data: 0123456789\n", &mut out);
        }
        assert!(d.overflowed(), "an event of many short lines");
    }

    fn decode_in_pieces(input: &[u8], piece: usize) -> Vec<SseEvent> {
        let mut d = SseDecoder::new();
        let mut out = Vec::new();
        for c in input.chunks(piece) {
            d.feed(c, &mut out);
        }
        d.finish(&mut out);
        out
    }

    fn ev(event: &str, data: &str) -> SseEvent {
        SseEvent {
            event: event.into(),
            data: data.into(),
        }
    }

    #[test]
    fn decodes_identically_whatever_the_read_size() {
        let input = "event: message_start\ndata: {\"a\":\"é😀\"}\n\n: keep-alive\n\ndata:{\"b\":1}\r\n\r\nevent: x\r\ndata: line1\rdata: line2\r\r";
        let want = vec![
            ev("message_start", "{\"a\":\"é😀\"}"),
            ev("", "{\"b\":1}"),
            ev("x", "line1\nline2"),
        ];
        for piece in 1..=input.len() {
            assert_eq!(
                decode_in_pieces(input.as_bytes(), piece),
                want,
                "piece={piece}"
            );
        }
    }

    #[test]
    fn crlf_split_across_reads_is_one_terminator() {
        let mut d = SseDecoder::new();
        let mut out = Vec::new();
        d.feed(b"data: 1\r", &mut out);
        d.feed(b"\n\r", &mut out);
        d.feed(b"\ndata: 2\r\n\r\n", &mut out);
        assert_eq!(out, vec![ev("", "1"), ev("", "2")]);
    }

    #[test]
    fn bom_comments_ids_and_missing_final_blank_line() {
        let input = b"\xEF\xBB\xBF: OPENROUTER PROCESSING\n\nid: 7\nretry: 10\ndata: {\"x\":1}";
        assert_eq!(decode_in_pieces(input, 3), vec![ev("", "{\"x\":1}")]);
    }

    #[test]
    fn event_without_data_is_not_dispatched() {
        assert_eq!(
            decode_in_pieces(b"event: ping\n\ndata: a\n\n", 4),
            vec![ev("", "a")]
        );
    }

    #[test]
    fn encoder_frames_strictly() {
        assert_eq!(
            &event_bytes(Some("ping"), "{\"type\":\"ping\"}")[..],
            b"event: ping\ndata: {\"type\":\"ping\"}\n\n"
        );
        assert_eq!(&event_bytes(None, "{}")[..], b"data: {}\n\n");
    }
}
