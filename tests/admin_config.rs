//! The config file through the admin API, over real sockets: read with its
//! secrets masked (viewers too), saved back losslessly, a valid edit served
//! as soon as the PUT returns, an invalid one refused with its TOML path
//! while the file and the running config stay, a chain reordered in the
//! file (comments kept) and served in the new order, stale etags, edits
//! on disk since the read, secrets sent to a new address and viewers
//! refused.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::time::Duration;

const VIEWER_KEY: &str = "sk-test-viewer-key";

/// The shared test config, a viewer key added, and a chain `chain`:
/// openai first, anthropic second.
fn config_text(mock: SocketAddr) -> String {
    let mut c = config(
        mock,
        &[("chain", &[("openai", "mock"), ("anthropic", "mock")])],
        "",
    );
    c.push_str(&format!(
        "\n[[api_keys]]\nkey = \"{VIEWER_KEY}\"\nname = \"viewer\"\nroles = [\"viewer\"]\n"
    ));
    c
}

fn get_config(gw: SocketAddr, key: &str) -> Value {
    let r = api_call(gw, "GET", "/api/config", key, None);
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

fn put_config(gw: SocketAddr, key: &str, toml: &str, etag: &str) -> Response {
    api_call(
        gw,
        "PUT",
        "/api/config",
        key,
        Some(&json!({"toml": toml, "etag": etag})),
    )
}

fn put_targets(gw: SocketAddr, model: &str, targets: &[(&str, &str)]) -> Response {
    let targets: Vec<Value> = targets
        .iter()
        .map(|(p, m)| json!({"provider": p, "model": m}))
        .collect();
    api_call(
        gw,
        "PUT",
        &format!("/api/models/{model}/targets"),
        KEY,
        Some(&json!({ "targets": targets })),
    )
}

fn ask(gw: SocketAddr, model: &str) -> Response {
    post_json(
        gw,
        "/v1/chat/completions",
        KEY,
        &json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}),
    )
}

fn file(gw: &LiveGateway) -> String {
    std::fs::read_to_string(&gw.path).unwrap()
}

const SECRETS: [&str; 5] = [
    UPSTREAM_OPENAI_KEY,
    UPSTREAM_ANTHROPIC_KEY,
    KEY,
    LIMITED_KEY,
    VIEWER_KEY,
];

#[test]
fn the_config_is_shown_with_its_secrets_masked_and_viewers_may_read_it() {
    let m = mock();
    let gw = live_gateway(&config_text(m.addr));
    for key in [KEY, VIEWER_KEY] {
        let r = api_call(gw.addr(), "GET", "/api/config", key, None);
        assert_eq!(r.status, 200, "{}", r.text());
        let body = r.text();
        for s in SECRETS {
            assert!(!body.contains(s), "{s} is shown: {body}");
        }
        let v = r.json();
        let masked: Vec<&str> = v["masked"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_str().unwrap())
            .collect();
        for p in [
            "providers[0].api_key",
            "providers[1].api_key",
            "api_keys[0].key",
            "api_keys[2].key",
        ] {
            assert!(masked.contains(&p), "{p} not in {masked:?}");
        }
        let toml = v["toml"].as_str().unwrap();
        assert!(toml.contains("api_key = \"********\""), "{toml}");
        assert!(
            toml.contains("# A second Anthropic account"),
            "comments are shown"
        );
        assert_eq!(v["path"].as_str().unwrap(), gw.path.to_str().unwrap());
        assert!(!v["etag"].as_str().unwrap().is_empty());
    }
    // A user key is no reader of the admin API.
    let r = api_call(gw.addr(), "GET", "/api/config", LIMITED_KEY, None);
    assert_eq!(r.status, 403, "{}", r.text());
}

#[test]
fn saving_the_masked_text_keeps_every_secret() {
    let m = mock();
    let gw = live_gateway(&config_text(m.addr));
    let v = get_config(gw.addr(), KEY);
    let edited = format!(
        "# saved from the admin API\n{}",
        v["toml"].as_str().unwrap()
    );
    let r = put_config(gw.addr(), KEY, &edited, v["etag"].as_str().unwrap());
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["ok"], true);
    assert_eq!(r.json()["restart_needed"], json!([]));
    // The new etag is the file's.
    assert_eq!(r.json()["etag"], get_config(gw.addr(), VIEWER_KEY)["etag"]);

    let on_disk = file(&gw);
    assert!(
        on_disk.starts_with("# saved from the admin API\n"),
        "{on_disk}"
    );
    for s in SECRETS {
        assert!(on_disk.contains(s), "{s} lost from the file:\n{on_disk}");
    }
    assert!(!on_disk.contains("********"));
    // The upstream still gets the real key, and clients' keys still work.
    let r = ask(gw.addr(), "oa");
    assert_eq!(r.status, 200, "{}", r.text());
    let seen = &mock_stats(m.addr)["last"]["mock"];
    assert_eq!(
        seen["authorization"],
        format!("Bearer {UPSTREAM_OPENAI_KEY}"),
        "{seen}"
    );
}

