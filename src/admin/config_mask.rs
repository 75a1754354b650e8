//! The config file's secrets, found by where they sit in the TOML (not by
//! what they look like): masked for reading, and put back from the file
//! when an edited text still holds the mask, so saving the masked text
//! loses nothing. Both work on the text itself, spliced at the secrets'
//! spans, so every other byte (layout, comments) stays as it was.
//!
//! Comments are masked too (a commented-out `# api_key = "sk-…"`, a URL's
//! password, a token shaped like a key) but never restored: nothing ties
//! a comment to a place a value could come back from, so saving the
//! masked text keeps the masked comment — masking a comment is one way.
//!
//! A mask is restored only for a secret still sent where it was: a
//! provider's keys while its `base_url` stays, a URL's password while its
//! scheme, host and port stay. Else whoever edits could send a secret to
//! a new address without ever seeing it.

use crate::config::Issue;
use std::collections::{HashMap, HashSet};
use std::ops::Range;
use toml_edit::{ImDocument, Item, TableLike, Value};

/// What a reader sees in place of a secret.
pub const MASK: &str = "********";

/// How much of a value is secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// The whole string (a key, a header value).
    Whole,
    /// The password (and secret query parameters) of a URL.
    Url,
}

/// One secret string in a document.
#[derive(Debug)]
struct Secret {
    /// As validation names it: `providers[0].api_key`.
    path: String,
    /// The same place with array elements named by their `name` when they
    /// have one (`providers{openai}.api_key`): an edit that reorders
    /// providers still finds each one's secret.
    identity: String,
    /// The value's literal (quotes included) in the text.
    span: Range<usize>,
    /// `None` for a value of another type than a string (a mistyped key,
    /// still a secret to hide).
    value: Option<String>,
    kind: Kind,
    /// Where the secret is sent, as compared between the file and an
    /// edit: its provider's `base_url`, the collector's endpoint, the
    /// URL's own server; `None` for secrets sent nowhere (client keys).
    dest: Option<String>,
}

/// Whose secrets are collected: its path, its identity, where they go.
struct Owner<'a> {
    at: &'a str,
    identity: &'a str,
    dest: Option<String>,
}

/// The file's text as a reader may see it.
#[derive(Debug, PartialEq, Eq)]
pub struct Masked {
    pub text: String,
    /// The TOML path of every value masked.
    pub paths: Vec<String>,
}

/// `text` with every secret replaced by [`MASK`]; `Err` (the parser's
/// line, no values) when the text does not parse, for then no secret can
/// be found and nothing may be shown.
pub fn mask(text: &str) -> Result<Masked, String> {
    let doc = ImDocument::parse(text).map_err(|e| parse_error(text, &e))?;
    let mut edits = Vec::new();
    let mut paths = Vec::new();
    for s in secrets(&doc) {
        let masked = match (s.kind, s.value.as_deref()) {
            (_, Some("")) => continue,
            (Kind::Whole, _) | (Kind::Url, None) => MASK.to_owned(),
            // Not a URL (a `key=value` connection string): nothing of it
            // can be told safe to show.
            (Kind::Url, Some(v)) if !v.contains("://") => MASK.to_owned(),
            (Kind::Url, Some(v)) => match mask_url(v) {
                Some(m) => m,
                None => continue,
            },
        };
        edits.push((s.span, literal(&masked)));
        paths.push(s.path);
    }
    for r in comments(text) {
        let masked = mask_comment(&text[r.clone()]);
        if masked != text[r.clone()] {
            edits.push((r, masked));
        }
    }
    Ok(Masked {
        text: splice(text, edits),
        paths,
    })
}

/// `edited` with each secret that still holds the mask given the value it
/// has in `current` (the file): matched by the owner's name first, else
/// at the same path when that owner was renamed. A mask with nothing to
/// restore, or whose secret would now go to another address, is an
/// issue at its path. A text that does not parse is returned as is:
/// validation names its syntax error.
pub fn restore(edited: &str, current: &str) -> Result<String, Vec<Issue>> {
    let Ok(doc) = ImDocument::parse(edited) else {
        return Ok(edited.to_owned());
    };
    let new = secrets(&doc);
    let old = ImDocument::parse(current)
        .map(|d| secrets(&d))
        .unwrap_or_default();
    let by_identity: HashMap<&str, &Secret> =
        old.iter().map(|s| (s.identity.as_str(), s)).collect();
    let by_path: HashMap<&str, &Secret> = old.iter().map(|s| (s.path.as_str(), s)).collect();
    let claimed: HashSet<&str> = new.iter().map(|s| s.identity.as_str()).collect();
    let mut edits = Vec::new();
    let mut issues = Vec::new();
    for s in &new {
        let Some(value) = s.value.as_deref().filter(|v| v.contains(MASK)) else {
            continue;
        };
        let original = by_identity.get(s.identity.as_str()).copied().or_else(|| {
            by_path
                .get(s.path.as_str())
                .copied()
                .filter(|o| !claimed.contains(o.identity.as_str()))
        });
        let whole = value == MASK && s.kind == Kind::Url;
        if original.is_some_and(|o| !whole && o.dest != s.dest) {
            issues.push(Issue {
                path: s.path.clone(),
                message:
                    "this secret was masked; enter its value again to send it to a new address"
                        .into(),
                line: None,
            });
            continue;
        }
        let restored = original.and_then(|o| match s.kind {
            _ if value == MASK => Some(current[o.span.clone()].to_owned()),
            Kind::Whole => None,
            Kind::Url => restore_url(value, o.value.as_deref()?).map(|v| {
                if Some(v.as_str()) == o.value.as_deref() {
                    current[o.span.clone()].to_owned()
                } else {
                    literal(&v)
                }
            }),
        });
        match restored {
            Some(lit) => edits.push((s.span.clone(), lit)),
            None => issues.push(Issue {
                path: s.path.clone(),
                message: format!(
                    "still holds the mask {MASK}, and the file has no value here to keep: enter the value"
                ),
                line: None,
            }),
        }
    }
    if issues.is_empty() {
        Ok(splice(edited, edits))
    } else {
        Err(issues)
    }
}

