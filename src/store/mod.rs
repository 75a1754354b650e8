//! Stored state behind one small interface: the runtime API keys, the
//! usage rows and the admin UI's sessions and settings, in SQLite
//! (`sqlite.rs`, one machine) or PostgreSQL (`postgres.rs`, several
//! replicas sharing one database). Callers see `KeyStore` and plain types
//! only; `answer` is the one dispatch over the backends.
//!
//! A sqlx pool belongs to the tokio runtime that made it, and the gateway
//! runs one single-threaded runtime per Pingora worker plus others for
//! background services. So the pool lives on a thread of its own, with
//! its own runtime; a `KeyStore` is a channel to that thread and works
//! from any runtime (a CLI just `block_on`s it). The thread ends when the
//! last handle is dropped, and it is also the one writer of the process.

mod codec;
mod postgres;
mod postgres_usage;
pub mod refresh;
mod sqlite;
mod sqlite_usage;
#[cfg(test)]
mod tests;
pub mod usage_query;

use crate::config::{Process, StoreBackend};
use crate::usage::UsageRow;
use filters::auth::{ClientKey, KeySource, KeySpec};
use postgres::Postgres;
pub use postgres::{redact_url, resolve_url};
use sqlite::Sqlite;
use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use tokio::sync::{mpsc, oneshot};

/// A key as the store keeps it: its attributes and what identifies it,
/// never its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredKey {
    pub spec: KeySpec,
    /// SHA-256 of the secret.
    pub hash: [u8; 32],
    /// The first characters of the secret (`sk-ms-AbCd`), safe to show.
    pub prefix: String,
    /// Unix seconds.
    pub created_at: i64,
    pub updated_at: i64,
}

impl StoredKey {
    /// The key as the request path reads it; a row written by another
    /// version may no longer validate.
    pub fn client_key(&self) -> Result<ClientKey, Vec<String>> {
        ClientKey::from_spec(
            self.spec.clone(),
            KeySource::Store,
            Some(self.prefix.clone()),
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    /// A key of this name exists.
    Conflict(String),
    /// No key of this name.
    NotFound(String),
    /// What is wrong with the attributes, each naming its field.
    Invalid(Vec<String>),
    /// The database failed; the message never holds a key.
    Backend(String),
    /// The database refused the data itself (a value it cannot hold): the
    /// same rows would fail again, so they are not retried as they are.
    Rejected(String),
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Conflict(name) => write!(f, "a key named '{name}' exists"),
            Self::NotFound(name) => write!(f, "no key named '{name}'"),
            Self::Invalid(errs) => f.write_str(&errs.join("; ")),
            Self::Backend(msg) => write!(f, "key store: {msg}"),
            Self::Rejected(msg) => write!(f, "store refused the data: {msg}"),
        }
    }
}

impl std::error::Error for StoreError {}

/// An admin UI session as the store keeps it: the SHA-256 of its cookie's
/// token, never the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UiSession {
    /// SHA-256 of the cookie's token, lowercase hex.
    pub hash: String,
    /// The key's name, or `(password)` for the password.
    pub user: String,
    /// `admin` or `viewer`, as at login.
    pub role: String,
    /// `key` or `password`.
    pub via: String,
    /// Key sessions: 16 hex digits of SHA-256 over the session's hash and
    /// the key's SHA-256 (a rotated key is another key); never the key.
    pub key_fingerprint: Option<String>,
    /// Unix seconds.
    pub created_at: i64,
    pub last_seen_at: i64,
    pub expires_at: i64,
}

/// Hex digits of a session's public id: 64 bits of its token's hash, enough
/// to name one session, far too few (and the wrong side of the hash) to
/// forge its cookie.
pub const SESSION_ID_LEN: usize = 16;

impl UiSession {
    /// The public id: the first hex digits of the stored hash.
    pub fn id(&self) -> &str {
        self.hash.get(..SESSION_ID_LEN).unwrap_or(&self.hash)
    }
}

