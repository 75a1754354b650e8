//! Reading usage rows back — the admin API's read side — as SQL that
//! SQLite and PostgreSQL both run unchanged: `$N` placeholders (sqlx's
//! SQLite binds `$N` by its number), every value bound (none spliced into
//! the text), every selected number cast to a type both decode the same
//! way (`BIGINT`, `DOUBLE PRECISION`), no engine-only function.
//!
//! A backend runs these through [`UsageReader`]: a `fetch` that binds and
//! runs one statement, and a row type that reads a column as an integer,
//! text, a real or a flag. Everything else — the filters, the day buckets
//! of a time zone, merging currencies, pages and cursors — is here, once.

use super::StoreError;
use crate::usage::UsageRow;
use filters::limits::day::{day_of, TimeZone};
use std::collections::BTreeMap;

/// Rows per page of `/api/usage/requests`: the default and the most.
pub const DEFAULT_PAGE: u32 = 50;
pub const MAX_PAGE: u32 = 500;

/// Which statuses a query keeps. An error is what the metrics call one:
/// anything but a 2xx/3xx, or a 2xx whose stream failed or was left
/// (those carry an `error`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusFilter {
    /// `429`
    Code(u16),
    /// `4xx`: the hundred (4 → 400..=499).
    Class(u16),
    Ok,
    Error,
}

impl StatusFilter {
    /// As [`Self::parse`] reads it.
    pub fn name(self) -> String {
        match self {
            Self::Code(c) => c.to_string(),
            Self::Class(h) => format!("{h}xx"),
            Self::Ok => "ok".into(),
            Self::Error => "error".into(),
        }
    }

    /// `200`, `4xx`, `ok`, `error`.
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "ok" => Some(Self::Ok),
            "error" | "errors" => Some(Self::Error),
            s if s.len() == 3 && s.ends_with("xx") => {
                let d = s.as_bytes()[0];
                (b'1'..=b'5')
                    .contains(&d)
                    .then(|| Self::Class(u16::from(d - b'0')))
            }
            s => s
                .parse::<u16>()
                .ok()
                .filter(|c| (100..=599).contains(c))
                .map(Self::Code),
        }
    }
}

/// Which rows: a time range (`from` inclusive, `to` exclusive, Unix ms)
/// and optional exact matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageFilter {
    pub from_ms: i64,
    pub to_ms: i64,
    pub key: Option<String>,
    /// The model the client asked for.
    pub model: Option<String>,
    /// The provider that served it.
    pub provider: Option<String>,
    pub status: Option<StatusFilter>,
    /// The agent session (`session_id`).
    pub session: Option<String>,
}

impl UsageFilter {
    pub fn between(from_ms: i64, to_ms: i64) -> Self {
        Self {
            from_ms,
            to_ms,
            key: None,
            model: None,
            provider: None,
            status: None,
            session: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum GroupBy {
    Provider,
    Model,
    Key,
    /// A calendar day of `[limits] timezone`.
    Day,
    /// A UTC hour.
    Hour,
}

impl GroupBy {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "provider" => Self::Provider,
            "model" => Self::Model,
            "key" => Self::Key,
            "day" => Self::Day,
            "hour" => Self::Hour,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Provider => "provider",
            Self::Model => "model",
            Self::Key => "key",
            Self::Day => "day",
            Self::Hour => "hour",
        }
    }

    /// The selected expression; `None` for the day, which is cut by
    /// range instead (a day of a time zone is no arithmetic on `ts`).
    fn column(self) -> Option<&'static str> {
        match self {
            Self::Provider => Some("provider"),
            Self::Model => Some("model"),
            Self::Key => Some("key_name"),
            // Integer division on both engines (BIGINT / integer).
            Self::Hour => Some("CAST((ts / 3600000) * 3600000 AS BIGINT)"),
            Self::Day => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct SummaryQuery {
    pub filter: UsageFilter,
    /// In the order asked; no repeats.
    pub group_by: Vec<GroupBy>,
    /// Where days start.
    pub zone: TimeZone,
}

/// A bound value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bind {
    Int(i64),
    Text(String),
}

/// One statement and its values, `$1` first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sql {
    pub text: String,
    pub binds: Vec<Bind>,
}

impl Sql {
    fn new(text: &str) -> Self {
        Self {
            text: text.to_owned(),
            binds: Vec::new(),
        }
    }

    /// Binds `value` and returns its placeholder.
    fn bind(&mut self, value: Bind) -> String {
        self.binds.push(value);
        format!("${}", self.binds.len())
    }

    fn push(&mut self, text: &str) {
        self.text.push_str(text);
    }

