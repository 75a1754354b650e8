//! The classifier's scene per session: a conversation keeps the model its
//! first classified turn chose instead of flipping turn by turn. Bounded
//! and expiring (`filters::routing::ttl_map`); kept across reloads.

use filters::routing::ttl_map::TtlMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Sessions remembered at most.
const MAX_SESSIONS: usize = 100_000;
/// A session's scene is forgotten after this long unused.
const TTL: Duration = Duration::from_secs(3600);

#[derive(Debug)]
pub struct Scenes(Mutex<TtlMap<String, Arc<str>>>);

impl Default for Scenes {
    fn default() -> Self {
        Self(Mutex::new(TtlMap::new(MAX_SESSIONS, TTL)))
    }
}

impl Scenes {
    pub fn get(&self, session: &str) -> Option<Arc<str>> {
        let mut map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        map.get(&session.to_owned(), Instant::now())
    }

    pub fn insert(&self, session: &str, scene: Arc<str>) {
        let mut map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        map.insert(session.to_owned(), scene, Instant::now());
    }
}
