//! Client authentication: the gateway's own keys, never the provider's.

use crate::config::Snapshot;
use crate::state::keys::{KeyEntry, Keys};
use crate::state::Live;
use filters::auth::{ClientKey, Role, Unusable};
use filters::error::{ApiError, ErrorKind};
use pingora::proxy::Session;
use std::sync::Arc;

/// The client's key from `Authorization: Bearer`, `x-api-key`,
/// `x-goog-api-key` (Gemini SDKs), a bare `Authorization: sk-…`, or the
/// `?key=` query parameter Gemini REST clients use, looked up in the live
/// config. The query is never forwarded (upstream paths are built from
/// config) and never logged (the access log writes the path alone).
///
/// Without any credential, a request from the loopback interface acts as
/// `[auth] localhost_key` when one is configured.
pub fn authenticate(live: &Live, session: &Session) -> Result<Arc<KeyEntry>, ApiError> {
    identify(live, session, true)
}

/// For the admin API: never the localhost key (any local process, or a
/// proxy on the same host, would be an admin).
pub fn authenticate_admin(live: &Live, session: &Session) -> Result<Arc<KeyEntry>, ApiError> {
    identify(live, session, false)
}

/// For the endpoints that call models: a `viewer`-only key reads the admin
/// API and nothing else.
pub fn authenticate_caller(live: &Live, session: &Session) -> Result<Arc<KeyEntry>, ApiError> {
    let key = authenticate(live, session)?;
    if key.has_role(Role::User) || key.has_role(Role::Admin) {
        Ok(key)
    } else {
        Err(ApiError::new(
            ErrorKind::PermissionDenied,
            "this key has only the viewer role: it may read the admin API, not call models",
        ))
    }
}

fn identify(
    live: &Live,
    session: &Session,
    localhost_allowed: bool,
) -> Result<Arc<KeyEntry>, ApiError> {
    let (keys, snap) = (&*live.keys, &live.config);
    let req = session.req_header();
    let h = &req.headers;
    let header = filters::auth::credential(
        h.get(http::header::AUTHORIZATION).map(|v| v.as_bytes()),
        h.get("x-api-key")
            .or_else(|| h.get("x-goog-api-key"))
            .map(|v| v.as_bytes()),
    );
    let query;
    let cred = match header {
        Some(c) => c,
        None => {
            // Only Gemini's API takes a key in the URL; elsewhere a URL is
            // too easily logged by whatever sits in front of the gateway.
            let path = req.uri.path();
            let gemini = filters::ingress::dialect_hint(path, false) == filters::Dialect::Gemini
                || filters::ingress::gemini_call(path).is_some();
            query = req
                .uri
                .query()
                .filter(|_| gemini)
                .and_then(|q| filters::wire::http::query_param(q, "key"));
            match query.as_deref().filter(|k| !k.is_empty()) {
                Some(k) => k,
                None if localhost_allowed => return localhost(keys, snap, session),
                None => return Err(missing()),
            }
        }
    };
    let entry = keys
        .find(cred)
        .ok_or_else(|| ApiError::new(ErrorKind::Authentication, "invalid API key"))?;
    usable(entry)
}

/// A keyless request: the localhost key for loopback clients, if set.
/// Both ends of the connection must be loopback addresses (an IPv4 client
/// of a dual-stack listener arrives as `::ffff:127.0.0.1`).
fn localhost(keys: &Keys, snap: &Snapshot, session: &Session) -> Result<Arc<KeyEntry>, ApiError> {
    let loopback = |a: Option<&pingora::protocols::l4::socket::SocketAddr>| {
        a.and_then(|a| a.as_inet())
            .is_some_and(|a| a.ip().to_canonical().is_loopback())
    };
    let local = loopback(session.client_addr()) && loopback(session.server_addr());
    let entry = snap
        .localhost_key
        .as_deref()
        .filter(|_| local)
        .and_then(|name| keys.by_name(name));
    match entry {
        Some(e) => usable(e),
        None => Err(missing()),
    }
}

fn missing() -> ApiError {
    ApiError::new(
        ErrorKind::Authentication,
        "missing API key: send Authorization: Bearer <key>, x-api-key: <key> \
         or x-goog-api-key: <key>",
    )
}

/// A known key, unless it is switched off or past its expiry.
fn usable(entry: Arc<KeyEntry>) -> Result<Arc<KeyEntry>, ApiError> {
    let now = unix_now();
    match entry.key.usable(now) {
        Ok(()) => {
            entry.runtime.touch(now);
            Ok(entry)
        }
        Err(Unusable::Disabled) => Err(ApiError::new(
            ErrorKind::Authentication,
            "this API key is disabled",
        )),
        Err(Unusable::Expired) => Err(ApiError::new(
            ErrorKind::Authentication,
            "this API key has expired",
        )),
    }
}

pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

pub fn require_role(key: &ClientKey, role: Role) -> Result<(), ApiError> {
    if key.has_role(role) {
        Ok(())
    } else {
        Err(ApiError::new(
            ErrorKind::PermissionDenied,
            format!("the {} role is required", role.name()),
        ))
    }
}

/// The admin API's read side: admins and viewers.
pub fn require_viewer(key: &ClientKey) -> Result<(), ApiError> {
    if key.can_view() {
        Ok(())
    } else {
        Err(ApiError::new(
            ErrorKind::PermissionDenied,
            "the admin or viewer role is required",
        ))
    }
}
