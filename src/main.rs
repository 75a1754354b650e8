//! ModelSwitch: an LLM gateway on Pingora.
//!
//! `modelswitch` runs the gateway from the workspace (`~/.modelswitch`,
//! made on the first run); `modelswitch --config FILE` from a config file;
//! `modelswitch check` validates the config and names the TOML path of
//! every error. The other verbs live in `cli/`.

mod admin;
mod cli;
mod config;
mod downstream;
mod exchange;
mod journal;
mod limits;
mod metrics;
mod proxy;
mod record;
mod shutdown;
mod state;
mod store;
mod telemetry;
mod tls;
mod upstream;
mod usage;

use clap::{Parser, Subcommand};
use pingora::listeners::{L4BufferSettings, ListenerConfig};
use pingora::proxy::http_proxy;
use pingora::server::configuration::ServerConf;
use pingora::server::RunArgs;
use pingora::server::Server;
use pingora::services::background::background_service;
use pingora::services::listening::Service;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use tokio::signal::unix::{signal, SignalKind};

// mimalloc: glibc's malloc and free were ~15% of a pass-through request's
// instructions (callgrind); mimalloc cut CPU per request by ~10-30%.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "modelswitch",
    version,
    about = "One endpoint for every LLM dialect and provider",
    after_help = "The config is --config FILE, else the workspace's config.toml: --workspace DIR, \
                  else $MODELSWITCH_WORKSPACE, else ~/.modelswitch (made with an admin key on the \
                  first run). Relative paths in a config resolve against its directory."
)]
struct Cli {
    /// A TOML config file (then no workspace is used or made).
    #[arg(short, long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// The workspace: config.toml, data/, logs/ [env: MODELSWITCH_WORKSPACE; default: ~/.modelswitch]
    #[arg(short, long, global = true, value_name = "DIR")]
    workspace: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(clap::Args)]
struct CheckArgs {
    /// Also print each provider as the gateway will use it: what its
    /// preset filled in, its URL, dialect, auth (never a secret), quirks.
    #[arg(long)]
    explain: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway (the default).
    Run,
    /// Validate the config file and exit.
    Check(CheckArgs),
    /// Send one message through a model's chain, no server needed; the answer streams to stdout.
    Chat(cli::chat::ChatArgs),
    /// List the configured models, or test each of their targets.
    Models(cli::models::ModelsArgs),
    /// Top keys and models (requests, tokens, cost) from the stored usage rows.
    Usage(cli::usage::UsageArgs),
    /// Install the gateway as a service (systemd unit on Linux, launchd plist on macOS) and start it.
    Install(cli::install::InstallArgs),
    /// Stop and remove the service that `install` wrote.
    Uninstall(cli::install::UninstallArgs),
    /// The service's state, and the running gateway's listeners, uptime, requests and providers.
    Status(cli::status::StatusArgs),
    /// Create, list, show, update and revoke stored API keys.
    Keys(cli::keys::KeysArgs),
    /// Admin UI settings: `admin set-password`.
    Admin(cli::admin::AdminArgs),
}

/// The plain log format: the default one wraps every write to indent
/// continuation lines and strips colour codes byte by byte, which the
/// access log (one line per request) paid for on every request.
fn install_logger() -> Arc<journal::LogRing> {
    let logger = env_logger::Builder::from_env(
        env_logger::Env::default().default_filter_or("modelswitch=info,warn"),
    )
    .write_style(env_logger::WriteStyle::Never)
    .format(|buf, record| {
        use std::io::Write;
        // JSON access-log lines go out bare, so each line parses.
        if record.target() == journal::ring::ACCESS_TARGET {
            return writeln!(buf, "{}", record.args());
        }
        writeln!(
            buf,
            "[{} {:<5} {}] {}",
            buf.timestamp_millis(),
            record.level(),
            record.target(),
            record.args()
        )
    })
    .build();
    // Every line printed is also kept, the last ones, for `GET /api/logs`.
    let log_ring = Arc::new(journal::LogRing::new(journal::ring::DEFAULT_CAPACITY));
    if let Err(e) = journal::RingLogger::install(logger, log_ring.clone()) {
        eprintln!("cannot install the logger: {e}");
    }
    log_ring
}

