//! Usage rows, one per request, off the request path and never lost.
//!
//! `record` never waits: a row goes into a bounded queue, or — when the
//! queue is full or closed — as one line into a spill file beside the
//! database. One writer (`UsageWriter`, a background service) drains the
//! queue in batches into the store, keeps a failed batch and retries it
//! with backoff, and replays the spill file whenever the queue is empty
//! (and first thing at start). At exit, `flush_now` closes the queue and
//! writes what is left.

pub mod row;
pub(crate) mod spill;
#[cfg(test)]
mod tests;

pub use row::UsageRow;

use crate::store::{KeyStore, StoreError};
use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use spill::Spill;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Rows held in memory before they spill: ~64k rows of a few hundred
/// bytes each, tens of MB at worst.
pub const QUEUE_ROWS: usize = 65_536;
/// Rows per transaction: one fsync for many rows.
pub const BATCH_ROWS: usize = 500;
/// How long the writer sleeps when the queue held less than a batch.
const BATCH_WAIT: Duration = Duration::from_millis(100);
const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// At most one warning per this while the database keeps failing.
const WARN_EVERY: Duration = Duration::from_secs(30);

/// The request path's handle: cheap to call from every worker.
pub struct UsageSink {
    queue: mpsc::Sender<UsageRow>,
    /// The queue's other end, behind a lock held only to take rows (never
    /// across a wait), so the exit flush can always empty the queue — even
    /// while the writer is stuck in the store.
    rows: std::sync::Mutex<mpsc::Receiver<UsageRow>>,
    /// The writer's side. A lock so the exit flush can take over from the
    /// writer between two of its batches.
    writer: tokio::sync::Mutex<Writer>,
    spill: Spill,
    store: KeyStore,
}

struct Writer {
    /// Rows taken from the queue and not yet committed: kept across
    /// failures, so a database error loses nothing.
    pending: Vec<UsageRow>,
}

/// What one step of the writer did.
#[derive(Debug, PartialEq, Eq)]
enum Step {
    Wrote(u64),
    Idle,
    /// The queue is closed: the exit flush has taken over.
    Closed,
}

impl UsageSink {
    /// A sink writing into `store`, spilling beside the database at `db`,
    /// holding at most `capacity` rows in memory.
    pub fn with_capacity(store: KeyStore, db: &Path, capacity: usize) -> Self {
        let (queue, rx) = mpsc::channel(capacity.max(1));
        Self {
            queue,
            rows: std::sync::Mutex::new(rx),
            writer: tokio::sync::Mutex::new(Writer {
                pending: Vec::new(),
            }),
            spill: Spill::beside(db),
            store,
        }
    }

    /// Never waits: the queue, else the spill file.
    pub fn record(&self, row: UsageRow) {
        if let Err(e) = self.queue.try_send(row) {
            let row = match e {
                mpsc::error::TrySendError::Full(r) | mpsc::error::TrySendError::Closed(r) => r,
            };
            self.spill.write(&row);
        }
    }

    /// Rows written to the spill file since start.
    pub fn spilled(&self) -> u64 {
        self.spill.spilled.load(Ordering::Relaxed)
    }

    /// Rows waiting in the queue.
    pub fn queued(&self) -> usize {
        self.queue.max_capacity() - self.queue.capacity()
    }

    /// One batch from the queue into the store, or — with the queue empty —
    /// a replay of the spill file. Takes what is queued without waiting on
    /// the queue: a writer parked in `recv` is woken by every row, a
    /// cross-thread wake per request that measured more CPU than the row's
    /// insert; the writer sleeps between batches instead (`UsageWriter`).
    async fn step(&self) -> Result<Step, StoreError> {
        let mut w = self.writer.lock().await;
        if w.pending.is_empty() {
            if self.take(&mut w.pending, BATCH_ROWS) {
                return Ok(Step::Closed);
            }
            if w.pending.is_empty() {
                if self.spill.pending() {
                    let started = Instant::now();
                    let n = self.spill.replay(&self.store).await?;
                    crate::metrics::usage_written(n, started.elapsed(), self.queued());
                    return Ok(Step::Wrote(n));
                }
                crate::metrics::usage_idle();
                return Ok(Step::Idle);
            }
        }
        // Borrowed: the batch stays until it is committed.
        let started = Instant::now();
        let n = spill::insert(&self.store, &w.pending, self.spill.rejected()).await?;
        w.pending.clear();
        crate::metrics::usage_written(n, started.elapsed(), self.queued());
        Ok(Step::Wrote(n))
    }

