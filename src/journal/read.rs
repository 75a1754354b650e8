//! Reading the conversation log back for the admin API: files newest
//! first, each from its end, so the latest conversations come first and a
//! scan stops as soon as it has enough. Every scan is bounded in bytes.

use super::files::{list_newest_first, ReverseLines};
use serde::Deserialize;
use serde_json::{json, Value};
use std::io;
use std::path::Path;

/// The most one listing or lookup reads.
pub const SCAN_BYTES: u64 = 512 * 1024 * 1024;
const MS_PER_DAY: i64 = 86_400_000;

#[derive(Debug, Default, Clone)]
pub struct ListQuery {
    pub key: Option<String>,
    /// Unix ms, inclusive.
    pub from_ms: Option<i64>,
    /// Unix ms, exclusive.
    pub to_ms: Option<i64>,
    pub limit: usize,
}

#[derive(Debug)]
pub struct Listing {
    pub items: Vec<Value>,
    /// The scan reached its byte bound before the files ended.
    pub partial: bool,
}

/// The members a listing shows; the rest of the line is skipped.
#[derive(Deserialize)]
struct Summary {
    time: String,
    ts_ms: i64,
    request_id: String,
    key: Option<String>,
    dialect: Option<String>,
    model: Option<String>,
    provider: Option<String>,
    upstream_model: Option<String>,
    stream: bool,
    status: u16,
    preview: Option<String>,
    error: Option<String>,
}

/// Whether a file's day can hold times in `[from, to)`.
fn day_overlaps(day_start: i64, q: &ListQuery) -> bool {
    q.from_ms.is_none_or(|f| day_start + MS_PER_DAY > f) && q.to_ms.is_none_or(|t| day_start < t)
}

/// Logged conversations matching `q`, newest first.
pub fn list(dir: &Path, q: &ListQuery, budget: u64) -> io::Result<Listing> {
    let mut items = Vec::new();
    let mut read = 0;
    // Key names need no JSON escaping: a line of another key is passed
    // over without parsing it.
    let key_member = q.key.as_ref().map(|k| format!("\"key\":{}", json!(k)));
    let key_finder = key_member
        .as_ref()
        .map(|m| memchr::memmem::Finder::new(m.as_bytes()));
    for f in list_newest_first(dir)? {
        let start = f.day.start_ms();
        if !day_overlaps(start, q) {
            // Older than the range: so is every file after this one.
            if q.from_ms.is_some_and(|from| start + MS_PER_DAY <= from) {
                break;
            }
            continue;
        }
        let mut lines = match ReverseLines::open(&f.path) {
            Ok(l) => l,
            // Pruned since it was listed.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        while let Some(line) = lines.next_line()? {
            if read + lines.bytes_read > budget {
                return Ok(Listing {
                    items,
                    partial: true,
                });
            }
            if key_finder.as_ref().is_some_and(|k| k.find(&line).is_none()) {
                continue;
            }
            // A torn last line (a crash mid-write) is skipped.
            let Ok(s) = serde_json::from_slice::<Summary>(&line) else {
                continue;
            };
            let wanted = q.key.as_deref().is_none_or(|k| s.key.as_deref() == Some(k))
                && q.from_ms.is_none_or(|t| s.ts_ms >= t)
                && q.to_ms.is_none_or(|t| s.ts_ms < t);
            if wanted {
                items.push(json!({
                    "request_id": s.request_id,
                    "time": s.time,
                    "key": s.key,
                    "dialect": s.dialect,
                    "model": s.model,
                    "provider": s.provider,
                    "upstream_model": s.upstream_model,
                    "stream": s.stream,
                    "status": s.status,
                    "preview": s.preview,
                    "error": s.error,
                }));
                if items.len() >= q.limit {
                    return Ok(Listing {
                        items,
                        partial: false,
                    });
                }
            }
        }
        read += lines.bytes_read;
    }
    Ok(Listing {
        items,
        partial: false,
    })
}

/// Whether `id` can be a request id (and so be searched for verbatim).
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'))
}

