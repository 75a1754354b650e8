//! The usage read side on SQLite: binds and runs `usage_query`'s
//! statements. WAL lets these reads run beside another process's writes;
//! in this process they take turns with the writer on the store's thread,
//! one statement (one page, one day) at a time.

use super::sqlite::{backend, Sqlite};
use super::usage_query::{Bind, ReadColumns, Sql, UsageReader};
use super::StoreError;
use sqlx::sqlite::SqliteRow;
use sqlx::Row;

impl UsageReader for Sqlite {
    type Row = SqliteRow;

    async fn fetch(&self, sql: &Sql) -> Result<Vec<SqliteRow>, StoreError> {
        // The text is built from fixed fragments; every value is bound.
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.text.clone()));
        for b in &sql.binds {
            q = match b {
                Bind::Int(n) => q.bind(*n),
                Bind::Text(s) => q.bind(s.clone()),
            };
        }
        q.fetch_all(&self.pool).await.map_err(backend)
    }
}

impl ReadColumns for SqliteRow {
    fn int(&self, i: usize) -> Result<Option<i64>, StoreError> {
        self.try_get(i).map_err(backend)
    }

    fn text(&self, i: usize) -> Result<Option<String>, StoreError> {
        self.try_get(i).map_err(backend)
    }

    fn real(&self, i: usize) -> Result<Option<f64>, StoreError> {
        self.try_get(i).map_err(backend)
    }

    fn flag(&self, i: usize) -> Result<bool, StoreError> {
        self.try_get(i).map_err(backend)
    }
}

