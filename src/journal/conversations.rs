//! The conversation log's queue and its one writer. The request path hands
//! over an `Entry` and never waits: a full queue drops it (counted, and
//! warned about at most every 30 s) — conversations are diagnostics, unlike
//! usage rows, which must never be lost. The writer renders and appends
//! entries in the background, and at exit writes what is still queued.

use super::files::{DailyFiles, Policy};
use super::line::{render, Entry};
use crate::config::ConversationFiles;
use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

/// Entries waiting for the writer.
pub const QUEUE_ENTRIES: usize = 1024;
/// Bytes of requests and answers waiting for the writer: prompts run to a
/// megabyte each, and a stalled disk must not take the memory with it.
pub const QUEUE_BYTES: usize = 256 * 1024 * 1024;
/// How long the writer sleeps when the queue is empty: polled rather than
/// woken, so the request path never pays for a cross-thread wake.
const WAIT: Duration = Duration::from_millis(200);
/// At most one warning this often (milliseconds).
const WARN_EVERY_MS: i64 = 30_000;
/// Old files are also pruned this often, not only when a file opens: a log
/// that went quiet still lets its files expire.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// The request path's handle, and the writer's state behind a lock the exit
/// flush can take over.
pub struct ConversationLog {
    queue: mpsc::Sender<Entry>,
    writer: Mutex<Writer>,
    dir: PathBuf,
    queued_bytes: AtomicUsize,
    dropped: AtomicU64,
    last_warn_ms: AtomicI64,
}

struct Writer {
    queue: mpsc::Receiver<Entry>,
    files: DailyFiles,
    /// Unix ms of the last write failure warned about.
    last_failure_warn_ms: i64,
}

impl ConversationLog {
    pub fn new(files: &ConversationFiles) -> Self {
        Self::with_capacity(files, QUEUE_ENTRIES)
    }

    pub fn with_capacity(files: &ConversationFiles, entries: usize) -> Self {
        let (queue, rx) = mpsc::channel(entries.max(1));
        let policy = Policy {
            max_file_bytes: files.max_file_bytes,
            retention: files.retention,
            max_files: files.max_files,
        };
        Self {
            queue,
            writer: Mutex::new(Writer {
                queue: rx,
                files: DailyFiles::new(files.dir.clone(), policy),
                last_failure_warn_ms: 0,
            }),
            dir: files.dir.clone(),
            queued_bytes: AtomicUsize::new(0),
            dropped: AtomicU64::new(0),
            last_warn_ms: AtomicI64::new(0),
        }
    }

    /// Where the files are.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Entries dropped since start (queue full, or a write failed).
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Never waits: queued, or dropped and counted.
    pub fn record(&self, entry: Entry) {
        let size = entry.capture.size();
        let held = self.queued_bytes.fetch_add(size, Ordering::Relaxed);
        if held.saturating_add(size) > QUEUE_BYTES {
            self.queued_bytes.fetch_sub(size, Ordering::Relaxed);
            return self.drop_one("its queue holds too many bytes");
        }
        if self.queue.try_send(entry).is_err() {
            self.queued_bytes.fetch_sub(size, Ordering::Relaxed);
            self.drop_one("its queue is full");
        }
    }