/// Whether `s` is shaped like a session's public id.
pub fn is_session_id(s: &str) -> bool {
    s.len() == SESSION_ID_LEN && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Which sessions a revocation ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionMatch {
    /// The one whose token hashes to this (hex).
    Hash(String),
    /// The one with this public id.
    Id(String),
    /// Every one whose expiry is at or before this time (unix seconds).
    ExpiredAt(i64),
}

/// The setting that holds the admin password's Argon2id PHC string.
pub const ADMIN_PASSWORD: &str = "admin_password";

/// A key to insert: the secret stays with the caller, only its hash and
/// prefix travel to the store's thread.
struct NewKey {
    spec: KeySpec,
    hash: [u8; 32],
    prefix: String,
}

type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

enum Request {
    Create(NewKey, Reply<StoredKey>),
    List(Reply<Vec<StoredKey>>),
    Get(String, Reply<Option<StoredKey>>),
    Update(String, KeySpec, Reply<StoredKey>),
    Delete(String, Reply<bool>),
    Version(Reply<i64>),
    Touch(Vec<(String, i64)>, Reply<()>),
    LastUsed(Reply<HashMap<String, i64>>),
    InsertUsage(Vec<UsageRow>, Reply<u64>),
    UsageSummary(usage_query::SummaryQuery, Reply<usage_query::Summary>),
    UsagePage(
        usage_query::UsageFilter,
        Option<usage_query::Cursor>,
        u32,
        Reply<usage_query::Page>,
    ),
    UsageSessions(
        usage_query::UsageFilter,
        Option<usage_query::SessionCursor>,
        u32,
        Reply<usage_query::SessionPage>,
    ),
    /// The row of one request, by its id.
    UsageOne(String, Reply<Option<usage_query::StoredUsage>>),
    SessionCreate(UiSession, Reply<()>),
    /// A session by the hash of its token.
    SessionGet(String, Reply<Option<UiSession>>),
    SessionTouch(String, i64, Reply<()>),
    SessionList(Reply<Vec<UiSession>>),
    SessionRevoke(SessionMatch, Reply<u64>),
    Setting(String, Reply<Option<String>>),
    /// A new admin password hash; every password session ends with it.
    SetPassword(String, Reply<u64>),
    #[cfg(test)]
    UsageCount(Reply<u64>),
}

/// A handle on the key store; clones share one database thread.
#[derive(Clone)]
pub struct KeyStore {
    requests: mpsc::Sender<Request>,
}

impl KeyStore {
    /// Opens (creating if needed) the SQLite file at `path` and brings its
    /// schema up to date. Blocks until the database is ready.
    pub fn open(path: &Path) -> Result<KeyStore, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                StoreError::Backend(format!("{}: cannot create: {e}", dir.display()))
            })?;
        }
        Self::start(Location::Sqlite(path.to_owned()))
    }

    /// The store the config names: `[storage] backend`.
    pub fn open_configured(process: &Process) -> Result<KeyStore, StoreError> {
        match &process.store_backend {
            StoreBackend::Sqlite => Self::open(&process.sqlite_path),
            StoreBackend::Postgres { url } => Self::open_postgres(url.expose()),
        }
    }

    /// Connects to the PostgreSQL database at `url` (its password is never
    /// shown in an error) and brings its schema up to date. Blocks until
    /// the database is ready, 5 s at most for the connection.
    pub fn open_postgres(url: &str) -> Result<KeyStore, StoreError> {
        Self::start(Location::Postgres(url.to_owned()))
    }

    fn start(at: Location) -> Result<KeyStore, StoreError> {
        // Requests wait here while the thread is busy: a bounded queue
        // pushes back on callers instead of growing.
        let (requests, inbox) = mpsc::channel(64);
        let (ready_tx, ready_rx) = std::sync::mpsc::sync_channel(1);
        std::thread::Builder::new()
            .name("key-store".into())
            .spawn(move || serve(at, inbox, ready_tx))
            .map_err(|e| StoreError::Backend(format!("cannot start its thread: {e}")))?;
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(KeyStore { requests }),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(closed()),
        }
    }

    /// Mints a key for `spec`; the secret is returned here and only here.
    pub async fn create(&self, spec: KeySpec) -> Result<(StoredKey, String), StoreError> {
        ClientKey::from_spec(spec.clone(), KeySource::Store, None).map_err(StoreError::Invalid)?;
        let secret = filters::auth::generate_key(getrandom::fill)
            .map_err(|e| StoreError::Backend(format!("no randomness for a key: {e}")))?;
        let new = NewKey {
            spec,
            hash: filters::auth::key_hash(&secret),
            prefix: filters::auth::display_prefix(&secret),
        };
        let stored = self.ask(|r| Request::Create(new, r)).await?;
        Ok((stored, secret))
    }

    /// Every key, by name.
    pub async fn list(&self) -> Result<Vec<StoredKey>, StoreError> {
        self.ask(Request::List).await
    }

    pub async fn get(&self, name: &str) -> Result<Option<StoredKey>, StoreError> {
        self.ask(|r| Request::Get(name.to_owned(), r)).await
    }

    /// Replaces every attribute of the key `name`; its secret stays.
    pub async fn update(&self, name: &str, spec: KeySpec) -> Result<StoredKey, StoreError> {
        // The name is how clients' keys are known in logs and limits: a
        // new name is a new key.
        if spec.name != name {
            return Err(StoreError::Invalid(vec![format!(
                "name: a key cannot be renamed ('{name}' to '{}')",
                spec.name
            )]));
        }
        ClientKey::from_spec(spec.clone(), KeySource::Store, None).map_err(StoreError::Invalid)?;
        self.ask(|r| Request::Update(name.to_owned(), spec, r))
            .await
    }

    /// Revokes the key `name`; false if there was none.
    pub async fn delete(&self, name: &str) -> Result<bool, StoreError> {
        self.ask(|r| Request::Delete(name.to_owned(), r)).await
    }

    /// Changes with every create, update and delete, by any process.
    pub async fn version(&self) -> Result<i64, StoreError> {
        self.ask(Request::Version).await
    }

    /// Records last uses (key name, Unix seconds); an older time never
    /// replaces a newer one. Not a change of the keys: the version stays.
    pub async fn touch(&self, used: Vec<(String, i64)>) -> Result<(), StoreError> {
        if used.is_empty() {
            return Ok(());
        }
        self.ask(|r| Request::Touch(used, r)).await
    }

    /// Last use (Unix seconds) by key name, of keys used at least once.
    pub async fn last_used(&self) -> Result<HashMap<String, i64>, StoreError> {
        self.ask(Request::LastUsed).await
    }

    /// Inserts usage rows in one transaction; a row whose request id is
    /// stored already is skipped (a replay never doubles a row). Returns
    /// the rows inserted.
    pub async fn insert_usage(&self, rows: Vec<UsageRow>) -> Result<u64, StoreError> {
        if rows.is_empty() {
            return Ok(0);
        }
        self.ask(|r| Request::InsertUsage(rows, r)).await
    }

    /// Usage totals over a time range, overall and per group.
    pub async fn usage_summary(
        &self,
        q: usage_query::SummaryQuery,
    ) -> Result<usage_query::Summary, StoreError> {
        self.ask(|r| Request::UsageSummary(q, r)).await
    }

    /// Up to `limit` usage rows after `after`, newest first. Each page is
    /// one request to the store's thread, so a long walk (an export) lets
    /// the usage writer in between pages.
    pub async fn usage_page(
        &self,
        filter: usage_query::UsageFilter,
        after: Option<usage_query::Cursor>,
        limit: u32,
    ) -> Result<usage_query::Page, StoreError> {
        self.ask(|r| Request::UsagePage(filter, after, limit, r))
            .await
    }

    /// Up to `limit` agent sessions after `after`, newest last use first.
    pub async fn usage_sessions(
        &self,
        filter: usage_query::UsageFilter,
        after: Option<usage_query::SessionCursor>,
        limit: u32,
    ) -> Result<usage_query::SessionPage, StoreError> {
        self.ask(|r| Request::UsageSessions(filter, after, limit, r))
            .await
    }

    /// The usage row of one request.
    pub async fn usage_by_request(
        &self,
        request_id: &str,
    ) -> Result<Option<usage_query::StoredUsage>, StoreError> {
        self.ask(|r| Request::UsageOne(request_id.to_owned(), r))
            .await
    }

    /// Stores a new UI session.
    pub async fn create_session(&self, s: UiSession) -> Result<(), StoreError> {
        self.ask(|r| Request::SessionCreate(s, r)).await
    }

    /// The session whose token hashes to `hash` (hex), expired or not.
    pub async fn session(&self, hash: &str) -> Result<Option<UiSession>, StoreError> {
        self.ask(|r| Request::SessionGet(hash.to_owned(), r)).await
    }

    /// Records a session's use; an older time never replaces a newer one.
    pub async fn touch_session(&self, hash: &str, at: i64) -> Result<(), StoreError> {
        self.ask(|r| Request::SessionTouch(hash.to_owned(), at, r))
            .await
    }

    /// Every stored session, newest first, expired ones included.
    pub async fn sessions(&self) -> Result<Vec<UiSession>, StoreError> {
        self.ask(Request::SessionList).await
    }

    /// Deletes the sessions `which` names; returns how many.
    pub async fn revoke_sessions(&self, which: SessionMatch) -> Result<u64, StoreError> {
        // An id goes into a LIKE pattern: nothing but its hex digits may.
        if let SessionMatch::Id(id) = &which {
            if !is_session_id(id) {
                return Ok(0);
            }
        }
        self.ask(|r| Request::SessionRevoke(which, r)).await
    }

    /// A named setting's value.
    pub async fn setting(&self, name: &str) -> Result<Option<String>, StoreError> {
        self.ask(|r| Request::Setting(name.to_owned(), r)).await
    }

    /// Stores the admin password's hash (a PHC string) and ends every
    /// password session, in one transaction; returns the sessions ended.
    pub async fn set_admin_password(&self, phc: String) -> Result<u64, StoreError> {
        self.ask(|r| Request::SetPassword(phc, r)).await
    }

    /// How many usage rows are stored.
    #[cfg(test)]
    pub async fn usage_count(&self) -> Result<u64, StoreError> {
        self.ask(Request::UsageCount).await
    }

    async fn ask<T>(&self, request: impl FnOnce(Reply<T>) -> Request) -> Result<T, StoreError> {
        let (tx, rx) = oneshot::channel();
        self.requests
            .send(request(tx))
            .await
            .map_err(|_| closed())?;
        rx.await.map_err(|_| closed())?
    }
}

