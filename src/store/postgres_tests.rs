//! The key store and usage rows against a real PostgreSQL server each test
//! starts for itself (Debian's `postgresql`; `make deps` installs it), and
//! the URL helpers on their own.

use super::*;
use crate::store::{KeyStore, StoreError};

// The same harness the integration tests use: a fresh cluster on a free
// loopback port, stopped and started again for outages.
#[path = "../../tests/common/postgres.rs"]
#[allow(dead_code)]
mod harness;

use harness::Postgres as Server;

fn limited(name: &str, rpm: u64) -> KeySpec {
    let mut spec = KeySpec::named(name);
    spec.limits.rpm = Some(rpm);
    spec.roles = vec!["admin".into()];
    spec.allowed_models = Some(vec!["gpt-*".into()]);
    spec
}

fn usage_row(id: &str, stream: bool) -> UsageRow {
    UsageRow {
        ts: 1_700_000_000_123,
        request_id: id.into(),
        key_name: Some("k".into()),
        dialect: Some("openai".into()),
        endpoint: "/v1/chat/completions".into(),
        model: Some("m".into()),
        provider: Some("p".into()),
        upstream_model: None,
        attempts: r#"[{"provider":"p","model":"um","outcome":"ok","key":0}]"#.into(),
        status: 200,
        stream,
        input_uncached: 10,
        cache_read: 2,
        cache_write: 1,
        output: 7,
        reasoning: 3,
        cost_nanos: Some(1_500),
        currency: Some("USD".into()),
        latency_ms: 1.25,
        ttfb_ms: Some(1.0),
        overhead_ms: None,
        bytes_in: Some(100),
        bytes_out: Some(u64::MAX),
        client_addr: Some("127.0.0.1:1".into()),
        user_agent: Some("t".into()),
        session_id: None,
        routed_model: None,
        routed_by: None,
        scene: None,
        error: None,
    }
}

#[tokio::test]
async fn keys_create_list_get_update_delete_version_and_touch() {
    let pg = Server::start();
    let store = KeyStore::open_postgres(&pg.url()).unwrap();
    assert_eq!(store.version().await.unwrap(), 0);
    let (made, secret) = store.create(limited("alice", 10)).await.unwrap();
    assert_eq!(made.hash, filters::auth::key_hash(&secret));
    store.create(KeySpec::named("bob")).await.unwrap();
    assert_eq!(store.version().await.unwrap(), 2);
    let names: Vec<_> = store
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.spec.name)
        .collect();
    assert_eq!(names, ["alice", "bob"]);
    let got = store.get("alice").await.unwrap().unwrap();
    assert_eq!(got, made);
    assert!(got.client_key().unwrap().allows_model("gpt-4o"));
    assert_eq!(store.get("nobody").await.unwrap(), None);

    // Refusals change nothing.
    assert_eq!(
        store.create(KeySpec::named("bob")).await.unwrap_err(),
        StoreError::Conflict("bob".into())
    );
    assert_eq!(
        store.update("zz", KeySpec::named("zz")).await.unwrap_err(),
        StoreError::NotFound("zz".into())
    );
    assert_eq!(store.version().await.unwrap(), 2);

    let updated = store.update("alice", limited("alice", 5)).await.unwrap();
    assert_eq!(
        (updated.hash, updated.created_at),
        (made.hash, made.created_at)
    );
    assert_eq!(
        store.get("alice").await.unwrap().unwrap().spec.limits.rpm,
        Some(5)
    );
    assert_eq!(store.version().await.unwrap(), 3);

    // Last uses: the newer time wins, a batch may name a key twice, and
    // none of it is a change of the keys.
    store
        .touch(vec![
            ("alice".into(), 100),
            ("cfg".into(), 50),
            ("cfg".into(), 70),
        ])
        .await
        .unwrap();
    store.touch(vec![("alice".into(), 90)]).await.unwrap();
    assert_eq!(
        store.last_used().await.unwrap(),
        [("alice".into(), 100), ("cfg".into(), 70)].into()
    );
    assert_eq!(store.version().await.unwrap(), 3);

    assert!(store.delete("alice").await.unwrap());
    assert!(!store.delete("alice").await.unwrap());
    assert_eq!(store.version().await.unwrap(), 4);
    // A new key under a revoked key's name starts unused.
    store.create(KeySpec::named("alice")).await.unwrap();
    assert!(!store.last_used().await.unwrap().contains_key("alice"));

    // The database holds the hash and the prefix, never the secret.
    let dump = pg.psql("SELECT name, hash, prefix, spec FROM keys");
    assert!(dump.contains("bob"), "read the wrong table: {dump}");
    let (bob, bob_secret) = store.create(KeySpec::named("carol")).await.unwrap();
    let dump = pg.psql("SELECT name, hash, prefix, spec FROM keys");
    assert!(dump.contains(&filters::auth::hex(&bob.hash)));
    assert!(
        !dump.contains(&bob_secret[10..]),
        "part of the secret is stored"
    );
}

