//! `GET /api/config/health` (admin or viewer): the config file, when the
//! running config was loaded and how the last reload went, and each
//! provider's health — replicas healthy of total, each target's breaker.
//! `GET /v1/health` (open) counts the same per-provider verdicts.

use super::auth::{caller, require_viewer};
use super::AdminPlane;
use crate::config::reload::LoadStatus;
use crate::config::{Issue, Provider};
use crate::record::RequestRecord;
use crate::state::Live;
use filters::breaker::BreakerState;
use filters::error::ApiError;
use pingora::proxy::Session;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// A provider as health reports see it.
#[derive(Debug, Clone, PartialEq)]
pub struct ProviderHealth {
    /// (healthy, total) replicas, for a provider with several base URLs
    /// or an active health check; `None` for a single unchecked URL.
    pub replicas: Option<(usize, usize)>,
    /// Each target of this provider: its upstream model and breaker.
    pub breakers: Vec<(Arc<str>, BreakerState)>,
}

impl ProviderHealth {
    pub fn of(live: &Live, p: &Provider) -> Self {
        let replicas = live.provider(p).replicas.as_ref().map(|pool| {
            let report = pool.report();
            let healthy = report.iter().filter(|r| r.2).count();
            (healthy, report.len())
        });
        let breakers = live
            .config
            .target_slots
            .iter()
            .enumerate()
            .filter(|(_, (tp, _))| tp.name == p.name)
            .map(|(slot, (_, model))| (model.clone(), live.breaker(slot).state()))
            .collect();
        Self { replicas, breakers }
    }

    /// Healthy: some replica is up (when they are checked) and no breaker
    /// of its targets is open. A half-open breaker is on its way back and
    /// counts as healthy; an open one means requests skip that target.
    pub fn healthy(&self) -> bool {
        let replica_up = self.replicas.is_none_or(|(up, _)| up > 0);
        let none_open = !self
            .breakers
            .iter()
            .any(|(_, b)| matches!(b, BreakerState::Open { .. }));
        replica_up && none_open
    }
}

/// (healthy, total) providers: what `/v1/health` may tell anyone.
pub fn provider_counts(live: &Live) -> (usize, usize) {
    live.providers().fold((0, 0), |(up, total), (p, _)| {
        let ok = ProviderHealth::of(live, p).healthy();
        (up + usize::from(ok), total + 1)
    })
}

pub async fn handle(
    plane: &AdminPlane,
    session: &mut Session,
    rec: &mut RequestRecord,
    live: &Arc<Live>,
) -> Result<(), ApiError> {
    let who = caller(plane, live, session, rec).await?;
    let method = session.req_header().method.clone();
    if method != http::Method::GET && method != http::Method::HEAD {
        let path = session.req_header().uri.path().to_owned();
        return Err(super::not_allowed(&method, &path));
    }
    require_viewer(&who)?;
    let reloader = &plane.config.reloader;
    let mut v = load_view(&reloader.path().display().to_string(), &reloader.status());
    let providers: Vec<Value> = live
        .providers()
        .map(|(p, _)| provider_view(&p.name, &ProviderHealth::of(live, p)))
        .collect();
    let (up, total) = provider_counts(live);
    v["status"] = json!(if up == total { "ok" } else { "degraded" });
    v["providers"] = json!(providers);
    super::send_json(session, rec, 200, &v).await
}

fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// The file and its loads: `last_reload` is null before the first
/// reload; a failed one carries the error text and its issues (TOML path,
/// message), the running config being the one loaded at `loaded_at`.
fn load_view(path: &str, status: &LoadStatus) -> Value {
    let last = status.last_reload.as_ref().map(|r| {
        let (error, issues) = match &r.errors {
            None => (Value::Null, Value::Null),
            Some(errs) => (
                json!(errs.join("\n")),
                json!(errs.iter().map(|e| Issue::of(e)).collect::<Vec<_>>()),
            ),
        };
        json!({"at": unix_secs(r.at), "trigger": r.trigger, "ok": r.errors.is_none(),
               "error": error, "issues": issues})
    });
    json!({
        "path": path,
        "loaded_at": unix_secs(status.loaded_at),
        "last_reload": last,
    })
}

fn provider_view(name: &str, h: &ProviderHealth) -> Value {
    let targets: Vec<Value> = h
        .breakers
        .iter()
        .map(|(model, b)| json!({"model": &**model, "breaker": b.name()}))
        .collect();
    json!({
        "name": name,
        "healthy": h.healthy(),
        "replicas": h.replicas.map(|(up, total)| json!({"healthy": up, "total": total})),
        "targets": targets,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::reload::ReloadResult;
    use std::time::{Duration, Instant};

    fn health(replicas: Option<(usize, usize)>, breakers: &[BreakerState]) -> ProviderHealth {
        ProviderHealth {
            replicas,
            breakers: breakers.iter().map(|b| (Arc::from("m"), *b)).collect(),
        }
    }

    #[test]
    fn a_provider_is_unhealthy_with_no_replica_up_or_an_open_breaker() {
        let open = BreakerState::Open {
            until: Instant::now() + Duration::from_secs(5),
        };
        assert!(health(None, &[]).healthy());
        assert!(health(Some((1, 2)), &[BreakerState::Closed]).healthy());
        assert!(!health(Some((0, 2)), &[BreakerState::Closed]).healthy());
        assert!(!health(None, &[BreakerState::Closed, open]).healthy());
    }

    #[test]
    fn a_failed_reload_shows_its_errors_by_toml_path() {
        let at = UNIX_EPOCH + Duration::from_secs(1_000);
        let status = LoadStatus {
            loaded_at: at,
            last_reload: Some(ReloadResult {
                at: at + Duration::from_secs(5),
                trigger: "file changed".into(),
                errors: Some(vec!["providers[0].type: unknown variant".into()]),
            }),
        };
        let v = load_view("/etc/gw.toml", &status);
        assert_eq!(v["loaded_at"], 1_000);
        assert_eq!(v["last_reload"]["ok"], false);
        assert_eq!(v["last_reload"]["at"], 1_005);
        assert_eq!(
            v["last_reload"]["error"],
            "providers[0].type: unknown variant"
        );
        assert_eq!(v["last_reload"]["issues"][0]["path"], "providers[0].type");
        let fresh = LoadStatus {
            loaded_at: at,
            last_reload: None,
        };
        assert_eq!(load_view("/x", &fresh)["last_reload"], Value::Null);
    }
}
