//! Optional OpenTelemetry traces of the GenAI semantic conventions: one
//! span per request, one child per target tried, exported over OTLP/HTTP
//! while `[telemetry] otlp_endpoint` is set.
//!
//! Spans are built after the fact, from the request record, when Pingora's
//! logging phase runs (`Tracer::record`): no tracing library runs while a
//! request is served. A request's spans go into a bounded queue without
//! waiting (a full queue drops them, counted); one exporter (`Exporter`, a
//! background service) batches them and POSTs them to the collector. The
//! settings are read from the live snapshot, so a reload turns traces on,
//! off or elsewhere; off, a request pays one branch.
//!
//! A client's W3C `traceparent` is honoured: its trace goes on, the
//! gateway's span a child of the caller's, sampled as the caller decided.
//! Without one, `[telemetry] sample_ratio` of requests are traced.

mod collector;
mod context;
mod export;
mod otlp;
mod span;
#[cfg(test)]
mod tests;

pub use context::TraceParent;
pub use export::{flush_now, Exporter};

use crate::config::Telemetry;
use crate::record::RequestRecord;
use filters::ingress::{classify, Endpoint};
use span::{Clock, Inbound, Span};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;
use tokio::sync::mpsc;

/// Requests' spans held while the exporter catches up: a few spans of
/// under a kilobyte each per request, a few tens of MB at worst.
pub const QUEUE_TRACES: usize = 4096;

/// The W3C limit on a `tracestate` value; a longer one is not carried.
const MAX_TRACE_STATE: usize = 512;

/// The request path's handle, shared with the exporter.
pub struct Tracer {
    queue: mpsc::Sender<Vec<Span>>,
    /// The exporter's side. A lock so the exit flush can take over between
    /// two of the exporter's batches.
    pending: tokio::sync::Mutex<Pending>,
    /// Set by the exit flush: the exporter stops waiting and lets go.
    closing: tokio::sync::watch::Sender<bool>,
    exported: AtomicU64,
    dropped: AtomicU64,
    /// When the export last failed and said so; warnings are spaced out.
    last_warning: std::sync::Mutex<Option<Instant>>,
}

struct Pending {
    queue: mpsc::Receiver<Vec<Span>>,
    /// Spans taken from the queue past the last batch's size, sent first
    /// in the next one.
    carry: Vec<Span>,
}

impl Default for Tracer {
    fn default() -> Self {
        Self::with_capacity(QUEUE_TRACES)
    }
}

impl Tracer {
    /// A queue of `capacity` requests' spans.
    pub fn with_capacity(capacity: usize) -> Self {
        let (queue, rx) = mpsc::channel(capacity.max(1));
        Self {
            queue,
            pending: tokio::sync::Mutex::new(Pending {
                queue: rx,
                carry: Vec::new(),
            }),
            closing: tokio::sync::watch::Sender::new(false),
            exported: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            last_warning: std::sync::Mutex::new(None),
        }
    }

    /// The spans of a request that has ended, queued without waiting;
    /// nothing while `settings` is `None` (traces off) or the request is
    /// not a model call (health checks, listings, the admin API).
    pub fn record(
        &self,
        req: &pingora::http::RequestHeader,
        rec: &RequestRecord,
        settings: Option<&Telemetry>,
    ) {
        let Some(settings) = settings else {
            return;
        };
        let path = req.uri.path();
        let operation = match classify(req.method.as_str(), path) {
            Endpoint::Generate(d) => span::operation(d, false),
            Endpoint::Embeddings(d) => span::operation(d, true),
            _ => return,
        };
        let header = |name: &str| req.headers.get(name).and_then(|v| v.to_str().ok());
        let parent = header("traceparent").and_then(TraceParent::parse);
        if !sampled(parent.as_ref(), settings.sample_ratio) {
            return;
        }
        let trace_state = parent
            .and(header("tracestate"))
            .map(str::trim)
            .filter(|s| !s.is_empty() && s.len() <= MAX_TRACE_STATE)
            .map(str::to_owned);
        let inbound = Inbound {
            operation,
            method: req.method.as_str().to_owned(),
            path: path.to_owned(),
            parent,
            trace_state,
        };
        let spans = span::build(rec, &inbound, &Clock::now(), &mut fastrand::Rng::new());
        self.push(spans);
    }

    /// Never waits: a full (or closed) queue drops the spans, counted.
    fn push(&self, spans: Vec<Span>) {
        if let Err(e) = self.queue.try_send(spans) {
            let spans = match e {
                mpsc::error::TrySendError::Full(s) | mpsc::error::TrySendError::Closed(s) => s,
            };
            self.count_dropped(spans.len());
        }
    }

    fn count_dropped(&self, n: usize) {
        self.dropped.fetch_add(n as u64, Ordering::Relaxed);
        crate::metrics::trace_spans("dropped", n);
    }

    fn count_exported(&self, n: usize) {
        self.exported.fetch_add(n as u64, Ordering::Relaxed);
        crate::metrics::trace_spans("exported", n);
    }

    /// Spans the collector accepted, and spans dropped, since start.
    pub fn counts(&self) -> (u64, u64) {
        (
            self.exported.load(Ordering::Relaxed),
            self.dropped.load(Ordering::Relaxed),
        )
    }
}

/// Whether a request is traced: as its caller decided, else by the ratio.
fn sampled(parent: Option<&TraceParent>, ratio: f64) -> bool {
    match parent {
        Some(p) => p.sampled,
        None if ratio >= 1.0 => true,
        None => ratio > 0.0 && fastrand::f64() < ratio,
    }
}