#[tokio::test]
async fn sessions_round_trip_touch_and_revoke() {
    let pg = Server::start();
    let store = KeyStore::open_postgres(&pg.url()).unwrap();
    crate::store::tests::sessions_round_trip(&store).await;
}

#[tokio::test]
async fn two_replicas_share_keys_and_migrate_together() {
    let pg = Server::start();
    let url = pg.url();
    // Two replicas starting at once on an empty database: the migrator's
    // lock lets one create the schema and the other find it.
    let (a, b) = {
        let (u1, u2) = (url.clone(), url.clone());
        let one = std::thread::spawn(move || KeyStore::open_postgres(&u1));
        let two = std::thread::spawn(move || KeyStore::open_postgres(&u2));
        (one.join().unwrap().unwrap(), two.join().unwrap().unwrap())
    };
    a.create(KeySpec::named("from-a")).await.unwrap();
    assert!(b.get("from-a").await.unwrap().is_some());
    b.update("from-a", limited("from-a", 7)).await.unwrap();
    assert_eq!(
        a.get("from-a").await.unwrap().unwrap().spec.limits.rpm,
        Some(7)
    );
    assert_eq!(a.version().await.unwrap(), b.version().await.unwrap());
    // One name created by both at once: one wins, the other is told it
    // exists (not a database error).
    let (x, y) = tokio::join!(
        a.create(KeySpec::named("race")),
        b.create(KeySpec::named("race"))
    );
    let conflicts = [&x, &y]
        .iter()
        .filter(|r| matches!(r, Err(StoreError::Conflict(n)) if n == "race"))
        .count();
    assert_eq!(
        (x.is_ok() || y.is_ok(), conflicts),
        (true, 1),
        "{x:?} {y:?}"
    );
    // Touches from both replicas over the same keys.
    let (t1, t2) = tokio::join!(
        a.touch(vec![("from-a".into(), 5), ("race".into(), 9)]),
        b.touch(vec![("race".into(), 7), ("from-a".into(), 6)])
    );
    t1.unwrap();
    t2.unwrap();
    assert_eq!(
        a.last_used().await.unwrap(),
        [("from-a".into(), 6), ("race".into(), 9)].into()
    );
    // Each migration applied once, by one of them.
    assert_eq!(
        pg.scalar("SELECT count(*) FROM _sqlx_migrations WHERE success"),
        i64::try_from(MIGRATOR.iter().count()).unwrap()
    );
}