/// `--config`, or the workspace (made on its first run, unless `create`
/// is false: then only its path is named).
fn config_source(cli: &Cli, create: bool) -> Result<cli::workspace::Source, ExitCode> {
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
    let source = cli::workspace::resolve(
        cli.config.clone(),
        cli.workspace.clone(),
        std::env::var_os("MODELSWITCH_WORKSPACE"),
        std::env::var_os("HOME"),
        &cwd,
    )
    .map_err(|e| {
        eprintln!("{e}");
        ExitCode::from(2)
    })?;
    // The welcome goes to stdout for `run` and `check` only: other verbs'
    // stdout is their output (`keys list --json`), kept machine-readable.
    let to_stdout = matches!(cli.command, None | Some(Command::Run | Command::Check(_)));
    if let (cli::workspace::Source::Workspace(layout), true) = (&source, create) {
        let made = cli::workspace::prepare(
            layout,
            |draft| {
                cli::keys::mint(
                    draft,
                    cli::workspace::ADMIN_KEY_NAME,
                    "admin",
                    "made by the workspace's first run",
                )
            },
            |welcome| show_welcome(welcome, to_stdout),
        );
        match made {
            Ok(cli::workspace::Prepared::Existing | cli::workspace::Prepared::Created) => {}
            Err(e) => {
                eprintln!("cannot create the workspace {}: {e}", layout.root.display());
                return Err(ExitCode::from(1));
            }
        }
    }
    Ok(source)
}

/// Prints the first run's welcome, checked: a key that could not be shown
/// fails the run (the workspace is then made again, with a new key, by
/// the next one).
fn show_welcome(welcome: &str, to_stdout: bool) -> Result<(), String> {
    use std::io::Write;
    let written = if to_stdout {
        let mut out = std::io::stdout().lock();
        out.write_all(welcome.as_bytes()).and_then(|()| out.flush())
    } else {
        let mut err = std::io::stderr().lock();
        err.write_all(welcome.as_bytes()).and_then(|()| err.flush())
    };
    written.map_err(|e| {
        format!(
            "the admin key could not be printed ({e}); nothing was kept: the next run \
             makes the workspace with a new key (in a workspace that exists, \
             `modelswitch keys create --name NAME --role admin` mints another)"
        )
    })
}

