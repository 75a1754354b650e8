//! A single-pass scan of a JSON object's top-level members, for the
//! same-dialect pass-through path: it finds `model` and `stream` and lets
//! the model name be spliced in place without decoding (or re-encoding) a
//! multi-megabyte prompt.

use std::ops::Range;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeekError {
    pub offset: usize,
    pub reason: &'static str,
}

impl std::fmt::Display for PeekError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} at byte {}", self.reason, self.offset)
    }
}

/// Top-level members of an object: key text (raw, between the quotes) and
/// the byte range of each value.
#[derive(Debug, Default)]
pub struct Members<'a> {
    pub json: &'a [u8],
    pub fields: Vec<(&'a [u8], Range<usize>)>,
}

impl<'a> Members<'a> {
    pub fn get(&self, key: &str) -> Option<Range<usize>> {
        self.fields
            .iter()
            .find(|(k, _)| *k == key.as_bytes())
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

/// Scans `json`, which must be one object; nested values are skipped, not
/// validated (the upstream validates what it receives).
pub fn members(json: &[u8]) -> Result<Members<'_>, PeekError> {
    let mut s = Scanner { b: json, i: 0 };
    let mut fields = Vec::new();
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
            let k = s.string()?;
            s.ws();
            s.expect(b':', "expected ':' after key")?;
            s.ws();
            let v = s.value()?;
            fields.push((&json[k.start + 1..k.end - 1], v));
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
            reason,
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

    /// At a `"`: returns the range including both quotes.
    fn string(&mut self) -> Result<Range<usize>, PeekError> {
        let start = self.i;
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
                    return Ok(start..self.i);
                }
                Some(p) => self.i += p + 2, // skip the escaped character
            }
        }
    }

    fn value(&mut self) -> Result<Range<usize>, PeekError> {
        let start = self.i;
        match self.peek() {
            Some(b'"') => self.string(),
            Some(b'{' | b'[') => {
                let mut depth = 0usize;
                loop {
                    match self.peek() {
                        None => return Err(self.err("unterminated object or array")),
                        Some(b'"') => {
                            self.string()?;
                        }
                        Some(b'{' | b'[') => {
                            depth += 1;
                            self.i += 1;
                        }
                        Some(b'}' | b']') => {
                            depth -= 1;
                            self.i += 1;
                            if depth == 0 {
                                return Ok(start..self.i);
                            }
                        }
                        Some(_) => self.i += 1,
                    }
                }
            }
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
                        reason: "invalid literal",
                    })
                }
            }
            _ => Err(self.err("expected a value")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