#[tokio::test]
async fn usage_rows_are_inserted_once_with_their_types() {
    let pg = Server::start();
    let store = KeyStore::open_postgres(&pg.url()).unwrap();
    let rows: Vec<UsageRow> = (0..450)
        .map(|i| usage_row(&format!("req-{i}"), i % 2 == 0))
        .collect();
    // A batch larger than the writer's, with one id twice in it.
    let mut batch = rows.clone();
    batch.push(usage_row("req-7", false));
    assert_eq!(store.insert_usage(batch).await.unwrap(), 450);
    // A replay inserts nothing again.
    assert_eq!(store.insert_usage(rows[..300].to_vec()).await.unwrap(), 0);
    assert_eq!(store.usage_count().await.unwrap(), 450);
    assert_eq!(pg.scalar("SELECT count(*) FROM usage WHERE stream"), 225);
    let row = pg.psql(
        "SELECT ts, status, stream, input_uncached, cost_nanos, currency, latency_ms, \
         ttfb_ms, overhead_ms IS NULL, bytes_out FROM usage WHERE request_id = 'req-4'",
    );
    assert_eq!(
        row.trim(),
        format!("1700000000123|200|t|10|1500|USD|1.25|1|t|{}", i64::MAX)
    );
    // The types the read side decodes, the same as SQLite's.
    let types = pg.psql(
        "SELECT column_name || ':' || data_type FROM information_schema.columns \
         WHERE table_name = 'usage' AND column_name IN ('ts','status','stream','latency_ms') \
         ORDER BY column_name",
    );
    assert_eq!(
        types.lines().collect::<Vec<_>>(),
        [
            "latency_ms:double precision",
            "status:bigint",
            "stream:boolean",
            "ts:bigint"
        ]
    );
}

#[tokio::test]
async fn an_outage_fails_requests_then_the_store_works_again() {
    let mut pg = Server::start();
    let store = KeyStore::open_postgres(&pg.url()).unwrap();
    store.create(KeySpec::named("a")).await.unwrap();
    pg.stop();
    let started = std::time::Instant::now();
    let err = store.version().await.unwrap_err();
    assert!(started.elapsed() < std::time::Duration::from_secs(8));
    assert!(matches!(&err, StoreError::Backend(_)), "{err:?}");
    assert!(!err.to_string().contains(&pg.password), "{err}");
    pg.start_again();
    assert_eq!(store.version().await.unwrap(), 1);
    assert!(store.get("a").await.unwrap().is_some());
}

#[test]
fn opening_names_the_database_and_never_its_password() {
    let pg = Server::start();
    let wrong = pg.url().replace(&pg.password, "Wrong-Password-123");
    let err = KeyStore::open_postgres(&wrong).err().unwrap().to_string();
    assert!(err.contains("password authentication failed"), "{err}");
    assert!(
        err.contains("postgres://modelswitch:***@127.0.0.1"),
        "{err}"
    );
    assert!(!err.contains("Wrong-Password-123"), "{err}");
    drop(pg);
    // Nobody listening: refused at once, the password masked as well.
    let err = KeyStore::open_postgres(&wrong).err().unwrap().to_string();
    assert!(!err.contains("Wrong-Password-123"), "{err}");
}

#[test]
fn urls_are_shown_with_their_password_masked() {
    assert_eq!(
        redact_url("postgres://app:s3cret@db:5432/ms"),
        "postgres://app:***@db:5432/ms"
    );
    assert_eq!(
        redact_url("postgresql://app@db/ms?sslmode=require&password=s3cret"),
        "postgresql://app@db/ms?sslmode=require&password=***"
    );
    // A raw '@' or '/' in the password: masked whole, not in part.
    assert_eq!(
        redact_url("postgres://app:p@ss/w0rd@db/ms"),
        "postgres://app:***@db/ms"
    );
    assert_eq!(redact_url("postgres://db/ms"), "postgres://db/ms");
    assert_eq!(redact_url("host=db password=x"), "***");
}

