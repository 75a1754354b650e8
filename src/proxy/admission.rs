//! Admission to the key's and the model's limits and budgets, for every
//! endpoint that reaches a model (generation, embeddings), and what the
//! request reserves against its providers' limits and budgets.

use crate::config::{Route, Target};
use crate::limits::Reserve;
use crate::record::RequestRecord;
use crate::state::keys::KeyEntry;
use crate::state::Live;
use filters::error::ApiError;
use filters::limits::budget::NoRate;
use filters::limits::{Amounts, Scope};
use filters::pricing::Nanos;
use filters::Dialect;

/// How large a request may be: its estimated input tokens and the most
/// output it may produce.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Size {
    pub input: u64,
    pub output: u64,
}

/// The key's and the model's limits and budgets: the request is counted
/// in both, or refused with a 429 naming the limit. Tokens are reserved
/// (the input estimated from the body, plus the most output the request
/// may produce), and for a budget the most the request may cost at the
/// dearest target the key may use; the real usage and cost replace them
/// when the request ends. Returns what the providers' limits reserve.
pub async fn admit(
    live: &Live,
    rec: &mut RequestRecord,
    key: &KeyEntry,
    route: &Route,
    model: &str,
    dialect: Dialect,
    size: Size,
) -> Result<Reserve, ApiError> {
    let reserve = reserve(live, key, route, model, size)?;
    let model_subject = live.model_subject(route, model);
    if key.limits.is_empty() && model_subject.is_none() {
        return Ok(reserve);
    }
    let mut subjects = Vec::with_capacity(2);
    if !key.limits.is_empty() {
        subjects.push(crate::limits::Subject {
            scope: Scope::Key,
            name: key.subject_name.clone(),
            limits: key.limits,
            counters: key.runtime.counters.clone(),
        });
    }
    subjects.extend(model_subject);
    let settings = &live.config.limits;
    let lease = route.total_timeout + std::time::Duration::from_secs(60);
    let limiter = &live.limiter;
    let amounts = Amounts {
        tokens: reserve.tokens,
        spend: reserve.spend,
    };
    match limiter
        .admit(subjects, amounts, settings, lease, &rec.id)
        .await
    {
        Ok(hold) => {
            rec.limit_headers =
                filters::dialect::rate_limit_headers(dialect, &hold.headroom, hold.at_ms);
            rec.holds.push(hold);
            Ok(reserve)
        }
        Err(crate::limits::Refused::Limit(r)) => {
            let now = limiter.clock(settings).now_ms;
            let headroom = filters::limits::Headroom::exhausted(&r);
            rec.limit_headers = filters::dialect::rate_limit_headers(dialect, &headroom, now);
            rec.result.refused = Some((r.scope, r.dimension));
            Err(crate::limits::refusal_error(&r))
        }
        Err(crate::limits::Refused::Backend) => Err(crate::limits::backend_error()),
    }
}

/// Whether any limit this request meets counts tokens: the key's, the
/// model's, or a provider's of the route.
pub fn counts_tokens(key: &KeyEntry, route: &Route) -> bool {
    key.limits.uses_tokens()
        || route.limits.uses_tokens()
        || route
            .targets
            .iter()
            .any(|t| t.provider.limits.uses_tokens())
}

/// Whether the request's size is needed: a limit counts tokens, or a
/// budget counts money (which the size bounds). Only then is the body
/// scanned for its estimate.
pub fn needs_size(key: &KeyEntry, route: &Route) -> bool {
    counts_tokens(key, route)
        || key.limits.has_budget()
        || route.limits.has_budget()
        || route.targets.iter().any(|t| t.provider.limits.has_budget())
}

/// What the request reserves. Its worst-case cost is worked out only for
/// a subject with a budget, over the targets the key may use; a target
/// priced in a currency without a rate into the budget currency refuses
/// the request (a budget is never silently left uncounted).
fn reserve(
    live: &Live,
    key: &KeyEntry,
    route: &Route,
    model: &str,
    size: Size,
) -> Result<Reserve, ApiError> {
    let tokens = if counts_tokens(key, route) {
        filters::limits::reservation(size.input, size.output)
    } else {
        0
    };
    let mut reserve = Reserve {
        tokens,
        ..Reserve::default()
    };
    let usable = || {
        route
            .targets
            .iter()
            .filter(|t| key.allows_provider(&t.provider.name))
    };
    let shared = if key.limits.has_budget() {
        Some((Scope::Key, key.name.as_str()))
    } else if route.limits.has_budget() {
        Some((Scope::Model, model))
    } else {
        None
    };
    if let Some((scope, name)) = shared {
        for t in usable() {
            let n = worst_case(live, t, size)
                .map_err(|e| crate::limits::no_rate_error(scope, name, &t.model, e))?;
            reserve.spend = reserve.spend.max(n);
        }
    }
    for t in usable().filter(|t| t.provider.limits.has_budget()) {
        let n = worst_case(live, t, size).map_err(|e| {
            crate::limits::no_rate_error(Scope::Provider, &t.provider.name, &t.model, e)
        })?;
        reserve.provider_spend.push((t.slot, n));
    }
    Ok(reserve)
}

/// The most a request of `size` may cost at `target`'s price, in the
/// budget currency (rounded up); an unpriced model costs nothing.
fn worst_case(live: &Live, target: &Target, size: Size) -> Result<Nanos, NoRate> {
    let Some(price) = live.config.prices.lookup(&target.model) else {
        return Ok(0);
    };
    let n = filters::pricing::worst_case(price, size.input, size.output);
    live.config.limits.budgets.up(n, price.currency)
}
