//! The serde mirror of the TOML file: every table and key a config may
//! hold, unknown keys refused, durations in humantime (`30s`, `2m`).
//! Nothing here is checked beyond its type; `validate` does the rest.

use filters::limits::budget::Budget;
use filters::limits::Limits;
use serde::Deserialize;
use std::collections::HashMap;
use std::time::Duration;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileConfig {
    #[serde(default)]
    pub(super) server: FileServer,
    #[serde(default)]
    pub(super) providers: Vec<FileProvider>,
    #[serde(default)]
    pub(super) models: Vec<FileModel>,
    #[serde(default)]
    pub(super) api_keys: Vec<FileApiKey>,
    #[serde(default)]
    pub(super) storage: FileStorage,
    #[serde(default)]
    pub(super) limits: FileLimits,
    #[serde(default)]
    pub(super) budgets: FileBudgets,
    #[serde(default)]
    pub(super) auth: FileAuth,
    /// Prices that replace or add to the shipped table.
    #[serde(default)]
    pub(super) prices: Vec<filters::pricing::PriceSpec>,
    #[serde(default)]
    pub(super) telemetry: FileTelemetry,
    #[serde(default)]
    pub(super) logging: FileLogging,
    #[serde(default)]
    pub(super) admin: FileAdmin,
    #[serde(default)]
    pub(super) routing: FileRouting,
}

/// `[routing]`: how a requested name becomes a configured model, beyond
/// its exact name.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileRouting {
    /// Serves every name nothing else matches (off unless set).
    pub(super) default_model: Option<String>,
    /// `[[routing.rules]]`, evaluated in order; the first that holds wins.
    #[serde(default)]
    pub(super) rules: Vec<FileRule>,
    pub(super) classifier: Option<FileClassifier>,
    #[serde(default)]
    pub(super) affinity: FileAffinity,
    /// Requested names that are an agent's background chores (the
    /// `background` condition); default `["*haiku*"]`, Claude Code's small
    /// fast model.
    pub(super) background_models: Option<OneOrMany>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileRule {
    /// For the attempts header and the usage record; `rule#N` otherwise.
    pub(super) name: Option<String>,
    #[serde(default)]
    pub(super) when: FileWhen,
    /// A configured model (or alias), or `tags:a,b`.
    #[serde(rename = "use")]
    pub(super) use_: String,
}

/// A rule's conditions: every one given must hold.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileWhen {
    /// Glob of the requested model name.
    pub(super) model: Option<OneOrMany>,
    /// `openai`, `anthropic`, `gemini`, `responses`.
    pub(super) dialect: Option<OneOrMany>,
    /// Client key names (globs).
    pub(super) key: Option<OneOrMany>,
    pub(super) role: Option<OneOrMany>,
    /// Header name → glob of its value.
    #[serde(default)]
    pub(super) header: HashMap<String, String>,
    pub(super) has_tools: Option<bool>,
    pub(super) has_images: Option<bool>,
    pub(super) thinking: Option<bool>,
    pub(super) web_search: Option<bool>,
    pub(super) min_input_tokens: Option<u64>,
    pub(super) background: Option<bool>,
}

/// `[routing.classifier]`: a small model names the scene of the latest
/// user turn; the scene names the model.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileClassifier {
    pub(super) model: String,
    /// Scene name → the model that serves it (or a table with a
    /// description for the classifier's prompt).
    pub(super) scenes: std::collections::BTreeMap<String, FileScene>,
    /// The model when the classifier is slow, fails or answers no scene.
    pub(super) default: String,
    #[serde(default, with = "humantime_serde")]
    pub(super) timeout: Option<Duration>,
    /// Which requested names the classifier routes (globs); unset: every
    /// name that is not a configured model's own.
    pub(super) models: Option<OneOrMany>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum FileScene {
    Model(String),
    Described {
        model: String,
        description: Option<String>,
    },
}

