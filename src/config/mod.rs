//! Configuration in two layers: a serde mirror of the TOML file (`file`,
//! unknown keys are errors) validated section by section (`validate`) into
//! an immutable runtime `Snapshot`. A file that fails validation never
//! replaces a good snapshot; every message names the TOML path at fault.
//! `reload` watches the file and publishes each valid change.

mod file;
pub mod preset;
pub(crate) mod provider_auth;
pub mod reload;
mod routing;
pub mod secret;
mod snapshot;
mod toml_error;
mod validate;
pub(crate) use validate::show_duration;

use file::FileConfig;
pub use snapshot::*;
use std::path::Path;

/// Every problem found, each with the TOML path it concerns.
#[derive(Debug)]
pub struct ConfigErrors(pub Vec<String>);

impl std::fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for e in &self.0 {
            writeln!(f, "  {e}")?;
        }
        Ok(())
    }
}

/// One problem of a config, split for an API: the TOML path it concerns
/// (empty when none could be named) and what is wrong there.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Issue {
    pub path: String,
    pub message: String,
    /// Where a TOML syntax or type error was found.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
}

impl Issue {
    /// Splits one of this module's messages: `[line N: ]<path>: <message>`,
    /// a path being the first word when it holds no spaces (error messages
    /// never start with a dotted path of their own).
    pub fn of(text: &str) -> Self {
        let (line, rest) = match text
            .strip_prefix("line ")
            .and_then(|r| r.split_once(": "))
            .and_then(|(n, r)| Some((n.parse::<usize>().ok()?, r)))
        {
            Some((n, r)) => (Some(n), r),
            None => (None, text),
        };
        match rest.split_once(": ") {
            Some((path, message)) if is_toml_path(path) => Self {
                path: path.to_owned(),
                message: message.to_owned(),
                line,
            },
            _ => Self {
                path: String::new(),
                message: rest.to_owned(),
                line,
            },
        }
    }
}

/// `providers[1].base_url`, `server.listen`, `storage.backend or
/// postgres_url` is not (it has spaces).
fn is_toml_path(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '[' | ']'))
}

impl ConfigErrors {
    pub fn issues(&self) -> Vec<Issue> {
        self.0.iter().map(|e| Issue::of(e)).collect()
    }
}

pub fn load(path: &Path) -> Result<Snapshot, ConfigErrors> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigErrors(vec![format!("{}: cannot read: {e}", path.display())]))?;
    load_text(&text, path)
}

/// `text` as if read from `path` (relative paths in it are resolved
/// against the file's directory): the validation the gateway runs at
/// startup, for a text not yet written there.
pub fn load_text(text: &str, path: &Path) -> Result<Snapshot, ConfigErrors> {
    let mut snap = parse(text)?;
    // Relative paths (the store, the conversation and access logs, the
    // certificates) resolve against the config file's directory.
    let dir = path.parent().unwrap_or(Path::new("."));
    let process = &mut snap.process;
    process.sqlite_path = dir.join(&process.sqlite_path);
    process.conversation_files.dir = dir.join(&process.conversation_files.dir);
    if let Some(file) = process.access_file.as_mut() {
        *file = dir.join(&*file);
    }
    // The certificates must load now: `check` and a reload report a
    // missing or mismatched file as the starting gateway would.
    if let Some(tls) = &mut process.tls {
        for files in std::iter::once(&mut tls.default).chain(&mut tls.sni) {
            files.cert = dir.join(&files.cert);
            files.key = dir.join(&files.key);
        }
        crate::tls::Certificates::load(tls).map_err(ConfigErrors)?;
    }
    Ok(snap)
}

/// The names of the config file's `[[api_keys]]`, reading nothing else.
pub fn key_names_of(path: &Path) -> Result<Vec<String>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
    let doc: toml::Table = toml::from_str(&text)
        .map_err(|e| format!("{}: {}", path.display(), describe_toml_error(&text, &e)))?;
    Ok(doc
        .get("api_keys")
        .and_then(toml::Value::as_array)
        .map(|keys| {
            keys.iter()
                .filter_map(|k| k.get("name").and_then(toml::Value::as_str))
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default())
}

/// The key store's path from a config file, reading nothing else (the
/// `keys` CLI must work without the providers' secrets in its environment).
pub fn sqlite_path_of(path: &Path) -> Result<std::path::PathBuf, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
    let doc: toml::Table = toml::from_str(&text)
        .map_err(|e| format!("{}: {}", path.display(), describe_toml_error(&text, &e)))?;
    let given = match doc.get("storage").and_then(|s| s.get("sqlite_path")) {
        None => "modelswitch.db",
        Some(toml::Value::String(s)) if !s.is_empty() => s.as_str(),
        Some(_) => return Err("storage.sqlite_path: a non-empty string is required".into()),
    };
    let p = Path::new(given);
    Ok(if p.is_relative() {
        path.parent().unwrap_or(Path::new(".")).join(p)
    } else {
        p.to_owned()
    })
}

