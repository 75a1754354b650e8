//! The conversations the gateway answered for OpenAI Responses clients
//! whose model is served by a provider without Responses state (Chat,
//! Anthropic, Gemini): `previous_response_id` must work with any model,
//! and `GET`/`DELETE /v1/responses/{id}` serve what was kept.
//!
//! Each turn is kept once, linked to the turn it continues, so a long chain
//! costs its length rather than its length squared. Bounded by count, bytes
//! and age; the oldest turns go first. A chain whose start was evicted is
//! reported as such, never silently shortened.

use crate::canonical::{Message, Part, Role};
use bytes::Bytes;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_entries: usize,
    pub max_bytes: usize,
    pub ttl: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_entries: 10_000,
            max_bytes: 256 << 20,
            ttl: Duration::from_secs(6 * 3600),
        }
    }
}

/// One answered turn.
#[derive(Debug, Clone)]
pub struct Turn {
    /// The response this one continued.
    pub previous: Option<String>,
    /// The client's new messages (system text excluded: OpenAI does not
    /// carry `instructions` over to the next turn either).
    pub input: Vec<Message>,
    /// What the model answered.
    pub output: Vec<Part>,
    /// The response object as the client got it, for `GET`.
    pub response: Bytes,
}

#[derive(Debug)]
struct Entry {
    turn: Turn,
    bytes: usize,
    stored: Instant,
}

#[derive(Debug, Default)]
struct Inner {
    entries: HashMap<String, Entry>,
    /// Insertion order; all entries share one TTL, so also expiry order.
    order: VecDeque<String>,
    bytes: usize,
}

#[derive(Debug, PartialEq)]
pub enum Lookup {
    Found(Vec<Message>),
    /// Never stored, deleted, or expired.
    Unknown,
    /// The id is known but a turn it builds on is gone.
    Broken(String),
}

#[derive(Debug, Default)]
pub struct ConversationStore {
    limits: Limits,
    inner: Mutex<Inner>,
    /// Ids a Responses provider minted (it keeps those turns itself), and
    /// which provider: `GET`/`DELETE` go there. Bounded by count.
    origins: Mutex<Origins>,
}

/// Response id → provider, and the ids in insertion order for eviction.
type Origins = (HashMap<String, Arc<str>>, VecDeque<String>);

fn messages_bytes(messages: &[Message]) -> usize {
    let req = crate::canonical::Request {
        messages: messages.to_vec(),
        ..Default::default()
    };
    crate::canonical::text_bytes(&req)
}

impl ConversationStore {
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            inner: Mutex::default(),
            origins: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic elsewhere while holding the lock leaves plain data that is
        // still consistent enough to serve.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn insert(&self, id: String, turn: Turn, now: Instant) {
        let bytes = id.len()
            + turn.response.len()
            + messages_bytes(&turn.input)
            + messages_bytes(&[Message {
                role: Role::Assistant,
                parts: turn.output.clone(),
            }])
            + 256;
        if bytes > self.limits.max_bytes {
            return;
        }
        let mut inner = self.lock();
        expire(&mut inner, &self.limits, now);
        if let Some(old) = inner.entries.remove(&id) {
            inner.bytes -= old.bytes;
            inner.order.retain(|k| k != &id);
        }
        while inner.entries.len() >= self.limits.max_entries
            || inner.bytes + bytes > self.limits.max_bytes
        {
            if !evict_oldest(&mut inner) {
                break;
            }
        }
        inner.bytes += bytes;
        inner.order.push_back(id.clone());
        inner.entries.insert(
            id,
            Entry {
                turn,
                bytes,
                stored: now,
            },
        );
    }

    /// The whole conversation up to and including response `id`: every
    /// earlier turn's input and output, oldest first.
    pub fn history(&self, id: &str, now: Instant) -> Lookup {
        let mut inner = self.lock();
        expire(&mut inner, &self.limits, now);
        let mut chain = Vec::new();
        let mut at = Some(id.to_owned());
        while let Some(cur) = at {
            let Some(e) = inner.entries.get(&cur) else {
                return if chain.is_empty() {
                    Lookup::Unknown
                } else {
                    Lookup::Broken(cur)
                };
            };
            chain.push(&e.turn);
            if chain.len() > inner.entries.len() {
                // A cycle can only come from a client reusing ids; stop.
                return Lookup::Broken(cur);
            }
            at = e.turn.previous.clone();
        }
        let mut messages = Vec::new();
        for turn in chain.into_iter().rev() {
            messages.extend(turn.input.iter().cloned());
            if !turn.output.is_empty() {
                messages.push(Message {
                    role: Role::Assistant,
                    parts: turn.output.clone(),
                });
            }
        }
        Lookup::Found(messages)
    }

    /// The response object as it was sent.
    pub fn response(&self, id: &str, now: Instant) -> Option<Bytes> {
        let mut inner = self.lock();
        expire(&mut inner, &self.limits, now);
        inner.entries.get(id).map(|e| e.turn.response.clone())
    }

    pub fn delete(&self, id: &str) -> bool {
        let mut inner = self.lock();
        match inner.entries.remove(id) {
            Some(e) => {
                inner.bytes -= e.bytes;
                inner.order.retain(|k| k != id);
                true
            }
            None => false,
        }
    }

    /// `id` was answered by Responses provider `provider`.
    pub fn remember_origin(&self, id: &str, provider: Arc<str>) {
        let mut o = self.origins.lock().unwrap_or_else(|p| p.into_inner());
        let (map, order) = &mut *o;
        if map.insert(id.to_owned(), provider).is_none() {
            order.push_back(id.to_owned());
        }
        while map.len() > self.limits.max_entries {
            match order.pop_front() {
                Some(old) => map.remove(&old),
                None => break,
            };
        }
    }

    /// The Responses provider that minted `id`, if one did.
    pub fn origin(&self, id: &str) -> Option<Arc<str>> {
        let o = self.origins.lock().unwrap_or_else(|p| p.into_inner());
        o.0.get(id).cloned()
    }

    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn evict_oldest(inner: &mut Inner) -> bool {
    while let Some(id) = inner.order.pop_front() {
        if let Some(e) = inner.entries.remove(&id) {
            inner.bytes -= e.bytes;
            return true;
        }
    }
    false
}

