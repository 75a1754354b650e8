//! The admin API's usage read side (`/api/usage…`): totals over a time
//! range grouped for drill-down, the call history a page at a time, one
//! request's row, the agent sessions (`/api/usage/sessions[/{id}]`) and a
//! CSV export streamed page by page.
//!
//! Admin and viewer keys read every row; a `user` key reads its own rows
//! only — its key filter is forced to itself, and asking for another key
//! is refused rather than answered with nothing. The localhost key never
//! reads here (as for every admin path).

use crate::record::RequestRecord;
use crate::state::Live;
use crate::store::usage_query::{
    Cursor, GroupBy, GroupValue, SessionCursor, SessionTotals, StatusFilter, StoredUsage, Summary,
    SummaryQuery, Totals, UsageFilter, DEFAULT_PAGE, MAX_PAGE,
};
use crate::store::{KeyStore, StoreError};
use crate::usage::UsageRow;
use filters::auth::Role;
use filters::error::{ApiError, ErrorKind};
use pingora::http::ResponseHeader;
use pingora::proxy::Session;
use serde_json::{json, Map, Value};

/// The range when none is given.
const DEFAULT_RANGE_MS: i64 = 24 * 3_600_000;
/// Rows per page of an export: one store request and one chunk each.
const EXPORT_PAGE: u32 = 1_000;

const FILTERS: [&str; 7] = [
    "from", "to", "key", "model", "provider", "status", "session",
];
const PAGING: [&str; 2] = ["limit", "cursor"];

/// Whose rows the caller may read.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Scope {
    All,
    Own(String),
}

fn scope(caller: &crate::admin::auth::Caller) -> Result<Scope, ApiError> {
    if caller.can_view() {
        Ok(Scope::All)
    } else if caller.has_role(Role::User) {
        Ok(Scope::Own(caller.name.clone()))
    } else {
        Err(ApiError::new(
            ErrorKind::PermissionDenied,
            "the admin, viewer or user role is required",
        ))
    }
}

/// `/api/usage`, `/api/usage/requests[/{request_id}]`,
/// `/api/usage/sessions[/{session_id}]`, `/api/usage/export`.
/// `store` is none unless usage rows are recorded.
pub async fn usage(
    plane: &crate::admin::AdminPlane,
    session: &mut Session,
    rec: &mut RequestRecord,
    live: &Live,
    store: Option<&KeyStore>,
) -> Result<(), ApiError> {
    let caller = crate::admin::auth::caller(plane, live, session, rec).await?;
    let req = session.req_header();
    let method = req.method.clone();
    let path = req.uri.path().to_owned();
    let query = req.uri.query().unwrap_or("").to_owned();
    if method != http::Method::GET && method != http::Method::HEAD {
        return Err(super::not_allowed(&method, &path));
    }
    let scope = scope(&caller)?;
    let store = store.ok_or_else(|| {
        ApiError::invalid(
            "usage recording is off: set [storage] record_usage = true to record and read usage",
        )
        .with_status(409)
    })?;
    let rest = path.strip_prefix("/api/usage").unwrap_or_default();
    let segments: Vec<String> = rest
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| {
            filters::wire::http::percent_decode(s)
                .ok_or_else(|| ApiError::invalid(format!("{path}: not a valid path")))
        })
        .collect::<Result<_, _>>()?;
    let now = i64::try_from(crate::usage::row::unix_ms()).unwrap_or(i64::MAX);
    match segments.as_slice() {
        [] => {
            let p = Params::parse(&query, &[&FILTERS[..], &["group_by"]].concat())?;
            let v = summary(live, store, &p, &scope, now).await?;
            super::send_json(session, rec, 200, &v).await
        }
        [requests] if requests == "requests" => {
            let p = Params::parse(&query, &[&FILTERS[..], &PAGING[..]].concat())?;
            let filter = filter(&p, &scope, now)?;
            let v = history(store, &p, filter).await?;
            super::send_json(session, rec, 200, &v).await
        }
        [sessions] if sessions == "sessions" => {
            let p = Params::parse(&query, &[&FILTERS[..], &PAGING[..]].concat())?;
            let v = session_list(store, &p, &scope, now).await?;
            super::send_json(session, rec, 200, &v).await
        }
        [sessions, id] if sessions == "sessions" => {
            let p = Params::parse(&query, &["from", "to", "key", "limit", "cursor"])?;
            let mut filter = filter(&p, &scope, now)?;
            // A session's requests from its start, unless a range is asked.
            if p.get("from").is_none() {
                filter.from_ms = 0;
            }
            filter.session = Some(id.clone());
            let mut v = history(store, &p, filter).await?;
            // Another key's session is as absent as a missing one.
            let empty = v["data"].as_array().is_none_or(Vec::is_empty);
            if empty && p.get("cursor").is_none() {
                return Err(ApiError::new(
                    ErrorKind::NotFound,
                    format!("no requests of session '{id}'"),
                ));
            }
            v["session_id"] = json!(id);
            super::send_json(session, rec, 200, &v).await
        }
        [requests, id] if requests == "requests" => {
            Params::parse(&query, &[])?;
            let found = store.usage_by_request(id).await.map_err(store_error)?;
            // Another key's row is as absent as a missing one: a user key
            // learns nothing of other keys' request ids.
            match found.filter(|r| visible(&scope, &r.row)) {
                Some(StoredUsage { row, .. }) => {
                    super::send_json(session, rec, 200, &row_json(&row)).await
                }
                None => Err(ApiError::new(
                    ErrorKind::NotFound,
                    format!("no usage row for request '{id}'"),
                )),
            }
        }
        [export] if export == "export" => {
            let p = Params::parse(&query, &FILTERS)?;
            let filter = filter(&p, &scope, now)?;
            export_csv(session, rec, live, store, filter).await
        }
        _ => Err(super::no_route(&path)),
    }
}

