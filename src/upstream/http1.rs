//! Reading an upstream's HTTP/1.1 response: the head (status, the headers
//! the gateway uses, body framing, keep-alive) and the body, decoded from
//! `Content-Length`, `chunked` or close-delimited framing.
//!
//! Our own rather than Pingora's client session for one measured reason:
//! Pingora gives every upstream response a 64 KiB body buffer, and with
//! thousands of slow streams held open (the many-developers Claude Code
//! case) those buffers were most of the gateway's memory. Here a stream
//! holds only what has arrived and not yet been handed on, in a buffer
//! that grows in small steps. The framing logic is sans-IO (`BodyDecoder`)
//! and tested on its own; `Response` adds the reads.

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};

/// Most response headers accepted (API gateways and CDNs add a few dozen).
const MAX_HEADERS: usize = 128;
/// Largest response head accepted.
const MAX_HEAD: usize = 64 * 1024;
/// Room made before each read of a head, or of a body of unknown length
/// (SSE events are small; a held stream keeps only this much).
const READ_STEP: usize = 4 * 1024;
/// Largest single read of a body whose length is known.
const READ_MAX: usize = 64 * 1024;
/// Largest trailer section accepted after the last chunk.
const MAX_TRAILERS: usize = 16 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub status: u16,
    pub content_type: String,
    pub retry_after: Option<String>,
    pub keep_alive: bool,
    framing: Framing,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Length(u64),
    Chunked,
    /// Until the upstream closes the connection.
    Close,
}

/// Parses a complete response head from the front of `buf`, consuming it.
/// `Ok(None)`: more bytes are needed. Informational (1xx) heads are skipped.
pub fn parse_head(buf: &mut BytesMut) -> Result<Option<Head>, String> {
    loop {
        // Headers past this many are an error, not silently dropped.
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut resp = httparse::Response::new(&mut headers);
        let len = match resp.parse(buf) {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD => {
                return Err(format!("response head over {MAX_HEAD} bytes"))
            }
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(e) => return Err(format!("invalid response head: {e}")),
        };
        let status = resp.code.unwrap_or(0);
        if (100..200).contains(&status) {
            buf.advance(len);
            continue;
        }
        // One pass over the headers; only the ones the gateway acts on.
        let (mut close, mut keep_alive_token, mut chunked_last) = (false, false, None);
        let (mut length, mut content_type, mut retry_after) = (None::<&[u8]>, None, None);
        for h in resp.headers.iter() {
            let name = h.name.as_bytes();
            let value = h.value.trim_ascii();
            if name.eq_ignore_ascii_case(b"connection") {
                for token in value.split(|&b| b == b',') {
                    let token = token.trim_ascii();
                    close |= token.eq_ignore_ascii_case(b"close");
                    keep_alive_token |= token.eq_ignore_ascii_case(b"keep-alive");
                }
            } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
                // RFC 9112 §6.3: chunked must be the final coding, else the
                // body runs to the close.
                if let Some(last) = value.rsplit(|&b| b == b',').next() {
                    chunked_last = Some(last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
                }
            } else if name.eq_ignore_ascii_case(b"content-length") {
                if length.is_some_and(|l| l != value) {
                    return Err("conflicting content-length headers".into());
                }
                length = Some(value);
            } else if name.eq_ignore_ascii_case(b"content-type") {
                content_type.get_or_insert(value);
            } else if name.eq_ignore_ascii_case(b"retry-after") {
                retry_after.get_or_insert(value);
            }
        }
        let framing = if status == 204 || status == 304 {
            Framing::Length(0)
        } else {
            match (chunked_last, length) {
                // Content-Length is ignored beside Transfer-Encoding.
                (Some(true), _) => Framing::Chunked,
                (Some(false), _) | (None, None) => Framing::Close,
                (None, Some(l)) => Framing::Length(
                    std::str::from_utf8(l)
                        .ok()
                        .and_then(|l| l.parse().ok())
                        .ok_or_else(|| {
                            format!("invalid content-length {:?}", String::from_utf8_lossy(l))
                        })?,
                ),
            }
        };
        let keep_alive = framing != Framing::Close
            && if resp.version == Some(1) {
                !close
            } else {
                keep_alive_token && !close
            };
        let text = |v: Option<&[u8]>| v.map(|v| String::from_utf8_lossy(v).into_owned());
        let head = Head {
            status,
            content_type: text(content_type).unwrap_or_default(),
            retry_after: text(retry_after),
            keep_alive,
            framing,
        };
        buf.advance(len);
        return Ok(Some(head));
    }
}

