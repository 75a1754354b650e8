//! Budgets over real sockets (issue 12, item 3): money per day for a key,
//! a model and a provider, reserved at the worst case at admission and
//! settled to the real cost, so 50 concurrent requests never overshoot —
//! on one gateway and on two sharing a real Redis; prices converted into
//! the budget currency; a price in a currency without a rate refused.
//!
//! Costs are made exact: the mock's upstream models are priced at 0 per
//! input token and 1,000,000 per 1M output tokens (one unit per output
//! token), and the mock answers `text=Hi` with one output token, so every
//! served request costs exactly 1 unit, and a request with `max_tokens = 2`
//! may cost at most 2 (plus the two nanos `worst_case` adds for rounding).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::redis::Redis;
use common::*;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::Barrier;
use std::time::Duration;

/// Served after a second: long enough for a burst to arrive while the
/// first requests still hold their reservations.
const HELD: &str = "m-budget;text=Hi;first_ms=1000";
/// Served at once.
const QUICK: &str = "m-budget-quick;text=Hi";

/// Prices (USD, one unit per output token) for the mock's `m-budget*`
/// models; the same in CNY for `m-cny*` and in EUR for `m-eur*`.
const PRICES: &str = r#"
[[prices]]
model = "m-budget*"
currency = "USD"
input = 0
output = 1000000

[[prices]]
model = "m-cny*"
currency = "CNY"
input = 0
output = 1000000

[[prices]]
model = "m-eur*"
currency = "EUR"
input = 0
output = 1000000
"#;

// ------------------------------------------------------------ one gateway

#[test]
fn a_daily_budget_is_never_overshot_by_50_concurrent_requests() {
    let m = mock();
    let gw = gateway(&with(
        &m,
        r#"
[[api_keys]]
key = "sk-test-ci"
name = "ci"
budget = { daily = "10.5" }
"#,
    ));
    let want = "budget reached for key 'ci': daily budget 10.50 USD (spend per day)";
    // Each may cost 2: five fit in 10.5 at once, a sixth does not.
    let answers = concurrently(50, |_| ask(gw.addr, "sk-test-ci", "held", 2));
    let served = answers.iter().filter(|r| r.status == 200).count();
    assert!((1..=5).contains(&served), "{served} served at once");
    for r in answers.iter().filter(|r| r.status != 200) {
        assert_budget_refusal(r, want);
    }
    // Each cost exactly 1: the day shows what was served, no more.
    settles_to(gw.addr, "ci", &served.to_string());
    // One by one, until the budget refuses: a request is admitted while
    // its worst case fits, so spend stops at 9 (9 + 2 > 10.5)...
    let mut total = served;
    loop {
        let r = ask(gw.addr, "sk-test-ci", "quick", 2);
        if r.status != 200 {
            assert_budget_refusal(&r, want);
            break;
        }
        total += 1;
        assert!(total <= 10, "spend passed the budget");
    }
    assert_eq!(total, 9);
    // ...and a smaller request still fits, once.
    assert_eq!(ask(gw.addr, "sk-test-ci", "quick", 1).status, 200);
    assert_budget_refusal(&ask(gw.addr, "sk-test-ci", "quick", 1), want);
    settles_to(gw.addr, "ci", "10");
    let limits = limits_of(gw.addr, "ci");
    assert_eq!(
        limits["daily_budget"],
        json!({"limit": "10.5", "used": "10", "remaining": "0.5", "currency": "USD",
               "reset_seconds": limits["daily_budget"]["reset_seconds"]}),
    );
    assert_eq!(
        mock_total(&m),
        10,
        "no refused request reaches the upstream"
    );
}