/// `GET /api/usage`: totals, overall and per group.
async fn summary(
    live: &Live,
    store: &KeyStore,
    p: &Params,
    scope: &Scope,
    now: i64,
) -> Result<Value, ApiError> {
    let filter = filter(p, scope, now)?;
    let group_by = group_by(p.get("group_by"))?;
    let summary = store
        .usage_summary(SummaryQuery {
            filter: filter.clone(),
            group_by: group_by.clone(),
            zone: live.config.limits.timezone.clone(),
        })
        .await
        .map_err(store_error)?;
    Ok(summary_json(
        &summary,
        &filter,
        &group_by,
        &live.config.limits.timezone_name,
    ))
}

/// `GET /api/usage/sessions`: one page of agent sessions, newest last
/// use first, each with its tokens, cost and cache-hit ratio.
async fn session_list(
    store: &KeyStore,
    p: &Params,
    scope: &Scope,
    now: i64,
) -> Result<Value, ApiError> {
    let filter = filter(p, scope, now)?;
    let limit = limit(p)?;
    let after = match p.get("cursor") {
        None => None,
        Some(c) => Some(SessionCursor::decode(c).ok_or_else(|| {
            bad(
                "cursor",
                "not a cursor this API gave out (next_cursor)".into(),
            )
        })?),
    };
    let page = store
        .usage_sessions(filter.clone(), after, limit)
        .await
        .map_err(store_error)?;
    let data: Vec<Value> = page.sessions.iter().map(session_json).collect();
    Ok(json!({
        "object": "list",
        "from": rfc3339_ms(filter.from_ms),
        "to": rfc3339_ms(filter.to_ms),
        // What was applied: a user key sees its key here.
        "filters": { "key": filter.key },
        "data": data,
        "has_more": page.next.is_some(),
        "next_cursor": page.next.map(|c| c.encode()),
    }))
}

