//! Hot reload: the config file is watched (and re-watched after each
//! event, so the rename-over writes of editors and the symlink swaps of
//! Kubernetes ConfigMaps are followed) and re-read on SIGHUP. Only a fully
//! valid file is published; a broken one keeps the running config and
//! logs every error with its TOML path. Settings that only take effect at startup keep
//! their running value and are reported as needing a restart. The admin
//! API's saves publish at once through `apply_now`, which shares the
//! last-published text with the watcher so a save is published once.

use super::{load_text, ConfigErrors, Process, Snapshot};
use async_trait::async_trait;
use notify::{EventKind, RecursiveMode, Watcher};
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};
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
    /// What `/api/config/health` shows of the loads.
    status: Mutex<LoadStatus>,
}

/// When the running config was loaded and how the last reload went.
#[derive(Debug, Clone)]
pub struct LoadStatus {
    /// At startup, or the last reload that published.
    pub loaded_at: SystemTime,
    /// The last reload tried since startup (file change, SIGHUP, admin
    /// save); `None` while there was none.
    pub last_reload: Option<ReloadResult>,
}

#[derive(Debug, Clone)]
pub struct ReloadResult {
    pub at: SystemTime,
    /// What started it: `file changed`, `SIGHUP`, `written by the admin API`.
    pub trigger: String,
    /// `None`: published. Else the errors, each naming its TOML path
    /// (never a value: see `toml_error`); the running config stayed.
    pub errors: Option<Vec<String>>,
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
            status: Mutex::new(LoadStatus {
                loaded_at: SystemTime::now(),
                last_reload: None,
            }),
        };
        r.set_watch(running.reload);
        r
    }

    /// The config file (absolute).
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn status(&self) -> LoadStatus {
        self.status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Records a reload's result: published (`Ok`) or refused.
    fn note(&self, why: &str, result: Result<(), &ConfigErrors>) {
        let at = SystemTime::now();
        let mut status = self.status.lock().unwrap_or_else(|e| e.into_inner());
        if result.is_ok() {
            status.loaded_at = at;
        }
        status.last_reload = Some(ReloadResult {
            at,
            trigger: why.to_owned(),
            errors: result.err().map(|e| e.0.clone()),
        });
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
    /// The last-published lock is held throughout, so an admin write
    /// (`apply_now`) is never split by this read.
    fn reload(&self, why: &str, forced: bool) -> Option<bool> {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        let read = std::fs::read_to_string(&self.path);
        let text = read.as_ref().ok().cloned();
        if !forced && text.is_some() && *last == text {
            return None;
        }
        *last = text;
        let path = self.path.display();
        let loaded = match &read {
            Ok(text) => load_text(text, &self.path),
            Err(e) => Err(ConfigErrors(vec![format!("{path}: cannot read: {e}")])),
        };
        let snap = match loaded {
            Ok(s) => s,
            Err(e) => {
                log::warn!("config reload failed ({why}); keeping the running config:\n{e}");
                self.note(why, Err(&e));
                return None;
            }
        };
        match self.publish(snap, why) {
            Ok((watch, _)) => {
                self.note(why, Ok(()));
                Some(watch)
            }
            Err(e) => {
                log::warn!("config reload failed ({why}); keeping the running config:\n{e}");
                self.note(why, Err(&e));
                None
            }
        }
    }

    /// Publishes a snapshot already validated, keeping the process-wide
    /// settings; returns its `reload` setting and the settings that
    /// changed but wait for a restart.
    fn publish(
        &self,
        mut snap: Snapshot,
        why: &str,
    ) -> Result<(bool, Vec<&'static str>), ConfigErrors> {
        let path = self.path.display();
        let restart = restart_needed(&self.process, &snap.process);
        for setting in &restart {
            log::warn!("{path}: {setting} changed: needs a restart; the running value stays");
        }
        snap.process = self.process.clone();
        let watch = snap.reload;
        let (providers, models) = (snap.providers.len(), snap.routes.len());
        (self.apply)(snap)?;
        log::info!("config reloaded from {path} ({why}): {providers} providers, {models} models");
        Ok((watch, restart))
    }

    /// The admin API's save: `write` puts `text` in the file and `snap`
    /// (validated from that text) is published at once, as one step under
    /// the last-published lock, so the watcher's wake-up for this write
    /// finds its text already published and does nothing. `expected` is
    /// the text the edit was made from: the file is compared with it under
    /// that same lock, so a change made on disk since (an editor, a
    /// script, a save whose client went away) is never overwritten.
    /// When publishing fails (a replica host that does not resolve),
    /// `write` puts the previous text back: the file on disk stays the
    /// running config. There always is a previous text to put back: the
    /// file was just read and matched `expected`.
    pub fn apply_now(
        &self,
        expected: &str,
        text: &str,
        snap: Snapshot,
        write: &dyn Fn(&str) -> std::io::Result<()>,
    ) -> Result<Vec<&'static str>, ApplyError> {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        let before = match std::fs::read_to_string(&self.path) {
            Ok(before) if before == expected => before,
            // Unreadable now, though it was read for the edit: changed too.
            _ => return Err(ApplyError::Changed),
        };
        write(text).map_err(ApplyError::Write)?;
        *last = Some(text.to_owned());
        const WHY: &str = "written by the admin API";
        let published = self.publish(snap, WHY);
        self.note(WHY, published.as_ref().map(|_| ()));
        match published {
            Ok((watch, restart)) => {
                drop(last);
                self.set_watch(watch);
                Ok(restart)
            }
            Err(e) => {
                match write(&before) {
                    Ok(()) => *last = Some(before),
                    Err(w) => log::warn!(
                        "{}: cannot put the previous config back: {w}",
                        self.path.display()
                    ),
                }
                Err(ApplyError::Rejected(e))
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

/// Why an admin write was not published.
#[derive(Debug)]
pub enum ApplyError {
    /// The file is no longer the text the edit was made from; nothing
    /// was written.
    Changed,
    /// The file could not be written; nothing changed.
    Write(std::io::Error),
    /// The runtime refused the snapshot; the previous file is back.
    Rejected(ConfigErrors),
}

/// The settings read only at startup that differ between `running` and
/// `new`, by their TOML names.
pub fn restart_needed(running: &Process, new: &Process) -> Vec<&'static str> {
    [
        ("server.listen", new.listen != running.listen),
        ("server.tls_listen", new.tls_listen != running.tls_listen),
        ("server.tls", new.tls != running.tls),
        ("server.h2c", new.h2c != running.h2c),
        ("server.threads", new.threads != running.threads),
        (
            "server.upstream_pool_size",
            new.upstream_pool_size != running.upstream_pool_size,
        ),
        (
            "server.shutdown_grace",
            new.shutdown_grace != running.shutdown_grace,
        ),
        (
            "storage.sqlite_path",
            new.sqlite_path != running.sqlite_path,
        ),
        ("limits.backend", new.limit_backend != running.limit_backend),
        (
            "storage.record_usage",
            new.record_usage != running.record_usage,
        ),
        (
            "storage.usage_queue",
            new.usage_queue != running.usage_queue,
        ),
        (
            "storage.backend or postgres_url",
            new.store_backend != running.store_backend,
        ),
        (
            "logging.dir, max_file_bytes, retention or max_files",
            new.conversation_files != running.conversation_files,
        ),
        ("admin.listen", new.admin_listen != running.admin_listen),
        (
            "logging.access_file",
            new.access_file != running.access_file,
        ),
    ]
    .into_iter()
    .filter_map(|(setting, differs)| differs.then_some(setting))
    .collect()
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

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "[[providers]]\nname = \"p\"\ntype = \"openai\"\nbase_url = \"http://127.0.0.1:9/v1\"\n\n[[models]]\nname = \"m\"\ntargets = [{ provider = \"p\", model = \"x\" }]\n\n[[api_keys]]\nkey = \"sk-test-key-1\"\nname = \"k\"\n";

    #[test]
    fn startup_settings_that_changed_are_named_by_their_toml_path() {
        let running = crate::config::parse(BASE).unwrap().process;
        let new = crate::config::parse(&format!(
            "[server]\nlisten = \"127.0.0.1:9999\"\nthreads = 3\nclient_idle_timeout = \"5s\"\n\n{BASE}"
        ))
        .unwrap()
        .process;
        assert_eq!(
            restart_needed(&running, &new),
            vec!["server.listen", "server.threads"]
        );
        assert!(restart_needed(&running, &running).is_empty());
    }

    /// A reloader over a file holding `BASE`, whose publishing fails
    /// when `fail` is set; the file's path is returned too.
    fn reloader(fail: bool) -> (Reloader, PathBuf) {
        let dir = std::env::temp_dir().join(format!("ms-apply-now-{}", fastrand::u64(..)));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("gw.toml");
        std::fs::write(&path, BASE).unwrap();
        let running = load_text(BASE, &path).unwrap();
        let apply: Apply = Box::new(move |_| {
            if fail {
                Err(ConfigErrors(vec![
                    "providers[0].base_url: no such host".into()
                ]))
            } else {
                Ok(())
            }
        });
        (Reloader::new(&path, &running, apply), path)
    }

    fn write_to(path: &Path) -> impl Fn(&str) -> std::io::Result<()> + '_ {
        move |t| std::fs::write(path, t)
    }

    #[test]
    fn a_save_is_written_and_published_when_the_file_is_as_read() {
        let (r, path) = reloader(false);
        let new = format!("# edited\n{BASE}");
        let snap = load_text(&new, &path).unwrap();
        assert!(r.apply_now(BASE, &new, snap, &write_to(&path)).is_ok());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), new);
        assert_eq!(r.last.lock().unwrap().as_deref(), Some(new.as_str()));
        let reload = r.status().last_reload.unwrap();
        assert_eq!(reload.errors, None);
        assert_eq!(r.status().loaded_at, reload.at);
        std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
    }

    #[test]
    fn a_file_changed_since_it_was_read_is_not_overwritten() {
        let (r, path) = reloader(false);
        let on_disk = format!("# someone else's edit\n{BASE}");
        std::fs::write(&path, &on_disk).unwrap();
        let new = format!("# the admin's edit\n{BASE}");
        let snap = load_text(&new, &path).unwrap();
        assert!(matches!(
            r.apply_now(BASE, &new, snap, &write_to(&path)),
            Err(ApplyError::Changed)
        ));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), on_disk);
        // A file gone since is a change too.
        std::fs::remove_file(&path).unwrap();
        let snap = load_text(&new, &path).unwrap();
        assert!(matches!(
            r.apply_now(BASE, &new, snap, &write_to(&path)),
            Err(ApplyError::Changed)
        ));
        assert!(!path.exists());
        std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
    }

    #[test]
    fn a_broken_file_is_reported_with_its_toml_path_and_a_fixed_one_clears_it() {
        let (r, path) = reloader(false);
        assert!(r.status().last_reload.is_none());
        std::fs::write(&path, BASE.replace("type = \"openai\"", "type = 7")).unwrap();
        assert_eq!(r.reload("file changed", false), None);
        let failed = r.status().last_reload.unwrap();
        assert_eq!(failed.trigger, "file changed");
        let errors = failed.errors.unwrap();
        assert!(
            errors.iter().any(|e| e.contains("providers[0].type")),
            "{errors:?}"
        );
        std::fs::write(&path, format!("# fixed\n{BASE}")).unwrap();
        assert!(r.reload("SIGHUP", true).is_some());
        let status = r.status();
        assert_eq!(status.last_reload.as_ref().unwrap().errors, None);
        assert_eq!(status.loaded_at, status.last_reload.unwrap().at);
        std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
    }

    #[test]
    fn a_snapshot_the_runtime_refuses_puts_the_previous_file_back() {
        let (r, path) = reloader(true);
        let new = format!("# edited\n{BASE}");
        let snap = load_text(&new, &path).unwrap();
        assert!(matches!(
            r.apply_now(BASE, &new, snap, &write_to(&path)),
            Err(ApplyError::Rejected(_))
        ));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), BASE);
        assert_eq!(r.last.lock().unwrap().as_deref(), Some(BASE));
        let status = r.status();
        let reload = status.last_reload.unwrap();
        assert_eq!(
            reload.errors,
            Some(vec!["providers[0].base_url: no such host".to_owned()])
        );
        assert!(status.loaded_at <= reload.at, "the running config is older");
        std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
    }
}
