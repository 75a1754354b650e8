//! The validated runtime configuration: plain, immutable data. Nothing in
//! here changes while it serves; breakers, key pools and replica health
//! live in `state`, keyed by the identities defined here, so a reload that
//! swaps the snapshot keeps them.

use super::secret::Secret;
use filters::auth::ClientKey;
use filters::breaker::BreakerConfig;
use filters::Dialect;
use http::{HeaderName, HeaderValue};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// Where and how to reach one upstream provider.
#[derive(Debug)]
pub struct Provider {
    pub name: Arc<str>,
    /// Position in `Snapshot::providers`: the provider's runtime state is
    /// found by it without a lookup.
    pub index: usize,
    pub dialect: Dialect,
    pub tls: bool,
    pub host: String,
    pub port: u16,
    /// Path prefix from `base_url` (`/v1` for OpenAI, empty for Anthropic).
    pub path_prefix: String,
    /// Upstream keys, used in rotation (the key pool holds indices).
    pub keys: Vec<Secret>,
    /// The longest rest of a key after repeated 429s without
    /// `Retry-After`: rests start at 1s and double up to it.
    pub key_cooldown: Duration,
    /// No rest (a key's or a target's) outlasts this, whatever an
    /// upstream's `Retry-After` says.
    pub max_cooldown: Duration,
    pub breaker: BreakerConfig,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// `Host` for requests without replicas, built once.
    pub host_header: String,
    /// Credential headers for each key of `keys` (one set without keys),
    /// built once rather than per request.
    pub credentials: Vec<Vec<(HeaderName, HeaderValue)>>,
    /// How requests are encoded for this provider's dialect.
    pub encode: filters::dialect::EncodeOptions,
    pub timeouts: Timeouts,
    /// Several replicas, or one with an active health check.
    pub replicas: Option<Replicas>,
    /// Shared by every key (`rpm`, `tpm`, `concurrency`).
    pub limits: filters::limits::Limits,
    /// Requests go over HTTP/2, multiplexed on one connection per worker:
    /// offered by ALPN on TLS (HTTP/1.1 if the server declines), spoken
    /// with prior knowledge (h2c) on cleartext.
    pub http2: bool,
    /// What becomes of the client's `anthropic-beta` header on a
    /// same-dialect (pass-through) call.
    pub anthropic_beta: filters::anthropic::beta::BetaPolicy,
    /// The preset that filled in this provider's defaults (`preset = …`).
    pub preset: Option<&'static str>,
    /// What the preset filled in (`modelswitch check --explain`).
    pub preset_filled: Vec<(&'static str, String)>,
    /// `enabled = false` (or `is_active = false`): kept in the config and
    /// the admin views, but no chain calls it.
    pub enabled: bool,
    pub display_name: Option<Arc<str>>,
    pub description: Option<Arc<str>>,
    /// Labels for people (the UI); routing reads model tags, not these.
    pub tags: Vec<String>,
    /// `auth = { login_url, … }`: the credential is a token the gateway
    /// logs in for (`upstream::login`), not a configured key.
    pub login: Option<Arc<Login>>,
}

/// A token-login provider's login: where, as whom, and how the token is
/// read from the answer and sent on calls.
#[derive(Debug)]
pub struct Login {
    pub tls: bool,
    pub host: String,
    pub port: u16,
    /// Path and query of `login_url`.
    pub path: String,
    pub host_header: String,
    /// A secret too: `Provider` derives `Debug`.
    pub username: Secret,
    pub password: Secret,
    /// The JSON body's field names for the two (`username`, `password`).
    pub username_field: String,
    pub password_field: String,
    /// Where the token is in the answer (`data.token` → ["data", "token"]).
    pub token_path: Vec<String>,
    /// Where a lifetime in seconds is in the answer, if it gives one
    /// (`expires_in` beside the token or at the top when unset).
    pub expires_in_path: Option<Vec<String>>,
    /// How long a token is used when the answer gives no lifetime.
    pub ttl: Duration,
    /// A token is renewed this long before it expires.
    pub refresh_before: Duration,
    /// How the token is sent: header name and value with `{token}` in it.
    pub header: HeaderName,
    pub format: String,
}

impl Provider {
    /// Its (first) base URL as a person would write it.
    pub fn base_url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        let default_port = if self.tls { 443 } else { 80 };
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.port == default_port {
            format!("{scheme}://{host}{}", self.path_prefix)
        } else {
            format!("{scheme}://{host}:{}{}", self.port, self.path_prefix)
        }
    }

