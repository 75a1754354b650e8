//! From the file mirror to the runtime snapshot, one section at a time.
//! Every problem is collected (not just the first), each naming the TOML
//! path it concerns; a secret's value never appears in a message.

use super::file::FileBudgets;
use super::file::FileStoreBackend;
use super::file::{
    FileAccessLog, FileApiKey, FileBalance, FileConfig, FileLimitBackend, FileLimits, FileLogging,
    FileMidSystem, FileModel, FileOnBackendError, FileProvider, FileReasoningOutput, FileServer,
    OneOrMany, ProviderType,
};
use super::secret::Secret;
use super::snapshot::StoreBackend;
use super::snapshot::{
    AccessLog, Balance, ConversationFiles, Downstream, HealthCheck, LimitBackend, LimitSettings,
    Process, Provider, ReplicaSpec, Replicas, Route, Snapshot, Target, Timeouts,
};
use super::snapshot::{CertFiles, Tls};
use super::ConfigErrors;
use filters::auth::{ClientKey, KeySource, KeySpec};
use filters::breaker::BreakerConfig;
use filters::limits::Limits;
use filters::wire::http::host_header;
use filters::{dialect, Dialect};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

const DEFAULT_LISTEN: &str = "127.0.0.1:8000";
/// Enough idle connections for a few thousand requests in flight.
const DEFAULT_UPSTREAM_POOL: usize = 1024;
const DEFAULT_MAX_BODY: usize = 32 * 1024 * 1024;
const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(30);
const DEFAULT_KEY_COOLDOWN: Duration = Duration::from_secs(30);
const DEFAULT_MAX_COOLDOWN: Duration = Duration::from_secs(10 * 60);
const DEFAULT_DOWNSTREAM: Downstream = Downstream {
    client_header_timeout: Duration::from_secs(10),
    client_body_timeout: Duration::from_secs(60),
    client_idle_timeout: Duration::from_secs(60),
    client_write_timeout: Duration::from_secs(60),
    max_connections: 10_000,
    max_request_header_bytes: 64 * 1024,
    max_request_headers: 100,
    max_event_bytes: 16 * 1024 * 1024,
};

/// What each bounded setting accepts, both ends included. Below the floor
/// a setting cannot work (a zero keep-alive interval busy-loops, a zero
/// timeout fails every request); above the ceiling it is a typo.
mod bounds {
    use super::Bounds;
    use std::time::Duration;

    const fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }
    const fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }
    const MIN: u64 = 60;
    const HOUR: u64 = 60 * MIN;
    const KIB: usize = 1024;
    const MIB: usize = 1024 * KIB;

    // Upstream budgets: [server], and the overrides of providers and models.
    pub const CONNECT_TIMEOUT: Bounds<Duration> = Bounds(ms(100), secs(5 * MIN));
    /// A sub-second floor: a local model answers (or fails over) that fast.
    pub const FIRST_EVENT_TIMEOUT: Bounds<Duration> = Bounds(ms(100), secs(HOUR));
    pub const IDLE_TIMEOUT: Bounds<Duration> = Bounds(secs(1), secs(HOUR));
    pub const KEEPALIVE_INTERVAL: Bounds<Duration> = Bounds(secs(1), secs(10 * MIN));
    pub const TOTAL_TIMEOUT: Bounds<Duration> = Bounds(secs(1), secs(24 * HOUR));
    // [server]: clients and the process.
    pub const CLIENT_HEADER_TIMEOUT: Bounds<Duration> = Bounds(secs(1), secs(5 * MIN));
    pub const CLIENT_BODY_TIMEOUT: Bounds<Duration> = Bounds(secs(1), secs(HOUR));
    pub const CLIENT_IDLE_TIMEOUT: Bounds<Duration> = Bounds(secs(1), secs(HOUR));
    pub const CLIENT_WRITE_TIMEOUT: Bounds<Duration> = Bounds(secs(1), secs(HOUR));
    pub const SHUTDOWN_GRACE: Bounds<Duration> = Bounds(secs(1), secs(HOUR));
    pub const MAX_CONNECTIONS: Bounds<usize> = Bounds(1, 1_000_000);
    /// Pingora reads at most 1 MiB of request head.
    pub const MAX_REQUEST_HEADER_BYTES: Bounds<usize> = Bounds(KIB, 512 * KIB);
    /// Pingora parses at most 256 headers.
    pub const MAX_REQUEST_HEADERS: Bounds<usize> = Bounds(8, 256);
    pub const MAX_EVENT_BYTES: Bounds<usize> = Bounds(64 * KIB, 256 * MIB);
    // [[providers]]: key rests, breaker, health checks.
    pub const KEY_COOLDOWN: Bounds<Duration> = Bounds(secs(1), secs(HOUR));
    pub const MAX_COOLDOWN: Bounds<Duration> = Bounds(secs(1), secs(24 * HOUR));
    pub const BREAKER_WINDOW: Bounds<Duration> = Bounds(secs(1), secs(24 * HOUR));
    pub const BREAKER_COOLDOWN: Bounds<Duration> = Bounds(secs(1), secs(24 * HOUR));
    pub const BREAKER_MAX_COOLDOWN: Bounds<Duration> = Bounds(secs(1), secs(24 * HOUR));
    /// Checks run one after another, so a timeout longer than the
    /// interval only spaces them out: the two are not cross-checked.
    pub const HEALTH_INTERVAL: Bounds<Duration> = Bounds(ms(100), secs(HOUR));
    pub const HEALTH_TIMEOUT: Bounds<Duration> = Bounds(ms(100), secs(5 * MIN));
    // [limits]
    pub const REDIS_TIMEOUT: Bounds<Duration> = Bounds(ms(10), secs(30));
}

pub(super) type Errors = Vec<String>;

/// The least and the most a setting accepts, both included.
#[derive(Debug, Clone, Copy)]
struct Bounds<T>(T, T);

/// A value that `Bounds` can check and a message can show.
trait Bounded: Copy + PartialOrd {
    /// What a value below the floor, and above the ceiling, is.
    const TOO: (&'static str, &'static str);
    fn show(self) -> String;
}

impl Bounded for Duration {
    const TOO: (&'static str, &'static str) = ("too short", "too long");
    fn show(self) -> String {
        show_duration(self)
    }
}

impl Bounded for usize {
    const TOO: (&'static str, &'static str) = ("too small", "too large");
    fn show(self) -> String {
        self.to_string()
    }
}

impl<T: Bounded> Bounds<T> {
    /// The configured value, if any; one out of bounds is reported at
    /// `path` (and returned all the same: the errors stop the snapshot).
    fn check(self, path: &str, value: Option<T>, errs: &mut Errors) -> Option<T> {
        let v = value?;
        if v < self.0 {
            errs.push(format!(
                "{path}: {} is {} (at least {})",
                v.show(),
                T::TOO.0,
                self.0.show()
            ));
        } else if v > self.1 {
            errs.push(format!(
                "{path}: {} is {} (at most {})",
                v.show(),
                T::TOO.1,
                self.1.show()
            ));
        }
        Some(v)
    }
}