#[test]
fn a_request_dearer_than_the_whole_budget_is_told_to_lower_max_tokens() {
    let m = mock();
    let gw = gateway(&with(
        &m,
        r#"
[[api_keys]]
key = "sk-test-small"
name = "small"
budget = { daily = "1.5", monthly = 30 }
"#,
    ));
    let r = ask(gw.addr, "sk-test-small", "quick", 5);
    assert_eq!(r.status, 429, "{}", r.text());
    let msg = message(&r);
    assert_eq!(
        msg,
        "this request may cost more than the key 'small' may spend: its daily budget is 1.50 USD (spend per day); lower max_tokens"
    );
    assert_eq!(r.header("retry-after"), None);
    assert_eq!(r.header("x-should-retry"), Some("false"));
    // Budgets add no rate-limit headers of their own.
    assert_eq!(r.header("x-ratelimit-limit-tokens"), None);
    let r = ask(gw.addr, "sk-test-small", "quick", 1);
    assert_eq!(r.status, 200, "{}", r.text());
    let limits = limits_of(gw.addr, "small");
    assert_eq!(limits["monthly_budget"]["limit"], "30", "{limits}");
    assert_eq!(mock_total(&m), 1);
}

#[test]
fn a_model_budget_is_shared_by_every_key() {
    let m = mock();
    let gw = gateway(&with(
        &m,
        &format!(
            r#"
[[models]]
name = "metered-model"
targets = [{{ provider = "openai", model = "{QUICK}" }}]
budget = {{ daily = "3.5" }}

[[api_keys]]
key = "sk-test-one"
name = "one"

[[api_keys]]
key = "sk-test-two"
name = "two"
"#
        ),
    ));
    let keys = ["sk-test-one", "sk-test-two"];
    let served = (0..3)
        .filter(|i| ask(gw.addr, keys[i % 2], "metered-model", 1).status == 200)
        .count();
    assert_eq!(served, 3);
    let want = "budget reached for model 'metered-model': daily budget 3.50 USD (spend per day)";
    assert_budget_refusal(&ask(gw.addr, "sk-test-one", "metered-model", 1), want);
    assert_budget_refusal(&ask(gw.addr, "sk-test-two", "metered-model", 1), want);
    // The keys have no budget of their own: another model still works.
    assert_eq!(ask(gw.addr, "sk-test-one", "quick", 1).status, 200);
}

#[test]
fn a_provider_over_its_budget_is_skipped_for_the_next_target() {
    let m = mock();
    let gw = gateway(&with(
        &m,
        &format!(
            r#"
[[providers]]
name = "metered"
type = "openai"
base_url = "http://{}/v1"
api_key = "sk-upstream-metered"
budget = {{ daily = "2.5" }}

[[models]]
name = "fallback"
targets = [{{ provider = "metered", model = "m-budget-met;text=Hi" }}, {{ provider = "openai", model = "m-budget-fb;text=Hi" }}]

[[models]]
name = "met-only"
targets = [{{ provider = "metered", model = "m-budget-only;text=Hi" }}]
"#,
            m.addr
        ),
    ));
    for _ in 0..2 {
        let r = ask(gw.addr, KEY, "fallback", 1);
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(
            r.header("x-modelswitch-target"),
            Some("metered/m-budget-met;text=Hi")
        );
    }
    // 2 spent: 2 + 1 > 2.5, the next target serves.
    let r = ask(gw.addr, KEY, "fallback", 1);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.header("x-modelswitch-target"),
        Some("openai/m-budget-fb;text=Hi")
    );
    let attempts = r.header("x-modelswitch-attempts").unwrap_or_default();
    assert!(
        attempts.contains("metered/m-budget-met;text=Hi=provider-limit"),
        "{attempts}"
    );
    assert_budget_refusal(
        &ask(gw.addr, KEY, "met-only", 1),
        "budget reached for provider 'metered': daily budget 2.50 USD (spend per day)",
    );
    let stats = mock_stats(m.addr);
    assert_eq!(stats["total"], 3, "{stats}");
}

#[test]
fn prices_in_another_currency_count_at_the_configured_rate() {
    let m = mock();
    let gw = gateway(&with(
        &m,
        r#"
[budgets]
currency = "USD"
rates = { CNY = "0.5" }

[[models]]
name = "cny"
targets = [{ provider = "openai", model = "m-cny;text=Hi" }]

[[api_keys]]
key = "sk-test-cny"
name = "cny-user"
budget = { daily = "1.2" }
"#,
    ));
    // 1 CNY each, 0.5 USD: two fit in 1.2 USD, a third does not.
    for _ in 0..2 {
        let r = ask(gw.addr, "sk-test-cny", "cny", 1);
        assert_eq!(r.status, 200, "{}", r.text());
    }
    assert_budget_refusal(
        &ask(gw.addr, "sk-test-cny", "cny", 1),
        "budget reached for key 'cny-user': daily budget 1.20 USD (spend per day)",
    );
    settles_to(gw.addr, "cny-user", "1");
}

