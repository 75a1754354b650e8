//! `modelswitch keys ...` as a shell user runs it: the real binary, a
//! config file in a temp dir and the key store beside it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A temp dir holding a gateway config (the harness's shape) whose store
/// is `keys.db` beside it.
fn setup(tag: &str) -> (PathBuf, PathBuf) {
    let dir = std::env::temp_dir().join(format!(
        "modelswitch-keys-cli-{tag}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let mut text =
        common::config("127.0.0.1:9".parse().unwrap(), &[], "").replace("LISTEN", "127.0.0.1:0");
    text.push_str("\n[storage]\nsqlite_path = \"keys.db\"\n");
    let config = dir.join("gateway.toml");
    std::fs::write(&config, text).unwrap();
    (config, dir.join("keys.db"))
}

fn keys(config: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_modelswitch"))
        .arg("--config")
        .arg(config)
        .arg("keys")
        .args(args)
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn create_list_show_update_revoke() {
    let (config, db) = setup("cycle");
    let made = keys(
        &config,
        &[
            "create", "--name", "ci-bot", "--role", "user", "--models", "oa,gpt-*", "--tpm", "1000",
        ],
    );
    assert!(made.status.success(), "{}", stderr(&made));
    let secret = stdout(&made).trim().to_owned();
    assert!(
        secret.starts_with("sk-ms-") && secret.len() == 38,
        "{secret}"
    );
    assert!(stderr(&made).contains("will not be shown again"));
    let prefix = &secret[..10];

    let list = keys(&config, &["list"]);
    assert!(list.status.success(), "{}", stderr(&list));
    let row = stdout(&list)
        .lines()
        .find(|l| l.starts_with("ci-bot"))
        .map(str::to_owned)
        .unwrap_or_else(|| panic!("no row: {}", stdout(&list)));
    assert!(
        row.contains(prefix) && row.contains("tpm=1000") && row.contains("never"),
        "{row}"
    );
    assert!(!stdout(&list).contains(&secret));

    let show = keys(&config, &["show", "ci-bot", "--json"]);
    assert!(show.status.success(), "{}", stderr(&show));
    let v: serde_json::Value = serde_json::from_slice(&show.stdout).unwrap();
    assert_eq!(v["prefix"], prefix);
    assert_eq!(v["allowed_models"], serde_json::json!(["oa", "gpt-*"]));
    assert_eq!(v["limits"]["rpm"], serde_json::Value::Null);
    assert!(!stdout(&show).contains(&secret[10..]));

    let update = keys(&config, &["update", "ci-bot", "--rpm", "5", "--disable"]);
    assert!(update.status.success(), "{}", stderr(&update));
    let v: serde_json::Value =
        serde_json::from_slice(&keys(&config, &["show", "ci-bot", "--json"]).stdout).unwrap();
    assert_eq!(v["limits"], serde_json::json!({"rpm": 5, "tpm": 1000}));
    assert_eq!(v["enabled"], false);
    let text = stdout(&keys(&config, &["show", "ci-bot"]));
    assert!(
        text.contains("rpm=5 tpm=1000") && text.contains(prefix),
        "{text}"
    );

    let bytes = [
        std::fs::read(&db).unwrap(),
        std::fs::read(db.with_extension("db-wal")).unwrap_or_default(),
    ]
    .concat();
    assert!(!bytes.is_empty());
    assert!(!String::from_utf8_lossy(&bytes).contains(&secret));

    let revoke = keys(&config, &["revoke", "ci-bot"]);
    assert!(revoke.status.success(), "{}", stderr(&revoke));
    let gone = keys(&config, &["show", "ci-bot"]);
    assert_eq!(gone.status.code(), Some(1));
    assert!(stderr(&gone).contains("no key named 'ci-bot'"));
    assert_eq!(keys(&config, &["revoke", "ci-bot"]).status.code(), Some(1));
}

#[test]
fn refuses_duplicates_and_bad_input() {
    let (config, _) = setup("refuse");
    let made = keys(&config, &["create", "--name", "dup", "--json"]);
    assert!(made.status.success(), "{}", stderr(&made));
    let v: serde_json::Value = serde_json::from_slice(&made.stdout).unwrap();
    assert_eq!(v["name"], "dup");
    assert!(v["key"].as_str().unwrap().starts_with("sk-ms-"));

    let again = keys(&config, &["create", "--name", "dup"]);
    assert_eq!(again.status.code(), Some(1));
    assert!(stderr(&again).contains("a key named 'dup' exists"));
    assert!(again.stdout.is_empty());

    let root = keys(&config, &["create", "--name", "r", "--role", "root"]);
    assert_eq!(root.status.code(), Some(2));
    assert!(stderr(&root).contains("roles[0]"), "{}", stderr(&root));
    let zero = keys(&config, &["update", "dup", "--rpm", "0"]);
    assert_eq!(zero.status.code(), Some(2));
    assert!(stderr(&zero).contains("limits.rpm"), "{}", stderr(&zero));
    let when = keys(&config, &["update", "dup", "--expires", "tomorrow"]);
    assert_eq!(when.status.code(), Some(2));
    assert!(stderr(&when).contains("expires_at"), "{}", stderr(&when));
    assert_eq!(
        keys(&config, &["update", "nobody", "--rpm", "1"])
            .status
            .code(),
        Some(1)
    );

    let list = keys(&config, &["list", "--json"]);
    let all: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(all.as_array().unwrap().len(), 1);
}

#[test]
fn db_flag_overrides_the_config() {
    let (config, beside) = setup("flag");
    let other = beside.with_file_name("elsewhere").join("other.db");
    let made = keys(
        &config,
        &["--db", other.to_str().unwrap(), "create", "--name", "x"],
    );
    assert!(made.status.success(), "{}", stderr(&made));
    assert!(other.exists());
    assert!(!beside.exists());
    let list = keys(&config, &["list", "--db", other.to_str().unwrap()]);
    assert!(stdout(&list).contains("\nx "), "{}", stdout(&list));
}
