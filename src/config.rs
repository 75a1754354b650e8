//! Configuration in two layers: a serde mirror of the TOML file (unknown keys
//! are errors) and the validated, immutable runtime snapshot the request
//! path reads through one `ArcSwap`. A file that fails validation never
//! replaces a good snapshot; every message names the TOML path at fault.

use crate::replicas::{Balance, HealthCheck, ReplicaPool, ReplicaSpec};
use crate::secret::Secret;
use arc_swap::ArcSwap;
use filters::auth::ClientKey;
use filters::breaker::{Breaker, BreakerConfig};
use filters::key_pool::KeyPool;
use filters::Dialect;
use serde::Deserialize;
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

// ------------------------------------------------------------- file mirror

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    #[serde(default)]
    server: FileServer,
    #[serde(default)]
    providers: Vec<FileProvider>,
    #[serde(default)]
    models: Vec<FileModel>,
    #[serde(default)]
    api_keys: Vec<FileApiKey>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileServer {
    listen: Option<OneOrMany>,
    threads: Option<usize>,
    upstream_pool_size: Option<usize>,
    max_request_body_bytes: Option<usize>,
    /// Gateway-wide upstream defaults; a provider may override each.
    #[serde(default, with = "humantime_serde")]
    connect_timeout: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    first_event_timeout: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    idle_timeout: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    keepalive_interval: Option<Duration>,
    /// Whole request, every attempt and the stream included.
    #[serde(default, with = "humantime_serde")]
    total_timeout: Option<Duration>,
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum ProviderType {
    OpenAi,
    Anthropic,
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum FileMidSystem {
    Keep,
    Demote,
    Merge,
    Drop,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileProvider {
    name: String,
    #[serde(rename = "type")]
    kind: ProviderType,
    /// One URL, or several replicas of the same service.
    base_url: OneOrMany,
    /// Replica weights for round-robin, in `base_url` order.
    weights: Option<Vec<usize>>,
    balance: Option<FileBalance>,
    health_check: Option<FileHealthCheck>,
    api_key: Option<String>,
    api_key_env: Option<String>,
    /// Several keys, used in rotation.
    #[serde(default)]
    api_keys: Vec<String>,
    #[serde(default)]
    api_keys_env: Vec<String>,
    /// How long a key rests after a 429 without `Retry-After`.
    #[serde(default, with = "humantime_serde")]
    key_cooldown: Option<Duration>,
    #[serde(default)]
    breaker: FileBreaker,
    #[serde(default)]
    headers: HashMap<String, String>,
    max_tokens_field: Option<String>,
    reasoning_effort: Option<bool>,
    mid_conversation_system: Option<FileMidSystem>,
    default_max_tokens: Option<u64>,
    #[serde(default, with = "humantime_serde")]
    connect_timeout: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    first_event_timeout: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    idle_timeout: Option<Duration>,
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum FileBalance {
    RoundRobin,
    LeastInflight,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileHealthCheck {
    path: Option<String>,
    #[serde(default, with = "humantime_serde")]
    interval: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    timeout: Option<Duration>,
    healthy_threshold: Option<usize>,
    unhealthy_threshold: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileBreaker {
    consecutive_failures: Option<u32>,
    error_rate: Option<f64>,
    min_requests: Option<u32>,
    #[serde(default, with = "humantime_serde")]
    window: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    cooldown: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    max_cooldown: Option<Duration>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileTarget {
    provider: String,
    model: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileModel {
    name: String,
    targets: Vec<FileTarget>,
    max_output_tokens: Option<u64>,
    /// Overrides of the provider's (or server's) budgets for this model.
    #[serde(default, with = "humantime_serde")]
    connect_timeout: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    first_event_timeout: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    idle_timeout: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    total_timeout: Option<Duration>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileApiKey {
    key: String,
    name: String,
    #[serde(default)]
    roles: Vec<String>,
    allowed_models: Option<Vec<String>>,
}

// ---------------------------------------------------------------- snapshot

/// Where and how to reach one upstream provider.
#[derive(Debug)]
pub struct Provider {
    pub name: String,
    pub dialect: Dialect,
    pub tls: bool,
    pub host: String,
    pub port: u16,
    /// Path prefix from `base_url` (`/v1` for OpenAI, empty for Anthropic).
    pub path_prefix: String,
    /// Upstream keys, in rotation through `key_pool` (indices into this).
    pub keys: Vec<Secret>,
    pub key_pool: Mutex<KeyPool>,
    pub breaker: BreakerConfig,
    pub headers: Vec<(http::HeaderName, http::HeaderValue)>,
    /// `Host` for requests without replicas, built once.
    pub host_header: String,
    /// Credential headers for each key of `keys` (one set without keys),
    /// built once rather than per request.
    pub credentials: Vec<Vec<(http::HeaderName, http::HeaderValue)>>,
    /// How each key is named in `x-modelswitch-attempts` and the logs
    /// (` key=***abcd`), built once.
    pub key_labels: Vec<String>,
    pub openai: filters::openai_chat::request::EncodeOptions,
    pub anthropic: filters::anthropic::request::EncodeOptions,
    pub timeouts: Timeouts,
    /// Several replicas, or one with an active health check.
    pub replicas: Option<ReplicaPool>,
}

/// `Host` header value: IPv6 literals bracketed, the port only when it is
/// not the scheme's default.
pub fn host_header(host: &str, port: u16, tls: bool) -> String {
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_owned()
    };
    if port == if tls { 443 } else { 80 } {
        host
    } else {
        format!("{host}:{port}")
    }
}

/// How a request (or a health check) authenticates to a provider.
pub fn credential_headers(
    dialect: Dialect,
    key: Option<&Secret>,
) -> Vec<(http::HeaderName, http::HeaderValue)> {
    let mut h = Vec::new();
    match dialect {
        Dialect::OpenAiChat => {
            if let Some(mut v) = key
                .and_then(|k| http::HeaderValue::from_str(&format!("Bearer {}", k.expose())).ok())
            {
                // Debug output (and so any log of the provider) shows "Sensitive".
                v.set_sensitive(true);
                h.push((http::header::AUTHORIZATION, v));
            }
        }
        Dialect::Anthropic => {
            if let Some(mut v) = key.and_then(|k| http::HeaderValue::from_str(k.expose()).ok()) {
                v.set_sensitive(true);
                h.push((http::HeaderName::from_static("x-api-key"), v));
            }
            h.push((
                http::HeaderName::from_static("anthropic-version"),
                http::HeaderValue::from_static("2023-06-01"),
            ));
        }
    }
    h
}

impl Provider {
    /// The request path for a generation call in this provider's dialect.
    pub fn generate_path(&self) -> String {
        match self.dialect {
            Dialect::OpenAiChat => format!("{}/chat/completions", self.path_prefix),
            Dialect::Anthropic => format!("{}/v1/messages", self.path_prefix),
        }
    }

    /// `Host` header value (port only when not the scheme's default).
    /// The credential headers for key `index` (none: the keyless set).
    pub fn credentials(&self, index: Option<usize>) -> &[(http::HeaderName, http::HeaderValue)] {
        index
            .and_then(|i| self.credentials.get(i))
            .or(self.credentials.first())
            .map_or(&[], Vec::as_slice)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    pub connect: Duration,
    /// From sending the request to the first real event (or the full body).
    pub first_event: Duration,
    /// Longest silence between two reads once streaming.
    pub idle: Duration,
    /// Keep-alive cadence towards the client during upstream silence.
    pub keepalive: Duration,
}

#[derive(Debug)]
pub struct Target {
    pub provider: Arc<Provider>,
    pub model: String,
    /// Shared by every route that uses this provider + model.
    pub breaker: Arc<Mutex<Breaker>>,
    /// The provider's budgets with the model's overrides applied.
    pub timeouts: Timeouts,
}

#[derive(Debug)]
pub struct Route {
    /// Budget for the whole request: every attempt and the stream.
    pub total_timeout: Duration,
    pub targets: Vec<Target>,
    pub max_output_tokens: Option<u64>,
}

#[derive(Debug)]
pub struct Snapshot {
    pub listen: Vec<String>,
    pub threads: usize,
    /// Idle upstream connections kept per worker thread.
    pub upstream_pool_size: usize,
    pub max_request_body_bytes: usize,
    pub providers: Vec<Arc<Provider>>,
    pub routes: HashMap<String, Arc<Route>>,
    /// Model names in config order, for `/v1/models`.
    pub model_names: Vec<String>,
    pub keys: HashMap<String, Arc<ClientKey>>,
}

pub type ConfigStore = Arc<ArcSwap<Snapshot>>;

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

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8000";
/// Enough idle connections for a few thousand requests in flight; each
/// idle one costs a socket and a small watcher task.
const DEFAULT_UPSTREAM_POOL: usize = 1024;
pub const DEFAULT_MAX_BODY: usize = 32 * 1024 * 1024;

pub fn load(path: &Path) -> Result<Snapshot, ConfigErrors> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigErrors(vec![format!("{}: cannot read: {e}", path.display())]))?;
    parse(&text)
}

pub fn parse(text: &str) -> Result<Snapshot, ConfigErrors> {
    let file: FileConfig =
        toml::from_str(text).map_err(|e| ConfigErrors(vec![describe_toml_error(text, &e)]))?;
    validate(file)
}

/// toml's message plus the dotted path of the table the error sits in.
fn describe_toml_error(text: &str, e: &toml::de::Error) -> String {
    let msg = e.message().trim().to_owned();
    let Some(span) = e.span() else { return msg };
    let line = text[..span.start.min(text.len())].lines().count().max(1);
    let table = text[..span.start.min(text.len())]
        .lines()
        .rev()
        .find_map(|l| {
            let l = l.trim();
            l.starts_with('[')
                .then(|| l.trim_matches(|c| c == '[' || c == ']').to_owned())
        })
        .unwrap_or_default();
    let key = text[span.clone()].trim();
    if table.is_empty() {
        format!("line {line}: {key}: {msg}")
    } else {
        format!("line {line}: {table}.{key}: {msg}")
    }
}

fn validate(f: FileConfig) -> Result<Snapshot, ConfigErrors> {
    let mut errs = Vec::new();
    let server = &f.server;
    let listen = match &server.listen {
        None => vec![DEFAULT_LISTEN.to_owned()],
        Some(OneOrMany::One(a)) => vec![a.clone()],
        Some(OneOrMany::Many(v)) => v.clone(),
    };
    if listen.is_empty() {
        errs.push("server.listen: at least one address is required".into());
    }
    for (i, a) in listen.iter().enumerate() {
        if a.parse::<std::net::SocketAddr>().is_err() {
            errs.push(format!(
                "server.listen[{i}]: '{a}' is not an address like 127.0.0.1:8000"
            ));
        }
    }
    let base = Timeouts {
        connect: server.connect_timeout.unwrap_or(Duration::from_secs(10)),
        first_event: server
            .first_event_timeout
            .unwrap_or(Duration::from_secs(120)),
        idle: server.idle_timeout.unwrap_or(Duration::from_secs(300)),
        keepalive: server.keepalive_interval.unwrap_or(Duration::from_secs(15)),
    };

    let mut providers: Vec<Arc<Provider>> = Vec::new();
    let mut by_name: HashMap<&str, Arc<Provider>> = HashMap::new();
    for (i, p) in f.providers.iter().enumerate() {
        let at = format!("providers[{i}]");
        if p.name.trim().is_empty() {
            errs.push(format!("{at}.name: must not be empty"));
        }
        if by_name.contains_key(p.name.as_str()) {
            errs.push(format!("{at}.name: provider '{}' is defined twice", p.name));
        }
        let mut keys: Vec<Secret> = p
            .api_key
            .iter()
            .chain(&p.api_keys)
            .map(|k| Secret::new(k.clone()))
            .collect();
        let env_vars = p
            .api_key_env
            .iter()
            .map(|v| (format!("{at}.api_key_env"), v));
        let env_list = p
            .api_keys_env
            .iter()
            .enumerate()
            .map(|(j, v)| (format!("{at}.api_keys_env[{j}]"), v));
        for (path, var) in env_vars.chain(env_list) {
            match std::env::var(var) {
                Ok(v) if !v.is_empty() => keys.push(Secret::new(v)),
                _ => errs.push(format!("{path}: environment variable {var} is not set")),
            }
        }
        // No key at all is fine: local servers (Ollama, vLLM) often need none.
        let b = &p.breaker;
        let d = BreakerConfig::default();
        let breaker = BreakerConfig {
            consecutive_failures: b
                .consecutive_failures
                .unwrap_or(d.consecutive_failures)
                .max(1),
            error_rate: b.error_rate.unwrap_or(d.error_rate),
            min_requests: b.min_requests.unwrap_or(d.min_requests).max(1),
            window: b.window.unwrap_or(d.window),
            cooldown: b.cooldown.unwrap_or(d.cooldown),
            max_cooldown: b.max_cooldown.unwrap_or(d.max_cooldown),
        };
        if !(0.0..=1.0).contains(&breaker.error_rate) || breaker.error_rate == 0.0 {
            errs.push(format!("{at}.breaker.error_rate: must be in (0, 1]"));
        }
        let urls: Vec<String> = match &p.base_url {
            OneOrMany::One(u) => vec![u.clone()],
            OneOrMany::Many(v) => v.clone(),
        };
        let mut parsed = Vec::new();
        for (j, u) in urls.iter().enumerate() {
            let path = if urls.len() == 1 {
                format!("{at}.base_url")
            } else {
                format!("{at}.base_url[{j}]")
            };
            match parse_base_url(u) {
                Some(x) => parsed.push(x),
                None => errs.push(format!(
                    "{path}: '{u}' is not an http(s) URL like https://api.openai.com/v1"
                )),
            }
        }
        let Some((tls, host, port, path_prefix)) = parsed.first().cloned() else {
            if urls.is_empty() {
                errs.push(format!("{at}.base_url: at least one URL is required"));
            }
            continue;
        };
        if parsed
            .iter()
            .any(|(t, _, _, pre)| *t != tls || *pre != path_prefix)
        {
            errs.push(format!(
                "{at}.base_url: replicas must share the scheme and the path"
            ));
        }
        let weights = p.weights.clone().unwrap_or_else(|| vec![1; parsed.len()]);
        if weights.len() != parsed.len() || weights.contains(&0) {
            errs.push(format!("{at}.weights: one positive weight per base_url"));
        }
        let mut headers = Vec::new();
        for (k, v) in &p.headers {
            match (
                http::HeaderName::try_from(k.as_str()),
                http::HeaderValue::try_from(v.as_str()),
            ) {
                (Ok(k), _)
                    if k == http::header::CONTENT_LENGTH
                        || k == http::header::TRANSFER_ENCODING
                        || k == http::header::CONNECTION =>
                {
                    errs.push(format!(
                        "{at}.headers.{k}: framing headers are the gateway's to set"
                    ))
                }
                (Ok(k), Ok(v)) => headers.push((k, v)),
                _ => errs.push(format!("{at}.headers.{k}: not a valid HTTP header")),
            }
        }
        let dialect = match p.kind {
            ProviderType::OpenAi => Dialect::OpenAiChat,
            ProviderType::Anthropic => Dialect::Anthropic,
        };
        let max_completion_tokens_field = match p.max_tokens_field.as_deref() {
            None => host == "api.openai.com",
            Some("max_completion_tokens") => true,
            Some("max_tokens") => false,
            Some(other) => {
                errs.push(format!(
                    "{at}.max_tokens_field: '{other}' must be max_tokens or max_completion_tokens"
                ));
                false
            }
        };
        if dialect == Dialect::Anthropic
            && (p.max_tokens_field.is_some() || p.reasoning_effort.is_some())
        {
            errs.push(format!(
                "{at}: max_tokens_field and reasoning_effort apply to type = \"openai\" only"
            ));
        }
        let mid = p.mid_conversation_system.unwrap_or(match dialect {
            Dialect::OpenAiChat => FileMidSystem::Keep,
            Dialect::Anthropic => FileMidSystem::Demote,
        });
        use filters::openai_chat::request::MidSystem;
        let replicas = if parsed.len() > 1 || p.health_check.is_some() {
            let specs: Vec<ReplicaSpec> = parsed
                .iter()
                .zip(weights.iter().chain(std::iter::repeat(&1)))
                .map(|((_, h, port, _), w)| ReplicaSpec {
                    host: h.clone(),
                    port: *port,
                    weight: *w,
                })
                .collect();
            let health = p.health_check.as_ref().map(|h| HealthCheck {
                path: h.path.clone().unwrap_or_else(|| match dialect {
                    Dialect::OpenAiChat => format!("{path_prefix}/models"),
                    Dialect::Anthropic => format!("{path_prefix}/v1/models"),
                }),
                interval: h.interval.unwrap_or(Duration::from_secs(10)),
                timeout: h.timeout.unwrap_or(Duration::from_secs(2)),
                healthy_threshold: h.healthy_threshold.unwrap_or(1),
                unhealthy_threshold: h.unhealthy_threshold.unwrap_or(2),
                headers: credential_headers(dialect, keys.first()),
            });
            let balance = match p.balance.unwrap_or(FileBalance::RoundRobin) {
                FileBalance::RoundRobin => Balance::RoundRobin,
                FileBalance::LeastInflight => Balance::LeastInFlight,
            };
            match ReplicaPool::build(&specs, tls, balance, health.as_ref()) {
                Ok(pool) => Some(pool),
                Err(e) => {
                    errs.push(format!("{at}.base_url: {e}"));
                    None
                }
            }
        } else {
            if p.balance.is_some() {
                errs.push(format!("{at}.balance: needs several base_url replicas"));
            }
            None
        };
        let host_header = host_header(&host, port, tls);
        let provider = Arc::new(Provider {
            replicas,
            name: p.name.clone(),
            dialect,
            tls,
            host,
            port,
            path_prefix,
            key_pool: Mutex::new(KeyPool::new(
                keys.len(),
                p.key_cooldown.unwrap_or(Duration::from_secs(30)),
            )),
            host_header,
            credentials: if keys.is_empty() {
                vec![credential_headers(dialect, None)]
            } else {
                keys.iter()
                    .map(|k| credential_headers(dialect, Some(k)))
                    .collect()
            },
            key_labels: keys
                .iter()
                .map(|k| format!(" key={}", k.masked()))
                .collect(),
            keys,
            breaker,
            headers,
            openai: filters::openai_chat::request::EncodeOptions {
                max_completion_tokens_field,
                reasoning_effort: p.reasoning_effort.unwrap_or(false),
                mid_system: match mid {
                    FileMidSystem::Keep => MidSystem::Keep,
                    FileMidSystem::Demote => MidSystem::DemoteToUser,
                    FileMidSystem::Merge => MidSystem::MergeIntoLeading,
                    FileMidSystem::Drop => MidSystem::Drop,
                },
            },
            anthropic: filters::anthropic::request::EncodeOptions {
                default_max_tokens: p.default_max_tokens.unwrap_or(8192),
                mid_system: mid == FileMidSystem::Keep,
            },
            timeouts: Timeouts {
                connect: p.connect_timeout.unwrap_or(base.connect),
                first_event: p.first_event_timeout.unwrap_or(base.first_event),
                idle: p.idle_timeout.unwrap_or(base.idle),
                keepalive: base.keepalive,
            },
        });
        by_name.insert(&p.name, provider.clone());
        providers.push(provider);
    }

    let mut routes = HashMap::new();
    let mut model_names = Vec::new();
    let mut breakers: HashMap<(String, String), Arc<Mutex<Breaker>>> = HashMap::new();
    for (i, m) in f.models.iter().enumerate() {
        let at = format!("models[{i}]");
        if m.name.trim().is_empty() {
            errs.push(format!("{at}.name: must not be empty"));
        }
        if routes.contains_key(&m.name) {
            errs.push(format!("{at}.name: model '{}' is defined twice", m.name));
        }
        if m.targets.is_empty() {
            errs.push(format!("{at}.targets: at least one target is required"));
        }
        let mut targets = Vec::new();
        for (j, t) in m.targets.iter().enumerate() {
            match by_name.get(t.provider.as_str()) {
                Some(p) => {
                    let breaker = breakers
                        .entry((p.name.clone(), t.model.clone()))
                        .or_insert_with(|| Arc::new(Mutex::new(Breaker::new(p.breaker))))
                        .clone();
                    let base = p.timeouts;
                    let timeouts = Timeouts {
                        connect: m.connect_timeout.unwrap_or(base.connect),
                        first_event: m.first_event_timeout.unwrap_or(base.first_event),
                        idle: m.idle_timeout.unwrap_or(base.idle),
                        keepalive: base.keepalive,
                    };
                    targets.push(Target {
                        provider: p.clone(),
                        model: t.model.clone(),
                        breaker,
                        timeouts,
                    });
                }
                None => errs.push(format!(
                    "{at}.targets[{j}].provider: no provider named '{}'",
                    t.provider
                )),
            }
        }
        model_names.push(m.name.clone());
        routes.insert(
            m.name.clone(),
            Arc::new(Route {
                total_timeout: m
                    .total_timeout
                    .or(server.total_timeout)
                    .unwrap_or(Duration::from_secs(900)),
                targets,
                max_output_tokens: m.max_output_tokens,
            }),
        );
    }

    let all_models: HashSet<&str> = f.models.iter().map(|m| m.name.as_str()).collect();
    let mut keys = HashMap::new();
    for (i, k) in f.api_keys.iter().enumerate() {
        let at = format!("api_keys[{i}]");
        if k.key.len() < 8 {
            errs.push(format!("{at}.key: must be at least 8 characters"));
        }
        if keys.contains_key(&k.key) {
            errs.push(format!("{at}.key: the same key is configured twice"));
        }
        for (j, m) in k.allowed_models.iter().flatten().enumerate() {
            if !all_models.contains(m.as_str()) {
                errs.push(format!("{at}.allowed_models[{j}]: no model named '{m}'"));
            }
        }
        keys.insert(
            k.key.clone(),
            Arc::new(ClientKey {
                name: k.name.clone(),
                roles: k.roles.clone(),
                allowed_models: k
                    .allowed_models
                    .as_ref()
                    .map(|v| v.iter().cloned().collect()),
            }),
        );
    }
    if keys.is_empty() {
        errs.push("api_keys: at least one key is required (the gateway never runs open)".into());
    }
    if !errs.is_empty() {
        return Err(ConfigErrors(errs));
    }
    Ok(Snapshot {
        listen,
        threads: server.threads.unwrap_or(0),
        upstream_pool_size: server.upstream_pool_size.unwrap_or(DEFAULT_UPSTREAM_POOL),
        max_request_body_bytes: server.max_request_body_bytes.unwrap_or(DEFAULT_MAX_BODY),
        providers,
        routes,
        model_names,
        keys,
    })
}

/// `http(s)://host[:port][/prefix]` → (tls, host, port, prefix without a
/// trailing slash).
fn parse_base_url(url: &str) -> Option<(bool, String, u16, String)> {
    let uri: http::Uri = url.parse().ok()?;
    let tls = match uri.scheme_str()? {
        "https" => true,
        "http" => false,
        _ => return None,
    };
    let host = uri
        .host()?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    if host.is_empty() || uri.query().is_some() {
        return None;
    }
    let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
    let prefix = uri.path().trim_end_matches('/').to_owned();
    Some((tls, host, port, prefix))
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(s.listen.len(), 2);
        let route = &s.routes["glm-5"];
        assert_eq!(
            route.targets[0].provider.generate_path(),
            "/v1/chat/completions"
        );
        assert_eq!(route.targets[0].provider.host_header, "api.openai.com");
        assert!(route.targets[0].provider.openai.max_completion_tokens_field);
        assert_eq!(route.targets[1].provider.generate_path(), "/v1/messages");
        assert_eq!(route.targets[1].provider.host_header, "127.0.0.1:9000");
        let (tls, host, port, prefix) = parse_base_url("http://[::1]:8001/v1/").unwrap();
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
        assert!(e[0].contains("providers.bogus"), "{e:?}");
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
}