fn session_json(s: &SessionTotals) -> Value {
    let mut m = Map::new();
    m.insert("session_id".into(), json!(s.session));
    m.insert("key".into(), json!(s.key));
    m.insert("first_seen".into(), json!(rfc3339_ms(s.first_ms)));
    m.insert("last_seen".into(), json!(rfc3339_ms(s.last_ms)));
    // Unix ms as well, as a row's `ts` beside its `time`.
    m.insert("first_ts".into(), json!(s.first_ms));
    m.insert("last_ts".into(), json!(s.last_ms));
    totals_json(&s.totals, &mut m);
    m.insert("cache_hit_ratio".into(), json!(s.cache_hit_ratio()));
    Value::Object(m)
}

fn limit(p: &Params) -> Result<u32, ApiError> {
    match p.get("limit") {
        None => Ok(DEFAULT_PAGE),
        Some(v) => v
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=MAX_PAGE).contains(n))
            .ok_or_else(|| {
                bad(
                    "limit",
                    format!("must be a whole number from 1 to {MAX_PAGE}"),
                )
            }),
    }
}

/// `GET /api/usage/requests`: one page of the history, newest first.
async fn history(store: &KeyStore, p: &Params, filter: UsageFilter) -> Result<Value, ApiError> {
    let limit = limit(p)?;
    let after = match p.get("cursor") {
        None => None,
        Some(c) => Some(Cursor::decode(c).ok_or_else(|| {
            bad(
                "cursor",
                "not a cursor this API gave out (next_cursor)".into(),
            )
        })?),
    };
    let page = store
        .usage_page(filter, after, limit)
        .await
        .map_err(store_error)?;
    let data: Vec<Value> = page.rows.iter().map(|r| row_json(&r.row)).collect();
    Ok(json!({
        "object": "list",
        "data": data,
        "has_more": page.next.is_some(),
        "next_cursor": page.next.map(|c| c.encode()),
    }))
}

fn visible(scope: &Scope, row: &UsageRow) -> bool {
    match scope {
        Scope::All => true,
        Scope::Own(name) => row.key_name.as_deref() == Some(name.as_str()),
    }
}

fn bad(param: &str, why: String) -> ApiError {
    ApiError::invalid(format!("{param}: {why}")).with_param(param)
}

fn store_error(e: StoreError) -> ApiError {
    log::warn!("usage store: {e}");
    ApiError::new(
        ErrorKind::Api,
        "the usage store failed; see the gateway's log",
    )
}

/// The query string's parameters, percent-decoded. An unknown name or a
/// name given twice is refused (a misspelt filter would otherwise widen
/// the answer silently); an empty value counts as absent, as forms send.
#[derive(Debug, Default)]
struct Params(Vec<(String, String)>);

