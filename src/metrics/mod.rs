//! Prometheus metrics at `GET /metrics`. Counters and histograms are fed
//! from the one request record when the request ends (`observe`), so they
//! agree with the access log and usage rows; breaker and key-pool gauges
//! are computed from the live state when scraped, so a reload never leaves
//! stale series behind.
//!
//! Every label value is a config name or a member of a closed set (a model
//! the client named but the config does not route is `other`), so the
//! number of series stays bounded whatever clients send.

use crate::downstream::respond;
use crate::record::{AttemptOutcome, RequestRecord};
use crate::state::Live;
use bytes::Bytes;
use filters::breaker::BreakerState;
use filters::error::{ApiError, ErrorKind};
use filters::key_pool::KeyState;
use once_cell::sync::Lazy;
use pingora::proxy::Session;
use prometheus::{
    CounterVec, Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec,
    IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};
use std::sync::Mutex;
use std::time::Duration;

#[cfg(test)]
mod tests;

/// Seconds: LLM calls run from tens of milliseconds (a cached short
/// answer) to minutes (long reasoning streams).
const LATENCY_BUCKETS: &[f64] = &[
    0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];

/// The gateway's own time is small: finer buckets, down to 100 µs.
const OVERHEAD_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
];

/// The model label of a requested model the config does not route.
const OTHER: &str = "other";
/// No model was named, or no provider served the request.
const NONE: &str = "none";

/// The registered families. One per process: the record is observed in
/// Pingora's `logging` hook, which has no other handle to reach.
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    tokens: IntCounterVec,
    duration: HistogramVec,
    first_byte: HistogramVec,
    overhead: Histogram,
    attempts: IntCounterVec,
    streams: IntGauge,
    breaker_open: IntGaugeVec,
    upstream_keys: IntGaugeVec,
    limit_refusals: IntCounterVec,
    trace_spans: IntCounterVec,
    cost: CounterVec,
    usage_queue: IntGauge,
    usage_spilled: IntCounter,
    usage_written: IntCounter,
    usage_write: Histogram,
    /// Scrape-time gauges are reset and refilled; two scrapes at once must
    /// not see each other's half-filled sets.
    scrape: Mutex<()>,
}

/// `None` only if registration failed (a duplicate name: a bug, logged
/// once); the gateway then serves without metrics rather than not at all.
static METRICS: Lazy<Option<Metrics>> = Lazy::new(|| match Metrics::new() {
    Ok(m) => Some(m),
    Err(e) => {
        log::error!("metrics disabled: {e}");
        None
    }
});

