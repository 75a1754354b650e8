//! A single-pass scan of a JSON object's top-level members, for the
//! same-dialect pass-through path: it finds `model` and `stream` and lets
//! the model name be spliced in place without decoding (or re-encoding) a
//! multi-megabyte prompt.
//!
//! What the gateway reads here must be what the upstream reads, so keys
//! are compared after unescaping (`"mod\u0065l"` is `model`) and a
//! duplicate top-level key is an error: last-wins upstream parsers would
//! otherwise serve a second `model` the gateway never authorised.

use std::borrow::Cow;
use std::collections::HashSet;
use std::ops::Range;

/// Deepest nesting accepted, counting the top-level object as 1. Nested
/// values are skipped with a bit stack, so this bounds work, not the stack.
pub const MAX_DEPTH: usize = 128;

/// Up to this many keys, a new key is checked against the earlier ones
/// one by one; past it, through a hash set (many-key bodies stay linear).
const LINEAR_DUP_CHECK: usize = 16;

/// Longest key quoted in a duplicate-key error.
const MAX_QUOTED_KEY: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeekError {
    pub offset: usize,
    pub reason: Cow<'static, str>,
}

impl std::fmt::Display for PeekError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} at byte {}", self.reason, self.offset)
    }
}

/// Top-level members of an object: each key (unescaped; borrowed from the
/// document when it had no escapes) and the byte range of its value. Keys
/// are unique.
#[derive(Debug, Default)]
pub struct Members<'a> {
    pub json: &'a [u8],
    pub fields: Vec<(Cow<'a, [u8]>, Range<usize>)>,
}

impl<'a> Members<'a> {
    pub fn get(&self, key: &str) -> Option<Range<usize>> {
        self.fields
            .iter()
            .find(|(k, _)| k.as_ref() == key.as_bytes())
            .map(|(_, r)| r.clone())
    }

    pub fn raw(&self, key: &str) -> Option<&'a [u8]> {
        self.get(key).map(|r| &self.json[r])
    }

    /// The value of `key` if it is a JSON string.
    pub fn str(&self, key: &str) -> Option<String> {
        let raw = self.raw(key)?;
        if raw.first() != Some(&b'"') {
            return None;
        }
        let inner = &raw[1..raw.len() - 1];
        if !inner.contains(&b'\\') {
            return std::str::from_utf8(inner).ok().map(str::to_owned);
        }
        serde_json::from_slice(raw).ok()
    }

    pub fn bool(&self, key: &str) -> Option<bool> {
        match self.raw(key)? {
            b"true" => Some(true),
            b"false" => Some(false),
            _ => None,
        }
    }

    /// A top-level key that is not `name` but that a case-insensitive
    /// parser would take for it (Go's `encoding/json` folds case, with
    /// `ſ` for `s` and the Kelvin sign for `k`): `"MODEL"` beside `"model"`
    /// would reach a Go upstream as a second model.
    pub fn case_variant_of(&self, name: &str) -> Option<String> {
        let fold = |c: char| match c {
            '\u{17F}' => 's',
            '\u{212A}' => 'k',
            c => c.to_ascii_lowercase(),
        };
        self.fields.iter().find_map(|(k, _)| {
            let key = std::str::from_utf8(k).ok()?;
            let same = key.chars().map(fold).eq(name.chars().map(fold));
            (same && key != name).then(|| key.to_owned())
        })
    }

    /// A copy of the document with `key`'s value replaced by `value_json`.
    pub fn replace(&self, key: &str, value_json: &[u8]) -> Option<Vec<u8>> {
        let r = self.get(key)?;
        let mut out = Vec::with_capacity(self.json.len() + value_json.len());
        out.extend_from_slice(&self.json[..r.start]);
        out.extend_from_slice(value_json);
        out.extend_from_slice(&self.json[r.end..]);
        Some(out)
    }
}