/// The whole line logged for `request_id`, the newest if several.
pub fn find(dir: &Path, request_id: &str, budget: u64) -> io::Result<Option<Value>> {
    if !valid_id(request_id) {
        return Ok(None);
    }
    let needle = format!("\"request_id\":\"{request_id}\"");
    let finder = memchr::memmem::Finder::new(needle.as_bytes());
    let mut read = 0;
    for f in list_newest_first(dir)? {
        let mut lines = match ReverseLines::open(&f.path) {
            Ok(l) => l,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        while let Some(line) = lines.next_line()? {
            if read + lines.bytes_read > budget {
                return Ok(None);
            }
            if finder.find(&line).is_some() {
                if let Ok(v) = serde_json::from_slice::<Value>(&line) {
                    if v.get("request_id").and_then(Value::as_str) == Some(request_id) {
                        return Ok(Some(v));
                    }
                }
            }
        }
        read += lines.bytes_read;
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::files::{DailyFiles, Policy};
    use std::time::Duration;

    const DAY0: i64 = 1_764_720_000_000; // 2025-12-03T00:00:00Z

    fn line(id: &str, key: &str, ts_ms: i64) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "time": crate::journal::files::rfc3339_ms(ts_ms),
            "ts_ms": ts_ms,
            "request_id": id,
            "key": key,
            "dialect": "openai",
            "model": "m",
            "provider": "p",
            "upstream_model": "u",
            "stream": false,
            "status": 200,
            "preview": "hi",
            "error": null,
            "request": {"messages": [{"role": "user", "content": "hi"}]},
            "response": {"text": "yo"},
        }))
        .unwrap()
    }

    #[test]
    fn lists_newest_first_with_filters_and_finds_by_id() {
        let dir = std::env::temp_dir().join(format!(
            "modelswitch-read-{}-{}",
            std::process::id(),
            fastrand::u64(..)
        ));
        let mut files = DailyFiles::new(
            dir.clone(),
            Policy {
                max_file_bytes: 700,
                retention: Duration::from_secs(30 * 86_400),
                max_files: 100,
            },
        );
        // Two days, several files a day (each holds two lines at most).
        for i in 0..6i64 {
            let ts = DAY0 - MS_PER_DAY + i * 3_600_000 * 8;
            let key = if i % 2 == 0 { "alice" } else { "bob" };
            files
                .append(ts, &line(&format!("req_{i}"), key, ts))
                .unwrap();
        }
        files.append(DAY0 + 60_000, b"{\"torn").unwrap();
        files.flush().unwrap();
        assert!(list_newest_first(&dir).unwrap().len() >= 3);

        let ids = |q: &ListQuery| -> Vec<String> {
            list(&dir, q, SCAN_BYTES)
                .unwrap()
                .items
                .iter()
                .map(|v| v["request_id"].as_str().unwrap().to_owned())
                .collect()
        };
        let all = ListQuery {
            limit: 100,
            ..ListQuery::default()
        };
        assert_eq!(
            ids(&all),
            ["req_5", "req_4", "req_3", "req_2", "req_1", "req_0"]
        );
        assert_eq!(
            ids(&ListQuery {
                key: Some("alice".into()),
                ..all.clone()
            }),
            ["req_4", "req_2", "req_0"]
        );
        assert_eq!(
            ids(&ListQuery {
                limit: 2,
                ..all.clone()
            }),
            ["req_5", "req_4"]
        );
        // From the start of the second day on: req_3 (24 h after req_0).
        assert_eq!(
            ids(&ListQuery {
                from_ms: Some(DAY0),
                ..all.clone()
            }),
            ["req_5", "req_4", "req_3"]
        );
        assert_eq!(
            ids(&ListQuery {
                to_ms: Some(DAY0),
                ..all.clone()
            }),
            ["req_2", "req_1", "req_0"]
        );
        let partial = list(&dir, &all, 10).unwrap();
        assert!(partial.partial);

        let v = find(&dir, "req_1", SCAN_BYTES).unwrap().unwrap();
        assert_eq!(v["key"], "bob");
        assert_eq!(v["response"]["text"], "yo");
        assert_eq!(find(&dir, "req_9", SCAN_BYTES).unwrap(), None);
        assert_eq!(find(&dir, "req_1\"", SCAN_BYTES).unwrap(), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