/// A duration the way the file would spell it: `0s`, `100ms`, `90s`,
/// `5m`, `24h`.
pub(crate) fn show_duration(d: Duration) -> String {
    if !d.subsec_nanos().is_multiple_of(1_000_000) {
        return format!("{d:?}");
    }
    let ms = d.as_millis();
    if ms == 0 {
        "0s".to_owned()
    } else if ms.is_multiple_of(3_600_000) {
        format!("{}h", ms / 3_600_000)
    } else if ms.is_multiple_of(60_000) {
        format!("{}m", ms / 60_000)
    } else if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

/// Why `value` (a key or token) cannot be sent as an HTTP header value,
/// if it cannot: only visible ASCII is. Positions count characters from
/// 1; the value itself is never in the answer.
pub(super) fn header_value_problem(value: &str) -> Option<String> {
    if value.is_empty() {
        return Some("must not be empty".to_owned());
    }
    value.chars().enumerate().find_map(|(i, c)| {
        let what = match c {
            '!'..='~' => return None,
            ' ' => "space",
            c if c.is_ascii_control() => "control character",
            _ => "non-ASCII character",
        };
        Some(format!(
            "not a valid header value ({what} at position {})",
            i + 1
        ))
    })
}

pub(super) fn validate(mut f: FileConfig) -> Result<Snapshot, ConfigErrors> {
    let mut errs = Errors::new();
    // Presets first: what they fill in is then checked as if typed.
    let filled: Vec<_> = f
        .providers
        .iter_mut()
        .enumerate()
        .map(|(i, p)| {
            super::preset::apply(p).unwrap_or_else(|e| {
                errs.push(format!("providers[{i}].{e}"));
                None
            })
        })
        .collect();
    let Server {
        process,
        base,
        total_timeout,
        downstream,
    } = server(&f.server, &mut errs);
    let mut providers: Vec<Arc<Provider>> = Vec::new();
    let mut by_name: HashMap<&str, Arc<Provider>> = HashMap::new();
    for (i, p) in f.providers.iter().enumerate() {
        let at = format!("providers[{i}]");
        if by_name.contains_key(p.name.as_str()) {
            errs.push(format!("{at}.name: provider '{}' is defined twice", p.name));
        }
        let preset = filled.get(i).cloned().flatten();
        if let Some(provider) = provider(&at, p, providers.len(), &base, preset, &mut errs) {
            let provider = Arc::new(provider);
            by_name.insert(&p.name, provider.clone());
            providers.push(provider);
        }
    }
    let (routes, model_names, target_slots, disabled) =
        models(&f.models, &by_name, total_timeout, &mut errs);
    let routing = super::routing::routing(&f.routing, &f.models, &routes, &disabled, &mut errs);
    // An allow-list may name a model or one of its aliases (one out of
    // service too: it may return).
    let callable: Vec<String> = model_names
        .iter()
        .chain(&disabled)
        .cloned()
        .chain(f.models.iter().flat_map(|m| m.aliases.iter().cloned()))
        .collect();
    let keys = api_keys(&f.api_keys, &callable, &by_name, &mut errs);
    let (limit_backend, limits) = limits_section(&f.limits, &f.budgets, &mut errs);
    let prices = filters::pricing::PriceTable::with_overrides(&f.prices)
        .map_err(|e| errs.extend(e))
        .ok();
    if let Some(prices) = &prices {
        budget_rates(&routes, &keys, prices, &limits.budgets, &mut errs);
    }
    let conversation_files = logging_files(&f.logging, &mut errs);
    let access_file = access_file(&f.logging, &mut errs);
    let telemetry = telemetry(&f.telemetry, &mut errs);
    let admin_listen = f.admin.listen.clone();
    if let Some(a) = &admin_listen {
        match a.parse::<std::net::SocketAddr>() {
            Err(_) => errs.push(format!(
                "admin.listen: '{a}' is not an address like 127.0.0.1:8001"
            )),
            Ok(addr) if process.listen.iter().any(|l| l.parse() == Ok(addr)) => errs.push(format!(
                "admin.listen: '{a}' is also in server.listen; give the admin plane an address of its own"
            )),
            Ok(addr) if process.tls_listen.iter().any(|l| l.parse() == Ok(addr)) => errs.push(format!(
                "admin.listen: '{a}' is also in server.tls_listen; give the admin plane an address of its own"
            )),
            Ok(_) => {}
        }
    }
    let localhost_key = f.auth.localhost_key.clone();
    if let Some(name) = &localhost_key {
        if !keys.values().any(|k| &k.name == name) {
            errs.push(format!(
                "auth.localhost_key: no key named '{name}' in [[api_keys]]"
            ));
        }
    }
    let sqlite_path = f
        .storage
        .sqlite_path
        .clone()
        .unwrap_or_else(|| "modelswitch.db".to_owned());
    if sqlite_path.is_empty() {
        errs.push("storage.sqlite_path: must not be empty".into());
    }
    if let Some(n) = f
        .storage
        .usage_queue
        .filter(|n| !(1..=10_000_000).contains(n))
    {
        errs.push(format!(
            "storage.usage_queue: {n} is out of range (1 to 10000000 rows; past the queue, rows spill to disk)"
        ));
    }
    let store_backend = match f.storage.backend.unwrap_or(FileStoreBackend::Sqlite) {
        FileStoreBackend::Sqlite => {
            if f.storage.postgres_url.is_some() || f.storage.postgres_url_env.is_some() {
                errs.push(
                    "storage.postgres_url: only read with backend = \"postgres\" \
                     (the backend is sqlite)"
                        .into(),
                );
            }
            StoreBackend::Sqlite
        }
        // Checked by the store's own parser; messages never hold the URL.
        FileStoreBackend::Postgres => match crate::store::resolve_url(
            f.storage.postgres_url.as_deref(),
            f.storage.postgres_url_env.as_deref(),
        ) {
            Ok(url) => StoreBackend::Postgres {
                url: Secret::new(url),
            },
            Err(e) => {
                errs.push(e);
                StoreBackend::Sqlite
            }
        },
    };
    if !errs.is_empty() {
        return Err(ConfigErrors(errs));
    }
    let process = Process {
        sqlite_path: sqlite_path.into(),
        limit_backend,
        record_usage: f.storage.record_usage.unwrap_or(true),
        usage_queue: f.storage.usage_queue.unwrap_or(crate::usage::QUEUE_ROWS),
        store_backend,
        conversation_files,
        access_file,
        admin_listen,
        ..process
    };
    let Some(prices) = prices else {
        return Err(ConfigErrors(errs));
    };
    Ok(Snapshot {
        limits,
        prices: Arc::new(prices),
        localhost_key,
        process,
        reload: f.server.reload.unwrap_or(true),
        metrics_require_key: f.server.metrics_require_key.unwrap_or(false),
        log_conversations: f.logging.conversations.unwrap_or(false),
        access_log: match f.server.access_log {
            None | Some(FileAccessLog::Text) => AccessLog::Text,
            Some(FileAccessLog::Json) => AccessLog::Json,
            Some(FileAccessLog::Off) => AccessLog::Off,
        },
        max_request_body_bytes: f.server.max_request_body_bytes.unwrap_or(DEFAULT_MAX_BODY),
        downstream,
        providers,
        routes,
        model_names,
        keys,
        target_slots,
        telemetry,
        routing,
    })
}

/// `[logging]`'s files: a daily file rolls over at `max_file_bytes`
/// (64 MiB) and is kept `retention` (14 days), `max_files` (1000) at most.
fn logging_files(l: &FileLogging, errs: &mut Errors) -> ConversationFiles {
    let dir = l.dir.clone().unwrap_or_else(|| "conversations".to_owned());
    if dir.is_empty() {
        errs.push("logging.dir: must not be empty".into());
    }
    let max_file_bytes = l.max_file_bytes.unwrap_or(64 << 20);
    if max_file_bytes < 4096 {
        errs.push("logging.max_file_bytes: must be at least 4096".into());
    }
    let retention = l.retention.unwrap_or(Duration::from_secs(14 * 86_400));
    if retention < Duration::from_secs(3600) {
        errs.push("logging.retention: must be at least 1h".into());
    }
    let max_files = l.max_files.unwrap_or(1000);
    if max_files == 0 {
        errs.push("logging.max_files: must be at least 1".into());
    }
    ConversationFiles {
        dir: dir.into(),
        max_file_bytes,
        retention,
        max_files,
    }
}

/// `[logging] access_file`, as written (resolved beside the config on load).
fn access_file(l: &FileLogging, errs: &mut Errors) -> Option<std::path::PathBuf> {
    match l.access_file.as_deref() {
        Some("") => {
            errs.push("logging.access_file: must not be empty (leave it out for stderr)".into());
            None
        }
        other => other.map(Into::into),
    }
}

fn one_or_many(v: &OneOrMany) -> Vec<String> {
    match v {
        OneOrMany::One(a) => vec![a.clone()],
        OneOrMany::Many(v) => v.clone(),
    }
}

/// What `[server]` sets.
struct Server {
    process: Process,
    /// The gateway-wide upstream budgets.
    base: Timeouts,
    total_timeout: Duration,
    downstream: Downstream,
}

/// `[server]`: process settings, client limits and the gateway-wide
/// upstream budgets.
fn server(server: &FileServer, errs: &mut Errors) -> Server {
    let listen = server
        .listen
        .as_ref()
        .map_or_else(|| vec![DEFAULT_LISTEN.to_owned()], one_or_many);
    let tls_listen = server
        .tls_listen
        .as_ref()
        .map_or_else(Vec::new, one_or_many);
    if listen.is_empty() && tls_listen.is_empty() {
        errs.push("server.listen: at least one address is required (here or in tls_listen)".into());
    }
    for (i, a) in listen.iter().enumerate() {
        if a.parse::<std::net::SocketAddr>().is_err() {
            errs.push(format!(
                "server.listen[{i}]: '{a}' is not an address like 127.0.0.1:8000"
            ));
        }
    }
    let tls = tls_section(server, &listen, &tls_listen, errs);
    let base = Timeouts {
        connect: bounds::CONNECT_TIMEOUT
            .check("server.connect_timeout", server.connect_timeout, errs)
            .unwrap_or(Duration::from_secs(10)),
        first_event: bounds::FIRST_EVENT_TIMEOUT
            .check(
                "server.first_event_timeout",
                server.first_event_timeout,
                errs,
            )
            .unwrap_or(Duration::from_secs(120)),
        idle: bounds::IDLE_TIMEOUT
            .check("server.idle_timeout", server.idle_timeout, errs)
            .unwrap_or(Duration::from_secs(300)),
        keepalive: bounds::KEEPALIVE_INTERVAL
            .check("server.keepalive_interval", server.keepalive_interval, errs)
            .unwrap_or(Duration::from_secs(15)),
    };
    let total_timeout = bounds::TOTAL_TIMEOUT
        .check("server.total_timeout", server.total_timeout, errs)
        .unwrap_or(Duration::from_secs(900));
    let d = DEFAULT_DOWNSTREAM;
    let downstream = Downstream {
        client_header_timeout: bounds::CLIENT_HEADER_TIMEOUT
            .check(
                "server.client_header_timeout",
                server.client_header_timeout,
                errs,
            )
            .unwrap_or(d.client_header_timeout),
        client_body_timeout: bounds::CLIENT_BODY_TIMEOUT
            .check(
                "server.client_body_timeout",
                server.client_body_timeout,
                errs,
            )
            .unwrap_or(d.client_body_timeout),
        client_idle_timeout: bounds::CLIENT_IDLE_TIMEOUT
            .check(
                "server.client_idle_timeout",
                server.client_idle_timeout,
                errs,
            )
            .unwrap_or(d.client_idle_timeout),
        client_write_timeout: bounds::CLIENT_WRITE_TIMEOUT
            .check(
                "server.client_write_timeout",
                server.client_write_timeout,
                errs,
            )
            .unwrap_or(d.client_write_timeout),
        max_connections: bounds::MAX_CONNECTIONS
            .check("server.max_connections", server.max_connections, errs)
            .unwrap_or(d.max_connections),
        max_request_header_bytes: bounds::MAX_REQUEST_HEADER_BYTES
            .check(
                "server.max_request_header_bytes",
                server.max_request_header_bytes,
                errs,
            )
            .unwrap_or(d.max_request_header_bytes),
        max_request_headers: bounds::MAX_REQUEST_HEADERS
            .check(
                "server.max_request_headers",
                server.max_request_headers,
                errs,
            )
            .unwrap_or(d.max_request_headers),
        max_event_bytes: bounds::MAX_EVENT_BYTES
            .check("server.max_event_bytes", server.max_event_bytes, errs)
            .unwrap_or(d.max_event_bytes),
    };
    let process = Process {
        listen,
        tls_listen,
        tls,
        h2c: server.h2c.unwrap_or(false),
        // Set by `validate` from [admin].
        admin_listen: None,
        threads: server.threads.unwrap_or(0),
        upstream_pool_size: server.upstream_pool_size.unwrap_or(DEFAULT_UPSTREAM_POOL),
        shutdown_grace: bounds::SHUTDOWN_GRACE
            .check("server.shutdown_grace", server.shutdown_grace, errs)
            .unwrap_or(DEFAULT_SHUTDOWN_GRACE),
        // Set by `validate` from [storage], [limits] and [logging].
        sqlite_path: std::path::PathBuf::new(),
        limit_backend: LimitBackend::Memory,
        record_usage: false,
        usage_queue: crate::usage::QUEUE_ROWS,
        store_backend: StoreBackend::Sqlite,
        conversation_files: ConversationFiles {
            dir: std::path::PathBuf::new(),
            max_file_bytes: 0,
            retention: Duration::ZERO,
            max_files: 0,
        },
        access_file: None,
    };
    Server {
        process,
        base,
        total_timeout,
        downstream,
    }
}

/// `[server] tls_listen` and `[server.tls]`: the addresses and which files
/// hold the certificates (their contents are checked by `crate::tls` once
/// the paths are resolved, see `load_text`).
fn tls_section(
    server: &FileServer,
    listen: &[String],
    tls_listen: &[String],
    errs: &mut Errors,
) -> Option<Tls> {
    for (i, a) in tls_listen.iter().enumerate() {
        match a.parse::<std::net::SocketAddr>() {
            Err(_) => errs.push(format!(
                "server.tls_listen[{i}]: '{a}' is not an address like 0.0.0.0:8443"
            )),
            Ok(addr) if listen.iter().any(|l| l.parse() == Ok(addr)) => errs.push(format!(
                "server.tls_listen[{i}]: '{a}' is also in server.listen; one address serves one of them"
            )),
            Ok(_) => {}
        }
    }
    let Some(t) = &server.tls else {
        if !tls_listen.is_empty() {
            errs.push(
                "server.tls_listen: needs a certificate: [server.tls] cert_path and key_path"
                    .into(),
            );
        }
        return None;
    };
    let mut files = |at: String, cert: &str, key: &str, names: Option<&Vec<String>>| {
        for (field, v) in [("cert_path", cert), ("key_path", key)] {
            if v.is_empty() {
                errs.push(format!("{at}.{field}: must not be empty"));
            }
        }
        for (j, n) in names.into_iter().flatten().enumerate() {
            if let Err(e) = crate::tls::sni::check_name(n) {
                errs.push(format!("{at}.names[{j}]: '{n}' {e}"));
            }
        }
        if names.is_some_and(Vec::is_empty) {
            errs.push(format!(
                "{at}.names: empty: leave it out to use the certificate's own names"
            ));
        }
        CertFiles {
            cert: cert.into(),
            key: key.into(),
            names: names.cloned(),
            at,
        }
    };
    let default = files("server.tls".into(), &t.cert_path, &t.key_path, None);
    let sni = t
        .certificates
        .iter()
        .enumerate()
        .map(|(i, c)| {
            files(
                format!("server.tls.certificates[{i}]"),
                &c.cert_path,
                &c.key_path,
                c.names.as_ref(),
            )
        })
        .collect();
    Some(Tls {
        default,
        sni,
        http2: t.http2.unwrap_or(true),
    })
}

/// The provider's keys, inline and from the environment. A key that
/// cannot be sent as a header value (a stray newline from a secrets file,
/// a pasted non-breaking space) is refused here, naming where it came
/// from but never its value, rather than silently never sent.
fn provider_keys(at: &str, p: &FileProvider, enabled: bool, errs: &mut Errors) -> Vec<Secret> {
    let mut keys = Vec::new();
    let inline = p.api_key.iter().map(|k| (format!("{at}.api_key"), k));
    let list = p
        .api_keys
        .iter()
        .enumerate()
        .map(|(j, k)| (format!("{at}.api_keys[{j}]"), k));
    for (path, key) in inline.chain(list) {
        match header_value_problem(key) {
            Some(problem) => errs.push(format!("{path}: {problem}")),
            None => keys.push(Secret::new(key.clone())),
        }
    }
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
            Ok(v) if !v.is_empty() => match header_value_problem(&v) {
                Some(problem) => errs.push(format!("{path}: {var}: {problem}")),
                None => keys.push(Secret::new(v)),
            },
            // Out of service, a provider may lose its key first.
            _ if !enabled => {}
            _ => errs.push(format!("{path}: environment variable {var} is not set")),
        }
    }
    // No key at all is fine: local servers (Ollama, vLLM) often need none.
    keys
}

