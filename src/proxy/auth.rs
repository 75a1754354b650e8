//! Client authentication: the gateway's own keys, never the provider's.

use crate::config::Snapshot;
use filters::auth::ClientKey;
use filters::error::{ApiError, ErrorKind};
use pingora::proxy::Session;
use std::sync::Arc;

/// The client's key from `Authorization: Bearer`, `x-api-key` or a bare
/// `Authorization: sk-…`, looked up in the live config.
pub fn authenticate(snap: &Snapshot, session: &Session) -> Result<Arc<ClientKey>, ApiError> {
    let h = &session.req_header().headers;
    let cred = filters::auth::credential(
        h.get(http::header::AUTHORIZATION).map(|v| v.as_bytes()),
        h.get("x-api-key").map(|v| v.as_bytes()),
    )
    .ok_or_else(|| {
        ApiError::new(
            ErrorKind::Authentication,
            "missing API key: send Authorization: Bearer <key> or x-api-key: <key>",
        )
    })?;
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
