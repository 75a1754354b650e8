//! Session affinity: a session keeps the chain target (and replica, and
//! upstream key) that last served it, so the provider's prompt cache keeps
//! hitting. Entries are keyed by session and configured route name and
//! name the target by identity (provider name + upstream model), never by
//! position, so a reload that reorders a chain still finds it.
//!
//! The table is local, bounded and expiring (`TtlMap`); with the Redis
//! limits backend each entry is also written to Redis (in the background,
//! never awaited by a request) and a local miss asks Redis within a few
//! milliseconds, so gateways sharing Redis keep a session in one place.
//! Affinity only ever reorders: a sick sticky target is failed over like
//! any other, and what serves instead becomes the session's new place.

use crate::config::{Affinity as Settings, Route, Target};
use crate::state::Live;
use filters::routing::ttl_map::TtlMap;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The longest a request waits for Redis on a local miss: affinity is an
/// optimisation, never worth more than a few milliseconds of latency.
const REMOTE_READ: Duration = Duration::from_millis(5);

/// Redis keys: `ms:aff:{route}:{session}`.
const KEY_PREFIX: &str = "ms:aff";

/// Where a session was last served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sticky {
    pub provider: Arc<str>,
    pub model: Arc<str>,
    /// The replica's address, for a provider with replicas.
    pub replica: Option<SocketAddr>,
    /// The provider's key index, for a provider with keys.
    pub key: Option<usize>,
}

impl Sticky {
    pub fn is(&self, target: &Target) -> bool {
        *target.provider.name == *self.provider && *target.model == *self.model
    }

    /// The sticky target's place in `route`'s chain, if it is still there.
    pub fn position(&self, route: &Route) -> Option<usize> {
        route.targets.iter().position(|t| self.is(t))
    }

    /// The form kept in Redis: a JSON array, so any provider or model name
    /// survives the round trip.
    fn encode(&self) -> String {
        let replica = self.replica.map(|a| a.to_string());
        serde_json::to_string(&(&*self.provider, &*self.model, replica, self.key))
            .unwrap_or_default()
    }

    fn decode(text: &str) -> Option<Self> {
        let (provider, model, replica, key): (String, String, Option<String>, Option<usize>) =
            serde_json::from_str(text).ok()?;
        let replica = match replica {
            Some(r) => Some(r.parse().ok()?),
            None => None,
        };
        Some(Self {
            provider: provider.into(),
            model: model.into(),
            replica,
            key,
        })
    }
}

#[derive(Debug, Clone)]
struct Entry {
    sticky: Sticky,
    /// When this entry was last written to Redis (`None`: never).
    shared_at: Option<Instant>,
}

/// The local affinity table, kept across reloads by the registry.
pub struct Table {
    settings: Settings,
    /// Keyed by a 64-bit keyed hash of (route, session): a lookup costs no
    /// allocation, and a collision (about 1 in 10^9 at the default bound)
    /// would only reorder one session's chain, never misroute it.
    map: Mutex<TtlMap<u64, Entry>>,
    seed: RandomState,
}

impl std::fmt::Debug for Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("affinity::Table")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Table {
    pub fn new(settings: &Settings) -> Self {
        Self {
            settings: settings.clone(),
            map: Mutex::new(TtlMap::new(settings.max_sessions, settings.ttl)),
            seed: RandomState::new(),
        }
    }

    /// Whether a reload with `settings` can keep this table (its bound and
    /// TTL are fixed at creation; `enabled` and `header` do not matter).
    pub fn fits(&self, settings: &Settings) -> bool {
        self.settings.ttl == settings.ttl && self.settings.max_sessions == settings.max_sessions
    }

    fn id(&self, route: &str, session: &str) -> u64 {
        self.seed.hash_one((route, session))
    }

    fn get(&self, id: u64, now: Instant) -> Option<Sticky> {
        super::lock(&self.map).get(&id, now).map(|e| e.sticky)
    }

    /// Keeps `sticky` for `id` for another TTL; `true` when Redis should
    /// hear of it: a new or changed place, or one Redis last heard of an
    /// eighth of the TTL ago (so its copy never expires while in use,
    /// without a write per request).
    fn record(&self, id: u64, sticky: Sticky, now: Instant) -> bool {
        let mut map = super::lock(&self.map);
        let refresh = self.settings.ttl / 8;
        let shared_at = match map.get(&id, now) {
            Some(e) if e.sticky == sticky => e
                .shared_at
                .filter(|at| now.saturating_duration_since(*at) < refresh),
            _ => None,
        };
        let share = shared_at.is_none();
        let shared_at = shared_at.or(Some(now));
        map.insert(id, Entry { sticky, shared_at }, now);
        share
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        super::lock(&self.map).len()
    }
}

/// The request path's clock (tokio's, as the exchange's, so paused-time
/// tests see one clock).
fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

fn redis_key(route: &str, session: &str) -> String {
    format!("{KEY_PREFIX}:{route}:{session}")
}

/// Where `session` was last served on `route`: the local table, else (with
/// the Redis backend) Redis within `REMOTE_READ`. Anything Redis does
/// wrong is no affinity, never an error.
pub async fn lookup(live: &Live, route: &Route, session: &str) -> Option<Sticky> {
    let table = &live.affinity;
    if let Some(s) = table.get(table.id(&route.name, session), now()) {
        return Some(s);
    }
    let redis = live.limiter.shared_redis()?;
    let key = redis_key(&route.name, session);
    match redis.get_string(&key, REMOTE_READ).await {
        Ok(Some(text)) => Sticky::decode(&text),
        Ok(None) => None,
        Err(e) => {
            log::debug!("affinity: no shared entry: {e}");
            None
        }
    }
}