#[test]
fn the_scrub_takes_the_password_out_however_it_is_written() {
    let url = "postgres://app:p%40ss%2Fw0rd@db/ms?password=other-one";
    let scrub = Scrub::of(url);
    let text = scrub.text(&format!(
        "cannot reach {url}; tried p@ss/w0rd and p%40ss%2Fw0rd and other-one"
    ));
    assert_eq!(
        text,
        "cannot reach postgres://app:***@db/ms?password=***; tried *** and *** and ***"
    );
    assert_eq!(percent_decode("a%2"), "a%2");
    assert_eq!(percent_decode("%zz%41"), "%zzA");
}

#[test]
fn the_config_url_is_checked_and_read_from_the_environment() {
    assert_eq!(
        resolve_url(Some("postgresql://u:p@h/db"), None).unwrap(),
        "postgresql://u:p@h/db"
    );
    let err = resolve_url(Some("mysql://u:hidden@h/db"), None).unwrap_err();
    assert!(err.starts_with("storage.postgres_url: must start with postgres://"));
    assert!(!err.contains("hidden"));
    let err = resolve_url(Some("postgres://u:hidden@h:notaport/db"), None).unwrap_err();
    assert!(err.starts_with("storage.postgres_url: "), "{err}");
    assert!(!err.contains("hidden"), "{err}");
    assert!(resolve_url(None, None).unwrap_err().contains("required"));
    assert!(resolve_url(Some("postgres://h/db"), Some("X"))
        .unwrap_err()
        .contains("not both"));
    // A variable name no other test sets.
    let var = "MODELSWITCH_TEST_PG_URL_UNSET_9f2";
    assert_eq!(
        resolve_url(None, Some(var)).unwrap_err(),
        format!("storage.postgres_url_env: environment variable {var} is not set")
    );
    // PATH is set everywhere and is not a URL: read, then refused.
    assert!(resolve_url(None, Some("PATH"))
        .unwrap_err()
        .contains("must start with"));
}

#[tokio::test]
async fn tls_is_used_when_the_url_asks_for_it() {
    let pg = Server::start_tls();
    // The server refuses logins without TLS: these work only through it.
    let store = KeyStore::open_postgres(&format!("{}?sslmode=require", pg.url())).unwrap();
    store.create(KeySpec::named("over-tls")).await.unwrap();
    assert_eq!(store.version().await.unwrap(), 1);
    let count = |ssl: &str| {
        pg.scalar(&format!(
            "SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
             WHERE s.ssl = {ssl} AND a.application_name = 'modelswitch'"
        ))
    };
    assert!(count("true") >= 1, "the store holds no connection over TLS");
    assert_eq!(count("false"), 0);
    let err = KeyStore::open_postgres(&format!("{}?sslmode=disable", pg.url()))
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("no encryption"), "{err}");
    assert!(!err.contains(&pg.password), "{err}");
    // The server's certificate checked against the CA that signed it, and
    // its name against the host: verify-full works with the CA given, and
    // fails without it (the system's roots do not know this CA).
    let ca = pg.ca_certificate();
    let verified = format!(
        "{}?sslmode=verify-full&sslrootcert={}",
        pg.url(),
        ca.display()
    );
    let store = KeyStore::open_postgres(&verified).unwrap();
    assert_eq!(store.version().await.unwrap(), 1);
    let err = KeyStore::open_postgres(&format!("{}?sslmode=verify-full", pg.url()))
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("certificate"), "{err}");
    assert!(!err.contains(&pg.password), "{err}");
}

