//! A provider's `auth`: how its keys are sent (`header`, `format`), a
//! fixed `token`, or a login that yields one (`login_url`, …). Turned into
//! the credential headers built once per key, or a `Login` the upstream
//! client logs in with.

use super::file::{FileProvider, FileProviderAuth};
use super::secret::Secret;
use super::snapshot::Login;
use super::validate::{header_value_problem, parse_base_url, Errors};
use filters::wire::http::host_header;
use filters::{dialect, Dialect};
use http::{HeaderName, HeaderValue};
use std::sync::Arc;
use std::time::Duration;

/// What a provider authenticates with.
pub(super) struct Resolved {
    /// One set of headers per key (one keyless set without keys).
    pub credentials: Vec<Vec<(HeaderName, HeaderValue)>>,
    /// `auth.token`/`token_env`: used as the provider's one key.
    pub token: Option<Secret>,
    pub login: Option<Arc<Login>>,
}

const DEFAULT_TTL: Duration = Duration::from_secs(3600);
const LONGEST_TTL: Duration = Duration::from_secs(30 * 24 * 3600);

/// `keys`: the provider's own keys (`api_key[s][_env]`). `enabled`: a
/// provider out of service is not held to its environment variables.
pub(super) fn resolve(
    at: &str,
    p: &FileProvider,
    dialect: Dialect,
    keys: &[Secret],
    enabled: bool,
    errs: &mut Errors,
) -> Resolved {
    let Some(a) = &p.auth else {
        return Resolved {
            credentials: default_credentials(dialect, keys),
            token: None,
            login: None,
        };
    };
    let at = format!("{at}.auth");
    let header = match a.header.as_deref().map(HeaderName::try_from) {
        None => None,
        Some(Ok(h)) if is_framing(&h) => {
            errs.push(format!(
                "{at}.header: framing headers are the gateway's to set"
            ));
            None
        }
        Some(Ok(h)) => Some(h),
        Some(Err(_)) => {
            errs.push(format!("{at}.header: not a valid HTTP header name"));
            None
        }
    };
    let format = a.format.clone();
    if let Some(f) = &format {
        if !(f.contains("{key}") || f.contains("{token}")) {
            errs.push(format!(
                "{at}.format: must hold {{key}} (or {{token}}), where the credential goes"
            ));
        }
    }
    let token = fixed_token(&at, a, enabled, errs);
    let login = a
        .login_url
        .as_deref()
        .and_then(|url| login(&at, url, a, header.clone(), format.clone(), enabled, errs));
    let stray_login = a.login_url.is_none()
        && (a.username.is_some()
            || a.username_env.is_some()
            || a.password.is_some()
            || a.password_env.is_some()
            || a.token_path.is_some()
            || a.ttl.is_some());
    if stray_login {
        errs.push(format!(
            "{at}: username, password, token_path and ttl belong to a login: set login_url"
        ));
    }
    let own_keys = p.api_key.is_some()
        || p.api_key_env.is_some()
        || !p.api_keys.is_empty()
        || !p.api_keys_env.is_empty();
    if (token.is_some() || a.login_url.is_some()) && own_keys {
        errs.push(format!(
            "{at}: a token or a login replaces api_key: set one or the other"
        ));
    }
    if token.is_some() && a.login_url.is_some() {
        errs.push(format!("{at}: set token or login_url, not both"));
    }
    let credentials = match (&header, &format) {
        // A login's header is sent with each call's token.
        _ if login.is_some() => default_credentials(dialect, &[]),
        (None, None) => match &token {
            Some(t) => vec![formatted(
                &http::header::AUTHORIZATION,
                "Bearer {key}",
                t,
                dialect,
            )],
            None => default_credentials(dialect, keys),
        },
        (h, f) => {
            let h = h.clone().unwrap_or(http::header::AUTHORIZATION);
            let f = f.as_deref().unwrap_or("Bearer {key}");
            let all: Vec<&Secret> = token.iter().chain(keys).collect();
            if all.is_empty() {
                errs.push(format!(
                    "{at}: header and format need a key (api_key, api_key_env or auth.token)"
                ));
            }
            all.into_iter()
                .map(|k| formatted(&h, f, k, dialect))
                .collect()
        }
    };
    Resolved {
        credentials,
        token,
        login,
    }
}

