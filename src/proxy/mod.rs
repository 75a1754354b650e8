//! The Pingora shell: every request is answered inside `request_filter`
//! ("handler mode": Pingora parses and writes HTTP, the gateway decides
//! everything else) — endpoint, auth, body, then the exchange. Errors are
//! rendered here, at one edge, in the caller's dialect.

mod access_log;
mod admission;
pub(crate) mod auth;
pub mod connection;
mod embeddings;
mod endpoints;
mod generate;
mod route;
mod websocket;

use crate::downstream::respond_error;
use crate::record::RequestRecord;
use crate::shutdown::Drain;
use crate::state::LiveStore;
use crate::upstream::UpstreamClient;
use async_trait::async_trait;
use filters::error::{ApiError, ErrorKind};
use filters::ingress::{classify, dialect_hint, Endpoint};
use pingora::prelude::*;
use pingora::proxy::{ProxyHttp, Session};
use std::sync::Arc;

/// Which endpoints a listener serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plane {
    /// Everything (no `[admin] listen`).
    All,
    /// The LLM API only: the admin plane has its own address.
    Llm,
    /// The admin plane (UI, admin API, `/metrics`) only.
    Admin,
}

impl Plane {
    /// Whether this listener answers `endpoint`; health everywhere.
    fn serves(self, endpoint: Endpoint) -> bool {
        let admin = matches!(
            endpoint,
            Endpoint::Admin
                | Endpoint::Ui
                | Endpoint::AdminKeys
                | Endpoint::AdminUsage
                | Endpoint::AdminLogs
                | Endpoint::AdminConversations
                | Endpoint::UpstreamKeyStats
                | Endpoint::Metrics
        );
        match self {
            Plane::All => true,
            // Answers of their own on every listener.
            _ if matches!(
                endpoint,
                Endpoint::Health
                    | Endpoint::HealthReport
                    | Endpoint::NotFound
                    | Endpoint::MethodNotAllowed
            ) =>
            {
                true
            }
            Plane::Llm => !admin,
            Plane::Admin => admin,
        }
    }
}

#[derive(Clone)]
pub struct Gateway {
    /// The endpoints this listener answers.
    pub plane: Plane,
    pub store: LiveStore,
    pub upstream: Arc<UpstreamClient>,
    pub drain: Arc<Drain>,
    /// OpenAI Responses conversations kept for providers that keep none;
    /// lives as long as the process.
    pub conversations: &'static filters::conversations::ConversationStore,
    /// Runtime keys (the admin API writes them).
    pub key_store: Option<crate::store::KeyStore>,
    /// Usage rows, one per request, written off the request path.
    pub usage: Option<Arc<crate::usage::UsageSink>>,
    /// The conversation log and the recent log lines.
    pub journal: crate::journal::Journal,
    /// Trace spans, exported while `[telemetry] otlp_endpoint` is set.
    pub tracer: Arc<crate::telemetry::Tracer>,
    /// The admin plane: UI, sessions, config edits.
    pub admin: Arc<crate::admin::AdminPlane>,
}

#[async_trait]
impl ProxyHttp for Gateway {
    type CTX = RequestRecord;

    fn new_ctx(&self) -> RequestRecord {
        let id = filters::canonical::new_sortable_id("req_", crate::usage::row::unix_ms());
        let mut rec = RequestRecord::new(id);
        rec.in_flight = Some(self.drain.enter());
        rec
    }

    /// Pingora hands over what the connection stage attached to the
    /// session: the head deadline's signal, set now the head is read.
    fn on_connection_reuse(
        &self,
        _session: &mut Session,
        _rec: &mut RequestRecord,
        prev: Box<dyn std::any::Any + Send + Sync>,
    ) {
        if let Ok(head) = prev.downcast::<Arc<connection::HeadRead>>() {
            head.arrived();
        }
    }