impl Params {
    fn parse(query: &str, allowed: &[&str]) -> Result<Self, ApiError> {
        let mut out: Vec<(String, String)> = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let decode = |s: &str| filters::wire::http::percent_decode(&s.replace('+', " "));
            let name =
                decode(k).ok_or_else(|| ApiError::invalid("the query string is not valid"))?;
            if !allowed.contains(&name.as_str()) {
                let known = if allowed.is_empty() {
                    "none is taken here".to_owned()
                } else {
                    format!("known: {}", allowed.join(", "))
                };
                return Err(bad(&name, format!("unknown parameter ({known})")));
            }
            let value = decode(v).ok_or_else(|| bad(&name, "not valid percent-encoding".into()))?;
            if out.iter().any(|(n, _)| *n == name) {
                return Err(bad(&name, "given more than once".into()));
            }
            if !value.is_empty() {
                out.push((name, value));
            }
        }
        Ok(Self(out))
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// RFC 3339 (`2026-12-03T08:00:00Z`, any offset), or a Unix time: seconds
/// below 10^11 (until the year 5138), milliseconds from there — the rule
/// `/api/logs` and `/api/conversations` follow, so one number means one
/// moment everywhere.
fn parse_time(name: &str, v: &str) -> Result<i64, ApiError> {
    if !v.is_empty() && v.len() <= 16 && v.bytes().all(|b| b.is_ascii_digit()) {
        let n: i64 = v.parse().map_err(|_| bad(name, "not a time".into()))?;
        return Ok(if n < 100_000_000_000 { n * 1000 } else { n });
    }
    v.parse::<jiff::Timestamp>()
        .map(|t| t.as_millisecond())
        .map_err(|_| {
            let shown: String = v.chars().take(64).collect();
            bad(
                name,
                format!(
                    "'{shown}' is neither RFC 3339 (2026-12-03T08:00:00Z) nor Unix seconds or milliseconds"
                ),
            )
        })
}

/// The rows a request asks for: by default the last 24 hours.
fn filter(p: &Params, scope: &Scope, now_ms: i64) -> Result<UsageFilter, ApiError> {
    let to = p.get("to").map(|v| parse_time("to", v)).transpose()?;
    let from = p.get("from").map(|v| parse_time("from", v)).transpose()?;
    let to = to.unwrap_or(now_ms);
    let from = from.unwrap_or(to.saturating_sub(DEFAULT_RANGE_MS));
    if from >= to {
        return Err(bad("from", "must be before to".into()));
    }
    let mut f = UsageFilter::between(from, to);
    f.key = p.get("key").map(str::to_owned);
    if let Scope::Own(own) = scope {
        if f.key.as_ref().is_some_and(|k| k != own) {
            return Err(ApiError::new(
                ErrorKind::PermissionDenied,
                format!("a user key reads only its own usage (key '{own}')"),
            )
            .with_param("key"));
        }
        f.key = Some(own.clone());
    }
    f.model = p.get("model").map(str::to_owned);
    f.provider = p.get("provider").map(str::to_owned);
    f.session = p.get("session").map(str::to_owned);
    f.status = p
        .get("status")
        .map(|s| {
            StatusFilter::parse(s).ok_or_else(|| {
                bad(
                    "status",
                    "a status code (429), a class (4xx), 'ok' or 'error'".into(),
                )
            })
        })
        .transpose()?;
    Ok(f)
}

fn group_by(v: Option<&str>) -> Result<Vec<GroupBy>, ApiError> {
    let mut out = Vec::new();
    for name in v
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        let g = GroupBy::parse(name).ok_or_else(|| {
            bad(
                "group_by",
                format!("'{name}' is not one of provider, model, key, day, hour"),
            )
        })?;
        if out.contains(&g) {
            return Err(bad("group_by", format!("'{name}' is given twice")));
        }
        out.push(g);
    }
    Ok(out)
}

/// Unix ms as RFC 3339 (milliseconds shown when there are any).
fn rfc3339_ms(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms).map_or_else(|_| ms.to_string(), |t| t.to_string())
}

/// Nanos as an exact decimal amount: `0.000123`.
fn decimal(nanos: i64) -> String {
    let sign = if nanos < 0 { "-" } else { "" };
    let n = nanos.unsigned_abs();
    let (whole, frac) = (n / 1_000_000_000, n % 1_000_000_000);
    if frac == 0 {
        format!("{sign}{whole}")
    } else {
        let frac = format!("{frac:09}");
        format!("{sign}{whole}.{}", frac.trim_end_matches('0'))
    }
}

fn totals_json(t: &Totals, into: &mut Map<String, Value>) {
    into.insert("requests".into(), json!(t.requests));
    into.insert("errors".into(), json!(t.errors));
    into.insert("input_uncached".into(), json!(t.input_uncached));
    into.insert("cache_read".into(), json!(t.cache_read));
    into.insert("cache_write".into(), json!(t.cache_write));
    into.insert(
        "input".into(),
        json!(t.input_uncached + t.cache_read + t.cache_write),
    );
    into.insert("output".into(), json!(t.output));
    into.insert("reasoning".into(), json!(t.reasoning));
    // Exact decimals per currency; the integer nanos beside them.
    let cost: Map<String, Value> = t
        .cost_nanos
        .iter()
        .map(|(c, n)| (c.clone(), json!(decimal(*n))))
        .collect();
    into.insert("cost".into(), Value::Object(cost));
    into.insert("cost_nanos".into(), json!(t.cost_nanos));
    into.insert("unpriced".into(), json!(t.unpriced));
}

