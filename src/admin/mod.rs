//! The admin plane: the web UI (`/ui/`), its sessions, and the admin API
//! (`/api/...`): keys, usage, logs, config, providers, models, stats.
//! Everything here reads the same snapshot and registry as the request
//! path and changes config only by writing the TOML file and reloading it.

pub mod assets;
pub mod auth;
pub mod config_edit;
pub mod config_health;
pub mod config_mask;
pub mod config_models;
pub mod config_targets;
pub mod discovery;
pub mod keys;
pub mod logs;
pub mod overview;
pub mod password;
pub mod probe;
pub mod session;
pub mod usage;

use crate::record::RequestRecord;
use crate::state::{Live, LiveStore};
use crate::store::KeyStore;
use crate::upstream::UpstreamClient;
use filters::error::{ApiError, ErrorKind};
use pingora::proxy::Session;
use std::sync::Arc;
use std::time::Instant;

/// What the admin handlers share, for the life of the process.
pub struct AdminPlane {
    pub started: Instant,
    pub live: LiveStore,
    pub store: Option<KeyStore>,
    pub upstream: Arc<UpstreamClient>,
    pub drain: Arc<crate::shutdown::Drain>,
    pub sessions: session::Sessions,
    pub config: config_edit::ConfigWriter,
    pub cost: overview::CostToday,
}

/// `/api/...` paths the proxy's own admin handlers do not take.
pub async fn api(
    plane: &AdminPlane,
    session: &mut Session,
    rec: &mut RequestRecord,
    live: &Arc<Live>,
) -> Result<(), ApiError> {
    let path = session.req_header().uri.path().to_owned();
    let rest = path.strip_prefix("/api/").unwrap_or_default();
    let first = rest.split('/').next().unwrap_or_default();
    match first {
        "login" | "logout" | "session" | "sessions" => {
            session::handle(plane, session, rec, live).await
        }
        "config" if rest.trim_end_matches('/') == "config/health" => {
            config_health::handle(plane, session, rec, live).await
        }
        "config" => config_edit::handle(plane, session, rec, live).await,
        "models" if rest.ends_with("/targets") => {
            config_edit::handle(plane, session, rec, live).await
        }
        // `/api/providers/{name}/models` (a provider may be named `models`).
        "providers" if is_provider_models(rest) => {
            discovery::handle(plane, session, rec, live).await
        }
        "models" | "providers" | "stats" | "overview" => {
            overview::handle(plane, session, rec, live).await
        }
        _ => Err(no_route(&path)),
    }
}

fn is_provider_models(rest: &str) -> bool {
    let parts: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    matches!(parts.as_slice(), ["providers", _, "models"])
}

/// The path after `/api/`, percent-decoded segment by segment (a model
/// or key name may hold any character).
pub fn segments(path: &str) -> Result<Vec<String>, ApiError> {
    path.trim_start_matches("/api/")
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| {
            filters::wire::http::percent_decode(s)
                .ok_or_else(|| ApiError::invalid(format!("{path}: not a valid path")))
        })
        .collect()
}

/// A JSON answer of the admin API (no body for HEAD).
pub async fn send_json(
    session: &mut Session,
    rec: &mut RequestRecord,
    status: u16,
    v: &serde_json::Value,
) -> Result<(), ApiError> {
    let head = session.req_header().method == http::Method::HEAD;
    let body = bytes::Bytes::from(v.to_string());
    crate::downstream::respond(session, rec, status, "application/json", body, &[], head).await;
    Ok(())
}

/// 404 for an admin path no handler knows.
pub fn no_route(path: &str) -> ApiError {
    ApiError::new(ErrorKind::NotFound, format!("no route for {path}"))
}

/// 405 for a known admin path and the wrong method.
pub fn not_allowed(method: &http::Method, path: &str) -> ApiError {
    ApiError::invalid(format!("method {method} is not allowed on {path}")).with_status(405)
}
