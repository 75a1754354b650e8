//! `json_peek::members` against serde_json: on any JSON document written
//! with random whitespace and randomly escaped characters, the peek
//! succeeds exactly when serde_json (with a duplicate-key check) accepts
//! it, and finds the same members under the same unescaped keys. On any
//! bytes at all, it never panics.
//!
//! `PROPTEST_CASES` overrides each property's case count (`make fuzz`).

use filters::wire::json_peek::{members, MAX_DEPTH};
use proptest::prelude::*;
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::{Map, Number, Value};

fn config(default_cases: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default_cases);
    ProptestConfig {
        cases,
        ..ProptestConfig::default()
    }
}

/// The oracle: a top-level object's members in order, duplicates kept.
struct Entries(Vec<(String, Value)>);

impl<'de> Deserialize<'de> for Entries {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Entries;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Entries, A::Error> {
                let mut out = Vec::new();
                while let Some(kv) = map.next_entry::<String, Value>()? {
                    out.push(kv);
                }
                Ok(Entries(out))
            }
        }
        d.deserialize_map(V)
    }
}

/// What serde_json makes of `doc`: its members, or `None` when it rejects
/// the document or a top-level key repeats.
fn oracle(doc: &[u8]) -> Option<Vec<(String, Value)>> {
    let Entries(entries) = serde_json::from_slice(doc).ok()?;
    let mut keys: Vec<&str> = entries.iter().map(|(k, _)| k.as_str()).collect();
    keys.sort_unstable();
    let unique = keys.windows(2).all(|w| w[0] != w[1]);
    unique.then_some(entries)
}

/// Writes JSON with random whitespace and random (valid) escapes.
struct Writer {
    rng: fastrand::Rng,
    out: Vec<u8>,
}

impl Writer {
    fn ws(&mut self) {
        while self.rng.u8(..4) == 0 {
            let c = [b' ', b'\t', b'\n', b'\r'][self.rng.usize(..4)];
            self.out.push(c);
        }
    }

    fn u_escape(&mut self, unit: u16) {
        let hex = if self.rng.bool() {
            format!("\\u{unit:04x}")
        } else {
            format!("\\u{unit:04X}")
        };
        self.out.extend_from_slice(hex.as_bytes());
    }

    fn string(&mut self, s: &str) {
        self.out.push(b'"');
        for c in s.chars() {
            let short = match c {
                '"' => Some("\\\""),
                '\\' => Some("\\\\"),
                '/' => Some("\\/"),
                '\u{8}' => Some("\\b"),
                '\u{c}' => Some("\\f"),
                '\n' => Some("\\n"),
                '\r' => Some("\\r"),
                '\t' => Some("\\t"),
                _ => None,
            };
            let must = c < ' ' || c == '"' || c == '\\';
            match (must || self.rng.u8(..4) == 0, short) {
                (false, _) => {
                    let mut buf = [0u8; 4];
                    self.out
                        .extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
                (true, Some(esc)) if self.rng.bool() => self.out.extend_from_slice(esc.as_bytes()),
                (true, _) => {
                    let mut units = [0u16; 2];
                    for unit in c.encode_utf16(&mut units).iter().copied() {
                        self.u_escape(unit);
                    }
                }
            }
        }
        self.out.push(b'"');
    }

    fn value(&mut self, v: &Value) {
        match v {
            Value::String(s) => self.string(s),
            Value::Array(items) => {
                self.out.push(b'[');
                self.ws();
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        self.out.push(b',');
                        self.ws();
                    }
                    self.value(item);
                    self.ws();
                }
                self.out.push(b']');
            }
            Value::Object(map) => {
                let entries: Vec<(&String, &Value)> = map.iter().collect();
                self.object(&entries);
            }
            scalar => self.out.extend_from_slice(scalar.to_string().as_bytes()),
        }
    }

    fn object<K: AsRef<str>>(&mut self, entries: &[(K, &Value)]) {
        self.out.push(b'{');
        self.ws();
        for (i, (k, v)) in entries.iter().enumerate() {
            if i > 0 {
                self.out.push(b',');
                self.ws();
            }
            self.string(k.as_ref());
            self.ws();
            self.out.push(b':');
            self.ws();
            self.value(v);
            self.ws();
        }
        self.out.push(b'}');
    }
}

