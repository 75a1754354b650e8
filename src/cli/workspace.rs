//! The workspace: one directory holding the config, the key store and the
//! logs, so an operator installs once and finds everything in one place.
//!
//! ```text
//! ~/.modelswitch/          (--workspace DIR, or MODELSWITCH_WORKSPACE)
//!   config.toml            relative paths in it resolve against this directory
//!   data/modelswitch.db    the key store and usage rows (SQLite)
//!   logs/access.log        the access log
//!   logs/conversations/    the conversation log
//! ```
//!
//! Which config runs: `--config FILE` > `--workspace DIR` >
//! `MODELSWITCH_WORKSPACE` > `$HOME/.modelswitch`. The first run in a
//! workspace without `config.toml` creates it (directories 0700, the file
//! 0600) from `conf/workspace.toml`, with one admin key minted in the
//! key store and printed once.

use std::ffi::OsString;
use std::fs::{DirBuilder, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The commented default config of a new workspace.
pub const TEMPLATE: &str = include_str!("../../conf/workspace.toml");
/// The name of the admin key the first run mints.
pub const ADMIN_KEY_NAME: &str = "admin";

/// Where the config comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// `--config FILE`: used as it is, no workspace is made.
    File(PathBuf),
    Workspace(Layout),
}

impl Source {
    /// The config file to read.
    pub fn config(&self) -> &Path {
        match self {
            Source::File(p) => p,
            Source::Workspace(l) => &l.config,
        }
    }
}

/// A workspace's paths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    pub root: PathBuf,
    pub config: PathBuf,
    pub data: PathBuf,
    pub logs: PathBuf,
}

impl Layout {
    pub fn at(root: PathBuf) -> Self {
        Self {
            config: root.join("config.toml"),
            data: root.join("data"),
            logs: root.join("logs"),
            root,
        }
    }
}

/// Picks the config: `--config`, else the workspace named by `--workspace`,
/// `MODELSWITCH_WORKSPACE` or `$HOME/.modelswitch`, made absolute against
/// `cwd` (a service's unit names it, whatever directory it starts in).
pub fn resolve(
    config: Option<PathBuf>,
    workspace: Option<PathBuf>,
    env_workspace: Option<OsString>,
    home: Option<OsString>,
    cwd: &Path,
) -> Result<Source, String> {
    if let Some(c) = config {
        return Ok(Source::File(c));
    }
    let root = match (workspace, env_workspace.filter(|v| !v.is_empty())) {
        (Some(w), _) => w,
        (None, Some(w)) => PathBuf::from(w),
        (None, None) => match home.filter(|h| !h.is_empty()) {
            Some(h) => PathBuf::from(h).join(".modelswitch"),
            None => {
                return Err("HOME is not set: name the workspace with --workspace DIR \
                     (or MODELSWITCH_WORKSPACE), or the config with --config FILE"
                    .into())
            }
        },
    };
    Ok(Source::Workspace(Layout::at(cwd.join(root))))
}

/// What [`prepare`] found or did.
#[derive(Debug, PartialEq, Eq)]
pub enum Prepared {
    /// `config.toml` was there already (or another first run made it
    /// while this one waited for the lock).
    Existing,
    /// A fresh workspace; its admin key was shown once.
    Created,
}

/// The lock first runs take, so two of them never mint two keys or share
/// one draft.
pub const FIRST_RUN_LOCK: &str = ".first-run.lock";

/// Makes the workspace if its `config.toml` is missing. `mint` makes the
/// admin key in the store the draft config names and returns its secret
/// (replacing a key of that name: with no config in place it was never
/// shown, a first run that crashed or could not print it); `show` prints
/// the welcome with that secret. The config is written under a draft name
/// and renamed into place only once the key was shown, so a run that
/// failed half way is retried in full by the next one. First runs are
/// serialised by an exclusive lock on [`FIRST_RUN_LOCK`]; a run that got
/// the lock after another one made the workspace finds it `Existing`.
pub fn prepare(
    layout: &Layout,
    mint: impl FnOnce(&Path) -> Result<String, String>,
    show: impl FnOnce(&str) -> Result<(), String>,
) -> Result<Prepared, String> {
    if layout.config.exists() {
        return Ok(Prepared::Existing);
    }
    let mut dirs = DirBuilder::new();
    dirs.recursive(true).mode(0o700);
    for dir in [
        &layout.root,
        &layout.data,
        &layout.logs,
        &layout.logs.join("conversations"),
    ] {
        dirs.create(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let lock_path = layout.root.join(FIRST_RUN_LOCK);
    let lock = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&lock_path)
        .and_then(|f| f.lock().map(|()| f))
        .map_err(|e| format!("cannot lock {}: {e}", lock_path.display()))?;
    // Another first run may have finished while this one waited.
    if layout.config.exists() {
        return Ok(Prepared::Existing);
    }
    let draft = layout.root.join(".config.toml.new");
    let write = || -> std::io::Result<()> {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&draft)?;
        f.write_all(TEMPLATE.as_bytes())?;
        f.sync_all()
    };
    write().map_err(|e| format!("cannot write {}: {e}", draft.display()))?;
    let shown = mint(&draft).and_then(|key| show(&welcome(layout, &key)));
    if let Err(e) = shown {
        // No config: the next run replaces the key this one made.
        let _ = std::fs::remove_file(&draft);
        return Err(e);
    }
    std::fs::rename(&draft, &layout.config).map_err(|e| {
        format!(
            "cannot write {}: {e}; the admin key shown above is replaced by the next run",
            layout.config.display()
        )
    })?;
    drop(lock);
    Ok(Prepared::Created)
}