    /// ` WHERE …` for `filter`, and rows strictly after `after` in the
    /// newest-first order.
    fn filter(&mut self, f: &UsageFilter, after: Option<Cursor>) {
        let from = self.bind(Bind::Int(f.from_ms));
        let to = self.bind(Bind::Int(f.to_ms));
        self.push(&format!(" WHERE ts >= {from} AND ts < {to}"));
        for (column, value) in [
            ("key_name", &f.key),
            ("model", &f.model),
            ("provider", &f.provider),
            ("session_id", &f.session),
        ] {
            if let Some(v) = value {
                let p = self.bind(Bind::Text(v.clone()));
                self.push(&format!(" AND {column} = {p}"));
            }
        }
        match f.status {
            None => {}
            Some(StatusFilter::Code(c)) => {
                let p = self.bind(Bind::Int(i64::from(c)));
                self.push(&format!(" AND status = {p}"));
            }
            Some(StatusFilter::Class(h)) => {
                let lo = self.bind(Bind::Int(i64::from(h) * 100));
                let hi = self.bind(Bind::Int(i64::from(h) * 100 + 100));
                self.push(&format!(" AND status >= {lo} AND status < {hi}"));
            }
            Some(StatusFilter::Ok) => self.push(&format!(" AND NOT {IS_ERROR}")),
            Some(StatusFilter::Error) => self.push(&format!(" AND {IS_ERROR}")),
        }
        if let Some(c) = after {
            let ts = self.bind(Bind::Int(c.ts));
            let id = self.bind(Bind::Int(c.id));
            // Spelled out rather than a row-value comparison: plain enough
            // for any planner to use the (ts) index.
            self.push(&format!(" AND (ts < {ts} OR (ts = {ts} AND id < {id}))"));
        }
    }
}

const IS_ERROR: &str = "(status < 200 OR status >= 400 OR error IS NOT NULL)";

/// Totals per group and currency; the columns named by `columns` first
/// (`Day` must not be among them), then the currency, then [`SUMS`].
pub fn summary_sql(filter: &UsageFilter, columns: &[GroupBy]) -> Sql {
    let mut select: Vec<&str> = columns.iter().filter_map(|g| g.column()).collect();
    select.push("currency");
    let groups = (1..=select.len())
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    let mut sql = Sql::new(&format!("SELECT {}, {SUMS} FROM usage", select.join(", ")));
    sql.filter(filter, None);
    // By position: both engines accept it, and it repeats no expression.
    sql.push(&format!(" GROUP BY {groups}"));
    sql
}

/// SUM over no rows is NULL, and PostgreSQL's SUM of BIGINT is NUMERIC:
/// both come back as a BIGINT.
const SUMS: &str = "CAST(COUNT(*) AS BIGINT), \
     CAST(COALESCE(SUM(CASE WHEN status < 200 OR status >= 400 OR error IS NOT NULL \
     THEN 1 ELSE 0 END), 0) AS BIGINT), \
     CAST(COALESCE(SUM(input_uncached), 0) AS BIGINT), \
     CAST(COALESCE(SUM(cache_read), 0) AS BIGINT), \
     CAST(COALESCE(SUM(cache_write), 0) AS BIGINT), \
     CAST(COALESCE(SUM(output), 0) AS BIGINT), \
     CAST(COALESCE(SUM(reasoning), 0) AS BIGINT), \
     CAST(COALESCE(SUM(cost_nanos), 0) AS BIGINT), \
     CAST(COUNT(cost_nanos) AS BIGINT)";
const SUM_COLUMNS: usize = 9;

/// The first and last `ts` among the rows of `filter` (NULLs when none).
pub fn extent_sql(filter: &UsageFilter) -> Sql {
    let mut sql = Sql::new("SELECT CAST(MIN(ts) AS BIGINT), CAST(MAX(ts) AS BIGINT) FROM usage");
    sql.filter(filter, None);
    sql
}

/// Every column of a row, in [`read_row`]'s order, and the row's `id`
/// first (the cursor's tie-break).
const ROW_COLUMNS: &str = "CAST(id AS BIGINT), CAST(ts AS BIGINT), request_id, key_name, \
     dialect, endpoint, model, provider, upstream_model, attempts, CAST(status AS BIGINT), \
     stream, CAST(input_uncached AS BIGINT), CAST(cache_read AS BIGINT), \
     CAST(cache_write AS BIGINT), CAST(output AS BIGINT), CAST(reasoning AS BIGINT), \
     CAST(cost_nanos AS BIGINT), currency, CAST(latency_ms AS DOUBLE PRECISION), \
     CAST(ttfb_ms AS DOUBLE PRECISION), CAST(overhead_ms AS DOUBLE PRECISION), \
     CAST(bytes_in AS BIGINT), CAST(bytes_out AS BIGINT), client_addr, user_agent, \
     session_id, error, routed_model, routed_by, scene";

/// Up to `limit` rows of `filter` after `after`, newest first; ties in
/// `ts` broken by `id`, so the order is total and a cursor exact.
pub fn page_sql(filter: &UsageFilter, after: Option<Cursor>, limit: u32) -> Sql {
    let mut sql = Sql::new(&format!("SELECT {ROW_COLUMNS} FROM usage"));
    sql.filter(filter, after);
    let limit = sql.bind(Bind::Int(i64::from(limit)));
    sql.push(&format!(" ORDER BY ts DESC, id DESC LIMIT {limit}"));
    sql
}

/// The row of one request.
pub fn request_sql(request_id: &str) -> Sql {
    let mut sql = Sql::new(&format!(
        "SELECT {ROW_COLUMNS} FROM usage WHERE request_id = "
    ));
    let p = sql.bind(Bind::Text(request_id.to_owned()));
    sql.push(&p);
    sql
}

/// Per agent session (and key: two keys that send one session id are two
/// sessions), newest last use first: `session_id, key_name`, the first
/// and last `ts`, then the token sums. Costs come apart, per currency
/// ([`session_costs_sql`]). Rows without a session are left out.
pub fn sessions_sql(filter: &UsageFilter, after: Option<&SessionCursor>, limit: u32) -> Sql {
    let mut sql = Sql::new(&format!(
        "SELECT session_id, key_name, CAST(MIN(ts) AS BIGINT), CAST(MAX(ts) AS BIGINT), \
         {SESSION_SUMS} FROM usage"
    ));
    sql.filter(filter, None);
    sql.push(" AND session_id IS NOT NULL GROUP BY session_id, key_name");
    if let Some(c) = after {
        let last = sql.bind(Bind::Int(c.last_ms));
        let id = sql.bind(Bind::Text(c.session.clone()));
        let key = sql.bind(Bind::Text(c.key.clone()));
        sql.push(&format!(
            " HAVING (MAX(ts) < {last} OR (MAX(ts) = {last} AND (session_id < {id} \
             OR (session_id = {id} AND COALESCE(key_name, '') < {key}))))"
        ));
    }
    let limit = sql.bind(Bind::Int(i64::from(limit)));
    sql.push(&format!(
        " ORDER BY MAX(ts) DESC, session_id DESC, COALESCE(key_name, '') DESC LIMIT {limit}"
    ));
    sql
}

const SESSION_SUMS: &str = "CAST(COUNT(*) AS BIGINT), \
     CAST(COALESCE(SUM(CASE WHEN status < 200 OR status >= 400 OR error IS NOT NULL \
     THEN 1 ELSE 0 END), 0) AS BIGINT), \
     CAST(COALESCE(SUM(input_uncached), 0) AS BIGINT), \
     CAST(COALESCE(SUM(cache_read), 0) AS BIGINT), \
     CAST(COALESCE(SUM(cache_write), 0) AS BIGINT), \
     CAST(COALESCE(SUM(output), 0) AS BIGINT), \
     CAST(COALESCE(SUM(reasoning), 0) AS BIGINT)";

/// The priced rows' cost per session, key and currency, for the sessions
/// of one page (`ids`, at most a page's worth).
pub fn session_costs_sql(filter: &UsageFilter, ids: &[String]) -> Sql {
    let mut sql = Sql::new(
        "SELECT session_id, key_name, currency, CAST(COALESCE(SUM(cost_nanos), 0) AS BIGINT), \
         CAST(COUNT(cost_nanos) AS BIGINT) FROM usage",
    );
    sql.filter(filter, None);
    let list: Vec<String> = ids
        .iter()
        .map(|id| sql.bind(Bind::Text(id.clone())))
        .collect();
    sql.push(&format!(
        " AND session_id IN ({}) AND cost_nanos IS NOT NULL GROUP BY 1, 2, 3",
        list.join(", ")
    ));
    sql
}

/// One agent session's totals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionTotals {
    pub session: String,
    pub key: Option<String>,
    pub first_ms: i64,
    pub last_ms: i64,
    pub totals: Totals,
}