/// The parser's complaint with its line, never the text around it.
fn parse_error(text: &str, e: &toml_edit::TomlError) -> String {
    let line = e.span().map(|s| {
        text.get(..s.start)
            .map_or(1, |t| t.matches('\n').count() + 1)
    });
    match line {
        Some(n) => format!("the file does not parse (line {n})"),
        None => "the file does not parse".to_owned(),
    }
}

/// A TOML basic string holding `s`.
fn literal(s: &str) -> String {
    Value::from(s).to_string().trim().to_owned()
}

/// `text` with each span replaced (spans do not overlap).
fn splice(text: &str, mut edits: Vec<(Range<usize>, String)>) -> String {
    edits.sort_by_key(|(r, _)| std::cmp::Reverse(r.start));
    let mut out = text.to_owned();
    for (r, with) in edits {
        if out.get(r.clone()).is_some() {
            out.replace_range(r, &with);
        }
    }
    out
}

/// Where the config keeps secrets: the upstream keys and credential-like
/// headers of providers, the client keys, the passwords of the store,
/// limiter and collector URLs, and the collector's headers.
fn secrets(doc: &ImDocument<&str>) -> Vec<Secret> {
    let mut out = Vec::new();
    let root = doc.as_table() as &dyn TableLike;
    for (i, identity, p) in elements(root, "providers") {
        let at = format!("providers[{i}]");
        // Replicas are more URLs in `base_url`: any change is a new address.
        let dest = Some(p.get("base_url").map_or_else(String::new, canonical));
        let owner = Owner {
            at: &at,
            identity: &identity,
            dest,
        };
        leaf(&mut out, p.get("api_key"), &owner, "api_key", Kind::Whole);
        match p.get("api_keys") {
            Some(Item::Value(Value::Array(keys))) => {
                for (j, v) in keys.iter().enumerate() {
                    let key = format!("api_keys[{j}]");
                    value(&mut out, v, &owner, &key, Kind::Whole);
                }
            }
            // Mistyped (one string, not a list): hidden all the same.
            other => leaf(&mut out, other, &owner, "api_keys", Kind::Whole),
        }
        if let Some(headers) = p.get("headers").and_then(Item::as_table_like) {
            for (name, v) in headers.iter() {
                if credential_header(name) {
                    let key = format!("headers.{name}");
                    leaf(&mut out, Some(v), &owner, &key, Kind::Whole);
                }
            }
        }
        // `auth`: a fixed token goes where the provider does; a login's
        // user and password go to its login URL (a changed one must have
        // them typed again), whose own password is masked as any URL's.
        if let Some(auth) = p.get("auth").and_then(Item::as_table_like) {
            leaf(
                &mut out,
                auth.get("token"),
                &owner,
                "auth.token",
                Kind::Whole,
            );
            let login = Owner {
                dest: Some(format!(
                    "{}|{}",
                    owner.dest.as_deref().unwrap_or_default(),
                    auth.get("login_url")
                        .and_then(Item::as_str)
                        .and_then(url_destination)
                        .unwrap_or_default()
                )),
                ..owner
            };
            for field in ["username", "password"] {
                let key = format!("auth.{field}");
                leaf(&mut out, auth.get(field), &login, &key, Kind::Whole);
            }
            leaf(
                &mut out,
                auth.get("login_url"),
                &owner,
                "auth.login_url",
                Kind::Url,
            );
        }
    }
    for (i, identity, k) in elements(root, "api_keys") {
        let at = format!("api_keys[{i}]");
        let owner = Owner {
            at: &at,
            identity: &identity,
            dest: None,
        };
        leaf(&mut out, k.get("key"), &owner, "key", Kind::Whole);
    }
    for (table, key) in [
        ("storage", "postgres_url"),
        ("limits", "redis_url"),
        ("telemetry", "otlp_endpoint"),
    ] {
        if let Some(t) = root.get(table).and_then(Item::as_table_like) {
            let owner = Owner {
                at: table,
                identity: table,
                // A URL's own server: see `value`.
                dest: None,
            };
            leaf(&mut out, t.get(key), &owner, key, Kind::Url);
        }
    }
    let telemetry = root.get("telemetry").and_then(Item::as_table_like);
    if let Some(t) = telemetry {
        if let Some(headers) = t.get("headers").and_then(Item::as_table_like) {
            // The headers go to the collector.
            let dest = t.get("otlp_endpoint").map(|e| match e.as_str() {
                Some(url) => url_destination(url).unwrap_or_else(|| canonical(e)),
                None => canonical(e),
            });
            let owner = Owner {
                at: "telemetry",
                identity: "telemetry",
                dest,
            };
            for (name, v) in headers.iter() {
                let key = format!("headers.{name}");
                leaf(&mut out, Some(v), &owner, &key, Kind::Whole);
            }
        }
    }
    out
}

