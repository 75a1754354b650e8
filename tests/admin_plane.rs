//! The admin plane over real sockets (issue 13): the UI's address and its
//! redirect, `[admin] listen` splitting the planes, the provider and model
//! views, the "test" buttons against the mock, and the dashboard counters.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use serde_json::{json, Value};
use std::net::SocketAddr;

const VIEWER_KEY: &str = "sk-test-viewer-key";

fn config_text(m: SocketAddr, extra: &str) -> String {
    let mut c = config(
        m,
        &[
            (
                "chain",
                &[("openai", "mock;status=503"), ("anthropic", "mock")],
            ),
            ("solo", &[("openai", "mock")]),
        ],
        "",
    );
    c.push_str(&format!(
        "\n[[api_keys]]\nkey = \"{VIEWER_KEY}\"\nname = \"viewer\"\nroles = [\"viewer\"]\n{extra}"
    ));
    c
}

fn get(addr: SocketAddr, path: &str, key: &str) -> Response {
    let auth = format!("Bearer {key}");
    request(addr, "GET", path, &[("authorization", &auth)], b"")
}

#[test]
fn a_browser_is_sent_to_the_ui_and_api_clients_get_health() {
    let m = mock();
    let g = gateway(&config_text(m.addr, ""));
    let html = request(
        g.addr,
        "GET",
        "/",
        &[("accept", "text/html,application/xhtml+xml")],
        b"",
    );
    assert_eq!(html.status, 302);
    assert_eq!(html.header("location"), Some("/ui/"));
    let api = request(g.addr, "GET", "/", &[("accept", "application/json")], b"");
    assert_eq!(api.status, 200);
    assert_eq!(api.json()["status"], "ok");
    let bare = request(g.addr, "GET", "/ui", &[], b"");
    assert_eq!(bare.status, 308);
    assert_eq!(bare.header("location"), Some("/ui/"));
    // The page (the bundle, or how to build it) with a strict policy.
    let page = request(g.addr, "GET", "/ui/keys", &[], b"");
    assert_eq!(page.status, 200, "{}", page.text());
    assert!(page
        .header("content-type")
        .unwrap()
        .starts_with("text/html"));
    let csp = page.header("content-security-policy").unwrap();
    assert!(
        csp.contains("default-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert_eq!(page.header("x-frame-options"), Some("DENY"));
    // A file name that does not exist is a 404, not the page as a script.
    let missing = request(g.addr, "GET", "/ui/main-0000.js", &[], b"");
    assert_eq!(missing.status, 404);
}

#[test]
fn the_embedded_bundle_is_served_compressed_and_cached() {
    let m = mock();
    let g = gateway(&config_text(m.addr, ""));
    let index = request(g.addr, "GET", "/ui/", &[("accept-encoding", "gzip")], b"");
    assert_eq!(index.status, 200);
    // `make build` and `make test` build the bundle first; a bare
    // `cargo build` has none and serves the page that says so.
    assert_eq!(
        index.header("content-encoding"),
        Some("gzip"),
        "this binary has no UI bundle: run `make ui` before cargo"
    );
    assert_eq!(index.header("cache-control"), Some("no-cache"));
    let etag = index.header("etag").unwrap().to_owned();
    let again = request(
        g.addr,
        "GET",
        "/ui/",
        &[("accept-encoding", "gzip"), ("if-none-match", &etag)],
        b"",
    );
    assert_eq!(again.status, 304);
    // The uncompressed page is another representation, with its own tag.
    let plain_page = request(g.addr, "GET", "/ui/", &[("if-none-match", &etag)], b"");
    assert_eq!(plain_page.status, 200);
    assert_ne!(plain_page.header("etag"), Some(etag.as_str()));
    // The script the page names, cached for good.
    let plain = request(g.addr, "GET", "/ui/", &[], b"").text();
    let src = plain
        .split("src=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("the page names its script");
    let path = if src.starts_with('/') {
        src.to_owned()
    } else {
        format!("/ui/{src}")
    };
    let js = request(g.addr, "GET", &path, &[], b"");
    assert_eq!(js.status, 200, "{path}");
    assert!(js
        .header("content-type")
        .unwrap()
        .starts_with("text/javascript"));
    assert!(js.header("cache-control").unwrap().contains("immutable"));
}

#[test]
fn admin_listen_moves_the_admin_plane_off_the_llm_listener() {
    let m = mock();
    let admin = free_addr();
    let g = gateway(&config_text(
        m.addr,
        &format!("\n[admin]\nlisten = \"{admin}\"\n"),
    ));
    assert!(wait_until(std::time::Duration::from_secs(5), || {
        std::net::TcpStream::connect(admin).is_ok()
    }));
    // The LLM listener: models yes, admin API, UI and metrics no.
    let chat = post_json(
        g.addr,
        "/v1/chat/completions",
        KEY,
        &json!({"model": "solo", "messages": [{"role": "user", "content": "hi"}]}),
    );
    assert_eq!(chat.status, 200, "{}", chat.text());
    for path in ["/api/keys", "/api/models", "/ui/", "/metrics", "/api/usage"] {
        assert_eq!(
            get(g.addr, path, KEY).status,
            404,
            "{path} on the LLM listener"
        );
    }
    let html = request(g.addr, "GET", "/", &[("accept", "text/html")], b"");
    assert_eq!(html.status, 200, "no UI redirect on the LLM listener");
    // The admin listener: admin yes, models no; health on both.
    assert_eq!(get(admin, "/api/keys", KEY).status, 200);
    assert_eq!(get(admin, "/api/models", KEY).status, 200);
    assert_eq!(get(admin, "/metrics", KEY).status, 200);
    assert_eq!(request(admin, "GET", "/ui/", &[], b"").status, 200);
    assert_eq!(request(admin, "GET", "/health", &[], b"").status, 200);
    let chat = post_json(
        admin,
        "/v1/chat/completions",
        KEY,
        &json!({"model": "solo", "messages": [{"role": "user", "content": "hi"}]}),
    );
    assert_eq!(chat.status, 404, "{}", chat.text());
}

#[test]
fn an_admin_listen_that_is_also_a_gateway_address_is_refused() {
    let errs = check_config(
        &config_text(
            "127.0.0.1:9".parse().unwrap(),
            "\n[admin]\nlisten = \"127.0.0.1:8000\"\n",
        )
        .replace("LISTEN", "127.0.0.1:8000"),
    )
    .unwrap_err();
    assert!(errs.iter().any(|e| e.contains("admin.listen")), "{errs:?}");
    let errs = check_config(&config_text(
        "127.0.0.1:9".parse().unwrap(),
        "\n[admin]\nlisten = \"nowhere\"\n",
    ))
    .unwrap_err();
    assert!(errs.iter().any(|e| e.contains("admin.listen")), "{errs:?}");
}

#[test]
fn providers_and_models_show_their_state_and_never_a_secret() {
    let m = mock();
    let g = gateway(&config_text(m.addr, ""));
    // Open the first target's breaker-worthy failures: one request through
    // the chain falls over to anthropic.
    let chat = post_json(
        g.addr,
        "/v1/chat/completions",
        KEY,
        &json!({"model": "chain", "messages": [{"role": "user", "content": "hi"}]}),
    );
    assert_eq!(chat.status, 200);
    let providers = get(g.addr, "/api/providers", VIEWER_KEY);
    assert_eq!(providers.status, 200, "{}", providers.text());
    let text = providers.text();
    assert!(
        !text.contains(UPSTREAM_OPENAI_KEY) && !text.contains(UPSTREAM_ANTHROPIC_KEY),
        "{text}"
    );
    let v = providers.json();
    let openai = v["providers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "openai")
        .unwrap();
    assert_eq!(openai["type"], "openai");
    assert_eq!(openai["base_urls"][0], format!("http://{}/v1", m.addr));
    let key = &openai["keys"][0];
    assert_eq!(key["requests"], 1);
    assert_eq!(key["failures"], 1);
    assert!(
        key["key"].as_str().unwrap().contains('…') || key["key"].as_str().unwrap().contains('*'),
        "{key}"
    );
    assert!(openai["targets"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["model"] == "mock;status=503"));
    let models = get(g.addr, "/api/models", VIEWER_KEY).json();
    let chain = models["models"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "chain")
        .unwrap();
    let order: Vec<&str> = chain["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["provider"].as_str().unwrap())
        .collect();
    assert_eq!(order, ["openai", "anthropic"]);
    assert_eq!(chain["targets"][1]["breaker"], "closed");
    assert_eq!(get(g.addr, "/api/models/nope", KEY).status, 404);
    assert_eq!(get(g.addr, "/api/providers/nope", KEY).status, 404);
    // A user key sees none of it.
    assert_eq!(get(g.addr, "/api/providers", LIMITED_KEY).status, 403);
    assert_eq!(request(g.addr, "GET", "/api/models", &[], b"").status, 401);
}

#[test]
fn testing_a_model_reports_each_target_and_a_viewer_may_not() {
    let m = mock();
    let g = gateway(&config_text(m.addr, ""));
    let r = post_json(g.addr, "/api/models/chain/test", KEY, &json!({}));
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    let results = v["results"].as_array().unwrap();
    assert_eq!(results.len(), 2, "{v}");
    assert_eq!(
        (results[0]["ok"].clone(), results[0]["status"].clone()),
        (json!(false), json!(503))
    );
    assert!(results[0]["error"].as_str().unwrap().contains("503"));
    assert_eq!(results[1]["ok"], true);
    assert_eq!(results[1]["provider"], "anthropic");
    assert!(!results[1]["text"].as_str().unwrap().is_empty(), "{v}");
    // One target alone.
    let one = post_json(
        g.addr,
        "/api/models/chain/test",
        KEY,
        &json!({"target": 1, "message": "ping"}),
    )
    .json();
    assert_eq!(one["results"].as_array().unwrap().len(), 1);
    assert_eq!(one["results"][0]["index"], 1);
    assert_eq!(
        post_json(g.addr, "/api/models/chain/test", KEY, &json!({"target": 5})).status,
        400
    );
    assert_eq!(
        post_json(g.addr, "/api/models/chain/test", VIEWER_KEY, &json!({})).status,
        403
    );
    // A provider: a model a chain sends it, or the one named; an
    // unreachable one says why.
    let p = post_json(g.addr, "/api/providers/anthropic/test", KEY, &json!({})).json();
    assert_eq!(
        (p["ok"].clone(), p["model"].clone()),
        (json!(true), json!("mock")),
        "{p}"
    );
    let dead = post_json(
        g.addr,
        "/api/providers/dead/test",
        KEY,
        &json!({"model": "x"}),
    )
    .json();
    assert_eq!(dead["ok"], false);
    assert!(
        dead["error"].as_str().unwrap().contains("connect"),
        "{dead}"
    );
    assert_eq!(
        post_json(g.addr, "/api/providers/dead/test", KEY, &json!({})).status,
        400
    );
}

#[test]
fn stats_count_requests_tokens_and_latency() {
    let m = mock();
    let g = gateway(&config_text(m.addr, ""));
    let before = get(g.addr, "/api/stats", VIEWER_KEY).json();
    assert_eq!(before["requests"], 0);
    for _ in 0..3 {
        let r = post_json(
            g.addr,
            "/v1/chat/completions",
            KEY,
            &json!({"model": "solo", "messages": [{"role": "user", "content": "hi"}]}),
        );
        assert_eq!(r.status, 200);
    }
    let bad = post_json(
        g.addr,
        "/v1/chat/completions",
        KEY,
        &json!({"model": "nope", "messages": [{"role": "user", "content": "hi"}]}),
    );
    assert_eq!(bad.status, 404);
    let v: Value = get(g.addr, "/api/stats", VIEWER_KEY).json();
    assert_eq!(v["requests"], 4, "{v}");
    assert_eq!(v["errors"], 1, "{v}");
    assert!(v["input_tokens"].as_u64().unwrap() > 0 && v["output_tokens"].as_u64().unwrap() > 0);
    let counts = v["latency"]["counts"].as_array().unwrap();
    assert_eq!(counts.last().unwrap(), &json!(4));
    assert_eq!(
        v["latency"]["le"].as_array().unwrap().last().unwrap(),
        &Value::Null
    );
    assert_eq!(v["currency"], "USD");
    let o = get(g.addr, "/api/overview", VIEWER_KEY).json();
    assert_eq!(
        (o["models"].clone(), o["providers"].clone()),
        (json!(3), json!(4)),
        "{o}"
    );
}

#[test]
fn the_admin_planes_reads_leave_no_usage_rows_but_its_changes_do() {
    let m = mock();
    let g = gateway(&config_text(m.addr, ""));
    let chat = post_json(
        g.addr,
        "/v1/chat/completions",
        KEY,
        &json!({"model": "solo", "messages": [{"role": "user", "content": "hi"}]}),
    );
    assert_eq!(chat.status, 200);
    for path in [
        "/api/stats",
        "/api/models",
        "/api/providers",
        "/ui/",
        "/metrics",
        "/api/keys",
    ] {
        assert_eq!(get(g.addr, path, KEY).status, 200, "{path}");
    }
    let tested = post_json(g.addr, "/api/models/solo/test", KEY, &json!({}));
    assert_eq!(tested.status, 200);
    // A refused read is recorded like any refusal.
    assert_eq!(request(g.addr, "GET", "/api/keys", &[], b"").status, 401);
    // Rows are written off the request path: wait (bounded) for the two.
    let mut endpoints = Vec::new();
    assert!(
        wait_until(std::time::Duration::from_secs(5), || {
            let rows = get(g.addr, "/api/usage/requests?limit=100", KEY).json();
            endpoints = rows["data"]
                .as_array()
                .map(|r| {
                    r.iter()
                        .map(|row| row["endpoint"].as_str().unwrap_or("").to_owned())
                        .collect()
                })
                .unwrap_or_default();
            endpoints.len() >= 2
        }),
        "{endpoints:?}"
    );
    std::thread::sleep(std::time::Duration::from_millis(300));
    let rows = get(g.addr, "/api/usage/requests?limit=100", KEY).json();
    let mut endpoints: Vec<String> = rows["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["endpoint"].as_str().unwrap().to_owned())
        .collect();
    endpoints.sort();
    assert_eq!(
        endpoints,
        ["/api/keys", "/api/models/solo/test", "/v1/chat/completions"],
        "{rows}"
    );
    // HEAD answers without a body.
    let auth = format!("Bearer {KEY}");
    let head = request(
        g.addr,
        "HEAD",
        "/api/stats",
        &[("authorization", &auth)],
        b"",
    );
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
}
