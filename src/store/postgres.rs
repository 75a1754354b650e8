//! The key store and usage rows in PostgreSQL, for several gateway
//! replicas sharing one database. The same semantics as `sqlite.rs`: every
//! change to `keys` bumps `meta.keys_version` in the same transaction,
//! `touch` never replaces a newer last use with an older one, and usage
//! rows are inserted a whole batch per statement, a request id stored once.
//!
//! A small pool (the store's thread answers one request at a time; the
//! pool only spares a reconnect after a connection breaks), a bounded
//! connect, and a statement timeout so one stuck query cannot hold the
//! thread — and with it every caller — forever. The URL's password never
//! reaches an error: each message goes through [`Scrub`].

use super::codec::{hash_from, int, spec_from, spec_json, unix_now};
use super::{NewKey, SessionMatch, StoreError, StoredKey, UiSession, ADMIN_PASSWORD};
use crate::usage::UsageRow;
use filters::auth::KeySpec;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::{ConnectOptions, Connection, Row};
use std::collections::{BTreeMap, HashMap};
use std::str::FromStr;
use std::time::Duration;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("src/store/migrations/postgres");

/// Connections per process: requests are answered one at a time.
const POOL_SIZE: u32 = 4;
/// Longest wait for a connection, a new one's connect and login included.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest a statement may run; the migrations have none (a new index on
/// a large table may rightly take longer).
const STATEMENT_TIMEOUT: &str = "30s";

/// A batch of any size is one statement: each column goes as one array
/// and UNNEST turns them back into rows. One prepared statement for every
/// batch (a VALUES list of N rows is a new statement per N), and one
/// round trip. DO NOTHING also skips a second row of one id in the same
/// batch (DO UPDATE would fail there).
const INSERT_USAGE: &str = "INSERT INTO usage (ts, request_id, key_name, dialect, \
     endpoint, model, provider, upstream_model, attempts, status, stream, input_uncached, \
     cache_read, cache_write, output, reasoning, cost_nanos, currency, latency_ms, ttfb_ms, \
     overhead_ms, bytes_in, bytes_out, client_addr, user_agent, session_id, error, \
     routed_model, routed_by, scene) \
     SELECT * FROM UNNEST($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], \
     $6::text[], $7::text[], $8::text[], $9::text[], $10::bigint[], $11::boolean[], \
     $12::bigint[], $13::bigint[], $14::bigint[], $15::bigint[], $16::bigint[], \
     $17::bigint[], $18::text[], $19::float8[], $20::float8[], $21::float8[], \
     $22::bigint[], $23::bigint[], $24::text[], $25::text[], $26::text[], $27::text[], \
     $28::text[], $29::text[], $30::text[]) \
     ON CONFLICT (request_id) DO NOTHING";

const LIST: &str =
    "SELECT name, hash, prefix, spec, created_at, updated_at FROM keys ORDER BY name";
const GET: &str =
    "SELECT name, hash, prefix, spec, created_at, updated_at FROM keys WHERE name = $1";

const INSERT_SESSION: &str = "INSERT INTO ui_sessions (hash, user_name, role, via, \
     key_fingerprint, created_at, last_seen_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
const SESSION: &str =
    "SELECT hash, user_name, role, via, key_fingerprint, created_at, last_seen_at, expires_at \
     FROM ui_sessions WHERE hash = $1";
const SESSIONS: &str =
    "SELECT hash, user_name, role, via, key_fingerprint, created_at, last_seen_at, expires_at \
     FROM ui_sessions ORDER BY created_at DESC, hash";

pub(super) struct Postgres {
    pub(super) pool: PgPool,
    scrub: Scrub,
}