fn expire(inner: &mut Inner, limits: &Limits, now: Instant) {
    while let Some(id) = inner.order.front() {
        let old = inner
            .entries
            .get(id)
            .is_none_or(|e| now.saturating_duration_since(e.stored) >= limits.ttl);
        if !old {
            break;
        }
        evict_oldest(inner);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canonical::TextPart;

    fn text(role: Role, t: &str) -> Message {
        Message {
            role,
            parts: vec![Part::Text(TextPart {
                text: t.into(),
                cache: false,
            })],
        }
    }

    fn turn(previous: Option<&str>, input: &str, output: &str) -> Turn {
        Turn {
            previous: previous.map(str::to_owned),
            input: vec![text(Role::User, input)],
            output: text(Role::Assistant, output).parts,
            response: Bytes::from_static(b"{}"),
        }
    }

    #[test]
    fn a_chain_comes_back_in_order() {
        let s = ConversationStore::new(Limits::default());
        let t0 = Instant::now();
        s.insert("r1".into(), turn(None, "q1", "a1"), t0);
        s.insert("r2".into(), turn(Some("r1"), "q2", "a2"), t0);
        let Lookup::Found(m) = s.history("r2", t0) else {
            panic!("not found")
        };
        let texts: Vec<_> = m
            .iter()
            .map(|m| match &m.parts[0] {
                Part::Text(t) => (m.role, t.text.as_str()),
                _ => unreachable!(),
            })
            .collect();
        assert_eq!(
            texts,
            [
                (Role::User, "q1"),
                (Role::Assistant, "a1"),
                (Role::User, "q2"),
                (Role::Assistant, "a2")
            ]
        );
        assert_eq!(s.history("nope", t0), Lookup::Unknown);
    }

    #[test]
    fn bounded_by_count_bytes_and_age() {
        let limits = Limits {
            max_entries: 2,
            max_bytes: 1 << 20,
            ttl: Duration::from_secs(60),
        };
        let s = ConversationStore::new(limits);
        let t0 = Instant::now();
        s.insert("r1".into(), turn(None, "q1", "a1"), t0);
        s.insert("r2".into(), turn(Some("r1"), "q2", "a2"), t0);
        s.insert("r3".into(), turn(Some("r2"), "q3", "a3"), t0);
        assert_eq!(s.len(), 2);
        // r1 was evicted: r3's chain is broken, and says where.
        assert_eq!(s.history("r3", t0), Lookup::Broken("r1".into()));
        assert!(s.response("r2", t0).is_some());
        assert!(s.response("r2", t0 + Duration::from_secs(61)).is_none());
        assert!(s.is_empty());

        let tiny = ConversationStore::new(Limits {
            max_entries: 100,
            max_bytes: 700,
            ttl: Duration::from_secs(60),
        });
        for i in 0..10 {
            tiny.insert(format!("r{i}"), turn(None, "q", "a"), t0);
        }
        assert!(tiny.len() < 10 && !tiny.is_empty());
        assert!(tiny.lock().bytes <= 700);
    }

    #[test]
    fn origins_are_bounded() {
        let s = ConversationStore::new(Limits {
            max_entries: 2,
            ..Limits::default()
        });
        let p: Arc<str> = Arc::from("openai");
        for id in ["a", "b", "c"] {
            s.remember_origin(id, p.clone());
        }
        assert_eq!(s.origin("a"), None);
        assert_eq!(s.origin("c").as_deref(), Some("openai"));
    }

    #[test]
    fn delete_forgets() {
        let s = ConversationStore::new(Limits::default());
        let t0 = Instant::now();
        s.insert("r1".into(), turn(None, "q1", "a1"), t0);
        assert!(s.delete("r1"));
        assert!(!s.delete("r1"));
        assert_eq!(s.history("r1", t0), Lookup::Unknown);
        assert_eq!(s.lock().bytes, 0);
    }
}
