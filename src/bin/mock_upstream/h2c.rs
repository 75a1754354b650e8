//! HTTP/2 with prior knowledge (h2c) on the mock's plain port. Each stream
//! is served by the HTTP/1.1 handlers over an in-memory pipe: its request
//! rewritten as HTTP/1.1, the answer read back and relayed as HTTP/2. So
//! every option and fault behaves as over HTTP/1.1; a connection closed
//! inside an answer becomes a reset stream (RST_STREAM INTERNAL_ERROR),
//! and a stream the client resets closes the pipe, which the handler sees
//! as its reader leaving (`aborted`).

use crate::{Defaults, Shared};
use bytes::{Buf, Bytes, BytesMut};
use h2::server::SendResponse;
use h2::{Reason, RecvStream, SendStream};
use std::future::poll_fn;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::net::TcpStream;

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Whether the client opened with the HTTP/2 preface (peeked, not read).
pub(crate) async fn preface(sock: &TcpStream) -> bool {
    let mut buf = [0u8; PREFACE.len()];
    for _ in 0..200 {
        let n = match sock.peek(&mut buf).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => n,
        };
        if buf[..n] != PREFACE[..n] {
            return false;
        }
        if n == PREFACE.len() {
            return true;
        }
        // A prefix of the preface so far: wait for the rest.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    false
}

/// Serves one HTTP/2 connection, each stream on its own task.
pub(crate) async fn serve(
    sock: TcpStream,
    stats: Shared,
    defaults: Defaults,
) -> Result<(), h2::Error> {
    if let Ok(mut s) = stats.lock() {
        s.h2_connections += 1;
    }
    let mut conn = h2::server::Builder::new()
        .max_concurrent_streams(defaults.h2_max_streams)
        .handshake::<_, Bytes>(sock)
        .await?;
    let open = Arc::new(AtomicU64::new(0));
    while let Some(accepted) = conn.accept().await {
        let (request, respond) = accepted?;
        let now = open.fetch_add(1, Ordering::AcqRel) + 1;
        if let Ok(mut s) = stats.lock() {
            s.h2_streams_peak = s.h2_streams_peak.max(now);
        }
        let (stats, open) = (stats.clone(), open.clone());
        tokio::spawn(async move {
            let _ = stream(request, respond, stats, defaults).await;
            open.fetch_sub(1, Ordering::AcqRel);
        });
    }
    Ok(())
}

type Failed = Box<dyn std::error::Error + Send + Sync>;

/// One stream: the request to the handlers as HTTP/1.1, their answer back.
async fn stream(
    request: http::Request<RecvStream>,
    mut respond: SendResponse<Bytes>,
    stats: Shared,
    defaults: Defaults,
) -> Result<(), Failed> {
    let (parts, mut body) = request.into_parts();
    let mut data = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk?;
        let _ = body.flow_control().release_capacity(chunk.len());
        data.extend_from_slice(&chunk);
    }
    let (mut pipe, theirs) = tokio::io::duplex(64 * 1024);
    tokio::spawn(crate::serve(theirs, stats, defaults, "h2"));
    pipe.write_all(&http1_request(&parts, data.len())).await?;
    pipe.write_all(&data).await?;
    let mut buf = BytesMut::with_capacity(16 * 1024);
    let (status, headers, framing) = loop {
        if let Some(head) = parse_head(&mut buf)? {
            break head;
        }
        tokio::select! {
            n = pipe.read_buf(&mut buf) => {
                if n? == 0 {
                    // Closed without an answer.
                    respond.send_reset(Reason::INTERNAL_ERROR);
                    return Ok(());
                }
            }
            // Reset by the client: dropping the pipe tells the handler.
            _ = poll_fn(|cx| respond.poll_reset(cx)) => return Ok(()),
        }
    };
    let mut response = http::Response::builder().status(status);
    for (name, value) in headers {
        response = response.header(name, value);
    }
    let empty = framing == Framing::Length(0);
    let mut send = respond.send_response(response.body(())?, empty)?;
    if !empty {
        relay_body(&mut pipe, &mut buf, framing, &mut send).await?;
    }
    Ok(())
}