/// Which store the config names, for messages: the file, or the URL with
/// its password masked.
pub fn shown(process: &Process) -> String {
    match &process.store_backend {
        StoreBackend::Sqlite => process.sqlite_path.display().to_string(),
        StoreBackend::Postgres { url } => redact_url(url.expose()),
    }
}

fn closed() -> StoreError {
    StoreError::Backend("its thread has stopped".into())
}

/// Where the store's thread connects.
enum Location {
    Sqlite(PathBuf),
    Postgres(String),
}

/// The backend the store's thread holds.
enum Db {
    Sqlite(Sqlite),
    Postgres(Postgres),
}

/// The same call on whichever backend `$db` is: each backend has the same
/// methods with the same signatures.
macro_rules! on {
    ($db:expr, $d:ident => $call:expr) => {
        match $db {
            Db::Sqlite($d) => $call,
            Db::Postgres($d) => $call,
        }
    };
}

/// The store's thread: connects, reports readiness, then answers requests
/// one at a time (one writer) until every handle is gone.
fn serve(
    at: Location,
    mut inbox: mpsc::Receiver<Request>,
    ready: std::sync::mpsc::SyncSender<Result<(), StoreError>>,
) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let _ = ready.send(Err(StoreError::Backend(format!("no runtime: {e}"))));
            return;
        }
    };
    runtime.block_on(async move {
        let connected = match at {
            Location::Sqlite(path) => Sqlite::connect(&path).await.map(Db::Sqlite),
            Location::Postgres(url) => Postgres::connect(&url).await.map(Db::Postgres),
        };
        let db = match connected {
            Ok(db) => db,
            Err(e) => {
                let _ = ready.send(Err(e));
                return;
            }
        };
        let _ = ready.send(Ok(()));
        while let Some(request) = inbox.recv().await {
            answer(&db, request).await;
        }
        on!(&db, d => d.close().await);
    });
}