/// The dialect's own way: `Authorization: Bearer`, `x-api-key`,
/// `x-goog-api-key`.
fn default_credentials(dialect: Dialect, keys: &[Secret]) -> Vec<Vec<(HeaderName, HeaderValue)>> {
    if keys.is_empty() {
        vec![dialect::credential_headers(dialect, None)]
    } else {
        keys.iter()
            .map(|k| dialect::credential_headers(dialect, Some(k.expose())))
            .collect()
    }
}

/// The credential in `header`, as `format` says, with the dialect's other
/// headers (`anthropic-version`) kept.
fn formatted(
    header: &HeaderName,
    format: &str,
    key: &Secret,
    dialect: Dialect,
) -> Vec<(HeaderName, HeaderValue)> {
    let mut set: Vec<_> = dialect::credential_headers(dialect, None);
    if let Ok(mut v) = HeaderValue::from_str(&fill(format, key.expose())) {
        v.set_sensitive(true);
        set.retain(|(n, _)| n != header);
        set.push((header.clone(), v));
    }
    set
}

/// `format` with the credential in place of `{key}` and `{token}`.
pub fn fill(format: &str, credential: &str) -> String {
    format
        .replace("{key}", credential)
        .replace("{token}", credential)
}

fn is_framing(h: &HeaderName) -> bool {
    *h == http::header::CONTENT_LENGTH
        || *h == http::header::TRANSFER_ENCODING
        || *h == http::header::CONNECTION
        || *h == http::header::HOST
}

/// An inline value or an environment variable's, checked as a header
/// value would be (never echoed).
fn secret_of(
    at: &str,
    (name, inline): (&str, Option<&String>),
    env: Option<&String>,
    enabled: bool,
    errs: &mut Errors,
) -> Option<Secret> {
    match (inline, env) {
        (Some(_), Some(_)) => {
            errs.push(format!("{at}.{name}: set {name} or {name}_env, not both"));
            None
        }
        (Some(v), None) => Some(Secret::new(v.clone())),
        (None, Some(var)) => match std::env::var(var) {
            Ok(v) if !v.is_empty() => Some(Secret::new(v)),
            // A provider out of service may lose its secret first.
            _ if !enabled => None,
            _ => {
                errs.push(format!(
                    "{at}.{name}_env: environment variable {var} is not set"
                ));
                None
            }
        },
        (None, None) => None,
    }
}

fn fixed_token(at: &str, a: &FileProviderAuth, enabled: bool, errs: &mut Errors) -> Option<Secret> {
    let token = secret_of(
        at,
        ("token", a.token.as_ref()),
        a.token_env.as_ref(),
        enabled,
        errs,
    )?;
    match header_value_problem(token.expose()) {
        Some(problem) => {
            errs.push(format!("{at}.token: {problem}"));
            None
        }
        None => Some(token),
    }
}

