//! The config file as the admin API edits it: read with secrets masked,
//! validated as at startup, written atomically with comments kept, then
//! published at once. The file stays the one source of truth: the UI's
//! model edits go through the same save.

use super::auth::{caller, require_role, require_viewer};
use super::config_mask::{mask, restore};
use super::config_targets::{set_targets, EditError, TargetRef};
use super::AdminPlane;
use crate::config::reload::{ApplyError, Reloader};
use crate::config::Issue;
use crate::downstream::read_body;
use crate::record::RequestRecord;
use crate::state::Live;
use filters::auth::Role;
use filters::error::{parse_body, ApiError, ErrorKind};
use pingora::proxy::Session;
use serde::Deserialize;
use serde_json::{json, Value};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub struct ConfigWriter {
    /// The config file (absolute).
    pub path: PathBuf,
    pub reloader: Arc<Reloader>,
    /// One save at a time: the read, the etag check, the write and the
    /// publish of two saves never interleave. Owned by the blocking task
    /// that saves, so a client going away mid-save does not release it.
    saving: Arc<tokio::sync::Mutex<()>>,
}

impl ConfigWriter {
    pub fn new(path: PathBuf, reloader: Arc<Reloader>) -> Self {
        Self {
            path: std::path::absolute(&path).unwrap_or(path),
            reloader,
            saving: Arc::new(tokio::sync::Mutex::new(())),
        }
    }

    async fn read(&self) -> Result<String, ApiError> {
        tokio::fs::read_to_string(&self.path)
            .await
            .map_err(|e| cannot_read(&self.path, &e))
    }

    /// The one way the admin plane changes config: under the save lock,
    /// the file is read, checked against the `etag` the client read it
    /// with (409 when it changed since), turned into a new text by `edit`,
    /// validated as the gateway would at startup, written and published.
    /// Model and provider edits of the UI come through here too.
    ///
    /// All of it runs in one blocking task that owns the lock: a request
    /// dropped mid-save (the client went away) only stops waiting for it;
    /// the next save starts once this one is written and published.
    pub async fn edit<F>(&self, etag_read: Option<String>, edit: F) -> Result<Saved, Refused>
    where
        F: FnOnce(&str) -> Result<String, Refused> + Send + 'static,
    {
        let saving = self.saving.clone().lock_owned().await;
        let (reloader, path) = (self.reloader.clone(), self.path.clone());
        // Writing (fsync) and binding (replica hosts resolve) block.
        let job = tokio::task::spawn_blocking(move || {
            let _saving = saving;
            save(&reloader, &path, etag_read.as_deref(), edit)
        });
        job.await
            .map_err(|_| Refused::Failed(internal("the config write did not finish")))?
    }
}

/// Reads the file, checks the etag, edits, validates, writes and
/// publishes (the save lock is held). The text read is handed to the
/// reloader, which compares it with the file again under its own lock
/// right before writing: an edit made on disk in between is a 409 too.
fn save(
    reloader: &Reloader,
    path: &Path,
    etag_read: Option<&str>,
    edit: impl FnOnce(&str) -> Result<String, Refused>,
) -> Result<Saved, Refused> {
    let current =
        std::fs::read_to_string(path).map_err(|e| Refused::Failed(cannot_read(path, &e)))?;
    check_etag(etag_read, &current).map_err(Refused::Failed)?;
    let text = edit(&current)?;
    let snap = crate::config::load_text(&text, path).map_err(|e| Refused::Invalid(e.issues()))?;
    let tag = etag(&text);
    match reloader.apply_now(&current, &text, snap, &|t| write_atomically(path, t)) {
        Ok(restart_needed) => Ok(Saved {
            etag: tag,
            restart_needed,
        }),
        Err(ApplyError::Changed) => Err(Refused::Failed(changed())),
        Err(ApplyError::Rejected(e)) => Err(Refused::Invalid(e.issues())),
        Err(ApplyError::Write(e)) => Err(Refused::Failed(internal(format!(
            "cannot write {}: {e}",
            path.display()
        )))),
    }
}

fn cannot_read(path: &Path, e: &std::io::Error) -> ApiError {
    internal(format!("cannot read {}: {e}", path.display()))
}