fn summary_json(s: &Summary, f: &UsageFilter, group_by: &[GroupBy], zone: &str) -> Value {
    let mut totals = Map::new();
    totals_json(&s.totals, &mut totals);
    let groups: Vec<Value> = s
        .groups
        .iter()
        .map(|g| {
            let mut m = Map::new();
            for (by, value) in group_by.iter().zip(&g.keys) {
                let v = match value {
                    GroupValue::Name(n) => json!(n),
                    GroupValue::Day(d) => json!(d),
                    GroupValue::Hour(ms) => json!(rfc3339_ms(*ms)),
                };
                m.insert(by.name().into(), v);
            }
            totals_json(&g.totals, &mut m);
            Value::Object(m)
        })
        .collect();
    json!({
        "object": "usage.summary",
        "from": rfc3339_ms(f.from_ms),
        "to": rfc3339_ms(f.to_ms),
        "timezone": zone,
        // What was applied: a user key sees its key here.
        "filters": {
            "key": f.key,
            "model": f.model,
            "provider": f.provider,
            "status": f.status.map(StatusFilter::name),
        },
        "group_by": group_by.iter().map(|g| g.name()).collect::<Vec<_>>(),
        "totals": totals,
        "groups": groups,
    })
}

/// Every field of the row; `attempts` as JSON, `time` and `cost` added.
fn row_json(row: &UsageRow) -> Value {
    let mut m = match serde_json::to_value(row) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    };
    if let Ok(attempts) = serde_json::from_str::<Value>(&row.attempts) {
        m.insert("attempts".into(), attempts);
    }
    m.insert("time".into(), json!(rfc3339_ms(row.ts)));
    m.insert("cost".into(), json!(row.cost_nanos.map(decimal)));
    Value::Object(m)
}

// ---------------------------------------------------------------------------
// CSV (RFC 4180)

const CSV_HEADER: &str = "time,ts,request_id,key_name,dialect,endpoint,model,provider,\
upstream_model,status,stream,input_uncached,cache_read,cache_write,output,reasoning,cost,\
currency,latency_ms,ttfb_ms,overhead_ms,bytes_in,bytes_out,client_addr,user_agent,\
session_id,error,attempts,routed_model,routed_by,scene\r\n";

/// One text cell: quoted when it holds a comma, a quote or a line break
/// (quotes doubled). A cell a spreadsheet would run as a formula (`=`,
/// `+`, `-`, `@`, a tab or CR first) gets a leading `'`: model names,
/// user agents and errors come from clients.
fn csv_text(out: &mut String, s: &str) {
    let formula = s
        .chars()
        .next()
        .is_some_and(|c| matches!(c, '=' | '+' | '-' | '@' | '\t' | '\r'));
    let quote = formula || s.contains([',', '"', '\r', '\n']);
    if quote {
        out.push('"');
    }
    if formula {
        out.push('\'');
    }
    for c in s.chars() {
        if c == '"' {
            out.push('"');
        }
        out.push(c);
    }
    if quote {
        out.push('"');
    }
}