fn breaker(at: &str, p: &FileProvider, errs: &mut Errors) -> BreakerConfig {
    let b = &p.breaker;
    let d = BreakerConfig::default();
    let breaker = BreakerConfig {
        consecutive_failures: b
            .consecutive_failures
            .unwrap_or(d.consecutive_failures)
            .max(1),
        error_rate: b.error_rate.unwrap_or(d.error_rate),
        min_requests: b.min_requests.unwrap_or(d.min_requests).max(1),
        window: bounds::BREAKER_WINDOW
            .check(&format!("{at}.breaker.window"), b.window, errs)
            .unwrap_or(d.window),
        cooldown: bounds::BREAKER_COOLDOWN
            .check(&format!("{at}.breaker.cooldown"), b.cooldown, errs)
            .unwrap_or(d.cooldown),
        max_cooldown: bounds::BREAKER_MAX_COOLDOWN
            .check(&format!("{at}.breaker.max_cooldown"), b.max_cooldown, errs)
            .unwrap_or(d.max_cooldown),
    };
    if !(0.0..=1.0).contains(&breaker.error_rate) || breaker.error_rate == 0.0 {
        errs.push(format!("{at}.breaker.error_rate: must be in (0, 1]"));
    }
    if breaker.cooldown > breaker.max_cooldown {
        let (cooldown, max) = (
            show_duration(breaker.cooldown),
            show_duration(breaker.max_cooldown),
        );
        // Blame the one that was set (the other is the default).
        errs.push(if b.cooldown.is_some() {
            format!("{at}.breaker.cooldown: {cooldown} is longer than max_cooldown ({max})")
        } else {
            format!("{at}.breaker.max_cooldown: {max} is shorter than cooldown ({cooldown})")
        });
    }
    breaker
}

