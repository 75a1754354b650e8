//! The config file as the admin API edits it: read with secrets masked,
//! validated, written atomically with comments kept, then reloaded.

use super::AdminPlane;
use crate::config::reload::Reloader;
use crate::record::RequestRecord;
use crate::state::Live;
use filters::error::{ApiError, ErrorKind};
use pingora::proxy::Session;
use std::path::PathBuf;
use std::sync::Arc;

pub struct ConfigWriter {
    pub path: PathBuf,
    pub reloader: Arc<Reloader>,
}

impl ConfigWriter {
    pub fn new(path: PathBuf, reloader: Arc<Reloader>) -> Self {
        Self { path, reloader }
    }
}

/// `/api/config[...]` and `/api/models/{name}/targets`.
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