#[test]
fn a_price_in_a_currency_without_a_rate_is_refused_not_left_uncounted() {
    let m = mock();
    let eur = r#"
[[models]]
name = "eur"
targets = [{ provider = "openai", model = "m-eur;text=Hi" }]
"#;
    // A budget in the config that cannot count a target is a config error...
    let mut text = with(&m, eur).replace("LISTEN", "127.0.0.1:0");
    text.push_str(
        "\n[[api_keys]]\nkey = \"sk-test-eur\"\nname = \"eur-user\"\nbudget = { monthly = 100 }\n",
    );
    let e = check_config(&text).unwrap_err().join("\n");
    assert!(
        e.contains("budgets.rates: upstream model 'm-eur;text=Hi' (model 'eur') counts against the budget of key 'eur-user', but prices in EUR cannot be counted against budgets in USD"),
        "{e}"
    );
    // ...and a key made at runtime meets it as a refusal.
    let mut text = with(&m, eur);
    text.push_str("\n[storage]\nsqlite_path = \"keys.db\"\n");
    let gw = gateway(&text);
    let r = api_call(
        gw.addr,
        "POST",
        "/api/keys",
        KEY,
        Some(&json!({"name": "eur-user", "budget": {"monthly": 100}})),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let secret = r.json()["key"].as_str().unwrap().to_owned();
    let r = poll(|| ask(gw.addr, &secret, "eur", 1), |r| r.status != 401);
    assert_eq!(r.status, 500, "{}", r.text());
    let msg = message(&r);
    assert!(
        msg.contains("the budget of key 'eur-user' cannot count upstream model 'm-eur;text=Hi'"),
        "{msg}"
    );
    assert!(msg.contains("[budgets] rates = { EUR = "), "{msg}");
    assert_eq!(mock_total(&m), 0);
    // A key without a budget is not concerned.
    assert_eq!(ask(gw.addr, KEY, "eur", 1).status, 200);
}

#[test]
fn budget_settings_are_checked_with_their_path() {
    let m = mock();
    let base = with(&m, "").replace("LISTEN", "127.0.0.1:0");
    let bad = |extra: &str| {
        let mut c = base.clone();
        c.push_str(extra);
        check_config(&c).unwrap_err().join("\n")
    };
    let e = bad("\n[budgets]\ncurrency = \"usd\"\nrates = { CNY = \"0.1234567\", USD = \"1\" }\n");
    assert!(e.contains("budgets.currency:"), "{e}");
    assert!(e.contains("budgets.rates.CNY:"), "{e}");
    let e =
        bad("\n[[api_keys]]\nkey = \"sk-test-zero\"\nname = \"zero\"\nbudget = { daily = 0 }\n");
    assert!(e.contains("budget.daily: must be more than 0"), "{e}");
    let e = bad("\n[[models]]\nname = \"x\"\ntargets = [{ provider = \"openai\", model = \"m\" }]\nbudget = {}\n");
    assert!(e.contains("daily, monthly or both"), "{e}");
    let mut ok = base.clone();
    ok.push_str("\n[budgets]\ncurrency = \"CNY\"\nrates = { USD = \"7.1\" }\n");
    assert_eq!(check_config(&ok), Ok(()));
}

#[test]
fn a_key_created_through_the_api_takes_a_budget() {
    let m = mock();
    let gw = gateway(&with(&m, "\n[storage]\nsqlite_path = \"keys.db\"\n"));
    let r = api_call(
        gw.addr,
        "POST",
        "/api/keys",
        KEY,
        Some(&json!({"name": "api", "budget": {"daily": "2.5", "monthly": 100}})),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let created = r.json();
    assert_eq!(
        created["budget"],
        json!({"daily": "2.5", "monthly": "100"}),
        "{created}"
    );
    let secret = created["key"].as_str().unwrap().to_owned();
    // Usable within a second of its creation.
    assert!(wait_until(Duration::from_secs(2), || {
        ask(gw.addr, &secret, "quick", 1).status == 200
    }));
    assert_eq!(ask(gw.addr, &secret, "quick", 1).status, 200);
    assert_budget_refusal(
        &ask(gw.addr, &secret, "quick", 1),
        "budget reached for key 'api': daily budget 2.50 USD (spend per day)",
    );
    // A zero budget is refused with its field; a larger one takes effect.
    let r = api_call(
        gw.addr,
        "PATCH",
        "/api/keys/api",
        KEY,
        Some(&json!({"budget": {"daily": 0}})),
    );
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("budget.daily"), "{}", r.text());
    let r = api_call(
        gw.addr,
        "PATCH",
        "/api/keys/api",
        KEY,
        Some(&json!({"budget": {"daily": 4}})),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(wait_until(Duration::from_secs(2), || {
        ask(gw.addr, &secret, "quick", 1).status == 200
    }));
    let limits = limits_of(gw.addr, "api");
    assert_eq!(limits["daily_budget"]["used"], "3", "{limits}");
    assert_eq!(limits["daily_budget"]["limit"], "4", "{limits}");
    assert!(limits.get("monthly_budget").is_none(), "{limits}");
}

#[test]
fn the_keys_cli_sets_shows_and_clears_a_budget() {
    let m = mock();
    let gw = live_gateway(&with(&m, "\n[storage]\nsqlite_path = \"keys.db\"\n"));
    let created = cli(
        &gw.path,
        &[
            "create",
            "--name",
            "cli-b",
            "--daily-budget",
            "2.5",
            "--json",
        ],
    );
    let secret = serde_json::from_str::<Value>(created.trim()).unwrap()["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = poll(|| ask(gw.addr(), &secret, "quick", 1), |r| r.status == 200);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(ask(gw.addr(), &secret, "quick", 1).status, 200);
    assert_budget_refusal(
        &ask(gw.addr(), &secret, "quick", 1),
        "budget reached for key 'cli-b': daily budget 2.50 USD (spend per day)",
    );
    let list = cli(&gw.path, &["list"]);
    assert!(list.contains("daily_budget=2.5"), "{list}");
    cli(&gw.path, &["update", "cli-b", "--monthly-budget", "100"]);
    let shown: Value =
        serde_json::from_str(cli(&gw.path, &["show", "cli-b", "--json"]).trim()).unwrap();
    assert_eq!(
        shown["budget"],
        json!({"daily": "2.5", "monthly": "100"}),
        "{shown}"
    );
    cli(&gw.path, &["update", "cli-b", "--clear-budget"]);
    let r = poll(|| ask(gw.addr(), &secret, "quick", 1), |r| r.status == 200);
    assert_eq!(
        r.status,
        200,
        "still refused without a budget: {}",
        r.text()
    );
}

// ------------------------------------------------------- Redis

#[test]
fn two_gateways_sharing_redis_never_overshoot_a_budget_together() {
    let redis = Redis::start();
    let m = mock();
    let text = with(
        &m,
        &format!(
            r#"
[limits]
backend = "redis"
redis_url = "{}"
redis_timeout = "2s"
on_backend_error = "deny"

[[api_keys]]
key = "sk-test-shared"
name = "shared"
budget = {{ daily = "10.5" }}
"#,
            redis.url()
        ),
    );
    let gws = [gateway(&text), gateway(&text)];
    // Each gateway's connection to Redis is made before the burst.
    for gw in &gws {
        let r = ask(gw.addr, KEY, "quick", 1);
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let want = "budget reached for key 'shared': daily budget 10.50 USD (spend per day)";
    let answers = concurrently(50, |i| ask(gws[i % 2].addr, "sk-test-shared", "held", 2));
    let served = answers.iter().filter(|r| r.status == 200).count();
    assert!((1..=5).contains(&served), "{served} served at once");
    for r in answers.iter().filter(|r| r.status != 200) {
        assert_budget_refusal(r, want);
    }
    for gw in &gws {
        settles_to(gw.addr, "shared", &served.to_string());
    }
    let mut total = served;
    for i in 0.. {
        let r = ask(gws[i % 2].addr, "sk-test-shared", "quick", 2);
        if r.status != 200 {
            assert_budget_refusal(&r, want);
            break;
        }
        total += 1;
        assert!(total <= 10, "spend passed the budget");
    }
    assert_eq!(total, 9);
    settles_to(gws[1].addr, "shared", "9");
    assert_eq!(mock_total(&m), 2 + 9);
}

// ------------------------------------------------------- helpers

/// The harness config, models `held` (a priced upstream that answers
/// after a second) and `quick` (the same at once), the prices, then `extra`.
fn with(m: &Proc, extra: &str) -> String {
    let mut c = config(
        m.addr,
        &[
            ("held", &[("openai", HELD)]),
            ("quick", &[("openai", QUICK)]),
        ],
        "",
    );
    c.push_str(PRICES);
    c.push_str(extra);
    c
}

/// A Chat request for `model` with `max_tokens`.
fn ask(gw: SocketAddr, key: &str, model: &str, max_tokens: u64) -> Response {
    let body = json!({"model": model, "max_tokens": max_tokens,
                      "messages": [{"role": "user", "content": "hi there"}]});
    post_json(gw, "/v1/chat/completions", key, &body)
}

fn message(r: &Response) -> String {
    let v = r.json();
    v["error"]["message"]
        .as_str()
        .unwrap_or_else(|| panic!("no error message: {v}"))
        .to_owned()
}

/// A 429 with the budget's message, a `Retry-After` until the period
/// ends, and no retry by SDKs in the meantime.
fn assert_budget_refusal(r: &Response, want: &str) {
    assert_eq!(r.status, 429, "want a 429 '{want}': {}", r.text());
    assert_eq!(message(r), want);
    assert_eq!(r.json()["error"]["code"], "budget_exceeded", "{}", r.text());
    let secs: u64 = r
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no Retry-After: {:?}", r.headers));
    assert!((1..=86_400).contains(&secs), "{secs}");
    assert_eq!(r.header("x-should-retry"), Some("false"));
}

/// `GET /api/keys/{name}/limits`'s `limits`.
fn limits_of(gw: SocketAddr, name: &str) -> Value {
    let auth = format!("Bearer {KEY}");
    let r = request(
        gw,
        "GET",
        &format!("/api/keys/{name}/limits"),
        &[("Authorization", &auth)],
        b"",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["limits"].clone()
}

/// Waits (bounded) until the key's daily spend shows `used`: settlement
/// runs as a request ends, possibly just after the client has read it.
fn settles_to(gw: SocketAddr, name: &str, used: &str) {
    let mut last = Value::Null;
    let ok = wait_until(Duration::from_secs(2), || {
        last = limits_of(gw, name);
        last["daily_budget"]["used"] == used
    });
    assert!(ok, "{name}: daily spend should settle to {used}: {last}");
}

fn mock_total(m: &Proc) -> u64 {
    mock_stats(m.addr)["total"].as_u64().unwrap_or(0)
}

/// Runs `f(i)` for i in 0..n on n threads released together; the results
/// in order.
fn concurrently<T: Send>(n: usize, f: impl Fn(usize) -> T + Sync) -> Vec<T> {
    let start = Barrier::new(n);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..n)
            .map(|i| {
                let (f, start) = (&f, &start);
                s.spawn(move || {
                    start.wait();
                    f(i)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

/// `f()` until `done` holds (bounded: 2 s); the last answer.
fn poll(mut f: impl FnMut() -> Response, done: impl Fn(&Response) -> bool) -> Response {
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    loop {
        let r = f();
        if done(&r) || std::time::Instant::now() >= deadline {
            return r;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// `modelswitch -c <config> keys …`, which must succeed; its stdout.
fn cli(config: &std::path::Path, args: &[&str]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_modelswitch"))
        .arg("-c")
        .arg(config)
        .arg("keys")
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run modelswitch keys");
    assert!(
        out.status.success(),
        "keys {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