fn extra_headers(
    at: &str,
    p: &FileProvider,
    errs: &mut Errors,
) -> Vec<(http::HeaderName, http::HeaderValue)> {
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
    headers
}

/// `base_url` (one or several replicas) → (tls, host, port, prefix) each.
fn base_urls(at: &str, p: &FileProvider, errs: &mut Errors) -> Vec<(bool, String, u16, String)> {
    let Some(base_url) = &p.base_url else {
        errs.push(format!(
            "{at}.base_url: required (or a preset that has one for this type)"
        ));
        return Vec::new();
    };
    let urls = one_or_many(base_url);
    if urls.is_empty() {
        errs.push(format!("{at}.base_url: at least one URL is required"));
    }
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
    if let Some((tls, _, _, prefix)) = parsed.first() {
        if parsed
            .iter()
            .any(|(t, _, _, pre)| t != tls || pre != prefix)
        {
            errs.push(format!(
                "{at}.base_url: replicas must share the scheme and the path"
            ));
        }
    }
    parsed
}

fn replicas(
    at: &str,
    p: &FileProvider,
    dialect: Dialect,
    parsed: &[(bool, String, u16, String)],
    errs: &mut Errors,
) -> Option<Replicas> {
    let weights = p.weights.clone().unwrap_or_else(|| vec![1; parsed.len()]);
    if weights.len() != parsed.len() || weights.contains(&0) {
        errs.push(format!("{at}.weights: one positive weight per base_url"));
    }
    if parsed.len() <= 1 && p.health_check.is_none() {
        if p.balance.is_some() {
            errs.push(format!("{at}.balance: needs several base_url replicas"));
        }
        return None;
    }
    let prefix = parsed.first().map_or("", |(_, _, _, pre)| pre.as_str());
    let specs = parsed
        .iter()
        .zip(weights.iter().chain(std::iter::repeat(&1)))
        .map(|((_, h, port, _), w)| ReplicaSpec {
            host: h.clone(),
            port: *port,
            weight: *w,
        })
        .collect();
    let health = p.health_check.as_ref().map(|h| HealthCheck {
        path: h
            .path
            .clone()
            .unwrap_or_else(|| dialect::health_path(dialect, prefix)),
        interval: bounds::HEALTH_INTERVAL
            .check(&format!("{at}.health_check.interval"), h.interval, errs)
            .unwrap_or(Duration::from_secs(10)),
        timeout: bounds::HEALTH_TIMEOUT
            .check(&format!("{at}.health_check.timeout"), h.timeout, errs)
            .unwrap_or(Duration::from_secs(2)),
        healthy_threshold: h.healthy_threshold.unwrap_or(1),
        unhealthy_threshold: h.unhealthy_threshold.unwrap_or(2),
    });
    let balance = match p.balance.unwrap_or(FileBalance::RoundRobin) {
        FileBalance::RoundRobin => Balance::RoundRobin,
        FileBalance::LeastInflight => Balance::LeastInFlight,
    };
    Some(Replicas {
        specs,
        balance,
        health,
    })
}

