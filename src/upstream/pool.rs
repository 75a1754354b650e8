//! Idle upstream connections kept for reuse, one pool per worker thread.
//!
//! Pingora's shared pool parks every released connection with a watcher
//! task on a random worker and hands it back through a lock: a task spawn
//! and two cross-thread wake-ups per request, and a race that discards the
//! connection when the watcher lets go a moment too late (measured: ~10% of
//! pass-through requests opened a new connection). Here a worker keeps its
//! own connections: checking one out is a hash lookup and a non-blocking
//! liveness probe, and a connection stays with the thread whose I/O driver
//! it is registered with.
//!
//! The pool logic is generic (`IdlePool`), so it is tested with plain values
//! and explicit instants; `upstream.rs` stores Pingora streams in it.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::time::{Duration, Instant};

struct Idle<C> {
    conn: C,
    since: Instant,
}

/// Idle connections by key (one upstream address, TLS and SNI), newest
/// last. At most `capacity` in all.
pub struct IdlePool<K, C> {
    by_key: HashMap<K, VecDeque<Idle<C>>>,
    len: usize,
    capacity: usize,
    idle_timeout: Duration,
}

impl<K: Hash + Eq, C> IdlePool<K, C> {
    pub fn new(capacity: usize, idle_timeout: Duration) -> Self {
        Self {
            by_key: HashMap::new(),
            len: 0,
            capacity,
            idle_timeout,
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.len
    }

    /// The most recently parked live connection for `key`. Newest first: it
    /// is the likeliest to be alive, and the oldest ones age out unused, so
    /// a burst's extra connections close once the burst is over. Expired
    /// connections and those `alive` rejects are dropped on the way.
    pub fn take(
        &mut self,
        key: &K,
        now: Instant,
        mut alive: impl FnMut(&mut C) -> bool,
    ) -> Option<C> {
        let queue = self.by_key.get_mut(key)?;
        let mut found = None;
        while let Some(mut idle) = queue.pop_back() {
            self.len -= 1;
            if now.saturating_duration_since(idle.since) < self.idle_timeout
                && alive(&mut idle.conn)
            {
                found = Some(idle.conn);
                break;
            }
        }
        if queue.is_empty() {
            self.by_key.remove(key);
        }
        found
    }

    /// Parks `conn`. A full pool makes room by closing its oldest connection
    /// for the same key; when the key has none, `conn` itself is closed
    /// (returned), so one busy upstream cannot starve the others' pools.
    pub fn put(&mut self, key: K, conn: C, now: Instant) -> Option<C> {
        if self.capacity == 0 {
            return Some(conn);
        }
        let queue = self.by_key.entry(key).or_default();
        let evicted = if self.len >= self.capacity {
            match queue.pop_front() {
                Some(old) => Some(old.conn),
                None => return Some(conn),
            }
        } else {
            self.len += 1;
            None
        };
        queue.push_back(Idle { conn, since: now });
        evicted
    }

    /// Drops expired connections and those `alive` rejects (closed by the
    /// upstream while parked). Returns how many were dropped.
    pub fn sweep(&mut self, now: Instant, mut alive: impl FnMut(&mut C) -> bool) -> usize {
        let timeout = self.idle_timeout;
        let before = self.len;
        self.by_key.retain(|_, queue| {
            queue.retain_mut(|idle| {
                now.saturating_duration_since(idle.since) < timeout && alive(&mut idle.conn)
            });
            !queue.is_empty()
        });
        self.len = self.by_key.values().map(VecDeque::len).sum();
        before - self.len
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IDLE: Duration = Duration::from_secs(60);

    fn pool(capacity: usize) -> IdlePool<&'static str, u32> {
        IdlePool::new(capacity, IDLE)
    }

    #[test]
    fn takes_the_newest_connection_of_its_key() {
        let t = Instant::now();
        let mut p = pool(8);
        assert!(p.put("a", 1, t).is_none());
        assert!(p.put("a", 2, t).is_none());
        assert!(p.put("b", 3, t).is_none());
        assert_eq!(p.take(&"a", t, |_| true), Some(2));
        assert_eq!(p.take(&"a", t, |_| true), Some(1));
        assert_eq!(p.take(&"a", t, |_| true), None);
        assert_eq!(p.take(&"b", t, |_| true), Some(3));
        assert_eq!(p.len(), 0);
    }

    #[test]
    fn dead_and_expired_connections_are_skipped_and_dropped() {
        let t = Instant::now();
        let mut p = pool(8);
        p.put("a", 1, t);
        p.put("a", 2, t + Duration::from_secs(50));
        p.put("a", 3, t + Duration::from_secs(55));
        // 3 was closed by the upstream; 1 is past the idle timeout.
        let later = t + Duration::from_secs(70);
        assert_eq!(p.take(&"a", later, |c| *c != 3), Some(2));
        assert_eq!(p.len(), 1);
        assert_eq!(p.take(&"a", later, |_| true), None);
        assert_eq!(p.len(), 0);
    }

    #[test]
    fn a_full_pool_evicts_the_oldest_of_the_same_key() {
        let t = Instant::now();
        let mut p = pool(2);
        p.put("a", 1, t);
        p.put("a", 2, t);
        assert_eq!(p.put("a", 3, t), Some(1));
        assert_eq!(p.len(), 2);
        // Another key finds no room of its own: its connection is closed.
        assert_eq!(p.put("b", 9, t), Some(9));
        assert_eq!(p.take(&"a", t, |_| true), Some(3));
        assert_eq!(p.take(&"a", t, |_| true), Some(2));
    }

    #[test]
    fn a_zero_capacity_pool_keeps_nothing() {
        let mut p = pool(0);
        assert_eq!(p.put("a", 1, Instant::now()), Some(1));
        assert_eq!(p.len(), 0);
    }

    #[test]
    fn sweep_drops_expired_and_closed_connections() {
        let t = Instant::now();
        let mut p = pool(8);
        p.put("a", 1, t);
        p.put("a", 2, t + Duration::from_secs(30));
        p.put("b", 3, t + Duration::from_secs(30));
        p.put("b", 4, t + Duration::from_secs(30));
        let dropped = p.sweep(t + Duration::from_secs(61), |c| *c != 4);
        assert_eq!(dropped, 2);
        assert_eq!(p.len(), 2);
        assert_eq!(p.take(&"b", t + Duration::from_secs(61), |_| true), Some(3));
        assert_eq!(p.take(&"a", t + Duration::from_secs(61), |_| true), Some(2));
    }
}
