//! Admission to the key's and the model's limits, for every endpoint that
//! reaches a model (generation, embeddings).

use crate::record::RequestRecord;
use crate::state::Live;
use filters::error::ApiError;
use filters::Dialect;

/// The key's and the model's limits: the request is counted in both, or
/// refused with a 429 naming the limit. `tokens` are reserved (the input
/// estimated from the body, plus the most output the request may
/// produce); the real usage replaces them when the request ends.
pub async fn admit(
    live: &Live,
    rec: &mut RequestRecord,
    key: &crate::state::keys::KeyEntry,
    route: &crate::config::Route,
    model: &str,
    dialect: Dialect,
    tokens: u64,
) -> Result<(), ApiError> {
    let model_subject = live.model_subject(route, model);
    if key.limits.is_empty() && model_subject.is_none() {
        return Ok(());
    }
    let mut subjects = Vec::with_capacity(2);
    if !key.limits.is_empty() {
        subjects.push(crate::limits::Subject {
            scope: filters::limits::Scope::Key,
            name: key.subject_name.clone(),
            limits: key.limits,
            counters: key.runtime.counters.clone(),
        });
    }
    subjects.extend(model_subject);
    let settings = &live.config.limits;
    let lease = route.total_timeout + std::time::Duration::from_secs(60);
    let limiter = &live.limiter;
    match limiter
        .admit(subjects, tokens, settings, lease, &rec.id)
        .await
    {
        Ok(hold) => {
            rec.limit_headers =
                filters::dialect::rate_limit_headers(dialect, &hold.headroom, hold.at_ms);
            rec.holds.push(hold);
            Ok(())
        }
        Err(crate::limits::Refused::Limit(r)) => {
            let now = limiter.clock(settings).now_ms;
            let headroom = filters::limits::Headroom::exhausted(&r);
            rec.limit_headers = filters::dialect::rate_limit_headers(dialect, &headroom, now);
            Err(crate::limits::refusal_error(&r))
        }
        Err(crate::limits::Refused::Backend) => Err(crate::limits::backend_error()),
    }
}

/// Whether any limit this request meets counts tokens: the key's, the
/// model's, or a provider's of the route.
pub fn counts_tokens(key: &crate::state::keys::KeyEntry, route: &crate::config::Route) -> bool {
    key.limits.uses_tokens()
        || route.limits.uses_tokens()
        || route
            .targets
            .iter()
            .any(|t| t.provider.limits.uses_tokens())
}
