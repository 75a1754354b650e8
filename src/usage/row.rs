//! One usage row, built from the request record when the request ends.
//! Built on the request path, so it is a few small strings and the
//! attempts as one short JSON text — nothing else is measured here.

use crate::record::RequestRecord;
use filters::Dialect;
use pingora::proxy::Session;
use serde::{Deserialize, Serialize};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UsageRow {
    /// Unix milliseconds when the request started.
    pub ts: i64,
    pub request_id: String,
    pub key_name: Option<String>,
    pub dialect: Option<String>,
    /// The request path.
    pub endpoint: String,
    /// The model the client asked for.
    pub model: Option<String>,
    /// Who served it.
    pub provider: Option<String>,
    pub upstream_model: Option<String>,
    /// `[{"provider","model","outcome","key"}]`, in order.
    pub attempts: String,
    pub status: u16,
    pub stream: bool,
    pub input_uncached: u64,
    pub cache_read: u64,
    pub cache_write: u64,
    /// Visible output plus reasoning.
    pub output: u64,
    pub reasoning: u64,
    pub cost_nanos: Option<i64>,
    pub currency: Option<String>,
    pub latency_ms: f64,
    /// The served attempt's time to its first event.
    pub ttfb_ms: Option<f64>,
    /// The gateway's own time: total minus the upstream's, when known.
    pub overhead_ms: Option<f64>,
    pub bytes_in: Option<u64>,
    pub bytes_out: Option<u64>,
    pub client_addr: Option<String>,
    pub user_agent: Option<String>,
    /// The agent's session (`x-claude-code-session-id`, Codex's `session-id`).
    pub session_id: Option<String>,
    pub error: Option<String>,
    /// The configured model the request was routed to, when routing chose
    /// it (an alias, a rule, the classifier); what chose it; the
    /// classifier's scene. Absent from spill lines written before them.
    #[serde(default)]
    pub routed_model: Option<String>,
    #[serde(default)]
    pub routed_by: Option<String>,
    #[serde(default)]
    pub scene: Option<String>,
}

/// What the row needs from the client's request, apart from the record.
#[derive(Debug, Default)]
pub struct Client {
    pub endpoint: String,
    pub bytes_in: Option<u64>,
    pub bytes_out: Option<u64>,
    pub client_addr: Option<String>,
    pub user_agent: Option<String>,
    /// The agent session when the request path found none
    /// (`rec.client.session` wins).
    pub session_id: Option<String>,
}

impl UsageRow {
    /// The row of a request that has ended.
    pub fn of(session: &Session, rec: &RequestRecord) -> Self {
        let req = session.req_header();
        let header = |name: &str| {
            req.headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let read = session.body_bytes_read();
        // A body the gateway never read (refused early) still had a length.
        let bytes_in = if read > 0 {
            Some(read as u64)
        } else {
            header("content-length").and_then(|v| v.trim().parse().ok())
        };
        let client = Client {
            endpoint: req.uri.path().to_owned(),
            bytes_in,
            bytes_out: Some(session.body_bytes_sent() as u64),
            client_addr: session.client_addr().map(|a| a.to_string()),
            user_agent: header("user-agent"),
            // The request path reads every spelling (`filters::session`).
            session_id: None,
        };
        Self::from_record(rec, client, rec.started.elapsed())
    }

    /// The row from the record and the client's side; `elapsed` is the
    /// request's total time.
    pub fn from_record(rec: &RequestRecord, client: Client, elapsed: Duration) -> Self {
        let served = rec.served_by();
        let usage = rec.result.usage.unwrap_or_default();
        let now_ms = i64::try_from(unix_ms()).unwrap_or(i64::MAX);
        let elapsed_ms = i64::try_from(elapsed.as_millis()).unwrap_or(0);
        let ttfb = served.and_then(|a| a.to_first_event);
        // A non-streamed answer's first event is its whole body, so the
        // upstream's time is known; a stream's runs to the end and is not.
        // With no attempt sent, the whole time was the gateway's.
        let overhead = match (served, rec.client.stream) {
            (Some(_), false) => ttfb.map(|t| elapsed.saturating_sub(t)),
            (None, _) if rec.attempts.iter().all(|a| a.to_status.is_none()) => Some(elapsed),
            _ => None,
        };
        Self {
            ts: now_ms.saturating_sub(elapsed_ms),
            request_id: rec.id.clone(),
            key_name: rec.client.key_name.clone(),
            dialect: rec.client.dialect.map(|d| Dialect::name(d).to_owned()),
            endpoint: client.endpoint,
            model: rec.client.model.clone().map(no_nul),
            provider: served.map(|a| a.provider.name.to_string()),
            upstream_model: served.map(|a| a.model.to_string()),
            attempts: attempts_json(rec),
            status: rec.result.status,
            stream: rec.client.stream,
            input_uncached: usage.input_uncached,
            cache_read: usage.cache_read,
            cache_write: usage.cache_write,
            output: usage.output_total,
            reasoning: usage.reasoning,
            cost_nanos: rec
                .result
                .cost
                .map(|c| i64::try_from(c.total).unwrap_or(i64::MAX)),
            currency: rec.result.cost.map(|c| c.currency.as_str().to_owned()),
            latency_ms: ms(elapsed),
            ttfb_ms: ttfb.map(ms),
            overhead_ms: overhead.map(ms),
            bytes_in: client.bytes_in,
            bytes_out: client.bytes_out,
            client_addr: client.client_addr,
            user_agent: client.user_agent.map(no_nul),
            // Found by the request path (`filters::session`), bounded and
            // charset-checked there.
            session_id: rec
                .client
                .session
                .as_deref()
                .map(str::to_owned)
                .or(client.session_id),
            error: rec.result.error.clone().map(no_nul),
            routed_model: text(rec.client.routed.model.as_ref()),
            routed_by: text(rec.client.routed.by.as_ref()),
            scene: text(rec.client.routed.scene.as_ref()),
        }
    }
}

fn text(s: Option<&std::sync::Arc<str>>) -> Option<String> {
    s.map(|s| no_nul(s.to_string()))
}

/// Client text without NUL characters: PostgreSQL cannot store them in a
/// text column, and one such row would fail its whole batch again and again.
/// (A model name is checked against the routes only after it is recorded.)
pub(super) fn no_nul(s: String) -> String {
    if s.contains('\0') {
        s.replace('\0', "")
    } else {
        s
    }
}

/// The wall clock in Unix milliseconds.
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Milliseconds with microsecond precision.
fn ms(d: Duration) -> f64 {
    d.as_micros() as f64 / 1000.0
}

#[derive(Serialize)]
struct AttemptCell<'a> {
    provider: &'a str,
    model: &'a str,
    outcome: String,
    /// The provider key's index: never a fragment of the key.
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<usize>,
}

fn attempts_json(rec: &RequestRecord) -> String {
    let cells: Vec<AttemptCell<'_>> = rec
        .attempts
        .iter()
        .map(|a| AttemptCell {
            provider: &a.provider.name,
            model: &a.model,
            outcome: a.outcome.to_string(),
            key: a.key,
        })
        .collect();
    // Plain strings and integers cannot fail to serialize.
    serde_json::to_string(&cells).unwrap_or_else(|_| "[]".to_owned())
}