/// Where a body decoder stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Body bytes still expected (`Content-Length` or inside a chunk).
    Remaining(u64),
    /// Expecting a chunk-size line.
    ChunkSize,
    /// Expecting the CRLF that ends a chunk's data.
    ChunkEnd,
    /// After the last (zero) chunk: optional trailers, then an empty line.
    Trailers,
    /// Everything until the connection closes.
    UntilClose,
    Done,
}

/// Sans-IO body decoding: takes framed bytes from the front of a buffer and
/// returns body bytes.
#[derive(Debug)]
pub struct BodyDecoder {
    state: State,
    chunked: bool,
}

impl BodyDecoder {
    fn new(framing: Framing) -> Self {
        let (state, chunked) = match framing {
            Framing::Length(0) => (State::Done, false),
            Framing::Length(n) => (State::Remaining(n), false),
            Framing::Chunked => (State::ChunkSize, true),
            Framing::Close => (State::UntilClose, false),
        };
        Self { state, chunked }
    }

    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// The next piece of body from the front of `buf`; `Ok(None)` when
    /// `buf` holds no complete piece (read more) or the body is done.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Bytes>, String> {
        loop {
            match self.state {
                State::Done => return Ok(None),
                State::UntilClose => {
                    if buf.is_empty() {
                        return Ok(None);
                    }
                    return Ok(Some(buf.split().freeze()));
                }
                State::Remaining(n) => {
                    if buf.is_empty() {
                        return Ok(None);
                    }
                    let take = usize::try_from(n).unwrap_or(usize::MAX).min(buf.len());
                    let left = n - take as u64;
                    self.state = match (left, self.chunked) {
                        (0, true) => State::ChunkEnd,
                        (0, false) => State::Done,
                        (left, _) => State::Remaining(left),
                    };
                    return Ok(Some(buf.split_to(take).freeze()));
                }
                State::ChunkSize => match httparse::parse_chunk_size(buf) {
                    Ok(httparse::Status::Complete((len, 0))) => {
                        buf.advance(len);
                        self.state = State::Trailers;
                    }
                    Ok(httparse::Status::Complete((len, size))) => {
                        buf.advance(len);
                        self.state = State::Remaining(size);
                    }
                    Ok(httparse::Status::Partial) if buf.len() > 1024 => {
                        return Err("chunk-size line too long".into())
                    }
                    Ok(httparse::Status::Partial) => return Ok(None),
                    Err(_) => return Err("invalid chunk size".into()),
                },
                State::ChunkEnd => {
                    if buf.len() < 2 {
                        return Ok(None);
                    }
                    if &buf[..2] != b"\r\n" {
                        return Err("chunk data not followed by CRLF".into());
                    }
                    buf.advance(2);
                    self.state = State::ChunkSize;
                }
                State::Trailers => {
                    if buf.starts_with(b"\r\n") {
                        buf.advance(2);
                        self.state = State::Done;
                    } else if let Some(end) = memchr::memmem::find(buf, b"\r\n\r\n") {
                        buf.advance(end + 4);
                        self.state = State::Done;
                    } else if buf.len() > MAX_TRAILERS {
                        return Err("trailers too long".into());
                    } else {
                        return Ok(None);
                    }
                }
            }
        }
    }
}

/// A response head that could not be read.
#[derive(Debug)]
pub struct HeadError {
    /// Nothing of a response arrived: the upstream closed or reset the
    /// connection without answering.
    pub silent: bool,
    pub message: String,
}

impl std::fmt::Display for HeadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// One response being read from `io`.
pub struct Response<S> {
    io: S,
    buf: BytesMut,
    pub head: Head,
    body: BodyDecoder,
}