/// Scans `json`, which must be one object with unique keys; nested values
/// are skipped (brackets matched, depth bounded by [`MAX_DEPTH`]), not
/// validated (the upstream validates what it receives).
pub fn members(json: &[u8]) -> Result<Members<'_>, PeekError> {
    let mut s = Scanner { b: json, i: 0 };
    let mut fields: Vec<(Cow<'_, [u8]>, Range<usize>)> = Vec::new();
    // Built only once an object has more than LINEAR_DUP_CHECK keys.
    let mut seen: Option<HashSet<Cow<'_, [u8]>>> = None;
    s.ws();
    s.expect(b'{', "expected a JSON object")?;
    s.ws();
    if s.peek() == Some(b'}') {
        s.i += 1;
    } else {
        loop {
            s.ws();
            if s.peek() != Some(b'"') {
                return Err(s.err("expected an object key"));
            }
            let key_at = s.i;
            let (k, escaped) = s.string()?;
            let key = if escaped {
                unescape_key(&json[k.clone()], key_at)?
            } else {
                Cow::Borrowed(&json[k.start + 1..k.end - 1])
            };
            let duplicate = match &mut seen {
                Some(set) => !set.insert(key.clone()),
                None => {
                    let d = fields.iter().any(|(f, _)| *f == key);
                    if !d && fields.len() == LINEAR_DUP_CHECK {
                        let mut set = HashSet::with_capacity(4 * LINEAR_DUP_CHECK);
                        set.extend(fields.iter().map(|(f, _)| f.clone()));
                        set.insert(key.clone());
                        seen = Some(set);
                    }
                    d
                }
            };
            if duplicate {
                return Err(duplicate_key(&key, key_at));
            }
            s.ws();
            s.expect(b':', "expected ':' after key")?;
            s.ws();
            let v = s.value()?;
            fields.push((key, v));
            s.ws();
            match s.next() {
                Some(b',') => continue,
                Some(b'}') => break,
                _ => return Err(s.err("expected ',' or '}'")),
            }
        }
    }
    s.ws();
    if s.i != json.len() {
        return Err(s.err("trailing characters after the object"));
    }
    Ok(Members { json, fields })
}

/// The first element of the array `json` (its byte range), or `None` for
/// an empty array or anything else.
pub fn first_element(json: &[u8]) -> Option<Range<usize>> {
    let mut s = Scanner { b: json, i: 0 };
    s.ws();
    s.expect(b'[', "expected an array").ok()?;
    s.ws();
    if s.peek() == Some(b']') {
        return None;
    }
    s.value().ok()
}

/// A key with escapes, quotes included, unescaped as any JSON parser would
/// (unknown escapes, lone surrogates, raw control characters and invalid
/// UTF-8 are errors, as in serde_json).
fn unescape_key(quoted: &[u8], at: usize) -> Result<Cow<'static, [u8]>, PeekError> {
    serde_json::from_slice::<String>(quoted)
        .map(|k| Cow::Owned(k.into_bytes()))
        .map_err(|_| PeekError {
            offset: at,
            reason: Cow::Borrowed("invalid object key"),
        })
}

fn duplicate_key(key: &[u8], at: usize) -> PeekError {
    let text = String::from_utf8_lossy(key);
    let quoted = match text.char_indices().nth(MAX_QUOTED_KEY) {
        Some((cut, _)) => format!("{:?}…", &text[..cut]),
        None => format!("{text:?}"),
    };
    PeekError {
        offset: at,
        reason: Cow::Owned(format!("duplicate key {quoted}")),
    }
}

struct Scanner<'a> {
    b: &'a [u8],
    i: usize,
}