    /// The credential headers for key `index` (none: the keyless set).
    pub fn credentials(&self, index: Option<usize>) -> &[(HeaderName, HeaderValue)] {
        index
            .and_then(|i| self.credentials.get(i))
            .or(self.credentials.first())
            .map_or(&[], Vec::as_slice)
    }

    /// What a breaker is kept by: the provider's name and where it points.
    /// Repointing a provider (another URL or dialect) starts its targets
    /// afresh; an unrelated edit keeps their state.
    pub fn endpoint(&self) -> String {
        let urls: Vec<String> = match &self.replicas {
            Some(r) => r
                .specs
                .iter()
                .map(|s| format!("{}:{}", s.host, s.port))
                .collect(),
            None => vec![format!("{}:{}", self.host, self.port)],
        };
        format!(
            "{}|{}|{}|{}{}",
            self.name,
            self.dialect.name(),
            if self.tls { "https" } else { "http" },
            urls.join(","),
            self.path_prefix
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Balance {
    /// Weighted round-robin (weights default to 1).
    RoundRobin,
    /// The healthy replica with the fewest requests in flight; ties rotate.
    LeastInFlight,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheck {
    /// Request path, e.g. `/health` (vLLM) or `/v1/models`.
    pub path: String,
    pub interval: Duration,
    pub timeout: Duration,
    pub healthy_threshold: usize,
    pub unhealthy_threshold: usize,
}

/// One replica as configuration names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaSpec {
    pub host: String,
    pub port: u16,
    pub weight: usize,
}

/// A provider's replicas and how they are chosen and checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replicas {
    pub specs: Vec<ReplicaSpec>,
    pub balance: Balance,
    pub health: Option<HealthCheck>,
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

/// One provider + upstream model in a route's chain.
#[derive(Debug)]
pub struct Target {
    pub provider: Arc<Provider>,
    pub model: Arc<str>,
    /// Index of this provider + model's breaker among the snapshot's
    /// targets; routes that share a target share the slot.
    pub slot: usize,
    /// The provider's budgets with the model's overrides applied.
    pub timeouts: Timeouts,
    /// The generation endpoint (unary, streaming), built once: Gemini
    /// names the model and the mode in the path.
    pub generate_paths: [String; 2],
    /// What it can take: a request needing more skips it.
    pub capabilities: filters::routing::Capabilities,
    /// Tools go through the prompt (the target has no native tools).
    pub tool_emulation: bool,
}

impl Target {
    /// A target outside any chain (the admin API's provider test): the
    /// provider's own budgets, and no breaker slot (`usize::MAX`), which
    /// only side calls, that never consult a breaker, may use.
    pub fn probe(provider: Arc<Provider>, model: &str) -> Self {
        let path = |stream| {
            filters::dialect::generate_path(provider.dialect, &provider.path_prefix, model, stream)
        };
        Self {
            generate_paths: [path(false), path(true)],
            timeouts: provider.timeouts,
            model: Arc::from(model),
            slot: usize::MAX,
            provider,
            capabilities: filters::routing::Capabilities::default(),
            tool_emulation: false,
        }
    }

    pub fn generate_path(&self, stream: bool) -> &str {
        &self.generate_paths[usize::from(stream)]
    }
}

#[derive(Debug)]
pub struct Route {
    /// The model's configured name (a glob for a glob-named model).
    pub name: Arc<str>,
    pub aliases: Vec<String>,
    /// For `tags:` queries.
    pub tags: Vec<String>,
    pub priority: i64,
    /// The model's own capabilities (targets may differ: `Target`).
    pub capabilities: filters::routing::Capabilities,
    /// Some target cannot take everything: a request's needs are read.
    pub varies: bool,
    /// Some target has a context window: the input is estimated.
    pub has_window: bool,
    /// Budget for the whole request: every attempt and the stream.
    pub total_timeout: Duration,
    pub targets: Vec<Target>,
    pub max_output_tokens: Option<u64>,
    /// How reasoning reaches OpenAI Chat clients; `None`: per client (see
    /// `exchange::openai_reasoning`).
    pub openai_reasoning: Option<filters::openai_chat::stream::ReasoningOutput>,
    /// Shared by every key (`rpm`, `tpm`, `concurrency`).
    pub limits: filters::limits::Limits,
    pub display_name: Option<Arc<str>>,
    pub description: Option<Arc<str>>,
}

/// Settings read once at startup; a reload that changes them is reported
/// as needing a restart and keeps the running value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Process {
    pub listen: Vec<String>,
    /// `[server] tls_listen`: addresses served over TLS with `tls`.
    pub tls_listen: Vec<String>,
    /// `[server.tls]`: set whenever `tls_listen` is.
    pub tls: Option<Tls>,
    /// `[server] h2c`: cleartext HTTP/2 (prior knowledge) on `listen`.
    pub h2c: bool,
    /// `[admin] listen`: the admin plane's own address (then the LLM
    /// listeners no longer serve it).
    pub admin_listen: Option<String>,
    pub threads: usize,
    /// Idle upstream connections kept per worker thread.
    pub upstream_pool_size: usize,
    /// On SIGTERM/SIGINT, how long requests in flight may still run.
    pub shutdown_grace: Duration,
    /// The SQLite key store (absolute: resolved against the config's directory).
    pub sqlite_path: std::path::PathBuf,
    /// Where limiter counters live.
    pub limit_backend: LimitBackend,
    /// Write one usage row per request (`[storage] record_usage`).
    pub record_usage: bool,
    /// Rows the usage queue holds before rows spill (`[storage] usage_queue`).
    pub usage_queue: usize,
    /// Where keys and usage rows are stored (`[storage] backend`).
    pub store_backend: StoreBackend,
    /// Where and how the conversation log is written (`[logging]`).
    pub conversation_files: ConversationFiles,
    /// `[logging] access_file`: the access log's file (absolute once
    /// loaded); `None`, stderr.
    pub access_file: Option<std::path::PathBuf>,
}

/// `[server.tls]`: which files hold the certificates. Their contents are
/// read by `crate::tls`, which serves a replaced file without a restart;
/// another path needs one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tls {
    /// For clients without SNI, or asking for a name no other one serves.
    pub default: CertFiles,
    /// `[[server.tls.certificates]]`, chosen by SNI.
    pub sni: Vec<CertFiles>,
    /// Offer HTTP/2 by ALPN.
    pub http2: bool,
}

/// One certificate chain and its key, PEM files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertFiles {
    /// Where it is set, for messages: `server.tls` or
    /// `server.tls.certificates[N]`.
    pub at: String,
    /// Absolute once loaded: relative paths are resolved beside the config.
    pub cert: std::path::PathBuf,
    pub key: std::path::PathBuf,
    /// The names it serves; `None`: its own SAN DNS names.
    pub names: Option<Vec<String>>,
}