    async fn request_filter(&self, session: &mut Session, rec: &mut RequestRecord) -> Result<bool> {
        // This request's config and state, to its end, whatever reloads.
        let live = self.store.load_full();
        let req = session.req_header();
        let path = req.uri.path();
        let hint = dialect_hint(path, req.headers.contains_key("anthropic-version"));
        let endpoint = classify(req.method.as_str(), path);
        rec.quiet = Plane::Admin.serves(endpoint)
            && !matches!(endpoint, Endpoint::Health | Endpoint::HealthReport)
            && (req.method == http::Method::GET || req.method == http::Method::HEAD);
        let outcome = match endpoint {
            _ if ambiguous_framing(session) => {
                // The body's end is unknowable: nothing after it on this
                // connection can be trusted to be a request of its own.
                session.set_keepalive(None);
                Err(ApiError::invalid(
                    "ambiguous body framing: Transfer-Encoding must be exactly \"chunked\" \
                     and never combined with Content-Length",
                ))
            }
            _ if head_too_large(req, &live.config.downstream) => Err(ApiError::new(
                ErrorKind::RequestTooLarge,
                "request headers are too large or too many",
            )
            .with_status(431)),
            _ if !self.plane.serves(endpoint) => Err(ApiError::new(
                ErrorKind::NotFound,
                format!("no route for {path}"),
            )),
            // A browser opening the gateway's address lands on the UI;
            // API clients and probes still get the health answer.
            Endpoint::Health if path == "/" && self.plane != Plane::Llm && wants_html(req) => {
                crate::admin::assets::to_ui(session, rec).await
            }
            Endpoint::Health => endpoints::health(session, rec).await,
            Endpoint::HealthReport => {
                endpoints::health_report(session, rec, &live, self.admin.started).await
            }
            Endpoint::NotFound => Err(ApiError::new(
                ErrorKind::NotFound,
                format!("no route for {path}"),
            )),
            Endpoint::MethodNotAllowed => {
                let mut e =
                    ApiError::invalid(format!("method {} is not allowed on {path}", req.method));
                e.status = Some(405);
                Err(e)
            }
            Endpoint::Models => endpoints::models(session, rec, &live, hint).await,
            Endpoint::Model => endpoints::model(session, rec, &live, hint).await,
            Endpoint::ModelTest => {
                Box::pin(endpoints::model_test(&self.upstream, session, rec, &live)).await
            }
            Endpoint::ResponsesSocket => {
                Box::pin(websocket::serve(self, session, rec, &live)).await
            }
            Endpoint::StoredResponse => {
                let store = self.conversations;
                Box::pin(endpoints::stored_response(
                    &self.upstream,
                    session,
                    rec,
                    &live,
                    store,
                ))
                .await
            }
            Endpoint::CountTokens(dialect) => {
                Box::pin(endpoints::count_tokens(
                    &self.upstream,
                    session,
                    rec,
                    &live,
                    dialect,
                ))
                .await
            }
            Endpoint::Embeddings(dialect) => {
                Box::pin(embeddings::embeddings(
                    &self.upstream,
                    session,
                    rec,
                    &live,
                    dialect,
                ))
                .await
            }
            Endpoint::UpstreamKeyStats => endpoints::key_stats(session, rec, &live).await,
            Endpoint::Metrics => crate::metrics::serve(session, rec, &live).await,
            Endpoint::AdminKeys => {
                Box::pin(crate::admin::keys::keys(
                    &self.admin,
                    session,
                    rec,
                    &live,
                    self.key_store.as_ref(),
                ))
                .await
            }
            Endpoint::AdminUsage => {
                // Rows are there to read only when they are recorded.
                let store = self.usage.as_ref().and(self.key_store.as_ref());
                Box::pin(crate::admin::usage::usage(
                    &self.admin,
                    session,
                    rec,
                    &live,
                    store,
                ))
                .await
            }
            Endpoint::AdminLogs => {
                crate::admin::logs::logs(&self.admin, session, rec, &live, &self.journal).await
            }
            Endpoint::AdminConversations => {
                Box::pin(crate::admin::logs::conversations(
                    &self.admin,
                    session,
                    rec,
                    &live,
                    &self.journal,
                ))
                .await
            }
            Endpoint::Admin => Box::pin(crate::admin::api(&self.admin, session, rec, &live)).await,
            Endpoint::Ui => crate::admin::assets::serve(session, rec).await,
            Endpoint::Generate(dialect) => {
                rec.client.dialect = Some(dialect);
                // Boxed: a small `request_filter` future is cheap for Pingora to move.
                Box::pin(generate::generate(
                    &self.upstream,
                    session,
                    rec,
                    &live,
                    dialect,
                    generate::Call::Native,
                    &self.drain,
                    self.conversations,
                ))
                .await
            }
            Endpoint::RouteInvoke => {
                rec.client.dialect = Some(filters::Dialect::OpenAiChat);
                Box::pin(generate::generate(
                    &self.upstream,
                    session,
                    rec,
                    &live,
                    filters::Dialect::OpenAiChat,
                    generate::Call::Invoke,
                    &self.drain,
                    self.conversations,
                ))
                .await
            }
        };
        if let Err(e) = outcome {
            let dialect = rec.client.dialect.unwrap_or(match endpoint {
                Endpoint::CountTokens(d) | Endpoint::Embeddings(d) => d,
                _ => hint,
            });
            let attempts = (!rec.attempts.is_empty() || rec.client.routed.by.is_some())
                .then(|| rec.attempts_header());
            respond_error(session, rec, dialect, &e, attempts).await;
        }
        Ok(true)
    }