impl Metrics {
    fn new() -> prometheus::Result<Self> {
        let registry = Registry::new();
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels)?;
            registry.register(Box::new(c.clone()))?;
            Ok::<_, prometheus::Error>(c)
        };
        let histogram = |name: &str, help: &str, labels: &[&str], buckets: &[f64]| {
            let opts = HistogramOpts::new(name, help).buckets(buckets.to_vec());
            let h = HistogramVec::new(opts, labels)?;
            registry.register(Box::new(h.clone()))?;
            Ok::<_, prometheus::Error>(h)
        };
        let gauge = |name: &str, help: &str, labels: &[&str]| {
            let g = IntGaugeVec::new(Opts::new(name, help), labels)?;
            registry.register(Box::new(g.clone()))?;
            Ok::<_, prometheus::Error>(g)
        };
        let requests = counter(
            "modelswitch_requests_total",
            "LLM API requests answered, by requested model, serving provider, client dialect, status and outcome.",
            &["model", "provider", "dialect", "status", "outcome"],
        )?;
        let tokens = counter(
            "modelswitch_tokens_total",
            "Tokens the upstreams reported, by requested model, serving provider and type.",
            &["model", "provider", "type"],
        )?;
        let duration = histogram(
            "modelswitch_request_duration_seconds",
            "Total time of an LLM API request, from arrival to its last byte.",
            &["model", "provider"],
            LATENCY_BUCKETS,
        )?;
        let first_byte = histogram(
            "modelswitch_time_to_first_byte_seconds",
            "The serving upstream's time to its first real event (or whole body).",
            &["model", "provider"],
            LATENCY_BUCKETS,
        )?;
        let overhead = Histogram::with_opts(
            HistogramOpts::new(
                "modelswitch_gateway_overhead_seconds",
                "Total time minus the upstreams' time, for unary requests where every upstream time is known.",
            )
            .buckets(OVERHEAD_BUCKETS.to_vec()),
        )?;
        registry.register(Box::new(overhead.clone()))?;
        let attempts = counter(
            "modelswitch_attempts_total",
            "Targets tried (or skipped), by provider, upstream model and outcome.",
            &["provider", "model", "outcome"],
        )?;
        let streams = IntGauge::new(
            "modelswitch_streams_in_flight",
            "Streams committed to a client and still running.",
        )?;
        registry.register(Box::new(streams.clone()))?;
        let breaker_open = gauge(
            "modelswitch_breaker_open",
            "1 while a target's circuit breaker is open or half-open, else 0.",
            &["provider", "model"],
        )?;
        let upstream_keys = gauge(
            "modelswitch_upstream_keys",
            "A provider's keys by state (active, cooling, disabled).",
            &["provider", "state"],
        )?;
        let limit_refusals = counter(
            "modelswitch_limit_refusals_total",
            "Requests a limit turned away, by the limit's scope (key, model, provider) and dimension.",
            &["scope", "dimension"],
        )?;
        let trace_spans = counter(
            "modelswitch_trace_spans_total",
            "Trace spans the OTLP collector accepted (exported) or that were dropped (queue full, export failed).",
            &["result"],
        )?;
        // Both series from the start, at 0: a rate over them works at once.
        for result in ["exported", "dropped"] {
            trace_spans.with_label_values(&[result]);
        }
        let cost = CounterVec::new(
            Opts::new(
                "modelswitch_cost_total",
                "What served requests cost at the price table, in units of the price's currency, by requested model, serving provider and currency.",
            ),
            &["model", "provider", "currency"],
        )?;
        registry.register(Box::new(cost.clone()))?;
        let int_counter = |name: &str, help: &str| {
            let c = IntCounter::new(name, help)?;
            registry.register(Box::new(c.clone()))?;
            Ok::<_, prometheus::Error>(c)
        };
        let usage_queue = IntGauge::new(
            "modelswitch_usage_queue_rows",
            "Usage rows waiting in memory for the writer (as of its last batch).",
        )?;
        registry.register(Box::new(usage_queue.clone()))?;
        let usage_spilled = int_counter(
            "modelswitch_usage_spilled_rows_total",
            "Usage rows written to the spill file because the queue was full or closed.",
        )?;
        let usage_written = int_counter(
            "modelswitch_usage_rows_written_total",
            "Usage rows the writer committed to the store (queue and spill replays).",
        )?;
        let usage_write = Histogram::with_opts(
            HistogramOpts::new(
                "modelswitch_usage_write_seconds",
                "Time of one committed batch of usage rows, from its start to the store's commit.",
            )
            .buckets(OVERHEAD_BUCKETS.to_vec()),
        )?;
        registry.register(Box::new(usage_write.clone()))?;
        Ok(Self {
            registry,
            requests,
            tokens,
            duration,
            first_byte,
            overhead,
            attempts,
            streams,
            breaker_open,
            upstream_keys,
            limit_refusals,
            trace_spans,
            cost,
            usage_queue,
            usage_spilled,
            usage_written,
            usage_write,
            scrape: Mutex::new(()),
        })
    }

    fn observe(&self, rec: &RequestRecord, live: &Live) {
        // The gateway's own endpoints (health, listings, admin, this one)
        // have no client dialect and are not LLM API traffic.
        let Some(dialect) = rec.client.dialect else {
            return;
        };
        let model = model_label(rec, live);
        let served = rec.served_by();
        let provider = served.map_or(NONE, |a| &*a.provider.name);
        let mut status = [0u8; 3];
        let status = status_label(rec.result.status, &mut status);
        self.requests
            .with_label_values(&[model, provider, dialect.name(), status, outcome(rec)])
            .inc();
        for a in &rec.attempts {
            let mut buf = OutcomeLabel::default();
            self.attempts
                .with_label_values(&[&*a.provider.name, &*a.model, buf.of(a.outcome)])
                .inc();
        }
        let total = rec.started.elapsed();
        self.duration
            .with_label_values(&[model, provider])
            .observe(total.as_secs_f64());
        if let Some(t) = served.and_then(|a| a.to_first_event) {
            self.first_byte
                .with_label_values(&[model, provider])
                .observe(t.as_secs_f64());
        }
        if let Some(o) = overhead(rec, total) {
            self.overhead.observe(o.as_secs_f64());
        }
        if let Some((scope, dimension)) = rec.result.refused {
            self.limit_refusals
                .with_label_values(&[scope.name(), dimension.name()])
                .inc();
        }
        if let Some(c) = &rec.result.cost {
            if c.total > 0 {
                self.cost
                    .with_label_values(&[model, provider, c.currency.as_str()])
                    .inc_by(c.total as f64 / 1e9);
            }
        }
        if let Some(u) = &rec.result.usage {
            for (kind, n) in token_counts(u) {
                if n > 0 {
                    self.tokens
                        .with_label_values(&[model, provider, kind])
                        .inc_by(n);
                }
            }
        }
    }

    /// The scrape: live-state gauges refreshed, then every family encoded.
    fn render(&self, live: &Live) -> Result<Vec<u8>, prometheus::Error> {
        let _one_scrape = self
            .scrape
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Reset first: targets and providers a reload removed disappear.
        self.breaker_open.reset();
        for (slot, (provider, model)) in live.config.target_slots.iter().enumerate() {
            let open = !matches!(live.breaker(slot).state(), BreakerState::Closed);
            self.breaker_open
                .with_label_values(&[&*provider.name, &**model])
                .set(i64::from(open));
        }
        self.upstream_keys.reset();
        let now = crate::exchange::now();
        for (p, state) in live.providers() {
            let mut counts = [0i64; 3];
            for (key, _) in state.key_pool().report(now) {
                counts[key_state_index(key)] += 1;
            }
            for (i, name) in ["active", "cooling", "disabled"].iter().enumerate() {
                self.upstream_keys
                    .with_label_values(&[&*p.name, name])
                    .set(counts[i]);
            }
        }
        let mut out = Vec::with_capacity(16 * 1024);
        TextEncoder::new().encode(&self.registry.gather(), &mut out)?;
        Ok(out)
    }
}

