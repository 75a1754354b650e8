//! The client side of the socket: reading the request body under its cap,
//! and writing whole responses and errors in the caller's dialect.

use crate::config::Snapshot;
use crate::record::RequestRecord;
use bytes::{Bytes, BytesMut};
use filters::dialect;
use filters::error::{ApiError, ErrorKind};
use filters::Dialect;
use pingora::http::ResponseHeader;
use pingora::proxy::Session;

/// The whole request body, refused past `limits.max_request_body_bytes`
/// (by its declared length at once, else as soon as it grows past) and
/// past `client_body_timeout` (408: a client that trickles its body ties a
/// connection up for no one).
pub async fn read_body(session: &mut Session, config: &Snapshot) -> Result<Bytes, ApiError> {
    read_body_within(session, config, config.max_request_body_bytes).await
}

/// [`read_body`] under a smaller cap of the caller's (a login body).
pub async fn read_body_within(
    session: &mut Session,
    config: &Snapshot,
    cap: usize,
) -> Result<Bytes, ApiError> {
    let timeout = config.downstream.client_body_timeout;
    let read = read_capped(session, cap.min(config.max_request_body_bytes));
    match tokio::time::timeout(timeout, read).await {
        Ok(body) => body,
        Err(_) => {
            // The rest of the body is unread: the connection cannot be reused.
            session.set_keepalive(None);
            Err(ApiError::invalid(format!(
                "the request body did not arrive within {timeout:?}"
            ))
            .with_status(408))
        }
    }
}

async fn read_capped(session: &mut Session, cap: usize) -> Result<Bytes, ApiError> {
    let too_large = || {
        ApiError::new(
            ErrorKind::RequestTooLarge,
            format!("request body exceeds the {cap}-byte limit"),
        )
    };
    let declared = session
        .req_header()
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > cap) {
        return Err(too_large());
    }
    let mut buf = BytesMut::with_capacity(declared.unwrap_or(16 * 1024).min(cap));
    loop {
        match session.read_request_body().await {
            Ok(Some(chunk)) => {
                if buf.len() + chunk.len() > cap {
                    return Err(too_large());
                }
                buf.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(buf.freeze()),
            Err(e) => {
                return Err(ApiError::invalid(format!(
                    "could not read the request body: {e}"
                )))
            }
        }
    }
}

/// Writes a complete response. A failed write means the client left:
/// there is no one to tell.
/// A 200 with a JSON body the gateway wrote itself.
pub async fn respond_json(session: &mut Session, rec: &mut RequestRecord, v: &serde_json::Value) {
    let body = Bytes::from(v.to_string());
    let limits = std::mem::take(&mut rec.limit_headers);
    let head = session.req_header().method == http::Method::HEAD;
    respond(session, rec, 200, "application/json", body, &limits, head).await;
}

pub async fn respond(
    session: &mut Session,
    rec: &mut RequestRecord,
    status: u16,
    content_type: &str,
    body: Bytes,
    extra: &[(&'static str, String)],
    head_only: bool,
) {
    rec.result.status = status;
    // Without a case map: every name the gateway writes is lowercase
    // already, and keeping a second map of them cost each header an
    // allocation and a copy (callgrind).
    let Ok(mut resp) = ResponseHeader::build_no_case(status, Some(4 + extra.len())) else {
        return;
    };
    let _ = resp.insert_header("content-type", content_type);
    let _ = resp.insert_header("content-length", body.len().to_string());
    let _ = resp.insert_header("x-request-id", rec.id.as_str());
    for (k, v) in extra {
        let _ = resp.append_header(*k, v.as_str());
    }
    if session
        .write_response_header(Box::new(resp), head_only)
        .await
        .is_ok()
        && !head_only
    {
        let _ = session.write_response_body(Some(body), true).await;
    }
}

/// An error response in `dialect`: its shape, its status, and the headers
/// that tell SDKs whether to retry.
pub async fn respond_error(
    session: &mut Session,
    rec: &mut RequestRecord,
    dialect: Dialect,
    e: &ApiError,
    attempts: Option<String>,
) {
    let status = dialect::error_status(dialect, e);
    rec.result.error = Some(e.message.clone());
    let mut extra = Vec::new();
    if e.is_deterministic() {
        extra.push(("x-should-retry", "false".to_owned()));
    }
    if let Some(r) = &e.retry_after {
        extra.push(("retry-after", r.clone()));
    }
    if let Some(a) = attempts {
        extra.push(("x-modelswitch-attempts", a));
    }
    extra.extend(rec.limit_headers.iter().cloned());
    let body = Bytes::from(dialect::error_bytes(dialect, e));
    respond(
        session,
        rec,
        status,
        "application/json",
        body,
        &extra,
        false,
    )
    .await;
}