    /// Every request is answered in `request_filter`; reaching the stock
    /// proxy flow is a bug, reported rather than proxied anywhere.
    async fn upstream_peer(
        &self,
        _session: &mut Session,
        _rec: &mut RequestRecord,
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
        rec: &mut RequestRecord,
    ) {
        let live = self.store.load();
        rec.price(&live.config.prices);
        rec.settle_limits().await;
        // A refused or failed read is still worth its line and its row.
        let quiet = rec.quiet && rec.result.status < 400;
        if let Some(usage) = self.usage.as_ref().filter(|_| !quiet) {
            usage.record(crate::usage::UsageRow::of(session, rec));
        }
        crate::metrics::observe(rec, &live);
        if let Some(capture) = rec.conversation.take() {
            let entry = crate::journal::Entry::of(rec, capture);
            self.journal.conversations.record(entry);
        }
        self.tracer
            .record(session.req_header(), rec, live.config.telemetry.as_ref());
        if !quiet && log::log_enabled!(log::Level::Info) {
            match live.config.access_log {
                crate::config::AccessLog::Text => access_log::write(session, rec),
                crate::config::AccessLog::Json => access_log::write_json(session, rec),
                crate::config::AccessLog::Off => {}
            }
        }
    }
}

/// A browser's navigation: `Accept` lists `text/html`.
fn wants_html(req: &pingora::http::RequestHeader) -> bool {
    req.headers
        .get(http::header::ACCEPT)
        .is_some_and(|v| memchr::memmem::find(v.as_bytes(), b"text/html").is_some())
}

/// A request whose body length two parsers could read differently — the
/// root of request smuggling. Pingora already refuses conflicting
/// Content-Length values and obs-folded lines; with both Transfer-Encoding
/// and Content-Length it drops the latter before we see the head, so that
/// pair is found in the raw head (read only when Transfer-Encoding is
/// there at all, which ordinary LLM clients never send).
fn ambiguous_framing(session: &Session) -> bool {
    let req = session.req_header();
    let mut te = req.headers.get_all(http::header::TRANSFER_ENCODING).iter();
    match (te.next(), te.next()) {
        (None, _) => false,
        (Some(_), Some(_)) => true,
        (Some(v), None) => {
            !v.as_bytes().trim_ascii().eq_ignore_ascii_case(b"chunked")
                || req.headers.contains_key(http::header::CONTENT_LENGTH)
                || session
                    .as_downstream()
                    .as_http1()
                    .is_some_and(|h1| has_content_length_line(&h1.get_headers_raw_bytes()))
        }
    }
}

/// Whether a raw request head has a `Content-Length` header line.
fn has_content_length_line(head: &[u8]) -> bool {
    head.split(|&b| b == b'\n')
        .skip(1)
        .any(|line| line.len() > 15 && line[..15].eq_ignore_ascii_case(b"content-length:"))
}

/// The request head against `max_request_headers` and
/// `max_request_header_bytes` (target and header lines together).
fn head_too_large(req: &pingora::http::RequestHeader, limits: &crate::config::Downstream) -> bool {
    if req.headers.len() > limits.max_request_headers {
        return true;
    }
    let target = req.uri.path_and_query().map_or(0, |p| p.as_str().len());
    let fields: usize = req
        .headers
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 4)
        .sum();
    target + fields > limits.max_request_header_bytes
}