/// The validated config, bound to runtime state (replica pools resolve
/// their hosts here, so `check` reports a host that does not resolve as
/// the running gateway would).
fn load_live(path: &Path) -> Result<(state::Live, Arc<state::Registry>), ExitCode> {
    let snapshot = config::load(path).map_err(|e| {
        eprintln!("{}: invalid configuration:\n{e}", path.display());
        ExitCode::from(2)
    })?;
    let limiter = match &snapshot.process.limit_backend {
        config::LimitBackend::Memory => limits::Limiter::memory(),
        config::LimitBackend::Redis { url } => {
            limits::Limiter::redis(url.expose(), snapshot.limits.redis_timeout).map_err(|e| {
                eprintln!("{}: limits.redis_url: {e}", path.display());
                ExitCode::from(2)
            })?
        }
    };
    let registry = Arc::new(state::Registry::with_limiter(Arc::new(limiter)));
    let live = registry.bind(snapshot).map_err(|e| {
        eprintln!("{}: invalid configuration:\n{e}", path.display());
        ExitCode::from(2)
    })?;
    Ok((live, registry))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let log_ring = install_logger();
    // `install --root` (packaging) touches nothing outside its root;
    // `uninstall` and `status` only look.
    let create = match &cli.command {
        Some(Command::Install(a)) => !a.writes_under_root(),
        Some(Command::Uninstall(_) | Command::Status(_)) => false,
        _ => true,
    };
    let source = match config_source(&cli, create) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let path = source.config().to_owned();
    match cli.command.unwrap_or(Command::Run) {
        // These read only `[storage]` of the config: they run without the
        // providers' secrets in their environment.
        Command::Keys(args) => cli::keys::run(&path, args),
        Command::Admin(args) => cli::admin::run(&path, args),
        Command::Usage(args) => cli::usage::run(&path, args),
        Command::Install(args) => cli::install::install(&source, args),
        Command::Uninstall(args) => cli::install::uninstall(args),
        Command::Status(args) => cli::status::run(&path, args),
        Command::Check(args) => match load_live(&path) {
            Ok((live, _)) => {
                let snapshot = &live.config;
                if args.explain {
                    print!("{}", cli::check::explain(snapshot));
                }
                println!(
                    "{}: ok ({} providers, {} models, {} api keys, {} prices)",
                    path.display(),
                    snapshot.providers.len(),
                    snapshot.routes.len(),
                    snapshot.keys.len(),
                    snapshot.prices.entries().count()
                );
                ExitCode::SUCCESS
            }
            Err(code) => code,
        },
        Command::Chat(args) => match load_live(&path) {
            Ok((live, _)) => cli::chat::run(&live, args),
            Err(code) => code,
        },
        Command::Models(args) => match load_live(&path) {
            Ok((live, _)) => cli::models::run(&live, args),
            Err(code) => code,
        },
        Command::Run => match load_live(&path) {
            Ok((live, registry)) => run(&path, live, registry, log_ring),
            Err(code) => code,
        },
    }
}

