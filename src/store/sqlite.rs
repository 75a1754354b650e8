//! The key store in SQLite: WAL (readers never wait for the writer, and
//! other processes — the `keys` CLI, other gateways — share the file),
//! a 5 s busy timeout for their writes, and every change to `keys` with a
//! bump of `meta.keys_version` in one transaction.

use super::codec::{hash_from, int, spec_from, spec_json, unix_now};
use super::{NewKey, SessionMatch, StoreError, StoredKey, UiSession, ADMIN_PASSWORD};
use crate::usage::UsageRow;
use filters::auth::KeySpec;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};
use sqlx::Row;
use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("src/store/migrations/sqlite");

/// Writes take the write lock at BEGIN, so waiting for another process's
/// writer goes through the busy timeout instead of failing on upgrade.
const BEGIN_WRITE: &str = "BEGIN IMMEDIATE";

const INSERT_USAGE: &str = "INSERT OR IGNORE INTO usage (ts, request_id, key_name, dialect, \
     endpoint, model, provider, upstream_model, attempts, status, stream, input_uncached, \
     cache_read, cache_write, output, reasoning, cost_nanos, currency, latency_ms, ttfb_ms, \
     overhead_ms, bytes_in, bytes_out, client_addr, user_agent, session_id, error, \
     routed_model, routed_by, scene) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, \
     ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28, ?29, ?30)";

const LIST: &str =
    "SELECT name, hash, prefix, spec, created_at, updated_at FROM keys ORDER BY name";
const GET: &str =
    "SELECT name, hash, prefix, spec, created_at, updated_at FROM keys WHERE name = ?";

const INSERT_SESSION: &str = "INSERT INTO ui_sessions (hash, user_name, role, via, \
     key_fingerprint, created_at, last_seen_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)";
const SESSION: &str =
    "SELECT hash, user_name, role, via, key_fingerprint, created_at, last_seen_at, expires_at \
     FROM ui_sessions WHERE hash = ?";
const SESSIONS: &str =
    "SELECT hash, user_name, role, via, key_fingerprint, created_at, last_seen_at, expires_at \
     FROM ui_sessions ORDER BY created_at DESC, hash";

pub(super) struct Sqlite {
    pub(super) pool: SqlitePool,
    path: std::path::PathBuf,
    /// The usage rows' own connection (rusqlite), opened at the first
    /// batch and reopened after a failure.
    usage: std::sync::Mutex<Option<rusqlite::Connection>>,
}