/// The tables of the array `key` of `root` (`[[providers]]` or
/// `providers = [{...}]`): index, identity prefix, table.
fn elements<'a>(root: &'a dyn TableLike, key: &str) -> Vec<(usize, String, &'a dyn TableLike)> {
    let tables: Vec<(usize, &dyn TableLike)> = match root.get(key) {
        Some(Item::ArrayOfTables(a)) => a
            .iter()
            .enumerate()
            .map(|(i, t)| (i, t as &dyn TableLike))
            .collect(),
        Some(Item::Value(Value::Array(a))) => a
            .iter()
            .enumerate()
            .filter_map(|(i, v)| v.as_inline_table().map(|t| (i, t as &dyn TableLike)))
            .collect(),
        _ => Vec::new(),
    };
    tables
        .into_iter()
        .map(|(i, t)| {
            let owner = match t.get("name").and_then(Item::as_str) {
                Some(name) => format!("{key}{{{name}}}"),
                None => format!("{key}[{i}]"),
            };
            (i, owner, t)
        })
        .collect()
}

fn leaf(out: &mut Vec<Secret>, item: Option<&Item>, owner: &Owner, key: &str, kind: Kind) {
    if let Some(v) = item.and_then(Item::as_value) {
        value(out, v, owner, key, kind);
    }
}

fn value(out: &mut Vec<Secret>, v: &Value, owner: &Owner, key: &str, kind: Kind) {
    if let Some(span) = v.span() {
        let dest = match kind {
            Kind::Whole => owner.dest.clone(),
            Kind::Url => v.as_str().and_then(url_destination),
        };
        out.push(Secret {
            path: format!("{}.{key}", owner.at),
            identity: format!("{}.{key}", owner.identity),
            span,
            value: v.as_str().map(str::to_owned),
            kind,
            dest,
        });
    }
}

/// A value as compared, whatever its layout: `["a", "b"]` is
/// `[ "a",\n  "b" ]`.
fn canonical(item: &Item) -> String {
    fn of(v: &Value) -> String {
        match v {
            Value::String(s) => literal(s.value()),
            Value::Array(a) => format!("[{}]", a.iter().map(of).collect::<Vec<_>>().join(",")),
            Value::InlineTable(t) => {
                let mut kv: Vec<String> = t.iter().map(|(k, v)| format!("{k}={}", of(v))).collect();
                kv.sort();
                format!("{{{}}}", kv.join(","))
            }
            other => other.clone().decorated("", "").to_string(),
        }
    }
    match item.as_value() {
        Some(v) => of(v),
        None => item.to_string(),
    }
}

/// The server a URL names, as compared: its scheme, its host and port,
/// and the query parameters that name a server (libpq's `host=`). The
/// host is taken both as URL parsers find it (the authority ends at the
/// first `/`) and as `url_secrets` does (after the last `@` before the
/// query), so a URL that reads differently to the two cannot pass as
/// the old server. `None` for what is no URL.
fn url_destination(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let host_of = |authority: &str| {
        let start = authority.rfind('@').map_or(0, |i| i + 1);
        authority[start..].to_ascii_lowercase()
    };
    let parsed_end = rest.find(['/', '?', '#', '\\']).unwrap_or(rest.len());
    let auth_end = rest.find(['?', '#']).unwrap_or(rest.len());
    let after_at = rest[..auth_end].rfind('@').map_or(0, |i| i + 1);
    let seen_end = rest[after_at..auth_end]
        .find('/')
        .map_or(auth_end, |i| after_at + i);
    let mut dest = format!(
        "{}://{} {}",
        scheme.to_ascii_lowercase(),
        host_of(&rest[..parsed_end]),
        rest[after_at..seen_end].to_ascii_lowercase()
    );
    if let Some(query) = rest[auth_end..].strip_prefix('?') {
        let query = query.split('#').next().unwrap_or_default();
        for pair in query.split('&') {
            let (name, v) = pair.split_once('=').unwrap_or((pair, ""));
            let name = name.to_ascii_lowercase();
            if matches!(name.as_str(), "host" | "hostaddr" | "port" | "service") {
                dest.push_str(&format!(" {name}={v}"));
            }
        }
    }
    Some(dest)
}

