//! Runtime state beside the config: breakers, key pools and replica pools,
//! kept by identity in a `Registry` so that a reload, which swaps the
//! immutable snapshot, keeps every piece whose identity is unchanged.
//!
//! The request path never looks anything up here: binding a snapshot hands
//! out one `Arc` per provider and per target slot, indexed like the
//! snapshot, and each is behind its own short lock (a breaker per target, a
//! key pool per provider) that two workers meet only when they serve the
//! same target at the same instant. The registry's own lock is taken only
//! when a config is published.

pub mod affinity;
pub mod health;
pub mod keys;
pub mod replicas;
pub mod scenes;

use crate::config::secret::Secret;
use crate::config::{ConfigErrors, Provider, Replicas, Snapshot};
use arc_swap::ArcSwap;
use filters::breaker::Breaker;
use filters::key_pool::KeyPool;
use replicas::ReplicaPool;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// What the request path reads: one snapshot and the state bound to it.
/// Requests in flight keep the `Live` they started with.
pub struct Live {
    pub config: Snapshot,
    /// Every client key (config and store), process-wide.
    pub keys: Arc<keys::Keys>,
    pub limiter: Arc<crate::limits::Limiter>,
    /// The classifier's scene per session, process-wide.
    pub scenes: Arc<scenes::Scenes>,
    providers: Vec<Arc<ProviderState>>,
    targets: Vec<Arc<TargetState>>,
    /// Limiter counters of the models that have limits, by name.
    models: HashMap<String, Counted>,
    /// Where each session was last served; kept across reloads.
    pub affinity: Arc<affinity::Table>,
}

/// Limiter counters, kept by name across reloads.
pub type Counted = Arc<Mutex<filters::limits::Counters>>;

pub type LiveStore = Arc<ArcSwap<Live>>;

impl Live {
    pub fn provider(&self, p: &Provider) -> &ProviderState {
        &self.providers[p.index]
    }

    pub fn breaker(&self, slot: usize) -> MutexGuard<'_, Breaker> {
        lock(&self.targets[slot].breaker)
    }

    /// The limiter subject of a model with limits.
    pub fn model_subject(
        &self,
        route: &crate::config::Route,
        name: &str,
    ) -> Option<crate::limits::Subject> {
        let counters = self.models.get(name)?;
        Some(crate::limits::Subject {
            scope: filters::limits::Scope::Model,
            name: Arc::from(name),
            limits: route.limits,
            counters: counters.clone(),
        })
    }

    /// The limiter subject of a provider with limits.
    pub fn provider_subject(&self, p: &Provider) -> Option<crate::limits::Subject> {
        (!p.limits.is_empty()).then(|| crate::limits::Subject {
            scope: filters::limits::Scope::Provider,
            name: p.name.clone(),
            limits: p.limits,
            counters: self.providers[p.index].counters.clone(),
        })
    }

    /// Each provider with its runtime state, in config order.
    pub fn providers(&self) -> impl Iterator<Item = (&Arc<Provider>, &ProviderState)> {
        self.config
            .providers
            .iter()
            .zip(self.providers.iter().map(Arc::as_ref))
    }
}

/// One provider + upstream model: its circuit breaker.
#[derive(Debug)]
pub struct TargetState {
    breaker: Mutex<Breaker>,
}

/// One provider: its key pool and, with replicas, their pool and health.
pub struct ProviderState {
    key_pool: Arc<Mutex<KeyPool>>,
    pub replicas: Option<Arc<ReplicaPool>>,
    /// Limiter counters for the provider's shared limits.
    counters: Counted,
}

impl ProviderState {
    pub fn key_pool(&self) -> MutexGuard<'_, KeyPool> {
        lock(&self.key_pool)
    }
}

/// A provider's keys as the pool knows them: a changed list (a key added,
/// removed or replaced) starts a fresh pool, which re-enables keys a 401
/// had disabled.
struct KnownProvider {
    keys: Vec<Secret>,
    state: Arc<ProviderState>,
    replicas: Option<(Replicas, bool)>,
}

#[derive(Default)]
struct Known {
    /// By provider name.
    providers: HashMap<Arc<str>, KnownProvider>,
    /// By provider endpoint (`Provider::endpoint`) and upstream model.
    targets: HashMap<(String, Arc<str>), Arc<TargetState>>,
    /// Limiter counters of models with limits, by model name.
    models: HashMap<String, Counted>,
    affinity: Option<Arc<affinity::Table>>,
}

