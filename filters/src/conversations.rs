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
    /// The client key's name: only the key that made a turn may read,
    /// continue or delete it (the id alone is no credential).
    pub owner: String,
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

/// Response id → (provider, owning key name), and the ids in insertion
/// order for eviction.
type Origins = (HashMap<String, (Arc<str>, String)>, VecDeque<String>);

/// Bytes a part holds: every string in it (not a token estimate: images,
/// documents and signatures count in full).
fn part_bytes(p: &Part) -> usize {
    use crate::canonical::Media;
    let media = |m: &Media| match m {
        Media::Base64 { mime, data } => mime.len() + data.len(),
        Media::Url(u) | Media::Text(u) => u.len(),
    };
    32 + match p {
        Part::Text(t) => t.text.len(),
        Part::Image(m) | Part::Document(m) => media(m),
        Part::ToolCall(c) => c.id.len() + c.name.len() + c.arguments.len(),
        Part::ToolResult(r) => r.call_id.len() + r.content.iter().map(part_bytes).sum::<usize>(),
        Part::Reasoning(r) => {
            r.text.len()
                + r.signature.as_ref().map_or(0, String::len)
                + r.redacted.as_ref().map_or(0, String::len)
        }
    }
}

/// What one kept turn costs, roughly as allocated.
fn turn_bytes(id: &str, turn: &Turn) -> usize {
    let parts = turn
        .input
        .iter()
        .flat_map(|m| &m.parts)
        .chain(&turn.output)
        .map(part_bytes)
        .sum::<usize>();
    id.len() + turn.response.len() + turn.owner.len() + parts + 256
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
        let bytes = turn_bytes(&id, &turn);
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
    pub fn history(&self, id: &str, owner: &str, now: Instant) -> Lookup {
        let mut inner = self.lock();
        expire(&mut inner, &self.limits, now);
        let mut chain = Vec::new();
        let mut at = Some(id.to_owned());
        while let Some(cur) = at {
            let Some(e) = inner.entries.get(&cur).filter(|e| e.turn.owner == owner) else {
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
    pub fn response(&self, id: &str, owner: &str, now: Instant) -> Option<Bytes> {
        let mut inner = self.lock();
        expire(&mut inner, &self.limits, now);
        inner
            .entries
            .get(id)
            .filter(|e| e.turn.owner == owner)
            .map(|e| e.turn.response.clone())
    }

    pub fn delete(&self, id: &str, owner: &str) -> bool {
        let mut inner = self.lock();
        if inner.entries.get(id).is_none_or(|e| e.turn.owner != owner) {
            return false;
        }
        match inner.entries.remove(id) {
            Some(e) => {
                inner.bytes -= e.bytes;
                inner.order.retain(|k| k != id);
                true
            }
            None => false,
        }
    }

    /// `id` was answered by Responses provider `provider` for `owner`.
    pub fn remember_origin(&self, id: &str, provider: Arc<str>, owner: &str) {
        let mut o = self.origins.lock().unwrap_or_else(|p| p.into_inner());
        let (map, order) = &mut *o;
        if map
            .insert(id.to_owned(), (provider, owner.to_owned()))
            .is_none()
        {
            order.push_back(id.to_owned());
        }
        while map.len() > self.limits.max_entries {
            match order.pop_front() {
                Some(old) => map.remove(&old),
                None => break,
            };
        }
    }

    /// The Responses provider that minted `id` for `owner`, if one did.
    pub fn origin(&self, id: &str, owner: &str) -> Option<Arc<str>> {
        let o = self.origins.lock().unwrap_or_else(|p| p.into_inner());
        o.0.get(id)
            .filter(|(_, o)| o == owner)
            .map(|(p, _)| p.clone())
    }

    /// Whether the gateway itself keeps `id` for `owner` (rather than a
    /// Responses provider).
    pub fn contains(&self, id: &str, owner: &str, now: Instant) -> bool {
        let mut inner = self.lock();
        expire(&mut inner, &self.limits, now);
        inner.entries.get(id).is_some_and(|e| e.turn.owner == owner)
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
            owner: "k".into(),
        }
    }

    #[test]
    fn a_chain_comes_back_in_order() {
        let s = ConversationStore::new(Limits::default());
        let t0 = Instant::now();
        s.insert("r1".into(), turn(None, "q1", "a1"), t0);
        s.insert("r2".into(), turn(Some("r1"), "q2", "a2"), t0);
        let Lookup::Found(m) = s.history("r2", "k", t0) else {
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
        assert_eq!(s.history("nope", "k", t0), Lookup::Unknown);
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
        assert_eq!(s.history("r3", "k", t0), Lookup::Broken("r1".into()));
        assert!(s.response("r2", "k", t0).is_some());
        assert!(s
            .response("r2", "k", t0 + Duration::from_secs(61))
            .is_none());
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
            s.remember_origin(id, p.clone(), "k");
        }
        assert_eq!(s.origin("a", "k"), None);
        assert_eq!(s.origin("c", "k").as_deref(), Some("openai"));
        assert_eq!(s.origin("c", "other"), None);
    }

    #[test]
    fn only_the_owner_sees_a_turn() {
        let s = ConversationStore::new(Limits::default());
        let t0 = Instant::now();
        s.insert("r1".into(), turn(None, "q1", "a1"), t0);
        assert_eq!(s.history("r1", "intruder", t0), Lookup::Unknown);
        assert!(s.response("r1", "intruder", t0).is_none());
        assert!(!s.delete("r1", "intruder"));
        assert!(s.contains("r1", "k", t0) && !s.contains("r1", "intruder", t0));
        assert!(s.response("r1", "k", t0).is_some());
    }

    #[test]
    fn size_counts_every_byte_kept() {
        let big = "x".repeat(100_000);
        let mut t = turn(None, "q", "a");
        t.input[0]
            .parts
            .push(Part::Image(crate::canonical::Media::Base64 {
                mime: "image/png".into(),
                data: big.clone(),
            }));
        t.output.push(Part::Reasoning(crate::canonical::Reasoning {
            text: String::new(),
            signature: Some(big),
            redacted: None,
        }));
        assert!(turn_bytes("r1", &t) > 200_000);
    }

    #[test]
    fn delete_forgets() {
        let s = ConversationStore::new(Limits::default());
        let t0 = Instant::now();
        s.insert("r1".into(), turn(None, "q1", "a1"), t0);
        assert!(s.delete("r1", "k"));
        assert!(!s.delete("r1", "k"));
        assert_eq!(s.history("r1", "k", t0), Lookup::Unknown);
        assert_eq!(s.lock().bytes, 0);
    }
}
