//! The Pingora shell: every request is answered inside `request_filter`
//! ("handler mode", DESIGN.md) — endpoint, auth, body, then the exchange.
//! Responses and errors are written here, in the caller's dialect.

use crate::config::{ConfigStore, Snapshot};
use crate::exchange;
use crate::upstream::UpstreamClient;
use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use filters::auth::ClientKey;
use filters::canonical::{estimate_tokens_from_bytes, Usage};
use filters::error::{ApiError, ErrorKind};
use filters::ingress::{classify, dialect_hint, Endpoint};
use filters::Dialect;
use pingora::http::ResponseHeader;
use pingora::prelude::*;
use pingora::proxy::{ProxyHttp, Session};
use serde_json::json;
use std::sync::Arc;
use std::time::Instant;

pub struct Gateway {
    pub config: ConfigStore,
    pub upstream: Arc<UpstreamClient>,
}

/// What one request did, for the access log (and later usage records).
#[derive(Debug, Default)]
pub struct RequestCtx {
    pub id: String,
    pub started: Option<Instant>,
    pub dialect: Option<Dialect>,
    pub key_name: Option<String>,
    pub model: Option<String>,
    pub stream: bool,
    pub status: u16,
    /// `provider/model=outcome` for every target tried.
    pub attempts: Vec<String>,
    pub served_by: Option<String>,
    pub usage: Option<Usage>,
    pub error: Option<String>,
}

#[async_trait]
impl ProxyHttp for Gateway {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx {
            id: filters::canonical::new_id("req_"),
            started: Some(Instant::now()),
            ..RequestCtx::default()
        }
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        let snap = self.config.load_full();
        let req = session.req_header();
        let path = req.uri.path().to_owned();
        let hint = dialect_hint(&path, req.headers.contains_key("anthropic-version"));
        let endpoint = classify(req.method.as_str(), &path);
        let outcome = match endpoint {
            Endpoint::Health => {
                let head = session.req_header().method == http::Method::HEAD;
                respond(
                    session,
                    ctx,
                    200,
                    "application/json",
                    Bytes::from_static(b"{\"status\":\"ok\"}"),
                    &[],
                    head,
                )
                .await
            }
            Endpoint::NotFound => Err(ApiError::new(
                ErrorKind::NotFound,
                format!("no route for {path}"),
            )),
            Endpoint::MethodNotAllowed => {
                let mut e = ApiError::invalid(format!(
                    "method {} is not allowed on {path}",
                    session.req_header().method
                ));
                e.status = Some(405);
                Err(e)
            }
            Endpoint::Models => match authenticate(&snap, session) {
                Ok(key) => models(session, ctx, &snap, &key, hint).await,
                Err(e) => Err(e),
            },
            Endpoint::CountTokens => count_tokens(session, ctx, &snap).await,
            Endpoint::UpstreamKeyStats => match authenticate(&snap, session) {
                Ok(key) if key.has_role("admin") => {
                    let body = Bytes::from(key_stats(&snap).to_string());
                    respond(session, ctx, 200, "application/json", body, &[], false).await
                }
                Ok(_) => Err(ApiError::new(
                    ErrorKind::PermissionDenied,
                    "the admin role is required",
                )),
                Err(e) => Err(e),
            },
            Endpoint::Generate(dialect) => {
                ctx.dialect = Some(dialect);
                // Boxed: a small `request_filter` future is cheap for Pingora to move.
                Box::pin(self.generate(session, ctx, &snap, dialect)).await
            }
        };
        if let Err(e) = outcome {
            let dialect = ctx.dialect.unwrap_or(match endpoint {
                Endpoint::CountTokens => Dialect::Anthropic,
                _ => hint,
            });
            respond_error(session, ctx, dialect, &e).await;
        }
        Ok(true)
    }

    /// Every request is answered in `request_filter`; reaching the stock
    /// proxy flow is a bug, reported rather than proxied anywhere.
    async fn upstream_peer(
        &self,
        _session: &mut Session,
        _ctx: &mut RequestCtx,
    ) -> Result<Box<HttpPeer>> {
        Err(pingora::Error::explain(
            pingora::ErrorType::InternalError,
            "no stock proxy routes are configured",
        ))
    }

    async fn logging(
        &self,
        session: &mut Session,
        _e: Option<&pingora::Error>,
        ctx: &mut RequestCtx,
    ) {
        if !log::log_enabled!(log::Level::Info) {
            return;
        }
        let req = session.req_header();
        let elapsed = ctx
            .started
            .map(|s| s.elapsed().as_secs_f64() * 1000.0)
            .unwrap_or_default();
        let usage = ctx
            .usage
            .map(|u| {
                format!(
                    "in={} cached={} out={}",
                    u.input_total(),
                    u.cache_read,
                    u.output_total
                )
            })
            .unwrap_or_else(|| "-".into());
        log::info!(
            "{} {} {} {} status={} dialect={} key={} model={} stream={} target={} attempts=[{}] usage={} ms={:.1}{}",
            ctx.id,
            session.client_addr().map(|a| a.to_string()).unwrap_or_default(),
            req.method,
            req.uri.path(),
            ctx.status,
            ctx.dialect.map_or("-", Dialect::name),
            ctx.key_name.as_deref().unwrap_or("-"),
            ctx.model.as_deref().unwrap_or("-"),
            ctx.stream,
            ctx.served_by.as_deref().unwrap_or("-"),
            ctx.attempts.join(", "),
            usage,
            elapsed,
            ctx.error.as_deref().map(|e| format!(" error={e:?}")).unwrap_or_default(),
        );
    }
}

