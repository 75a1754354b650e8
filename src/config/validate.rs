//! From the file mirror to the runtime snapshot, one section at a time.
//! Every problem is collected (not just the first), each naming the TOML
//! path it concerns; a secret's value never appears in a message.

use super::file::{
    FileApiKey, FileBalance, FileConfig, FileMidSystem, FileModel, FileProvider, FileServer,
    OneOrMany, ProviderType,
};
use super::secret::Secret;
use super::snapshot::{
    Balance, HealthCheck, Process, Provider, ReplicaSpec, Replicas, Route, Snapshot, Target,
    Timeouts,
};
use super::ConfigErrors;
use filters::auth::ClientKey;
use filters::breaker::BreakerConfig;
use filters::wire::http::host_header;
use filters::{dialect, Dialect};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

const DEFAULT_LISTEN: &str = "127.0.0.1:8000";
/// Enough idle connections for a few thousand requests in flight.
const DEFAULT_UPSTREAM_POOL: usize = 1024;
const DEFAULT_MAX_BODY: usize = 32 * 1024 * 1024;

type Errors = Vec<String>;

pub(super) fn validate(f: FileConfig) -> Result<Snapshot, ConfigErrors> {
    let mut errs = Errors::new();
    let (process, base) = server(&f.server, &mut errs);
    let mut providers: Vec<Arc<Provider>> = Vec::new();
    let mut by_name: HashMap<&str, Arc<Provider>> = HashMap::new();
    for (i, p) in f.providers.iter().enumerate() {
        let at = format!("providers[{i}]");
        if by_name.contains_key(p.name.as_str()) {
            errs.push(format!("{at}.name: provider '{}' is defined twice", p.name));
        }
        if let Some(provider) = provider(&at, p, providers.len(), &base, &mut errs) {
            let provider = Arc::new(provider);
            by_name.insert(&p.name, provider.clone());
            providers.push(provider);
        }
    }
    let (routes, model_names, target_slots) =
        models(&f.models, &by_name, f.server.total_timeout, &mut errs);
    let keys = api_keys(&f.api_keys, &model_names, &mut errs);
    if !errs.is_empty() {
        return Err(ConfigErrors(errs));
    }
    Ok(Snapshot {
        process,
        reload: f.server.reload.unwrap_or(true),
        max_request_body_bytes: f.server.max_request_body_bytes.unwrap_or(DEFAULT_MAX_BODY),
        providers,
        routes,
        model_names,
        keys,
        target_slots,
    })
}

fn one_or_many(v: &OneOrMany) -> Vec<String> {
    match v {
        OneOrMany::One(a) => vec![a.clone()],
        OneOrMany::Many(v) => v.clone(),
    }
}

/// `[server]`: process settings and the gateway-wide upstream budgets.
fn server(server: &FileServer, errs: &mut Errors) -> (Process, Timeouts) {
    let listen = server
        .listen
        .as_ref()
        .map_or_else(|| vec![DEFAULT_LISTEN.to_owned()], one_or_many);
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
    let process = Process {
        listen,
        threads: server.threads.unwrap_or(0),
        upstream_pool_size: server.upstream_pool_size.unwrap_or(DEFAULT_UPSTREAM_POOL),
    };
    (process, base)
}