impl SessionTotals {
    /// Cache reads over every input token (uncached, cache reads, cache
    /// writes); none without input.
    pub fn cache_hit_ratio(&self) -> Option<f64> {
        let t = &self.totals;
        let all = t
            .input_uncached
            .saturating_add(t.cache_read)
            .saturating_add(t.cache_write);
        (all > 0).then(|| t.cache_read as f64 / all as f64)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct SessionPage {
    pub sessions: Vec<SessionTotals>,
    pub next: Option<SessionCursor>,
}

/// Where a page of sessions ended: the last one's last use, id and key.
/// Opaque to clients: hex, so it needs no escaping in a URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionCursor {
    pub last_ms: i64,
    pub session: String,
    /// The key's name, empty for none (as the query orders it).
    pub key: String,
}

impl SessionCursor {
    pub fn encode(&self) -> String {
        format!(
            "{}.{}.{}",
            filters::auth::hex(&self.last_ms.to_be_bytes()),
            filters::auth::hex(self.session.as_bytes()),
            filters::auth::hex(self.key.as_bytes())
        )
    }

    pub fn decode(s: &str) -> Option<Self> {
        let mut parts = s.split('.');
        let (ts, session, key) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() || ts.len() != 16 {
            return None;
        }
        let ts = unhex(ts)?;
        let ts: [u8; 8] = ts.try_into().ok()?;
        Some(Self {
            last_ms: i64::from_be_bytes(ts),
            session: String::from_utf8(unhex(session)?).ok()?,
            key: String::from_utf8(unhex(key)?).ok()?,
        })
    }
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || s.len() > 1024 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Where a page ended: the last row's `(ts, id)`. Opaque to clients: 32
/// hex digits, so it needs no escaping in a URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub ts: i64,
    pub id: i64,
}

impl Cursor {
    pub fn encode(&self) -> String {
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&self.ts.to_be_bytes());
        bytes[8..].copy_from_slice(&self.id.to_be_bytes());
        filters::auth::hex(&bytes)
    }