fn key_state_index(state: KeyState) -> usize {
    match state {
        KeyState::Active => 0,
        KeyState::Cooling { .. } => 1,
        KeyState::Disabled => 2,
    }
}

/// Records a finished request (Pingora's `logging` hook).
pub fn observe(rec: &RequestRecord, live: &Live) {
    if let Some(m) = METRICS.as_ref() {
        m.observe(rec, live);
    }
}

/// `n` trace spans exported or dropped (`result`).
pub fn trace_spans(result: &str, n: usize) {
    if let Some(m) = METRICS.as_ref() {
        m.trace_spans.with_label_values(&[result]).inc_by(n as u64);
    }
}

/// A row went to the usage spill file.
pub fn usage_spilled() {
    if let Some(m) = METRICS.as_ref() {
        m.usage_spilled.inc();
    }
}

/// The writer committed `rows` in `took`, leaving `queued` in the queue.
pub fn usage_written(rows: u64, took: Duration, queued: usize) {
    if let Some(m) = METRICS.as_ref() {
        m.usage_written.inc_by(rows);
        m.usage_write.observe(took.as_secs_f64());
        m.usage_queue.set(i64::try_from(queued).unwrap_or(i64::MAX));
    }
}

/// The writer found the queue empty.
pub fn usage_idle() {
    if let Some(m) = METRICS.as_ref() {
        m.usage_queue.set(0);
    }
}

/// Counts a committed stream until the guard drops.
pub fn stream_started() -> StreamGuard {
    let gauge = METRICS.as_ref().map(|m| m.streams.clone());
    if let Some(g) = &gauge {
        g.inc();
    }
    StreamGuard(gauge)
}

pub struct StreamGuard(Option<IntGauge>);

