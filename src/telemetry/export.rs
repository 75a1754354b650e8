//! The exporter: spans from the queue in batches (up to `batch_max`, or
//! whatever came within `batch_interval` of the first), POSTed as OTLP/JSON
//! to `{otlp_endpoint}/v1/traces` (`collector.rs` holds the HTTP side).
//! A batch the collector could take later (a broken connection, a timeout,
//! `429`, `502`-`504`) is tried again with backoff a couple of times, then
//! dropped and counted: traces never hold memory without bound, nor
//! anything on the request path.

use super::collector::{Collector, PostError};
use super::{otlp, Pending, Tracer};
use crate::config::Telemetry;
use crate::state::LiveStore;
use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Tries of one batch before it is dropped.
const TRIES: u32 = 3;
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
/// At most one warning per this while exports keep failing.
const WARN_EVERY: Duration = Duration::from_secs(30);

/// What one step of the exporter did.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Step {
    Sent,
    /// Traces were turned off meanwhile: what was queued is dropped.
    Dropped,
    /// The queue is closed: the exit flush has taken over.
    Closed,
}

/// The one exporter of spans, a background service.
pub struct Exporter {
    pub tracer: Arc<Tracer>,
    pub store: LiveStore,
}

#[async_trait]
impl BackgroundService for Exporter {
    async fn start(&self, _shutdown: ShutdownWatch) {
        // Runs until the exit flush closes the queue: requests still in
        // flight after the shutdown signal are traced meanwhile.
        let mut collector = Collector::lazy();
        while self.tracer.step(&mut collector, &self.store).await != Step::Closed {}
    }
}

impl Tracer {
    /// One batch from the queue to the collector. Every wait ends at once
    /// when the exit flush asks for the queue (`Step::Closed`): spans taken
    /// but not sent stay in the carry, for the flush to send.
    pub(super) async fn step(&self, collector: &mut Collector, store: &LiveStore) -> Step {
        let mut closing = self.closing.subscribe();
        let mut p = tokio::select! {
            p = self.pending.lock() => p,
            () = closed(&mut closing) => return Step::Closed,
        };
        if p.carry.is_empty() {
            tokio::select! {
                spans = p.queue.recv() => match spans {
                    Some(spans) => p.carry = spans,
                    None => return Step::Closed,
                },
                () = closed(&mut closing) => return Step::Closed,
            }
        }
        // Read now: a reload may have turned traces off, or moved them.
        let Some(settings) = store.load().config.telemetry.clone() else {
            let n = p.carry.len();
            p.carry.clear();
            self.count_dropped(n);
            return Step::Dropped;
        };
        let until = tokio::time::Instant::now() + settings.batch_interval;
        while p.carry.len() < settings.batch_max {
            tokio::select! {
                spans = tokio::time::timeout_at(until, p.queue.recv()) => match spans {
                    Ok(Some(spans)) => p.carry.extend(spans),
                    Ok(None) | Err(_) => break,
                },
                () = closed(&mut closing) => return Step::Closed,
            }
        }
        let batch = take_batch(&mut p, settings.batch_max);
        self.export(collector, &settings, &batch).await;
        Step::Sent
    }

    /// Closes the queue and sends everything left, one batch after another.
    pub(super) async fn finish(&self, collector: &mut Collector, settings: &Telemetry) {
        let mut p = self.pending.lock().await;
        p.queue.close();
        while let Ok(spans) = p.queue.try_recv() {
            p.carry.extend(spans);
        }
        while !p.carry.is_empty() {
            let batch = take_batch(&mut p, settings.batch_max);
            self.export(collector, settings, &batch).await;
        }
    }

    /// One batch, tried up to `TRIES` times; counted as exported or dropped.
    async fn export(&self, collector: &mut Collector, t: &Telemetry, batch: &[super::Span]) {
        let body = otlp::encode(batch, &t.service_name);
        let mut backoff = FIRST_BACKOFF;
        for attempt in 1..=TRIES {
            match collector.post(t, &body).await {
                Ok(()) => {
                    self.count_exported(batch.len());
                    let recovered = self
                        .last_warning
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .take()
                        .is_some();
                    if recovered {
                        log::info!(
                            "traces: the collector at {} takes spans again",
                            t.host_header
                        );
                    }
                    return;
                }
                Err(PostError::Retry(_)) if attempt < TRIES => {
                    tokio::time::sleep(backoff).await;
                    backoff *= 2;
                }
                Err(e) => {
                    self.count_dropped(batch.len());
                    self.warn(t, batch.len(), &e);
                    return;
                }
            }
        }
    }

    fn warn(&self, t: &Telemetry, n: usize, e: &PostError) {
        let mut last = self.last_warning.lock().unwrap_or_else(|e| e.into_inner());
        if last.is_none_or(|at| at.elapsed() >= WARN_EVERY) {
            // The endpoint, never the headers: they may carry credentials.
            log::warn!(
                "traces: {n} spans dropped, the collector at {} failed: {e}",
                t.host_header
            );
            *last = Some(Instant::now());
        }
    }
}

/// Resolves once the exit flush has asked for the queue.
async fn closed(closing: &mut tokio::sync::watch::Receiver<bool>) {
    // An error: the sender is gone with the tracer, which cannot be.
    let _ = closing.wait_for(|&c| c).await;
}

/// Up to `max` spans from the front of the carry.
fn take_batch(p: &mut Pending, max: usize) -> Vec<super::Span> {
    if p.carry.len() <= max {
        return std::mem::take(&mut p.carry);
    }
    let rest = p.carry.split_off(max.max(1));
    std::mem::replace(&mut p.carry, rest)
}

/// Sends what is left at exit, blocking for at most `within`; what is not
/// sent by then is dropped.
pub fn flush_now(tracer: &Tracer, store: &LiveStore, within: Duration) {
    let settings = store.load().config.telemetry.clone();
    // The exporter lets go of the queue, whatever it was waiting for.
    tracer.closing.send_replace(true);
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            log::warn!("traces: spans not sent at exit: {e}");
            return;
        }
    };
    // The timer and the connector are made inside the runtime.
    let done = rt.block_on(async {
        let mut collector = Collector::lazy();
        match &settings {
            Some(t) => tokio::time::timeout(within, tracer.finish(&mut collector, t))
                .await
                .is_ok(),
            None => true,
        }
    });
    let (exported, dropped) = tracer.counts();
    if !done {
        log::warn!("traces: the collector did not take the last spans in time");
    }
    if dropped > 0 {
        log::info!("traces: {exported} spans exported and {dropped} dropped since start");
    }
}
