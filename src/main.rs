//! ModelSwitch: an LLM gateway on Pingora.
//!
//! `modelswitch --config FILE` runs the gateway; `modelswitch check --config
//! FILE` validates a config and names the TOML path of every error.

mod config;
mod exchange;
mod gateway;
mod replicas;
mod secret;
mod upstream;
mod upstream_http1;
mod upstream_pool;

use clap::{Parser, Subcommand};
use pingora::listeners::{L4BufferSettings, ListenerConfig};
use pingora::proxy::http_proxy_service;
use pingora::server::configuration::ServerConf;
use pingora::server::Server;
use pingora::services::background::GenBackgroundService;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

// mimalloc: glibc's malloc and free were ~15% of a pass-through request's
// instructions (callgrind); mimalloc cut CPU per request by ~10-30%.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "modelswitch",
    version,
    about = "One endpoint for every LLM dialect and provider"
)]
struct Cli {
    /// The TOML config file.
    #[arg(short, long, global = true, default_value = "conf/modelswitch.toml")]
    config: PathBuf,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway (the default).
    Run,
    /// Validate the config file and exit.
    Check,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    env_logger::Builder::from_env(
        env_logger::Env::default().default_filter_or("modelswitch=info,warn"),
    )
    .format_timestamp_millis()
    .init();
    let snapshot = match config::load(&cli.config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{}: invalid configuration:\n{e}", cli.config.display());
            return ExitCode::from(2);
        }
    };
    match cli.command.unwrap_or(Command::Run) {
        Command::Check => {
            println!(
                "{}: ok ({} providers, {} models, {} api keys)",
                cli.config.display(),
                snapshot.providers.len(),
                snapshot.routes.len(),
                snapshot.keys.len()
            );
            ExitCode::SUCCESS
        }
        Command::Run => run(snapshot),
    }
}

fn run(snapshot: config::Snapshot) -> ExitCode {
    let threads = match snapshot.threads {
        0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
        n => n,
    };
    let listen = snapshot.listen.clone();
    // Pingora's listeners share ports (SO_REUSEPORT): a second gateway on a
    // taken address would start and silently split the traffic. Refuse.
    for addr in &listen {
        if let Err(e) = std::net::TcpListener::bind(addr.as_str()) {
            eprintln!("cannot listen on {addr}: {e}");
            return ExitCode::from(2);
        }
    }
    let health_checks: Vec<_> = snapshot
        .providers
        .iter()
        .filter_map(|p| {
            p.replicas
                .as_ref()
                .and_then(|r| r.health_service())
                .map(|lb| (p.name.clone(), lb))
        })
        .collect();
    // One single-threaded runtime per worker, as nginx runs one event loop
    // per worker: a request and its upstream connections stay on one thread
    // (work stealing measured more CPU per pass-through request, in futex
    // and scheduler traffic). Pingora accepts on one worker and hands the
    // connection to a random one; one listening service per worker on the
    // shared socket avoided that hand-off but measured no gain.
    let conf = ServerConf {
        threads,
        work_stealing: false,
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let gateway = gateway::Gateway {
        upstream: Arc::new(upstream::UpstreamClient::new(snapshot.upstream_pool_size)),
        config: Arc::new(arc_swap::ArcSwap::from_pointee(snapshot)),
    };
    let mut service = http_proxy_service(&server.configuration, gateway);
    service.threads = Some(threads);
    for addr in &listen {
        // No L4 read buffer: Pingora reads request heads and bodies into
        // buffers of its own, and a 64 KiB buffer per client connection was
        // most of the memory of 10,000 held streams (heaptrack).
        service.add_listener(
            ListenerConfig::tcp(addr.as_str()).l4_buffer(L4BufferSettings::default().read(0)),
        );
    }
    server.add_service(service);
    for (name, lb) in health_checks {
        server.add_service(GenBackgroundService::new(
            format!("health check {name}"),
            lb,
        ));
    }
    log::info!("modelswitch listening on {}", listen.join(", "));
    server.run_forever()
}