pub fn parse(text: &str) -> Result<Snapshot, ConfigErrors> {
    let file: FileConfig =
        toml::from_str(text).map_err(|e| ConfigErrors(vec![describe_toml_error(text, &e)]))?;
    validate::validate(file)
}

/// `line N: <dotted path>: <message>`, never the text of the value at
/// fault (it may be a secret): the path comes from where the error's span
/// falls in the document, and the message has its quoted values taken out.
fn describe_toml_error(text: &str, e: &toml::de::Error) -> String {
    let Some(span) = e.span() else {
        return toml_error::redact(e.message(), None);
    };
    let pos = span.start.min(text.len());
    let line = text.get(..pos).map_or(1, |t| t.matches('\n').count() + 1);
    let (path, raw) = match toml_error::locate(text, pos) {
        Some(place) => {
            let raw = place.value.and_then(|v| text.get(v));
            (place.path, raw)
        }
        None => toml_error::guess(text, pos),
    };
    let msg = toml_error::redact(e.message(), raw);
    if path.is_empty() {
        format!("line {line}: {msg}")
    } else {
        format!("line {line}: {path}: {msg}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const GOOD: &str = r#"
        [server]
        listen = ["127.0.0.1:8000", "[::1]:8001"]
        first_event_timeout = "30s"

        [[providers]]
        name = "openai"
        type = "openai"
        base_url = "https://api.openai.com/v1/"
        api_key = "sk-upstream"

        [[providers]]
        name = "claude"
        type = "anthropic"
        base_url = "http://127.0.0.1:9000"
        idle_timeout = "2m"

        [[models]]
        name = "glm-5"
        targets = [{ provider = "openai", model = "gpt-x" }, { provider = "claude", model = "claude-y" }]

        [[api_keys]]
        key = "sk-gateway-admin"
        name = "admin"
        roles = ["admin"]
        allowed_models = ["glm-5"]
    "#;

    #[test]
    fn valid_file_becomes_a_snapshot() {
        let s = parse(GOOD).unwrap();
        assert_eq!(s.process.listen.len(), 2);
        let route = &s.routes["glm-5"];
        assert_eq!(
            route.targets[0].generate_path(false),
            "/v1/chat/completions"
        );
        assert_eq!(route.targets[0].provider.host_header, "api.openai.com");
        assert!(
            route.targets[0]
                .provider
                .encode
                .openai
                .max_completion_tokens_field
        );
        assert_eq!(route.targets[1].generate_path(true), "/v1/messages");
        assert_eq!(route.targets[1].provider.host_header, "127.0.0.1:9000");
        let (tls, host, port, prefix) = validate::parse_base_url("http://[::1]:8001/v1/").unwrap();
        assert_eq!(
            (tls, host.as_str(), port, prefix.as_str()),
            (false, "::1", 8001, "/v1")
        );
        assert_eq!(
            route.targets[1].provider.timeouts.idle,
            Duration::from_secs(120)
        );
        assert_eq!(
            route.targets[1].provider.timeouts.first_event,
            Duration::from_secs(30)
        );
        assert!(s.keys["sk-gateway-admin"].allows_model("glm-5"));
        assert!(format!("{:?}", route.targets[0].provider.keys).contains("***"));
        assert!(!format!("{:?}", route.targets[0].provider).contains("sk-upstream"));
    }

    #[test]
    fn framing_headers_cannot_be_configured() {
        let bad = GOOD.replace(
            "idle_timeout = \"2m\"",
            "idle_timeout = \"2m\"\nheaders = { \"Content-Length\" = \"1\", \"x-tenant\" = \"a\" }",
        );
        let e = parse(&bad).unwrap_err().0;
        assert_eq!(
            e,
            vec!["providers[1].headers.content-length: framing headers are the gateway's to set"]
        );
        let ok = GOOD.replace(
            "idle_timeout = \"2m\"",
            "idle_timeout = \"2m\"\nheaders = { \"user-agent\" = \"team-proxy\" }",
        );
        assert_eq!(parse(&ok).unwrap().providers[1].headers.len(), 1);
    }

    #[test]
    fn every_error_names_its_path() {
        let bad = GOOD
            .replace("provider = \"claude\"", "provider = \"nobody\"")
            .replace(
                "base_url = \"http://127.0.0.1:9000\"",
                "base_url = \"ftp://x\"",
            )
            .replace(
                "allowed_models = [\"glm-5\"]",
                "allowed_models = [\"nope\"]",
            );
        let e = parse(&bad).unwrap_err().0;
        assert!(
            e.iter().any(|m| m.starts_with("providers[1].base_url")),
            "{e:?}"
        );
        assert!(
            e.iter()
                .any(|m| m.starts_with("models[0].targets[1].provider")),
            "{e:?}"
        );
        assert!(
            e.iter()
                .any(|m| m.starts_with("api_keys[0].allowed_models[0]")),
            "{e:?}"
        );
    }

    #[test]
    fn unknown_keys_are_errors_with_their_table() {
        let e = parse(&GOOD.replace("first_event_timeout", "first_evnt_timeout"))
            .unwrap_err()
            .0;
        assert!(
            e[0].contains("server.first_evnt_timeout") && e[0].contains("unknown field"),
            "{e:?}"
        );
        let e = parse(&GOOD.replace("api_key = \"sk-upstream\"", "api_key = \"sk\"\nbogus = 1"))
            .unwrap_err()
            .0;
        assert!(e[0].contains("providers[0].bogus"), "{e:?}");
    }

    #[test]
    fn missing_env_key_is_reported() {
        let e = parse(&GOOD.replace(
            "api_key = \"sk-upstream\"",
            "api_key_env = \"MODELSWITCH_TEST_UNSET_VAR\"",
        ))
        .unwrap_err()
        .0;
        assert_eq!(e, vec!["providers[0].api_key_env: environment variable MODELSWITCH_TEST_UNSET_VAR is not set"]);
    }

    /// GOOD with `line` added to the table `at` names: "server", "p0"
    /// (openai), "p1" (anthropic), "m0" (the model) or "k0" (the client key).
    fn with(at: &str, line: &str) -> String {
        let anchor = match at {
            "server" => "first_event_timeout = \"30s\"",
            "p0" => "api_key = \"sk-upstream\"",
            "p1" => "idle_timeout = \"2m\"",
            "m0" => "name = \"glm-5\"",
            "k0" => "name = \"admin\"",
            other => unreachable!("no table {other}"),
        };
        GOOD.replace(anchor, &format!("{anchor}\n{line}"))
    }

    fn errors(text: &str) -> Vec<String> {
        match parse(text) {
            Ok(_) => Vec::new(),
            Err(e) => e.0,
        }
    }

    #[test]
    fn new_settings_have_their_defaults() {
        let s = parse(GOOD).unwrap();
        assert_eq!(
            s.downstream,
            Downstream {
                client_header_timeout: Duration::from_secs(10),
                client_body_timeout: Duration::from_secs(60),
                client_idle_timeout: Duration::from_secs(60),
                client_write_timeout: Duration::from_secs(60),
                max_connections: 10_000,
                max_request_header_bytes: 64 * 1024,
                max_request_headers: 100,
                max_event_bytes: 16 * 1024 * 1024,
            }
        );
        assert_eq!(s.process.shutdown_grace, Duration::from_secs(30));
        for p in &s.providers {
            assert_eq!(p.key_cooldown, Duration::from_secs(30));
            assert_eq!(p.max_cooldown, Duration::from_secs(600));
        }
        // The defaults, written out, are accepted and change nothing.
        let explicit = with(
            "server",
            "client_header_timeout = \"10s\"\nclient_body_timeout = \"60s\"\n\
             client_idle_timeout = \"60s\"\nclient_write_timeout = \"60s\"\n\
             max_connections = 10000\nmax_request_header_bytes = 65536\n\
             max_request_headers = 100\nshutdown_grace = \"30s\"\n\
             max_event_bytes = 16777216\nconnect_timeout = \"10s\"\n\
             idle_timeout = \"300s\"\nkeepalive_interval = \"15s\"\ntotal_timeout = \"900s\"",
        )
        .replace(
            "api_key = \"sk-upstream\"",
            "api_key = \"sk-upstream\"\nkey_cooldown = \"30s\"\nmax_cooldown = \"10m\"\n\
             breaker = { window = \"60s\", cooldown = \"30s\", max_cooldown = \"5m\" }\n\
             health_check = { interval = \"10s\", timeout = \"2s\" }",
        );
        let e = parse(&explicit).unwrap();
        assert_eq!(e.downstream, s.downstream);
        assert_eq!(e.process, s.process);
        assert_eq!(e.providers[0].max_cooldown, s.providers[0].max_cooldown);
        assert_eq!(e.providers[0].breaker, s.providers[0].breaker);
    }

    #[test]
    fn new_settings_are_read() {
        let text = with(
            "server",
            "client_header_timeout = \"5s\"\nclient_body_timeout = \"2m\"\n\
             client_idle_timeout = \"90s\"\nclient_write_timeout = \"30s\"\n\
             max_connections = 50\nmax_request_header_bytes = 8192\n\
             max_request_headers = 40\nshutdown_grace = \"5s\"\nmax_event_bytes = 1048576",
        )
        .replace(
            "api_key = \"sk-upstream\"",
            "api_key = \"sk-upstream\"\nkey_cooldown = \"2m\"\nmax_cooldown = \"1h\"",
        );
        let s = parse(&text).unwrap();
        assert_eq!(
            s.downstream,
            Downstream {
                client_header_timeout: Duration::from_secs(5),
                client_body_timeout: Duration::from_secs(120),
                client_idle_timeout: Duration::from_secs(90),
                client_write_timeout: Duration::from_secs(30),
                max_connections: 50,
                max_request_header_bytes: 8192,
                max_request_headers: 40,
                max_event_bytes: 1 << 20,
            }
        );
        assert_eq!(s.process.shutdown_grace, Duration::from_secs(5));
        assert_eq!(s.providers[0].key_cooldown, Duration::from_secs(120));
        assert_eq!(s.providers[0].max_cooldown, Duration::from_secs(3600));
        assert_eq!(s.providers[1].max_cooldown, Duration::from_secs(600));
    }

    #[test]
    fn durations_out_of_bounds_are_refused_with_their_path() {
        let cases = [
            (
                "server",
                "connect_timeout = \"0s\"",
                "server.connect_timeout: 0s is too short (at least 100ms)",
            ),
            (
                "server",
                "connect_timeout = \"6m\"",
                "server.connect_timeout: 6m is too long (at most 5m)",
            ),
            (
                "server",
                "idle_timeout = \"0s\"",
                "server.idle_timeout: 0s is too short (at least 1s)",
            ),
            (
                "server",
                "idle_timeout = \"2h\"",
                "server.idle_timeout: 2h is too long (at most 1h)",
            ),
            (
                "server",
                "keepalive_interval = \"0s\"",
                "server.keepalive_interval: 0s is too short (at least 1s)",
            ),
            (
                "server",
                "keepalive_interval = \"11m\"",
                "server.keepalive_interval: 11m is too long (at most 10m)",
            ),
            (
                "server",
                "total_timeout = \"0s\"",
                "server.total_timeout: 0s is too short (at least 1s)",
            ),
            (
                "server",
                "total_timeout = \"25h\"",
                "server.total_timeout: 25h is too long (at most 24h)",
            ),
            (
                "server",
                "client_header_timeout = \"500ms\"",
                "server.client_header_timeout: 500ms is too short (at least 1s)",
            ),
            (
                "server",
                "client_header_timeout = \"10m\"",
                "server.client_header_timeout: 10m is too long (at most 5m)",
            ),
            (
                "server",
                "client_body_timeout = \"0s\"",
                "server.client_body_timeout: 0s is too short (at least 1s)",
            ),
            (
                "server",
                "client_body_timeout = \"90m\"",
                "server.client_body_timeout: 90m is too long (at most 1h)",
            ),
            (
                "server",
                "client_idle_timeout = \"0s\"",
                "server.client_idle_timeout: 0s is too short (at least 1s)",
            ),
            (
                "server",
                "client_write_timeout = \"0s\"",
                "server.client_write_timeout: 0s is too short (at least 1s)",
            ),
            (
                "server",
                "shutdown_grace = \"0s\"",
                "server.shutdown_grace: 0s is too short (at least 1s)",
            ),
            (
                "server",
                "shutdown_grace = \"2h\"",
                "server.shutdown_grace: 2h is too long (at most 1h)",
            ),
            (
                "p0",
                "connect_timeout = \"50ms\"",
                "providers[0].connect_timeout: 50ms is too short (at least 100ms)",
            ),
            (
                "p0",
                "first_event_timeout = \"0s\"",
                "providers[0].first_event_timeout: 0s is too short (at least 100ms)",
            ),
            (
                "p0",
                "first_event_timeout = \"61m\"",
                "providers[0].first_event_timeout: 61m is too long (at most 1h)",
            ),
            (
                "p0",
                "idle_timeout = \"1year\"",
                "providers[0].idle_timeout: 8766h is too long (at most 1h)",
            ),
            (
                "p0",
                "key_cooldown = \"0s\"",
                "providers[0].key_cooldown: 0s is too short (at least 1s)",
            ),
            (
                "p0",
                "key_cooldown = \"2h\"",
                "providers[0].key_cooldown: 2h is too long (at most 1h)",
            ),
            (
                "p0",
                "max_cooldown = \"0s\"",
                "providers[0].max_cooldown: 0s is too short (at least 1s)",
            ),
            (
                "p0",
                "max_cooldown = \"2days\"",
                "providers[0].max_cooldown: 48h is too long (at most 24h)",
            ),
            (
                "p0",
                "breaker = { window = \"0s\" }",
                "providers[0].breaker.window: 0s is too short (at least 1s)",
            ),
            (
                "p0",
                "breaker = { window = \"25h\" }",
                "providers[0].breaker.window: 25h is too long (at most 24h)",
            ),
            (
                "p0",
                "breaker = { cooldown = \"0s\" }",
                "providers[0].breaker.cooldown: 0s is too short (at least 1s)",
            ),
            (
                "p0",
                "breaker = { max_cooldown = \"25h\" }",
                "providers[0].breaker.max_cooldown: 25h is too long (at most 24h)",
            ),
            (
                "p1",
                "health_check = { interval = \"0s\" }",
                "providers[1].health_check.interval: 0s is too short (at least 100ms)",
            ),
            (
                "p1",
                "health_check = { interval = \"2h\" }",
                "providers[1].health_check.interval: 2h is too long (at most 1h)",
            ),
            (
                "p1",
                "health_check = { timeout = \"10ms\" }",
                "providers[1].health_check.timeout: 10ms is too short (at least 100ms)",
            ),
            (
                "p1",
                "health_check = { timeout = \"6m\" }",
                "providers[1].health_check.timeout: 6m is too long (at most 5m)",
            ),
            (
                "m0",
                "connect_timeout = \"0s\"",
                "models[0].connect_timeout: 0s is too short (at least 100ms)",
            ),
            (
                "m0",
                "first_event_timeout = \"2h\"",
                "models[0].first_event_timeout: 2h is too long (at most 1h)",
            ),
            (
                "m0",
                "idle_timeout = \"0s\"",
                "models[0].idle_timeout: 0s is too short (at least 1s)",
            ),
            (
                "m0",
                "total_timeout = \"0s\"",
                "models[0].total_timeout: 0s is too short (at least 1s)",
            ),
        ];
        for (at, line, want) in cases {
            assert_eq!(errors(&with(at, line)), vec![want.to_owned()], "{line}");
        }
        // The server's own first_event_timeout, replaced rather than added.
        let e = errors(&GOOD.replace(
            "first_event_timeout = \"30s\"",
            "first_event_timeout = \"0s\"",
        ));
        assert_eq!(
            e,
            vec!["server.first_event_timeout: 0s is too short (at least 100ms)"]
        );
        // Both ends are inclusive.
        for (at, line) in [
            ("server", "connect_timeout = \"100ms\"\nkeepalive_interval = \"10m\"\ntotal_timeout = \"24h\""),
            ("server", "keepalive_interval = \"1s\"\nclient_header_timeout = \"1s\"\nshutdown_grace = \"1h\""),
            ("p0", "key_cooldown = \"1h\"\nmax_cooldown = \"24h\"\nbreaker = { window = \"1s\", cooldown = \"1s\", max_cooldown = \"24h\" }"),
            ("p1", "health_check = { interval = \"1h\", timeout = \"5m\" }"),
        ] {
            assert_eq!(errors(&with(at, line)), Vec::<String>::new(), "{line}");
        }
    }

    #[test]
    fn breaker_cooldown_cannot_pass_its_max() {
        assert_eq!(
            errors(&with("p0", "breaker = { cooldown = \"10m\" }")),
            vec!["providers[0].breaker.cooldown: 10m is longer than max_cooldown (5m)"]
        );
        assert_eq!(
            errors(&with("p0", "breaker = { max_cooldown = \"10s\" }")),
            vec!["providers[0].breaker.max_cooldown: 10s is shorter than cooldown (30s)"]
        );
        assert_eq!(
            errors(&with(
                "p0",
                "breaker = { cooldown = \"2m\", max_cooldown = \"1m\" }"
            )),
            vec!["providers[0].breaker.cooldown: 2m is longer than max_cooldown (1m)"]
        );
        let s = parse(&with(
            "p0",
            "breaker = { cooldown = \"2m\", max_cooldown = \"2m\" }",
        ))
        .unwrap();
        assert_eq!(s.providers[0].breaker.cooldown, Duration::from_secs(120));
    }

    #[test]
    fn sizes_out_of_bounds_are_refused_with_their_path() {
        let cases = [
            (
                "max_connections = 0",
                "server.max_connections: 0 is too small (at least 1)",
            ),
            (
                "max_connections = 2000000",
                "server.max_connections: 2000000 is too large (at most 1000000)",
            ),
            (
                "max_request_header_bytes = 512",
                "server.max_request_header_bytes: 512 is too small (at least 1024)",
            ),
            (
                "max_request_header_bytes = 2097152",
                "server.max_request_header_bytes: 2097152 is too large (at most 524288)",
            ),
            (
                "max_request_headers = 0",
                "server.max_request_headers: 0 is too small (at least 8)",
            ),
            (
                "max_request_headers = 1000",
                "server.max_request_headers: 1000 is too large (at most 256)",
            ),
            (
                "max_event_bytes = 0",
                "server.max_event_bytes: 0 is too small (at least 65536)",
            ),
            (
                "max_event_bytes = 1073741824",
                "server.max_event_bytes: 1073741824 is too large (at most 268435456)",
            ),
        ];
        for (line, want) in cases {
            assert_eq!(
                errors(&with("server", line)),
                vec![want.to_owned()],
                "{line}"
            );
        }
    }

    #[test]
    fn provider_keys_that_are_not_header_values_are_refused_unechoed() {
        let cases = [
            ("p0", "api_key", r#""sk-upstream\n""#, "providers[0].api_key: not a valid header value (control character at position 12)"),
            ("p0", "api_key", r#""sk-up stream""#, "providers[0].api_key: not a valid header value (space at position 6)"),
            ("p0", "api_key", r#""sk-upstream\u00A0""#, "providers[0].api_key: not a valid header value (non-ASCII character at position 12)"),
            ("p0", "api_key", r#""""#, "providers[0].api_key: must not be empty"),
        ];
        for (_, key, value, want) in cases {
            let text = GOOD.replace("api_key = \"sk-upstream\"", &format!("{key} = {value}"));
            assert_eq!(errors(&text), vec![want.to_owned()], "{value}");
        }
        // In a list, and on an Anthropic provider (no "Bearer " there).
        let text = GOOD
            .replace(
                "api_key = \"sk-upstream\"",
                r#"api_keys = ["sk-good-key-one", "sk-abcdefgh\u0007ij"]"#,
            )
            .replace(
                "idle_timeout = \"2m\"",
                "idle_timeout = \"2m\"\napi_key = \"sk-ant\\r\\nx-evil: 1\"",
            );
        let e = errors(&text);
        assert_eq!(
            e,
            vec![
                "providers[0].api_keys[1]: not a valid header value (control character at position 12)",
                "providers[1].api_key: not a valid header value (control character at position 7)",
            ]
        );
        let all = e.join("\n");
        assert!(!all.contains("abcdefgh") && !all.contains("evil"), "{all}");
    }

    #[test]
    fn keys_from_the_environment_are_checked_too() {
        // Names of this test's own; nothing else reads them.
        std::env::set_var("MODELSWITCH_TEST_KEY_NEWLINE", "sk-from-a-file\n");
        std::env::set_var("MODELSWITCH_TEST_KEY_GOOD", "sk-from-the-env");
        let text = GOOD.replace(
            "api_key = \"sk-upstream\"",
            "api_key_env = \"MODELSWITCH_TEST_KEY_NEWLINE\"\n\
             api_keys_env = [\"MODELSWITCH_TEST_KEY_GOOD\", \"MODELSWITCH_TEST_KEY_NEWLINE\"]",
        );
        let e = errors(&text);
        assert_eq!(
            e,
            vec![
                "providers[0].api_key_env: MODELSWITCH_TEST_KEY_NEWLINE: not a valid header value (control character at position 15)",
                "providers[0].api_keys_env[1]: MODELSWITCH_TEST_KEY_NEWLINE: not a valid header value (control character at position 15)",
            ]
        );
        assert!(!e.join("\n").contains("sk-from"), "{e:?}");
    }

    #[test]
    fn every_accepted_key_gets_its_credential_header() {
        let text = GOOD
            .replace(
                "api_key = \"sk-upstream\"",
                "api_keys = [\"sk-key-one\", \"sk-key-two!~\", \"k\"]",
            )
            .replace(
                "idle_timeout = \"2m\"",
                "idle_timeout = \"2m\"\napi_key = \"sk-ant-key\"",
            );
        let s = parse(&text).unwrap();
        let openai = &s.providers[0];
        assert_eq!(openai.credentials.len(), 3);
        for (i, key) in ["sk-key-one", "sk-key-two!~", "k"].iter().enumerate() {
            let auth = openai
                .credentials(Some(i))
                .iter()
                .find(|(k, _)| k == http::header::AUTHORIZATION);
            assert_eq!(
                auth.map(|(_, v)| v.as_bytes()),
                Some(format!("Bearer {key}").as_bytes())
            );
        }
        let anthropic = &s.providers[1];
        assert!(anthropic
            .credentials(Some(0))
            .iter()
            .any(|(k, v)| k == "x-api-key" && v == "sk-ant-key"));
    }

    #[test]
    fn client_keys_must_be_header_values() {
        let e = errors(&GOOD.replace("key = \"sk-gateway-admin\"", "key = \"sk-gateway\\tadmin\""));
        assert_eq!(
            e,
            vec!["api_keys[0].key: not a valid header value (control character at position 11)"]
        );
        let e = errors(&GOOD.replace("key = \"sk-gateway-admin\"", "key = \"sk gateway admin\""));
        assert_eq!(
            e,
            vec!["api_keys[0].key: not a valid header value (space at position 3)"]
        );
        assert!(!e.join("\n").contains("gateway"), "{e:?}");
    }

    const SECRET: &str = "sk-live-SECRETVALUE";
    const NUMBER: &str = "31415926535897932";

    /// Every way a value can be of the wrong type or malformed; none of
    /// these may print the value.
    fn mistyped() -> Vec<(String, Option<&'static str>)> {
        let p0 = |line: String| GOOD.replace("api_key = \"sk-upstream\"", &line);
        vec![
            (
                p0(format!("api_key = {NUMBER}")),
                Some("providers[0].api_key"),
            ),
            (
                p0("api_key = 3.14159265358979".to_owned()),
                Some("providers[0].api_key"),
            ),
            (
                p0(format!("api_key = [\"{SECRET}\"]")),
                Some("providers[0].api_key"),
            ),
            (
                p0(format!("api_key = {{ v = \"{SECRET}\" }}")),
                Some("providers[0].api_key"),
            ),
            (
                p0(format!("api_keys = \"{SECRET}\"")),
                Some("providers[0].api_keys"),
            ),
            (
                p0(format!("api_keys = [\"sk-ok-ok-ok\", {NUMBER}]")),
                Some("providers[0].api_keys[1]"),
            ),
            (
                p0(format!("api_key_env = {NUMBER}")),
                Some("providers[0].api_key_env"),
            ),
            (
                p0(format!("key_cooldown = \"{SECRET}\"")),
                Some("providers[0].key_cooldown"),
            ),
            (
                p0(format!("mid_conversation_system = \"{SECRET}\"")),
                Some("providers[0].mid_conversation_system"),
            ),
            (
                p0(format!("headers = {{ x = {NUMBER} }}")),
                Some("providers[0].headers.x"),
            ),
            (
                GOOD.replace(
                    "base_url = \"https://api.openai.com/v1/\"",
                    &format!("base_url = {NUMBER}"),
                ),
                Some("providers[0].base_url"),
            ),
            (
                p0("api_key = 1979-05-27T07:32:00Z".to_owned()),
                Some("providers.api_key"),
            ),
            (
                GOOD.replace("type = \"openai\"", &format!("type = \"{SECRET}\"")),
                Some("providers[0].type"),
            ),
            (
                GOOD.replace("key = \"sk-gateway-admin\"", &format!("key = {NUMBER}")),
                Some("api_keys[0].key"),
            ),
            (
                GOOD.replace("listen = [", &format!("threads = \"{SECRET}\"\nlisten = [")),
                Some("server.threads"),
            ),
            (
                GOOD.replace("listen = [", "threads = -31415926535\nlisten = ["),
                Some("server.threads"),
            ),
            // Syntax errors: the path is a guess from the line, no index.
            (
                p0(format!("api_key = \"{SECRET}\\q\"")),
                Some("providers.api_key"),
            ),
            (p0(format!("api_key = {SECRET}")), Some("providers.api_key")),
            (
                p0(format!("api_key = \"{SECRET}")),
                Some("providers.api_key"),
            ),
            (
                p0(format!("api_key = '{SECRET}")),
                Some("providers.api_key"),
            ),
            // An unterminated multi-line string runs to the end of the file:
            // no path to guess there.
            (p0(format!("api_key = \"\"\"{SECRET}")), None),
            (
                p0(format!("api_key = \"{SECRET}\" \"{SECRET}\"")),
                Some("providers.api_key"),
            ),
        ]
    }

    #[test]
    fn toml_errors_never_print_the_value() {
        for (text, path) in mistyped() {
            let e = errors(&text);
            let all = e.join("\n");
            assert_eq!(e.len(), 1, "{all}");
            assert!(
                !all.contains("SECRET") && !all.contains("31415926535") && !all.contains("3.14159"),
                "the value leaked: {all}"
            );
            assert!(all.starts_with("line "), "{all}");
            if let Some(path) = path {
                assert!(all.contains(&format!(": {path}: ")), "want {path}: {all}");
            }
        }
    }

    #[test]
    fn toml_type_errors_keep_their_words() {
        let e = errors(&GOOD.replace("api_key = \"sk-upstream\"", &format!("api_key = {NUMBER}")));
        assert_eq!(
            e,
            vec!["line 10: providers[0].api_key: invalid type: integer, expected a string"]
        );
        let e = errors(&GOOD.replace("type = \"openai\"", &format!("type = \"{SECRET}\"")));
        assert_eq!(
            e,
            vec!["line 8: providers[0].type: unknown variant, expected one of `openai`, `anthropic`, `gemini`, `openai-responses`"]
        );
        let e = errors(&GOOD.replace(
            "api_key = \"sk-upstream\"",
            &format!("api_keys = \"{SECRET}\""),
        ));
        assert_eq!(
            e,
            vec!["line 10: providers[0].api_keys: invalid type: string, expected a sequence"]
        );
        let e = errors(&with("p1", &format!("key_cooldown = \"{SECRET}\"")));
        assert_eq!(
            e,
            vec!["line 17: providers[1].key_cooldown: invalid value: string, expected a duration"]
        );
        let e = errors(&GOOD.replace("name = \"claude\"", ""));
        assert_eq!(e, vec!["line 12: providers[1]: missing field `name`"]);
    }

    #[test]
    fn issues_split_into_path_and_message() {
        assert_eq!(
            Issue::of("line 10: providers[0].api_key: invalid type: integer, expected a string"),
            Issue {
                path: "providers[0].api_key".into(),
                message: "invalid type: integer, expected a string".into(),
                line: Some(10),
            }
        );
        assert_eq!(
            Issue::of("providers[0].api_key_env: MODELSWITCH_X: not a valid header value"),
            Issue {
                path: "providers[0].api_key_env".into(),
                message: "MODELSWITCH_X: not a valid header value".into(),
                line: None,
            }
        );
        let e = Issue::of("line 3: invalid string; expected `\"`");
        assert_eq!((e.path.as_str(), e.line), ("", Some(3)));
        let e = Issue::of("at least one model is required");
        assert_eq!(
            (e.path.as_str(), e.message.as_str()),
            ("", "at least one model is required")
        );
        let e = parse(&GOOD.replace("provider = \"claude\"", "provider = \"nobody\""))
            .unwrap_err()
            .issues();
        assert_eq!(e[0].path, "models[0].targets[1].provider", "{e:?}");
    }

    #[test]
    fn the_redaction_of_messages() {
        use toml_error::redact;
        assert_eq!(
            redact(
                "invalid type: string \"a \\\"quoted\\\" secret, expected x\", expected a map",
                None
            ),
            "invalid type: string, expected a map"
        );
        assert_eq!(
            redact("invalid value: integer `-5`, expected usize", None),
            "invalid value: integer, expected usize"
        );
        assert_eq!(
            redact(
                "unknown variant `a`, expected `b`, expected `c`, expected one of `d`, `e`",
                None
            ),
            "unknown variant, expected one of `d`, `e`"
        );
        assert_eq!(
            redact("invalid type: string \"unterminated", None),
            "invalid type: string"
        );
        assert_eq!(
            redact("custom: the value hunter2 is bad", Some("\"hunter2\"")),
            "custom: the value (value hidden) is bad"
        );
        assert_eq!(
            redact("unknown field `bogus`, expected `name`", None),
            "unknown field `bogus`, expected `name`"
        );
        assert_eq!(
            redact("invalid string\nexpected `\"`, `'`", None),
            "invalid string; expected `\"`, `'`"
        );
    }

    #[test]
    fn prices_in_the_config_override_the_shipped_table_or_are_refused_by_path() {
        let with = |prices: &str| format!("{GOOD}\n{prices}");
        let s = parse(&with(
            "[[prices]]\nmodel = \"gpt-4o\"\ncurrency = \"CNY\"\ninput = 1\noutput = 2.5\n",
        ))
        .unwrap();
        let p = s.prices.lookup("gpt-4o").unwrap();
        assert_eq!(p.currency.as_str(), "CNY");
        assert!(
            s.prices.lookup("claude-haiku-4-5").is_some(),
            "the shipped table stays"
        );
        let e = errors(&with(
            "[[prices]]\nmodel = \"m\"\ncurrency = \"usd\"\ninput = 0.12345678\noutput = 1\n",
        ));
        assert!(e.iter().any(|m| m.starts_with("prices[0]")), "{e:?}");
    }
}