/// `[routing.affinity]`: keep a session on the target (replica, key) it
/// last used.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileAffinity {
    pub(super) enabled: Option<bool>,
    /// A header of the team's own that names the session, read first.
    pub(super) header: Option<String>,
    #[serde(default, with = "humantime_serde")]
    pub(super) ttl: Option<Duration>,
    pub(super) max_sessions: Option<usize>,
}

/// What a model (or a target) can take; unset fields: it can.
#[derive(Debug, Default, Deserialize, Clone, Copy)]
#[serde(deny_unknown_fields)]
pub(super) struct FileCapabilities {
    pub(super) context_window: Option<u64>,
    pub(super) vision: Option<bool>,
    pub(super) tools: Option<bool>,
    pub(super) reasoning: Option<bool>,
}

/// `anthropic_beta`: what becomes of the client's `anthropic-beta` header.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum FileBetaPolicy {
    /// `"forward"` or `"drop"`.
    Mode(String),
    /// Only these betas go on.
    Allow(Vec<String>),
}

/// `[admin]`: where the admin plane (UI, admin API, `/metrics`) listens.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileAdmin {
    /// Its own address; unset, the gateway's listeners serve it too.
    pub(super) listen: Option<String>,
}

/// `[logging]`: the conversation log (off unless asked for, here or per key).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileLogging {
    /// Every key's default; a key's `log_conversations` overrides it.
    pub(super) conversations: Option<bool>,
    /// Relative paths are relative to the config file's directory.
    pub(super) dir: Option<String>,
    /// A day's file rolls over to `….1.jsonl` past this size.
    pub(super) max_file_bytes: Option<u64>,
    /// Files older than this are deleted.
    #[serde(default, with = "humantime_serde")]
    pub(super) retention: Option<Duration>,
    /// At most this many files are kept (the oldest go first).
    pub(super) max_files: Option<usize>,
    /// The access log's file (appended to) instead of stderr; relative
    /// paths are relative to the config file's directory.
    pub(super) access_file: Option<String>,
}

/// `[telemetry]`: OpenTelemetry traces over OTLP/HTTP (off without an
/// endpoint).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileTelemetry {
    /// The collector's base URL; spans go to `{otlp_endpoint}/v1/traces`.
    pub(super) otlp_endpoint: Option<String>,
    pub(super) service_name: Option<String>,
    pub(super) sample_ratio: Option<f64>,
    pub(super) batch_max: Option<usize>,
    #[serde(default, with = "humantime_serde")]
    pub(super) batch_interval: Option<Duration>,
    /// Sent with every export, e.g. a collector's auth header.
    #[serde(default)]
    pub(super) headers: HashMap<String, String>,
    /// The same, each value read from the named environment variable.
    #[serde(default)]
    pub(super) headers_env: HashMap<String, String>,
}