impl Gateway {
    async fn generate(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        snap: &Arc<Snapshot>,
        dialect: Dialect,
    ) -> Result<(), ApiError> {
        let key = authenticate(snap, session)?;
        ctx.key_name = Some(key.name.clone());
        let body = read_body(session, snap.max_request_body_bytes).await?;
        if let Err(e) = std::str::from_utf8(&body) {
            return Err(ApiError::invalid(format!(
                "request body is not valid UTF-8 (byte {})",
                e.valid_up_to()
            )));
        }
        let members = filters::json_peek::members(&body).map_err(|e| {
            ApiError::invalid(format!("request body is not a valid JSON object: {e}"))
        })?;
        let model = members
            .str("model")
            .ok_or_else(|| ApiError::invalid("model: a string is required").with_param("model"))?;
        if members
            .raw("messages")
            .is_none_or(|m| m.first() != Some(&b'['))
        {
            return Err(ApiError::invalid("messages: an array is required").with_param("messages"));
        }
        ctx.model = Some(model.clone());
        ctx.stream = members.bool("stream").unwrap_or(false);
        let route = snap.routes.get(&model).cloned().ok_or_else(|| {
            let mut known: Vec<&str> = snap
                .model_names
                .iter()
                .map(String::as_str)
                .filter(|m| key.allows_model(m))
                .collect();
            known.truncate(20);
            ApiError::new(
                ErrorKind::NotFound,
                format!(
                    "model '{model}' is not configured; available: {}",
                    known.join(", ")
                ),
            )
            .with_param("model")
        })?;
        if !key.allows_model(&model) {
            return Err(ApiError::new(
                ErrorKind::PermissionDenied,
                format!("this API key may not use model '{model}'"),
            ));
        }
        let anthropic_headers = exchange::ClientHeaders::from_request(session.req_header());
        let request = exchange::ClientRequest {
            dialect,
            body: &body,
            members: &members,
            model: &model,
            stream: ctx.stream,
            headers: anthropic_headers,
        };
        Box::pin(exchange::run(
            &self.upstream,
            session,
            ctx,
            &route,
            &request,
        ))
        .await
    }
}

fn authenticate(snap: &Snapshot, session: &Session) -> Result<Arc<ClientKey>, ApiError> {
    let h = &session.req_header().headers;
    let cred = filters::auth::credential(
        h.get(http::header::AUTHORIZATION).map(|v| v.as_bytes()),
        h.get("x-api-key").map(|v| v.as_bytes()),
    )
    .ok_or_else(|| {
        ApiError::new(
            ErrorKind::Authentication,
            "missing API key: send Authorization: Bearer <key> or x-api-key: <key>",
        )
    })?;
    snap.keys
        .get(cred)
        .cloned()
        .ok_or_else(|| ApiError::new(ErrorKind::Authentication, "invalid API key"))
}

