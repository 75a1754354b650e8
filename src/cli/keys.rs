//! `modelswitch keys create|list|show|update|revoke`: the key store from a
//! shell, beside a running gateway (which serves each change within a
//! second) or without one. Reads only `[storage]` of the config (the
//! SQLite path, or the PostgreSQL URL with `backend = "postgres"`), so it
//! needs none of the providers' secrets.
//!
//! Exit codes: 0 done, 1 no such key / name taken / store failure, 2 bad
//! input (with the field at fault).

use crate::store::{KeyStore, StoreError, StoredKey};
use clap::{Args, Subcommand};
use filters::auth::{format_rfc3339, KeySpec};
use filters::limits::budget::{self, Budget};
use filters::limits::Limits;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Args)]
pub struct KeysArgs {
    /// A SQLite key store file, whatever the config says (default: the
    /// config's `[storage]`: its sqlite_path, or its postgres_url).
    #[arg(long, global = true, value_name = "PATH")]
    db: Option<PathBuf>,
    #[command(subcommand)]
    verb: Verb,
}

#[derive(Subcommand)]
enum Verb {
    /// Mint a key; it is printed once and never again.
    // Boxed: the flags are large beside the other verbs (and commands).
    Create(Box<CreateArgs>),
    /// Every stored key (never a secret).
    List {
        #[arg(long)]
        json: bool,
    },
    /// One key's attributes (never its secret).
    Show {
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// Change a key's attributes; what is not named stays.
    Update(Box<UpdateArgs>),
    /// Delete a key: it stops working within a second.
    Revoke { name: String },
}

/// A key's attributes as flags; each one given replaces that attribute.
#[derive(Args)]
struct Attributes {
    #[arg(long)]
    description: Option<String>,
    /// admin, user or viewer (repeat or separate with commas; default user).
    #[arg(long = "role", value_name = "ROLE", value_delimiter = ',')]
    roles: Vec<String>,
    /// Models the key may call: names or `*` globs, comma-separated.
    #[arg(long, value_delimiter = ',')]
    models: Option<Vec<String>>,
    /// Providers the key may reach, comma-separated.
    #[arg(long, value_delimiter = ',')]
    providers: Option<Vec<String>>,
    /// Requests per minute.
    #[arg(long)]
    rpm: Option<u64>,
    /// Tokens per minute.
    #[arg(long)]
    tpm: Option<u64>,
    /// Requests per day.
    #[arg(long)]
    rpd: Option<u64>,
    /// Tokens per day.
    #[arg(long)]
    tpd: Option<u64>,
    /// Requests in flight.
    #[arg(long)]
    concurrency: Option<u64>,
    /// Money per calendar day, in the [budgets] currency (e.g. 5 or 2.50).
    #[arg(long, value_name = "AMOUNT", value_parser = budget::parse_amount)]
    daily_budget: Option<u64>,
    /// Money per calendar month, in the [budgets] currency.
    #[arg(long, value_name = "AMOUNT", value_parser = budget::parse_amount)]
    monthly_budget: Option<u64>,
    /// Requests asking for more output are clamped to this.
    #[arg(long)]
    max_output_tokens: Option<u64>,
    /// Request fields the key may not set, comma-separated.
    #[arg(long, value_delimiter = ',')]
    deny_params: Option<Vec<String>>,
    /// When the key stops working, e.g. 2027-01-01T00:00:00Z.
    #[arg(long, value_name = "RFC3339")]
    expires: Option<String>,
}

#[derive(Args)]
struct CreateArgs {
    #[arg(long)]
    name: String,
    #[command(flatten)]
    attributes: Attributes,
    /// Create it switched off.
    #[arg(long)]
    disabled: bool,
    /// Print `{"key": ..., "name": ...}`.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct UpdateArgs {
    name: String,
    #[command(flatten)]
    attributes: Attributes,
    #[arg(long, conflicts_with = "disable")]
    enable: bool,
    #[arg(long)]
    disable: bool,
    /// Remove every limit (then apply any limit flags given).
    #[arg(long)]
    clear_limits: bool,
    /// Remove the budget (then apply any budget flags given).
    #[arg(long)]
    clear_budget: bool,
    /// The key never expires.
    #[arg(long, conflicts_with = "expires")]
    clear_expiry: bool,
    /// The key may call every model.
    #[arg(long, conflicts_with = "models")]
    clear_models: bool,
    /// The key may reach every provider.
    #[arg(long, conflicts_with = "providers")]
    clear_providers: bool,
    /// No output cap of the key's own.
    #[arg(long, conflicts_with = "max_output_tokens")]
    clear_max_output_tokens: bool,
    /// The key may set every request field.
    #[arg(long, conflicts_with = "deny_params")]
    clear_deny_params: bool,
}

impl Attributes {
    fn apply(self, spec: &mut KeySpec) {
        if let Some(d) = self.description {
            spec.description = d;
        }
        if !self.roles.is_empty() {
            spec.roles = self.roles;
        }
        if self.models.is_some() {
            spec.allowed_models = self.models;
        }
        if self.providers.is_some() {
            spec.allowed_providers = self.providers;
        }
        let limits = &mut spec.limits;
        for (field, value) in [
            (&mut limits.rpm, self.rpm),
            (&mut limits.tpm, self.tpm),
            (&mut limits.rpd, self.rpd),
            (&mut limits.tpd, self.tpd),
            (&mut limits.concurrency, self.concurrency),
        ] {
            if value.is_some() {
                *field = value;
            }
        }
        for (field, value) in [
            (&mut spec.budget.daily, self.daily_budget),
            (&mut spec.budget.monthly, self.monthly_budget),
        ] {
            if value.is_some() {
                *field = value;
            }
        }
        if self.max_output_tokens.is_some() {
            spec.max_output_tokens = self.max_output_tokens;
        }
        if let Some(p) = self.deny_params {
            spec.deny_params = p;
        }
        if self.expires.is_some() {
            spec.expires_at = self.expires;
        }
    }
}

pub fn run(config: &Path, args: KeysArgs) -> ExitCode {
    let store = match open_store(config, args.db) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let runtime = match super::runtime_or_exit() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    // A store key named like a config key would never be served (the
    // config's wins): refuse it here rather than print a dead key.
    let config_names = crate::config::key_names_of(config).unwrap_or_default();
    match runtime.block_on(verb(&store, args.verb, &config_names)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(StoreError::Invalid(errs)) => {
            eprintln!("invalid key attributes:");
            for e in errs {
                eprintln!("  {e}");
            }
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(1)
        }
    }
}

/// The store `--db` or the config's `[storage]` names; on failure the
/// message is printed and the exit code returned (2 a bad config, 1 a
/// store that cannot be opened).
pub(super) fn open_store(config: &Path, db: Option<PathBuf>) -> Result<KeyStore, ExitCode> {
    let at = match db {
        Some(p) => StoreAt::Sqlite(p),
        None => store_of(config).map_err(|e| {
            eprintln!("{e}");
            ExitCode::from(2)
        })?,
    };
    // The store's errors name the file or the URL (its password masked).
    let opened = match &at {
        StoreAt::Sqlite(path) => KeyStore::open(path),
        StoreAt::Postgres(url) => KeyStore::open_postgres(url),
    };
    opened.map_err(|e| {
        eprintln!("{e}");
        ExitCode::from(1)
    })
}

/// Mints a key as `keys create --name NAME --role ROLE` does, in the store
/// `config` names; its secret (shown once by the caller). A key of that
/// name already in the store is deleted first: the workspace's first run
/// calls this only while no config exists, so such a key was never shown
/// (a first run that crashed, or could not print it) and nobody holds it.
pub fn mint(config: &Path, name: &str, role: &str, description: &str) -> Result<String, String> {
    let store = match store_of(config)? {
        StoreAt::Sqlite(path) => KeyStore::open(&path),
        StoreAt::Postgres(url) => KeyStore::open_postgres(&url),
    }
    .map_err(|e| e.to_string())?;
    let mut spec = KeySpec::named(name.to_owned());
    spec.roles = vec![role.to_owned()];
    spec.description = description.to_owned();
    let runtime = super::runtime()?;
    runtime
        .block_on(async {
            store.delete(name).await?;
            store.create(spec).await
        })
        .map(|(_, secret)| secret)
        .map_err(|e| e.to_string())
}

/// Where the keys are: a SQLite file or a PostgreSQL URL.
#[derive(Debug, PartialEq, Eq)]
enum StoreAt {
    Sqlite(PathBuf),
    Postgres(String),
}

/// The config's `[storage]`, reading nothing else: `backend`, then the
/// Postgres URL (or the variable holding it) or the SQLite path.
fn store_of(config: &Path) -> Result<StoreAt, String> {
    let text = std::fs::read_to_string(config)
        .map_err(|e| format!("{}: cannot read: {e}", config.display()))?;
    // A file that does not parse is reported by `sqlite_path_of`, with the
    // line at fault and never a value.
    let Ok(doc) = toml::from_str::<toml::Table>(&text) else {
        return crate::config::sqlite_path_of(config).map(StoreAt::Sqlite);
    };
    let storage = doc.get("storage");
    let text_of = |name: &str| -> Result<Option<&str>, String> {
        match storage.and_then(|s| s.get(name)) {
            None => Ok(None),
            Some(toml::Value::String(v)) => Ok(Some(v.as_str())),
            Some(_) => Err(format!("storage.{name}: a string is required")),
        }
    };
    match text_of("backend")? {
        None | Some("sqlite") => crate::config::sqlite_path_of(config).map(StoreAt::Sqlite),
        Some("postgres") => {
            crate::store::resolve_url(text_of("postgres_url")?, text_of("postgres_url_env")?)
                .map(StoreAt::Postgres)
        }
        Some(_) => Err("storage.backend: sqlite or postgres".into()),
    }
}

async fn verb(store: &KeyStore, verb: Verb, config_names: &[String]) -> Result<(), StoreError> {
    match verb {
        Verb::Create(args) => {
            let args = *args;
            if config_names.contains(&args.name) {
                return Err(StoreError::Conflict(format!(
                    "a key named '{}' is defined in the config file",
                    args.name
                )));
            }
            let mut spec = KeySpec::named(args.name);
            args.attributes.apply(&mut spec);
            spec.enabled = !args.disabled;
            let (made, secret) = store.create(spec).await?;
            if args.json {
                out(&format!(
                    "{}\n",
                    json!({"key": secret, "name": made.spec.name})
                ));
            } else {
                out(&format!("{secret}\n"));
                // On stderr: `KEY=$(modelswitch keys create ...)` keeps
                // only the key, and a terminal still shows the warning.
                eprintln!(
                    "Created key '{}' ({}). Store it now: it will not be shown again.",
                    made.spec.name, made.prefix
                );
            }
        }
        Verb::List { json } => {
            let keys = store.list().await?;
            let used = store.last_used().await?;
            out(&if json {
                let all: Vec<Value> = keys.iter().map(|k| key_json(k, &used)).collect();
                format!("{}\n", Value::Array(all))
            } else {
                table(&keys, &used)
            });
        }
        Verb::Show { name, json } => {
            let key = store.get(&name).await?.ok_or(StoreError::NotFound(name))?;
            let used = store.last_used().await?;
            out(&if json {
                format!("{:#}\n", key_json(&key, &used))
            } else {
                details(&key, &used)
            });
        }
        Verb::Update(args) => {
            let args = *args;
            let name = args.name;
            let old = store
                .get(&name)
                .await?
                .ok_or_else(|| StoreError::NotFound(name.clone()))?;
            let mut spec = old.spec.clone();
            if args.clear_limits {
                spec.limits = Limits::default();
            }
            if args.clear_budget {
                spec.budget = Budget::default();
            }
            if args.clear_expiry {
                spec.expires_at = None;
            }
            if args.clear_models {
                spec.allowed_models = None;
            }
            if args.clear_providers {
                spec.allowed_providers = None;
            }
            if args.clear_max_output_tokens {
                spec.max_output_tokens = None;
            }
            if args.clear_deny_params {
                spec.deny_params.clear();
            }
            args.attributes.apply(&mut spec);
            if args.enable || args.disable {
                spec.enabled = args.enable;
            }
            if spec == old.spec {
                eprintln!("key '{name}': nothing to change");
                return Ok(());
            }
            store.update(&name, spec).await?;
            eprintln!("Updated key '{name}'.");
        }
        Verb::Revoke { name } => {
            if !store.delete(&name).await? {
                return Err(StoreError::NotFound(name));
            }
            eprintln!("Revoked key '{name}'.");
        }
    }
    Ok(())
}

/// Writes to stdout, ignoring a closed pipe (`keys list | head`).
fn out(text: &str) {
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}

fn roles(spec: &KeySpec) -> String {
    if spec.roles.is_empty() {
        "user".into()
    } else {
        spec.roles.join(",")
    }
}

/// `rpm=60 daily_budget=2.5`: limits as counts, budgets as decimals.
fn limits(spec: &KeySpec) -> String {
    let l = Limits {
        budget: spec.budget,
        ..spec.limits
    };
    let set: Vec<String> = l
        .each()
        .into_iter()
        .filter_map(|(d, v)| {
            v.map(|n| {
                if d.is_spend() {
                    format!("{}={}", d.name(), budget::decimal(n))
                } else {
                    format!("{}={n}", d.name())
                }
            })
        })
        .collect();
    if set.is_empty() {
        "-".into()
    } else {
        set.join(" ")
    }
}

fn last_used(k: &StoredKey, used: &HashMap<String, i64>) -> String {
    used.get(&k.spec.name)
        .map_or_else(|| "never".into(), |t| format_rfc3339(*t))
}

fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

fn table(keys: &[StoredKey], used: &HashMap<String, i64>) -> String {
    let header = [
        "NAME",
        "PREFIX",
        "ROLES",
        "ENABLED",
        "EXPIRES",
        "LIMITS",
        "LAST USED",
    ];
    let mut rows = vec![header.map(String::from)];
    for k in keys {
        rows.push([
            k.spec.name.clone(),
            k.prefix.clone(),
            roles(&k.spec),
            yes_no(k.spec.enabled).into(),
            k.spec.expires_at.clone().unwrap_or_else(|| "-".into()),
            limits(&k.spec),
            last_used(k, used),
        ]);
    }
    super::table(&rows)
}

fn details(k: &StoredKey, used: &HashMap<String, i64>) -> String {
    let list = |v: &Option<Vec<String>>, all: &str| v.as_ref().map_or(all.into(), |v| v.join(","));
    let spec = &k.spec;
    let fields = [
        ("name", spec.name.clone()),
        ("prefix", k.prefix.clone()),
        ("description", spec.description.clone()),
        ("roles", roles(spec)),
        ("enabled", yes_no(spec.enabled).into()),
        (
            "expires",
            spec.expires_at.clone().unwrap_or_else(|| "never".into()),
        ),
        ("models", list(&spec.allowed_models, "all")),
        ("providers", list(&spec.allowed_providers, "all")),
        ("limits", limits(spec)),
        (
            "max output tokens",
            spec.max_output_tokens.map_or("-".into(), |n| n.to_string()),
        ),
        (
            "denied params",
            if spec.deny_params.is_empty() {
                "-".into()
            } else {
                spec.deny_params.join(",")
            },
        ),
        ("created", format_rfc3339(k.created_at)),
        ("updated", format_rfc3339(k.updated_at)),
        ("last used", last_used(k, used)),
    ];
    fields
        .iter()
        .map(|(f, v)| format!("{:<18} {v}", format!("{f}:")).trim_end().to_owned() + "\n")
        .collect()
}

/// The key's attributes as the store's JSON has them, plus what identifies
/// it and when it changed; never the secret or its hash.
fn key_json(k: &StoredKey, used: &HashMap<String, i64>) -> Value {
    let mut v = serde_json::to_value(&k.spec).unwrap_or(Value::Null);
    if let Some(map) = v.as_object_mut() {
        map.insert("prefix".into(), k.prefix.clone().into());
        map.insert("created_at".into(), format_rfc3339(k.created_at).into());
        map.insert("updated_at".into(), format_rfc3339(k.updated_at).into());
        map.insert(
            "last_used_at".into(),
            used.get(&k.spec.name)
                .map_or(Value::Null, |t| format_rfc3339(*t).into()),
        );
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config_with(tag: &str, storage: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "modelswitch-cli-store-{tag}-{}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("gateway.toml");
        // Only [storage] is read: the rest may be anything, even invalid.
        std::fs::write(&path, format!("[[providers]]\nname = 1\n{storage}")).unwrap();
        path
    }

    #[test]
    fn the_store_comes_from_the_storage_table_alone() {
        let c = config_with("default", "");
        assert_eq!(
            store_of(&c).unwrap(),
            StoreAt::Sqlite(c.parent().unwrap().join("modelswitch.db"))
        );
        let c = config_with(
            "pg",
            "[storage]\nbackend = \"postgres\"\npostgres_url = \"postgres://u:p@h/db\"\n",
        );
        assert_eq!(
            store_of(&c).unwrap(),
            StoreAt::Postgres("postgres://u:p@h/db".into())
        );
        let c = config_with("pg-none", "[storage]\nbackend = \"postgres\"\n");
        assert!(store_of(&c)
            .unwrap_err()
            .starts_with("storage.postgres_url: required"));
        let c = config_with(
            "pg-bad",
            "[storage]\nbackend = \"postgres\"\npostgres_url = \"redis://u:hidden@h\"\n",
        );
        let err = store_of(&c).unwrap_err();
        assert!(
            err.contains("must start with") && !err.contains("hidden"),
            "{err}"
        );
        let c = config_with("other", "[storage]\nbackend = \"mysql\"\n");
        assert_eq!(
            store_of(&c).unwrap_err(),
            "storage.backend: sqlite or postgres"
        );
    }
}