/// `[logging]`'s files: one writer opens them at start, so a change needs
/// a restart (whether conversations are logged does not).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversationFiles {
    /// Absolute once loaded: relative paths are resolved beside the config.
    pub dir: std::path::PathBuf,
    pub max_file_bytes: u64,
    pub retention: Duration,
    pub max_files: usize,
}

/// The access log's form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessLog {
    /// One line of `key=value` pieces (the default: cheapest to write).
    Text,
    /// One JSON object per line, for log pipelines.
    Json,
    Off,
}

/// Where runtime keys and usage rows are stored.
#[derive(Clone, PartialEq, Eq)]
pub enum StoreBackend {
    /// The SQLite file at `Process::sqlite_path`: one machine.
    Sqlite,
    /// One PostgreSQL database shared by every replica that points at it
    /// (the URL may hold a password: never shown). The usage spill file
    /// stays local, beside `Process::sqlite_path`.
    Postgres { url: Secret },
}

/// The URL with its password masked, wherever it is written in it (a
/// `Secret`'s own mask keeps the last characters, which a URL ending in
/// `?password=…` would give away).
impl std::fmt::Debug for StoreBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Sqlite => f.write_str("Sqlite"),
            Self::Postgres { url } => f
                .debug_struct("Postgres")
                .field("url", &crate::store::redact_url(url.expose()))
                .finish(),
        }
    }
}

/// Where limiter counters live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LimitBackend {
    /// In this process: exact for one gateway.
    Memory,
    /// In Redis, shared by every gateway that points at it (the URL may
    /// hold a password: never shown).
    Redis { url: Secret },
}

/// `[limits]`: what can change on a reload.
#[derive(Debug, Clone)]
pub struct LimitSettings {
    /// Where a day starts.
    pub timezone: filters::limits::day::TimeZone,
    pub timezone_name: String,
    /// Output tokens reserved for a request that names no maximum.
    pub default_reserve_output: u64,
    /// While the Redis backend is unreachable: admit (from local
    /// counters) or refuse.
    pub allow_on_backend_error: bool,
    pub redis_timeout: Duration,
    /// `[budgets]`: the currency budgets count in, and rates into it.
    pub budgets: std::sync::Arc<filters::limits::budget::Exchange>,
}