    fn drop_one(&self, why: &str) {
        let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
        let now = super::files::now_ms();
        let last = self.last_warn_ms.load(Ordering::Relaxed);
        if now - last >= WARN_EVERY_MS
            && self
                .last_warn_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            log::warn!("conversation log: an entry was dropped: {why} ({dropped} since start)");
        }
    }

    /// Writes everything queued; `false` once the queue is closed and empty.
    fn drain(&self) -> bool {
        let mut w = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let mut open = true;
        let mut wrote = false;
        loop {
            let entry = match w.queue.try_recv() {
                Ok(e) => e,
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => {
                    open = false;
                    break;
                }
            };
            self.queued_bytes
                .fetch_sub(entry.capture.size(), Ordering::Relaxed);
            let written = render(&entry)
                .map_err(std::io::Error::other)
                .and_then(|line| w.files.append(super::files::now_ms(), &line));
            match written {
                Ok(()) => wrote = true,
                Err(e) => self.write_failed(&mut w, &e),
            }
        }
        if wrote {
            if let Err(e) = w.files.flush() {
                self.write_failed(&mut w, &e);
            }
        }
        open
    }

    fn write_failed(&self, w: &mut Writer, e: &std::io::Error) {
        self.dropped.fetch_add(1, Ordering::Relaxed);
        let now = super::files::now_ms();
        if now - w.last_failure_warn_ms >= WARN_EVERY_MS {
            w.last_failure_warn_ms = now;
            log::warn!(
                "conversation log: cannot write to {}: {e}",
                w.files.dir().display()
            );
        }
    }

    /// Deletes files past their retention or the count cap.
    fn prune(&self) {
        let mut w = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        if let Err(e) = w.files.prune(super::files::now_ms()) {
            log::warn!(
                "conversation log: cannot prune {}: {e}",
                w.files.dir().display()
            );
        }
    }

    /// Closes the queue and writes what is left.
    pub fn finish(&self) {
        self.writer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .queue
            .close();
        while self.drain() {}
    }
}

/// The exit hook: what is queued reaches the files before the process ends.
pub fn flush_now(log: &ConversationLog) {
    log.finish();
    let dropped = log.dropped();
    if dropped > 0 {
        log::info!("conversation log: {dropped} entries were dropped since start");
    }
}

/// The one writer of the conversation log.
pub struct ConversationWriter {
    pub log: Arc<ConversationLog>,
}

#[async_trait]
impl BackgroundService for ConversationWriter {
    async fn start(&self, _shutdown: ShutdownWatch) {
        // Runs until the exit flush closes the queue, so requests finishing
        // during a shutdown's grace are still written.
        let mut pruned = std::time::Instant::now();
        while self.log.drain() {
            if pruned.elapsed() >= PRUNE_EVERY {
                self.log.prune();
                pruned = std::time::Instant::now();
            }
            tokio::time::sleep(WAIT).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::capture::Capture;
    use bytes::Bytes;

    fn files(dir: &Path) -> ConversationFiles {
        ConversationFiles {
            dir: dir.to_owned(),
            max_file_bytes: 1 << 20,
            retention: Duration::from_secs(86_400),
            max_files: 10,
        }
    }

    fn entry(id: &str, body: &'static [u8]) -> Entry {
        let rec = crate::record::RequestRecord::new(id.to_owned());
        Entry::of(&rec, Box::new(Capture::new(Bytes::from_static(body))))
    }

    #[test]
    fn a_full_queue_drops_without_waiting_and_finish_writes_the_rest() {
        let dir = std::env::temp_dir().join(format!(
            "modelswitch-conv-{}-{}",
            std::process::id(),
            fastrand::u64(..)
        ));
        let log = ConversationLog::with_capacity(&files(&dir), 2);
        for i in 0..5 {
            log.record(entry(&format!("req_{i}"), b"{\"messages\":[]}"));
        }
        assert_eq!(log.dropped(), 3);
        flush_now(&log);
        let files = crate::journal::files::list_newest_first(&dir).unwrap();
        assert_eq!(files.len(), 1);
        let text = std::fs::read_to_string(&files[0].path).unwrap();
        let ids: Vec<String> = text
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["request_id"].to_string()
            })
            .collect();
        assert_eq!(ids, ["\"req_0\"", "\"req_1\""]);
        assert_eq!(log.queued_bytes.load(Ordering::Relaxed), 0);
        // Closed: later entries are dropped, not queued forever.
        log.record(entry("req_late", b"{}"));
        assert_eq!(log.dropped(), 4);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_byte_bound_drops_a_huge_entry() {
        let dir = std::env::temp_dir().join("modelswitch-conv-never-written");
        let log = ConversationLog::new(&files(&dir));
        let rec = crate::record::RequestRecord::new("req_big".into());
        let big = Bytes::from(vec![b' '; QUEUE_BYTES + 1]);
        log.record(Entry::of(&rec, Box::new(Capture::new(big))));
        assert_eq!(log.dropped(), 1);
        assert_eq!(log.queued_bytes.load(Ordering::Relaxed), 0);
    }
}