#[derive(Default)]
pub struct Registry {
    known: Mutex<Known>,
    /// Binding a config publishes its keys here.
    pub keys: Arc<keys::Keys>,
    pub limiter: Arc<crate::limits::Limiter>,
    pub scenes: Arc<scenes::Scenes>,
}

impl Registry {
    pub fn with_limiter(limiter: Arc<crate::limits::Limiter>) -> Self {
        Self {
            limiter,
            ..Self::default()
        }
    }

    /// Binds `config` to the state kept for its identities, creating what
    /// is new; state of identities the config no longer has is dropped.
    /// Fails only when a new replica pool cannot be built (a host that
    /// does not resolve), leaving the registry as it was.
    pub fn bind(&self, config: Snapshot) -> Result<Live, ConfigErrors> {
        let mut known = lock(&self.known);
        let mut next = Known::default();
        let mut providers = Vec::with_capacity(config.providers.len());
        let mut errs = Vec::new();
        for p in &config.providers {
            match bind_provider(p, known.providers.get(&p.name)) {
                Ok(k) => {
                    providers.push(k.state.clone());
                    next.providers.insert(p.name.clone(), k);
                }
                Err(e) => errs.push(format!("providers[{}].base_url: {e}", p.index)),
            }
        }
        if !errs.is_empty() {
            return Err(ConfigErrors(errs));
        }
        let mut targets = Vec::with_capacity(config.target_slots.len());
        for (p, model) in &config.target_slots {
            let id = (p.endpoint(), model.clone());
            let state = match known.targets.get(&id) {
                Some(s) => {
                    lock(&s.breaker).reconfigure(p.breaker);
                    s.clone()
                }
                None => Arc::new(TargetState {
                    breaker: Mutex::new(Breaker::new(p.breaker)),
                }),
            };
            targets.push(state.clone());
            next.targets.insert(id, state);
        }
        for (name, route) in &config.routes {
            if !route.limits.is_empty() {
                let c = known.models.get(name).cloned().unwrap_or_default();
                next.models.insert(name.clone(), c);
            }
        }
        // A changed bound or TTL starts an empty table: affinity only
        // orders a chain, so losing it costs a cache miss or two.
        let affinity = known
            .affinity
            .clone()
            .filter(|t| t.fits(&config.routing.affinity))
            .unwrap_or_else(|| Arc::new(affinity::Table::new(&config.routing.affinity)));
        next.affinity = Some(affinity.clone());
        let models = next.models.clone();
        *known = next;
        self.keys.set_config(&config.keys);
        Ok(Live {
            keys: self.keys.clone(),
            limiter: self.limiter.clone(),
            scenes: self.scenes.clone(),
            config,
            providers,
            targets,
            models,
            affinity,
        })
    }
}