/// The comments of a text that parses: from a `#` outside any string to
/// the end of its line.
fn comments(text: &str) -> Vec<Range<usize>> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'#' => {
                let mut end = text[i..].find('\n').map_or(b.len(), |n| i + n);
                if b[end - 1] == b'\r' {
                    end -= 1;
                }
                out.push(i..end);
                i = end;
            }
            q @ (b'"' | b'\'') if b[i..].starts_with(&[q, q, q]) => {
                i = multiline_end(b, i + 3, q);
            }
            q @ (b'"' | b'\'') => i = string_end(b, i + 1, q),
            _ => i += 1,
        }
    }
    out
}

/// Just past the quote that closes a one-line string whose content
/// starts at `i` (or the line's end, when it is not closed).
fn string_end(b: &[u8], mut i: usize, q: u8) -> usize {
    while i < b.len() {
        match b[i] {
            b'\\' if q == b'"' => i += 2,
            b'\n' => return i,
            c if c == q => return i + 1,
            _ => i += 1,
        }
    }
    b.len()
}

/// Just past the quotes that close a multi-line string whose content
/// starts at `i` (up to two more quotes are content: `"""a""""`).
fn multiline_end(b: &[u8], mut i: usize, q: u8) -> usize {
    while i < b.len() {
        if b[i] == b'\\' && q == b'"' {
            i += 2;
        } else if b[i..].starts_with(&[q, q, q]) {
            i += 3;
            for _ in 0..2 {
                if b.get(i) == Some(&q) {
                    i += 1;
                }
            }
            return i;
        } else {
            i += 1;
        }
    }
    b.len()
}

/// A comment with what looks like a secret masked: the values of keys
/// that name secrets (a commented-out `api_key = "..."`), URL passwords,
/// and tokens shaped like credentials.
fn mask_comment(comment: &str) -> String {
    let c = mask_assignments(comment);
    let c = mask_comment_urls(&c);
    mask_tokens(&c)
}

fn is_key_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.')
}

/// Whether the next thing after `i` (spaces skipped) is `=`.
fn equals_next(b: &[u8], i: usize) -> bool {
    b.get(i..)
        .and_then(|r| r.iter().find(|c| !matches!(c, b' ' | b'\t')))
        == Some(&b'=')
}

/// A name in a comment whose values are secret: its last word names a
/// credential (`api_key`, `api_keys`, `X-Auth-Token`, `password`), not
/// only mentions one (`api_key_env`, `key_cooldown`, `max_tokens`).
fn secret_name(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    let last = key.rsplit(['.', '_', '-']).next().unwrap_or_default();
    matches!(
        last,
        "keys" | "pwd" | "passwd" | "authorization" | "cookie" | "auth"
    ) || [
        "key",
        "token",
        "secret",
        "password",
        "credential",
        "credentials",
        "signature",
    ]
    .iter()
    .any(|w| last.ends_with(w))
}

/// In a comment, `name = value` pairs whose name is a secret's (or a
/// connection URL's) get their value masked: each quoted string after
/// such a name (a list of keys too) until the next name, or a bare word
/// right after the `=`.
fn mask_assignments(c: &str) -> String {
    let b = c.as_bytes();
    let mut edits = Vec::new();
    // What the last `name =` seen makes of the values after it.
    let mut secret = false;
    let mut connection = false;
    let mut after_equals = false;
    let mut i = 0;
    while i < b.len() {
        let ch = b[i];
        if ch == b'"' || ch == b'\'' {
            let end = string_end(b, i + 1, ch);
            if end < i + 2 || b[end - 1] != ch {
                // An apostrophe in prose, not a string.
                i += 1;
                continue;
            }
            let inner = &c[i + 1..end - 1];
            if equals_next(b, end) {
                (secret, connection) = names(inner);
            } else if secret || (connection && !inner.contains("://")) {
                edits.push((i + 1..end - 1, MASK.to_owned()));
            }
            after_equals = false;
            i = end;
        } else if is_key_char(ch) {
            let start = i;
            while i < b.len() && is_key_char(b[i]) {
                i += 1;
            }
            if equals_next(b, i) {
                (secret, connection) = names(&c[start..i]);
            } else if after_equals && secret && bare_secret(&c[start..i]) {
                edits.push((start..i, MASK.to_owned()));
            }
            after_equals = false;
        } else {
            if ch == b'=' {
                after_equals = true;
            } else if !matches!(ch, b' ' | b'\t') {
                after_equals = false;
            }
            i += 1;
        }
    }
    splice(c, edits)
}

/// A bare word after a secret's `=` in a comment that may be one: not
/// a number, a boolean or a short word of prose (`key=value pieces`).
fn bare_secret(word: &str) -> bool {
    word.len() >= 6 && word.parse::<f64>().is_err() && !matches!(word, "true" | "false")
}

/// (a secret's name, a connection URL's name): a URL is masked whole when
/// it is a `key=value` connection string, else only its password.
fn names(key: &str) -> (bool, bool) {
    let last = key.rsplit('.').next().unwrap_or(key).to_ascii_lowercase();
    (
        secret_name(key),
        matches!(
            last.as_str(),
            "postgres_url" | "redis_url" | "otlp_endpoint"
        ),
    )
}