impl Scanner<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let c = self.peek();
        self.i += 1;
        c
    }

    fn err(&self, reason: &'static str) -> PeekError {
        PeekError {
            offset: self.i.min(self.b.len()),
            reason: Cow::Borrowed(reason),
        }
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    fn expect(&mut self, c: u8, reason: &'static str) -> Result<(), PeekError> {
        if self.peek() == Some(c) {
            self.i += 1;
            Ok(())
        } else {
            Err(self.err(reason))
        }
    }

    /// At a `"`: returns the range including both quotes, and whether the
    /// string holds any escape.
    fn string(&mut self) -> Result<(Range<usize>, bool), PeekError> {
        let start = self.i;
        let mut escaped = false;
        self.i += 1;
        loop {
            let rest = &self.b[self.i.min(self.b.len())..];
            // SIMD search: prompts are mostly string content.
            match memchr::memchr2(b'"', b'\\', rest) {
                None => {
                    self.i = self.b.len();
                    return Err(self.err("unterminated string"));
                }
                Some(p) if rest[p] == b'"' => {
                    self.i += p + 1;
                    return Ok((start..self.i, escaped));
                }
                Some(p) => {
                    escaped = true;
                    self.i += p + 2; // skip the escaped character
                }
            }
        }
    }

    fn value(&mut self) -> Result<Range<usize>, PeekError> {
        let start = self.i;
        match self.peek() {
            Some(b'"') => self.string().map(|(r, _)| r),
            Some(b'{' | b'[') => self.skip_nested().map(|()| start..self.i),
            Some(b'-' | b'0'..=b'9' | b't' | b'f' | b'n') => {
                while matches!(
                    self.peek(),
                    Some(b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9' | b'a'..=b'z')
                ) {
                    self.i += 1;
                }
                let lit = &self.b[start..self.i];
                let is_literal = matches!(lit, b"true" | b"false" | b"null");
                let is_number = lit
                    .first()
                    .is_some_and(|c| *c == b'-' || c.is_ascii_digit())
                    && lit
                        .iter()
                        .all(|c| !c.is_ascii_alphabetic() || matches!(c, b'e' | b'E'));
                if is_literal || is_number {
                    Ok(start..self.i)
                } else {
                    Err(PeekError {
                        offset: start,
                        reason: Cow::Borrowed("invalid literal"),
                    })
                }
            }
            _ => Err(self.err("expected a value")),
        }
    }

    /// At a nested `{` or `[`: skips to just past its matching close,
    /// without recursion. Open brackets are a bit stack (1 for `{`), one
    /// bit per level below the top-level object, so the depth bound is
    /// what keeps it in a `u128`.
    fn skip_nested(&mut self) -> Result<(), PeekError> {
        const _: () = assert!(MAX_DEPTH - 1 <= u128::BITS as usize);
        let mut stack: u128 = 0;
        let mut depth = 0usize;
        loop {
            match self.peek() {
                None => return Err(self.err("unterminated object or array")),
                Some(b'"') => {
                    self.string()?;
                }
                Some(c @ (b'{' | b'[')) => {
                    // The top-level object is level 1.
                    if depth + 1 >= MAX_DEPTH {
                        return Err(self.err("nested deeper than 128"));
                    }
                    stack = (stack << 1) | u128::from(c == b'{');
                    depth += 1;
                    self.i += 1;
                }
                Some(c @ (b'}' | b']')) => {
                    if (stack & 1 == 1) != (c == b'}') {
                        return Err(self.err("mismatched bracket"));
                    }
                    stack >>= 1;
                    depth -= 1;
                    self.i += 1;
                    if depth == 0 {
                        return Ok(());
                    }
                }
                Some(_) => self.i += 1,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_variants_of_a_key_are_found() {
        let m = members(br#"{"model":"a","MODEL":"b","x":1}"#).unwrap();
        assert_eq!(m.case_variant_of("model").as_deref(), Some("MODEL"));
        let m = members("{\"\u{17F}tream\":true}".as_bytes()).unwrap();
        assert!(m.case_variant_of("stream").is_some());
        let m = members(br#"{"model":"a","stream":true}"#).unwrap();
        assert_eq!(m.case_variant_of("model"), None);
        assert_eq!(m.case_variant_of("stream"), None);
    }

    #[test]
    fn finds_and_replaces_top_level_model() {
        let doc = br#" {"messages":[{"role":"user","content":"say \"model\": {x}"}],
            "model" : "gpt-x", "stream":true, "n":-1.5e3, "m":{"model":"inner"}} "#;
        let m = members(doc).unwrap();
        assert_eq!(m.str("model").as_deref(), Some("gpt-x"));
        assert_eq!(m.bool("stream"), Some(true));
        assert_eq!(m.raw("n"), Some(&b"-1.5e3"[..]));
        let out = m.replace("model", br#""up-1""#).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["model"], "up-1");
        assert_eq!(v["m"]["model"], "inner");
        assert_eq!(v["messages"][0]["content"], "say \"model\": {x}");
    }

    #[test]
    fn unescapes_string_values() {
        let m = members(br#"{"model":"a\u00e9\"b"}"#).unwrap();
        assert_eq!(m.str("model").as_deref(), Some("aé\"b"));
    }

    #[test]
    fn rejects_what_is_not_one_object() {
        for bad in [
            &b""[..],
            b"[1]",
            b"{\"a\":1",
            b"{\"a\" 1}",
            b"{\"a\":1}x",
            b"{\"a\":\"x}",
            b"{\"a\":bogus}",
            b"{a:1}",
        ] {
            assert!(members(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
        assert!(members(b"{}").unwrap().fields.is_empty());
    }

    fn reason(doc: &[u8]) -> String {
        members(doc).unwrap_err().reason.into_owned()
    }

    #[test]
    fn a_duplicate_top_level_key_is_an_error_naming_it() {
        let doc = br#"{"model":"cheap","messages":[],"model":"expensive"}"#;
        let e = members(doc).unwrap_err();
        assert_eq!(e.reason, r#"duplicate key "model""#);
        assert_eq!(e.offset, 31, "{e}");
        // Nested duplicates are the upstream's business, not a top-level key.
        let m = members(br#"{"m":{"model":1,"model":2},"model":"x"}"#).unwrap();
        assert_eq!(m.str("model").as_deref(), Some("x"));
    }

    #[test]
    fn keys_compare_after_unescaping() {
        for doc in [
            &br#"{"model":"cheap","mod\u0065l":"expensive"}"#[..],
            br#"{"mod\u0065l":"cheap","model":"expensive"}"#,
            br#"{"\u006d\u006F\u0064\u0065\u006C":"a","model":"b"}"#,
            br#"{"a\"b":1,"a\u0022b":2}"#,
            br#"{"a\\b":1,"a\u005cb":2}"#,
            br#"{"a/b":1,"a\/b":2}"#,
            "{\"\\ud83d\\ude00\":1,\"\u{1F600}\":2}".as_bytes(),
        ] {
            let r = reason(doc);
            assert!(
                r.starts_with("duplicate key"),
                "{r}: {}",
                String::from_utf8_lossy(doc)
            );
        }
        assert_eq!(
            reason(br#"{"mod\u0065l":1,"model":2}"#),
            r#"duplicate key "model""#
        );
        assert_eq!(
            reason(br#"{"a\"b":1,"a\u0022b":2}"#),
            r#"duplicate key "a\"b""#
        );
    }

    #[test]
    fn an_escaped_key_is_found_and_replaced_under_its_unescaped_name() {
        let doc = br#"{"mod\u0065l":"cheap","str\u0065am":true,"a\"b":"q","\ud83d\ude00":1}"#;
        let m = members(doc).unwrap();
        assert_eq!(m.str("model").as_deref(), Some("cheap"));
        assert_eq!(m.bool("stream"), Some(true));
        assert_eq!(m.str("a\"b").as_deref(), Some("q"));
        assert_eq!(m.raw("\u{1F600}"), Some(&b"1"[..]));
        assert!(matches!(m.fields[0].0, Cow::Owned(_)));
        let out = m.replace("model", br#""up-1""#).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["model"], "up-1");
        // Plain keys borrow from the document.
        let m = members(br#"{"model":"x"}"#).unwrap();
        assert!(matches!(m.fields[0].0, Cow::Borrowed(b"model")));
    }

    #[test]
    fn a_key_with_a_bad_escape_is_an_error() {
        for doc in [
            &br#"{"mod\q":1}"#[..],
            br#"{"\ud800":1}"#,
            br#"{"\ud83d\u0041":1}"#,
            br#"{"\u12":1}"#,
        ] {
            assert_eq!(reason(doc), "invalid object key");
        }
    }

    #[test]
    fn duplicates_are_found_among_many_keys() {
        let many = |last: &str| {
            let mut doc = String::from("{");
            for i in 0..200 {
                doc.push_str(&format!("\"k{i}\":{i},"));
            }
            doc.push_str(last);
            doc.push('}');
            doc
        };
        let ok = many(r#""model":"x""#);
        assert_eq!(members(ok.as_bytes()).unwrap().fields.len(), 201);
        assert_eq!(
            reason(many(r#""k3":1"#).as_bytes()),
            r#"duplicate key "k3""#
        );
        assert_eq!(
            reason(many(r#""k\u0031\u00399":1"#).as_bytes()),
            r#"duplicate key "k199""#
        );
        // Past the linear check, an escaped key meets a later plain one.
        let mut doc = String::from("{");
        for i in 0..20 {
            doc.push_str(&format!("\"k{i}\":{i},"));
        }
        doc.push_str(r#""mod\u0065l":1,"model":2}"#);
        assert_eq!(reason(doc.as_bytes()), r#"duplicate key "model""#);
    }

    #[test]
    fn a_long_duplicate_key_is_quoted_short() {
        let key = "é".repeat(10_000);
        let doc = format!(r#"{{"{key}":1,"{key}":2}}"#);
        let r = reason(doc.as_bytes());
        assert!(r.len() < 200, "{r}");
        assert!(r.starts_with("duplicate key \"éé"), "{r}");
    }

    #[test]
    fn nesting_is_bounded_without_recursion() {
        let nested = |levels: usize| {
            // `levels` counts the top-level object.
            let inner = levels - 1;
            format!(
                r#"{{"model":"x","deep":{}1{}}}"#,
                "[".repeat(inner),
                "]".repeat(inner)
            )
        };
        let ok = nested(MAX_DEPTH);
        let m = members(ok.as_bytes()).unwrap();
        assert_eq!(m.str("model").as_deref(), Some("x"));
        assert_eq!(
            reason(nested(MAX_DEPTH + 1).as_bytes()),
            "nested deeper than 128"
        );
        // Far deeper than any stack would survive, and unterminated.
        let mut deep = String::from(r#"{"a":"#);
        deep.push_str(&"{\"b\":[".repeat(1_000_000));
        assert_eq!(reason(deep.as_bytes()), "nested deeper than 128");
        let mixed = format!(
            r#"{{"a":{}{}}}"#,
            r#"{"b":["#.repeat(63),
            r#"]}"#.repeat(63)
        );
        assert!(members(mixed.as_bytes()).is_ok());
    }

    #[test]
    fn nested_brackets_must_match() {
        for bad in [
            &br#"{"a":[}"#[..],
            br#"{"a":{]}"#,
            br#"{"a":[[1],{"b":[}]]}"#,
            br#"{"a":{"b":[1}]}"#,
        ] {
            assert!(members(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
        assert!(members(br#"{"a":[[1],{"b":["]}"]}]}"#).is_ok());
    }

    #[test]
    fn string_values_come_back_unescaped() {
        let m = members(br#"{"a":"x\\y\/z\n\t\u0041\ud83d\ude00","b":"plain"}"#).unwrap();
        assert_eq!(m.str("a").as_deref(), Some("x\\y/z\n\tA\u{1F600}"));
        assert_eq!(m.str("b").as_deref(), Some("plain"));
        assert_eq!(m.str("c"), None);
        assert_eq!(members(br#"{"a":1}"#).unwrap().str("a"), None);
    }

    #[test]
    fn the_first_element_of_an_array() {
        let text = br#" [ {"role": "system", "content": "[x]"}, {"role": "user"} ]"#;
        let r = first_element(text).unwrap();
        assert_eq!(&text[r], br#"{"role": "system", "content": "[x]"}"#);
        assert_eq!(first_element(b"[]"), None);
        assert_eq!(first_element(b" [ ] "), None);
        assert_eq!(first_element(b"{}"), None);
        assert_eq!(&b"[1,2]"[first_element(b"[1,2]").unwrap()], b"1");
    }
}
