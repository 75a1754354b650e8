//! A bounded map whose entries expire: the classifier's scene per session
//! and the affinity table. Two generations: inserts go to the young one;
//! when it is full it becomes the old one and the old one is dropped, so
//! memory stays under `2 × half` entries and every operation is O(1). A
//! hit in the old generation moves to the young one, so what is used
//! stays (an LRU, approximately).

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct TtlMap<K, V> {
    young: HashMap<K, (V, Instant)>,
    old: HashMap<K, (V, Instant)>,
    half: usize,
    ttl: Duration,
}

impl<K: Eq + Hash + Clone, V: Clone> TtlMap<K, V> {
    /// At most `max_entries` (at least 2), each kept `ttl` from its last write.
    pub fn new(max_entries: usize, ttl: Duration) -> Self {
        Self {
            young: HashMap::new(),
            old: HashMap::new(),
            half: (max_entries / 2).max(1),
            ttl,
        }
    }

    pub fn get(&mut self, key: &K, now: Instant) -> Option<V> {
        if let Some((v, expires)) = self.young.get(key) {
            if *expires > now {
                return Some(v.clone());
            }
            self.young.remove(key);
            return None;
        }
        let (v, expires) = self.old.remove(key)?;
        if expires <= now {
            return None;
        }
        self.put(key.clone(), v.clone(), expires);
        Some(v)
    }

    /// Kept `ttl` from `now`.
    pub fn insert(&mut self, key: K, value: V, now: Instant) {
        let expires = now.checked_add(self.ttl).unwrap_or(now);
        self.old.remove(&key);
        self.put(key, value, expires);
    }

    pub fn remove(&mut self, key: &K) {
        self.young.remove(key);
        self.old.remove(key);
    }

    pub fn len(&self) -> usize {
        self.young.len() + self.old.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn put(&mut self, key: K, value: V, expires: Instant) {
        if self.young.len() >= self.half && !self.young.contains_key(&key) {
            self.old = std::mem::take(&mut self.young);
        }
        self.young.insert(key, (value, expires));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expires_and_stays_bounded_keeping_what_is_used() {
        let t0 = Instant::now();
        let mut m = TtlMap::new(4, Duration::from_secs(10));
        m.insert("a", 1, t0);
        assert_eq!(m.get(&"a", t0 + Duration::from_secs(9)), Some(1));
        assert_eq!(m.get(&"a", t0 + Duration::from_secs(10)), None, "expired");
        for (i, k) in ["a", "b", "c", "d", "e", "f"].into_iter().enumerate() {
            m.insert(k, i, t0);
            // "a" is read after every insert: it survives each generation.
            if k != "a" {
                assert_eq!(m.get(&"a", t0), Some(0), "after {k}");
            }
            assert!(m.len() <= 4, "{}", m.len());
        }
        assert_eq!(m.get(&"b", t0), None, "the oldest unused went");
        assert_eq!(m.get(&"f", t0), Some(5));
        m.remove(&"f");
        assert_eq!(m.get(&"f", t0), None);
    }
}