/// Limits on what clients (and, per event, upstream streams) may cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Downstream {
    /// The whole request head must arrive within this.
    pub client_header_timeout: Duration,
    /// The whole request body must arrive within this.
    pub client_body_timeout: Duration,
    /// A kept-alive connection may wait this long for its next request.
    pub client_idle_timeout: Duration,
    /// A client that reads nothing of its response this long is dropped
    /// and its upstream call cancelled.
    pub client_write_timeout: Duration,
    /// Past this many open connections, new ones get a fast 503.
    pub max_connections: usize,
    /// Largest request head (request line and headers), in bytes.
    pub max_request_header_bytes: usize,
    /// Most headers one request may carry.
    pub max_request_headers: usize,
    /// Largest upstream SSE line or event, in bytes; a bigger one is an
    /// upstream failure.
    pub max_event_bytes: usize,
}

#[derive(Debug)]
pub struct Snapshot {
    pub process: Process,
    /// Watch the config file for changes.
    pub reload: bool,
    /// `[server] metrics_require_key`: scrapes need an admin or viewer key.
    pub metrics_require_key: bool,
    pub access_log: AccessLog,
    /// `[logging] conversations`: every key's default.
    pub log_conversations: bool,
    pub max_request_body_bytes: usize,
    pub downstream: Downstream,
    pub providers: Vec<Arc<Provider>>,
    pub routes: HashMap<String, Arc<Route>>,
    /// Model names in config order, for `/v1/models`.
    pub model_names: Vec<String>,
    /// Config keys by their secret.
    pub keys: HashMap<String, Arc<ClientKey>>,
    pub limits: LimitSettings,
    /// The shipped prices with the config's `[[prices]]` over them.
    pub prices: Arc<filters::pricing::PriceTable>,
    /// `[auth] localhost_key`: the key (by name) that keyless requests from
    /// the loopback interface act as.
    pub localhost_key: Option<String>,
    /// The distinct provider + model pairs, by `Target::slot`.
    pub target_slots: Vec<(Arc<Provider>, Arc<str>)>,
    /// `[telemetry]`: traces, exported while `otlp_endpoint` is set.
    pub telemetry: Option<Telemetry>,
    /// `[routing]`: names, rules, the classifier, affinity.
    pub routing: Routing,
}

/// `[routing]` and the names models answer to.
#[derive(Debug, Default)]
pub struct Routing {
    pub names: filters::routing::names::Names,
    pub rules: Vec<filters::routing::rules::Rule>,
    /// Some rule reads the input's size.
    pub rules_count_tokens: bool,
    /// Some model's targets differ in what they take (`Route::varies`).
    pub any_varies: bool,
    pub classifier: Option<Classifier>,
    pub affinity: Affinity,
    /// Globs of requested names that are background chores.
    pub background_models: Vec<String>,
}

/// `[routing.classifier]`.
#[derive(Debug, Clone)]
pub struct Classifier {
    /// The configured model asked.
    pub model: String,
    pub scenes: Vec<filters::routing::classifier::Scene>,
    /// Its system prompt, built once.
    pub prompt: String,
    /// The configured model when no scene is named in time.
    pub default: String,
    pub timeout: Duration,
    /// Globs of the requested names it routes; empty: every name that is
    /// not a configured model's own name or alias.
    pub models: Vec<String>,
}

/// `[routing.affinity]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Affinity {
    pub enabled: bool,
    /// Read before the agent CLIs' own headers.
    pub header: Option<HeaderName>,
    pub ttl: Duration,
    pub max_sessions: usize,
}

impl Default for Affinity {
    fn default() -> Self {
        Self {
            enabled: true,
            header: None,
            ttl: Duration::from_secs(3600),
            max_sessions: 100_000,
        }
    }
}

/// `[telemetry]`: OpenTelemetry traces over OTLP/HTTP. Read live by the
/// exporter, so a reload turns traces on, off or elsewhere.
#[derive(Debug, Clone)]
pub struct Telemetry {
    pub tls: bool,
    pub host: String,
    pub port: u16,
    /// The endpoint's path with `/v1/traces` after it.
    pub path: String,
    pub host_header: String,
    /// Sent with every export (collector auth): the values are secrets.
    pub headers: Vec<(HeaderName, Secret)>,
    /// The `service.name` resource attribute.
    pub service_name: String,
    /// Share of requests traced when the client sends no `traceparent`.
    pub sample_ratio: f64,
    /// Most spans in one export.
    pub batch_max: usize,
    /// Longest a span waits for its batch to fill.
    pub batch_interval: Duration,
}