#[tokio::test]
async fn usage_reads_answer_exactly_as_on_sqlite() {
    use crate::store::usage_query::{GroupBy, StatusFilter, SummaryQuery, UsageFilter};
    let pg = Server::start();
    let on_pg = KeyStore::open_postgres(&pg.url()).unwrap();
    let on_sqlite = KeyStore::open(&super::super::tests::temp_db("pg-compare")).unwrap();
    let hour = 3_600_000;
    let base = 1_764_720_000_000; // 2025-12-03T00:00:00Z
    let rows: Vec<UsageRow> = (0..40)
        .map(|i: i64| {
            let mut r = usage_row(&format!("req_{i:03}"), i % 2 == 0);
            // Three rows share each ts (the id breaks ties); 13 hours span
            // two days of New York.
            r.ts = base + (i / 3) * hour;
            r.key_name = Some(["a", "b", "c"][(i % 3) as usize].into());
            r.model = (i % 7 != 0).then(|| ["m1", "m2"][(i % 2) as usize].into());
            r.provider = Some(["p", "q"][(i % 4 / 2) as usize].into());
            r.status = [200, 200, 429, 502, 200][(i % 5) as usize];
            r.error = (i % 11 == 0).then(|| "stream cut".into());
            r.input_uncached = 10 + u64::try_from(i).unwrap();
            r.reasoning = u64::try_from(i % 4).unwrap();
            r.bytes_out = Some(200);
            // Sessions across keys; some rows without one.
            r.session_id = (i % 6 != 5).then(|| format!("s{}", i % 4));
            r.routed_model = (i % 2 == 0).then(|| "m1".into());
            r.routed_by = (i % 2 == 0).then(|| if i % 4 == 0 { "scene" } else { "alias" }.into());
            r.scene = (i % 4 == 0).then(|| "code".into());
            (r.cost_nanos, r.currency) = match i % 3 {
                0 => (None, None),
                1 => (Some(1_000 * i), Some("USD".into())),
                _ => (Some(7 * i), Some("CNY".into())),
            };
            r
        })
        .collect();
    assert_eq!(on_pg.insert_usage(rows.clone()).await.unwrap(), 40);
    assert_eq!(on_sqlite.insert_usage(rows.clone()).await.unwrap(), 40);

    let all = UsageFilter::between(base, base + 48 * hour);
    let mut narrow = all.clone();
    narrow.key = Some("b".into());
    narrow.status = Some(StatusFilter::Error);
    let mut class = all.clone();
    class.status = Some(StatusFilter::Class(4));
    class.provider = Some("q".into());
    let groupings: [&[GroupBy]; 5] = [
        &[],
        &[GroupBy::Key],
        &[GroupBy::Provider, GroupBy::Model],
        &[GroupBy::Day, GroupBy::Hour],
        &[GroupBy::Model, GroupBy::Day],
    ];
    for filter in [&all, &narrow, &class] {
        for group_by in groupings {
            let q = SummaryQuery {
                filter: filter.clone(),
                group_by: group_by.to_vec(),
                zone: filters::limits::day::zone("America/New_York").unwrap(),
            };
            let want = on_sqlite.usage_summary(q.clone()).await.unwrap();
            let got = on_pg.usage_summary(q).await.unwrap();
            assert_eq!(got, want, "{group_by:?} over {filter:?}");
        }
    }
    let s = on_pg
        .usage_summary(SummaryQuery {
            filter: all.clone(),
            group_by: vec![GroupBy::Day],
            zone: filters::limits::day::zone("America/New_York").unwrap(),
        })
        .await
        .unwrap();
    assert_eq!((s.totals.requests, s.groups.len()), (40, 2), "{s:?}");
    assert_eq!(s.totals.unpriced, 14);

    // Pages of 7, newest first, the same rows and cursors on both.
    for filter in [&all, &narrow] {
        let (mut after_pg, mut after_sqlite, mut seen) = (None, None, 0);
        loop {
            let got = on_pg.usage_page(filter.clone(), after_pg, 7).await.unwrap();
            let want = on_sqlite
                .usage_page(filter.clone(), after_sqlite, 7)
                .await
                .unwrap();
            assert_eq!(got, want);
            seen += got.rows.len();
            match (got.next, want.next) {
                (Some(a), Some(b)) => (after_pg, after_sqlite) = (Some(a), Some(b)),
                _ => break,
            }
        }
        if filter == &all {
            assert_eq!(seen, 40);
        }
    }
    // Agent sessions, a page of 3 at a time: the same sessions, sums and
    // cursors on both.
    for filter in [&all, &narrow] {
        let (mut after_pg, mut after_sqlite, mut seen) = (None, None, 0);
        loop {
            let got = on_pg
                .usage_sessions(filter.clone(), after_pg.clone(), 3)
                .await
                .unwrap();
            let want = on_sqlite
                .usage_sessions(filter.clone(), after_sqlite.clone(), 3)
                .await
                .unwrap();
            assert_eq!(got, want);
            seen += got.sessions.len();
            match (got.next, want.next) {
                (Some(a), Some(b)) => (after_pg, after_sqlite) = (Some(a), Some(b)),
                _ => break,
            }
        }
        if filter == &all {
            // Four ids under three keys: every (id, key) pair that occurs.
            let pairs: std::collections::HashSet<_> = rows
                .iter()
                .filter_map(|r| r.session_id.clone().map(|s| (s, r.key_name.clone())))
                .collect();
            assert_eq!(seen, pairs.len());
        }
    }
    let mut one_session = all.clone();
    one_session.session = Some("s0".into());
    let page = on_pg
        .usage_page(one_session.clone(), None, 500)
        .await
        .unwrap();
    assert!(!page.rows.is_empty());
    assert!(page
        .rows
        .iter()
        .all(|r| r.row.session_id.as_deref() == Some("s0")));
    assert_eq!(
        page,
        on_sqlite.usage_page(one_session, None, 500).await.unwrap()
    );
    let one = on_pg.usage_by_request("req_004").await.unwrap().unwrap();
    assert_eq!(one.row, rows[4]);
    assert_eq!(
        Some(one),
        on_sqlite.usage_by_request("req_004").await.unwrap()
    );
    assert!(on_pg.usage_by_request("req_x").await.unwrap().is_none());
}