#[test]
fn a_valid_edit_is_served_as_soon_as_the_put_returns() {
    let m = mock();
    let gw = live_gateway(&config_text(m.addr));
    assert_eq!(ask(gw.addr(), "added").status, 404);
    let v = get_config(gw.addr(), KEY);
    let edited = format!(
        "{}\n[[models]]\nname = \"added\"\ntargets = [{{ provider = \"anthropic\", model = \"mock\" }}]\n",
        v["toml"].as_str().unwrap()
    );
    let mark = gw.log_mark();
    let r = put_config(gw.addr(), KEY, &edited, v["etag"].as_str().unwrap());
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["etag"], get_config(gw.addr(), KEY)["etag"]);
    // No polling: published before the answer.
    let r = ask(gw.addr(), "added");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-modelswitch-target"), Some("anthropic/mock"));
    // A setting read at startup is saved, and named as needing a restart.
    let v = get_config(gw.addr(), KEY);
    let toml = v["toml"]
        .as_str()
        .unwrap()
        .replacen("threads = 2", "threads = 3", 1);
    let r = put_config(gw.addr(), KEY, &toml, v["etag"].as_str().unwrap());
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["restart_needed"], json!(["server.threads"]));
    assert!(file(&gw).contains("threads = 3"));
    assert_eq!(ask(gw.addr(), "added").status, 200);
    // The watcher sees each write but finds it published already.
    std::thread::sleep(Duration::from_millis(800));
    let log = gw.log_since(mark);
    assert_eq!(log.matches("config reloaded").count(), 2, "{log}");
    assert!(log.contains("written by the admin API"), "{log}");
    for s in SECRETS {
        assert!(!log.contains(s), "a secret in the log: {log}");
    }
}

#[test]
fn an_invalid_edit_is_refused_with_its_path_and_nothing_changes() {
    let m = mock();
    let gw = live_gateway(&config_text(m.addr));
    let before = file(&gw);
    let v = get_config(gw.addr(), KEY);
    let toml = v["toml"].as_str().unwrap();
    // The provider without a key: a masked key given a new address is
    // refused before any check (see a_masked_key_is_not_sent_to_a_new_base_url).
    let broken = toml.replacen(
        "base_url = \"http://127.0.0.1:9/v1\"",
        "base_url = \"ftp://nowhere\"",
        1,
    );
    assert_ne!(broken, toml);

    let r = api_call(
        gw.addr(),
        "POST",
        "/api/config/validate",
        KEY,
        Some(&json!({ "toml": broken })),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["ok"], false);
    assert_eq!(r.json()["errors"][0]["path"], "providers[3].base_url");
    let r = api_call(
        gw.addr(),
        "POST",
        "/api/config/validate",
        KEY,
        Some(&json!({ "toml": toml })),
    );
    assert_eq!(r.json(), json!({"ok": true}), "the masked text validates");

    let r = put_config(gw.addr(), KEY, &broken, v["etag"].as_str().unwrap());
    assert_eq!(r.status, 400, "{}", r.text());
    let body = r.json();
    assert_eq!(body["errors"][0]["path"], "providers[3].base_url", "{body}");
    assert!(body["errors"][0]["message"].as_str().unwrap().len() > 3);
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("providers[3].base_url"));
    assert_eq!(file(&gw), before, "the file is untouched");
    assert_eq!(
        ask(gw.addr(), "oa").status,
        200,
        "the gateway keeps serving"
    );

    // A syntax error names its line and its place too; a secret typed
    // into a broken line is not echoed.
    let broken = toml.replacen("api_key = \"********\"", "api_key = \"sk-TYPED-SECRET", 1);
    let r = put_config(gw.addr(), KEY, &broken, v["etag"].as_str().unwrap());
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(!r.text().contains("sk-TYPED-SECRET"), "{}", r.text());
    assert_eq!(
        r.json()["errors"][0]["path"],
        "providers.api_key",
        "{}",
        r.text()
    );
    assert!(r.json()["errors"][0]["line"].as_u64().is_some());
    assert_eq!(file(&gw), before);
}

