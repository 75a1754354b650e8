//! What a TOML error says, without the value at fault: a type error's span
//! is the value itself (`api_key = 12345`, a mistyped secret), and serde's
//! messages quote it (`invalid type: string "sk-..."`). Errors name the
//! dotted key path (`providers[0].api_key`) and keep only the message's
//! words.

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use std::fmt;
use std::ops::Range;
use toml::Spanned;

/// The document's shape with the span of every key and value, read only
/// to name the path an error's span falls in.
enum Node {
    Table(Vec<(Spanned<String>, Spanned<Node>)>),
    Array(Vec<Spanned<Node>>),
    Leaf,
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a TOML value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<Node, E> {
        Ok(Node::Leaf)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Node, E> {
        Ok(Node::Leaf)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Node, E> {
        Ok(Node::Leaf)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Node, E> {
        Ok(Node::Leaf)
    }
    fn visit_str<E>(self, _: &str) -> Result<Node, E> {
        Ok(Node::Leaf)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Spanned<Node>>()? {
            items.push(item);
        }
        Ok(Node::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<Spanned<String>>()? {
            let value = map.next_value::<Spanned<Node>>()?;
            entries.push((key, value));
        }
        Ok(Node::Table(entries))
    }
}

/// Where an error sits: the dotted path, and the span of the value when
/// the error is about a value (not a key).
pub(super) struct Place {
    pub(super) path: String,
    pub(super) value: Option<Range<usize>>,
}

/// The innermost key or value of `text` whose span holds `pos`; `None`
/// when the text does not parse (a syntax error) or nothing holds it.
pub(super) fn locate(text: &str, pos: usize) -> Option<Place> {
    let root: Node = toml::from_str(text).ok()?;
    let mut best = None;
    walk(&root, pos, "", &mut best);
    best.map(|(_, place)| place)
}

fn walk(node: &Node, pos: usize, path: &str, best: &mut Option<(usize, Place)>) {
    match node {
        Node::Table(entries) => {
            for (key, value) in entries {
                let path = if path.is_empty() {
                    key.get_ref().clone()
                } else {
                    format!("{path}.{}", key.get_ref())
                };
                consider(best, pos, key.span(), &path, false);
                consider(best, pos, value.span(), &path, true);
                walk(value.get_ref(), pos, &path, best);
            }
        }
        Node::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let path = format!("{path}[{i}]");
                consider(best, pos, item.span(), &path, true);
                walk(item.get_ref(), pos, &path, best);
            }
        }
        Node::Leaf => {}
    }
}

/// Keeps `span` as the best place when it holds `pos` and is no wider
/// than the best so far (ties go to the later, deeper one).
fn consider(
    best: &mut Option<(usize, Place)>,
    pos: usize,
    span: Range<usize>,
    path: &str,
    value: bool,
) {
    let holds = span.start <= pos && pos < span.end.max(span.start + 1);
    if holds && best.as_ref().is_none_or(|(len, _)| span.len() <= *len) {
        *best = Some((
            span.len(),
            Place {
                path: path.to_owned(),
                value: value.then_some(span),
            },
        ));
    }
}

/// Without a parsed document (a syntax error): the table of the last
/// header above `pos`, and the bare key of `pos`'s line when `pos` is in
/// its value. Also the raw text after that `=`, to keep out of messages.
pub(super) fn guess(text: &str, pos: usize) -> (String, Option<&str>) {
    let before = text.get(..pos).unwrap_or(text);
    let table = before
        .lines()
        .rev()
        .find_map(|l| {
            let l = l.trim();
            l.starts_with('[')
                .then(|| l.trim_matches(|c| c == '[' || c == ']').trim().to_owned())
        })
        .unwrap_or_default();
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line_end = text
        .get(line_start..)
        .and_then(|rest| rest.find('\n'))
        .map_or(text.len(), |i| line_start + i);
    let line = text.get(line_start..line_end).unwrap_or_default();
    let key = line.find('=').and_then(|eq| {
        let (key, value) = (line[..eq].trim(), &line[eq + 1..]);
        let bare = !key.is_empty()
            && key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
        (bare && pos > line_start + eq).then_some((key, value.trim()))
    });
    let path = match (table.is_empty(), key) {
        (true, Some((k, _))) => k.to_owned(),
        (false, Some((k, _))) => format!("{table}.{k}"),
        (_, None) => table,
    };
    (path, key.map(|(_, v)| v))
}

/// toml's (or serde's) message with every value taken out: the quoted or
/// back-ticked value of `invalid type:`, `invalid value:` and `unknown
/// variant`, and any occurrence of `raw` (the value's own text), which
/// catches whatever a custom message might quote. Lines are joined.
pub(super) fn redact(message: &str, raw: Option<&str>) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    loop {
        let next = ["invalid type: ", "invalid value: ", "unknown variant "]
            .iter()
            .filter_map(|m| rest.find(m).map(|i| (i, *m)))
            .min_by_key(|(i, _)| *i);
        let Some((i, marker)) = next else {
            out.push_str(rest);
            break;
        };
        out.push_str(&rest[..i + marker.len()]);
        rest = &rest[i + marker.len()..];
        if marker == "unknown variant " {
            // "unknown variant `v`, expected ...": the expected list is ours
            // and holds no "`, expected", so the last one ends the value.
            out.truncate(out.len() - 1);
            rest = match ["`, expected ", "`, there are no variants"]
                .iter()
                .find_map(|end| rest.rfind(end))
            {
                Some(end) => &rest[end + 1..],
                None => "",
            };
        } else {
            // "integer `5`", "string \"v\"", "sequence": keep the kind only.
            let kind_end = rest.find(['`', '"', ',']).unwrap_or(rest.len());
            out.push_str(rest[..kind_end].trim_end());
            rest = skip_value(&rest[kind_end..]);
        }
    }
    let mut out = out.trim().replace('\n', "; ");
    if let Some(raw) = raw {
        let raw = raw.trim();
        let unquoted = raw.trim_matches(|c| c == '"' || c == '\'');
        for v in [raw, unquoted] {
            if v.len() >= 4 {
                out = out.replace(v, "(value hidden)");
            }
        }
    }
    out
}

/// Past a back-ticked or a Debug-quoted value at the start of `s`.
fn skip_value(s: &str) -> &str {
    let mut chars = s.char_indices();
    let close = match chars.next() {
        Some((_, '`')) => '`',
        Some((_, '"')) => '"',
        _ => return s,
    };
    let mut escaped = false;
    for (i, c) in chars {
        match c {
            '\\' if close == '"' && !escaped => escaped = true,
            c if c == close && !escaped => return &s[i + c.len_utf8()..],
            _ => escaped = false,
        }
    }
    // Unterminated: nothing after it can be trusted to be words.
    ""
}