impl<S: AsyncRead + Unpin> Response<S> {
    /// Reads the head (skipping 1xx). An error says whether any byte of a
    /// response had arrived (`HeadError::silent` when none had).
    pub async fn read_head(mut io: S) -> Result<Self, HeadError> {
        let mut buf = BytesMut::new();
        loop {
            let parsed = parse_head(&mut buf).map_err(|message| HeadError {
                silent: false,
                message,
            })?;
            if let Some(head) = parsed {
                let body = BodyDecoder::new(head.framing);
                return Ok(Self {
                    io,
                    buf,
                    head,
                    body,
                });
            }
            buf.reserve(READ_STEP);
            let silent = buf.is_empty();
            let n = io.read_buf(&mut buf).await.map_err(|e| HeadError {
                silent,
                message: e.to_string(),
            })?;
            if n == 0 {
                return Err(HeadError {
                    silent,
                    message: if silent {
                        "connection closed before a response".into()
                    } else {
                        "connection closed inside the response head".into()
                    },
                });
            }
        }
    }

    /// The body as it arrives: everything decodable from what has been
    /// read (a burst of chunks is one piece, so one write to the client);
    /// `None` at its end.
    pub async fn read_body(&mut self) -> Result<Option<Bytes>, String> {
        loop {
            if let Some(first) = self.body.decode(&mut self.buf)? {
                let Some(second) = self.body.decode(&mut self.buf)? else {
                    return Ok(Some(first));
                };
                let mut burst =
                    BytesMut::with_capacity(first.len() + second.len() + self.buf.len());
                burst.extend_from_slice(&first);
                burst.extend_from_slice(&second);
                while let Some(more) = self.body.decode(&mut self.buf)? {
                    burst.extend_from_slice(&more);
                }
                return Ok(Some(burst.freeze()));
            }
            if self.body.is_done() {
                return Ok(None);
            }
            let room = match self.body.state {
                State::Remaining(n) if !self.body.chunked => usize::try_from(n)
                    .unwrap_or(READ_MAX)
                    .clamp(READ_STEP, READ_MAX),
                _ => READ_STEP,
            };
            self.buf.reserve(room);
            let n = self
                .io
                .read_buf(&mut self.buf)
                .await
                .map_err(|e| e.to_string())?;
            if n == 0 {
                if self.body.state == State::UntilClose {
                    self.body.state = State::Done;
                    return Ok(None);
                }
                return Err("connection closed inside the response body".into());
            }
        }
    }

    /// The connection, when the response was read to its exact end and
    /// the upstream keeps it open.
    pub fn into_reusable(self) -> Option<S> {
        (self.head.keep_alive && self.body.is_done() && self.buf.is_empty()).then_some(self.io)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    /// Serves `data` at most `step` bytes per read.
    struct Trickle {
        data: Vec<u8>,
        at: usize,
        step: usize,
    }

    impl AsyncRead for Trickle {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            out: &mut tokio::io::ReadBuf<'_>,
        ) -> Poll<std::io::Result<()>> {
            let end = (self.at + self.step)
                .min(self.data.len())
                .min(self.at + out.remaining());
            let piece = self.data[self.at..end].to_vec();
            out.put_slice(&piece);
            self.at = end;
            Poll::Ready(Ok(()))
        }
    }

    async fn read_all(raw: &[u8], step: usize) -> Result<(Head, Vec<u8>, bool), String> {
        let io = Trickle {
            data: raw.to_vec(),
            at: 0,
            step,
        };
        let mut r = Response::read_head(io).await.map_err(|e| e.message)?;
        let mut body = Vec::new();
        while let Some(piece) = r.read_body().await? {
            body.extend_from_slice(&piece);
        }
        let head = r.head.clone();
        Ok((head, body, r.into_reusable().is_some()))
    }