/// A save written and published.
pub struct Saved {
    /// The new file's etag.
    pub etag: String,
    /// Settings that changed in the file but keep their running value
    /// until a restart.
    pub restart_needed: Vec<&'static str>,
}

/// Why a save did not happen; the file is as it was either way.
pub enum Refused {
    /// The new text is not a valid config: a 400 listing every issue.
    Invalid(Vec<Issue>),
    /// Anything else (409 stale etag, 404, a write that failed).
    Failed(ApiError),
}

/// The answer to a save: 200 with `extra` beside the etag and the
/// restart list, or the refusal.
pub(super) async fn answer(
    session: &mut Session,
    rec: &mut RequestRecord,
    saved: Result<Saved, Refused>,
    extra: impl FnOnce() -> Vec<(&'static str, Value)>,
) -> Result<(), ApiError> {
    match saved {
        Ok(s) => {
            let mut v = json!({"ok": true, "etag": s.etag, "restart_needed": s.restart_needed});
            if let Value::Object(m) = &mut v {
                for (k, x) in extra() {
                    m.insert(k.into(), x);
                }
            }
            super::send_json(session, rec, 200, &v).await
        }
        Err(Refused::Invalid(issues)) => refuse(session, rec, &issues).await,
        Err(Refused::Failed(e)) => Err(e),
    }
}

fn internal(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorKind::Api, message).with_status(500)
}

/// `/api/config`, `/api/config/validate` and `/api/models/{name}/targets`.
pub async fn handle(
    plane: &AdminPlane,
    session: &mut Session,
    rec: &mut RequestRecord,
    live: &Arc<Live>,
) -> Result<(), ApiError> {
    let who = caller(plane, live, session, rec).await?;
    let method = session.req_header().method.clone();
    let path = session.req_header().uri.path().to_owned();
    let segments = super::segments(&path)?;
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    use http::Method;
    match (segments.as_slice(), &method) {
        (["config"], m) if m == Method::GET || m == Method::HEAD => {
            require_viewer(&who)?;
            get_config(plane, session, rec).await
        }
        (["config"], m) if m == Method::PUT => {
            require_role(&who, Role::Admin)?;
            put_config(plane, session, rec, live).await
        }
        // Admins only, though a check changes nothing: it runs against
        // the file's secrets (a masked value is restored before the
        // check), so a viewer could confirm a guessed key ("configured
        // twice") or learn which environment variables are set.
        (["config", "validate"], m) if m == Method::POST => {
            require_role(&who, Role::Admin)?;
            validate(plane, session, rec, live).await
        }
        (["models", name, "targets"], m) if m == Method::PUT => {
            require_role(&who, Role::Admin)?;
            put_targets(plane, session, rec, live, name).await
        }
        (["config"] | ["config", "validate"] | ["models", _, "targets"], _) => {
            Err(super::not_allowed(&method, &path))
        }
        _ => Err(super::no_route(&path)),
    }
}

async fn get_config(
    plane: &AdminPlane,
    session: &mut Session,
    rec: &mut RequestRecord,
) -> Result<(), ApiError> {
    let w = &plane.config;
    let text = w.read().await?;
    let masked = mask(&text).map_err(|m| {
        // Nothing is shown of a file whose secrets cannot be found.
        ApiError::invalid(format!("{}: {m}; fix it on disk", w.path.display())).with_status(409)
    })?;
    let body = json!({
        "path": w.path.display().to_string(),
        "toml": masked.text,
        "etag": etag(&text),
        "masked": masked.paths,
    });
    super::send_json(session, rec, 200, &body).await
}

#[derive(Deserialize)]
struct ConfigBody {
    toml: String,
    /// The etag the text was read with: required by `PUT /api/config`
    /// (a whole file saved blind would undo any edit it never saw).
    #[serde(default)]
    etag: Option<String>,
}

async fn validate(
    plane: &AdminPlane,
    session: &mut Session,
    rec: &mut RequestRecord,
    live: &Live,
) -> Result<(), ApiError> {
    let body: ConfigBody = parse_body(&read_body(session, &live.config).await?)?;
    let w = &plane.config;
    let current = w.read().await?;
    let issues = match restore(&body.toml, &current) {
        Err(issues) => issues,
        Ok(text) => match crate::config::load_text(&text, &w.path) {
            Ok(_) => Vec::new(),
            Err(e) => e.issues(),
        },
    };
    let v = if issues.is_empty() {
        json!({"ok": true})
    } else {
        json!({"ok": false, "errors": issues})
    };
    super::send_json(session, rec, 200, &v).await
}

