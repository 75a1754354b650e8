//! `modelswitch status`: the service's state, then what the running
//! gateway says of itself — its listeners, uptime and requests, and each
//! provider's breakers and health — over its own admin API.

use super::http::{self, Url};
use super::install::{self, Platform};
use clap::Args;
use serde_json::Value;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Args)]
pub struct StatusArgs {
    /// The gateway, http://host:port (plain http only: run it on the machine
    /// or the network the gateway listens on). Default: the config's
    /// [admin] listen, else its first [server] listen.
    #[arg(long, value_name = "URL")]
    url: Option<String>,
    /// An admin or viewer key for the gateway's details. Prefer
    /// MODELSWITCH_ADMIN_KEY (the default) or `--key -` (read from stdin):
    /// a key written on the command line is visible to other users (ps)
    /// and kept in shell history. Without one, only /health is asked.
    #[arg(long, value_name = "KEY")]
    key: Option<String>,
    /// linux (systemd) or macos (launchd); default: this machine's.
    #[arg(long, value_enum)]
    platform: Option<Platform>,
}

/// The address to ask, from the config text (read leniently: status needs
/// none of the providers' secrets): `[admin] listen`, else the first
/// `[server] listen`.
pub fn gateway_url(config_text: &str) -> Result<Url, String> {
    let doc: toml::Table =
        toml::from_str(config_text).map_err(|e| format!("the config does not parse: {e}"))?;
    let admin = doc
        .get("admin")
        .and_then(|a| a.get("listen"))
        .and_then(toml::Value::as_str);
    let listen = doc.get("server").and_then(|s| s.get("listen"));
    let first = match listen {
        Some(toml::Value::String(s)) => Some(s.as_str()),
        Some(toml::Value::Array(a)) => a.first().and_then(toml::Value::as_str),
        _ => None,
    };
    admin
        .or(first)
        .map(Url::for_listen)
        .ok_or_else(|| "the config has no [server] listen address".into())
}

/// The key on the first line of `input` (`--key -`), trimmed.
fn key_from(mut input: impl std::io::BufRead) -> Result<String, String> {
    let mut line = String::new();
    input
        .read_line(&mut line)
        .map_err(|e| format!("cannot read the key from stdin: {e}"))?;
    let key = line.trim();
    if key.is_empty() {
        return Err("no key on stdin".into());
    }
    Ok(key.to_owned())
}

pub fn run(config: &Path, args: StatusArgs) -> ExitCode {
    let platform = args.platform.unwrap_or_else(Platform::this);
    println!(
        "service:  {}",
        install::service_state(platform).unwrap_or_else(|| "not installed".into())
    );
    let url = match args.url.as_deref().map(Url::parse).unwrap_or_else(|| {
        std::fs::read_to_string(config)
            .map_err(|e| format!("{}: cannot read: {e}", config.display()))
            .and_then(|t| gateway_url(&t))
    }) {
        Ok(u) => u,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    match http::get(&url, "/health", None, TIMEOUT) {
        Ok(r) if r.status == 200 => println!("gateway:  {url} up"),
        Ok(r) => {
            println!("gateway:  {url} answered /health with {}", r.status);
            return ExitCode::from(1);
        }
        Err(e) => {
            println!("gateway:  not reachable ({e})");
            return ExitCode::from(1);
        }
    }
    let key = match args.key.as_deref() {
        Some("-") => match key_from(std::io::stdin().lock()) {
            Ok(k) => Some(k),
            Err(e) => {
                eprintln!("--key -: {e}");
                return ExitCode::from(2);
            }
        },
        Some(k) => Some(k.to_owned()),
        None => std::env::var("MODELSWITCH_ADMIN_KEY").ok(),
    }
    .filter(|k| !k.is_empty());
    let Some(key) = key else {
        println!("(give --key or MODELSWITCH_ADMIN_KEY, an admin or viewer key, for the details)");
        return ExitCode::SUCCESS;
    };
    let fetch = |path: &str| -> Result<Value, String> {
        let r = http::get(&url, path, Some(&key), TIMEOUT)?;
        let v: Value = serde_json::from_slice(&r.body)
            .map_err(|e| format!("{path}: the answer is not JSON: {e}"))?;
        if r.status != 200 {
            let msg = v["error"]["message"].as_str().unwrap_or("").to_owned();
            return Err(format!("{path}: {} {msg}", r.status));
        }
        Ok(v)
    };
    let shown = fetch("/api/overview").and_then(|overview| {
        let stats = fetch("/api/stats")?;
        let providers = fetch("/api/providers")?;
        Ok(report(&overview, &stats, &providers))
    });
    match shown {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(1)
        }
    }
}