impl Postgres {
    /// Connects, brings the schema up to date, and opens the pool. Several
    /// replicas starting together are fine: sqlx's migrator holds an
    /// advisory lock while it works.
    pub(super) async fn connect(url: &str) -> Result<Self, StoreError> {
        let scrub = Scrub::of(url);
        let shown = redact_url(url);
        let fail = |what: &str, e: &dyn std::fmt::Display| {
            StoreError::Backend(format!("{shown}: {what}{}", scrub.text(&e.to_string())))
        };
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| fail("", &e))?
            .application_name("modelswitch");
        let mut conn = tokio::time::timeout(CONNECT_TIMEOUT, options.clone().connect())
            .await
            .map_err(|_| fail("", &"no connection within 5s"))?
            .map_err(|e| fail("", &e))?;
        let migrated = MIGRATOR.run(&mut conn).await;
        // Closing ends the session, and with it the migrator's lock.
        let _ = conn.close().await;
        migrated.map_err(|e| fail("cannot migrate: ", &e))?;
        let pool = PgPoolOptions::new()
            .max_connections(POOL_SIZE)
            .acquire_timeout(CONNECT_TIMEOUT)
            // A pooled connection may have died with a server restart: a
            // ping before use reconnects instead of failing one request.
            .test_before_acquire(true)
            .connect_with(options.options([("statement_timeout", STATEMENT_TIMEOUT)]))
            .await
            .map_err(|e| fail("", &e))?;
        Ok(Self { pool, scrub })
    }

    pub(super) async fn close(&self) {
        self.pool.close().await;
    }

    pub(super) async fn create(&self, new: NewKey) -> Result<StoredKey, StoreError> {
        let now = unix_now();
        let spec = spec_json(&new.spec)?;
        let mut tx = self.pool.begin().await.map_err(|e| self.fail(e))?;
        // ON CONFLICT rather than a check first: two replicas creating one
        // name at once both pass a check, and one would then fail on the
        // primary key with a database error instead of a conflict.
        let inserted = sqlx::query(
            "INSERT INTO keys (name, hash, prefix, spec, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (name) DO NOTHING",
        )
        .bind(&new.spec.name)
        .bind(filters::auth::hex(&new.hash))
        .bind(&new.prefix)
        .bind(spec)
        .bind(now)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(|e| self.fail(e))?
        .rows_affected();
        if inserted == 0 {
            return Err(StoreError::Conflict(new.spec.name));
        }
        // A new key under an old name has not been used yet.
        self.forget_use(&mut tx, &new.spec.name).await?;
        self.bump_version(&mut tx).await?;
        tx.commit().await.map_err(|e| self.fail(e))?;
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
            .map_err(|e| self.fail(e))?;
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
            .map_err(|e| self.fail(e))?;
        row.as_ref().map(stored).transpose()
    }

    pub(super) async fn update(&self, name: &str, spec: KeySpec) -> Result<StoredKey, StoreError> {
        let now = unix_now();
        let json = spec_json(&spec)?;
        let mut tx = self.pool.begin().await.map_err(|e| self.fail(e))?;
        let row = sqlx::query(
            "UPDATE keys SET spec = $1, updated_at = $2 WHERE name = $3 \
             RETURNING hash, prefix, created_at",
        )
        .bind(json)
        .bind(now)
        .bind(name)
        .fetch_optional(&mut *tx)
        .await
        .map_err(|e| self.fail(e))?;
        let Some(row) = row else {
            return Err(StoreError::NotFound(name.to_owned()));
        };
        let hash = hash_from(name, &row.try_get::<String, _>("hash").map_err(backend)?)?;
        let prefix = row.try_get("prefix").map_err(backend)?;
        let created_at = row.try_get("created_at").map_err(backend)?;
        self.bump_version(&mut tx).await?;
        tx.commit().await.map_err(|e| self.fail(e))?;
        Ok(StoredKey {
            spec,
            hash,
            prefix,
            created_at,
            updated_at: now,
        })
    }

    pub(super) async fn delete(&self, name: &str) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await.map_err(|e| self.fail(e))?;
        let gone = sqlx::query("DELETE FROM keys WHERE name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await
            .map_err(|e| self.fail(e))?
            .rows_affected();
        if gone == 0 {
            return Ok(false);
        }
        self.forget_use(&mut tx, name).await?;
        self.bump_version(&mut tx).await?;
        tx.commit().await.map_err(|e| self.fail(e))?;
        Ok(true)
    }

    pub(super) async fn version(&self) -> Result<i64, StoreError> {
        sqlx::query_scalar("SELECT keys_version FROM meta WHERE id = 1")
            .fetch_one(&self.pool)
            .await
            .map_err(|e| self.fail(e))
    }

    pub(super) async fn touch(&self, used: Vec<(String, i64)>) -> Result<(), StoreError> {
        // One statement for the batch. Names once each (an upsert may not
        // touch one row twice) and in order, so two replicas touching the
        // same keys lock their rows in the same order and never deadlock.
        let mut latest: BTreeMap<String, i64> = BTreeMap::new();
        for (name, at) in used {
            let slot = latest.entry(name).or_insert(at);
            *slot = (*slot).max(at);
        }
        let (names, ats): (Vec<String>, Vec<i64>) = latest.into_iter().unzip();
        sqlx::query(
            "INSERT INTO key_activity (name, last_used_at) \
             SELECT * FROM UNNEST($1::text[], $2::bigint[]) \
             ON CONFLICT (name) DO UPDATE \
             SET last_used_at = GREATEST(key_activity.last_used_at, EXCLUDED.last_used_at)",
        )
        .bind(names)
        .bind(ats)
        .execute(&self.pool)
        .await
        .map_err(|e| self.fail(e))
        .map(drop)
    }

    pub(super) async fn last_used(&self) -> Result<HashMap<String, i64>, StoreError> {
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT name, last_used_at FROM key_activity")
                .fetch_all(&self.pool)
                .await
                .map_err(|e| self.fail(e))?;
        Ok(rows.into_iter().collect())
    }

    pub(super) async fn insert_usage(&self, rows: Vec<UsageRow>) -> Result<u64, StoreError> {
        let c = UsageColumns::of(rows);
        // One statement: atomic by itself, no transaction needed.
        sqlx::query(INSERT_USAGE)
            .bind(c.ts)
            .bind(c.request_id)
            .bind(c.key_name)
            .bind(c.dialect)
            .bind(c.endpoint)
            .bind(c.model)
            .bind(c.provider)
            .bind(c.upstream_model)
            .bind(c.attempts)
            .bind(c.status)
            .bind(c.stream)
            .bind(c.input_uncached)
            .bind(c.cache_read)
            .bind(c.cache_write)
            .bind(c.output)
            .bind(c.reasoning)
            .bind(c.cost_nanos)
            .bind(c.currency)
            .bind(c.latency_ms)
            .bind(c.ttfb_ms)
            .bind(c.overhead_ms)
            .bind(c.bytes_in)
            .bind(c.bytes_out)
            .bind(c.client_addr)
            .bind(c.user_agent)
            .bind(c.session_id)
            .bind(c.error)
            .bind(c.routed_model)
            .bind(c.routed_by)
            .bind(c.scene)
            .execute(&self.pool)
            .await
            .map(|done| done.rows_affected())
            .map_err(|e| {
                // SQLSTATE classes 22 (data exception) and 23 (integrity):
                // the rows, not the database, are at fault.
                let data = matches!(&e, sqlx::Error::Database(d)
                    if d.code().is_some_and(|c| c.starts_with("22") || c.starts_with("23")));
                match self.fail(e) {
                    StoreError::Backend(m) if data => StoreError::Rejected(m),
                    other => other,
                }
            })
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
            .map_err(|e| self.fail(e))
            .map(drop)
    }

    pub(super) async fn session(&self, hash: &str) -> Result<Option<UiSession>, StoreError> {
        let row = sqlx::query(SESSION)
            .bind(hash)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| self.fail(e))?;
        row.as_ref().map(ui_session).transpose()
    }

    pub(super) async fn touch_session(&self, hash: &str, at: i64) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE ui_sessions SET last_seen_at = GREATEST(last_seen_at, $1) WHERE hash = $2",
        )
        .bind(at)
        .bind(hash)
        .execute(&self.pool)
        .await
        .map_err(|e| self.fail(e))
        .map(drop)
    }

    pub(super) async fn sessions(&self) -> Result<Vec<UiSession>, StoreError> {
        let rows = sqlx::query(SESSIONS)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| self.fail(e))?;
        rows.iter().map(ui_session).collect()
    }

    pub(super) async fn revoke_sessions(&self, which: &SessionMatch) -> Result<u64, StoreError> {
        let q = match which {
            SessionMatch::Hash(h) => {
                sqlx::query("DELETE FROM ui_sessions WHERE hash = $1").bind(h.as_str())
            }
            // The id is checked to be hex digits only (KeyStore).
            SessionMatch::Id(id) => {
                sqlx::query("DELETE FROM ui_sessions WHERE hash LIKE $1").bind(format!("{id}%"))
            }
            SessionMatch::ExpiredAt(now) => {
                sqlx::query("DELETE FROM ui_sessions WHERE expires_at <= $1").bind(*now)
            }
        };
        q.execute(&self.pool)
            .await
            .map(|done| done.rows_affected())
            .map_err(|e| self.fail(e))
    }

    pub(super) async fn setting(&self, name: &str) -> Result<Option<String>, StoreError> {
        sqlx::query_scalar("SELECT value FROM settings WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| self.fail(e))
    }

    pub(super) async fn set_password(&self, phc: &str) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin().await.map_err(|e| self.fail(e))?;
        sqlx::query(
            "INSERT INTO settings (name, value, updated_at) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE \
             SET value = EXCLUDED.value, updated_at = EXCLUDED.updated_at",
        )
        .bind(ADMIN_PASSWORD)
        .bind(phc)
        .bind(unix_now())
        .execute(&mut *tx)
        .await
        .map_err(|e| self.fail(e))?;
        let ended = sqlx::query("DELETE FROM ui_sessions WHERE via = 'password'")
            .execute(&mut *tx)
            .await
            .map_err(|e| self.fail(e))?
            .rows_affected();
        tx.commit().await.map_err(|e| self.fail(e))?;
        Ok(ended)
    }

    #[cfg(test)]
    pub(super) async fn usage_count(&self) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM usage")
            .fetch_one(&self.pool)
            .await
            .map_err(|e| self.fail(e))?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn bump_version(&self, tx: &mut Tx) -> Result<(), StoreError> {
        sqlx::query("UPDATE meta SET keys_version = keys_version + 1 WHERE id = 1")
            .execute(&mut **tx)
            .await
            .map_err(|e| self.fail(e))
            .map(drop)
    }

    async fn forget_use(&self, tx: &mut Tx, name: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM key_activity WHERE name = $1")
            .bind(name)
            .execute(&mut **tx)
            .await
            .map_err(|e| self.fail(e))
            .map(drop)
    }

    /// sqlx's messages carry the server's text, never bound values; the
    /// scrub is for the one message that could hold the URL (a connect).
    pub(super) fn fail(&self, e: sqlx::Error) -> StoreError {
        StoreError::Backend(self.scrub.text(&e.to_string()))
    }
}

