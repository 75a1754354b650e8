//! What routing costs a request before the exchange, without a classifier:
//! the model's own name (one hash lookup, the path of every request that
//! names a configured model), an alias, a glob among many models, and the
//! Claude Code fleet's rule set over a realistic 60 KB Claude Code request
//! (its tools, system prompt and history), facts read from the body
//! included. Target: under 5 µs per request in every case.
//! Run: `cargo bench --bench routing`; numbers in benches/README.md.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use filters::auth::Role;
use filters::routing::facts;
use filters::routing::names::Names;
use filters::routing::rules::{self, Facts, Rule, Use, When};
use filters::wire::json_peek;
use filters::Dialect;
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;

/// 60 models, 10 of them glob-named, each with two aliases.
fn names() -> (Names, HashMap<String, Arc<str>>) {
    let mut models: Vec<(String, Vec<String>)> = (0..50)
        .map(|i| {
            (
                format!("model-{i}"),
                vec![format!("alias-{i}-a"), format!("alias-{i}-b")],
            )
        })
        .collect();
    models.extend((0..10).map(|i| (format!("family-{i}-*"), Vec::new())));
    let (names, _) = Names::build(
        models.iter().map(|(n, a)| (n.as_str(), a.as_slice())),
        Some("model-0"),
    );
    let routes = models
        .iter()
        .map(|(n, _)| (n.clone(), Arc::from(n.as_str())))
        .collect();
    (names, routes)
}

/// The fleet recipe of the README.
fn fleet_rules() -> Vec<Rule> {
    let rule = |name: &str, when: When, to: &str| Rule {
        name: name.into(),
        when,
        use_: Use::Model(to.into()),
    };
    vec![
        rule(
            "background",
            When {
                background: Some(true),
                ..When::default()
            },
            "small",
        ),
        rule(
            "long-context",
            When {
                min_input_tokens: Some(100_000),
                ..When::default()
            },
            "long",
        ),
        rule(
            "thinking",
            When {
                thinking: Some(true),
                ..When::default()
            },
            "reasoner",
        ),
        rule(
            "web-search",
            When {
                web_search: Some(true),
                ..When::default()
            },
            "claude",
        ),
        rule(
            "images",
            When {
                has_images: Some(true),
                ..When::default()
            },
            "claude",
        ),
    ]
}

/// A Claude Code turn: 17 tools with schemas, a long system prompt, 30
/// messages of history with tool calls and results.
fn claude_code_body() -> Vec<u8> {
    let tools: Vec<_> = (0..17)
        .map(|i| {
            json!({"name": format!("Tool{i}"), "description": "x".repeat(600),
                   "input_schema": {"type": "object", "properties": {"command": {"type": "string",
                   "description": "y".repeat(200)}}, "required": ["command"]}})
        })
        .collect();
    let mut messages = Vec::new();
    for i in 0..15 {
        messages.push(json!({"role": "user", "content": [{"type": "tool_result",
            "tool_use_id": format!("toolu_{i}"), "content": "output line\n".repeat(100)}]}));
        messages.push(json!({"role": "assistant", "content": [{"type": "text", "text": "Running it."},
            {"type": "tool_use", "id": format!("toolu_{i}"), "name": "Bash", "input": {"command": "ls -la"}}]}));
    }
    messages.push(json!({"role": "user", "content": "Now fix the failing test in src/lib.rs"}));
    json!({"model": "claude-sonnet-4-5", "max_tokens": 32000, "stream": true,
           "system": [{"type": "text", "text": "You are Claude Code. ".repeat(400)}],
           "tools": tools, "messages": messages,
           "metadata": {"user_id": "user_abc_account_x_session_5f0c1e2a-77aa-4d3e-9c1b-0a1b2c3d4e5f"}})
    .to_string()
    .into_bytes()
}

fn routing(c: &mut Criterion) {
    let (names, routes) = names();
    c.bench_function("routing_own_name", |b| {
        b.iter(|| routes.get(black_box("model-37")).cloned())
    });
    c.bench_function("routing_alias", |b| {
        b.iter(|| {
            let requested = black_box("alias-37-b");
            // The shell's order: the own name misses, then the names.
            match routes.get(requested) {
                Some(r) => Some(r.clone()),
                None => names
                    .resolve(requested)
                    .and_then(|(n, _)| routes.get(n).cloned()),
            }
        })
    });
    c.bench_function("routing_glob_last_of_ten", |b| {
        b.iter(|| {
            let requested = black_box("family-9-large-2026");
            match routes.get(requested) {
                Some(r) => Some(r.clone()),
                None => names
                    .resolve(requested)
                    .and_then(|(n, _)| routes.get(n).cloned()),
            }
        })
    });

    let body = claude_code_body();
    let rules = fleet_rules();
    let background = ["*haiku*".to_owned()];
    let no_headers = |_: &str| -> Option<&str> { None };
    let mut group = c.benchmark_group("routing_fleet_rules");
    group.throughput(criterion::Throughput::Bytes(body.len() as u64));
    group.bench_function(format!("claude_code_{}kb", body.len() / 1024), |b| {
        b.iter(|| {
            // What the request path does: the members are peeked once for
            // the model anyway; facts, the estimate and the rules are
            // routing's own cost, but the peek is counted here too.
            let members = json_peek::members(black_box(&body)).unwrap();
            let f = facts::read(Dialect::Anthropic, &members);
            let requested = "claude-sonnet-4-5";
            let facts = Facts {
                model: requested,
                dialect: Dialect::Anthropic,
                key: "alice",
                roles: &[Role::User],
                has_tools: f.has_tools,
                has_images: f.has_images,
                thinking: f.thinking,
                web_search: f.web_search,
                input_tokens: filters::limits::estimate::typical_input_tokens(&body),
                background: background
                    .iter()
                    .any(|g| filters::glob::matches(g, requested)),
            };
            rules::first(&rules, &facts, &no_headers).map(|r| r.name.len())
        })
    });
    group.finish();
}

criterion_group!(benches, routing);
criterion_main!(benches);