async fn put_config(
    plane: &AdminPlane,
    session: &mut Session,
    rec: &mut RequestRecord,
    live: &Live,
) -> Result<(), ApiError> {
    let body: ConfigBody = parse_body(&read_body(session, &live.config).await?)?;
    let etag = body.etag.filter(|e| !e.is_empty()).ok_or_else(|| {
        ApiError::invalid("etag is required: GET /api/config first").with_param("etag")
    })?;
    let toml = body.toml;
    let saved = plane
        .config
        .edit(Some(etag), move |current| {
            restore(&toml, current).map_err(Refused::Invalid)
        })
        .await;
    answer(session, rec, saved, || vec![("published", json!(true))]).await
}

#[derive(Deserialize)]
struct TargetsBody {
    targets: Vec<TargetRef>,
    /// Optional: a chain edit replaces one model's targets and nothing
    /// else, so it is safe on a file changed since; checked when given.
    #[serde(default)]
    etag: Option<String>,
}

async fn put_targets(
    plane: &AdminPlane,
    session: &mut Session,
    rec: &mut RequestRecord,
    live: &Live,
    name: &str,
) -> Result<(), ApiError> {
    let body: TargetsBody = parse_body(&read_body(session, &live.config).await?)?;
    for (i, t) in body.targets.iter().enumerate() {
        for (field, v) in [("provider", &t.provider), ("model", &t.model)] {
            if v.trim().is_empty() {
                return Err(
                    ApiError::invalid(format!("targets[{i}].{field}: must not be empty"))
                        .with_param(format!("targets[{i}].{field}")),
                );
            }
        }
    }
    let w = &plane.config;
    let (model, path, targets) = (name.to_owned(), w.path.clone(), body.targets);
    let etag = body.etag.filter(|e| !e.is_empty());
    let saved = w
        .edit(etag, move |current| {
            set_targets(current, &model, &targets).map_err(|e| {
                Refused::Failed(match e {
                    EditError::NoModel => ApiError::new(
                        ErrorKind::NotFound,
                        format!("no model named {model} in {}", path.display()),
                    ),
                    EditError::Unparsed(m) => {
                        ApiError::invalid(format!("{}: {m}; fix it on disk", path.display()))
                            .with_status(409)
                    }
                    EditError::Shape(m) => ApiError::invalid(format!("model {model}: {m}")),
                })
            })
        })
        .await;
    let model = || vec![("model", model_view(&plane.live.load(), name))];
    answer(session, rec, saved, model).await
}

/// 409 when the file is no longer the one the client read.
fn check_etag(given: Option<&str>, current: &str) -> Result<(), ApiError> {
    match given {
        Some(tag) if tag != etag(current) => Err(changed()),
        _ => Ok(()),
    }
}

fn changed() -> ApiError {
    ApiError::invalid("the config file changed since it was read: load it again and redo the edit")
        .with_status(409)
}

/// A model as `GET /api/models` shows it (the running snapshot).
fn model_view(live: &Live, name: &str) -> Value {
    live.config.routes.get(name).map_or(Value::Null, |route| {
        super::overview::model_view(live, name, route)
    })
}

/// The file's version as clients hold it: SHA-256 of the file's bytes
/// (secrets included) behind a random key of this process, so a viewer
/// holding an etag cannot test guesses of a secret offline. Etags change
/// with a restart: a save read before one is a 409, read again.
fn etag(text: &str) -> String {
    static KEY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let key = KEY.get_or_init(etag_key);
    // The key is 64 hex digits: where it ends and the text starts is fixed.
    filters::auth::key_hash_hex(&format!("{key}{text}"))
}

/// 32 random bytes in hex; should the OS refuse, std's hasher keys (also
/// drawn from the OS, once per process) stand in.
fn etag_key() -> String {
    let mut key = [0u8; 32];
    if getrandom::fill(&mut key).is_err() {
        use std::hash::{BuildHasher, Hasher};
        for (i, chunk) in key.chunks_mut(8).enumerate() {
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_usize(i);
            chunk.copy_from_slice(&h.finish().to_le_bytes());
        }
    }
    filters::auth::hex(&key)
}