#[test]
fn the_config_names_the_backend_and_checks_its_url() {
    use crate::config::StoreBackend;
    let parse = |storage: &str| {
        crate::config::parse(&format!(
            "[[api_keys]]\nkey = \"sk-test-k\"\nname = \"k\"\n\n[storage]\n{storage}"
        ))
    };
    let snap = parse("").unwrap();
    assert_eq!(snap.process.store_backend, StoreBackend::Sqlite);
    let snap =
        parse("backend = \"postgres\"\npostgres_url = \"postgres://u:hidden@h/db\"").unwrap();
    assert_eq!(
        snap.process.store_backend,
        StoreBackend::Postgres {
            url: crate::config::secret::Secret::new("postgres://u:hidden@h/db".into())
        }
    );
    // The URL is a secret: not even Debug shows it, nor a part of a
    // password given last, as a query parameter.
    assert!(!format!("{:?}", snap.process).contains("hidden"));
    let snap =
        parse("backend = \"postgres\"\npostgres_url = \"postgres://u@h/db?password=tailpass\"")
            .unwrap();
    let shown = format!("{:?}", snap.process);
    assert!(shown.contains("postgres://u@h/db?password=***"), "{shown}");
    assert!(
        !shown.contains("tailpass") && !shown.contains("***pass"),
        "{shown}"
    );
    for (storage, want) in [
        ("backend = \"postgres\"", "storage.postgres_url: required"),
        (
            "backend = \"postgres\"\npostgres_url = \"http://u:hidden@h/db\"",
            "storage.postgres_url: must start with",
        ),
        (
            "postgres_url = \"postgres://u:hidden@h/db\"",
            "storage.postgres_url: only read with backend = \"postgres\"",
        ),
        ("backend = \"mysql\"", "storage.backend"),
    ] {
        let errs = parse(storage).unwrap_err().0.join("\n");
        assert!(errs.contains(want), "{storage}: {errs}");
        assert!(!errs.contains("hidden"), "{errs}");
    }
}