/// One `[[providers]]` entry; `None` when it is too broken to build (the
/// errors say why).
fn provider(
    at: &str,
    p: &FileProvider,
    index: usize,
    base: &Timeouts,
    preset: Option<(&'static super::preset::Preset, super::preset::Filled)>,
    errs: &mut Errors,
) -> Option<Provider> {
    if p.name.trim().is_empty() {
        errs.push(format!("{at}.name: must not be empty"));
    }
    let enabled = switch(at, p.enabled, p.is_active, errs);
    let keys = provider_keys(at, p, enabled, errs);
    let breaker = breaker(at, p, errs);
    let parsed = base_urls(at, p, errs);
    let headers = extra_headers(at, p, errs);
    let Some(kind) = p.kind else {
        errs.push(format!(
            "{at}.type: required (openai, anthropic, gemini or openai-responses), or a preset"
        ));
        return None;
    };
    let dialect = match kind {
        ProviderType::OpenAi => Dialect::OpenAiChat,
        ProviderType::Anthropic => Dialect::Anthropic,
        ProviderType::Gemini => Dialect::Gemini,
        ProviderType::OpenAiResponses => Dialect::OpenAiResponses,
    };
    let auth = super::provider_auth::resolve(at, p, dialect, &keys, enabled, errs);
    let keys = match auth.token.clone() {
        Some(token) => vec![token],
        None => keys,
    };
    let reasoning = reasoning_param(at, p, dialect, errs);
    for (j, tag) in p.tags.iter().enumerate() {
        if tag.trim().is_empty() {
            errs.push(format!("{at}.tags[{j}]: must not be empty"));
        }
    }
    let mut replicas = replicas(at, p, dialect, &parsed, errs);
    // Out of service: nothing calls it, so nothing probes it either.
    if let Some(r) = replicas.as_mut().filter(|_| !enabled) {
        r.health = None;
    }
    let (tls, host, port, path_prefix) = parsed.first().cloned()?;
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
    if dialect != Dialect::OpenAiChat && p.max_tokens_field.is_some() {
        errs.push(format!(
            "{at}: max_tokens_field applies to type = \"openai\" only"
        ));
    }

    let mid = p.mid_conversation_system.unwrap_or(match dialect {
        Dialect::OpenAiChat => FileMidSystem::Keep,
        _ => FileMidSystem::Demote,
    });
    use filters::openai_chat::request::MidSystem;
    let credentials = auth.credentials;
    let label = |v: &Option<String>| v.as_deref().map(Arc::from);
    Some(Provider {
        preset: preset.as_ref().map(|(p, _)| p.name),
        preset_filled: preset.map(|(_, f)| f).unwrap_or_default(),
        enabled,
        display_name: label(&p.display_name),
        description: label(&p.description),
        tags: p.tags.clone(),
        login: auth.login,
        name: Arc::from(p.name.as_str()),
        index,
        dialect,
        host_header: host_header(&host, port, tls),
        tls,
        host,
        port,
        path_prefix,
        key_cooldown: bounds::KEY_COOLDOWN
            .check(&format!("{at}.key_cooldown"), p.key_cooldown, errs)
            .unwrap_or(DEFAULT_KEY_COOLDOWN),
        max_cooldown: bounds::MAX_COOLDOWN
            .check(&format!("{at}.max_cooldown"), p.max_cooldown, errs)
            .unwrap_or(DEFAULT_MAX_COOLDOWN),
        credentials,
        keys,
        breaker,
        headers,
        encode: dialect::EncodeOptions {
            openai: filters::openai_chat::request::EncodeOptions {
                max_completion_tokens_field,
                reasoning,
                reasoning_history: p.reasoning_history.unwrap_or(false),
                strict_limit_field: p.max_tokens_field.is_some(),
                strict_reasoning: p.reasoning_param.is_some(),
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
            // Models served only on /v1/responses are reasoning models.
            responses: filters::openai_responses::request::EncodeOptions {
                reasoning: if p.reasoning_param.is_some() || p.reasoning_effort.is_some() {
                    reasoning != filters::openai_chat::request::ReasoningParam::None
                } else {
                    true
                },
            },
            ..Default::default()
        },
        timeouts: Timeouts {
            connect: bounds::CONNECT_TIMEOUT
                .check(&format!("{at}.connect_timeout"), p.connect_timeout, errs)
                .unwrap_or(base.connect),
            first_event: bounds::FIRST_EVENT_TIMEOUT
                .check(
                    &format!("{at}.first_event_timeout"),
                    p.first_event_timeout,
                    errs,
                )
                .unwrap_or(base.first_event),
            idle: bounds::IDLE_TIMEOUT
                .check(&format!("{at}.idle_timeout"), p.idle_timeout, errs)
                .unwrap_or(base.idle),
            keepalive: base.keepalive,
        },
        replicas,
        limits: shared_limits(at, p.limits, p.budget, errs),
        http2: p.http2,
        anthropic_beta: super::routing::beta_policy(at, p.anthropic_beta.as_ref(), errs),
    })
}

/// `enabled`, or its other name `is_active` (the earlier systems'): on
/// unless one says off; both, they must agree.
fn switch(at: &str, enabled: Option<bool>, is_active: Option<bool>, errs: &mut Errors) -> bool {
    match (enabled, is_active) {
        (Some(a), Some(b)) if a != b => {
            errs.push(format!(
                "{at}.is_active: disagrees with enabled (they are one switch; keep one)"
            ));
            a
        }
        (a, b) => a.or(b).unwrap_or(true),
    }
}

/// How a request for reasoning is sent: `reasoning_param`, or the older
/// `reasoning_effort = true`.
fn reasoning_param(
    at: &str,
    p: &FileProvider,
    dialect: Dialect,
    errs: &mut Errors,
) -> filters::openai_chat::request::ReasoningParam {
    use filters::openai_chat::request::ReasoningParam;
    if !matches!(dialect, Dialect::OpenAiChat | Dialect::OpenAiResponses)
        && (p.reasoning_effort.is_some() || p.reasoning_param.is_some())
    {
        errs.push(format!(
            "{at}: reasoning_effort and reasoning_param apply to type = \"openai\" and \"openai-responses\" only"
        ));
    }
    if dialect != Dialect::OpenAiChat && p.reasoning_history.is_some() {
        errs.push(format!(
            "{at}.reasoning_history: applies to type = \"openai\" only"
        ));
    }
    match (p.reasoning_param.as_deref(), p.reasoning_effort) {
        (Some(_), Some(_)) => {
            errs.push(format!(
                "{at}.reasoning_effort: set reasoning_param or reasoning_effort, not both"
            ));
            ReasoningParam::None
        }
        (Some(name), None) => ReasoningParam::named(name).unwrap_or_else(|| {
            errs.push(format!(
                "{at}.reasoning_param: '{name}' is not reasoning_effort, enable_thinking, thinking, reasoning, chat_template_kwargs or none"
            ));
            ReasoningParam::None
        }),
        (None, Some(true)) => ReasoningParam::Effort,
        (None, _) => ReasoningParam::None,
    }
}

/// `limits` of a model or a provider: shared by every key, so only the
/// per-minute and in-flight dimensions apply (days belong to keys); and
/// its `budget` beside them.
fn shared_limits(
    at: &str,
    limits: Option<Limits>,
    budget: Option<filters::limits::budget::Budget>,
    errs: &mut Errors,
) -> Limits {
    let budget = budget.unwrap_or_default();
    for p in budget.problems() {
        errs.push(format!("{at}.budget.{p}"));
    }
    let at = &format!("{at}.limits");
    let Some(l) = limits else {
        return Limits {
            budget,
            ..Limits::default()
        };
    };
    let l = Limits { budget, ..l };
    for p in l.problems() {
        errs.push(format!("{at}.{p}"));
    }
    for (d, v) in [("rpd", l.rpd), ("tpd", l.tpd)] {
        if v.is_some() {
            errs.push(format!(
                "{at}.{d}: only rpm, tpm and concurrency apply here (per-day limits are set on keys)"
            ));
        }
    }
    l
}

/// `[limits]`: the backend (restart to change) and what can change live.
fn limits_section(
    l: &FileLimits,
    budgets: &FileBudgets,
    errs: &mut Errors,
) -> (LimitBackend, LimitSettings) {
    let url = match (&l.redis_url, &l.redis_url_env) {
        (Some(u), None) => Some(u.clone()),
        (None, Some(var)) => match std::env::var(var) {
            Ok(v) if !v.is_empty() => Some(v),
            _ => {
                errs.push(format!(
                    "limits.redis_url_env: environment variable {var} is not set"
                ));
                None
            }
        },
        (Some(_), Some(_)) => {
            errs.push("limits.redis_url: set redis_url or redis_url_env, not both".into());
            None
        }
        (None, None) => None,
    };
    let backend = match l.backend.unwrap_or(FileLimitBackend::Memory) {
        FileLimitBackend::Memory => LimitBackend::Memory,
        FileLimitBackend::Redis => match url {
            // Never echoed: the URL may carry a password.
            Some(u) if u.starts_with("redis://") => LimitBackend::Redis {
                url: Secret::new(u),
            },
            Some(u) if u.starts_with("rediss://") => {
                errs.push(
                    "limits.redis_url: rediss:// (TLS) is not supported yet; reach Redis over a \
                     private network or a TLS tunnel (stunnel, spiped) with redis://"
                        .into(),
                );
                LimitBackend::Memory
            }
            Some(_) => {
                errs.push("limits.redis_url: must start with redis://".into());
                LimitBackend::Memory
            }
            None => {
                errs.push("limits.redis_url: required with backend = \"redis\"".into());
                LimitBackend::Memory
            }
        },
    };
    let timezone_name = l.timezone.clone().unwrap_or_else(|| "UTC".to_owned());
    let timezone = filters::limits::day::zone(&timezone_name).unwrap_or_else(|| {
        errs.push(format!(
            "limits.timezone: '{timezone_name}' is not an IANA time zone (e.g. UTC, Asia/Shanghai)"
        ));
        filters::limits::day::TimeZone::UTC
    });
    let default_reserve_output = l.default_reserve_output.unwrap_or(4096);
    if !(1..=10_000_000).contains(&default_reserve_output) {
        errs.push("limits.default_reserve_output: 1 to 10000000 tokens".into());
    }
    let settings = LimitSettings {
        timezone,
        timezone_name,
        default_reserve_output,
        allow_on_backend_error: l.on_backend_error != Some(FileOnBackendError::Deny),
        redis_timeout: bounds::REDIS_TIMEOUT
            .check("limits.redis_timeout", l.redis_timeout, errs)
            .unwrap_or(Duration::from_millis(500)),
        budgets: Arc::new(budgets_section(budgets, errs)),
    };
    (backend, settings)
}

/// Every target a configured budget counts must be priced in a currency
/// it can convert: a missing rate is found here rather than as a refusal
/// at request time (which is all a key made at runtime can get).
fn budget_rates(
    routes: &HashMap<String, Arc<Route>>,
    keys: &HashMap<String, Arc<ClientKey>>,
    prices: &filters::pricing::PriceTable,
    exchange: &filters::limits::budget::Exchange,
    errs: &mut Errors,
) {
    let mut names: Vec<&String> = routes.keys().collect();
    names.sort();
    let mut seen = HashSet::new();
    for name in names {
        let route = &routes[name];
        for t in &route.targets {
            let Some(price) = prices.lookup(&t.model) else {
                continue;
            };
            let Err(no_rate) = exchange.up(0, price.currency) else {
                continue;
            };
            let mut whose = Vec::new();
            if route.limits.has_budget() {
                whose.push(format!("model '{name}'"));
            }
            if t.provider.limits.has_budget() {
                whose.push(format!("provider '{}'", t.provider.name));
            }
            let mut budgeted: Vec<&str> = keys
                .values()
                .filter(|k| {
                    k.limits.has_budget()
                        && k.allows_model(name)
                        && k.allows_provider(&t.provider.name)
                })
                .map(|k| k.name.as_str())
                .collect();
            budgeted.sort_unstable();
            whose.extend(budgeted.into_iter().map(|k| format!("key '{k}'")));
            let error = format!(
                "budgets.rates: upstream model '{}' (model '{name}') counts against the budget of {}, but {no_rate}",
                t.model,
                whose.join(", ")
            );
            if !whose.is_empty() && seen.insert(error.clone()) {
                errs.push(error);
            }
        }
    }
}

/// `[budgets]`: the currency budgets are in (USD unless set) and the
/// exact rates that bring prices in other currencies into it.
fn budgets_section(b: &FileBudgets, errs: &mut Errors) -> filters::limits::budget::Exchange {
    use filters::pricing::{Currency, PerMillion};
    let currency = match b.currency.as_deref().map(Currency::parse) {
        None => Currency::USD,
        Some(Ok(c)) => c,
        Some(Err(e)) => {
            errs.push(format!("budgets.currency: {e}"));
            Currency::USD
        }
    };
    let mut exchange = filters::limits::budget::Exchange::new(currency);
    let mut rates: Vec<_> = b.rates.iter().collect();
    rates.sort_by(|a, b| a.0.cmp(b.0));
    for (code, rate) in rates {
        let at = format!("budgets.rates.{code}");
        let from = match Currency::parse(code) {
            Ok(c) => c,
            Err(e) => {
                errs.push(format!("{at}: {e}"));
                continue;
            }
        };
        match PerMillion::parse(rate.as_str()) {
            Ok(r) if r == PerMillion::ZERO => errs.push(format!("{at}: must be more than 0")),
            Ok(_) if from == currency => errs.push(format!(
                "{at}: {code} is the budget currency itself (its rate is 1)"
            )),
            Ok(r) => exchange = exchange.with_rate(from, r),
            Err(e) => errs.push(format!(
                "{at}: {e} ({currency} per {code}, at most 6 decimals)"
            )),
        }
    }
    exchange
}

type Slots = Vec<(Arc<Provider>, Arc<str>)>;

/// `[[models]]`: each name's chain of targets. Targets that name the same
/// provider + model share one slot (and so one breaker).
fn models(
    models: &[FileModel],
    by_name: &HashMap<&str, Arc<Provider>>,
    server_total: Duration,
    errs: &mut Errors,
) -> (HashMap<String, Arc<Route>>, Vec<String>, Slots, Vec<String>) {
    let mut routes = HashMap::new();
    let mut model_names = Vec::new();
    let mut disabled = Vec::new();
    let mut seen = HashSet::new();
    let mut slots: Slots = Vec::new();
    let mut slot_of: HashMap<(usize, String), usize> = HashMap::new();
    for (i, m) in models.iter().enumerate() {
        let at = format!("models[{i}]");
        if m.name.trim().is_empty() {
            errs.push(format!("{at}.name: must not be empty"));
        }
        if !seen.insert(m.name.as_str()) {
            errs.push(format!("{at}.name: model '{}' is defined twice", m.name));
        }
        if m.targets.is_empty() {
            errs.push(format!("{at}.targets: at least one target is required"));
        }
        // Checked once per model, not once per target.
        let connect = bounds::CONNECT_TIMEOUT.check(
            &format!("{at}.connect_timeout"),
            m.connect_timeout,
            errs,
        );
        let first_event = bounds::FIRST_EVENT_TIMEOUT.check(
            &format!("{at}.first_event_timeout"),
            m.first_event_timeout,
            errs,
        );
        let idle = bounds::IDLE_TIMEOUT.check(&format!("{at}.idle_timeout"), m.idle_timeout, errs);
        let total_timeout = bounds::TOTAL_TIMEOUT
            .check(&format!("{at}.total_timeout"), m.total_timeout, errs)
            .unwrap_or(server_total);
        let model_caps = super::routing::capabilities(
            &format!("{at}.capabilities"),
            filters::routing::Capabilities::default(),
            &m.capabilities,
            errs,
        );
        for (j, tag) in m.tags.iter().enumerate() {
            if tag.trim().is_empty() || tag.contains(',') {
                errs.push(format!(
                    "{at}.tags[{j}]: '{tag}' is not a tag (one word per item, no commas)"
                ));
            }
        }
        let enabled = switch(&at, m.enabled, m.is_active, errs);
        let mut targets = Vec::new();
        for (j, t) in m.targets.iter().enumerate() {
            let Some(p) = by_name.get(t.provider.as_str()) else {
                errs.push(format!(
                    "{at}.targets[{j}].provider: no provider named '{}'",
                    t.provider
                ));
                continue;
            };
            let on = switch(&format!("{at}.targets[{j}]"), t.enabled, t.is_active, errs);
            // Out of service: kept in the file, never called.
            if !(on && p.enabled) {
                continue;
            }
            let slot = *slot_of
                .entry((p.index, t.model.clone()))
                .or_insert_with(|| {
                    slots.push((p.clone(), Arc::from(t.model.as_str())));
                    slots.len() - 1
                });
            let base = p.timeouts;
            let path = |stream| dialect::generate_path(p.dialect, &p.path_prefix, &t.model, stream);
            targets.push(Target {
                generate_paths: [path(false), path(true)],
                provider: p.clone(),
                model: slots[slot].1.clone(),
                slot,
                timeouts: Timeouts {
                    connect: connect.unwrap_or(base.connect),
                    first_event: first_event.unwrap_or(base.first_event),
                    idle: idle.unwrap_or(base.idle),
                    keepalive: base.keepalive,
                },
                capabilities: t.capabilities.as_ref().map_or(model_caps, |c| {
                    super::routing::capabilities(
                        &format!("{at}.targets[{j}].capabilities"),
                        model_caps,
                        c,
                        errs,
                    )
                }),
                tool_emulation: t.tool_emulation.unwrap_or(m.tool_emulation),
            });
        }
        // A model out of service, or with no target in service, is
        // answered as unknown (and listed nowhere) until one returns.
        if !enabled || targets.is_empty() {
            if !m.targets.is_empty() {
                disabled.push(m.name.clone());
            }
            continue;
        }
        model_names.push(m.name.clone());
        routes.insert(
            m.name.clone(),
            Arc::new(Route {
                name: Arc::from(m.name.as_str()),
                varies: targets
                    .iter()
                    .any(|t| t.capabilities != filters::routing::Capabilities::default()),
                has_window: targets
                    .iter()
                    .any(|t| t.capabilities.context_window.is_some()),
                aliases: m.aliases.clone(),
                tags: m.tags.clone(),
                display_name: m.display_name.as_deref().map(Arc::from),
                description: m.description.as_deref().map(Arc::from),
                priority: m.priority,
                capabilities: model_caps,
                total_timeout,
                targets,
                max_output_tokens: m.max_output_tokens,
                limits: shared_limits(&at, m.limits, m.budget, errs),
                openai_reasoning: m.openai_reasoning.map(|r| {
                    use filters::openai_chat::stream::ReasoningOutput;
                    match r {
                        FileReasoningOutput::Delta => ReasoningOutput::Delta,
                        FileReasoningOutput::Whole => ReasoningOutput::Whole,
                        FileReasoningOutput::Omit => ReasoningOutput::Omit,
                    }
                }),
            }),
        );
    }
    (routes, model_names, slots, disabled)
}

/// `[[api_keys]]`: the clients allowed in, by key. Exact model names
/// must name a configured model (globs may match none yet), providers a
/// configured provider.
fn api_keys(
    keys: &[FileApiKey],
    model_names: &[String],
    providers: &HashMap<&str, Arc<Provider>>,
    errs: &mut Errors,
) -> HashMap<String, Arc<ClientKey>> {
    let all_models: HashSet<&str> = model_names.iter().map(String::as_str).collect();
    let mut out = HashMap::new();
    let mut names = HashSet::new();
    for (i, k) in keys.iter().enumerate() {
        let at = format!("api_keys[{i}]");
        if let Some(problem) = header_value_problem(&k.key) {
            errs.push(format!("{at}.key: {problem}"));
        } else if k.key.len() < 8 {
            errs.push(format!("{at}.key: must be at least 8 characters"));
        }
        if out.contains_key(&k.key) {
            errs.push(format!("{at}.key: the same key is configured twice"));
        }
        if !names.insert(k.name.as_str()) {
            errs.push(format!("{at}.name: key '{}' is defined twice", k.name));
        }
        for (j, m) in k.allowed_models.iter().flatten().enumerate() {
            if !filters::glob::is_glob(m) && !all_models.contains(m.as_str()) {
                errs.push(format!(
                    "{at}.allowed_models[{j}]: no model (or alias) named '{m}'"
                ));
            }
        }
        for (j, p) in k.allowed_providers.iter().flatten().enumerate() {
            if !providers.contains_key(p.as_str()) {
                errs.push(format!(
                    "{at}.allowed_providers[{j}]: no provider named '{p}'"
                ));
            }
        }
        let spec = KeySpec {
            name: k.name.clone(),
            description: k.description.clone(),
            roles: k.roles.clone(),
            enabled: switch(&at, k.enabled, k.is_active, errs),
            expires_at: k.expires_at.clone(),
            allowed_models: k.allowed_models.clone(),
            allowed_providers: k.allowed_providers.clone(),
            limits: k.limits.unwrap_or_default(),
            budget: k.budget.unwrap_or_default(),
            max_output_tokens: k.max_output_tokens,
            deny_params: k.deny_params.clone(),
            log_conversations: k.log_conversations,
        };
        match ClientKey::from_spec(spec, KeySource::Config, None) {
            Ok(key) => {
                out.insert(k.key.clone(), Arc::new(key));
            }
            Err(problems) => errs.extend(problems.into_iter().map(|p| format!("{at}.{p}"))),
        }
    }
    // No key here is no open gateway: keys may live in the key store
    // alone (the workspace's admin key does); without any, every request
    // is refused.
    out
}

/// `http(s)://host[:port][/prefix]` → (tls, host, port, prefix without a
/// trailing slash).
pub(super) fn parse_base_url(url: &str) -> Option<(bool, String, u16, String)> {
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

/// `[telemetry]`: off without `otlp_endpoint`. A header value is a secret
/// (collector credentials): messages name where it came from, never it.
fn telemetry(
    t: &super::file::FileTelemetry,
    errs: &mut Errors,
) -> Option<super::snapshot::Telemetry> {
    let url = t.otlp_endpoint.as_deref()?;
    let Some((tls, host, port, prefix)) = parse_base_url(url) else {
        // Not echoed: an endpoint may carry a credential (`?api-key=`,
        // `user:pass@`), and config errors reach logs.
        errs.push(
            "telemetry.otlp_endpoint: not an http(s) URL without a query string, \
             like http://127.0.0.1:4318"
                .into(),
        );
        return None;
    };
    let sample_ratio = t.sample_ratio.unwrap_or(1.0);
    if !(0.0..=1.0).contains(&sample_ratio) {
        errs.push("telemetry.sample_ratio: must be from 0 to 1".into());
    }
    let batch_max = Bounds(1, 10_000)
        .check("telemetry.batch_max", t.batch_max, errs)
        .unwrap_or(512);
    let batch_interval = Bounds(Duration::from_millis(10), Duration::from_secs(60))
        .check("telemetry.batch_interval", t.batch_interval, errs)
        .unwrap_or(Duration::from_secs(1));
    let service_name = t
        .service_name
        .clone()
        .unwrap_or_else(|| "modelswitch".to_owned());
    if service_name.trim().is_empty() {
        errs.push("telemetry.service_name: must not be empty".into());
    }
    // Inline values and environment variables, in a stable order.
    let mut given: Vec<(String, &String, Option<String>)> = t
        .headers
        .iter()
        .map(|(k, v)| (format!("telemetry.headers.{k}"), k, Some(v.clone())))
        .collect();
    for (k, var) in &t.headers_env {
        let value = std::env::var(var).ok().filter(|v| !v.is_empty());
        if value.is_none() {
            errs.push(format!(
                "telemetry.headers_env.{k}: environment variable {var} is not set"
            ));
        }
        given.push((format!("telemetry.headers_env.{k}"), k, value));
    }
    given.sort_by(|a, b| a.0.cmp(&b.0));
    let mut headers: Vec<(http::HeaderName, Secret)> = Vec::new();
    for (at, name, value) in given {
        let Ok(name) = http::HeaderName::try_from(name.as_str()) else {
            errs.push(format!("{at}: not a valid header name"));
            continue;
        };
        if [
            http::header::HOST,
            http::header::CONTENT_LENGTH,
            http::header::CONTENT_TYPE,
            http::header::TRANSFER_ENCODING,
            http::header::CONNECTION,
            http::header::USER_AGENT,
        ]
        .contains(&name)
        {
            errs.push(format!("{at}: the exporter sets this header itself"));
            continue;
        }
        if headers.iter().any(|(n, _)| *n == name) {
            errs.push(format!("{at}: header set twice"));
            continue;
        }
        let Some(value) = value else { continue };
        // Unlike a provider key, a value may hold spaces (`Bearer …`).
        let bad = value.chars().position(|c| !matches!(c, ' '..='~'));
        match bad {
            _ if value.trim().is_empty() => errs.push(format!("{at}: must not be empty")),
            Some(i) => errs.push(format!(
                "{at}: not a valid header value (control or non-ASCII character at position {})",
                i + 1
            )),
            None => headers.push((name, Secret::new(value.trim().to_owned()))),
        }
    }
    Some(super::snapshot::Telemetry {
        host_header: host_header(&host, port, tls),
        path: format!("{prefix}/v1/traces"),
        tls,
        host,
        port,
        headers,
        service_name,
        sample_ratio,
        batch_max,
        batch_interval,
    })
}