type Tx = sqlx::Transaction<'static, sqlx::Postgres>;

/// Usage rows turned into one array per column, for UNNEST.
#[derive(Default)]
struct UsageColumns {
    ts: Vec<i64>,
    request_id: Vec<String>,
    key_name: Vec<Option<String>>,
    dialect: Vec<Option<String>>,
    endpoint: Vec<String>,
    model: Vec<Option<String>>,
    provider: Vec<Option<String>>,
    upstream_model: Vec<Option<String>>,
    attempts: Vec<String>,
    status: Vec<i64>,
    stream: Vec<bool>,
    input_uncached: Vec<i64>,
    cache_read: Vec<i64>,
    cache_write: Vec<i64>,
    output: Vec<i64>,
    reasoning: Vec<i64>,
    cost_nanos: Vec<Option<i64>>,
    currency: Vec<Option<String>>,
    latency_ms: Vec<f64>,
    ttfb_ms: Vec<Option<f64>>,
    overhead_ms: Vec<Option<f64>>,
    bytes_in: Vec<Option<i64>>,
    bytes_out: Vec<Option<i64>>,
    client_addr: Vec<Option<String>>,
    user_agent: Vec<Option<String>>,
    session_id: Vec<Option<String>>,
    error: Vec<Option<String>>,
    routed_model: Vec<Option<String>>,
    routed_by: Vec<Option<String>>,
    scene: Vec<Option<String>>,
}

