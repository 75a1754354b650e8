//! What the request path keeps of a request whose conversation is logged:
//! the client's body and the serving upstream's answer as the shared
//! buffers they already are (`Bytes` clones, no copy, no parsing). The
//! writer decodes them off the request path. A request that is not logged
//! has no `Capture` at all, so the hooks cost one `Option` check.

use bytes::Bytes;
use filters::Dialect;

/// The most of one streamed answer kept (its SSE bytes); past it the log
/// says the answer was cut.
pub const MAX_STREAM_BYTES: usize = 32 * 1024 * 1024;

#[derive(Debug)]
pub struct Capture {
    /// The client's body as it arrived.
    pub request: Bytes,
    pub answer: Answer,
}

/// The serving attempt's answer, in the upstream's dialect.
#[derive(Debug, Default)]
pub enum Answer {
    /// No upstream answered (refused, failed, or the client left first).
    #[default]
    None,
    /// A whole JSON body.
    Body { upstream: Dialect, body: Bytes },
    /// An event stream's reads, in order.
    Stream {
        upstream: Dialect,
        chunks: Vec<Bytes>,
        bytes: usize,
        truncated: bool,
    },
}

impl Capture {
    pub fn new(request: Bytes) -> Self {
        Self {
            request,
            answer: Answer::None,
        }
    }

    /// A served non-streaming answer.
    pub fn body(&mut self, upstream: Dialect, body: Bytes) {
        self.answer = Answer::Body { upstream, body };
    }

    /// A stream attempt begins: whatever an earlier attempt left (one that
    /// failed before its commit point) is dropped.
    pub fn stream_start(&mut self, upstream: Dialect) {
        self.answer = Answer::Stream {
            upstream,
            chunks: Vec::new(),
            bytes: 0,
            truncated: false,
        };
    }

    /// One read of the stream, as it came from the upstream.
    pub fn chunk(&mut self, chunk: &Bytes) {
        if let Answer::Stream {
            chunks,
            bytes,
            truncated,
            ..
        } = &mut self.answer
        {
            if *bytes + chunk.len() > MAX_STREAM_BYTES {
                *truncated = true;
            } else if !*truncated {
                *bytes += chunk.len();
                chunks.push(chunk.clone());
            }
        }
    }

    /// Bytes held, for the queue's bound.
    pub fn size(&self) -> usize {
        self.request.len()
            + match &self.answer {
                Answer::None => 0,
                Answer::Body { body, .. } => body.len(),
                Answer::Stream { bytes, .. } => *bytes,
            }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_attempt_drops_the_last_and_streams_are_capped() {
        let mut c = Capture::new(Bytes::from_static(b"{}"));
        c.stream_start(Dialect::OpenAiChat);
        c.chunk(&Bytes::from_static(b"data: a\n\n"));
        c.stream_start(Dialect::Anthropic);
        c.chunk(&Bytes::from_static(b"data: b\n\n"));
        let Answer::Stream {
            upstream, chunks, ..
        } = &c.answer
        else {
            panic!("a stream")
        };
        assert_eq!(*upstream, Dialect::Anthropic);
        assert_eq!(chunks.len(), 1);
        assert_eq!(c.size(), 2 + 9);

        let big = Bytes::from(vec![b'x'; MAX_STREAM_BYTES]);
        c.chunk(&big);
        // Once cut, later small reads are not kept either: the answer
        // would have a hole in it.
        c.chunk(&Bytes::from_static(b"data: c\n\n"));
        let Answer::Stream {
            chunks, truncated, ..
        } = &c.answer
        else {
            panic!("a stream")
        };
        assert!(*truncated);
        assert_eq!(chunks.len(), 1);

        c.body(Dialect::OpenAiChat, Bytes::from_static(b"{\"a\":1}"));
        assert_eq!(c.size(), 2 + 7);
    }
}