impl Sqlite {
    pub(super) async fn connect(path: &Path) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true);
        // One connection: requests are answered one at a time anyway.
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await
            .map_err(|e| StoreError::Backend(format!("{}: {e}", path.display())))?;
        // Two processes opening a new file together may both try the first
        // migration; the loser finds it applied on a second try.
        let mut tries = 0;
        loop {
            match MIGRATOR.run(&pool).await {
                Ok(()) => {
                    return Ok(Self {
                        pool,
                        path: path.to_owned(),
                        usage: std::sync::Mutex::new(None),
                    })
                }
                Err(_) if tries < 4 => {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => {
                    return Err(StoreError::Backend(format!(
                        "{}: cannot migrate: {e}",
                        path.display()
                    )))
                }
            }
        }
    }

    pub(super) async fn close(&self) {
        self.pool.close().await;
    }

    pub(super) async fn create(&self, new: NewKey) -> Result<StoredKey, StoreError> {
        let now = unix_now();
        let spec = spec_json(&new.spec)?;
        let mut tx = self.pool.begin_with(BEGIN_WRITE).await.map_err(backend)?;
        let taken = sqlx::query("SELECT 1 FROM keys WHERE name = ?")
            .bind(&new.spec.name)
            .fetch_optional(&mut *tx)
            .await
            .map_err(backend)?;
        if taken.is_some() {
            return Err(StoreError::Conflict(new.spec.name));
        }
        sqlx::query(
            "INSERT INTO keys (name, hash, prefix, spec, created_at, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(&new.spec.name)
        .bind(filters::auth::hex(&new.hash))
        .bind(&new.prefix)
        .bind(spec)
        .bind(now)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        // A new key under an old name has not been used yet.
        forget_use(&mut tx, &new.spec.name).await?;
        bump_version(&mut tx).await?;
        tx.commit().await.map_err(backend)?;
        Ok(StoredKey {
            spec: new.spec,
            hash: new.hash,
            prefix: new.prefix,
            created_at: now,
            updated_at: now,
        })
    }

    pub(super) async fn list(&self) -> Result<Vec<StoredKey>, StoreError> {
        let rows = sqlx::query(LIST)
            .fetch_all(&self.pool)
            .await
            .map_err(backend)?;
        // One unreadable row (written by another version) must not hide
        // every other key.
        Ok(rows
            .iter()
            .filter_map(|row| {
                stored(row)
                    .map_err(|e| log::warn!("a key store row is skipped: {e}"))
                    .ok()
            })
            .collect())
    }

    pub(super) async fn get(&self, name: &str) -> Result<Option<StoredKey>, StoreError> {
        let row = sqlx::query(GET)
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?;
        row.as_ref().map(stored).transpose()
    }

    pub(super) async fn update(&self, name: &str, spec: KeySpec) -> Result<StoredKey, StoreError> {
        let now = unix_now();
        let json = spec_json(&spec)?;
        let mut tx = self.pool.begin_with(BEGIN_WRITE).await.map_err(backend)?;
        let row = sqlx::query(
            "UPDATE keys SET spec = ?, updated_at = ? WHERE name = ? \
             RETURNING hash, prefix, created_at",
        )
        .bind(json)
        .bind(now)
        .bind(name)
        .fetch_optional(&mut *tx)
        .await
        .map_err(backend)?;
        let Some(row) = row else {
            return Err(StoreError::NotFound(name.to_owned()));
        };
        let hash = hash_from(name, &row.try_get::<String, _>("hash").map_err(backend)?)?;
        let prefix = row.try_get("prefix").map_err(backend)?;
        let created_at = row.try_get("created_at").map_err(backend)?;
        bump_version(&mut tx).await?;
        tx.commit().await.map_err(backend)?;
        Ok(StoredKey {
            spec,
            hash,
            prefix,
            created_at,
            updated_at: now,
        })
    }

    pub(super) async fn delete(&self, name: &str) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin_with(BEGIN_WRITE).await.map_err(backend)?;
        let gone = sqlx::query("DELETE FROM keys WHERE name = ?")
            .bind(name)
            .execute(&mut *tx)
            .await
            .map_err(backend)?
            .rows_affected();
        if gone == 0 {
            return Ok(false);
        }
        forget_use(&mut tx, name).await?;
        bump_version(&mut tx).await?;
        tx.commit().await.map_err(backend)?;
        Ok(true)
    }

    pub(super) async fn version(&self) -> Result<i64, StoreError> {
        sqlx::query_scalar("SELECT keys_version FROM meta WHERE id = 1")
            .fetch_one(&self.pool)
            .await
            .map_err(backend)
    }

    pub(super) async fn touch(&self, used: Vec<(String, i64)>) -> Result<(), StoreError> {
        // One transaction for the batch: one fsync, not one per key.
        let mut tx = self.pool.begin_with(BEGIN_WRITE).await.map_err(backend)?;
        for (name, at) in used {
            sqlx::query(
                "INSERT INTO key_activity (name, last_used_at) VALUES (?, ?) \
                 ON CONFLICT (name) DO UPDATE \
                 SET last_used_at = max(last_used_at, excluded.last_used_at)",
            )
            .bind(name)
            .bind(at)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        }
        tx.commit().await.map_err(backend)
    }

    pub(super) async fn last_used(&self) -> Result<HashMap<String, i64>, StoreError> {
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT name, last_used_at FROM key_activity")
                .fetch_all(&self.pool)
                .await
                .map_err(backend)?;
        Ok(rows.into_iter().collect())
    }

    pub(super) async fn insert_usage(&self, rows: Vec<UsageRow>) -> Result<u64, StoreError> {
        // Blocking, on the store's own thread: nothing else waits on it
        // but the store's other requests, which would wait for the one
        // write lock anyway.
        let mut writer = self
            .usage
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if writer.is_none() {
            *writer = Some(open_usage_writer(&self.path)?);
        }
        let Some(conn) = writer.as_mut() else {
            return Err(StoreError::Backend("no usage writer".into()));
        };
        let result = insert_rows(conn, &rows);
        if result.is_err() {
            // A connection in an unknown state is not reused.
            *writer = None;
        }
        result.map_err(|e| StoreError::Backend(format!("usage rows: {e}")))
    }

    pub(super) async fn create_session(&self, s: UiSession) -> Result<(), StoreError> {
        sqlx::query(INSERT_SESSION)
            .bind(s.hash)
            .bind(s.user)
            .bind(s.role)
            .bind(s.via)
            .bind(s.key_fingerprint)
            .bind(s.created_at)
            .bind(s.last_seen_at)
            .bind(s.expires_at)
            .execute(&self.pool)
            .await
            .map_err(backend)
            .map(drop)
    }

    pub(super) async fn session(&self, hash: &str) -> Result<Option<UiSession>, StoreError> {
        let row = sqlx::query(SESSION)
            .bind(hash)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?;
        row.as_ref().map(ui_session).transpose()
    }

    pub(super) async fn touch_session(&self, hash: &str, at: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE ui_sessions SET last_seen_at = max(last_seen_at, ?) WHERE hash = ?")
            .bind(at)
            .bind(hash)
            .execute(&self.pool)
            .await
            .map_err(backend)
            .map(drop)
    }

    pub(super) async fn sessions(&self) -> Result<Vec<UiSession>, StoreError> {
        let rows = sqlx::query(SESSIONS)
            .fetch_all(&self.pool)
            .await
            .map_err(backend)?;
        rows.iter().map(ui_session).collect()
    }

    pub(super) async fn revoke_sessions(&self, which: &SessionMatch) -> Result<u64, StoreError> {
        let q = match which {
            SessionMatch::Hash(h) => {
                sqlx::query("DELETE FROM ui_sessions WHERE hash = ?").bind(h.as_str())
            }
            // The id is checked to be hex digits only (KeyStore).
            SessionMatch::Id(id) => {
                sqlx::query("DELETE FROM ui_sessions WHERE hash LIKE ?").bind(format!("{id}%"))
            }
            SessionMatch::ExpiredAt(now) => {
                sqlx::query("DELETE FROM ui_sessions WHERE expires_at <= ?").bind(*now)
            }
        };
        q.execute(&self.pool)
            .await
            .map(|done| done.rows_affected())
            .map_err(backend)
    }

    pub(super) async fn setting(&self, name: &str) -> Result<Option<String>, StoreError> {
        sqlx::query_scalar("SELECT value FROM settings WHERE name = ?")
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)
    }

    pub(super) async fn set_password(&self, phc: &str) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin_with(BEGIN_WRITE).await.map_err(backend)?;
        sqlx::query(
            "INSERT INTO settings (name, value, updated_at) VALUES (?, ?, ?) \
             ON CONFLICT (name) DO UPDATE \
             SET value = excluded.value, updated_at = excluded.updated_at",
        )
        .bind(ADMIN_PASSWORD)
        .bind(phc)
        .bind(unix_now())
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        let ended = sqlx::query("DELETE FROM ui_sessions WHERE via = 'password'")
            .execute(&mut *tx)
            .await
            .map_err(backend)?
            .rows_affected();
        tx.commit().await.map_err(backend)?;
        Ok(ended)
    }

    #[cfg(test)]
    pub(super) async fn usage_count(&self) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM usage")
            .fetch_one(&self.pool)
            .await
            .map_err(backend)?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    #[cfg(test)]
    pub(super) async fn pragma(&self, name: &'static str) -> Result<String, StoreError> {
        let row = sqlx::query(match name {
            "journal_mode" => "PRAGMA journal_mode",
            "busy_timeout" => "PRAGMA busy_timeout",
            _ => "PRAGMA foreign_keys",
        })
        .fetch_one(&self.pool)
        .await
        .map_err(backend)?;
        // journal_mode answers text, the others integers.
        row.try_get::<String, _>(0)
            .or_else(|_| row.try_get::<i64, _>(0).map(|n| n.to_string()))
            .map_err(backend)
    }
}