/// A row PostgreSQL cannot hold (a NUL in text) is refused as data, and the
/// writer's insert sets it aside instead of retrying its whole batch for
/// ever: the rest of the batch is stored, the refused row kept on disk.
#[tokio::test]
async fn a_row_the_database_refuses_is_set_aside_and_its_batch_stored() {
    let pg = Server::start();
    let store = KeyStore::open_postgres(&pg.url()).unwrap();
    let mut bad = usage_row("req-bad", false);
    bad.model = Some("a\0b".into());
    assert!(
        matches!(
            store.insert_usage(vec![bad.clone()]).await,
            Err(StoreError::Rejected(_))
        ),
        "a NUL byte is a data error"
    );
    let dir = std::env::temp_dir().join(format!("ms-rejected-{}", fastrand::u64(..)));
    std::fs::create_dir_all(&dir).unwrap();
    let rejected = dir.join("rejected.jsonl");
    let batch = vec![usage_row("req-a", false), bad, usage_row("req-b", true)];
    let n = crate::usage::spill::insert(&store, &batch, &rejected)
        .await
        .unwrap();
    assert_eq!(n, 2);
    assert_eq!(store.usage_count().await.unwrap(), 2);
    let kept = std::fs::read_to_string(&rejected).unwrap();
    assert_eq!(kept.lines().count(), 1);
    assert!(kept.contains("req-bad"), "{kept}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A database the previous release made (migrations 0001 to 0004, a row
/// in it) is brought to 0005 when the store opens: the old row reads back
/// with no routing, a new one with it, under the new index.
#[tokio::test]
async fn a_database_from_before_the_routing_columns_is_migrated() {
    let pg = Server::start();
    let dir = std::env::temp_dir().join(format!(
        "modelswitch-pg-upgrade-{}-{}",
        std::process::id(),
        fastrand::u64(..)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let here =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/store/migrations/postgres");
    for e in std::fs::read_dir(&here).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().into_string().unwrap();
        if name.as_str() < "0005" {
            std::fs::copy(e.path(), dir.join(&name)).unwrap();
        }
    }
    {
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(1)
            .connect(&pg.url())
            .await
            .unwrap();
        let before = sqlx::migrate::Migrator::new(dir.as_path()).await.unwrap();
        assert_eq!(before.iter().count(), 4);
        before.run(&pool).await.unwrap();
        sqlx::query(
            "INSERT INTO usage (ts, request_id, key_name, endpoint, attempts, status, stream, \
             input_uncached, cache_read, cache_write, output, reasoning, latency_ms, session_id) \
             VALUES (5, 'req_old', 'k', '/v1/messages', '[]', 200, false, 1, 2, 3, 4, 0, 1.0, 's')",
        )
        .execute(&pool)
        .await
        .unwrap();
        pool.close().await;
    }
    let store = KeyStore::open_postgres(&pg.url()).unwrap();
    let old = store
        .usage_by_request("req_old")
        .await
        .unwrap()
        .unwrap()
        .row;
    assert_eq!(old.session_id.as_deref(), Some("s"));
    assert_eq!(
        (old.routed_model, old.routed_by, old.scene),
        (None, None, None)
    );
    let mut new = usage_row("req_new", false);
    new.ts = 6;
    new.bytes_out = Some(200);
    new.session_id = Some("s".into());
    new.routed_model = Some("big".into());
    new.routed_by = Some("rule#2".into());
    new.scene = Some("plan".into());
    assert_eq!(store.insert_usage(vec![new.clone()]).await.unwrap(), 1);
    assert_eq!(
        store
            .usage_by_request("req_new")
            .await
            .unwrap()
            .unwrap()
            .row,
        new
    );
    let mut f = crate::store::usage_query::UsageFilter::between(0, 10);
    f.session = Some("s".into());
    assert_eq!(store.usage_page(f, None, 10).await.unwrap().rows.len(), 2);
    let _ = std::fs::remove_dir_all(dir);
}