    pub fn decode(s: &str) -> Option<Self> {
        if s.len() != 32 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let ts = u64::from_str_radix(&s[..16], 16).ok()?;
        let id = u64::from_str_radix(&s[16..], 16).ok()?;
        Some(Self {
            ts: i64::from_be_bytes(ts.to_be_bytes()),
            id: i64::from_be_bytes(id.to_be_bytes()),
        })
    }
}

/// What a backend gives back of one result row.
pub(crate) trait ReadColumns {
    fn int(&self, i: usize) -> Result<Option<i64>, StoreError>;
    fn text(&self, i: usize) -> Result<Option<String>, StoreError>;
    fn real(&self, i: usize) -> Result<Option<f64>, StoreError>;
    fn flag(&self, i: usize) -> Result<bool, StoreError>;
}

/// A backend's way to run one of these statements.
pub(crate) trait UsageReader {
    type Row: ReadColumns;
    async fn fetch(&self, sql: &Sql) -> Result<Vec<Self::Row>, StoreError>;
}

/// Sums over a set of rows. Costs are per currency: rows priced in
/// different currencies are never added together.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Totals {
    pub requests: u64,
    pub errors: u64,
    pub input_uncached: u64,
    pub cache_read: u64,
    pub cache_write: u64,
    pub output: u64,
    pub reasoning: u64,
    /// Nanos of each currency.
    pub cost_nanos: BTreeMap<String, i64>,
    /// Requests with no price (a model missing from the price table).
    pub unpriced: u64,
}

impl Totals {
    fn add(&mut self, o: &Totals) {
        self.requests += o.requests;
        self.errors += o.errors;
        self.input_uncached += o.input_uncached;
        self.cache_read += o.cache_read;
        self.cache_write += o.cache_write;
        self.output += o.output;
        self.reasoning += o.reasoning;
        self.unpriced += o.unpriced;
        for (c, n) in &o.cost_nanos {
            let sum = self.cost_nanos.entry(c.clone()).or_default();
            *sum = sum.saturating_add(*n);
        }
    }
}

/// One group's value of one grouping.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum GroupValue {
    /// A provider, model or key name; none for rows without one (a
    /// request refused before it had a key or a model).
    Name(Option<String>),
    /// `2026-12-03`, in the zone's calendar.
    Day(String),
    /// The hour's start, Unix ms.
    Hour(i64),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// One per grouping, in the query's order.
    pub keys: Vec<GroupValue>,
    pub totals: Totals,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    pub totals: Totals,
    /// Ordered by their keys (days and hours in time order).
    pub groups: Vec<Group>,
}

/// A stored row and its position in the history.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredUsage {
    pub cursor: Cursor,
    pub row: UsageRow,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    pub rows: Vec<StoredUsage>,
    /// Where the next page starts; none when this one is the last.
    pub next: Option<Cursor>,
}

/// One day of `zone` cut to a range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaySlice {
    pub label: String,
    pub from_ms: i64,
    pub to_ms: i64,
}