async fn answer(db: &Db, request: Request) {
    // A caller that gave up no longer wants the answer: send errors are
    // ignored.
    match request {
        Request::Create(new, r) => drop(r.send(on!(db, d => d.create(new).await))),
        Request::List(r) => drop(r.send(on!(db, d => d.list().await))),
        Request::Get(name, r) => drop(r.send(on!(db, d => d.get(&name).await))),
        Request::Update(name, spec, r) => drop(r.send(on!(db, d => d.update(&name, spec).await))),
        Request::Delete(name, r) => drop(r.send(on!(db, d => d.delete(&name).await))),
        Request::Version(r) => drop(r.send(on!(db, d => d.version().await))),
        Request::Touch(used, r) => drop(r.send(on!(db, d => d.touch(used).await))),
        Request::LastUsed(r) => drop(r.send(on!(db, d => d.last_used().await))),
        Request::InsertUsage(rows, r) => drop(r.send(on!(db, d => d.insert_usage(rows).await))),
        // The read side's SQL is backend-neutral (usage_query); each
        // backend binds and runs it (sqlite_usage.rs, postgres_usage.rs).
        Request::UsageSummary(q, r) => {
            drop(r.send(on!(db, d => usage_query::summarize(d, &q).await)))
        }
        Request::UsagePage(f, after, limit, r) => {
            drop(r.send(on!(db, d => usage_query::page(d, &f, after, limit).await)))
        }
        Request::UsageSessions(f, after, limit, r) => {
            drop(r.send(on!(db, d => usage_query::sessions(d, &f, after.as_ref(), limit).await)))
        }
        Request::UsageOne(id, r) => {
            drop(r.send(on!(db, d => usage_query::by_request(d, &id).await)))
        }
        Request::SessionCreate(s, r) => drop(r.send(on!(db, d => d.create_session(s).await))),
        Request::SessionGet(h, r) => drop(r.send(on!(db, d => d.session(&h).await))),
        Request::SessionTouch(h, at, r) => {
            drop(r.send(on!(db, d => d.touch_session(&h, at).await)))
        }
        Request::SessionList(r) => drop(r.send(on!(db, d => d.sessions().await))),
        Request::SessionRevoke(m, r) => drop(r.send(on!(db, d => d.revoke_sessions(&m).await))),
        Request::Setting(name, r) => drop(r.send(on!(db, d => d.setting(&name).await))),
        Request::SetPassword(phc, r) => drop(r.send(on!(db, d => d.set_password(&phc).await))),
        #[cfg(test)]
        Request::UsageCount(r) => drop(r.send(on!(db, d => d.usage_count().await))),
    }
}
