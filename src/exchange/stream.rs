//! A streaming answer: held until the first real event (so a failure can
//! still fall over), then committed and relayed chunk by chunk, with
//! keep-alives through upstream silences and the dialect's in-stream
//! error for any failure after commit.

use super::attempt::{Answer, Prepared, Served, Timing};
use super::conversation;
use super::unary::target_headers;
use super::{now, or_client_left, ClientRequest};
use crate::config::Target;
use crate::record::RequestRecord;
use crate::shutdown::Drain;
use crate::upstream::{Failure, Phase, UpstreamCall};
use bytes::BytesMut;
use filters::canonical::estimate_tokens_from_bytes;
use filters::dialect::{self, ClientStream, Dialect};
use filters::error::{ApiError, ErrorKind};
use filters::openai_chat::stream::ReasoningOutput;
use filters::stream::{Progress, StreamTranscoder};
use pingora::http::ResponseHeader;
use pingora::proxy::Session;
use std::time::{Duration, Instant};

/// After the terminator, how long to wait for the body's end before
/// giving up on reusing the connection.
const DRAIN_BUDGET: Duration = Duration::from_millis(500);

pub(super) async fn stream_target(
    session: &mut Session,
    rec: &mut RequestRecord,
    a: Answer<'_>,
    timing: &mut Timing,
) -> Result<Served, Failure> {
    let Answer {
        upstream,
        req,
        target,
        prepared,
        mut call,
        deadline,
        total_deadline,
        sent,
        payload,
    } = a;
    if !call.is_event_stream() {
        return Err(Failure::BadResponse(format!(
            "expected an event stream, got '{}'",
            call.content_type
        )));
    }
    let provider = &target.provider;
    if let Some(c) = &mut rec.conversation {
        c.stream_start(provider.dialect);
    }
    let mut t = transcoder(req, target, prepared, req.max_event_bytes);
    let mut out = BytesMut::with_capacity(4096);
    // Before commit: everything stays here, so a failure can still fall over.
    let mut upstream_ended = false;
    while *t.progress() == Progress::Pending {
        let Some(read) = or_client_left(session, call.read(deadline, Phase::FirstEvent)).await
        else {
            return Ok(Served::ClientLeft);
        };
        match read? {
            Some(chunk) => {
                if let Some(c) = &mut rec.conversation {
                    c.chunk(&chunk);
                }
                t.feed(&chunk, &mut out);
                // What waits for the commit point is bounded too: an
                // upstream sending endless preamble events is a failure.
                if out.len() > req.max_event_bytes {
                    return Err(Failure::BadResponse(
                        "too much before the first real event".into(),
                    ));
                }
            }
            None => {
                upstream_ended = true;
                t.finish(&mut out);
            }
        }
    }
    if let Progress::Failed(e) = t.progress() {
        // Nothing real yet: fall over. Content and then a failure in the
        // same read is past the commit point: the client gets the content
        // and the in-stream error already in `out`.
        if !t.has_content() {
            let status = dialect::error_status(provider.dialect, e);
            return Err(Failure::Status(status, e.clone()));
        }
    }

    // Commit.
    let _streaming = crate::metrics::stream_started();
    timing.to_first_event = Some(sent.elapsed());
    let resp = stream_head(rec, req, target)?;
    session.set_write_timeout(Some(req.write_timeout));
    if session
        .write_response_header(Box::new(resp), false)
        .await
        .is_err()
        || !write(session, &mut out).await
    {
        rec.result.error = Some("client went away".into());
        return Ok(Served::ClientLeft); // dropping `call` aborts the upstream request
    }
    // Committed: no other target will be tried, so the request's bodies
    // are no longer needed for the rest of the stream (what a kept
    // conversation needs of it is taken first).
    let turn = payload.take_turn();
    payload.release();
    prepared.body = bytes::Bytes::new();

    if !upstream_ended {
        let bounds = Bounds {
            target,
            total_deadline,
            request_id: &rec.id,
            drain: req.drain,
        };
        let capture = rec.conversation.as_deref_mut();
        let relayed = relay(session, &mut call, &mut t, &mut out, bounds, capture);
        match relayed.await {
            Some(ended) => upstream_ended = ended,
            None => {
                rec.result.error = Some("client went away mid-stream".into());
                rec.result.usage = t.usage();
                return Ok(Served::ClientLeft);
            }
        }
    }
    let served = if let Progress::Failed(e) = t.progress() {
        rec.result.error = Some(format!("after commit: {}", e.message));
        Served::FailedAfterCommit
    } else {
        Served::Clean
    };
    rec.result.usage = t.usage();
    if let Some(r) = req.responses {
        // A pass-through stream has no turn: its request was never decoded.
        conversation::after_stream(r, &mut t, turn, provider, req);
    }
    let _ = session.write_response_body(None, true).await;
    if *t.progress() == Progress::Done {
        // Reuse the connection only if its body really ended.
        let drained = upstream_ended
            || matches!(call.read(now() + DRAIN_BUDGET, Phase::Body).await, Ok(None));
        if drained {
            upstream.release(call);
        }
    }
    Ok(served)
}