/// What the first run prints: the only time the key is shown.
pub fn welcome(layout: &Layout, admin_key: &str) -> String {
    format!(
        "Created the ModelSwitch workspace {root}\n\
         \x20 config  {config}\n\
         \x20 data    {data}\n\
         \x20 logs    {logs}\n\
         \n\
         Admin API key (name '{ADMIN_KEY_NAME}'): save this, it is not shown again:\n\
         \n\
         \x20   {admin_key}\n\
         \n\
         Add your providers and models to {config}, check it with\n\
         \x20 modelswitch check --workspace {root}\n\
         and run the gateway with `modelswitch --workspace {root}`.\n",
        root = layout.root.display(),
        config = layout.config.display(),
        data = layout.data.display(),
        logs = layout.logs.display(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn os(s: &str) -> Option<OsString> {
        Some(OsString::from(s))
    }

    #[test]
    fn config_beats_workspace_beats_env_beats_home() {
        let cwd = Path::new("/srv");
        let ws = |r: &str| Ok(Source::Workspace(Layout::at(PathBuf::from(r))));
        assert_eq!(
            resolve(
                Some("c.toml".into()),
                Some("w".into()),
                os("/e"),
                os("/h"),
                cwd
            ),
            Ok(Source::File("c.toml".into()))
        );
        assert_eq!(
            resolve(None, Some("w".into()), os("/e"), os("/h"), cwd),
            ws("/srv/w")
        );
        assert_eq!(resolve(None, None, os("/e"), os("/h"), cwd), ws("/e"));
        assert_eq!(
            resolve(None, None, os(""), os("/h"), cwd),
            ws("/h/.modelswitch")
        );
        assert_eq!(
            resolve(None, None, None, os("/h"), cwd),
            ws("/h/.modelswitch")
        );
        let err = resolve(None, None, None, None, cwd).unwrap_err();
        assert!(err.contains("HOME is not set"), "{err}");
    }

    #[test]
    fn the_layout_and_the_template_agree() {
        let l = Layout::at("/w".into());
        assert_eq!(l.config, Path::new("/w/config.toml"));
        assert_eq!(l.data, Path::new("/w/data"));
        assert_eq!(l.logs, Path::new("/w/logs"));
        // The template's own paths land inside the layout.
        let snap = crate::config::load_text(TEMPLATE, &l.config).unwrap();
        assert_eq!(
            snap.process.sqlite_path,
            Path::new("/w/data/modelswitch.db")
        );
        assert_eq!(
            snap.process.access_file.as_deref(),
            Some(Path::new("/w/logs/access.log"))
        );
        assert_eq!(
            snap.process.conversation_files.dir,
            Path::new("/w/logs/conversations")
        );
        assert_eq!(snap.process.listen, ["127.0.0.1:8000"]);
        assert!(snap.providers.is_empty() && snap.routes.is_empty());
    }

    fn temp(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("ms-ws-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn the_first_run_creates_a_private_workspace_once() {
        let l = Layout::at(temp("create"));
        let mut shown = String::new();
        let made = prepare(
            &l,
            |draft| {
                assert!(draft.exists());
                Ok("sk-ms-secret".into())
            },
            |w| {
                // The key is shown before the config claims it was.
                assert!(!l.config.exists());
                shown = w.to_owned();
                Ok(())
            },
        )
        .unwrap();
        assert_eq!(made, Prepared::Created);
        assert!(shown.contains("    sk-ms-secret\n"), "{shown}");
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&l.root), 0o700);
        assert_eq!(mode(&l.data), 0o700);
        assert_eq!(mode(&l.logs), 0o700);
        assert_eq!(mode(&l.config), 0o600);
        assert_eq!(std::fs::read_to_string(&l.config).unwrap(), TEMPLATE);
        let again = prepare(&l, |_| panic!("no second key"), |_| panic!("no welcome")).unwrap();
        assert_eq!(again, Prepared::Existing);
        std::fs::remove_dir_all(&l.root).unwrap();
    }

    #[test]
    fn a_failed_key_or_welcome_leaves_no_config_behind() {
        let l = Layout::at(temp("fail"));
        let err = prepare(&l, |_| Err("store is locked".into()), |_| Ok(())).unwrap_err();
        assert_eq!(err, "store is locked");
        assert!(!l.config.exists());
        assert!(!l.root.join(".config.toml.new").exists());
        let err = prepare(
            &l,
            |_| Ok("sk-ms-x".into()),
            |_| Err("stdout is closed".into()),
        )
        .unwrap_err();
        assert_eq!(err, "stdout is closed");
        assert!(!l.config.exists());
        assert!(!l.root.join(".config.toml.new").exists());
        std::fs::remove_dir_all(&l.root).unwrap();
    }

    #[test]
    fn a_run_that_waited_for_the_lock_finds_the_workspace_made() {
        let l = Layout::at(temp("race"));
        std::fs::create_dir_all(&l.root).unwrap();
        let held = std::fs::File::create(l.root.join(FIRST_RUN_LOCK)).unwrap();
        held.lock().unwrap();
        let waiter = {
            let l = l.clone();
            std::thread::spawn(move || {
                prepare(&l, |_| panic!("no second key"), |_| panic!("no welcome"))
            })
        };
        // The holder makes the config, then lets the waiter in.
        std::thread::sleep(std::time::Duration::from_millis(100));
        std::fs::write(&l.config, TEMPLATE).unwrap();
        held.unlock().unwrap();
        assert_eq!(waiter.join().unwrap(), Ok(Prepared::Existing));
        std::fs::remove_dir_all(&l.root).unwrap();
    }

    #[test]
    fn the_welcome_shows_the_key_and_the_warning() {
        let w = welcome(&Layout::at("/w".into()), "sk-ms-abc");
        assert!(w.contains("    sk-ms-abc\n"), "{w}");
        assert!(w.contains("not shown again"), "{w}");
    }
}