fn duration(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m {s}s"),
        (0, _, _) => format!("{h}h {m}m"),
        _ => format!("{d}d {h}h"),
    }
}

/// The gateway's answers as text: a few lines and a provider table.
pub fn report(overview: &Value, stats: &Value, providers: &Value) -> String {
    let list = |v: &Value| match v {
        Value::Array(a) => a
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(", "),
        Value::String(s) => s.clone(),
        _ => "-".into(),
    };
    let mut out = format!(
        "version:  {}\nlisten:   {}\nadmin:    {}\nuptime:   {}\nrequests: {} ({} errors, {} in flight)\n\n",
        overview["version"].as_str().unwrap_or("-"),
        list(&overview["listen"]),
        match &overview["admin_listen"] {
            Value::Null => "on the listeners above".into(),
            v => list(v),
        },
        duration(overview["uptime_s"].as_u64().unwrap_or(0)),
        stats["requests"].as_u64().unwrap_or(0),
        stats["errors"].as_u64().unwrap_or(0),
        stats["in_flight"].as_u64().unwrap_or(0),
    );
    let mut rows = vec![[
        "PROVIDER".to_owned(),
        "MODEL".into(),
        "BREAKER".into(),
        "HEALTH".into(),
        "KEYS".into(),
    ]];
    for p in providers["providers"].as_array().into_iter().flatten() {
        let name = p["name"].as_str().unwrap_or("-").to_owned();
        let replicas = p["replicas"].as_array().map_or(&[][..], Vec::as_slice);
        let health = if replicas.is_empty() {
            "-".to_owned()
        } else {
            let up = replicas.iter().filter(|r| r["healthy"] == true).count();
            format!("{up}/{} replicas healthy", replicas.len())
        };
        let keys = p["keys"].as_array().map_or(&[][..], Vec::as_slice);
        let key_states = if keys.is_empty() {
            "-".to_owned()
        } else {
            keys.iter()
                .map(|k| k["state"].as_str().unwrap_or("?"))
                .collect::<Vec<_>>()
                .join(",")
        };
        let targets = p["targets"].as_array().map_or(&[][..], Vec::as_slice);
        if targets.is_empty() {
            rows.push([
                name.clone(),
                "-".into(),
                "-".into(),
                health.clone(),
                key_states.clone(),
            ]);
        }
        for t in targets {
            rows.push([
                name.clone(),
                t["model"].as_str().unwrap_or("-").into(),
                t["breaker"].as_str().unwrap_or("-").into(),
                health.clone(),
                key_states.clone(),
            ]);
        }
    }
    out.push_str(&super::table(&rows));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_key_is_read_from_the_first_line_of_stdin() {
        assert_eq!(key_from(&b"sk-ms-abc\nrest\n"[..]).unwrap(), "sk-ms-abc");
        assert_eq!(key_from(&b"  sk-ms-abc  "[..]).unwrap(), "sk-ms-abc");
        assert!(key_from(&b"\n"[..]).is_err());
        assert!(key_from(&b""[..]).is_err());
    }

    #[test]
    fn the_admin_listener_is_asked_first() {
        let u = gateway_url("[server]\nlisten = [\"0.0.0.0:8000\"]\n").unwrap();
        assert_eq!(u.authority, "127.0.0.1:8000");
        let u =
            gateway_url("[server]\nlisten = \"127.0.0.1:1\"\n[admin]\nlisten = \"127.0.0.1:2\"\n")
                .unwrap();
        assert_eq!(u.authority, "127.0.0.1:2");
        assert!(gateway_url("").is_err());
    }

    #[test]
    fn the_report_has_listeners_uptime_and_a_provider_table() {
        let text = report(
            &json!({"version": "0.1.0", "uptime_s": 3725, "listen": ["127.0.0.1:8000"], "admin_listen": null}),
            &json!({"requests": 12, "errors": 1, "in_flight": 0}),
            &json!({"providers": [
                {"name": "openai", "replicas": [], "keys": [{"state": "ok"}],
                 "targets": [{"model": "gpt", "breaker": "closed"}, {"model": "o3", "breaker": "open"}]},
                {"name": "vllm", "replicas": [{"healthy": true}, {"healthy": false}], "keys": [], "targets": []}
            ]}),
        );
        assert!(text.contains("listen:   127.0.0.1:8000\n"), "{text}");
        assert!(text.contains("uptime:   1h 2m\n"), "{text}");
        assert!(
            text.contains("requests: 12 (1 errors, 0 in flight)"),
            "{text}"
        );
        assert!(text.contains("openai    o3     open"), "{text}");
        assert!(
            text.contains("vllm      -      -        1/2 replicas healthy"),
            "{text}"
        );
    }
}