    /// Closes the queue and writes everything left: the writer's batch, the
    /// queue, then the spill file. What the store refuses goes to the
    /// spill file, for the next start.
    pub async fn finish(&self) -> Result<(), StoreError> {
        let mut w = self.writer.lock().await;
        self.close(&mut w.pending);
        while !w.pending.is_empty() {
            let n = w.pending.len().min(BATCH_ROWS);
            if let Err(e) = spill::insert(&self.store, &w.pending[..n], self.spill.rejected()).await
            {
                self.spill_pending(&mut w);
                return Err(e);
            }
            w.pending.drain(..n);
        }
        if self.spill.pending() {
            self.spill.replay(&self.store).await?;
        }
        Ok(())
    }

    fn spill_pending(&self, w: &mut Writer) {
        for row in w.pending.drain(..) {
            self.spill.write(&row);
        }
    }

    /// Moves up to `most` queued rows into `into`; true when the queue is
    /// closed and empty.
    fn take(&self, into: &mut Vec<UsageRow>, most: usize) -> bool {
        let mut rows = self
            .rows
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        while into.len() < most {
            match rows.try_recv() {
                Ok(row) => into.push(row),
                Err(mpsc::error::TryRecvError::Empty) => return false,
                Err(mpsc::error::TryRecvError::Disconnected) => return into.is_empty(),
            }
        }
        false
    }

    /// Closes the queue (later rows spill) and moves what it holds into
    /// `into`.
    fn close(&self, into: &mut Vec<UsageRow>) {
        let mut rows = self
            .rows
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        rows.close();
        while let Ok(row) = rows.try_recv() {
            into.push(row);
        }
    }
}

/// Writes what is left at exit, blocking for at most `within`; rows not
/// written by then are left in the spill file for the next start.
pub fn flush_now(sink: &UsageSink, within: Duration) {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            log::warn!("usage: rows not written at exit: {e}");
            return;
        }
    };
    // The timer is made inside the runtime: outside, tokio panics.
    match rt.block_on(async { tokio::time::timeout(within, sink.finish()).await }) {
        Ok(Ok(())) => {
            let spilled = sink.spilled();
            if spilled > 0 {
                log::info!("usage: {spilled} rows went through the spill file since start");
            }
        }
        Ok(Err(e)) => log::warn!(
            "usage: rows not written at exit, kept in {}: {e}",
            sink.spill.path().display()
        ),
        Err(_) => {
            // The queue is always reachable: its rows go to the spill file.
            // The writer's batch too, unless the writer itself is stuck in
            // the store (a statement that never returns): then that one
            // batch, at most BATCH_ROWS rows, is lost.
            let mut queued = Vec::new();
            sink.close(&mut queued);
            for row in &queued {
                sink.spill.write(row);
            }
            if let Ok(mut w) = sink.writer.try_lock() {
                sink.spill_pending(&mut w);
                log::warn!(
                    "usage: the store did not answer in time; rows kept in {}",
                    sink.spill.path().display()
                );
            } else {
                log::warn!(
                    "usage: the store did not answer in time; {} queued rows kept in {}, the batch being written is lost",
                    queued.len(),
                    sink.spill.path().display()
                );
            }
        }
    }
}

/// The one writer of usage rows.
pub struct UsageWriter {
    pub sink: Arc<UsageSink>,
}

#[async_trait]
impl BackgroundService for UsageWriter {
    async fn start(&self, _shutdown: ShutdownWatch) {
        // Runs until the exit flush closes the queue: requests still in
        // flight after the shutdown signal keep being written meanwhile.
        // Rows spilled by an earlier run go in first, before any queue.
        if self.sink.spill.pending() {
            let replayed = {
                let _writer = self.sink.writer.lock().await;
                self.sink.spill.replay(&self.sink.store).await
            };
            match replayed {
                Ok(n) => log::info!("usage: {n} rows replayed from the spill file"),
                // Left on disk: replayed again when the queue is next empty.
                Err(e) => log::warn!("usage: the spill file waits for the store: {e}"),
            }
        }
        let mut backoff = MIN_BACKOFF;
        let mut failing_since: Option<Instant> = None;
        loop {
            match self.sink.step().await {
                Ok(Step::Closed) => return,
                Ok(_) => {
                    backoff = MIN_BACKOFF;
                    if failing_since.take().is_some() {
                        log::info!("usage: the store works again");
                    }
                    // A full batch waiting: go on at once. Otherwise let
                    // the next batch gather (one transaction, one fsync,
                    // for many rows).
                    if self.sink.queued() < BATCH_ROWS {
                        tokio::time::sleep(BATCH_WAIT).await;
                    }
                }
                Err(e) => {
                    if failing_since.is_none_or(|t| t.elapsed() >= WARN_EVERY) {
                        log::warn!("usage: rows wait for the store (retrying): {e}");
                        failing_since = Some(Instant::now());
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }
}