/// The HTTP/1.1 request head the handlers read: the HTTP/2 headers, the
/// authority as `host`, and `connection: close` (one request per pipe).
fn http1_request(parts: &http::request::Parts, body_len: usize) -> Vec<u8> {
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let host = parts.uri.authority().map_or("", |a| a.as_str());
    let mut head = format!("{} {path} HTTP/1.1\r\nhost: {host}\r\n", parts.method).into_bytes();
    for (name, value) in &parts.headers {
        if name == http::header::CONTENT_LENGTH || name == http::header::HOST {
            continue;
        }
        head.extend_from_slice(name.as_str().as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(value.as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    head.extend_from_slice(
        format!("content-length: {body_len}\r\nconnection: close\r\n\r\n").as_bytes(),
    );
    head
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Framing {
    Length(usize),
    Chunked,
    Close,
}

type ResponseHead = (u16, Vec<(String, Vec<u8>)>, Framing);

/// The handlers' response head from the front of `buf`, minus the headers
/// HTTP/2 forbids; `None` until it is complete.
fn parse_head(buf: &mut BytesMut) -> Result<Option<ResponseHead>, Failed> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut r = httparse::Response::new(&mut headers);
    let httparse::Status::Complete(len) = r.parse(buf)? else {
        return Ok(None);
    };
    let status = r.code.unwrap_or(500);
    let mut framing = Framing::Close;
    let mut kept = Vec::new();
    for h in r.headers.iter() {
        let name = h.name.to_ascii_lowercase();
        match name.as_str() {
            "transfer-encoding" => framing = Framing::Chunked,
            "content-length" => {
                framing = Framing::Length(std::str::from_utf8(h.value)?.trim().parse()?);
                kept.push((name, h.value.to_vec()));
            }
            "connection" | "keep-alive" => {}
            _ => kept.push((name, h.value.to_vec())),
        }
    }
    buf.advance(len);
    Ok(Some((status, kept, framing)))
}

/// Relays the body as data frames: the end of the HTTP/1.1 body ends the
/// stream, the pipe closing inside it resets the stream.
async fn relay_body(
    pipe: &mut DuplexStream,
    buf: &mut BytesMut,
    framing: Framing,
    send: &mut SendStream<Bytes>,
) -> Result<(), Failed> {
    let mut body = Body::new(framing);
    loop {
        while let Some(piece) = body.decode(buf)? {
            send.send_data(piece, false)?;
        }
        if body.done {
            send.send_data(Bytes::new(), true)?;
            return Ok(());
        }
        tokio::select! {
            n = pipe.read_buf(buf) => {
                if n? == 0 {
                    if framing == Framing::Close {
                        send.send_data(Bytes::new(), true)?;
                    } else {
                        // A reset drops the stream's data not yet written:
                        // let it go out first, as bytes before a close do.
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        send.send_reset(Reason::INTERNAL_ERROR);
                    }
                    return Ok(());
                }
            }
            _ = poll_fn(|cx| send.poll_reset(cx)) => return Ok(()),
        }
    }
}

/// Just enough HTTP/1.1 body decoding for what the handlers write.
struct Body {
    /// Bytes left of a length-delimited body or of the current chunk.
    left: usize,
    chunked: bool,
    /// Inside a chunk's data (else at a chunk-size line).
    in_chunk: bool,
    done: bool,
}

impl Body {
    fn new(framing: Framing) -> Self {
        let (left, chunked) = match framing {
            Framing::Length(n) => (n, false),
            Framing::Chunked => (0, true),
            Framing::Close => (usize::MAX, false),
        };
        Self {
            left,
            chunked,
            in_chunk: false,
            done: framing == Framing::Length(0),
        }
    }

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Bytes>, Failed> {
        loop {
            if self.done || buf.is_empty() {
                return Ok(None);
            }
            if !self.chunked || self.in_chunk {
                let n = self.left.min(buf.len());
                let piece = buf.split_to(n).freeze();
                self.left -= n;
                if self.left == 0 {
                    self.done = !self.chunked;
                    self.in_chunk = false;
                }
                return Ok(Some(piece));
            }
            // A chunk-size line, preceded by the previous chunk's CRLF.
            if buf.starts_with(b"\r\n") {
                buf.advance(2);
                continue;
            }
            let Some(end) = buf.windows(2).position(|w| w == b"\r\n") else {
                return Ok(None);
            };
            let line = std::str::from_utf8(&buf[..end])?;
            let size = usize::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16)?;
            if size == 0 {
                // The last chunk: the handlers write no trailers.
                if buf.len() < end + 4 {
                    return Ok(None);
                }
                buf.advance(end + 4);
                self.done = true;
                return Ok(None);
            }
            buf.advance(end + 2);
            self.left = size;
            self.in_chunk = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_bodies_decode_at_any_split() {
        let raw = b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
        for at in 0..raw.len() {
            let mut body = Body::new(Framing::Chunked);
            let mut buf = BytesMut::new();
            let mut out = Vec::new();
            for part in [&raw[..at], &raw[at..]] {
                buf.extend_from_slice(part);
                while let Some(p) = body.decode(&mut buf).unwrap() {
                    out.extend_from_slice(&p);
                }
            }
            assert_eq!(out, b"hello world", "split at {at}");
            assert!(body.done, "split at {at}");
        }
    }

    #[test]
    fn hop_by_hop_response_headers_are_dropped() {
        let mut buf = BytesMut::from(
            &b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n"[..],
        );
        let (status, headers, framing) = parse_head(&mut buf).unwrap().unwrap();
        assert_eq!(status, 200);
        assert_eq!(framing, Framing::Chunked);
        assert_eq!(
            headers,
            vec![("content-type".to_owned(), b"text/event-stream".to_vec())]
        );
    }
}