#[test]
fn a_reordered_chain_is_served_in_its_new_order_and_the_file_keeps_its_comments() {
    let m = mock();
    let gw = live_gateway(&config_text(m.addr));
    let r = ask(gw.addr(), "chain");
    assert_eq!(r.header("x-modelswitch-target"), Some("openai/mock"));

    let r = put_targets(
        gw.addr(),
        "chain",
        &[("anthropic", "mock"), ("openai", "mock")],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["ok"], true);
    assert_eq!(v["model"]["name"], "chain");
    assert_eq!(v["model"]["targets"][0]["provider"], "anthropic", "{v}");
    assert_eq!(v["model"]["targets"][1]["provider"], "openai", "{v}");

    let r = ask(gw.addr(), "chain");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-modelswitch-target"), Some("anthropic/mock"));

    let on_disk = file(&gw);
    assert!(
        on_disk.contains("# A second Anthropic account"),
        "{on_disk}"
    );
    assert!(
        on_disk.contains(
            "targets = [{ provider = \"anthropic\", model = \"mock\" }, { provider = \"openai\", model = \"mock\" }]"
        ),
        "{on_disk}"
    );
    for s in SECRETS {
        assert!(on_disk.contains(s), "{s} lost from the file");
    }

    // A target to a provider that does not exist is refused by path.
    let r = put_targets(gw.addr(), "chain", &[("nobody", "mock")]);
    assert_eq!(r.status, 400, "{}", r.text());
    let errors = r.json()["errors"].clone();
    assert!(
        errors
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["path"].as_str().unwrap().ends_with("targets[0].provider")),
        "{errors}"
    );
    assert_eq!(file(&gw), on_disk);
    assert_eq!(
        put_targets(gw.addr(), "nope", &[("openai", "mock")]).status,
        404
    );
}

#[test]
fn chains_written_as_tables_are_edited_in_place() {
    let m = mock();
    let text = format!(
        "{}\n[[models]]\nname = \"tables\"\n\n# first\n[[models.targets]]\nprovider = \"openai\"\nmodel = \"mock\"\n\n# second\n[[models.targets]]\nprovider = \"anthropic\"\nmodel = \"mock\"\n",
        config_text(m.addr)
    );
    let gw = live_gateway(&text);
    assert_eq!(
        ask(gw.addr(), "tables").header("x-modelswitch-target"),
        Some("openai/mock")
    );
    let r = put_targets(
        gw.addr(),
        "tables",
        &[("anthropic", "mock"), ("openai", "mock")],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        ask(gw.addr(), "tables").header("x-modelswitch-target"),
        Some("anthropic/mock")
    );
    let on_disk = file(&gw);
    let second = on_disk.find("# second").unwrap();
    let first = on_disk.find("# first").unwrap();
    assert!(
        second < first,
        "each comment moves with its target:\n{on_disk}"
    );
}