#[cfg(test)]
mod tests {
    use super::super::usage_query::*;
    use super::*;
    use crate::usage::UsageRow;

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    async fn open() -> (Sqlite, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!(
            "modelswitch-usage-query-{}-{}",
            std::process::id(),
            fastrand::u64(..)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        (Sqlite::connect(&dir.join("t.db")).await.unwrap(), dir)
    }

    fn row(i: usize, ts: i64, key: &str, model: &str, provider: &str, status: u16) -> UsageRow {
        UsageRow {
            ts,
            request_id: format!("req_{i}"),
            key_name: Some(key.into()),
            dialect: Some("openai".into()),
            endpoint: "/v1/chat/completions".into(),
            model: Some(model.into()),
            provider: Some(provider.into()),
            upstream_model: Some("up".into()),
            attempts: r#"[{"provider":"p","model":"up","outcome":"ok"}]"#.into(),
            status,
            stream: i.is_multiple_of(2),
            input_uncached: 10 + i as u64,
            cache_read: 3,
            cache_write: 1,
            output: 7,
            reasoning: 2,
            cost_nanos: (!i.is_multiple_of(3)).then_some(1_000 * i as i64),
            currency: (!i.is_multiple_of(3)).then(|| if i % 3 == 1 { "USD" } else { "CNY" }.into()),
            latency_ms: 12.5,
            ttfb_ms: Some(3.25),
            overhead_ms: None,
            bytes_in: Some(100),
            bytes_out: None,
            client_addr: Some("127.0.0.1:5".into()),
            user_agent: Some("ua, \"quoted\"".into()),
            session_id: None,
            routed_model: None,
            routed_by: None,
            scene: None,
            error: (status >= 400).then(|| "boom".into()),
        }
    }

    #[test]
    fn sqlite_binds_dollar_placeholders_by_number() {
        runtime().block_on(async {
            let (db, dir) = open().await;
            // Out of order and reused: bound by number, not by appearance.
            let sql = Sql {
                text: "SELECT $2 - $1, $1, $2 * $2".into(),
                binds: vec![Bind::Int(1), Bind::Int(5)],
            };
            let rows = db.fetch(&sql).await.unwrap();
            assert_eq!(rows[0].int(0).unwrap(), Some(4));
            assert_eq!(rows[0].int(1).unwrap(), Some(1));
            assert_eq!(rows[0].int(2).unwrap(), Some(25));
            db.close().await;
            let _ = std::fs::remove_dir_all(dir);
        });
    }

    #[test]
    fn summaries_pages_and_single_rows_read_back_what_was_written() {
        runtime().block_on(async {
            let (db, dir) = open().await;
            let hour = 3_600_000;
            let base = 1_764_720_000_000; // 2025-12-03T00:00:00Z
            let mut rows = Vec::new();
            for i in 0..30 {
                let key = if i % 2 == 0 { "a" } else { "b" };
                let model = if i % 5 == 0 { "m2" } else { "m1" };
                let status = if i % 7 == 0 { 502 } else { 200 };
                // Three rows share each ts: the id breaks ties.
                rows.push(row(
                    i,
                    base + (i as i64 / 3) * hour,
                    key,
                    model,
                    "p",
                    status,
                ));
            }
            db.insert_usage(rows.clone()).await.unwrap();
            let all = UsageFilter::between(base, base + 48 * hour);
            let utc = filters::limits::day::zone("UTC").unwrap();

            let q = SummaryQuery {
                filter: all.clone(),
                group_by: vec![GroupBy::Key],
                zone: utc.clone(),
            };
            let s = summarize(&db, &q).await.unwrap();
            assert_eq!(s.totals.requests, 30);
            assert_eq!(
                s.totals.errors,
                rows.iter().filter(|r| r.status >= 400).count() as u64
            );
            let input: u64 = rows.iter().map(|r| r.input_uncached).sum();
            assert_eq!(s.totals.input_uncached, input);
            assert_eq!(s.totals.reasoning, 60);
            let cost = |c: &str| -> i64 {
                rows.iter()
                    .filter(|r| r.currency.as_deref() == Some(c))
                    .map(|r| r.cost_nanos.unwrap())
                    .sum()
            };
            assert_eq!(s.totals.cost_nanos["USD"], cost("USD"));
            assert_eq!(s.totals.cost_nanos["CNY"], cost("CNY"));
            assert_eq!(s.totals.unpriced, 10);
            assert_eq!(s.groups.len(), 2);
            assert_eq!(s.groups[0].keys, vec![GroupValue::Name(Some("a".into()))]);
            assert_eq!(s.groups[0].totals.requests, 15);

            // Days and hours: ten hours on one UTC day.
            let q = SummaryQuery {
                filter: all.clone(),
                group_by: vec![GroupBy::Day, GroupBy::Hour],
                zone: utc,
            };
            let s = summarize(&db, &q).await.unwrap();
            assert_eq!(s.groups.len(), 10);
            assert_eq!(s.groups[0].keys[0], GroupValue::Day("2025-12-03".into()));
            assert_eq!(s.groups[0].keys[1], GroupValue::Hour(base));
            assert_eq!(s.groups[9].keys[1], GroupValue::Hour(base + 9 * hour));
            assert_eq!(s.totals.requests, 30);
            // Five hours behind UTC, the first five hours are the day before.
            let q = SummaryQuery {
                filter: all.clone(),
                group_by: vec![GroupBy::Day],
                zone: filters::limits::day::zone("America/New_York").unwrap(),
            };
            let s = summarize(&db, &q).await.unwrap();
            let days: Vec<_> = s
                .groups
                .iter()
                .map(|g| (g.keys[0].clone(), g.totals.requests))
                .collect();
            assert_eq!(
                days,
                vec![
                    (GroupValue::Day("2025-12-02".into()), 15),
                    (GroupValue::Day("2025-12-03".into()), 15)
                ]
            );

            // Filters.
            let mut f = all.clone();
            f.key = Some("b".into());
            f.model = Some("m2".into());
            let q = SummaryQuery {
                filter: f,
                group_by: vec![],
                zone: filters::limits::day::zone("UTC").unwrap(),
            };
            let s = summarize(&db, &q).await.unwrap();
            assert_eq!(s.totals.requests, 3); // 5, 15, 25

            // Pages of 7 visit every row once, newest first.
            let mut seen = Vec::new();
            let mut after = None;
            loop {
                let p = page(&db, &all, after, 7).await.unwrap();
                assert!(p.rows.len() <= 7);
                seen.extend(p.rows.iter().map(|r| r.row.clone()));
                match p.next {
                    Some(c) => after = Some(c),
                    None => break,
                }
            }
            let mut want = rows.clone();
            want.reverse(); // later ts, then later id, first
            assert_eq!(seen, want);

            let mut errors = all.clone();
            errors.status = Some(StatusFilter::Error);
            let p = page(&db, &errors, None, 500).await.unwrap();
            assert_eq!(p.rows.len(), 5);
            assert!(p.next.is_none());

            let one = by_request(&db, "req_4").await.unwrap().unwrap();
            assert_eq!(one.row, rows[4]);
            assert!(by_request(&db, "req_x").await.unwrap().is_none());
            db.close().await;
            let _ = std::fs::remove_dir_all(dir);
        });
    }

    #[test]
    fn sessions_sum_per_id_and_key_newest_first_with_costs_per_currency() {
        runtime().block_on(async {
            let (db, dir) = open().await;
            let base = 1_764_720_000_000;
            let mut rows = Vec::new();
            // s1 of a: rows 0..3 (USD, one unpriced); s2 of a: rows 3..5
            // (USD and CNY); s1 of b: row 5; row 6 without a session.
            for (i, (key, session)) in [
                ("a", Some("s1")),
                ("a", Some("s1")),
                ("a", Some("s1")),
                ("a", Some("s2")),
                ("a", Some("s2")),
                ("b", Some("s1")),
                ("a", None),
            ]
            .into_iter()
            .enumerate()
            {
                let mut r = row(i, base + i as i64 * 1000, key, "m", "p", 200);
                r.session_id = session.map(str::to_owned);
                r.cost_nanos = Some(100 * (i as i64 + 1));
                r.currency = Some(if i == 4 { "CNY" } else { "USD" }.into());
                if i == 2 {
                    (r.cost_nanos, r.currency) = (None, None);
                }
                r.routed_model = Some("big".into());
                r.routed_by = Some("scene".into());
                r.scene = Some("code".into());
                rows.push(r);
            }
            db.insert_usage(rows.clone()).await.unwrap();
            let all = UsageFilter::between(base, base + 60_000);
            let p = sessions(&db, &all, None, 10).await.unwrap();
            let got: Vec<(&str, Option<&str>, u64)> = p
                .sessions
                .iter()
                .map(|s| (s.session.as_str(), s.key.as_deref(), s.totals.requests))
                .collect();
            assert_eq!(
                got,
                [
                    ("s1", Some("b"), 1),
                    ("s2", Some("a"), 2),
                    ("s1", Some("a"), 3)
                ]
            );
            let a1 = &p.sessions[2];
            assert_eq!((a1.first_ms, a1.last_ms), (base, base + 2000));
            assert_eq!(a1.totals.input_uncached, 10 + 11 + 12);
            assert_eq!((a1.totals.cache_read, a1.totals.cache_write), (9, 3));
            assert_eq!(
                a1.totals.cost_nanos,
                std::collections::BTreeMap::from([("USD".into(), 300)])
            );
            assert_eq!(a1.totals.unpriced, 1);
            assert_eq!(a1.cache_hit_ratio(), Some(9.0 / (33.0 + 9.0 + 3.0)));
            let a2 = &p.sessions[1];
            assert_eq!(
                a2.totals.cost_nanos,
                std::collections::BTreeMap::from([("CNY".into(), 500), ("USD".into(), 400)])
            );
            assert!(p.next.is_none());

            // Pages of one: the same order, each once.
            let mut after = None;
            let mut walked = Vec::new();
            loop {
                let p = sessions(&db, &all, after.as_ref(), 1).await.unwrap();
                walked.extend(
                    p.sessions
                        .iter()
                        .map(|s| (s.session.clone(), s.key.clone())),
                );
                match p.next {
                    Some(c) => after = Some(SessionCursor::decode(&c.encode()).unwrap()),
                    None => break,
                }
            }
            let want: Vec<_> = got
                .iter()
                .map(|(s, k, _)| ((*s).to_owned(), k.map(str::to_owned)))
                .collect();
            assert_eq!(walked, want);

            // A key's own sessions; one session's rows, routing and all.
            let mut mine = all.clone();
            mine.key = Some("b".into());
            let p = sessions(&db, &mine, None, 10).await.unwrap();
            assert_eq!(p.sessions.len(), 1);
            mine.session = Some("s1".into());
            let page = page(&db, &mine, None, 10).await.unwrap();
            assert_eq!(page.rows.len(), 1);
            assert_eq!(page.rows[0].row, rows[5]);
            assert_eq!(page.rows[0].row.scene.as_deref(), Some("code"));
            db.close().await;
            let _ = std::fs::remove_dir_all(dir);
        });
    }

    /// A database the previous release made (migrations 0001 to 0004, a
    /// row in it) opens with 0005 applied: the old row reads back with no
    /// routing, a new one with it, and one session's rows have an index.
    #[test]
    fn a_database_from_before_the_routing_columns_is_migrated() {
        runtime().block_on(async {
            let dir = std::env::temp_dir().join(format!(
                "modelswitch-usage-upgrade-{}-{}",
                std::process::id(),
                fastrand::u64(..)
            ));
            let old = dir.join("migrations");
            std::fs::create_dir_all(&old).unwrap();
            let here = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("src/store/migrations/sqlite");
            for e in std::fs::read_dir(&here).unwrap() {
                let e = e.unwrap();
                let name = e.file_name().into_string().unwrap();
                if name.as_str() < "0005" {
                    std::fs::copy(e.path(), old.join(&name)).unwrap();
                }
            }
            let path = dir.join("t.db");
            {
                let options = sqlx::sqlite::SqliteConnectOptions::new()
                    .filename(&path)
                    .create_if_missing(true);
                let pool = sqlx::sqlite::SqlitePoolOptions::new()
                    .max_connections(1)
                    .connect_with(options)
                    .await
                    .unwrap();
                let before = sqlx::migrate::Migrator::new(old.as_path()).await.unwrap();
                assert_eq!(before.iter().count(), 4);
                before.run(&pool).await.unwrap();
                sqlx::query(
                    "INSERT INTO usage (ts, request_id, key_name, endpoint, attempts, status, \
                     stream, input_uncached, cache_read, cache_write, output, reasoning, \
                     latency_ms, session_id) \
                     VALUES (5, 'req_old', 'k', '/v1/messages', '[]', 200, 0, 1, 2, 3, 4, 0, 1.0, 's')",
                )
                .execute(&pool)
                .await
                .unwrap();
                pool.close().await;
            }
            let db = Sqlite::connect(&path).await.unwrap();
            let old_row = by_request(&db, "req_old").await.unwrap().unwrap().row;
            assert_eq!(old_row.session_id.as_deref(), Some("s"));
            assert_eq!(
                (old_row.routed_model, old_row.routed_by, old_row.scene),
                (None, None, None)
            );
            let mut new = row(1, 6, "k", "m", "p", 200);
            new.session_id = Some("s".into());
            new.routed_model = Some("big".into());
            new.routed_by = Some("rule#2".into());
            new.scene = Some("plan".into());
            db.insert_usage(vec![new.clone()]).await.unwrap();
            assert_eq!(by_request(&db, "req_1").await.unwrap().unwrap().row, new);
            let p = sessions(&db, &UsageFilter::between(0, 10), None, 10).await.unwrap();
            assert_eq!(p.sessions.len(), 1);
            assert_eq!(p.sessions[0].totals.requests, 2);
            let index: Option<(String,)> = sqlx::query_as(
                "SELECT name FROM sqlite_master WHERE type = 'index' AND name = 'usage_session'",
            )
            .fetch_optional(&db.pool)
            .await
            .unwrap();
            assert!(index.is_some());
            db.close().await;
            let _ = std::fs::remove_dir_all(dir);
        });
    }
}