impl Drop for StreamGuard {
    fn drop(&mut self) {
        if let Some(g) = &self.0 {
            g.dec();
        }
    }
}

/// `GET /metrics`.
pub async fn serve(
    session: &mut Session,
    rec: &mut RequestRecord,
    live: &Live,
) -> Result<(), ApiError> {
    admit(live, session)?;
    let m = METRICS
        .as_ref()
        .ok_or_else(|| ApiError::new(ErrorKind::Api, "metrics are unavailable"))?;
    let body = m
        .render(live)
        .map_err(|e| ApiError::new(ErrorKind::Api, format!("metrics encoding failed: {e}")))?;
    let head = session.req_header().method == http::Method::HEAD;
    let body = Bytes::from(body);
    respond(session, rec, 200, prometheus::TEXT_FORMAT, body, &[], head).await;
    Ok(())
}

/// Who may scrape. Open by default: scrapers sit on the operator's
/// network, and the values name only configured models and providers,
/// never keys. `[server] metrics_require_key` asks for an admin or viewer
/// key, as the admin API's reads do.
fn admit(live: &Live, session: &Session) -> Result<(), ApiError> {
    if !live.config.metrics_require_key {
        return Ok(());
    }
    let key = crate::proxy::auth::authenticate_admin(live, session)?;
    crate::proxy::auth::require_viewer(&key)
}

/// The requested model, when the config routes it; else `other` (an
/// unknown name is client input and would grow the series without bound),
/// or `none` when the request named no model.
fn model_label<'a>(rec: &'a RequestRecord, live: &Live) -> &'a str {
    match rec.client.model.as_deref() {
        Some(m) if live.config.routes.contains_key(m) => m,
        Some(_) => OTHER,
        None => NONE,
    }
}

/// A status code as text without allocating (0 when nothing was sent).
fn status_label(status: u16, buf: &mut [u8; 3]) -> &str {
    if !(100..=999).contains(&status) {
        return "0";
    }
    buf[0] = b'0' + (status / 100) as u8;
    buf[1] = b'0' + (status / 10 % 10) as u8;
    buf[2] = b'0' + (status % 10) as u8;
    std::str::from_utf8(buf).unwrap_or("0")
}

/// How a request ended, from the record alone:
/// `ok`, `client_error`, `upstream_error`, `refused`, `client_left`.
fn outcome(rec: &RequestRecord) -> &'static str {
    let left = rec.result.status == 499
        || rec
            .attempts
            .iter()
            .any(|a| a.outcome == AttemptOutcome::ClientLeft)
        // Left mid-stream: the status was already 200 (exchange::stream).
        || rec
            .result
            .error
            .as_deref()
            .is_some_and(|e| e.starts_with("client went away"));
    if left || rec.result.status == 0 {
        return "client_left";
    }
    let upstream_failed = rec
        .attempts
        .iter()
        .any(|a| matches!(a.outcome, AttemptOutcome::Failed(_)));
    match rec.result.status {
        // Committed, then the upstream failed: the client got an
        // in-stream error under a 200.
        200..=299 if rec.result.error.is_some() => "upstream_error",
        200..=299 => "ok",
        // A limit turned it away before any upstream saw it; a 429 an
        // upstream sent is the upstream's.
        429 if !upstream_failed => "refused",
        500..=599 | 429 => "upstream_error",
        _ => "client_error",
    }
}