/// The days of `zone` that `[from_ms, to_ms)` touches, each cut to the
/// range. Days are found by the zone's rules, so a daylight-saving day is
/// its real 23 or 25 hours.
pub fn day_slices(zone: &TimeZone, from_ms: i64, to_ms: i64) -> Vec<DaySlice> {
    let mut out = Vec::new();
    let mut t = from_ms.max(0);
    while t < to_ms {
        let span = day_of(zone, u64::try_from(t).unwrap_or(0));
        let end = i64::try_from(span.end_ms).unwrap_or(i64::MAX);
        out.push(DaySlice {
            label: format!(
                "{:04}-{:02}-{:02}",
                span.id / 10_000,
                span.id / 100 % 100,
                span.id % 100
            ),
            from_ms: t,
            to_ms: end.min(to_ms),
        });
        if end <= t {
            break; // cannot happen; never loop forever on it
        }
        t = end;
    }
    out
}

/// Totals of `q`, overall and per group.
pub(crate) async fn summarize<R: UsageReader>(
    db: &R,
    q: &SummaryQuery,
) -> Result<Summary, StoreError> {
    let columns: Vec<GroupBy> = q
        .group_by
        .iter()
        .copied()
        .filter(|g| *g != GroupBy::Day)
        .collect();
    let mut groups: BTreeMap<Vec<GroupValue>, Totals> = BTreeMap::new();
    if q.group_by.contains(&GroupBy::Day) {
        // One query per day, each on its own slice of the ts index; the
        // days are those between the first and the last matching row,
        // not every day of a wide range.
        let rows = db.fetch(&extent_sql(&q.filter)).await?;
        let extent = match rows.first() {
            Some(r) => (r.int(0)?, r.int(1)?),
            None => (None, None),
        };
        if let (Some(first), Some(last)) = extent {
            let from = q.filter.from_ms.max(first);
            let to = q.filter.to_ms.min(last.saturating_add(1));
            for day in day_slices(&q.zone, from, to) {
                let mut f = q.filter.clone();
                f.from_ms = day.from_ms;
                f.to_ms = day.to_ms;
                let rows = db.fetch(&summary_sql(&f, &columns)).await?;
                collect(&rows, q, &columns, Some(&day.label), &mut groups)?;
            }
        }
    } else {
        let rows = db.fetch(&summary_sql(&q.filter, &columns)).await?;
        collect(&rows, q, &columns, None, &mut groups)?;
    }
    let mut summary = Summary::default();
    for (keys, totals) in groups {
        summary.totals.add(&totals);
        summary.groups.push(Group { keys, totals });
    }
    Ok(summary)
}

/// Folds summary rows (one per group and currency) into `groups`.
fn collect<C: ReadColumns>(
    rows: &[C],
    q: &SummaryQuery,
    columns: &[GroupBy],
    day: Option<&str>,
    groups: &mut BTreeMap<Vec<GroupValue>, Totals>,
) -> Result<(), StoreError> {
    for row in rows {
        let mut keys = Vec::with_capacity(q.group_by.len());
        let mut col = 0;
        for g in &q.group_by {
            keys.push(match g {
                GroupBy::Day => GroupValue::Day(day.unwrap_or_default().to_owned()),
                GroupBy::Hour => {
                    col += 1;
                    GroupValue::Hour(row.int(col - 1)?.unwrap_or(0))
                }
                GroupBy::Provider | GroupBy::Model | GroupBy::Key => {
                    col += 1;
                    GroupValue::Name(row.text(col - 1)?)
                }
            });
        }
        debug_assert_eq!(col, columns.len());
        let currency = row.text(col)?;
        let n = |i: usize| -> Result<u64, StoreError> {
            Ok(u64::try_from(row.int(col + 1 + i)?.unwrap_or(0)).unwrap_or(0))
        };
        let priced = n(SUM_COLUMNS - 1)?;
        let mut t = Totals {
            requests: n(0)?,
            errors: n(1)?,
            input_uncached: n(2)?,
            cache_read: n(3)?,
            cache_write: n(4)?,
            output: n(5)?,
            reasoning: n(6)?,
            cost_nanos: BTreeMap::new(),
            unpriced: 0,
        };
        t.unpriced = t.requests.saturating_sub(priced);
        if let (Some(c), true) = (currency, priced > 0) {
            t.cost_nanos.insert(c, row.int(col + 1 + 7)?.unwrap_or(0));
        }
        groups.entry(keys).or_default().add(&t);
    }
    Ok(())
}