/// 400 with the usual error body and every issue by its TOML path.
async fn refuse(
    session: &mut Session,
    rec: &mut RequestRecord,
    issues: &[Issue],
) -> Result<(), ApiError> {
    let e = ApiError::invalid(summary(issues));
    rec.result.error = Some(e.message.clone());
    let mut body = filters::dialect::error_body(filters::Dialect::OpenAiChat, &e);
    if let Value::Object(m) = &mut body {
        m.insert("errors".into(), json!(issues));
    }
    super::send_json(session, rec, 400, &body).await
}

/// `the config is not valid: <first path>: <message> (and N more)`.
fn summary(issues: &[Issue]) -> String {
    let first = issues.first().map_or_else(String::new, |i| {
        if i.path.is_empty() {
            format!(": {}", i.message)
        } else {
            format!(": {}: {}", i.path, i.message)
        }
    });
    match issues.len() {
        0 | 1 => format!("the config is not valid{first}"),
        n => format!("the config is not valid{first} (and {} more)", n - 1),
    }
}

/// Replaces `path` with `text` so no reader ever sees half a file: a temp
/// file beside it (readable by the owner only while it is written),
/// flushed to disk, given the file's permissions and owner, renamed over
/// it, and the directory synced. A symlink (a ConfigMap) is followed: the
/// file it names is replaced and the link kept.
fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let target = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned());
    let dir = target.parent().unwrap_or(Path::new("."));
    let name = target
        .file_name()
        .map_or_else(|| "config".into(), |n| n.to_string_lossy().into_owned());
    let tmp = dir.join(format!(
        ".{name}.{}.{}.tmp",
        std::process::id(),
        fastrand::u64(..)
    ));
    let meta = std::fs::metadata(&target).ok();
    let written = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(text.as_bytes())?;
        if let Some(m) = &meta {
            // Best effort: only root may give a file away.
            let _ = std::os::unix::fs::fchown(&f, Some(m.uid()), Some(m.gid()));
            f.set_permissions(m.permissions())?;
        }
        f.sync_all()?;
        std::fs::rename(&tmp, &target)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
        return written;
    }
    // The new file is in place (readers see it) whatever happens now: a
    // directory that cannot be synced only risks the rename after a crash.
    if let Err(e) = std::fs::File::open(dir).and_then(|d| d.sync_all()) {
        log::warn!(
            "{}: cannot sync the directory after writing the config: {e}",
            dir.display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn writes_replace_the_file_and_keep_its_mode() {
        let dir = std::env::temp_dir().join(format!("ms-config-write-{}", fastrand::u64(..)));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("gw.toml");
        std::fs::write(&path, "old").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        let link = dir.join("link.toml");
        std::os::unix::fs::symlink(&path, &link).unwrap();
        write_atomically(&link, "new text").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new text");
        assert!(std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o640);
        let left: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
        assert_eq!(left.len(), 2, "no temp file is left behind");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn etags_follow_the_bytes() {
        assert_eq!(etag("a = 1\n"), etag("a = 1\n"));
        assert_ne!(etag("a = 1\n"), etag("a = 2\n"));
        // Keyed: not the plain SHA-256 of the text.
        assert_ne!(etag("a = 1\n"), filters::auth::key_hash_hex("a = 1\n"));
        assert_eq!(etag("").len(), 64);
        assert!(check_etag(None, "x").is_ok());
        assert!(check_etag(Some(&etag("x")), "x").is_ok());
        assert_eq!(check_etag(Some("nope"), "x").unwrap_err().status, Some(409));
    }

    #[test]
    fn the_summary_names_the_first_path() {
        let i = |p: &str| Issue {
            path: p.into(),
            message: "bad".into(),
            line: None,
        };
        assert_eq!(
            summary(&[i("providers[0].base_url")]),
            "the config is not valid: providers[0].base_url: bad"
        );
        assert_eq!(
            summary(&[i("a"), i("b"), i("c")]),
            "the config is not valid: a: bad (and 2 more)"
        );
    }
}