/// `[storage]`: where runtime keys (and, later, usage) are kept.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileStorage {
    /// Relative paths are relative to the config file's directory.
    pub(super) sqlite_path: Option<String>,
    /// Write one usage row per request (default true).
    pub(super) record_usage: Option<bool>,
    /// Usage rows held in memory for the writer before they spill to disk.
    pub(super) usage_queue: Option<usize>,
    /// `sqlite` (the default) or `postgres`, for replicas sharing one
    /// database.
    pub(super) backend: Option<FileStoreBackend>,
    pub(super) postgres_url: Option<String>,
    /// The name of an environment variable holding the URL.
    pub(super) postgres_url_env: Option<String>,
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub(super) enum FileStoreBackend {
    Sqlite,
    Postgres,
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub(super) enum FileAccessLog {
    Text,
    Json,
    Off,
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub(super) enum FileLimitBackend {
    Memory,
    Redis,
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub(super) enum FileOnBackendError {
    Allow,
    Deny,
}

/// `[limits]`: where limiter counters live and how days and tokens count.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileLimits {
    pub(super) backend: Option<FileLimitBackend>,
    pub(super) redis_url: Option<String>,
    pub(super) redis_url_env: Option<String>,
    /// Longest wait for one Redis round trip before `on_backend_error`.
    #[serde(default, with = "humantime_serde")]
    pub(super) redis_timeout: Option<Duration>,
    pub(super) on_backend_error: Option<FileOnBackendError>,
    /// IANA name; where a day starts for `rpd` and `tpd`.
    pub(super) timezone: Option<String>,
    /// Output tokens reserved for a request that names no maximum.
    pub(super) default_reserve_output: Option<u64>,
}

/// `[budgets]`: the currency budgets are set in, and rates into it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileBudgets {
    /// Default `USD`.
    pub(super) currency: Option<String>,
    /// Units of the budget currency per unit of another (`CNY = "0.138"`).
    #[serde(default)]
    pub(super) rates: HashMap<String, filters::pricing::PriceLiteral>,
}

/// `[auth]`: how clients are recognised.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileAuth {
    /// Requests from 127.0.0.1 or ::1 without a key act as this key (by name).
    pub(super) localhost_key: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileServer {
    pub(super) listen: Option<OneOrMany>,
    /// Addresses served over TLS (one or a list, like `listen`).
    pub(super) tls_listen: Option<OneOrMany>,
    /// The certificates of the TLS listeners.
    pub(super) tls: Option<FileTls>,
    /// Cleartext HTTP/2 (prior knowledge) on the plain listeners.
    pub(super) h2c: Option<bool>,
    pub(super) threads: Option<usize>,
    pub(super) upstream_pool_size: Option<usize>,
    pub(super) max_request_body_bytes: Option<usize>,
    /// Gateway-wide upstream defaults; a provider may override each.
    #[serde(default, with = "humantime_serde")]
    pub(super) connect_timeout: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub(super) first_event_timeout: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub(super) idle_timeout: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub(super) keepalive_interval: Option<Duration>,
    /// Whole request, every attempt and the stream included.
    #[serde(default, with = "humantime_serde")]
    pub(super) total_timeout: Option<Duration>,
    /// Client side: the whole request head must arrive within this.
    #[serde(default, with = "humantime_serde")]
    pub(super) client_header_timeout: Option<Duration>,
    /// Client side: the whole request body must arrive within this.
    #[serde(default, with = "humantime_serde")]
    pub(super) client_body_timeout: Option<Duration>,
    /// Client side: a kept-alive connection waiting for its next request.
    #[serde(default, with = "humantime_serde")]
    pub(super) client_idle_timeout: Option<Duration>,
    /// Client side: a client that reads nothing of its response this long
    /// is dropped (and its upstream call cancelled).
    #[serde(default, with = "humantime_serde")]
    pub(super) client_write_timeout: Option<Duration>,
    /// Past this many open client connections, new ones get a fast 503.
    pub(super) max_connections: Option<usize>,
    /// Largest request head (request line and headers), in bytes.
    pub(super) max_request_header_bytes: Option<usize>,
    /// Most headers one request may carry.
    pub(super) max_request_headers: Option<usize>,
    /// On SIGTERM/SIGINT, how long requests in flight may still run.
    #[serde(default, with = "humantime_serde")]
    pub(super) shutdown_grace: Option<Duration>,
    /// Largest upstream SSE line or event; a bigger one fails the upstream.
    pub(super) max_event_bytes: Option<usize>,
    /// Watch the file and publish each valid change (SIGHUP always does).
    pub(super) reload: Option<bool>,
    /// The access log's form: a text line, a JSON object per line, or none.
    pub(super) access_log: Option<FileAccessLog>,
    /// `GET /metrics` only with an admin or viewer key (open by default).
    pub(super) metrics_require_key: Option<bool>,
}

/// `[server.tls]`: the default certificate (for clients without SNI or
/// with a name no other certificate serves), PEM files.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileTls {
    pub(super) cert_path: String,
    pub(super) key_path: String,
    /// Offer HTTP/2 by ALPN (default true).
    pub(super) http2: Option<bool>,
    /// Further certificates, chosen by the name the client asks for (SNI).
    #[serde(default)]
    pub(super) certificates: Vec<FileCertificate>,
}

