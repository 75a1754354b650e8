//! The admin API's log side: `GET /api/logs` (recent gateway log lines;
//! admin or viewer) and `GET /api/conversations[/{request_id}]` (the
//! conversation log; admins and viewers see every key's, any other key
//! only its own). The files are read on the blocking pool.

use crate::admin::auth::require_viewer;
use crate::journal::read::{self, ListQuery, SCAN_BYTES};
use crate::journal::ring::LogQuery;
use crate::journal::{files, Journal};
use crate::record::RequestRecord;
use crate::state::Live;
use filters::error::{ApiError, ErrorKind};
use filters::wire::http::{percent_decode, query_param};
use pingora::proxy::Session;
use serde_json::{json, Value};

const DEFAULT_LOG_LINES: usize = 200;
const DEFAULT_CONVERSATIONS: usize = 50;
const MAX_CONVERSATIONS: usize = 1000;

/// `GET /api/logs?level=&request_id=&key=&since=&limit=`, newest first.
pub async fn logs(
    plane: &crate::admin::AdminPlane,
    session: &mut Session,
    rec: &mut RequestRecord,
    live: &Live,
    journal: &Journal,
) -> Result<(), ApiError> {
    let caller = crate::admin::auth::caller(plane, live, session, rec).await?;
    require_viewer(&caller)?;
    let query = session
        .req_header()
        .uri
        .query()
        .unwrap_or_default()
        .to_owned();
    let level = match param(&query, "level") {
        None => None,
        Some(l) => Some(l.parse::<log::Level>().map_err(|_| {
            ApiError::invalid("level: one of error, warn, info, debug or trace").with_param("level")
        })?),
    };
    let q = LogQuery {
        level,
        request_id: param(&query, "request_id"),
        key: param(&query, "key"),
        since_ms: time(&query, "since")?,
        limit: limit(&query, DEFAULT_LOG_LINES, journal.ring.capacity())?,
    };
    let lines = journal.ring.query(&q);
    super::send_json(
        session,
        rec,
        200,
        &json!({ "lines": lines, "capacity": journal.ring.capacity() }),
    )
    .await
}

/// `GET /api/conversations?key=&from=&to=&limit=` and
/// `GET /api/conversations/{request_id}`.
pub async fn conversations(
    plane: &crate::admin::AdminPlane,
    session: &mut Session,
    rec: &mut RequestRecord,
    live: &Live,
    journal: &Journal,
) -> Result<(), ApiError> {
    let caller = crate::admin::auth::caller(plane, live, session, rec).await?;
    let sees_all = caller.can_view();
    let path = session.req_header().uri.path().to_owned();
    let query = session
        .req_header()
        .uri
        .query()
        .unwrap_or_default()
        .to_owned();
    let dir = journal.conversations.dir().to_owned();
    if let Some(raw) = path.strip_prefix("/api/conversations/") {
        let id = percent_decode(raw)
            .filter(|id| read::valid_id(id))
            .ok_or_else(|| not_found(raw))?;
        let wanted = id.clone();
        let found = blocking(move || read::find(&dir, &wanted, SCAN_BYTES)).await?;
        let v = found.ok_or_else(|| not_found(&id))?;
        let owner = v.get("key").and_then(Value::as_str);
        // Another key's conversation is "not found", as an unknown id is:
        // a user key learns nothing about other keys' request ids.
        if !sees_all && owner != Some(caller.name.as_str()) {
            return Err(not_found(&id));
        }
        return super::send_json(session, rec, 200, &v).await;
    }
    let key = match param(&query, "key") {
        Some(k) if !sees_all && k != caller.name => {
            return Err(ApiError::new(
                ErrorKind::PermissionDenied,
                "this key may read only its own conversations",
            )
            .with_param("key"))
        }
        Some(k) => Some(k),
        None if sees_all => None,
        None => Some(caller.name.clone()),
    };
    let q = ListQuery {
        key,
        from_ms: time(&query, "from")?,
        to_ms: time(&query, "to")?,
        limit: limit(&query, DEFAULT_CONVERSATIONS, MAX_CONVERSATIONS)?,
    };
    let listing = blocking(move || read::list(&dir, &q, SCAN_BYTES)).await?;
    super::send_json(
        session,
        rec,
        200,
        &json!({
            "conversations": listing.items,
            // The scan stopped at its byte bound: older ones may exist.
            "partial": listing.partial,
            "dropped_since_start": journal.conversations.dropped(),
        }),
    )
    .await
}

fn not_found(id: &str) -> ApiError {
    ApiError::new(
        ErrorKind::NotFound,
        format!("no logged conversation for request '{id}'"),
    )
}

/// A file scan on the blocking pool; IO errors are logged, not shown.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> Result<T, ApiError> {
    let failed = |e: &dyn std::fmt::Display| {
        log::warn!("conversation log: cannot read: {e}");
        ApiError::new(
            ErrorKind::Api,
            "the conversation log cannot be read; see the gateway's log",
        )
    };
    match tokio::task::spawn_blocking(f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(failed(&e)),
        Err(e) => Err(failed(&e)),
    }
}

fn param(query: &str, name: &str) -> Option<String> {
    query_param(query, name).filter(|v| !v.is_empty())
}

fn time(query: &str, name: &str) -> Result<Option<i64>, ApiError> {
    param(query, name)
        .map(|t| {
            files::parse_time(&t).ok_or_else(|| {
                ApiError::invalid(format!(
                    "{name}: an RFC 3339 time (2026-01-02T03:04:05Z) or Unix seconds"
                ))
                .with_param(name)
            })
        })
        .transpose()
}

fn limit(query: &str, default: usize, max: usize) -> Result<usize, ApiError> {
    match param(query, "limit") {
        None => Ok(default.min(max)),
        Some(l) => match l.parse::<usize>() {
            Ok(n) if (1..=max).contains(&n) => Ok(n),
            _ => Err(ApiError::invalid(format!("limit: 1 to {max}")).with_param("limit")),
        },
    }
}