/// The provider's keys, inline and from the environment.
fn provider_keys(at: &str, p: &FileProvider, errs: &mut Errors) -> Vec<Secret> {
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
        window: b.window.unwrap_or(d.window),
        cooldown: b.cooldown.unwrap_or(d.cooldown),
        max_cooldown: b.max_cooldown.unwrap_or(d.max_cooldown),
    };
    if !(0.0..=1.0).contains(&breaker.error_rate) || breaker.error_rate == 0.0 {
        errs.push(format!("{at}.breaker.error_rate: must be in (0, 1]"));
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
    let urls = one_or_many(&p.base_url);
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
        interval: h.interval.unwrap_or(Duration::from_secs(10)),
        timeout: h.timeout.unwrap_or(Duration::from_secs(2)),
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
    errs: &mut Errors,
) -> Option<Provider> {
    if p.name.trim().is_empty() {
        errs.push(format!("{at}.name: must not be empty"));
    }
    let keys = provider_keys(at, p, errs);
    let breaker = breaker(at, p, errs);
    let parsed = base_urls(at, p, errs);
    let headers = extra_headers(at, p, errs);
    let dialect = match p.kind {
        ProviderType::OpenAi => Dialect::OpenAiChat,
        ProviderType::Anthropic => Dialect::Anthropic,
    };
    let replicas = replicas(at, p, dialect, &parsed, errs);
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
    let credentials = if keys.is_empty() {
        vec![dialect::credential_headers(dialect, None)]
    } else {
        keys.iter()
            .map(|k| dialect::credential_headers(dialect, Some(k.expose())))
            .collect()
    };
    Some(Provider {
        name: Arc::from(p.name.as_str()),
        index,
        dialect,
        generate_path: dialect::generate_path(dialect, &path_prefix),
        host_header: host_header(&host, port, tls),
        tls,
        host,
        port,
        path_prefix,
        key_cooldown: p.key_cooldown.unwrap_or(Duration::from_secs(30)),
        credentials,
        key_labels: keys
            .iter()
            .map(|k| format!(" key={}", k.masked()))
            .collect(),
        keys,
        breaker,
        headers,
        encode: dialect::EncodeOptions {
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
        },
        timeouts: Timeouts {
            connect: p.connect_timeout.unwrap_or(base.connect),
            first_event: p.first_event_timeout.unwrap_or(base.first_event),
            idle: p.idle_timeout.unwrap_or(base.idle),
            keepalive: base.keepalive,
        },
        replicas,
    })
}

type Slots = Vec<(Arc<Provider>, Arc<str>)>;

/// `[[models]]`: each name's chain of targets. Targets that name the same
/// provider + model share one slot (and so one breaker).
fn models(
    models: &[FileModel],
    by_name: &HashMap<&str, Arc<Provider>>,
    server_total: Option<Duration>,
    errs: &mut Errors,
) -> (HashMap<String, Arc<Route>>, Vec<String>, Slots) {
    let mut routes = HashMap::new();
    let mut model_names = Vec::new();
    let mut slots: Slots = Vec::new();
    let mut slot_of: HashMap<(usize, String), usize> = HashMap::new();
    for (i, m) in models.iter().enumerate() {
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
            let Some(p) = by_name.get(t.provider.as_str()) else {
                errs.push(format!(
                    "{at}.targets[{j}].provider: no provider named '{}'",
                    t.provider
                ));
                continue;
            };
            let slot = *slot_of
                .entry((p.index, t.model.clone()))
                .or_insert_with(|| {
                    slots.push((p.clone(), Arc::from(t.model.as_str())));
                    slots.len() - 1
                });
            let base = p.timeouts;
            targets.push(Target {
                provider: p.clone(),
                model: slots[slot].1.clone(),
                slot,
                timeouts: Timeouts {
                    connect: m.connect_timeout.unwrap_or(base.connect),
                    first_event: m.first_event_timeout.unwrap_or(base.first_event),
                    idle: m.idle_timeout.unwrap_or(base.idle),
                    keepalive: base.keepalive,
                },
            });
        }
        model_names.push(m.name.clone());
        routes.insert(
            m.name.clone(),
            Arc::new(Route {
                total_timeout: m
                    .total_timeout
                    .or(server_total)
                    .unwrap_or(Duration::from_secs(900)),
                targets,
                max_output_tokens: m.max_output_tokens,
            }),
        );
    }
    (routes, model_names, slots)
}

/// `[[api_keys]]`: the clients allowed in, by key.
fn api_keys(
    keys: &[FileApiKey],
    model_names: &[String],
    errs: &mut Errors,
) -> HashMap<String, Arc<ClientKey>> {
    let all_models: HashSet<&str> = model_names.iter().map(String::as_str).collect();
    let mut out = HashMap::new();
    for (i, k) in keys.iter().enumerate() {
        let at = format!("api_keys[{i}]");
        if k.key.len() < 8 {
            errs.push(format!("{at}.key: must be at least 8 characters"));
        }
        if out.contains_key(&k.key) {
            errs.push(format!("{at}.key: the same key is configured twice"));
        }
        for (j, m) in k.allowed_models.iter().flatten().enumerate() {
            if !all_models.contains(m.as_str()) {
                errs.push(format!("{at}.allowed_models[{j}]: no model named '{m}'"));
            }
        }
        out.insert(
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
    if out.is_empty() {
        errs.push("api_keys: at least one key is required (the gateway never runs open)".into());
    }
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