    #[tokio::test]
    async fn content_length_bodies_at_every_read_size() {
        let raw = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{\"a\":\"bcd\"}";
        for step in [1, 2, 7, 64, 4096] {
            let (head, body, reusable) = read_all(raw, step).await.unwrap();
            assert_eq!(head.status, 200);
            assert_eq!(head.content_type, "application/json");
            assert_eq!(body, b"{\"a\":\"bcd\"}", "step {step}");
            assert!(reusable);
        }
    }

    #[tokio::test]
    async fn chunked_bodies_with_extensions_and_trailers() {
        let raw = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-length: 3\r\n\r\n\
            5;ext=1\r\nhello\r\n7\r\n, world\r\n0\r\nx-trailer: yes\r\n\r\n";
        for step in [1, 3, 5, 4096] {
            let (_, body, reusable) = read_all(raw, step).await.unwrap();
            assert_eq!(body, b"hello, world", "step {step}");
            assert!(reusable, "step {step}");
        }
        let plain_end =
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n";
        assert_eq!(read_all(plain_end, 1).await.unwrap().1, b"ok");
    }

    #[tokio::test]
    async fn a_burst_of_chunks_is_one_piece() {
        let raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
            3\r\nab\n\r\n3\r\ncd\n\r\n3\r\nef\n\r\n0\r\n\r\n";
        let io = Trickle {
            data: raw.to_vec(),
            at: 0,
            step: 4096,
        };
        let mut r = Response::read_head(io).await.unwrap();
        assert_eq!(r.read_body().await.unwrap().unwrap(), &b"ab\ncd\nef\n"[..]);
        assert_eq!(r.read_body().await.unwrap(), None);
        assert!(r.into_reusable().is_some());
    }

    #[tokio::test]
    async fn a_head_with_many_headers_parses_and_too_many_is_an_error() {
        let head = |n: usize| {
            let mut raw = String::from("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n");
            for i in 0..n {
                raw.push_str(&format!("x-cdn-{i}: v\r\n"));
            }
            raw + "\r\nok"
        };
        assert_eq!(read_all(head(100).as_bytes(), 512).await.unwrap().1, b"ok");
        assert!(read_all(head(200).as_bytes(), 512).await.is_err());
    }

    #[tokio::test]
    async fn informational_heads_are_skipped() {
        let raw = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 429 Too Many Requests\r\nretry-after: 7\r\ncontent-length: 2\r\n\r\n{}";
        let (head, body, _) = read_all(raw, 4).await.unwrap();
        assert_eq!(head.status, 429);
        assert_eq!(head.retry_after.as_deref(), Some("7"));
        assert_eq!(body, b"{}");
    }

    #[tokio::test]
    async fn close_delimited_and_connection_close_are_not_reused() {
        let raw = b"HTTP/1.1 200 OK\r\n\r\nuntil the end";
        let (_, body, reusable) = read_all(raw, 3).await.unwrap();
        assert_eq!(body, b"until the end");
        assert!(!reusable);
        let raw = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok";
        assert!(!read_all(raw, 64).await.unwrap().2);
        let raw = b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok";
        assert!(!read_all(raw, 64).await.unwrap().2);
        let raw = b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok";
        assert!(read_all(raw, 64).await.unwrap().2);
        let raw = b"HTTP/1.1 204 No Content\r\n\r\n";
        let (head, body, reusable) = read_all(raw, 64).await.unwrap();
        assert_eq!((head.status, body.len(), reusable), (204, 0, true));
    }

    #[tokio::test]
    async fn bytes_past_the_body_make_the_connection_unusable() {
        let raw = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA";
        let (_, body, reusable) = read_all(raw, 4096).await.unwrap();
        assert_eq!(body, b"ok");
        assert!(!reusable);
    }

    #[tokio::test]
    async fn broken_responses_are_errors_not_bodies() {
        let cases: [&[u8]; 7] = [
            b"",
            b"HTTP/1.1 200 OK\r\nContent-Le",
            b"NOT HTTP\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nokXX0\r\n\r\n",
        ];
        for raw in cases {
            assert!(
                read_all(raw, 3).await.is_err(),
                "{:?}",
                String::from_utf8_lossy(raw)
            );
        }
    }

    #[tokio::test]
    async fn a_silent_close_is_told_apart_from_a_broken_head() {
        let silent = |raw: &'static [u8]| async move {
            let io = Trickle {
                data: raw.to_vec(),
                at: 0,
                step: 4,
            };
            Response::read_head(io).await.err().map(|e| e.silent)
        };
        assert_eq!(silent(b"").await, Some(true));
        assert_eq!(silent(b"HTTP/1.1 200").await, Some(false));
        assert_eq!(silent(b"garbage\r\n\r\n").await, Some(false));
    }