fn csv_row(out: &mut String, r: &UsageRow) {
    use std::fmt::Write;
    let text = |out: &mut String, s: Option<&str>| {
        if let Some(s) = s {
            csv_text(out, s);
        }
        out.push(',');
    };
    let num = |out: &mut String, n: Option<String>| {
        if let Some(n) = n {
            out.push_str(&n);
        }
        out.push(',');
    };
    text(out, Some(&rfc3339_ms(r.ts)));
    num(out, Some(r.ts.to_string()));
    text(out, Some(&r.request_id));
    text(out, r.key_name.as_deref());
    text(out, r.dialect.as_deref());
    text(out, Some(&r.endpoint));
    text(out, r.model.as_deref());
    text(out, r.provider.as_deref());
    text(out, r.upstream_model.as_deref());
    num(out, Some(r.status.to_string()));
    num(out, Some(r.stream.to_string()));
    // Writing to a String cannot fail.
    let _ = write!(
        out,
        "{},{},{},{},{},",
        r.input_uncached, r.cache_read, r.cache_write, r.output, r.reasoning
    );
    num(out, r.cost_nanos.map(decimal));
    text(out, r.currency.as_deref());
    num(out, Some(r.latency_ms.to_string()));
    num(out, r.ttfb_ms.map(|v| v.to_string()));
    num(out, r.overhead_ms.map(|v| v.to_string()));
    num(out, r.bytes_in.map(|v| v.to_string()));
    num(out, r.bytes_out.map(|v| v.to_string()));
    text(out, r.client_addr.as_deref());
    text(out, r.user_agent.as_deref());
    text(out, r.session_id.as_deref());
    text(out, r.error.as_deref());
    csv_text(out, &r.attempts);
    for s in [&r.routed_model, &r.routed_by, &r.scene] {
        out.push(',');
        if let Some(s) = s {
            csv_text(out, s);
        }
    }
    out.push_str("\r\n");
}

fn compact_time(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms).map_or_else(
        |_| ms.to_string(),
        |t| t.strftime("%Y%m%dT%H%M%SZ").to_string(),
    )
}