#[test]
fn a_stale_etag_conflicts_and_viewers_cannot_write() {
    let m = mock();
    let gw = live_gateway(&config_text(m.addr));
    let before = file(&gw);
    let v = get_config(gw.addr(), KEY);
    let toml = v["toml"].as_str().unwrap();

    let r = put_config(gw.addr(), VIEWER_KEY, toml, v["etag"].as_str().unwrap());
    assert_eq!(r.status, 403, "{}", r.text());
    // A check runs against the file's secrets: no oracle for viewers.
    let r = api_call(
        gw.addr(),
        "POST",
        "/api/config/validate",
        VIEWER_KEY,
        Some(&json!({ "toml": toml })),
    );
    assert_eq!(r.status, 403, "{}", r.text());
    let r = api_call(
        gw.addr(),
        "PUT",
        "/api/models/chain/targets",
        VIEWER_KEY,
        Some(&json!({"targets": [{"provider": "anthropic", "model": "mock"}]})),
    );
    assert_eq!(r.status, 403, "{}", r.text());

    let r = put_config(gw.addr(), KEY, toml, "not-the-etag");
    assert_eq!(r.status, 409, "{}", r.text());
    // A whole file saved blind is refused.
    let r = api_call(
        gw.addr(),
        "PUT",
        "/api/config",
        KEY,
        Some(&json!({ "toml": toml })),
    );
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(
        r.text().contains("etag is required: GET /api/config first"),
        "{}",
        r.text()
    );
    // A chain edit may go without one, but a stale one is refused.
    let r = api_call(
        gw.addr(),
        "PUT",
        "/api/models/chain/targets",
        KEY,
        Some(&json!({"targets": [{"provider": "anthropic", "model": "mock"}], "etag": "stale"})),
    );
    assert_eq!(r.status, 409, "{}", r.text());
    assert_eq!(file(&gw), before);

    // Someone else saves first: the etag read before is stale.
    let r = put_config(
        gw.addr(),
        KEY,
        &format!("# first save\n{toml}"),
        v["etag"].as_str().unwrap(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let r = put_config(
        gw.addr(),
        KEY,
        &format!("# second save\n{toml}"),
        v["etag"].as_str().unwrap(),
    );
    assert_eq!(r.status, 409, "{}", r.text());
    let now = file(&gw);
    assert!(now.starts_with("# first save\n") && now.ends_with(&before[before.len() - 40..]));
}

#[test]
fn concurrent_saves_do_not_interleave() {
    let m = mock();
    let gw = live_gateway(&config_text(m.addr));
    let addr = gw.addr();
    let orders = [
        [("anthropic", "mock"), ("openai", "mock")],
        [("openai", "mock"), ("anthropic", "mock")],
    ];
    let handles: Vec<_> = (0..6)
        .map(|i| {
            let order = orders[i % 2];
            std::thread::spawn(move || put_targets(addr, "chain", &order).status)
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap(), 200);
    }
    let on_disk = file(&gw);
    assert_eq!(on_disk.matches("name = \"chain\"").count(), 1, "{on_disk}");
    let parsed: toml::Table = toml::from_str(&on_disk).unwrap();
    let chain = parsed["models"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"].as_str() == Some("chain"))
        .unwrap();
    let first = chain["targets"][0]["provider"].as_str().unwrap().to_owned();
    assert_eq!(
        ask(addr, "chain").header("x-modelswitch-target"),
        Some(format!("{first}/mock").as_str()),
        "the served chain is the file's"
    );
}

#[test]
fn an_edit_made_on_disk_after_the_read_is_not_overwritten() {
    let m = mock();
    let gw = live_gateway(&config_text(m.addr));
    let v = get_config(gw.addr(), KEY);
    let on_disk = format!("# edited by hand\n{}", file(&gw));
    std::fs::write(&gw.path, &on_disk).unwrap();
    let r = put_config(
        gw.addr(),
        KEY,
        &format!("# edited in the UI\n{}", v["toml"].as_str().unwrap()),
        v["etag"].as_str().unwrap(),
    );
    assert_eq!(r.status, 409, "{}", r.text());
    assert_eq!(file(&gw), on_disk, "the edit on disk survives");
    // Read again, the save goes through and keeps both edits.
    let v = get_config(gw.addr(), KEY);
    let r = put_config(
        gw.addr(),
        KEY,
        &format!("# edited in the UI\n{}", v["toml"].as_str().unwrap()),
        v["etag"].as_str().unwrap(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(file(&gw).starts_with("# edited in the UI\n# edited by hand\n"));
}

#[test]
fn a_masked_key_is_not_sent_to_a_new_base_url() {
    let m = mock();
    let gw = live_gateway(&config_text(m.addr));
    let before = file(&gw);
    let v = get_config(gw.addr(), KEY);
    let toml = v["toml"].as_str().unwrap();
    let moved = toml.replacen(
        &format!("base_url = \"http://{}/v1\"", m.addr),
        "base_url = \"http://127.0.0.1:1/v1\"",
        1,
    );
    assert_ne!(moved, toml);
    let r = put_config(gw.addr(), KEY, &moved, v["etag"].as_str().unwrap());
    assert_eq!(r.status, 400, "{}", r.text());
    let e = &r.json()["errors"][0];
    assert_eq!(e["path"], "providers[0].api_key", "{e}");
    assert_eq!(
        e["message"],
        "this secret was masked; enter its value again to send it to a new address"
    );
    assert!(!r.text().contains(UPSTREAM_OPENAI_KEY));
    assert_eq!(file(&gw), before);
    // Same address, another setting: the key is kept.
    let edited = toml.replacen("idle_timeout = \"2s\"", "idle_timeout = \"3s\"", 1);
    assert_ne!(edited, toml);
    let r = put_config(gw.addr(), KEY, &edited, v["etag"].as_str().unwrap());
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(file(&gw).contains(&format!("api_key = \"{UPSTREAM_OPENAI_KEY}\"")));
}

#[test]
fn secrets_in_comments_are_not_shown() {
    let m = mock();
    let text = format!(
        "# api_key = \"sk-old-commented-SECRET\"\n# old: sk-another-commented-one\n{}",
        config_text(m.addr)
    );
    let gw = live_gateway(&text);
    let v = get_config(gw.addr(), VIEWER_KEY);
    let toml = v["toml"].as_str().unwrap();
    assert!(!toml.contains("commented"), "{toml}");
    assert!(
        toml.starts_with("# api_key = \"********\"\n# old: ********\n"),
        "{toml}"
    );
    // Saved, the comment stays masked: comments are not restored.
    let v = get_config(gw.addr(), KEY);
    let r = put_config(
        gw.addr(),
        KEY,
        v["toml"].as_str().unwrap(),
        v["etag"].as_str().unwrap(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let on_disk = file(&gw);
    assert!(
        on_disk.starts_with("# api_key = \"********\"\n"),
        "{on_disk}"
    );
    assert!(on_disk.contains(UPSTREAM_OPENAI_KEY));
}