/// `sticky` served `session` on `route`: it is where the session goes next.
pub fn record(live: &Live, route: &Route, session: &str, sticky: Sticky) {
    let table = &live.affinity;
    let id = table.id(&route.name, session);
    let value = live.limiter.is_shared().then(|| sticky.encode());
    let share = table.record(id, sticky, now());
    // Not while Redis rests after a failure: no task for nothing.
    let Some(value) = value.filter(|_| share && live.limiter.shared_redis().is_some()) else {
        return;
    };
    let limiter = live.limiter.clone();
    let key = redis_key(&route.name, session);
    let ttl = table.settings.ttl;
    // Fire and forget: the request never waits for Redis to take it.
    tokio::spawn(async move {
        if let Some(redis) = limiter.shared_redis() {
            if let Err(e) = redis.set_string(&key, &value, ttl).await {
                log::debug!("affinity: not shared: {e}");
            }
        }
    });
}

/// The chain with the sticky target (index `first`) moved to the front;
/// the others keep their order.
pub fn ordered(targets: &[Target], first: Option<usize>) -> impl Iterator<Item = &Target> {
    let front = first.and_then(|i| targets.get(i));
    front.into_iter().chain(
        targets
            .iter()
            .enumerate()
            .filter(move |(i, _)| Some(*i) != first)
            .map(|(_, t)| t),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sticky(provider: &str, key: usize) -> Sticky {
        Sticky {
            provider: provider.into(),
            model: "up".into(),
            replica: Some("127.0.0.1:8001".parse().unwrap()),
            key: Some(key),
        }
    }

    fn settings(max_sessions: usize, ttl_secs: u64) -> Settings {
        Settings {
            max_sessions,
            ttl: Duration::from_secs(ttl_secs),
            ..Settings::default()
        }
    }

    #[test]
    fn entries_expire_after_the_ttl_and_each_use_renews_it() {
        let t = Table::new(&settings(100, 60));
        let t0 = Instant::now();
        let id = t.id("m", "s1");
        assert!(t.record(id, sticky("a", 0), t0), "new: shared");
        assert_eq!(
            t.get(id, t0 + Duration::from_secs(59)),
            Some(sticky("a", 0))
        );
        // Used (served) at 50 s: kept until 110 s.
        t.record(id, sticky("a", 0), t0 + Duration::from_secs(50));
        assert!(t.get(id, t0 + Duration::from_secs(100)).is_some());
        assert_eq!(t.get(id, t0 + Duration::from_secs(110)), None, "expired");
        assert_ne!(t.id("m", "s1"), t.id("n", "s1"), "per route");
    }

    #[test]
    fn the_table_stays_bounded() {
        let t = Table::new(&settings(10, 3600));
        let t0 = Instant::now();
        for i in 0..1000 {
            t.record(t.id("m", &format!("s{i}")), sticky("a", 0), t0);
            assert!(t.len() <= 10, "{}", t.len());
        }
        assert!(t.get(t.id("m", "s999"), t0).is_some(), "the newest stays");
        assert!(t.get(t.id("m", "s0"), t0).is_none(), "the oldest went");
    }

    #[test]
    fn redis_hears_of_changes_and_of_renewals_only_now_and_then() {
        let t = Table::new(&settings(100, 80));
        let t0 = Instant::now();
        let id = t.id("m", "s");
        assert!(t.record(id, sticky("a", 0), t0));
        assert!(!t.record(id, sticky("a", 0), t0 + Duration::from_secs(5)));
        assert!(
            t.record(id, sticky("a", 1), t0 + Duration::from_secs(6)),
            "moved"
        );
        assert!(!t.record(id, sticky("a", 1), t0 + Duration::from_secs(9)));
        assert!(
            t.record(id, sticky("a", 1), t0 + Duration::from_secs(16)),
            "renewed"
        );
    }

    #[test]
    fn the_shared_form_round_trips() {
        let s = sticky("prov|with\"odd:chars", 3);
        assert_eq!(Sticky::decode(&s.encode()), Some(s));
        let keyless = Sticky {
            replica: None,
            key: None,
            ..sticky("local", 0)
        };
        assert_eq!(Sticky::decode(&keyless.encode()), Some(keyless));
        assert_eq!(Sticky::decode("nonsense"), None);
        assert_eq!(Sticky::decode(r#"["a","m","not an address",1]"#), None);
    }

    #[test]
    fn a_sticky_target_goes_first_and_the_rest_keep_their_order() {
        let snap = crate::config::parse(
            r#"
            [[providers]]
            name = "a"
            type = "openai"
            base_url = "http://127.0.0.1:9/v1"

            [[models]]
            name = "m"
            targets = [{ provider = "a", model = "x" }, { provider = "a", model = "y" }, { provider = "a", model = "z" }]

            [[api_keys]]
            key = "sk-client-key"
            name = "c"
            "#,
        )
        .unwrap();
        let route = &snap.routes["m"];
        let names = |first| -> Vec<String> {
            ordered(&route.targets, first)
                .map(|t| t.model.to_string())
                .collect()
        };
        assert_eq!(names(None), ["x", "y", "z"]);
        assert_eq!(names(Some(2)), ["z", "x", "y"]);
        assert_eq!(names(Some(1)), ["y", "x", "z"]);
        let s = Sticky {
            provider: "a".into(),
            model: "z".into(),
            replica: None,
            key: None,
        };
        assert_eq!(s.position(route), Some(2));
        let gone = Sticky {
            model: "w".into(),
            ..s
        };
        assert_eq!(gone.position(route), None);
    }
}