/// Up to `limit` rows after `after`, newest first, and where the next
/// page starts.
pub(crate) async fn page<R: UsageReader>(
    db: &R,
    filter: &UsageFilter,
    after: Option<Cursor>,
    limit: u32,
) -> Result<Page, StoreError> {
    let limit = limit.max(1);
    // One more than asked tells whether another page exists.
    let rows = db.fetch(&page_sql(filter, after, limit + 1)).await?;
    let mut out = rows.iter().map(read_row).collect::<Result<Vec<_>, _>>()?;
    let more = out.len() > limit as usize;
    out.truncate(limit as usize);
    let next = if more {
        out.last().map(|r| r.cursor)
    } else {
        None
    };
    Ok(Page { rows: out, next })
}

/// Up to `limit` sessions of `filter` after `after`, newest last use
/// first, each with its costs per currency.
pub(crate) async fn sessions<R: UsageReader>(
    db: &R,
    filter: &UsageFilter,
    after: Option<&SessionCursor>,
    limit: u32,
) -> Result<SessionPage, StoreError> {
    let limit = limit.max(1);
    let rows = db.fetch(&sessions_sql(filter, after, limit + 1)).await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        let n = |i: usize| -> Result<u64, StoreError> {
            Ok(u64::try_from(r.int(i)?.unwrap_or(0)).unwrap_or(0))
        };
        let requests = n(4)?;
        out.push(SessionTotals {
            session: r.text(0)?.unwrap_or_default(),
            key: r.text(1)?,
            first_ms: r.int(2)?.unwrap_or(0),
            last_ms: r.int(3)?.unwrap_or(0),
            totals: Totals {
                requests,
                errors: n(5)?,
                input_uncached: n(6)?,
                cache_read: n(7)?,
                cache_write: n(8)?,
                output: n(9)?,
                reasoning: n(10)?,
                cost_nanos: BTreeMap::new(),
                // Less the priced ones, below.
                unpriced: requests,
            },
        });
    }
    let more = out.len() > limit as usize;
    out.truncate(limit as usize);
    if !out.is_empty() {
        let mut ids: Vec<String> = out.iter().map(|s| s.session.clone()).collect();
        ids.sort();
        ids.dedup();
        for r in db.fetch(&session_costs_sql(filter, &ids)).await? {
            let (id, key, currency) = (r.text(0)?, r.text(1)?, r.text(2)?);
            let nanos = r.int(3)?.unwrap_or(0);
            let priced = u64::try_from(r.int(4)?.unwrap_or(0)).unwrap_or(0);
            let found = out
                .iter_mut()
                .find(|s| Some(&s.session) == id.as_ref() && s.key == key);
            if let Some(s) = found {
                s.totals.unpriced = s.totals.unpriced.saturating_sub(priced);
                if let Some(c) = currency {
                    let sum = s.totals.cost_nanos.entry(c).or_default();
                    *sum = sum.saturating_add(nanos);
                }
            }
        }
    }
    let next = if more {
        out.last().map(|s| SessionCursor {
            last_ms: s.last_ms,
            session: s.session.clone(),
            key: s.key.clone().unwrap_or_default(),
        })
    } else {
        None
    };
    Ok(SessionPage {
        sessions: out,
        next,
    })
}

/// The row of request `request_id`, if stored.
pub(crate) async fn by_request<R: UsageReader>(
    db: &R,
    request_id: &str,
) -> Result<Option<StoredUsage>, StoreError> {
    let rows = db.fetch(&request_sql(request_id)).await?;
    rows.first().map(read_row).transpose()
}