type Tx = sqlx::Transaction<'static, sqlx::Sqlite>;

async fn bump_version(tx: &mut Tx) -> Result<(), StoreError> {
    sqlx::query("UPDATE meta SET keys_version = keys_version + 1 WHERE id = 1")
        .execute(&mut **tx)
        .await
        .map_err(backend)
        .map(drop)
}

async fn forget_use(tx: &mut Tx, name: &str) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM key_activity WHERE name = ?")
        .bind(name)
        .execute(&mut **tx)
        .await
        .map_err(backend)
        .map(drop)
}

/// sqlx messages carry SQLite's text, never bound values: no key leaks.
pub(super) fn backend(e: sqlx::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

fn stored(row: &sqlx::sqlite::SqliteRow) -> Result<StoredKey, StoreError> {
    let name: String = row.try_get("name").map_err(backend)?;
    let hash: String = row.try_get("hash").map_err(backend)?;
    let json: String = row.try_get("spec").map_err(backend)?;
    Ok(StoredKey {
        spec: spec_from(&name, &json)?,
        hash: hash_from(&name, &hash)?,
        prefix: row.try_get("prefix").map_err(backend)?,
        created_at: row.try_get("created_at").map_err(backend)?,
        updated_at: row.try_get("updated_at").map_err(backend)?,
    })
}

fn ui_session(row: &sqlx::sqlite::SqliteRow) -> Result<UiSession, StoreError> {
    Ok(UiSession {
        hash: row.try_get("hash").map_err(backend)?,
        user: row.try_get("user_name").map_err(backend)?,
        role: row.try_get("role").map_err(backend)?,
        via: row.try_get("via").map_err(backend)?,
        key_fingerprint: row.try_get("key_fingerprint").map_err(backend)?,
        created_at: row.try_get("created_at").map_err(backend)?,
        last_seen_at: row.try_get("last_seen_at").map_err(backend)?,
        expires_at: row.try_get("expires_at").map_err(backend)?,
    })
}

/// The connection the usage rows go through: the same file, the same busy
/// timeout as the pool's, so another process's writer is waited for.
fn open_usage_writer(path: &Path) -> Result<rusqlite::Connection, StoreError> {
    let conn = rusqlite::Connection::open(path)
        .and_then(|c| c.busy_timeout(Duration::from_secs(5)).map(|()| c))
        .map_err(|e| StoreError::Backend(format!("{}: {e}", path.display())))?;
    conn.set_prepared_statement_cache_capacity(4);
    Ok(conn)
}

/// One transaction (one fsync), one cached statement stepped per row; a
/// request id already stored is skipped, so a replay never doubles a row.
fn insert_rows(conn: &mut rusqlite::Connection, rows: &[UsageRow]) -> rusqlite::Result<u64> {
    use rusqlite::params;
    let tx = rusqlite::Transaction::new(conn, rusqlite::TransactionBehavior::Immediate)?;
    let mut inserted = 0;
    {
        let mut insert = tx.prepare_cached(INSERT_USAGE)?;
        for row in rows {
            inserted += insert.execute(params![
                row.ts,
                row.request_id,
                row.key_name,
                row.dialect,
                row.endpoint,
                row.model,
                row.provider,
                row.upstream_model,
                row.attempts,
                row.status,
                row.stream,
                int(row.input_uncached),
                int(row.cache_read),
                int(row.cache_write),
                int(row.output),
                int(row.reasoning),
                row.cost_nanos,
                row.currency,
                row.latency_ms,
                row.ttfb_ms,
                row.overhead_ms,
                row.bytes_in.map(int),
                row.bytes_out.map(int),
                row.client_addr,
                row.user_agent,
                row.session_id,
                row.error,
                row.routed_model,
                row.routed_by,
                row.scene,
            ])?;
        }
    }
    tx.commit()?;
    Ok(u64::try_from(inserted).unwrap_or(0))
}