/// A provider's state: the old key pool when its keys are unchanged (a
/// request still running on the old snapshot records into the same pool),
/// the old replica pool (and its health) when its replicas are unchanged.
fn bind_provider(p: &Provider, old: Option<&KnownProvider>) -> Result<KnownProvider, String> {
    let replicas_id = p.replicas.clone().map(|r| (r, p.tls));
    let kept_pool = old
        .filter(|k| k.keys == p.keys)
        .map(|k| k.state.key_pool.clone());
    let kept_replicas = old
        .filter(|k| k.replicas == replicas_id)
        .and_then(|k| k.state.replicas.clone());
    let replicas = match (&p.replicas, kept_replicas) {
        (_, Some(kept)) => Some(kept),
        (Some(spec), None) => Some(Arc::new(ReplicaPool::build(
            spec,
            p.tls,
            p.credentials(Some(0)),
        )?)),
        (None, None) => None,
    };
    let key_pool = match kept_pool {
        Some(pool) => {
            lock(&pool).set_default_cooldown(p.key_cooldown);
            pool
        }
        None => Arc::new(Mutex::new(KeyPool::new(p.keys.len(), p.key_cooldown))),
    };
    let counters = old.map(|k| k.state.counters.clone()).unwrap_or_default();
    Ok(KnownProvider {
        keys: p.keys.clone(),
        state: Arc::new(ProviderState {
            key_pool,
            replicas,
            counters,
        }),
        replicas: replicas_id,
    })
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding these locks cannot leave them inconsistent
    // (plain counters and states), so a poisoned lock is still usable.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use filters::breaker::Admission;
    use filters::key_pool::{KeyOutcome, Pick};
    use std::time::{Duration, Instant, SystemTime};

    const BASE: &str = r#"
        [[providers]]
        name = "a"
        type = "openai"
        base_url = "http://127.0.0.1:9/v1"
        api_keys = ["sk-key-number-one", "sk-key-number-two"]
        breaker = { consecutive_failures = 1, cooldown = "60s" }

        [[providers]]
        name = "b"
        type = "anthropic"
        base_url = "http://127.0.0.1:10"

        [[models]]
        name = "m"
        targets = [{ provider = "a", model = "up" }, { provider = "b", model = "up" }]

        [[api_keys]]
        key = "sk-client-key"
        name = "c"
    "#;

    fn bind(r: &Registry, text: &str) -> Live {
        r.bind(crate::config::parse(text).unwrap()).unwrap()
    }

    /// Opens the breaker of `m`'s first target and rests key 0 for "up".
    fn disturb(live: &Live, now: Instant) {
        let t = &live.config.routes["m"].targets[0];
        live.breaker(t.slot).on_failure(now);
        live.provider(&t.provider).key_pool().record(
            0,
            "up",
            now,
            SystemTime::now(),
            KeyOutcome::RateLimited {
                retry_after: Some(Duration::from_secs(60)),
            },
        );
    }

    fn is_open(live: &Live, now: Instant) -> bool {
        let t = &live.config.routes["m"].targets[0];
        matches!(live.breaker(t.slot).admit(now), Admission::Rejected { .. })
    }

    fn key0_resting(live: &Live, now: Instant) -> bool {
        let t = &live.config.routes["m"].targets[0];
        let mut pool = live.provider(&t.provider).key_pool();
        (0..4).all(|_| pool.pick(now, "up") == Pick::Key(1))
    }

    #[test]
    fn an_unrelated_change_keeps_breakers_and_resting_keys() {
        let r = Registry::default();
        let now = Instant::now();
        let live = bind(&r, BASE);
        disturb(&live, now);
        assert!(is_open(&live, now) && key0_resting(&live, now));
        let edited = BASE.replace("name = \"c\"", "name = \"renamed\"");
        let live = bind(&r, &edited);
        assert!(is_open(&live, now), "the breaker survives");
        assert!(key0_resting(&live, now), "the resting key survives");
    }

    #[test]
    fn changed_keys_start_a_fresh_pool_and_repointing_a_fresh_breaker() {
        let r = Registry::default();
        let now = Instant::now();
        let live = bind(&r, BASE);
        disturb(&live, now);
        let new_keys = BASE.replace("sk-key-number-two", "sk-key-number-three");
        let live = bind(&r, &new_keys);
        assert!(is_open(&live, now), "keys do not touch the breaker");
        assert!(!key0_resting(&live, now), "a new key list is a new pool");
        disturb(&live, now);
        let moved = new_keys.replace("127.0.0.1:9/v1", "127.0.0.1:11/v1");
        let live = bind(&r, &moved);
        assert!(!is_open(&live, now), "a repointed provider starts closed");
        assert!(key0_resting(&live, now), "same keys keep their pool");
    }

    #[test]
    fn the_affinity_table_survives_reloads_unless_its_bound_or_ttl_change() {
        let r = Registry::default();
        let first = bind(&r, BASE);
        let edited = bind(&r, &BASE.replace("name = \"c\"", "name = \"renamed\""));
        assert!(Arc::ptr_eq(&first.affinity, &edited.affinity));
        let header = format!("{BASE}\n[routing.affinity]\nheader = \"x-team-session\"\n");
        assert!(Arc::ptr_eq(&first.affinity, &bind(&r, &header).affinity));
        let shorter = format!("{BASE}\n[routing.affinity]\nttl = \"10m\"\n");
        assert!(!Arc::ptr_eq(&first.affinity, &bind(&r, &shorter).affinity));
    }

    #[test]
    fn removed_targets_are_forgotten() {
        let r = Registry::default();
        let now = Instant::now();
        let live = bind(&r, BASE);
        disturb(&live, now);
        let without = BASE.replace("{ provider = \"a\", model = \"up\" }, ", "");
        let _ = bind(&r, &without);
        let live = bind(&r, BASE);
        assert!(!is_open(&live, now), "state of a removed target is gone");
    }

    #[test]
    fn routes_sharing_a_target_share_its_breaker() {
        let r = Registry::default();
        let now = Instant::now();
        let text = BASE.replace(
            "[[api_keys]]",
            "[[models]]\nname = \"n\"\ntargets = [{ provider = \"a\", model = \"up\" }]\n\n[[api_keys]]",
        );
        let live = bind(&r, &text);
        disturb(&live, now);
        let n = &live.config.routes["n"].targets[0];
        assert!(matches!(
            live.breaker(n.slot).admit(now),
            Admission::Rejected { .. }
        ));
    }
}