impl UsageColumns {
    fn of(rows: Vec<UsageRow>) -> Self {
        let mut c = Self::default();
        for row in rows {
            c.ts.push(row.ts);
            c.request_id.push(row.request_id);
            c.key_name.push(row.key_name);
            c.dialect.push(row.dialect);
            c.endpoint.push(row.endpoint);
            c.model.push(row.model);
            c.provider.push(row.provider);
            c.upstream_model.push(row.upstream_model);
            c.attempts.push(row.attempts);
            c.status.push(i64::from(row.status));
            c.stream.push(row.stream);
            c.input_uncached.push(int(row.input_uncached));
            c.cache_read.push(int(row.cache_read));
            c.cache_write.push(int(row.cache_write));
            c.output.push(int(row.output));
            c.reasoning.push(int(row.reasoning));
            c.cost_nanos.push(row.cost_nanos);
            c.currency.push(row.currency);
            c.latency_ms.push(row.latency_ms);
            c.ttfb_ms.push(row.ttfb_ms);
            c.overhead_ms.push(row.overhead_ms);
            c.bytes_in.push(row.bytes_in.map(int));
            c.bytes_out.push(row.bytes_out.map(int));
            c.client_addr.push(row.client_addr);
            c.user_agent.push(row.user_agent);
            c.session_id.push(row.session_id);
            c.error.push(row.error);
            c.routed_model.push(row.routed_model);
            c.routed_by.push(row.routed_by);
            c.scene.push(row.scene);
        }
        c
    }
}