fn run(
    path: &Path,
    live: state::Live,
    registry: Arc<state::Registry>,
    log_ring: Arc<journal::LogRing>,
) -> ExitCode {
    let process = live.config.process.clone();
    let threads = match process.threads {
        0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
        n => n,
    };
    let listen = process.listen.clone();
    // `[logging] access_file`: opened once, before any request is served.
    if let Some(file) = &process.access_file {
        match journal::open_access_file(file) {
            Ok(f) => {
                journal::send_access_log_to(f);
            }
            Err(e) => {
                eprintln!("cannot open the access log {}: {e}", file.display());
                return ExitCode::from(2);
            }
        }
    }
    // Runtime keys: served from the first request on, kept current after.
    // (The store's errors name the file or the URL, its password masked.)
    let key_store = match store::KeyStore::open_configured(&process) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("cannot open the key store: {e}");
            return ExitCode::from(2);
        }
    };
    let loaded = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())
        .and_then(|rt| {
            rt.block_on(store::refresh::load_into(&key_store, &registry.keys))
                .map_err(|e| e.to_string())
        });
    if let Err(e) = loaded {
        eprintln!("cannot read the key store {}: {e}", store::shown(&process));
        return ExitCode::from(2);
    }
    // Keys may live in the store alone; with none anywhere the gateway runs
    // closed (every request refused), which deserves a word.
    if registry.keys.len() == 0 {
        log::warn!(
            "no API keys in the config or the key store: every request is refused \
             (make one with `modelswitch keys create --name NAME --role admin`)"
        );
    }
    // Pingora's listeners share ports (SO_REUSEPORT): a second gateway on a
    // taken address would start and silently split the traffic. Refuse.
    for addr in listen
        .iter()
        .chain(&process.tls_listen)
        .chain(&process.admin_listen)
    {
        if let Err(e) = std::net::TcpListener::bind(addr.as_str()) {
            eprintln!("cannot listen on {addr}: {e}");
            return ExitCode::from(2);
        }
    }
    // One single-threaded runtime per worker, as nginx runs one event loop
    // per worker: a request and its upstream connections stay on one thread
    // (work stealing measured more CPU per pass-through request, in futex
    // and scheduler traffic). Pingora accepts on one worker and hands the
    // connection to a random one; one listening service per worker on the
    // shared socket avoided that hand-off but measured no gain.
    // Pingora sleeps out its whole grace period after SIGTERM; the drain
    // (shutdown.rs) exits as soon as nothing is in flight, and at the
    // latest a second past `shutdown_grace`, before Pingora's ends.
    let grace = process.shutdown_grace;
    let conf = ServerConf {
        threads,
        work_stealing: false,
        grace_period_seconds: Some(grace.as_secs() + 2),
        graceful_shutdown_timeout_seconds: Some(1),
        ..ServerConf::default()
    };
    let store: state::LiveStore = Arc::new(arc_swap::ArcSwap::from_pointee(live));
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    // SIGHUP's default action ends the process: take it over before the
    // reload service listens for it (a registration outlives its runtime).
    if let Err(e) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .and_then(|rt| rt.block_on(async { signal(SignalKind::hangup()).map(drop) }))
    {
        log::warn!("cannot handle SIGHUP: {e}");
    }
    let reloader = config::reload::Reloader::new(path, &store.load().config, {
        let registry = registry.clone();
        let store = store.clone();
        Box::new(move |snap| {
            store.store(Arc::new(registry.bind(snap)?));
            Ok(())
        })
    });
    // Usage rows: queued by the request path, written by one writer. The
    // spill file is local whatever the backend: beside sqlite_path (by
    // default modelswitch.db beside the config, never created for Postgres).
    let usage = process.record_usage.then(|| {
        Arc::new(usage::UsageSink::with_capacity(
            key_store.clone(),
            &process.sqlite_path,
            process.usage_queue,
        ))
    });
    let drain = Arc::new(shutdown::Drain::default());
    // Usage rows still queued (then spilled) when the last request ends.
    if let Some(usage) = usage.clone() {
        drain.on_exit(Box::new(move || {
            usage::flush_now(&usage, Duration::from_secs(10))
        }));
    }
    // The conversation log: its writer always runs (a reload may turn the
    // log on); what is queued at exit is written then.
    let conversations = Arc::new(journal::ConversationLog::new(&process.conversation_files));
    drain.on_exit({
        let log = conversations.clone();
        Box::new(move || journal::flush_now(&log))
    });
    // The last uses of keys since the refresh service's last flush.
    drain.on_exit({
        let (store, keys) = (key_store.clone(), registry.keys.clone());
        Box::new(move || store::refresh::flush_now(&store, &keys, Duration::from_secs(2)))
    });
    // Trace spans: always wired, sent only while `[telemetry] otlp_endpoint`
    // is set (it reloads); what is queued at exit is sent then.
    let tracer = Arc::new(telemetry::Tracer::default());
    let exporter = telemetry::Exporter {
        tracer: tracer.clone(),
        store: store.clone(),
    };
    drain.on_exit({
        let (tracer, store) = (tracer.clone(), store.clone());
        Box::new(move || telemetry::flush_now(&tracer, &store, Duration::from_secs(3)))
    });
    let reload_service = background_service("config reload", reloader);
    let upstream = Arc::new(upstream::UpstreamClient::new(process.upstream_pool_size));
    let admin = Arc::new(admin::AdminPlane {
        started: std::time::Instant::now(),
        live: store.clone(),
        store: Some(key_store.clone()),
        upstream: upstream.clone(),
        drain: drain.clone(),
        sessions: admin::session::Sessions::default(),
        cost: admin::overview::CostToday::default(),
        config: admin::config_edit::ConfigWriter::new(path.to_owned(), reload_service.task()),
    });
    let plane = if process.admin_listen.is_some() {
        proxy::Plane::Llm
    } else {
        proxy::Plane::All
    };
    let gateway = proxy::Gateway {
        plane,
        upstream,
        store: store.clone(),
        drain: drain.clone(),
        // One store for the process, whatever reloads: conversations outlive
        // config changes like the clients holding their ids.
        conversations: Box::leak(Box::new(filters::conversations::ConversationStore::new(
            filters::conversations::Limits::default(),
        ))),
        key_store: Some(key_store.clone()),
        usage: usage.clone(),
        journal: journal::Journal {
            conversations: conversations.clone(),
            ring: log_ring,
        },
        tracer,
        admin,
    };
    // `[admin] listen`: the admin plane on an address of its own, served by
    // a second proxy over the same state.
    let admin_gateway = process.admin_listen.as_ref().map(|_| proxy::Gateway {
        plane: proxy::Plane::Admin,
        ..gateway.clone()
    });
    let mut proxy = http_proxy(&server.configuration, gateway);
    proxy.server_options = Some(proxy::connection::server_options(
        process.h2c,
        &store.load().config.downstream,
    ));
    let edge = proxy::connection::Edge::new(Arc::new(proxy), store.clone());
    let mut service = Service::new("modelswitch".into(), edge);
    service.threads = Some(threads);
    for addr in &listen {
        // No L4 read buffer: Pingora reads request heads and bodies into
        // buffers of its own, and a 64 KiB buffer per client connection was
        // most of the memory of 10,000 held streams (heaptrack).
        service.add_listener(
            ListenerConfig::tcp(addr.as_str()).l4_buffer(L4BufferSettings::default().read(0)),
        );
    }
    // The TLS listeners join the same service: the same connection cap,
    // limits and handlers. The certificates were checked with the config;
    // loaded again here, a file changed since is reported, never a panic.
    if let Some(tls) = &process.tls {
        let certs = match tls::Certificates::load(tls) {
            Ok(c) => Arc::new(c),
            Err(errs) => {
                eprintln!("{}: invalid configuration:", path.display());
                for e in errs {
                    eprintln!("  {e}");
                }
                return ExitCode::from(2);
            }
        };
        for addr in &process.tls_listen {
            match tls::listener_settings(certs.clone(), tls.http2) {
                Ok(settings) => service.add_tls_with_settings(addr, None, settings),
                Err(e) => {
                    eprintln!("cannot listen on {addr} with TLS: {e}");
                    return ExitCode::from(2);
                }
            }
        }
    }
    server.add_service(service);
    if let (Some(addr), Some(gateway)) = (&process.admin_listen, admin_gateway) {
        let proxy = Arc::new(http_proxy(&server.configuration, gateway));
        let edge = proxy::connection::Edge::new(proxy, store.clone());
        let mut admin = Service::new("modelswitch admin".into(), edge);
        admin.threads = Some(1);
        admin.add_listener(ListenerConfig::tcp(addr.as_str()));
        server.add_service(admin);
    }
    server.add_service(reload_service);
    server.add_service(background_service(
        "health checks",
        state::health::HealthChecks { store },
    ));
    server.add_service(background_service(
        "key store",
        store::refresh::KeyRefresh {
            store: key_store,
            keys: registry.keys.clone(),
        },
    ));
    if let Some(sink) = usage {
        server.add_service(background_service(
            "usage writer",
            usage::UsageWriter { sink },
        ));
    }
    server.add_service(background_service("trace exporter", exporter));
    server.add_service(background_service(
        "conversation log",
        journal::ConversationWriter { log: conversations },
    ));
    log::info!("modelswitch listening on {}", listen.join(", "));
    if !process.tls_listen.is_empty() {
        log::info!("TLS on {}", process.tls_listen.join(", "));
    }
    if let Some(addr) = &process.admin_listen {
        log::info!("admin plane (UI, admin API, /metrics) on {addr}");
    }
    // A burst past the open-files limit must not leave every accepted
    // request without a descriptor for its upstream (upstream/reserve.rs).
    let reserve = upstream::reserve::fill();
    log::debug!("{reserve} descriptors held back for upstream connections");
    let signals = shutdown::Signals { drain, grace };
    server.run(RunArgs {
        shutdown_signal: Box::new(signals),
    });
    ExitCode::SUCCESS
}
