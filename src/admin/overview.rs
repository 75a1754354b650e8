//! What the UI shows of the running gateway: providers, models, live stats.

use super::AdminPlane;
use crate::record::RequestRecord;
use crate::state::Live;
use filters::error::{ApiError, ErrorKind};
use pingora::proxy::Session;
use std::sync::Arc;

/// `/api/providers[...]`, `/api/models[...]`, `/api/stats`, `/api/overview`.
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
