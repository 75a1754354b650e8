//! UI sessions: login with an admin or viewer key or the admin password,
//! a server-side session in an HttpOnly cookie, CSRF on every change.

use super::auth::Caller;
use super::AdminPlane;
use crate::record::RequestRecord;
use crate::state::Live;
use filters::error::{ApiError, ErrorKind};
use pingora::proxy::Session;
use std::sync::Arc;

/// Sessions and the failed-login limiter.
#[derive(Default)]
pub struct Sessions {}

impl Sessions {
    /// The caller a session cookie names, or `None` without a cookie.
    pub async fn resolve(
        &self,
        _store: Option<&crate::store::KeyStore>,
        _live: &Live,
        _session: &Session,
    ) -> Option<Result<Caller, ApiError>> {
        None
    }
}

/// `/api/login`, `/api/logout`, `/api/session`, `/api/sessions[/{id}]`.
pub async fn handle(
    _plane: &AdminPlane,
    session: &mut Session,
    _rec: &mut RequestRecord,
    _live: &Arc<Live>,
) -> Result<(), ApiError> {
    Err(ApiError::new(
        ErrorKind::NotFound,
        format!("no route for {}", session.req_header().uri.path()),
    ))
}