/// Every URL in a comment with its password masked.
fn mask_comment_urls(c: &str) -> String {
    let mut edits = Vec::new();
    let mut from = 0;
    while let Some(n) = c[from..].find("://") {
        let at = from + n;
        let start = c[..at]
            .rfind(|ch: char| !(ch.is_ascii_alphanumeric() || matches!(ch, '+' | '.' | '-')))
            .map_or(0, |i| i + 1);
        let end = c[at..]
            .find(|ch: char| ch.is_whitespace() || matches!(ch, '"' | '\'' | ',' | ']' | '}'))
            .map_or(c.len(), |i| at + i);
        if let Some(masked) = mask_url(&c[start..end]) {
            edits.push((start..end, masked));
        }
        from = end.max(at + 3);
    }
    splice(c, edits)
}

/// Tokens shaped like credentials: `sk-…` keys, and runs of 24 or more
/// base64 characters with letters and digits both (hex digests and
/// random keys, not prose).
fn mask_tokens(c: &str) -> String {
    let b = c.as_bytes();
    let is_b64 = |ch: u8| ch.is_ascii_alphanumeric() || matches!(ch, b'+' | b'/' | b'_' | b'-');
    let mut edits = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if !is_b64(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && is_b64(b[i]) {
            i += 1;
        }
        while i < b.len() && i - start >= 24 && b[i] == b'=' {
            i += 1;
        }
        let run = &c[start..i];
        let key_like = (run.starts_with("sk-") || run.starts_with("sk_")) && run.len() >= 10;
        let random = run.len() >= 24
            && run.bytes().any(|ch| ch.is_ascii_digit())
            && run.bytes().any(|ch| ch.is_ascii_alphabetic());
        if key_like || random {
            edits.push((start..i, MASK.to_owned()));
        }
    }
    splice(c, edits)
}

/// A header whose value is a credential by its name.
fn credential_header(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    matches!(
        n.as_str(),
        "authorization" | "proxy-authorization" | "cookie"
    ) || [
        "key",
        "token",
        "secret",
        "auth",
        "password",
        "signature",
        "credential",
    ]
    .iter()
    .any(|w| n.contains(w))
}

/// The secret parts of a URL, each named: the userinfo password and the
/// values of query parameters that carry credentials.
fn url_secrets(url: &str) -> Vec<(String, Range<usize>)> {
    let mut out = Vec::new();
    let Some(scheme_end) = url.find("://") else {
        return out;
    };
    // The userinfo ends at the last `@` before the query, so a password
    // holding a stray `/` is still all of it.
    let auth_start = scheme_end + 3;
    let auth_end = url[auth_start..]
        .find(['?', '#'])
        .map_or(url.len(), |i| auth_start + i);
    if let Some(at) = url[auth_start..auth_end].rfind('@') {
        let userinfo = auth_start..auth_start + at;
        if let Some(colon) = url[userinfo.clone()].find(':') {
            let pass = userinfo.start + colon + 1..userinfo.end;
            if !pass.is_empty() {
                out.push(("password".to_owned(), pass));
            }
        }
    }
    if let Some(q) = url.find('?') {
        let end = url[q..].find('#').map_or(url.len(), |i| q + i);
        let mut pos = q + 1;
        for pair in url[q + 1..end].split('&') {
            if let Some((name, v)) = pair.split_once('=') {
                let n = name.to_ascii_lowercase();
                let secret = ["password", "passwd", "pwd", "token", "secret", "key"]
                    .iter()
                    .any(|w| n.contains(w));
                if secret && !v.is_empty() {
                    let start = pos + name.len() + 1;
                    out.push((format!("?{n}"), start..start + v.len()));
                }
            }
            pos += pair.len() + 1;
        }
    }
    out
}

/// `url` with its secret parts masked; `None` when it has none.
fn mask_url(url: &str) -> Option<String> {
    let parts = url_secrets(url);
    if parts.is_empty() {
        return None;
    }
    let edits = parts
        .into_iter()
        .map(|(_, r)| (r, MASK.to_owned()))
        .collect();
    Some(splice(url, edits))
}