/// `[[server.tls.certificates]]`: served for the DNS names of its own
/// subject alternative names, or for `names` when given.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileCertificate {
    pub(super) cert_path: String,
    pub(super) key_path: String,
    pub(super) names: Option<Vec<String>>,
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub(super) enum ProviderType {
    #[serde(rename = "openai")]
    OpenAi,
    Anthropic,
    Gemini,
    #[serde(rename = "openai-responses")]
    OpenAiResponses,
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub(super) enum FileMidSystem {
    Keep,
    Demote,
    Merge,
    Drop,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileProvider {
    pub(super) name: String,
    /// A known vendor or local server (`config::preset`): fills in what
    /// is left unset below.
    pub(super) preset: Option<String>,
    /// Unset: the preset's (OpenAI Chat without one).
    #[serde(rename = "type")]
    pub(super) kind: Option<ProviderType>,
    /// One URL, or several replicas of the same service; unset: the
    /// preset's.
    pub(super) base_url: Option<OneOrMany>,
    /// `false` takes the provider out of service, kept in the file.
    pub(super) enabled: Option<bool>,
    /// The earlier systems' name for `enabled`.
    pub(super) is_active: Option<bool>,
    pub(super) display_name: Option<String>,
    pub(super) description: Option<String>,
    #[serde(default)]
    pub(super) tags: Vec<String>,
    /// How the key is sent, or a token to log in for.
    pub(super) auth: Option<FileProviderAuth>,
    /// Replica weights for round-robin, in `base_url` order.
    pub(super) weights: Option<Vec<usize>>,
    pub(super) balance: Option<FileBalance>,
    pub(super) health_check: Option<FileHealthCheck>,
    pub(super) api_key: Option<String>,
    pub(super) api_key_env: Option<String>,
    /// Several keys, used in rotation.
    #[serde(default)]
    pub(super) api_keys: Vec<String>,
    #[serde(default)]
    pub(super) api_keys_env: Vec<String>,
    /// The longest rest of a key after repeated 429s without
    /// `Retry-After` (rests start at 1s and double up to it).
    #[serde(default, with = "humantime_serde")]
    pub(super) key_cooldown: Option<Duration>,
    /// Every upstream `Retry-After` is clamped to this.
    #[serde(default, with = "humantime_serde")]
    pub(super) max_cooldown: Option<Duration>,
    #[serde(default)]
    pub(super) breaker: FileBreaker,
    #[serde(default)]
    pub(super) headers: HashMap<String, String>,
    pub(super) max_tokens_field: Option<String>,
    pub(super) reasoning_effort: Option<bool>,
    /// How a request for reasoning is sent to an OpenAI-compatible
    /// backend: `reasoning_effort`, `enable_thinking`, `thinking`,
    /// `reasoning`, `chat_template_kwargs` or `none`.
    pub(super) reasoning_param: Option<String>,
    /// Earlier turns' reasoning is sent back as `reasoning_content`.
    pub(super) reasoning_history: Option<bool>,
    pub(super) mid_conversation_system: Option<FileMidSystem>,
    pub(super) default_max_tokens: Option<u64>,
    #[serde(default, with = "humantime_serde")]
    pub(super) connect_timeout: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub(super) first_event_timeout: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub(super) idle_timeout: Option<Duration>,
    /// Shared by every key: keeps the team under its upstream quota.
    pub(super) limits: Option<Limits>,
    /// Money per day and month, for every call this provider serves.
    pub(super) budget: Option<Budget>,
    /// HTTP/2 to this provider: ALPN `h2` on `https`, prior knowledge
    /// (h2c) on `http`.
    #[serde(default)]
    pub(super) http2: bool,
    /// The client's `anthropic-beta` header: `forward` (the default),
    /// `drop`, or an allow-list.
    pub(super) anthropic_beta: Option<FileBetaPolicy>,
}

/// A provider's `auth`: a header and format for its keys, a fixed token,
/// or a login that yields a token. Which one is read from what is set.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileProviderAuth {
    /// The header the credential goes in (default `Authorization`).
    pub(super) header: Option<String>,
    /// The header's value: `{key}` (or `{token}`) is replaced by the
    /// credential (default `Bearer {key}`).
    pub(super) format: Option<String>,
    pub(super) token: Option<String>,
    pub(super) token_env: Option<String>,
    pub(super) login_url: Option<String>,
    pub(super) username: Option<String>,
    pub(super) username_env: Option<String>,
    pub(super) password: Option<String>,
    pub(super) password_env: Option<String>,
    pub(super) username_field: Option<String>,
    pub(super) password_field: Option<String>,
    pub(super) token_path: Option<String>,
    pub(super) expires_in_path: Option<String>,
    #[serde(default, with = "humantime_serde")]
    pub(super) ttl: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub(super) refresh_before: Option<Duration>,
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub(super) enum FileBalance {
    RoundRobin,
    LeastInflight,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileHealthCheck {
    pub(super) path: Option<String>,
    #[serde(default, with = "humantime_serde")]
    pub(super) interval: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub(super) timeout: Option<Duration>,
    pub(super) healthy_threshold: Option<usize>,
    pub(super) unhealthy_threshold: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileBreaker {
    pub(super) consecutive_failures: Option<u32>,
    pub(super) error_rate: Option<f64>,
    pub(super) min_requests: Option<u32>,
    #[serde(default, with = "humantime_serde")]
    pub(super) window: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub(super) cooldown: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub(super) max_cooldown: Option<Duration>,
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub(super) enum FileReasoningOutput {
    Delta,
    Whole,
    Omit,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileTarget {
    pub(super) provider: String,
    pub(super) model: String,
    pub(super) enabled: Option<bool>,
    pub(super) is_active: Option<bool>,
    /// Where this target differs from its model's.
    pub(super) capabilities: Option<FileCapabilities>,
    pub(super) tool_emulation: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileModel {
    pub(super) name: String,
    pub(super) enabled: Option<bool>,
    pub(super) is_active: Option<bool>,
    pub(super) display_name: Option<String>,
    pub(super) description: Option<String>,
    /// Other names (exact) this model answers to.
    #[serde(default)]
    pub(super) aliases: Vec<String>,
    /// For `tags:` queries: all asked must be present.
    #[serde(default)]
    pub(super) tags: Vec<String>,
    /// Among models a `tags:` query matches, the highest wins.
    #[serde(default)]
    pub(super) priority: i64,
    #[serde(default)]
    pub(super) capabilities: FileCapabilities,
    /// Targets without native tools get them through the prompt.
    #[serde(default)]
    pub(super) tool_emulation: bool,
    pub(super) targets: Vec<FileTarget>,
    pub(super) max_output_tokens: Option<u64>,
    /// How reasoning reaches OpenAI Chat clients; unset: decided per client.
    pub(super) openai_reasoning: Option<FileReasoningOutput>,
    /// Overrides of the provider's (or server's) budgets for this model.
    #[serde(default, with = "humantime_serde")]
    pub(super) connect_timeout: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub(super) first_event_timeout: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub(super) idle_timeout: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub(super) total_timeout: Option<Duration>,
    /// Shared by every key that uses the model.
    pub(super) limits: Option<Limits>,
    /// Money per day and month, shared by every key that uses the model.
    pub(super) budget: Option<Budget>,
}

/// `[[api_keys]]`: the key itself and the attributes every key has
/// (`filters::auth::KeySpec`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileApiKey {
    pub(super) key: String,
    pub(super) name: String,
    #[serde(default)]
    pub(super) description: String,
    #[serde(default)]
    pub(super) roles: Vec<String>,
    pub(super) enabled: Option<bool>,
    pub(super) is_active: Option<bool>,
    /// RFC 3339 (TOML's own datetimes are refused: a string says the zone).
    pub(super) expires_at: Option<String>,
    pub(super) allowed_models: Option<Vec<String>>,
    pub(super) allowed_providers: Option<Vec<String>>,
    pub(super) limits: Option<Limits>,
    pub(super) budget: Option<Budget>,
    pub(super) max_output_tokens: Option<u64>,
    #[serde(default)]
    pub(super) deny_params: Vec<String>,
    pub(super) log_conversations: Option<bool>,
}
