//! Client authentication: the gateway's own keys, never the provider's.

use crate::config::Snapshot;
use filters::auth::ClientKey;
use filters::error::{ApiError, ErrorKind};
use pingora::proxy::Session;
use std::sync::Arc;

/// The client's key from `Authorization: Bearer`, `x-api-key`,
/// `x-goog-api-key` (Gemini SDKs), a bare `Authorization: sk-…`, or the
/// `?key=` query parameter Gemini REST clients use, looked up in the live
/// config. The query is never forwarded (upstream paths are built from
/// config) and never logged (the access log writes the path alone).
pub fn authenticate(snap: &Snapshot, session: &Session) -> Result<Arc<ClientKey>, ApiError> {
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
            query.as_deref().filter(|k| !k.is_empty()).ok_or_else(|| {
                ApiError::new(
                    ErrorKind::Authentication,
                    "missing API key: send Authorization: Bearer <key>, x-api-key: <key> \
                     or x-goog-api-key: <key>",
                )
            })?
        }
    };
    snap.keys
        .get(cred)
        .cloned()
        .ok_or_else(|| ApiError::new(ErrorKind::Authentication, "invalid API key"))
}

pub fn require_role(key: &ClientKey, role: &str) -> Result<(), ApiError> {
    if key.has_role(role) {
        Ok(())
    } else {
        Err(ApiError::new(
            ErrorKind::PermissionDenied,
            format!("the {role} role is required"),
        ))
    }
}