async fn read_body(session: &mut Session, cap: usize) -> Result<Bytes, ApiError> {
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

async fn models(
    session: &mut Session,
    ctx: &mut RequestCtx,
    snap: &Snapshot,
    key: &ClientKey,
    dialect: Dialect,
) -> Result<(), ApiError> {
    let names: Vec<&String> = snap
        .model_names
        .iter()
        .filter(|m| key.allows_model(m))
        .collect();
    let body = match dialect {
        Dialect::OpenAiChat => json!({"object": "list", "data": names.iter().map(|n| json!({
            "id": n, "object": "model", "created": 0, "owned_by": "modelswitch"})).collect::<Vec<_>>()}),
        Dialect::Anthropic => json!({
            "data": names.iter().map(|n| json!({"type": "model", "id": n, "display_name": n,
                "created_at": "2025-01-01T00:00:00Z"})).collect::<Vec<_>>(),
            "has_more": false, "first_id": names.first(), "last_id": names.last()}),
    };
    respond(
        session,
        ctx,
        200,
        "application/json",
        Bytes::from(body.to_string()),
        &[],
        false,
    )
    .await
}

/// Every upstream key's state and counters; values appear only masked.
fn key_stats(snap: &Snapshot) -> serde_json::Value {
    let now = Instant::now();
    let providers: Vec<serde_json::Value> = snap
        .providers
        .iter()
        .map(|p| {
            let report = p.key_pool.lock().map(|pool| pool.report(now)).unwrap_or_default();
            let keys: Vec<serde_json::Value> = p
                .keys
                .iter()
                .zip(report)
                .map(|(secret, (state, st))| {
                    let last_used = st
                        .last_used
                        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                        .map(|d| d.as_secs());
                    let cooling_for = match state {
                        filters::key_pool::KeyState::Cooling { until } => Some(until.saturating_duration_since(now).as_secs_f64()),
                        _ => None,
                    };
                    json!({
                        "key": secret.masked(), "state": state.name(), "cooling_seconds": cooling_for,
                        "requests": st.requests, "successes": st.successes, "failures": st.failures,
                        "status_counts": st.status_counts, "last_used": last_used,
                    })
                })
                .collect();
            json!({"provider": p.name, "keys": keys})
        })
        .collect();
    json!({"providers": providers})
}

/// An honest estimate: the tokenizer of whatever model serves the request
/// is not known here, so count the text the model will read (system,
/// messages, tool definitions) at about four bytes a token.
async fn count_tokens(
    session: &mut Session,
    ctx: &mut RequestCtx,
    snap: &Snapshot,
) -> Result<(), ApiError> {
    ctx.dialect = Some(Dialect::Anthropic);
    let key = authenticate(snap, session)?;
    ctx.key_name = Some(key.name.clone());
    let body = read_body(session, snap.max_request_body_bytes).await?;
    let req = filters::anthropic::request::decode(&body)?;
    let bytes = filters::canonical::text_bytes(&req);
    let tokens = estimate_tokens_from_bytes(bytes);
    respond(
        session,
        ctx,
        200,
        "application/json",
        Bytes::from(json!({"input_tokens": tokens}).to_string()),
        &[],
        false,
    )
    .await
}

/// Writes a complete response. A failed write means the client left:
/// there is no one to tell.
pub async fn respond(
    session: &mut Session,
    ctx: &mut RequestCtx,
    status: u16,
    content_type: &str,
    body: Bytes,
    extra: &[(&str, String)],
    head_only: bool,
) -> Result<(), ApiError> {
    ctx.status = status;
    let Ok(mut resp) = ResponseHeader::build(status, Some(4 + extra.len())) else {
        return Ok(());
    };
    let _ = resp.insert_header("content-type", content_type);
    let _ = resp.insert_header("content-length", body.len().to_string());
    let _ = resp.insert_header("x-request-id", ctx.id.as_str());
    for (k, v) in extra {
        let _ = resp.append_header(k.to_string(), v.as_str());
    }
    if session
        .write_response_header(Box::new(resp), head_only)
        .await
        .is_ok()
        && !head_only
    {
        let _ = session.write_response_body(Some(body), true).await;
    }
    Ok(())
}

pub async fn respond_error(
    session: &mut Session,
    ctx: &mut RequestCtx,
    dialect: Dialect,
    e: &ApiError,
) {
    let status = e.status_for(dialect);
    ctx.error = Some(e.message.clone());
    let mut extra = Vec::new();
    if e.is_deterministic() {
        extra.push(("x-should-retry", "false".to_owned()));
    }
    if let Some(r) = &e.retry_after {
        extra.push(("retry-after", r.clone()));
    }
    if !ctx.attempts.is_empty() {
        extra.push(("x-modelswitch-attempts", ctx.attempts.join(", ")));
    }
    let _ = respond(
        session,
        ctx,
        status,
        "application/json",
        Bytes::from(e.body_bytes(dialect)),
        &extra,
        false,
    )
    .await;
}