fn read_row<C: ReadColumns>(r: &C) -> Result<StoredUsage, StoreError> {
    let missing = |what: &str| StoreError::Backend(format!("usage row without {what}"));
    let count = |i: usize| -> Result<u64, StoreError> {
        Ok(u64::try_from(r.int(i)?.unwrap_or(0)).unwrap_or(0))
    };
    let id = r.int(0)?.ok_or_else(|| missing("id"))?;
    let ts = r.int(1)?.ok_or_else(|| missing("ts"))?;
    let row = UsageRow {
        ts,
        request_id: r.text(2)?.ok_or_else(|| missing("request_id"))?,
        key_name: r.text(3)?,
        dialect: r.text(4)?,
        endpoint: r.text(5)?.unwrap_or_default(),
        model: r.text(6)?,
        provider: r.text(7)?,
        upstream_model: r.text(8)?,
        attempts: r.text(9)?.unwrap_or_else(|| "[]".to_owned()),
        status: u16::try_from(r.int(10)?.unwrap_or(0)).unwrap_or(0),
        stream: r.flag(11)?,
        input_uncached: count(12)?,
        cache_read: count(13)?,
        cache_write: count(14)?,
        output: count(15)?,
        reasoning: count(16)?,
        cost_nanos: r.int(17)?,
        currency: r.text(18)?,
        latency_ms: r.real(19)?.unwrap_or(0.0),
        ttfb_ms: r.real(20)?,
        overhead_ms: r.real(21)?,
        bytes_in: r.int(22)?.and_then(|n| u64::try_from(n).ok()),
        bytes_out: r.int(23)?.and_then(|n| u64::try_from(n).ok()),
        client_addr: r.text(24)?,
        user_agent: r.text(25)?,
        session_id: r.text(26)?,
        error: r.text(27)?,
        routed_model: r.text(28)?,
        routed_by: r.text(29)?,
        scene: r.text(30)?,
    };
    Ok(StoredUsage {
        cursor: Cursor { ts, id },
        row,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter() -> UsageFilter {
        UsageFilter::between(1_000, 2_000)
    }

    /// Every `$N` in the text, in order of appearance.
    fn placeholders(sql: &Sql) -> Vec<usize> {
        let t = sql.text.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < t.len() {
            if t[i] == b'$' {
                let digits: String = sql.text[i + 1..]
                    .chars()
                    .take_while(char::is_ascii_digit)
                    .collect();
                out.push(digits.parse().unwrap());
                i += digits.len();
            }
            i += 1;
        }
        out
    }

    #[test]
    fn every_value_is_bound_and_every_placeholder_has_one() {
        let mut f = filter();
        f.key = Some("k' OR 1=1 --".into());
        f.model = Some("m".into());
        f.provider = Some("p".into());
        f.status = Some(StatusFilter::Class(4));
        let cursor = Cursor { ts: 1_500, id: 7 };
        for sql in [
            summary_sql(&f, &[GroupBy::Provider, GroupBy::Hour]),
            extent_sql(&f),
            page_sql(&f, Some(cursor), 10),
            request_sql("req_1"),
            sessions_sql(
                &f,
                Some(&SessionCursor {
                    last_ms: 1_500,
                    session: "s' --".into(),
                    key: "k".into(),
                }),
                10,
            ),
            session_costs_sql(&f, &["a".into(), "b".into()]),
        ] {
            assert!(!sql.text.contains("OR 1=1"), "{}", sql.text);
            assert!(!sql.text.contains('?'), "{}", sql.text);
            let used = placeholders(&sql);
            let max = used.iter().copied().max().unwrap();
            assert_eq!(max, sql.binds.len(), "{}", sql.text);
            for n in 1..=max {
                assert!(used.contains(&n), "${n} unused in {}", sql.text);
            }
        }
        let sql = page_sql(&f, Some(cursor), 10);
        assert_eq!(
            sql.binds,
            vec![
                Bind::Int(1_000),
                Bind::Int(2_000),
                Bind::Text("k' OR 1=1 --".into()),
                Bind::Text("m".into()),
                Bind::Text("p".into()),
                Bind::Int(400),
                Bind::Int(500),
                Bind::Int(1_500),
                Bind::Int(7),
                Bind::Int(10),
            ]
        );
        assert!(sql.text.contains("(ts < $8 OR (ts = $8 AND id < $9))"));
        assert!(sql.text.ends_with("ORDER BY ts DESC, id DESC LIMIT $10"));
    }

    #[test]
    fn summaries_group_by_position_and_leave_the_day_out() {
        let sql = summary_sql(&filter(), &[GroupBy::Key, GroupBy::Hour]);
        assert!(sql.text.starts_with(
            "SELECT key_name, CAST((ts / 3600000) * 3600000 AS BIGINT), currency, CAST(COUNT(*)"
        ));
        assert!(sql.text.ends_with(" GROUP BY 1, 2, 3"), "{}", sql.text);
        let sql = summary_sql(&filter(), &[]);
        assert!(sql.text.starts_with("SELECT currency, "));
        assert!(sql.text.ends_with(" GROUP BY 1"));
        // No engine-only function, every sum a BIGINT.
        for f in ["ifnull", "strftime", "julianday", "date(", "iif("] {
            assert!(!sql.text.to_lowercase().contains(f), "{f}");
        }
        assert_eq!(sql.text.matches("AS BIGINT)").count(), SUM_COLUMNS);
    }

    #[test]
    fn statuses_parse() {
        assert_eq!(StatusFilter::parse("429"), Some(StatusFilter::Code(429)));
        assert_eq!(StatusFilter::parse("5xx"), Some(StatusFilter::Class(5)));
        assert_eq!(StatusFilter::parse("4XX"), Some(StatusFilter::Class(4)));
        assert_eq!(StatusFilter::parse("error"), Some(StatusFilter::Error));
        assert_eq!(StatusFilter::parse("ok"), Some(StatusFilter::Ok));
        for s in ["429", "5xx", "ok", "error"] {
            assert_eq!(StatusFilter::parse(s).unwrap().name(), s);
        }
        for bad in ["", "6xx", "0xx", "99", "600", "abc", "2x"] {
            assert_eq!(StatusFilter::parse(bad), None, "{bad}");
        }
        let mut f = filter();
        f.status = Some(StatusFilter::Error);
        assert!(page_sql(&f, None, 1)
            .text
            .contains(&format!("AND {IS_ERROR}")));
        f.status = Some(StatusFilter::Ok);
        assert!(page_sql(&f, None, 1)
            .text
            .contains(&format!("AND NOT {IS_ERROR}")));
    }

    #[test]
    fn cursors_round_trip_and_refuse_garbage() {
        for c in [
            Cursor { ts: 0, id: 0 },
            Cursor {
                ts: 1_764_750_000_123,
                id: 42,
            },
            Cursor {
                ts: i64::MAX,
                id: i64::MIN,
            },
        ] {
            let s = c.encode();
            assert_eq!(s.len(), 32);
            assert_eq!(Cursor::decode(&s), Some(c));
        }
        for bad in ["", "zz", &"g".repeat(32), &"0".repeat(31), &"0".repeat(33)] {
            assert_eq!(Cursor::decode(bad), None, "{bad}");
        }
    }

    #[test]
    fn session_cursors_round_trip_and_refuse_garbage() {
        for c in [
            SessionCursor {
                last_ms: 1_764_750_000_123,
                session: "abc-123".into(),
                key: "alice".into(),
            },
            SessionCursor {
                last_ms: i64::MIN,
                session: "x".into(),
                key: String::new(),
            },
        ] {
            let s = c.encode();
            assert!(s.bytes().all(|b| b.is_ascii_hexdigit() || b == b'.'));
            assert_eq!(SessionCursor::decode(&s), Some(c));
        }
        for bad in [
            "",
            "zz",
            "00.00.00",
            &format!("{}.zz.00", "0".repeat(16)),
            "0000000000000000.61",
        ] {
            assert_eq!(SessionCursor::decode(bad), None, "{bad}");
        }
        let none = SessionTotals {
            session: "s".into(),
            key: None,
            first_ms: 0,
            last_ms: 0,
            totals: Totals::default(),
        };
        assert_eq!(none.cache_hit_ratio(), None);
    }

    fn ms(s: &str) -> i64 {
        s.parse::<jiff::Timestamp>().unwrap().as_millisecond()
    }

    #[test]
    fn day_slices_follow_the_zone_and_cut_to_the_range() {
        let shanghai = filters::limits::day::zone("Asia/Shanghai").unwrap();
        let days = day_slices(
            &shanghai,
            ms("2026-12-03T10:00:00Z"),
            ms("2026-12-05T01:00:00Z"),
        );
        let labels: Vec<&str> = days.iter().map(|d| d.label.as_str()).collect();
        assert_eq!(labels, ["2026-12-03", "2026-12-04", "2026-12-05"]);
        assert_eq!(days[0].from_ms, ms("2026-12-03T10:00:00Z"));
        // Shanghai's midnight is 16:00 UTC.
        assert_eq!(days[0].to_ms, ms("2026-12-03T16:00:00Z"));
        assert_eq!(days[1].from_ms, days[0].to_ms);
        assert_eq!(days[1].to_ms, ms("2026-12-04T16:00:00Z"));
        assert_eq!(days[2].to_ms, ms("2026-12-05T01:00:00Z"));
        // India is 5:30 ahead: a UTC hour is cut in two at its midnight.
        let kolkata = filters::limits::day::zone("Asia/Kolkata").unwrap();
        let days = day_slices(
            &kolkata,
            ms("2026-12-03T18:00:00Z"),
            ms("2026-12-03T19:00:00Z"),
        );
        assert_eq!(days.len(), 2);
        assert_eq!(days[0].to_ms, ms("2026-12-03T18:30:00Z"));
        assert_eq!(days[1].label, "2026-12-04");
        // A 25-hour day in New York stays one day.
        let ny = filters::limits::day::zone("America/New_York").unwrap();
        let days = day_slices(&ny, ms("2026-11-01T04:00:00Z"), ms("2026-11-02T05:00:00Z"));
        assert_eq!(days.len(), 1);
        assert_eq!(days[0].to_ms - days[0].from_ms, 25 * 3_600_000);
        assert!(day_slices(&ny, 5, 5).is_empty());
    }
}