    // ------------------------------------------------ property tests
    // `PROPTEST_CASES` overrides each property's case count (`make fuzz`).

    use proptest::prelude::*;

    fn prop_config(default_cases: u32) -> ProptestConfig {
        let cases = std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default_cases);
        ProptestConfig {
            cases,
            ..ProptestConfig::default()
        }
    }

    /// A well-formed response and what reading it must give.
    #[derive(Debug, Clone)]
    struct Sample {
        raw: Vec<u8>,
        head: Head,
        body: Vec<u8>,
    }

    #[derive(Debug, Clone)]
    enum Frame {
        Length,
        /// Chunk sizes (cycled over the body), extensions, trailers.
        Chunked(Vec<usize>, bool, bool),
        Close,
    }

    fn frame() -> impl Strategy<Value = Frame> {
        prop_oneof![
            2 => Just(Frame::Length),
            3 => (proptest::collection::vec(1usize..40, 1..6), any::<bool>(), any::<bool>())
                .prop_map(|(sizes, ext, trailers)| Frame::Chunked(sizes, ext, trailers)),
            1 => Just(Frame::Close),
        ]
    }

    /// The choices behind one generated response.
    #[derive(Debug, Clone)]
    struct Spec {
        informational: usize,
        http10: bool,
        status: u16,
        content_type: Option<String>,
        retry_after: Option<String>,
        connection: &'static str,
        extra: Vec<(String, String)>,
        frame: Frame,
        body: Vec<u8>,
        upper_hex: bool,
    }

    fn sample() -> impl Strategy<Value = Sample> {
        let status = prop_oneof![
            4 => Just(200u16),
            4 => proptest::sample::select(&[201u16, 204, 304, 400, 404, 429, 500, 503][..]),
            1 => 200u16..600,
        ];
        let connection = proptest::sample::select(
            &[
                "",
                "close",
                "keep-alive",
                "Keep-Alive, Upgrade",
                "upgrade, close",
            ][..],
        );
        let extra =
            proptest::collection::vec(("x-[a-z0-9-]{1,10}", "[!-~]([ -~]{0,20}[!-~])?"), 0..4);
        (
            (0usize..3, proptest::bool::weighted(0.2), status),
            (
                proptest::option::of("[a-z]{1,8}/[a-z+.-]{1,12}(; ?charset=utf-8)?"),
                proptest::option::of("[0-9]{1,5}"),
                connection,
                extra,
            ),
            (
                frame(),
                proptest::collection::vec(any::<u8>(), 0..200),
                any::<bool>(),
            ),
        )
            .prop_map(
                |(
                    (informational, http10, status),
                    (content_type, retry_after, connection, extra),
                    (frame, body, upper_hex),
                )| {
                    build(Spec {
                        informational,
                        http10,
                        status,
                        content_type,
                        retry_after,
                        connection,
                        extra,
                        frame,
                        body,
                        upper_hex,
                    })
                },
            )
    }

    fn build(spec: Spec) -> Sample {
        let Spec {
            informational,
            http10,
            status,
            content_type,
            retry_after,
            connection,
            extra,
            frame,
            body,
            upper_hex,
        } = spec;
        let mut raw = Vec::new();
        for i in 0..informational {
            if i % 2 == 0 {
                raw.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
            } else {
                raw.extend_from_slice(
                    b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n",
                );
            }
        }
        let version = if http10 { "1.0" } else { "1.1" };
        raw.extend_from_slice(format!("HTTP/{version} {status} Whatever\r\n").as_bytes());
        if let Some(ct) = &content_type {
            raw.extend_from_slice(format!("Content-Type: {ct}\r\n").as_bytes());
        }
        if let Some(ra) = &retry_after {
            raw.extend_from_slice(format!("retry-after:{ra}\r\n").as_bytes());
        }
        if !connection.is_empty() {
            raw.extend_from_slice(format!("connection: {connection}\r\n").as_bytes());
        }
        for (name, value) in &extra {
            raw.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
        }
        let bodiless = status == 204 || status == 304;
        let body = if bodiless { Vec::new() } else { body };
        let framing = match (&frame, bodiless) {
            (_, true) => Framing::Length(0),
            (Frame::Length, _) => Framing::Length(body.len() as u64),
            (Frame::Chunked(..), _) => Framing::Chunked,
            (Frame::Close, _) => Framing::Close,
        };
        match &frame {
            Frame::Length => {
                raw.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes())
            }
            Frame::Chunked(..) => raw.extend_from_slice(b"Transfer-Encoding: chunked\r\n"),
            Frame::Close => {}
        }
        raw.extend_from_slice(b"\r\n");
        if !bodiless {
            match &frame {
                Frame::Chunked(sizes, ext, trailers) => {
                    let mut at = 0;
                    for size in sizes.iter().cycle() {
                        if at == body.len() {
                            break;
                        }
                        let n = (*size).min(body.len() - at);
                        let line = if upper_hex {
                            format!("{n:X}")
                        } else {
                            format!("{n:x}")
                        };
                        raw.extend_from_slice(line.as_bytes());
                        if *ext {
                            raw.extend_from_slice(b";name=value");
                        }
                        raw.extend_from_slice(b"\r\n");
                        raw.extend_from_slice(&body[at..at + n]);
                        raw.extend_from_slice(b"\r\n");
                        at += n;
                    }
                    raw.extend_from_slice(b"0\r\n");
                    if *trailers {
                        raw.extend_from_slice(b"x-checksum: abc\r\nx-more: 1\r\n");
                    }
                    raw.extend_from_slice(b"\r\n");
                }
                _ => raw.extend_from_slice(&body),
            }
        }
        let closes = connection
            .split(',')
            .any(|t| t.trim().eq_ignore_ascii_case("close"));
        let keeps = connection
            .split(',')
            .any(|t| t.trim().eq_ignore_ascii_case("keep-alive"));
        let keep_alive = framing != Framing::Close && !closes && (!http10 || keeps);
        let head = Head {
            status,
            content_type: content_type.unwrap_or_default(),
            retry_after,
            keep_alive,
            framing,
        };
        Sample { raw, head, body }
    }

    /// `raw` cut before each of `cuts` (indices into it, any order).
    fn pieces<'a>(raw: &'a [u8], cuts: &[prop::sample::Index]) -> Vec<&'a [u8]> {
        let mut at: Vec<usize> = cuts.iter().map(|c| c.index(raw.len() + 1)).collect();
        at.sort_unstable();
        at.dedup();
        let mut out = Vec::new();
        let mut start = 0;
        for cut in at.into_iter().chain([raw.len()]) {
            if cut > start {
                out.push(&raw[start..cut]);
                start = cut;
            }
        }
        out
    }

    /// What the sans-IO reader makes of `pieces` arriving one by one: the
    /// head, the body so far, whether the body ended, bytes left over.
    type Decoded = (Option<Head>, Vec<u8>, bool, usize);

    fn decode_pieces(pieces: &[&[u8]]) -> Result<Decoded, String> {
        let mut buf = BytesMut::new();
        let mut head = None;
        let mut decoder = None;
        let mut body = Vec::new();
        for piece in pieces {
            buf.extend_from_slice(piece);
            if head.is_none() {
                if let Some(h) = parse_head(&mut buf)? {
                    decoder = Some(BodyDecoder::new(h.framing));
                    head = Some(h);
                }
            }
            if let Some(d) = &mut decoder {
                while let Some(b) = d.decode(&mut buf)? {
                    if b.is_empty() {
                        return Err("an empty piece of body".into());
                    }
                    body.extend_from_slice(&b);
                }
            }
        }
        let done = decoder.as_ref().is_some_and(BodyDecoder::is_done);
        Ok((head, body, done, buf.len()))
    }

    /// Arbitrary bytes, bytes after a plausible head, or a valid response
    /// with a few bytes changed: none may panic the reader.
    fn hostile() -> impl Strategy<Value = Vec<u8>> {
        let head_ish = proptest::collection::vec(
            prop_oneof![
                Just(&b"\r\n"[..]),
                Just(&b"Content-Length: "[..]),
                Just(&b"Transfer-Encoding: chunked"[..]),
                Just(&b"Transfer-Encoding: gzip, chunked"[..]),
                Just(&b"Connection: close"[..]),
                Just(&b"HTTP/1.1 100 Continue\r\n\r\n"[..]),
                Just(&b"18446744073709551616"[..]),
                Just(&b"ffffffffffffffff"[..]),
                Just(&b"0"[..]),
                Just(&b"5;x"[..]),
                Just(&b": "[..]),
                Just(&b"a"[..]),
                Just(&b"\xff"[..]),
            ],
            0..24,
        )
        .prop_map(|parts| [&b"HTTP/1.1 200 OK\r\n"[..], &parts.concat()].concat());
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..300),
            head_ish,
            (
                sample(),
                proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4)
            )
                .prop_map(|(s, edits)| {
                    let mut raw = s.raw;
                    for (at, b) in edits {
                        let i = at.index(raw.len());
                        raw[i] = b;
                    }
                    raw
                }),
        ]
    }

    proptest! {
        #![proptest_config(prop_config(1000))]

        #[test]
        fn prop_a_response_cut_anywhere_reads_the_same(
            s in sample(),
            cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..30),
        ) {
            let whole = decode_pieces(&[&s.raw]).map_err(TestCaseError::fail)?;
            let cut = decode_pieces(&pieces(&s.raw, &cuts)).map_err(TestCaseError::fail)?;
            prop_assert_eq!(&cut, &whole);
            let (head, body, done, left) = cut;
            prop_assert_eq!(head.as_ref(), Some(&s.head));
            prop_assert_eq!(&body, &s.body);
            prop_assert_eq!(done, s.head.framing != Framing::Close);
            prop_assert_eq!(left, 0);
        }

        #[test]
        fn prop_hostile_bytes_never_panic(
            raw in hostile(),
            cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..12),
        ) {
            let _ = decode_pieces(&pieces(&raw, &cuts));
            let framings = [
                Framing::Chunked,
                Framing::Close,
                Framing::Length(7),
                Framing::Length(u64::MAX),
            ];
            for framing in framings {
                let mut d = BodyDecoder::new(framing);
                let mut buf = BytesMut::new();
                'feed: for piece in pieces(&raw, &cuts) {
                    buf.extend_from_slice(piece);
                    loop {
                        match d.decode(&mut buf) {
                            Ok(Some(_)) => {}
                            Ok(None) => break,
                            Err(_) => break 'feed,
                        }
                    }
                }
            }
        }
    }

    // Every split point, or a runtime per case: fewer cases by default.
    proptest! {
        #![proptest_config(prop_config(200))]

        #[test]
        fn prop_a_response_split_in_two_reads_the_same(s in sample()) {
            let whole = decode_pieces(&[&s.raw]).map_err(TestCaseError::fail)?;
            prop_assert_eq!(whole.0.as_ref(), Some(&s.head));
            prop_assert_eq!(&whole.1, &s.body);
            for at in 0..=s.raw.len() {
                let split = decode_pieces(&[&s.raw[..at], &s.raw[at..]])
                    .map_err(TestCaseError::fail)?;
                prop_assert_eq!(&split, &whole, "split at {}", at);
            }
        }

        #[test]
        fn prop_the_socket_reader_agrees_at_any_read_size(s in sample(), step in 1usize..64) {
            let rt = tokio::runtime::Builder::new_current_thread()
                .build()
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            let (head, body, reusable) = rt
                .block_on(read_all(&s.raw, step))
                .map_err(TestCaseError::fail)?;
            prop_assert_eq!(&head, &s.head);
            prop_assert_eq!(&body, &s.body);
            prop_assert_eq!(reusable, s.head.keep_alive);
        }
    }
}
