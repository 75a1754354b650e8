//! The config file's secrets, found by where they sit in the TOML (not by
//! what they look like): masked for reading, and put back from the file
//! when an edited text still holds the mask, so saving the masked text
//! loses nothing. Both work on the text itself, spliced at the secrets'
//! spans, so every other byte (comments, layout) stays as it was.

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
    Ok(Masked {
        text: splice(text, edits),
        paths,
    })
}

/// `edited` with each secret that still holds the mask given the value it
/// has in `current` (the file): matched by the owner's name first, else
/// at the same path when that owner was renamed. A mask with nothing to
/// restore is an issue at its path. A text that does not parse is
/// returned as is: validation names its syntax error.
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
    for (i, owner, p) in elements(root, "providers") {
        let at = format!("providers[{i}]");
        leaf(
            &mut out,
            p.get("api_key"),
            &at,
            &owner,
            "api_key",
            Kind::Whole,
        );
        match p.get("api_keys") {
            Some(Item::Value(Value::Array(keys))) => {
                for (j, v) in keys.iter().enumerate() {
                    let key = format!("api_keys[{j}]");
                    value(&mut out, v, &at, &owner, &key, Kind::Whole);
                }
            }
            // Mistyped (one string, not a list): hidden all the same.
            other => leaf(&mut out, other, &at, &owner, "api_keys", Kind::Whole),
        }
        if let Some(headers) = p.get("headers").and_then(Item::as_table_like) {
            for (name, v) in headers.iter() {
                if credential_header(name) {
                    let key = format!("headers.{name}");
                    leaf(&mut out, Some(v), &at, &owner, &key, Kind::Whole);
                }
            }
        }
    }
    for (i, owner, k) in elements(root, "api_keys") {
        let at = format!("api_keys[{i}]");
        leaf(&mut out, k.get("key"), &at, &owner, "key", Kind::Whole);
    }
    for (table, key) in [
        ("storage", "postgres_url"),
        ("limits", "redis_url"),
        ("telemetry", "otlp_endpoint"),
    ] {
        if let Some(t) = root.get(table).and_then(Item::as_table_like) {
            leaf(&mut out, t.get(key), table, table, key, Kind::Url);
        }
    }
    let telemetry_headers = root
        .get("telemetry")
        .and_then(Item::as_table_like)
        .and_then(|t| t.get("headers"))
        .and_then(Item::as_table_like);
    if let Some(headers) = telemetry_headers {
        for (name, v) in headers.iter() {
            let key = format!("headers.{name}");
            leaf(
                &mut out,
                Some(v),
                "telemetry",
                "telemetry",
                &key,
                Kind::Whole,
            );
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

fn leaf(out: &mut Vec<Secret>, item: Option<&Item>, at: &str, owner: &str, key: &str, kind: Kind) {
    if let Some(v) = item.and_then(Item::as_value) {
        value(out, v, at, owner, key, kind);
    }
}

fn value(out: &mut Vec<Secret>, v: &Value, at: &str, owner: &str, key: &str, kind: Kind) {
    if let Some(span) = v.span() {
        out.push(Secret {
            path: format!("{at}.{key}"),
            identity: format!("{owner}.{key}"),
            span,
            value: v.as_str().map(str::to_owned),
            kind,
        });
    }
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
            .replace("db:5432", "db2:5432");
        let r = restore(&edited, FILE).unwrap();
        assert!(r.contains("api_key = \"sk-openai-SECRET1\"   # the team key"));
        assert!(r.contains("'sk-pool-SECRET3', \"sk-pool-SECRET4\""));
        assert!(r.contains("postgres://ms:SECRET6@db2:5432/ms?sslmode=require"));
        assert!(r.contains("name = \"m2\""));
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
}