/// Keys that matter to the gateway, and keys that are hard to escape:
/// drawn often, they make duplicates (some spelled differently).
const POOL: &[&str] = &[
    "model",
    "stream",
    "messages",
    "a\"b",
    "back\\slash",
    "\u{1F600}",
    "é",
    "",
    "\u{0}\u{1f}",
    "/",
];

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => proptest::sample::select(POOL).prop_map(str::to_owned),
        2 => proptest::collection::vec(any::<char>(), 0..6).prop_map(|c| c.into_iter().collect()),
        1 => "[a-z]{1,3}",
    ]
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter_map("finite", Number::from_f64)
            .prop_map(Value::Number),
        proptest::collection::vec(any::<char>(), 0..8)
            .prop_map(|c| Value::String(c.into_iter().collect())),
        proptest::sample::select(POOL).prop_map(Value::from),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(5, 48, 5, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            proptest::collection::vec((key(), inner), 0..5)
                .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// A document: usually an object whose top-level keys may repeat,
/// sometimes another JSON value (which the peek must refuse).
#[derive(Debug, Clone)]
enum Doc {
    Object(Vec<(String, Value)>),
    Other(Value),
}

fn doc() -> impl Strategy<Value = Doc> {
    prop_oneof![
        9 => proptest::collection::vec((key(), value()), 0..8).prop_map(Doc::Object),
        1 => value().prop_map(Doc::Other),
    ]
}

fn write(doc: &Doc, seed: u64) -> Vec<u8> {
    let mut w = Writer {
        rng: fastrand::Rng::with_seed(seed),
        out: Vec::new(),
    };
    w.ws();
    match doc {
        Doc::Object(entries) => {
            let refs: Vec<(&String, &Value)> = entries.iter().map(|(k, v)| (k, v)).collect();
            w.object(&refs);
        }
        Doc::Other(v) => w.value(v),
    }
    w.ws();
    w.out
}

/// Everything `Members` offers, exercised on a successful peek.
fn check_against_oracle(bytes: &[u8]) -> Result<(), TestCaseError> {
    let peeked = members(bytes);
    let expected = oracle(bytes);
    let text = String::from_utf8_lossy(bytes);
    match (peeked, expected) {
        (Ok(m), Some(entries)) => {
            prop_assert_eq!(m.fields.len(), entries.len(), "{}", text);
            for ((k, range), (ek, ev)) in m.fields.iter().zip(&entries) {
                prop_assert_eq!(k.as_ref(), ek.as_bytes(), "{}", text);
                let parsed: Value = serde_json::from_slice(&bytes[range.clone()])
                    .map_err(|e| TestCaseError::fail(format!("{e}: {text}")))?;
                prop_assert_eq!(&parsed, ev, "{}", text);
                prop_assert_eq!(m.raw(ek), Some(&bytes[range.clone()]));
                let s = m.str(ek);
                prop_assert_eq!(s.as_deref(), ev.as_str(), "{}", text);
                prop_assert_eq!(m.bool(ek), ev.as_bool());
                let spliced = m
                    .replace(ek, b"\"spliced\"")
                    .ok_or_else(|| TestCaseError::fail("replace found no key"))?;
                let after = oracle(&spliced)
                    .ok_or_else(|| TestCaseError::fail("replace broke the document"))?;
                let got = after.iter().find(|(k2, _)| k2 == ek).map(|(_, v)| v);
                prop_assert_eq!(got, Some(&Value::from("spliced")));
            }
        }
        (Err(e), None) => {
            prop_assert!(e.offset <= bytes.len());
        }
        (Ok(m), None) => {
            return Err(TestCaseError::fail(format!(
                "peek accepted what serde_json refuses ({} members): {text}",
                m.fields.len()
            )))
        }
        (Err(e), Some(_)) => {
            return Err(TestCaseError::fail(format!(
                "peek refused what serde_json accepts ({e}): {text}"
            )))
        }
    }
    Ok(())
}

/// Bytes that look like JSON often enough to get past the first few.
fn jsonish_bytes() -> impl Strategy<Value = Vec<u8>> {
    let tokens: &[&[u8]] = &[
        b"{",
        b"}",
        b"[",
        b"]",
        b"\"",
        b"\\",
        b":",
        b",",
        b" ",
        b"\n",
        b"\"model\"",
        b"\"a\"",
        b"1",
        b"-2.5e3",
        b"true",
        b"null",
        b"\\u0065",
        b"\\ud83d",
        b"\\ude00",
        b"\xff",
        b"\xc3",
    ];
    proptest::collection::vec(proptest::sample::select(tokens), 0..64).prop_map(|t| t.concat())
}

fn exercise(bytes: &[u8]) -> Result<(), TestCaseError> {
    if let Ok(m) = members(bytes) {
        for (i, (k, r)) in m.fields.iter().enumerate() {
            prop_assert!(r.start <= r.end && r.end <= bytes.len());
            prop_assert!(m.fields[..i].iter().all(|(k2, _)| k2 != k), "keys repeat");
            let name = String::from_utf8_lossy(k);
            let _ = (m.str(&name), m.bool(&name), m.replace(&name, b"0"));
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(1000))]

    #[test]
    fn peek_agrees_with_serde_json(doc in doc(), seed in any::<u64>()) {
        check_against_oracle(&write(&doc, seed))?;
    }

    #[test]
    fn a_cut_short_object_is_refused(
        doc in doc(),
        seed in any::<u64>(),
        cut in any::<prop::sample::Index>(),
    ) {
        let bytes = write(&doc, seed);
        let end = bytes.iter().rposition(|&b| b == b'}' || b == b']' || b == b'"').unwrap_or(0);
        let cut = cut.index(end + 1);
        // Cut before the last token of the document: never a whole value.
        prop_assert!(members(&bytes[..cut]).is_err(), "{}", String::from_utf8_lossy(&bytes[..cut]));
    }

    #[test]
    fn depth_is_bounded_like_serde_json(levels in 1usize..300, kinds in any::<u128>()) {
        // `levels` nested values under the top-level object.
        let mut doc = String::from("{\"model\":\"x\",\"v\":");
        let mut closes = Vec::new();
        for i in 0..levels {
            if (kinds >> (i % 128)) & 1 == 1 {
                doc.push_str("{\"k\":");
                closes.push('}');
            } else {
                doc.push('[');
                closes.push(']');
            }
        }
        doc.push('0');
        doc.extend(closes.iter().rev());
        doc.push('}');
        let peeked = members(doc.as_bytes());
        prop_assert_eq!(peeked.is_ok(), levels < MAX_DEPTH, "{:?}", peeked.err());
        // serde_json stops one level sooner: whatever it reads, we read.
        if oracle(doc.as_bytes()).is_some() {
            prop_assert!(peeked.is_ok());
        }
    }

    #[test]
    fn any_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        exercise(&bytes)?;
    }

    #[test]
    fn jsonish_bytes_never_panic_and_valid_ones_agree(bytes in jsonish_bytes()) {
        exercise(&bytes)?;
        // Accepted by serde_json: the peek must agree (the converse does
        // not hold: nested values are skipped, not validated).
        if oracle(&bytes).is_some() {
            check_against_oracle(&bytes)?;
        }
    }
}