/// Decoding a row read back names no secret: its errors carry column names.
pub(super) fn backend(e: sqlx::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

fn stored(row: &PgRow) -> Result<StoredKey, StoreError> {
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

fn ui_session(row: &PgRow) -> Result<UiSession, StoreError> {
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

/// `[storage] postgres_url` or `postgres_url_env` (the name of a variable
/// holding it) into the URL, checked: exactly one of the two, the scheme,
/// and sqlx's own parse. Messages name the setting and never its value.
pub fn resolve_url(url: Option<&str>, url_env: Option<&str>) -> Result<String, String> {
    let url = match (url, url_env) {
        (Some(u), None) => u.to_owned(),
        (None, Some(var)) => match std::env::var(var) {
            Ok(v) if !v.is_empty() => v,
            _ => {
                return Err(format!(
                    "storage.postgres_url_env: environment variable {var} is not set"
                ))
            }
        },
        (Some(_), Some(_)) => {
            return Err(
                "storage.postgres_url: set postgres_url or postgres_url_env, not both".into(),
            )
        }
        (None, None) => {
            return Err(
                "storage.postgres_url: required with backend = \"postgres\" \
                 (or postgres_url_env naming a variable that holds it)"
                    .into(),
            )
        }
    };
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err("storage.postgres_url: must start with postgres:// or postgresql://".into());
    }
    if let Err(e) = PgConnectOptions::from_str(&url) {
        return Err(format!(
            "storage.postgres_url: {}",
            Scrub::of(&url).text(&e.to_string())
        ));
    }
    Ok(url)
}

/// The URL with its password masked (`postgres://app:***@db/modelswitch`),
/// for messages that must say which database.
pub fn redact_url(url: &str) -> String {
    let Some(scheme) = url.find("://") else {
        // Not a URL: nothing of it is safe to show.
        return "***".to_owned();
    };
    let rest = &url[scheme + 3..];
    let (before_query, query) = match rest.find('?') {
        Some(q) => (&rest[..q], Some(&rest[q + 1..])),
        None => (rest, None),
    };
    let mut out = url[..scheme + 3].to_owned();
    // The last '@' ends the user info: a password written with a raw '@'
    // or '/' is then masked whole rather than shown in part.
    match before_query.rfind('@') {
        Some(at) => {
            let user = before_query[..at].split(':').next().unwrap_or("");
            out.push_str(user);
            if before_query[..at].contains(':') {
                out.push_str(":***");
            }
            out.push_str(&before_query[at..]);
        }
        None => out.push_str(before_query),
    }
    if let Some(query) = query {
        out.push('?');
        let pairs: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                _ => pair.to_owned(),
            })
            .collect();
        out.push_str(&pairs.join("&"));
    }
    out
}

/// Takes a URL's password out of any text, however it is written there.
pub(super) struct Scrub {
    url: String,
    shown: String,
    secrets: Vec<String>,
}

impl Scrub {
    pub(super) fn of(url: &str) -> Self {
        let mut secrets = Vec::new();
        if let Some(scheme) = url.find("://") {
            let rest = &url[scheme + 3..];
            let before_query = rest.split('?').next().unwrap_or("");
            if let Some(at) = before_query.rfind('@') {
                if let Some((_, pass)) = before_query[..at].split_once(':') {
                    secrets.push(pass.to_owned());
                }
            }
            if let Some((_, query)) = rest.split_once('?') {
                for pair in query.split('&') {
                    if let Some((k, v)) = pair.split_once('=') {
                        if k.eq_ignore_ascii_case("password") {
                            secrets.push(v.to_owned());
                        }
                    }
                }
            }
        }
        let decoded: Vec<String> = secrets.iter().map(|s| percent_decode(s)).collect();
        secrets.extend(decoded);
        secrets.retain(|s| !s.is_empty());
        // Longest first: a password that contains another is masked whole.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        secrets.dedup();
        Self {
            url: url.to_owned(),
            shown: redact_url(url),
            secrets,
        }
    }

    pub(super) fn text(&self, text: &str) -> String {
        let mut out = text.replace(&self.url, &self.shown);
        for s in &self.secrets {
            out = out.replace(s.as_str(), "***");
        }
        out
    }
}

/// `%40` to `@` and so on; a malformed escape stays as written.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        match (bytes[i], bytes.get(i + 1), bytes.get(i + 2)) {
            (b'%', Some(&h), Some(&l)) => match (hex(h), hex(l)) {
                (Some(h), Some(l)) => {
                    out.push(u8::try_from(h << 4 | l).unwrap_or(b'?'));
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            (b, _, _) => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
#[path = "postgres_tests.rs"]
mod tests;