/// `edited` with each masked part given `original`'s part of the same
/// name; `None` when a mask is left with nothing to put there.
fn restore_url(edited: &str, original: &str) -> Option<String> {
    let old: HashMap<String, Range<usize>> = url_secrets(original).into_iter().collect();
    let mut edits = Vec::new();
    for (name, r) in url_secrets(edited) {
        if edited.get(r.clone()) == Some(MASK) {
            let o = old.get(&name)?;
            edits.push((r, original.get(o.clone())?.to_owned()));
        }
    }
    let out = splice(edited, edits);
    (!out.contains(MASK)).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"# The gateway.
[server]
listen = "127.0.0.1:8000" # here

[[providers]]
name = "openai"
type = "openai"
base_url = "https://api.openai.com/v1"
api_key = "sk-openai-SECRET1"   # the team key
headers = { "x-tenant" = "team-a", "X-Api-Key" = "SECRET2" }

[[providers]]
name = "pool"
type = "openai"
base_url = "http://127.0.0.1:9000/v1"
api_keys = ['sk-pool-SECRET3', "sk-pool-SECRET4"]

[[models]]
name = "m"
targets = [{ provider = "openai", model = "gpt" }]

[[api_keys]]
key = "sk-client-SECRET5"
name = "admin"
roles = ["admin"]

[storage]
backend = "postgres"
postgres_url = "postgres://ms:SECRET6@db:5432/ms?sslmode=require"

[limits]
redis_url = "redis://cache:6379/0"

[telemetry]
otlp_endpoint = "http://collector:4318"
headers = { authorization = "Bearer SECRET7" }
"#;

    #[test]
    fn every_secret_is_masked_and_named_by_path() {
        let m = mask(FILE).unwrap();
        assert!(!m.text.contains("SECRET"), "{}", m.text);
        assert_eq!(
            m.paths,
            vec![
                "providers[0].api_key",
                "providers[0].headers.X-Api-Key",
                "providers[1].api_keys[0]",
                "providers[1].api_keys[1]",
                "api_keys[0].key",
                "storage.postgres_url",
                "telemetry.headers.authorization",
            ]
        );
        // Everything else is as it was: comments, spacing, other values.
        assert!(m.text.contains("api_key = \"********\"   # the team key"));
        assert!(m.text.contains("\"x-tenant\" = \"team-a\""));
        assert!(m
            .text
            .contains("postgres://ms:********@db:5432/ms?sslmode=require"));
        assert!(m.text.contains("redis://cache:6379/0"));
        assert!(m
            .text
            .starts_with("# The gateway.\n[server]\nlisten = \"127.0.0.1:8000\" # here"));
    }

    #[test]
    fn the_masked_text_restores_to_the_file_byte_for_byte() {
        let m = mask(FILE).unwrap();
        assert_eq!(restore(&m.text, FILE).unwrap(), FILE);
    }

    #[test]
    fn an_edit_beside_masks_keeps_the_secrets() {
        let m = mask(FILE).unwrap();
        let edited = m
            .text
            .replace("name = \"m\"", "name = \"m2\"")
            .replace("5432/ms?sslmode=require", "5432/other?sslmode=disable");
        let r = restore(&edited, FILE).unwrap();
        assert!(r.contains("api_key = \"sk-openai-SECRET1\"   # the team key"));
        assert!(r.contains("'sk-pool-SECRET3', \"sk-pool-SECRET4\""));
        assert!(r.contains("postgres://ms:SECRET6@db:5432/other?sslmode=disable"));
        assert!(r.contains("name = \"m2\""));
    }

    const MOVED: &str = "this secret was masked; enter its value again to send it to a new address";

    fn moved_paths(edited: &str, current: &str) -> Vec<String> {
        restore(edited, current)
            .unwrap_err()
            .into_iter()
            .inspect(|i| assert_eq!(i.message, MOVED))
            .map(|i| i.path)
            .collect()
    }

    #[test]
    fn a_providers_secrets_are_not_restored_for_a_new_base_url() {
        let m = mask(FILE).unwrap();
        let edited = m
            .text
            .replace("https://api.openai.com/v1", "https://evil.example/v1");
        assert_eq!(
            moved_paths(&edited, FILE),
            vec!["providers[0].api_key", "providers[0].headers.X-Api-Key"]
        );
        // Another replica is another address too.
        let edited = m.text.replace(
            "\"http://127.0.0.1:9000/v1\"",
            "[\"http://127.0.0.1:9000/v1\", \"http://evil:9000/v1\"]",
        );
        assert_eq!(
            moved_paths(&edited, FILE),
            vec!["providers[1].api_keys[0]", "providers[1].api_keys[1]"]
        );
        // Renamed and moved: matched by its place, refused all the same.
        let edited = m
            .text
            .replace("name = \"openai\"", "name = \"o2\"")
            .replace("https://api.openai.com/v1", "https://evil.example/v1");
        assert_eq!(moved_paths(&edited, FILE).len(), 2);
        // Typed again, the key goes there.
        let typed = edited
            .replacen("api_key = \"********\"", "api_key = \"sk-typed\"", 1)
            .replace("\"X-Api-Key\" = \"********\"", "\"X-Api-Key\" = \"typed\"");
        let r = restore(&typed, FILE).unwrap();
        assert!(r.contains("sk-typed") && !r.contains("SECRET1"), "{r}");
        // The same URLs in another layout are no move.
        let text = "[[providers]]\nname = \"a\"\nbase_url = [\"http://a:1\", \"http://b:1\"]\napi_key = \"K\"\n";
        let edited = "[[providers]]\nname = \"a\"\nbase_url = [\n  \"http://a:1\",\n  \"http://b:1\", # two\n]\napi_key = \"********\"\n";
        assert!(restore(edited, text).unwrap().contains("api_key = \"K\""));
    }

    #[test]
    fn a_url_password_is_not_restored_for_a_new_server() {
        let m = mask(FILE).unwrap();
        for (from, to) in [
            ("@db:5432", "@db2:5432"),
            ("@db:5432", "@db:5433"),
            ("postgres://", "postgresql://"),
            ("sslmode=require", "sslmode=require&host=evil"),
            // Read as host `evil` by a URL parser, `db` by the masker.
            ("postgres://ms:", "postgres://evil/ms:"),
        ] {
            let edited = m.text.replace(from, to);
            assert_ne!(edited, m.text);
            assert_eq!(
                moved_paths(&edited, FILE),
                vec!["storage.postgres_url"],
                "{to}"
            );
        }
        // Masked whole, it is restored whole: nothing of it changed.
        let text = "[storage]\npostgres_url = \"host=db password=SECRET\"\n";
        let edited = "[storage]\npostgres_url = \"host=evil password=********\"\n";
        assert_ne!(restore(edited, text).unwrap_err()[0].message, MOVED);
    }

    #[test]
    fn the_collectors_headers_are_not_restored_for_a_new_endpoint() {
        let m = mask(FILE).unwrap();
        let edited = m.text.replace("http://collector:4318", "https://evil:4318");
        assert_eq!(
            moved_paths(&edited, FILE),
            vec!["telemetry.headers.authorization"]
        );
        let edited = m
            .text
            .replace("http://collector:4318", "http://collector:4318/otlp");
        assert!(restore(&edited, FILE).is_ok(), "a path is no new server");
    }

    #[test]
    fn secrets_in_comments_are_masked_one_way() {
        let text = r##"# api_key = "sk-old-SECRET1"
[[providers]]
name = "a"
base_url = "http://h:1" # was "https://u:SECRET2@old:443"
# api_keys = ["SECRET3", 'SECRET4']
#api_key=SECRET5
# "X-Api-Key" = "SECRET6", key_cooldown = "60s"
# postgres_url = "host=db password=SECRET7"
# an old token: aB3dE5gH7jK9mN1pQ3sT5vX7zB
# a digest: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
# sk-abcdefSECRET8 was the old key
# A second account: its key cools down on 429; see "round-robin-least-inflight"
# api_key_env = "OPENAI_KEY", max_tokens = 100, it's fine
# "text" (key=value pieces), metrics_require_key = false, api_key = 12345678
api_key = "a # not a comment SECRET9" # sk-inlineSECRET10
notes = """
# not a comment either: sk-multilineSECRET11
"""
"##;
        let m = mask(text).unwrap();
        for n in 1..=8 {
            assert!(
                !m.text.contains(&format!("SECRET{n}\"")),
                "SECRET{n}: {}",
                m.text
            );
        }
        assert!(
            !m.text.contains("sk-old") && !m.text.contains("SECRET5"),
            "{}",
            m.text
        );
        assert!(
            !m.text.contains("aB3dE5gH7") && !m.text.contains("9f86d08"),
            "{}",
            m.text
        );
        assert!(!m.text.contains("SECRET10"), "{}", m.text);
        assert!(m.text.contains("# api_key = \"********\"\n"), "{}", m.text);
        assert!(
            m.text.contains("# was \"https://u:********@old:443\""),
            "{}",
            m.text
        );
        assert!(
            m.text.contains("# api_keys = [\"********\", '********']"),
            "{}",
            m.text
        );
        assert!(m.text.contains("#api_key=********\n"), "{}", m.text);
        assert!(m.text.contains("key_cooldown = \"60s\""), "{}", m.text);
        assert!(m.text.contains("postgres_url = \"********\""), "{}", m.text);
        assert!(m.text.contains("# ******** was the old key"), "{}", m.text);
        // Prose, names of variables, counts: kept.
        assert!(m.text.contains(
            "# A second account: its key cools down on 429; see \"round-robin-least-inflight\""
        ));
        assert!(m
            .text
            .contains("# api_key_env = \"OPENAI_KEY\", max_tokens = 100, it's fine"));
        assert!(m.text.contains(
            "# \"text\" (key=value pieces), metrics_require_key = false, api_key = 12345678"
        ));
        // Inside strings a `#` starts no comment (the value is masked as a value).
        assert!(m
            .text
            .contains("# not a comment either: sk-multilineSECRET11"));
        // Saving the masked text keeps the masked comments: they are not restored.
        let saved = restore(&m.text, text).unwrap();
        assert!(saved.contains("# api_key = \"********\"\n"));
        assert!(saved.contains("api_key = \"a # not a comment SECRET9\""));
        assert_eq!(
            comments("a = '#' # c\r\nb = \"\"\"x\"\"\"\"\" # d"),
            vec![8..11, 27..30]
        );
    }

    #[test]
    fn secrets_follow_their_provider_when_providers_are_reordered_or_renamed() {
        let text = "[[providers]]\nname = \"a\"\napi_key = \"KEY-A\"\n\n[[providers]]\nname = \"b\"\napi_key = \"KEY-B\"\n";
        let m = mask(text).unwrap();
        let swapped = "[[providers]]\nname = \"b\"\napi_key = \"********\"\n\n[[providers]]\nname = \"a\"\napi_key = \"********\"\n";
        let r = restore(swapped, text).unwrap();
        assert!(r.find("KEY-B") < r.find("KEY-A"), "{r}");
        let renamed = m.text.replace("name = \"a\"", "name = \"a2\"");
        let r = restore(&renamed, text).unwrap();
        assert!(r.contains("name = \"a2\"\napi_key = \"KEY-A\""), "{r}");
    }

    #[test]
    fn a_mask_with_nothing_to_restore_is_an_issue_at_its_path() {
        let text = "[[providers]]\nname = \"a\"\napi_key_env = \"X\"\n";
        let edited = "[[providers]]\nname = \"a\"\napi_key = \"********\"\n";
        let e = restore(edited, text).unwrap_err();
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].path, "providers[0].api_key");
        // A new secret typed over the mask is kept as typed.
        let typed = "[[providers]]\nname = \"a\"\napi_key = \"sk-new\"\n";
        assert_eq!(restore(typed, text).unwrap(), typed);
    }

    #[test]
    fn inline_arrays_of_tables_are_found_too() {
        let text = "api_keys = [{ key = \"sk-SECRET\", name = \"k\" }]\n";
        let m = mask(text).unwrap();
        assert_eq!(m.paths, vec!["api_keys[0].key"]);
        assert_eq!(
            m.text,
            "api_keys = [{ key = \"********\", name = \"k\" }]\n"
        );
        assert_eq!(restore(&m.text, text).unwrap(), text);
    }

    #[test]
    fn urls_mask_only_their_secrets() {
        assert_eq!(
            mask_url("redis://:hunter2@cache:6379/0").as_deref(),
            Some("redis://:********@cache:6379/0")
        );
        assert_eq!(
            mask_url("postgres://u@db/x?sslmode=require&password=p%40ss").as_deref(),
            Some("postgres://u@db/x?sslmode=require&password=********")
        );
        assert_eq!(mask_url("postgres://u@db/x"), None);
        assert_eq!(
            mask_url("postgres://u:pa/ss@db/x").as_deref(),
            Some("postgres://u:********@db/x")
        );
        assert_eq!(mask_url("http://collector:4318"), None);
        assert_eq!(
            restore_url(
                "postgres://u:********@db2/x?password=********",
                "postgres://u:pw@db/x?password=pq"
            )
            .as_deref(),
            Some("postgres://u:pw@db2/x?password=pq")
        );
        assert_eq!(
            restore_url("postgres://u:********@db/x", "postgres://u@db/x"),
            None
        );
    }

    #[test]
    fn a_secret_of_the_wrong_type_is_masked_too() {
        let text = "[[providers]]\nname = \"a\"\napi_key = 31415926535\napi_keys = \"SECRET2\"\nheaders = { authorization = [\"SECRET\"] }\n";
        let m = mask(text).unwrap();
        assert_eq!(
            m.text,
            "[[providers]]\nname = \"a\"\napi_key = \"********\"\napi_keys = \"********\"\nheaders = { authorization = \"********\" }\n"
        );
        assert_eq!(restore(&m.text, text).unwrap(), text);
    }

    #[test]
    fn a_connection_string_that_is_no_url_is_masked_whole() {
        let text = "[storage]\npostgres_url = \"host=db password=SECRET\"\n";
        let m = mask(text).unwrap();
        assert_eq!(m.text, "[storage]\npostgres_url = \"********\"\n");
        assert_eq!(m.paths, vec!["storage.postgres_url"]);
        assert_eq!(restore(&m.text, text).unwrap(), text);
    }

    #[test]
    fn only_credential_headers_of_providers_are_secrets() {
        for h in [
            "Authorization",
            "x-api-key",
            "X-Auth-Token",
            "api-secret",
            "Cookie",
        ] {
            assert!(credential_header(h), "{h}");
        }
        for h in ["x-tenant", "user-agent", "anthropic-beta"] {
            assert!(!credential_header(h), "{h}");
        }
    }

    #[test]
    fn a_file_that_does_not_parse_is_not_shown() {
        let e = mask("[server\napi_key = \"sk-SECRET\"").unwrap_err();
        assert!(e.contains("line 1") && !e.contains("SECRET"), "{e}");
    }

    #[test]
    fn a_providers_auth_secrets_are_masked_and_kept_to_their_login() {
        let text = "[[providers]]\nname = \"corp\"\ntype = \"openai\"\nbase_url = \"https://llm.corp/v1\"\n\
                    [providers.auth]\nlogin_url = \"https://svc:URLPASS@sso.corp/login\"\nusername = \"USERNAME1\"\n\
                    password = \"PASSWORD1\"\n\n\
                    [[providers]]\nname = \"fixed\"\ntype = \"openai\"\nbase_url = \"https://b/v1\"\n\
                    auth = { token = \"TOKEN1\", header = \"X-Token\" }\n";
        let m = mask(text).unwrap();
        for secret in ["URLPASS", "USERNAME1", "PASSWORD1", "TOKEN1"] {
            assert!(!m.text.contains(secret), "{secret} in {}", m.text);
        }
        assert!(
            m.text.contains("sso.corp/login") && m.text.contains("X-Token"),
            "{}",
            m.text
        );
        // Saved as read: every secret comes back.
        let r = restore(&m.text, text).unwrap();
        assert_eq!(r, text);
        // Another login host: the user and password must be typed again.
        let moved = m.text.replace("sso.corp/login", "evil.example/login");
        let paths = moved_paths(&moved, text);
        assert!(
            paths.contains(&"providers[0].auth.username".to_owned()),
            "{paths:?}"
        );
        assert!(
            paths.contains(&"providers[0].auth.password".to_owned()),
            "{paths:?}"
        );
    }
}