/// The rows of `filter` as CSV, newest first, one page of the store at a
/// time: memory holds one page whatever the export's size. The first page
/// is read before the head is sent, so a failing store is still a proper
/// error; a failure after that cuts the connection, so the client sees a
/// truncated body rather than a short file that looks whole.
async fn export_csv(
    session: &mut Session,
    rec: &mut RequestRecord,
    live: &Live,
    store: &KeyStore,
    filter: UsageFilter,
) -> Result<(), ApiError> {
    let mut page = store
        .usage_page(filter.clone(), None, EXPORT_PAGE)
        .await
        .map_err(store_error)?;
    let head_only = session.req_header().method == http::Method::HEAD;
    let name = format!(
        "usage-{}-{}.csv",
        compact_time(filter.from_ms),
        compact_time(filter.to_ms)
    );
    rec.result.status = 200;
    let mut resp = ResponseHeader::build_no_case(200, Some(6))
        .map_err(|e| ApiError::new(ErrorKind::Api, e.to_string()))?;
    let _ = resp.insert_header("content-type", "text/csv; charset=utf-8");
    let _ = resp.insert_header(
        "content-disposition",
        format!("attachment; filename=\"{name}\""),
    );
    let _ = resp.insert_header("cache-control", "no-store");
    if !head_only {
        let _ = resp.insert_header("transfer-encoding", "chunked");
    }
    let _ = resp.insert_header("x-request-id", rec.id.as_str());
    session.set_write_timeout(Some(live.config.downstream.client_write_timeout));
    if session
        .write_response_header(Box::new(resp), head_only)
        .await
        .is_err()
    {
        rec.result.error = Some("client went away".into());
        return Ok(());
    }
    if head_only {
        return Ok(());
    }
    let mut out = String::from(CSV_HEADER);
    loop {
        for r in &page.rows {
            csv_row(&mut out, &r.row);
        }
        let chunk = bytes::Bytes::from(std::mem::take(&mut out));
        if session
            .write_response_body(Some(chunk), false)
            .await
            .is_err()
        {
            rec.result.error = Some("client went away mid-export".into());
            return Ok(());
        }
        let Some(after) = page.next else { break };
        page = match store
            .usage_page(filter.clone(), Some(after), EXPORT_PAGE)
            .await
        {
            Ok(p) => p,
            Err(e) => {
                log::warn!("usage export {}: cut short: {e}", rec.id);
                rec.result.error = Some("the usage store failed mid-export".into());
                session.set_keepalive(None);
                session.as_downstream_mut().shutdown().await;
                return Ok(());
            }
        };
    }
    let _ = session.write_response_body(None, true).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(q: &str) -> Result<Params, ApiError> {
        Params::parse(
            q,
            &[&FILTERS[..], &["group_by", "limit", "cursor"]].concat(),
        )
    }

    #[test]
    fn times_are_rfc3339_or_unix_ms_and_bad_ones_name_their_parameter() {
        assert_eq!(
            parse_time("from", "1764748800000").unwrap(),
            1_764_748_800_000
        );
        assert_eq!(
            parse_time("from", "2025-12-03T08:00:00Z").unwrap(),
            1_764_748_800_000
        );
        assert_eq!(
            parse_time("to", "2025-12-03T16:00:00.5+08:00").unwrap(),
            1_764_748_800_500
        );
        for v in [
            "yesterday",
            "2025-13-01T00:00:00Z",
            "2025-12-03",
            "12345678901234567",
        ] {
            let e = parse_time("from", v).unwrap_err();
            assert_eq!(e.param.as_deref(), Some("from"), "{v}");
            assert_eq!(e.kind, ErrorKind::InvalidRequest);
        }
    }

    #[test]
    fn filters_default_to_the_last_day_and_refuse_what_is_wrong() {
        let now = 1_764_748_800_000;
        let f = filter(&params("").unwrap(), &Scope::All, now).unwrap();
        assert_eq!((f.from_ms, f.to_ms), (now - DEFAULT_RANGE_MS, now));
        // Seconds below 10^11, milliseconds from there.
        let f = filter(
            &params("to=1764748800&model=m%2Bx&provider=p+q&status=5xx&key=").unwrap(),
            &Scope::All,
            now,
        )
        .unwrap();
        assert_eq!((f.from_ms, f.to_ms), (now - DEFAULT_RANGE_MS, now));
        assert_eq!(f.model.as_deref(), Some("m+x"));
        assert_eq!(f.provider.as_deref(), Some("p q"));
        assert_eq!(f.key, None);
        assert_eq!(f.status, Some(StatusFilter::Class(5)));
        let ms = filter(&params("to=1764748800000").unwrap(), &Scope::All, now).unwrap();
        assert_eq!(ms.to_ms, now);
        let e = filter(&params("from=5&to=5").unwrap(), &Scope::All, now).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("from"));
        let e = filter(&params("status=teapot").unwrap(), &Scope::All, now).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("status"));
        assert_eq!(
            params("grup_by=day").unwrap_err().param.as_deref(),
            Some("grup_by")
        );
        assert_eq!(
            params("key=a&key=b").unwrap_err().param.as_deref(),
            Some("key")
        );
        assert_eq!(
            params("model=%FF").unwrap_err().param.as_deref(),
            Some("model")
        );
    }

    #[test]
    fn a_user_key_is_held_to_its_own_rows() {
        let own = Scope::Own("alice".into());
        let f = filter(&params("").unwrap(), &own, 10_000_000_000).unwrap();
        assert_eq!(f.key.as_deref(), Some("alice"));
        let f = filter(&params("key=alice").unwrap(), &own, 10_000_000_000).unwrap();
        assert_eq!(f.key.as_deref(), Some("alice"));
        let e = filter(&params("key=bob").unwrap(), &own, 10_000_000_000).unwrap_err();
        assert_eq!(e.kind, ErrorKind::PermissionDenied);
        let mut row = test_row("r");
        row.key_name = Some("bob".into());
        assert!(!visible(&own, &row));
        assert!(visible(&Scope::All, &row));
        row.key_name = Some("alice".into());
        assert!(visible(&own, &row));
    }

    #[test]
    fn group_by_keeps_its_order_and_refuses_repeats_and_unknowns() {
        assert_eq!(
            group_by(Some("provider, model,key")).unwrap(),
            vec![GroupBy::Provider, GroupBy::Model, GroupBy::Key]
        );
        assert_eq!(group_by(None).unwrap(), vec![]);
        assert_eq!(
            group_by(Some("day,hour,day")).unwrap_err().param.as_deref(),
            Some("group_by")
        );
        assert_eq!(
            group_by(Some("week")).unwrap_err().param.as_deref(),
            Some("group_by")
        );
    }

    #[test]
    fn amounts_are_exact_decimals() {
        assert_eq!(decimal(0), "0");
        assert_eq!(decimal(1), "0.000000001");
        assert_eq!(decimal(1_234_000), "0.001234");
        assert_eq!(decimal(2_500_000_000), "2.5");
        assert_eq!(decimal(-1_500_000_000), "-1.5");
        assert_eq!(rfc3339_ms(1_764_748_800_000), "2025-12-03T08:00:00Z");
        assert_eq!(rfc3339_ms(1_764_748_800_120), "2025-12-03T08:00:00.12Z");
        assert_eq!(compact_time(1_764_748_800_120), "20251203T080000Z");
    }

    #[test]
    fn csv_cells_are_quoted_by_rfc_4180_and_formulas_defused() {
        let cell = |s: &str| {
            let mut out = String::new();
            csv_text(&mut out, s);
            out
        };
        assert_eq!(cell("plain"), "plain");
        assert_eq!(cell("a,b"), "\"a,b\"");
        assert_eq!(cell("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(cell("two\r\nlines"), "\"two\r\nlines\"");
        assert_eq!(cell("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(cell("@SUM(A1)"), "\"'@SUM(A1)\"");
        assert_eq!(cell(""), "");

        let mut row = test_row("req_1");
        row.user_agent = Some("curl/8, \"x\"".into());
        row.cost_nanos = Some(1_500);
        row.currency = Some("USD".into());
        let mut out = String::from(CSV_HEADER);
        csv_row(&mut out, &row);
        let lines: Vec<&str> = out.split("\r\n").collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[2], "");
        let header_cells = lines[0].split(',').count();
        // Parse the row back with a strict RFC 4180 reader.
        let cells = parse_csv_line(lines[1]);
        assert_eq!(cells.len(), header_cells, "{}", lines[1]);
        assert_eq!(cells[2], "req_1");
        assert_eq!(cells[16], "0.0000015");
        assert_eq!(cells[24], "curl/8, \"x\"");
        assert_eq!(cells[27], row.attempts);
    }

    fn test_row(id: &str) -> UsageRow {
        UsageRow {
            ts: 1_764_748_800_000,
            request_id: id.into(),
            key_name: Some("k".into()),
            dialect: Some("openai".into()),
            endpoint: "/v1/chat/completions".into(),
            model: Some("m".into()),
            provider: Some("p".into()),
            upstream_model: Some("up".into()),
            attempts: r#"[{"provider":"p","model":"up","outcome":"ok"}]"#.into(),
            status: 200,
            stream: false,
            input_uncached: 1,
            cache_read: 2,
            cache_write: 3,
            output: 4,
            reasoning: 0,
            cost_nanos: None,
            currency: None,
            latency_ms: 1.5,
            ttfb_ms: None,
            overhead_ms: None,
            bytes_in: Some(10),
            bytes_out: None,
            client_addr: None,
            user_agent: None,
            session_id: None,
            routed_model: None,
            routed_by: None,
            scene: None,
            error: None,
        }
    }

    /// A strict reader for one record (no line breaks inside cells here).
    fn parse_csv_line(line: &str) -> Vec<String> {
        let mut cells = vec![String::new()];
        let mut chars = line.chars().peekable();
        let mut quoted = false;
        let mut start = true;
        while let Some(c) = chars.next() {
            match (quoted, c) {
                (false, '"') if start => quoted = true,
                (false, '"') => panic!("a quote inside an unquoted cell: {line}"),
                (true, '"') if chars.peek() == Some(&'"') => {
                    chars.next();
                    cells.last_mut().unwrap().push('"');
                }
                (true, '"') => {
                    quoted = false;
                    assert!(matches!(chars.peek(), None | Some(',')), "{line}");
                }
                (false, ',') => {
                    cells.push(String::new());
                    start = true;
                    continue;
                }
                (_, c) => cells.last_mut().unwrap().push(c),
            }
            start = false;
        }
        assert!(!quoted, "unterminated quote: {line}");
        cells
    }
}