fn login(
    at: &str,
    url: &str,
    a: &FileProviderAuth,
    header: Option<HeaderName>,
    format: Option<String>,
    enabled: bool,
    errs: &mut Errors,
) -> Option<Arc<Login>> {
    let parsed = parse_login_url(url);
    if parsed.is_none() {
        errs.push(format!(
            "{at}.login_url: not an http(s) URL like https://sso.example.com/api/login"
        ));
    }
    let username = secret_of(
        at,
        ("username", a.username.as_ref()),
        a.username_env.as_ref(),
        enabled,
        errs,
    );
    let password = secret_of(
        at,
        ("password", a.password.as_ref()),
        a.password_env.as_ref(),
        enabled,
        errs,
    );
    if enabled && (a.username.is_none() && a.username_env.is_none()) {
        errs.push(format!("{at}.username: required with login_url"));
    }
    if enabled && (a.password.is_none() && a.password_env.is_none()) {
        errs.push(format!(
            "{at}.password_env: required with login_url (or password)"
        ));
    }
    let mut path_of = |name: &str, v: &str| -> Option<Vec<String>> {
        let parts: Vec<String> = v.split('.').map(str::to_owned).collect();
        if parts.iter().any(String::is_empty) {
            errs.push(format!(
                "{at}.{name}: '{v}' is not a dotted path like data.token"
            ));
            return None;
        }
        Some(parts)
    };
    let token_path = path_of("token_path", a.token_path.as_deref().unwrap_or("token"))?;
    let expires_in_path = match a.expires_in_path.as_deref() {
        Some(v) => Some(path_of("expires_in_path", v)?),
        None => None,
    };
    let ttl = a.ttl.unwrap_or(DEFAULT_TTL);
    if ttl < Duration::from_secs(10) || ttl > LONGEST_TTL {
        errs.push(format!("{at}.ttl: 10s to 30 days"));
    }
    let refresh_before = a
        .refresh_before
        .unwrap_or_else(|| Duration::from_secs(60).min(ttl / 2));
    if refresh_before >= ttl {
        errs.push(format!("{at}.refresh_before: must be shorter than ttl"));
    }
    let field = |v: &Option<String>, d: &str| v.clone().unwrap_or_else(|| d.to_owned());
    let (tls, host, port, path) = parsed?;
    Some(Arc::new(Login {
        host_header: host_header(&host, port, tls),
        tls,
        host,
        port,
        path,
        username: username.unwrap_or_else(|| Secret::new(String::new())),
        password: password.unwrap_or_else(|| Secret::new(String::new())),
        username_field: field(&a.username_field, "username"),
        password_field: field(&a.password_field, "password"),
        token_path,
        expires_in_path,
        ttl,
        refresh_before,
        header: header.unwrap_or(http::header::AUTHORIZATION),
        format: format.unwrap_or_else(|| "Bearer {token}".to_owned()),
    }))
}

/// `login_url` → (tls, host, port, path with its query); unlike a
/// `base_url` the path is the endpoint itself.
fn parse_login_url(url: &str) -> Option<(bool, String, u16, String)> {
    let (tls, rest) = if let Some(r) = url.strip_prefix("https://") {
        (true, r)
    } else {
        (false, url.strip_prefix("http://")?)
    };
    let split = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(split);
    let (_, host, port, _) = parse_base_url(&format!(
        "{}://{authority}",
        if tls { "https" } else { "http" }
    ))?;
    let path = match path {
        "" => "/".to_owned(),
        p if p.starts_with('?') => format!("/{p}"),
        p => p.to_owned(),
    };
    if path.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return None;
    }
    Some((tls, host, port, path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_login_url_keeps_its_path_and_query() {
        assert_eq!(
            parse_login_url("https://sso.corp/api/login?app=llm"),
            Some((true, "sso.corp".into(), 443, "/api/login?app=llm".into()))
        );
        assert_eq!(
            parse_login_url("http://127.0.0.1:9000"),
            Some((false, "127.0.0.1".into(), 9000, "/".into()))
        );
        assert_eq!(parse_login_url("ftp://x/login"), None);
        assert_eq!(parse_login_url("https://x/a b"), None);
    }

    #[test]
    fn the_credential_goes_where_the_format_says() {
        assert_eq!(fill("Token {key}", "abc"), "Token abc");
        assert_eq!(fill("{token}", "abc"), "abc");
        let set = formatted(
            &HeaderName::from_static("x-token"),
            "Token {key}",
            &Secret::new("k1".into()),
            Dialect::Anthropic,
        );
        let names: Vec<&str> = set.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["anthropic-version", "x-token"]);
        assert!(set[1].1.is_sensitive());
        assert_eq!(set[1].1, "Token k1");
    }
}
