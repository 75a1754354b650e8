//! The overflow file beside the database: one JSON row per line, appended
//! when the queue is full (or closed), replayed into the store when the
//! writer catches up or at the next start. Replays insert with INSERT OR
//! IGNORE, so a replay cut short and done again counts nothing twice.

use super::row::UsageRow;
use super::BATCH_ROWS;
use crate::store::{KeyStore, StoreError};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

pub struct Spill {
    /// `<db>.usage-spill.jsonl`: appended to.
    path: PathBuf,
    /// `<db>.usage-spill.jsonl.replaying`: being replayed.
    replaying: PathBuf,
    /// Rows the store refused as data (never retried as they are): kept
    /// here for an operator rather than dropped.
    rejected: PathBuf,
    /// Open while rows are being appended; closed before a rename so no
    /// line lands in a file that is being replayed.
    file: Mutex<Option<File>>,
    /// Something may be waiting in either file.
    dirty: AtomicBool,
    /// Rows written to the file, for metrics.
    pub spilled: AtomicU64,
    /// Rows that could be neither queued nor written (the disk failed).
    pub lost: AtomicU64,
}

impl Spill {
    pub fn beside(db: &Path) -> Self {
        let mut name = db.as_os_str().to_owned();
        name.push(".usage-spill.jsonl");
        let path = PathBuf::from(name);
        let mut name = path.as_os_str().to_owned();
        name.push(".replaying");
        let replaying = PathBuf::from(name);
        let mut name = db.as_os_str().to_owned();
        name.push(".usage-rejected.jsonl");
        let rejected = PathBuf::from(name);
        let dirty = path.exists() || replaying.exists();
        Self {
            path,
            replaying,
            rejected,
            file: Mutex::new(None),
            dirty: AtomicBool::new(dirty),
            spilled: AtomicU64::new(0),
            lost: AtomicU64::new(0),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn rejected(&self) -> &Path {
        &self.rejected
    }

    pub fn pending(&self) -> bool {
        self.dirty.load(Ordering::Acquire)
    }

    /// Appends `row` as one line, in one write.
    pub fn write(&self, row: &UsageRow) {
        let mut line = match serde_json::to_vec(row) {
            Ok(l) => l,
            Err(e) => {
                self.lose(&format!("cannot encode: {e}"));
                return;
            }
        };
        line.push(b'\n');
        let mut file = self
            .file
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if file.is_none() {
            match OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)
            {
                Ok(f) => *file = Some(f),
                Err(e) => {
                    drop(file);
                    self.lose(&format!("{}: {e}", self.path.display()));
                    return;
                }
            }
        }
        let written = file.as_mut().map(|f| f.write_all(&line));
        drop(file);
        match written {
            Some(Ok(())) => {
                self.dirty.store(true, Ordering::Release);
                self.spilled.fetch_add(1, Ordering::Relaxed);
                crate::metrics::usage_spilled();
            }
            Some(Err(e)) => self.lose(&format!("{}: {e}", self.path.display())),
            None => self.lose("no spill file"),
        }
    }

    fn lose(&self, why: &str) {
        // Only when the disk fails as well as the queue being full.
        if self.lost.fetch_add(1, Ordering::Relaxed) == 0 {
            log::error!("usage: a row is lost (queue full, spill failed): {why}");
        }
    }

    /// Inserts every spilled row into `store`, then removes the file. A
    /// leftover `.replaying` file (a replay cut short) goes first. On an
    /// error the file stays for the next try. Returns the rows inserted.
    pub async fn replay(&self, store: &KeyStore) -> Result<u64, StoreError> {
        self.dirty.store(false, Ordering::Release);
        let mut inserted = 0;
        let result = self.replay_files(store, &mut inserted).await;
        if result.is_err() {
            self.dirty.store(true, Ordering::Release);
        }
        result.map(|()| inserted)
    }

    async fn replay_files(&self, store: &KeyStore, inserted: &mut u64) -> Result<(), StoreError> {
        if !self.replaying.exists() {
            let mut file = self
                .file
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            *file = None;
            match std::fs::rename(&self.path, &self.replaying) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(io_error(&self.path, &e)),
            }
        }
        *inserted += replay_file(&self.replaying, store, &self.rejected).await?;
        std::fs::remove_file(&self.replaying).map_err(|e| io_error(&self.replaying, &e))?;
        // Rows may have been spilled while that one was replayed.
        if self.path.exists() {
            self.dirty.store(true, Ordering::Release);
        }
        Ok(())
    }
}

/// Inserts `rows`; when the store refuses their data, one at a time, and
/// a row refused alone is appended to `rejected` (and logged) instead of
/// blocking every row after it. Other errors leave nothing written.
/// One copy of the rows crosses to the store per try (the caller keeps
/// its batch until it is committed).
pub async fn insert(
    store: &KeyStore,
    rows: &[UsageRow],
    rejected: &Path,
) -> Result<u64, StoreError> {
    match store.insert_usage(rows.to_vec()).await {
        Err(StoreError::Rejected(_)) => {}
        other => return other,
    }
    let mut inserted = 0;
    for row in rows {
        match store.insert_usage(vec![row.clone()]).await {
            Ok(n) => inserted += n,
            Err(StoreError::Rejected(why)) => {
                log::warn!(
                    "usage: request {} refused by the store, kept in {}: {why}",
                    row.request_id,
                    rejected.display()
                );
                append_line(rejected, row).map_err(|e| io_error(rejected, &e))?;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(inserted)
}

fn append_line(path: &Path, row: &UsageRow) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(row).map_err(std::io::Error::other)?;
    line.push(b'\n');
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?
        .write_all(&line)
}

/// Inserts the rows of the JSON-lines file at `path` in batches; a line
/// that does not parse is logged and skipped.
pub async fn replay_file(
    path: &Path,
    store: &KeyStore,
    rejected: &Path,
) -> Result<u64, StoreError> {
    let file = File::open(path).map_err(|e| io_error(path, &e))?;
    let mut lines = BufReader::new(file).split(b'\n');
    let mut inserted = 0;
    let mut number = 0u64;
    loop {
        let mut batch = Vec::with_capacity(BATCH_ROWS);
        let mut end = false;
        while batch.len() < BATCH_ROWS {
            let Some(line) = lines.next() else {
                end = true;
                break;
            };
            number += 1;
            let line = line.map_err(|e| io_error(path, &e))?;
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            match serde_json::from_slice::<UsageRow>(&line) {
                Ok(row) => batch.push(row),
                Err(e) => log::warn!("usage: {} line {number} is skipped: {e}", path.display()),
            }
        }
        if !batch.is_empty() {
            inserted += insert(store, &batch, rejected).await?;
        }
        if end {
            return Ok(inserted);
        }
    }
}

fn io_error(path: &Path, e: &std::io::Error) -> StoreError {
    StoreError::Backend(format!("usage spill {}: {e}", path.display()))
}