/// The four usage buckets of PROTOCOLS.md plus reasoning: `input` is the
/// uncached part, `output` includes reasoning (as `output_total` does).
fn token_counts(u: &filters::canonical::Usage) -> [(&'static str, u64); 5] {
    [
        ("input", u.input_uncached),
        ("cache_read", u.cache_read),
        ("cache_write", u.cache_write),
        ("output", u.output_total),
        ("reasoning", u.reasoning),
    ]
}

/// Total time minus the upstreams' time, for a served unary request whose
/// every sent attempt has a known duration (a stream's upstream time is
/// its whole length, which the record does not hold).
fn overhead(rec: &RequestRecord, total: Duration) -> Option<Duration> {
    if rec.client.stream {
        return None;
    }
    rec.served_by()?;
    let mut upstream = Duration::ZERO;
    for a in &rec.attempts {
        let spent = match a.outcome {
            AttemptOutcome::Ok | AttemptOutcome::Failed(_) => a.to_first_event.or(a.to_status)?,
            // Not sent: no upstream time.
            _ => Duration::ZERO,
        };
        upstream += spent;
    }
    Some(total.saturating_sub(upstream))
}

/// An attempt outcome as a label: its `Display` text, written without
/// allocating (a test holds the two equal for every variant).
#[derive(Default)]
struct OutcomeLabel {
    status: [u8; 3],
}

impl OutcomeLabel {
    fn of(&mut self, outcome: AttemptOutcome) -> &str {
        use filters::failure::{FailureKind, Phase};
        match outcome {
            AttemptOutcome::Ok => "ok",
            AttemptOutcome::CircuitOpen => "circuit-open",
            AttemptOutcome::Unhealthy => "unhealthy",
            AttemptOutcome::KeysCooling => "keys-cooling",
            AttemptOutcome::ProviderLimit => "provider-limit",
            AttemptOutcome::NotAllowed => "not-allowed",
            AttemptOutcome::ClientLeft => "client-left",
            AttemptOutcome::Lacks(lack) => lack.label(),
            AttemptOutcome::Failed(kind) => match kind {
                FailureKind::Connect => "connect",
                FailureKind::Io => "io",
                FailureKind::BadResponse => "bad-response",
                FailureKind::Status(s) => status_label(s, &mut self.status),
                FailureKind::Timeout(p) => match p {
                    Phase::FirstByte => "timeout-first-byte",
                    Phase::FirstEvent => "timeout-first-event",
                    Phase::Body => "timeout-body",
                    Phase::Idle => "timeout-idle",
                    Phase::Total => "timeout-total",
                },
            },
        }
    }
}

/// The process's totals since start, for the UI's live dashboard (which
/// takes rates and quantiles from the difference of two polls).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Totals {
    pub requests: u64,
    /// Answers whose outcome is not `ok` (a client that left is not one).
    pub errors: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub streams_in_flight: i64,
    /// Request durations over every model: the upper bounds and the
    /// cumulative count at each (the last bound is +Inf).
    pub latency_le: Vec<f64>,
    pub latency_counts: Vec<u64>,
    pub latency_count: u64,
    pub latency_sum: f64,
}

/// The dashboard's figures, summed over every label set.
pub fn totals() -> Totals {
    let Some(m) = METRICS.as_ref() else {
        return Totals::default();
    };
    use prometheus::core::Collector;
    let label = |metric: &prometheus::proto::Metric, name: &str| {
        metric
            .get_label()
            .iter()
            .find(|l| l.name() == name)
            .map(|l| l.value().to_owned())
    };
    let mut t = Totals {
        latency_le: LATENCY_BUCKETS.to_vec(),
        latency_counts: vec![0; LATENCY_BUCKETS.len() + 1],
        streams_in_flight: m.streams.get(),
        ..Totals::default()
    };
    t.latency_le.push(f64::INFINITY);
    for family in m.requests.collect() {
        for metric in family.get_metric() {
            let n = metric.get_counter().get_value() as u64;
            t.requests += n;
            let outcome = label(metric, "outcome");
            if !matches!(outcome.as_deref(), Some("ok" | "client_left")) {
                t.errors += n;
            }
        }
    }
    for family in m.tokens.collect() {
        for metric in family.get_metric() {
            let n = metric.get_counter().get_value() as u64;
            match label(metric, "type").as_deref() {
                Some("input" | "cache_read" | "cache_write") => t.input_tokens += n,
                Some("output") => t.output_tokens += n,
                _ => {}
            }
        }
    }
    for family in m.duration.collect() {
        for metric in family.get_metric() {
            let h = metric.get_histogram();
            t.latency_count += h.get_sample_count();
            t.latency_sum += h.get_sample_sum();
            for (i, b) in h.get_bucket().iter().enumerate() {
                if let Some(c) = t.latency_counts.get_mut(i) {
                    *c += b.cumulative_count();
                }
            }
        }
    }
    if let Some(last) = t.latency_counts.last_mut() {
        *last = t.latency_count;
    }
    t
}
