//! Hot reload: the config file is watched (and re-watched after each
//! event, so the rename-over writes of editors and the symlink swaps of
//! Kubernetes ConfigMaps are followed) and re-read on SIGHUP. Only a fully
//! valid file is published; a broken one keeps the running config and
//! logs every error with its TOML path. Settings that only take effect at startup keep
//! their running value and are reported as needing a restart.

use super::{load, ConfigErrors, Process, Snapshot};
use async_trait::async_trait;
use notify::{EventKind, RecursiveMode, Watcher};
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;

/// Editors write a file in several steps; wait for them to settle.
const SETTLE: Duration = Duration::from_millis(150);

/// Publishes a validated snapshot (binding it to the runtime state).
pub type Apply = Box<dyn Fn(Snapshot) -> Result<(), ConfigErrors> + Send + Sync>;

pub struct Reloader {
    path: PathBuf,
    /// What the process started with.
    process: Process,
    apply: Apply,
    /// The text last published, so a touch without a change does nothing.
    last: Mutex<Option<String>>,
    /// File events wake the reload loop through this channel.
    wake: mpsc::Sender<()>,
    woken: Mutex<Option<mpsc::Receiver<()>>>,
    /// The watch, while `[server] reload` is on.
    watcher: Mutex<Option<notify::RecommendedWatcher>>,
}

impl Reloader {
    /// Starts watching at once (on notify's own thread), so a change made
    /// as soon as the gateway answers is not missed.
    pub fn new(path: &Path, running: &Snapshot, apply: Apply) -> Self {
        let (wake, woken) = mpsc::channel(1);
        let r = Self {
            path: std::path::absolute(path).unwrap_or_else(|_| path.to_owned()),
            process: running.process.clone(),
            apply,
            last: Mutex::new(std::fs::read_to_string(path).ok()),
            wake,
            woken: Mutex::new(Some(woken)),
            watcher: Mutex::new(None),
        };
        r.set_watch(running.reload);
        r
    }

    fn set_watch(&self, on: bool) {
        let mut w = self.watcher.lock().unwrap_or_else(|e| e.into_inner());
        match (on, w.is_some()) {
            (true, false) => *w = self.watcher(self.wake.clone()),
            (false, true) => *w = None,
            _ => {}
        }
    }

    /// Reads, validates and publishes the file; `forced` (SIGHUP) reloads
    /// even an unchanged file. Returns the new file's `reload` setting.
    fn reload(&self, why: &str, forced: bool) -> Option<bool> {
        let text = std::fs::read_to_string(&self.path).ok();
        {
            let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
            if !forced && text.is_some() && *last == text {
                return None;
            }
            *last = text;
        }
        let path = self.path.display();
        let mut snap = match load(&self.path) {
            Ok(s) => s,
            Err(e) => {
                log::warn!("config reload failed ({why}); keeping the running config:\n{e}");
                return None;
            }
        };
        for (setting, differs) in [
            ("server.listen", snap.process.listen != self.process.listen),
            (
                "server.threads",
                snap.process.threads != self.process.threads,
            ),
            (
                "server.upstream_pool_size",
                snap.process.upstream_pool_size != self.process.upstream_pool_size,
            ),
            (
                "server.shutdown_grace",
                snap.process.shutdown_grace != self.process.shutdown_grace,
            ),
            (
                "storage.sqlite_path",
                snap.process.sqlite_path != self.process.sqlite_path,
            ),
            (
                "limits.backend",
                snap.process.limit_backend != self.process.limit_backend,
            ),
            (
                "storage.record_usage",
                snap.process.record_usage != self.process.record_usage,
            ),
            (
                "storage.usage_queue",
                snap.process.usage_queue != self.process.usage_queue,
            ),
            (
                "storage.backend or postgres_url",
                snap.process.store_backend != self.process.store_backend,
            ),
            (
                "admin.listen",
                snap.process.admin_listen != self.process.admin_listen,
            ),
            (
                "logging.dir, max_file_bytes, retention or max_files",
                snap.process.conversation_files != self.process.conversation_files,
            ),
        ] {
            if differs {
                log::warn!("{path}: {setting} changed: needs a restart; the running value stays");
            }
        }
        snap.process = self.process.clone();
        let watch = snap.reload;
        let (providers, models) = (snap.providers.len(), snap.routes.len());
        match (self.apply)(snap) {
            Ok(()) => {
                log::info!(
                    "config reloaded from {path} ({why}): {providers} providers, {models} models"
                );
                Some(watch)
            }
            Err(e) => {
                log::warn!("config reload failed ({why}); keeping the running config:\n{e}");
                None
            }
        }
    }

    /// Watches the file itself, not its directory: a directory watch
    /// wakes on every write to any file beside the config (a log file
    /// there cost a wake-up per request, measured). An editor's rename-over
    /// or a ConfigMap's symlink swap ends the watch on the old inode with
    /// an event, after which `rewatch` follows the path to the new file.
    fn watcher(&self, wake: mpsc::Sender<()>) -> Option<notify::RecommendedWatcher> {
        let handler = move |res: notify::Result<notify::Event>| {
            if let Ok(ev) = res {
                if !matches!(ev.kind, EventKind::Access(_)) {
                    let _ = wake.try_send(());
                }
            }
        };
        let mut w = match notify::recommended_watcher(handler) {
            Ok(w) => w,
            Err(e) => {
                log::warn!(
                    "cannot watch {}: {e}; reload with SIGHUP",
                    self.path.display()
                );
                return None;
            }
        };
        if let Err(e) = w.watch(&self.path, RecursiveMode::NonRecursive) {
            log::warn!(
                "cannot watch {}: {e}; reload with SIGHUP",
                self.path.display()
            );
            return None;
        }
        Some(w)
    }

    /// After an event: watch whatever file the path names now (a new
    /// inode after a rename-over), before the file is read.
    fn rewatch(&self) {
        let mut w = self.watcher.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(w) = w.as_mut() {
            let _ = w.unwatch(&self.path);
            if let Err(e) = w.watch(&self.path, RecursiveMode::NonRecursive) {
                log::warn!(
                    "cannot watch {}: {e}; reload with SIGHUP",
                    self.path.display()
                );
            }
        }
    }
}

#[async_trait]
impl BackgroundService for Reloader {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let taken = self.woken.lock().map(|mut r| r.take()).ok().flatten();
        let Some(mut rx) = taken else { return };
        let mut hup = match signal(SignalKind::hangup()) {
            Ok(s) => Some(s),
            Err(e) => {
                log::warn!("cannot handle SIGHUP: {e}");
                None
            }
        };
        loop {
            let (why, forced) = tokio::select! {
                _ = shutdown.changed() => return,
                Some(()) = rx.recv() => {
                    tokio::time::sleep(SETTLE).await;
                    self.rewatch();
                    while rx.try_recv().is_ok() {}
                    ("file changed", false)
                }
                Some(()) = async { match hup.as_mut() {
                    Some(h) => h.recv().await,
                    None => std::future::pending().await,
                } } => ("SIGHUP", true),
            };
            if let Some(watch) = self.reload(why, forced) {
                self.set_watch(watch);
            }
        }
    }
}