/// The client's stream for this answer: the upstream's events passed
/// through with the model renamed, or translated between dialects.
fn transcoder(
    req: &ClientRequest<'_>,
    target: &Target,
    prepared: &Prepared,
    max_event_bytes: usize,
) -> StreamTranscoder {
    // Reasoning other than as deltas needs the events, not the bytes.
    // (Not when the client asked for what canonical events cannot carry.)
    let reshape = req.dialect == Dialect::OpenAiChat
        && req.reasoning != ReasoningOutput::Delta
        && prepared.reencodable;
    let t = if prepared.pass_through && !reshape {
        let rename = Some(req.model).filter(|m| **m != *target.model);
        let t = StreamTranscoder::pass_through(req.dialect, rename);
        if prepared.usage_injected {
            t.hiding_usage()
        } else {
            t
        }
    } else {
        let client = ClientStream {
            model: req.model,
            include_usage: prepared.include_usage,
            estimated_input: estimate_tokens_from_bytes(req.body_len),
            response_id: req.responses.map_or("", |r| r.id),
            previous_response_id: req.responses.and_then(|r| r.previous),
            reasoning: req.reasoning,
        };
        let t = StreamTranscoder::translate_for(target.provider.dialect, req.dialect, &client);
        let t = if prepared.tool_emulation {
            t.with_tool_emulation()
        } else {
            t
        };
        if req.responses.is_some_and(|r| r.keep) {
            t.with_accumulator()
        } else {
            t
        }
    };
    let t = t.with_event_limit(max_event_bytes);
    if req.json_array {
        t.with_json_array()
    } else {
        t
    }
}

/// The committed stream's response head.
fn stream_head(
    rec: &mut RequestRecord,
    req: &ClientRequest<'_>,
    target: &Target,
) -> Result<ResponseHeader, Failure> {
    rec.result.status = 200;
    let mut resp = ResponseHeader::build_no_case(200, Some(8 + rec.limit_headers.len()))
        .map_err(|e| Failure::Io(e.to_string()))?;
    let content_type = if req.json_array {
        "application/json; charset=utf-8"
    } else {
        "text/event-stream; charset=utf-8"
    };
    let _ = resp.insert_header("content-type", content_type);
    let _ = resp.insert_header("cache-control", "no-cache");
    let _ = resp.insert_header("x-accel-buffering", "no");
    let _ = resp.insert_header("transfer-encoding", "chunked");
    let _ = resp.insert_header("x-request-id", rec.id.as_str());
    for (k, v) in target_headers(rec, target) {
        let _ = resp.insert_header(k, v);
    }
    Ok(resp)
}

/// What ends a committed stream besides the upstream: its target's idle
/// budget, the request's total deadline, a shutdown.
struct Bounds<'a> {
    target: &'a Target,
    total_deadline: Instant,
    request_id: &'a str,
    drain: &'a Drain,
}

/// After commit: relays reads to the client until the stream ends or
/// fails, with keep-alives through silences. `Some(upstream_ended)`, or
/// `None` when the client left.
async fn relay(
    session: &mut Session,
    call: &mut UpstreamCall,
    t: &mut StreamTranscoder,
    out: &mut BytesMut,
    bounds: Bounds<'_>,
    mut capture: Option<&mut crate::journal::Capture>,
) -> Option<bool> {
    let Bounds {
        target,
        total_deadline,
        request_id,
        drain,
    } = bounds;
    let idle = target.timeouts.idle;
    let keepalive = target.timeouts.keepalive;
    let mut idle_deadline = now() + idle;
    let mut next_keepalive = now() + keepalive;
    let provider = &target.provider;
    let mut upstream_ended = false;
    while *t.progress() == Progress::Streaming && !upstream_ended {
        // A shutdown's grace ends the stream too; read each time round, a
        // signal is noticed at the next wake (keep-alives bound the wait).
        let drain_at = drain.deadline();
        if drain_at.is_some_and(|at| now() >= at) {
            let e = ApiError::new(ErrorKind::Overloaded, "the gateway is shutting down");
            t.fail(&e, out);
            let _ = write(session, out).await;
            break;
        }
        let wake = idle_deadline
            .min(next_keepalive)
            .min(total_deadline)
            .min(drain_at.unwrap_or(total_deadline));
        let read = or_client_left(session, call.read(wake, Phase::Idle)).await?;
        match read {
            Ok(Some(chunk)) => {
                if let Some(c) = capture.as_deref_mut() {
                    c.chunk(&chunk);
                }
                t.feed(&chunk, out);
                idle_deadline = now() + idle;
                next_keepalive = now() + keepalive;
            }
            Ok(None) => {
                upstream_ended = true;
                t.finish(out);
            }
            Err(Failure::Timeout(_)) if now() < idle_deadline.min(total_deadline) => {
                t.keepalive(out);
                next_keepalive = now() + keepalive;
            }
            Err(Failure::Timeout(_)) => {
                let e = if now() >= total_deadline {
                    ApiError::new(ErrorKind::Timeout, "the request exceeded its total_timeout")
                } else {
                    ApiError::new(
                        ErrorKind::Timeout,
                        format!("upstream {} stalled for {idle:?}", provider.name),
                    )
                };
                t.fail(&e, out);
            }
            Err(f) => t.fail(&f.to_api_error(&provider.name, request_id), out),
        }
        if !write(session, out).await {
            return None;
        }
    }
    Some(upstream_ended)
}

/// Writes and empties `out`; false when the client is gone.
async fn write(session: &mut Session, out: &mut BytesMut) -> bool {
    if out.is_empty() {
        return true;
    }
    let bytes = out.split().freeze();
    session
        .write_response_body(Some(bytes), false)
        .await
        .is_ok()
}
