//! Streaming measurements wrk cannot make, for `make bench-load`:
//!
//!   ttfb  ADDR PATH BODY_FILE N   sequential streaming requests on one
//!                                 keep-alive connection: time to the first
//!                                 SSE byte and to the end of the stream
//!   soak  ADDR PATH BODY_FILE N   N concurrent streams held to their end;
//!                                 prints how many completed and failed
//!
//! The request (head and body) is built once and shared by every stream, so
//! a soak of N streams of a 200 KB prompt holds one copy of it, not N. A
//! stream counts as completed on a 200 whose body ends the stream in either
//! dialect: OpenAI's `data: [DONE]` or Anthropic's `message_stop` event.
//!
//! Run through cargo so it is built like the benches:
//! `cargo bench --bench stream_probe -- ttfb 127.0.0.1:8000 /v1/chat/completions body.json 500`

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const AUTH: &str = "Authorization: Bearer sk-bench-key-0001\r\n";

fn request(addr: &str, path: &str, body: &[u8]) -> Vec<u8> {
    let mut r = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n{AUTH}Content-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    r.extend_from_slice(body);
    r
}

/// Reads one response (chunked or with a Content-Length); returns its
/// status, the time to the first SSE byte and the total time.
async fn one(
    s: &mut TcpStream,
    req: &[u8],
    buf: &mut Vec<u8>,
) -> std::io::Result<(u16, Duration, Duration)> {
    let start = Instant::now();
    s.write_all(req).await?;
    buf.clear();
    let mut first = None;
    let mut tmp = [0u8; 16 * 1024];
    loop {
        let n = s.read(&mut tmp).await?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "closed",
            ));
        }
        buf.extend_from_slice(&tmp[..n]);
        let Some(h) = find(buf, b"\r\n\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(&buf[..h]).to_ascii_lowercase();
        let status: u16 = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        if first.is_none() && find(&buf[h..], b"data:").is_some() {
            first = Some(start.elapsed());
        }
        let length = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse::<usize>().ok());
        let done = match length {
            Some(len) => buf.len() >= h + 4 + len,
            None => buf.ends_with(b"\r\n0\r\n\r\n"),
        };
        if done {
            return Ok((
                status,
                first.unwrap_or_else(|| start.elapsed()),
                start.elapsed(),
            ));
        }
    }
}

fn find(h: &[u8], n: &[u8]) -> Option<usize> {
    h.windows(n.len()).position(|w| w == n)
}

/// The stream's last event arrived: OpenAI's `[DONE]` or Anthropic's
/// `message_stop`.
fn ended(body: &[u8]) -> bool {
    find(body, b"data: [DONE]").is_some() || find(body, b"event: message_stop").is_some()
}

fn pct(v: &mut [Duration], p: f64) -> f64 {
    v.sort();
    let i = ((v.len() as f64 - 1.0) * p / 100.0).round() as usize;
    v[i].as_secs_f64() * 1000.0
}

#[tokio::main(flavor = "multi_thread", worker_threads = 1)]
async fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    if args.len() < 5 {
        eprintln!("usage: stream_probe ttfb|soak ADDR PATH BODY_FILE N");
        return;
    }
    let (mode, addr, path, body_file, n) = (
        &args[0],
        &args[1],
        &args[2],
        &args[3],
        args[4].parse::<usize>().unwrap(),
    );
    let body = std::fs::read(body_file).unwrap();
    // One copy of the request, shared by every stream (Arc), written with a
    // single write_all per stream.
    let req: Arc<[u8]> = request(addr, path, &body).into();
    drop(body);
    match mode.as_str() {
        "ttfb" => {
            let mut s = TcpStream::connect(addr).await.unwrap();
            s.set_nodelay(true).unwrap();
            let mut buf = Vec::new();
            for _ in 0..(n / 10).max(5) {
                one(&mut s, &req, &mut buf).await.unwrap(); // warm-up
            }
            let (mut first, mut total) = (Vec::new(), Vec::new());
            for _ in 0..n {
                let (_, f, t) = one(&mut s, &req, &mut buf).await.unwrap();
                first.push(f);
                total.push(t);
            }
            println!(
                "RESULT ttfb_p50_ms={:.3} ttfb_p99_ms={:.3} full_p50_ms={:.3} full_p99_ms={:.3}",
                pct(&mut first, 50.0),
                pct(&mut first, 99.0),
                pct(&mut total, 50.0),
                pct(&mut total, 99.0)
            );
        }
        "soak" => {
            let started = Instant::now();
            let mut tasks = Vec::with_capacity(n);
            for _ in 0..n {
                let req = Arc::clone(&req);
                let addr = addr.clone();
                tasks.push(tokio::spawn(async move {
                    let stream = async {
                        let mut s = TcpStream::connect(&addr).await?;
                        let mut buf = Vec::new();
                        let (status, ..) = one(&mut s, &req, &mut buf).await?;
                        Ok::<bool, std::io::Error>(status == 200 && ended(&buf))
                    };
                    // Bounded: a stream that never ends is an error, not a hang.
                    tokio::time::timeout(Duration::from_secs(180), stream).await
                }));
            }
            let (mut ok, mut failed) = (0, 0);
            for t in tasks {
                match t.await {
                    Ok(Ok(Ok(true))) => ok += 1,
                    _ => failed += 1,
                }
            }
            println!(
                "RESULT soak_streams={n} completed={ok} errors={failed} seconds={:.1}",
                started.elapsed().as_secs_f64()
            );
        }
        other => eprintln!("unknown mode {other}"),
    }
}
