//! The last gateway log lines, kept in memory for `GET /api/logs`: a
//! `log::Log` around the process's logger records every line that logger
//! prints (same filter), each cut to `MAX_LINE_BYTES`, the oldest dropped
//! past `capacity`. A line's request id and key name are read from its
//! text when asked for (the access log's, in either form, carries both;
//! other lines name the request id first), so logging costs one copy of
//! the message and a short lock, nothing more.

use super::files::{rfc3339_ms, Rfc3339Ms};
use log::{Level, Log, Metadata, Record};
use serde_json::{json, Value};
use std::cell::RefCell;
use std::collections::VecDeque;
use std::fs::File;
use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

/// Lines kept by default.
pub const DEFAULT_CAPACITY: usize = 2000;
/// Longer messages are cut (at a character boundary) in the ring only.
pub const MAX_LINE_BYTES: usize = 8 * 1024;
/// The access log's targets: the JSON line's, the text line's.
pub const ACCESS_TARGET: &str = "modelswitch::access";
const ACCESS_TEXT_TARGET: &str = "modelswitch::proxy::access_log";

fn is_access(target: &str) -> bool {
    target == ACCESS_TARGET || target == ACCESS_TEXT_TARGET
}

#[derive(Debug, Clone)]
pub struct LogLine {
    pub time_ms: i64,
    pub level: Level,
    pub target: Box<str>,
    pub message: String,
}

pub struct LogRing {
    /// Shared, so a query copies pointers under the lock, not messages.
    lines: Mutex<VecDeque<Arc<LogLine>>>,
    capacity: usize,
}

/// What `GET /api/logs` asks for; every filter optional.
#[derive(Debug, Default, Clone)]
pub struct LogQuery {
    /// This level and the more severe ones.
    pub level: Option<Level>,
    pub request_id: Option<String>,
    pub key: Option<String>,
    /// Unix milliseconds; lines at or after.
    pub since_ms: Option<i64>,
    pub limit: usize,
}

impl LogRing {
    pub fn new(capacity: usize) -> Self {
        Self {
            lines: Mutex::new(VecDeque::with_capacity(capacity.min(4096))),
            capacity: capacity.max(1),
        }
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn push(&self, mut line: LogLine) {
        truncate_at_char(&mut line.message, MAX_LINE_BYTES);
        let mut lines = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        if lines.len() >= self.capacity {
            lines.pop_front();
        }
        lines.push_back(Arc::new(line));
    }

    /// Matching lines, newest first, at most `q.limit`.
    pub fn query(&self, q: &LogQuery) -> Vec<Value> {
        // Copied out under the lock, filtered outside it: the request path
        // logs into the same lock.
        let lines: Vec<Arc<LogLine>> = {
            let lines = self.lines.lock().unwrap_or_else(|e| e.into_inner());
            lines
                .iter()
                .rev()
                .filter(|l| q.level.is_none_or(|lv| l.level <= lv))
                .filter(|l| q.since_ms.is_none_or(|t| l.time_ms >= t))
                .map(Arc::clone)
                .collect()
        };
        lines
            .into_iter()
            .filter_map(|l| {
                let (request_id, key) = fields(&l);
                let wanted = q
                    .request_id
                    .as_deref()
                    .is_none_or(|r| request_id.as_deref() == Some(r))
                    && q.key.as_deref().is_none_or(|k| key.as_deref() == Some(k));
                wanted.then(|| {
                    json!({
                        "time": rfc3339_ms(l.time_ms),
                        "level": l.level.as_str(),
                        "target": &*l.target,
                        "message": &l.message,
                        "request_id": request_id,
                        "key": key,
                    })
                })
            })
            .take(q.limit)
            .collect()
    }
}

fn truncate_at_char(s: &mut String, max: usize) {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
}

/// The request id and key name a line carries: the JSON access log's
/// members; in text, the first word that is a request id and `key=NAME`.
pub fn fields(l: &LogLine) -> (Option<String>, Option<String>) {
    let m = l.message.as_str();
    if is_access(&l.target) && m.starts_with('{') {
        if let Ok(v) = serde_json::from_str::<Value>(m) {
            let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
            return (s("request_id"), s("key"));
        }
    }
    let request_id = m
        .split_ascii_whitespace()
        .map(|w| w.trim_matches(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-')))
        .find(|w| w.len() > 4 && w.starts_with("req_"))
        .map(str::to_owned);
    let key = if is_access(&l.target) {
        m.split_ascii_whitespace()
            .find_map(|w| w.strip_prefix("key="))
            .filter(|k| *k != "-")
            .map(str::to_owned)
    } else {
        None
    };
    (request_id, key)
}

/// `[logging] access_file`: the file access-log lines go to instead of
/// stderr, set once at startup (the logger is installed before the config
/// is read, and a change needs a restart).
static ACCESS_FILE: OnceLock<File> = OnceLock::new();

thread_local! {
    /// One access-log line, reused: the line costs no allocation.
    static ACCESS_LINE: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Sends the access log to `file` (opened for appending) from now on;
/// false if it already goes to a file.
pub fn send_access_log_to(file: File) -> bool {
    ACCESS_FILE.set(file).is_ok()
}

/// Opens `path` for appending (`O_APPEND`: each line lands whole at the
/// end, whichever worker writes it, and `logrotate copytruncate` works),
/// creating it (0640) and its directory.
pub fn open_access_file(path: &std::path::Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o640)
        .open(path)
}

/// The line as stderr has it (the JSON form bare, the text form behind a
/// timestamp, level and target), written with one `write`.
fn write_access(file: &File, time_ms: i64, record: &Record<'_>, message: &str) {
    ACCESS_LINE.with_borrow_mut(|line| {
        line.clear();
        if record.target() != ACCESS_TARGET {
            let _ = write!(
                line,
                "[{} {:<5} {}] ",
                Rfc3339Ms(time_ms),
                record.level(),
                record.target()
            );
        }
        line.extend_from_slice(message.as_bytes());
        line.push(b'\n');
        // A failed write (a full disk) loses the line, as stderr would.
        let _ = (&*file).write_all(line);
    });
}

/// The process's logger, with every line it prints also kept in the ring.
pub struct RingLogger {
    inner: env_logger::Logger,
    ring: Arc<LogRing>,
}

impl RingLogger {
    /// Installs `inner` wrapped as the process's logger.
    pub fn install(
        inner: env_logger::Logger,
        ring: Arc<LogRing>,
    ) -> Result<(), log::SetLoggerError> {
        let max = inner.filter();
        log::set_boxed_logger(Box::new(Self { inner, ring }))?;
        log::set_max_level(max);
        Ok(())
    }
}

impl Log for RingLogger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        self.inner.enabled(metadata)
    }

    fn log(&self, record: &Record<'_>) {
        if !self.inner.matches(record) {
            return;
        }
        // Formatted once: the printed line and the ring's copy share it.
        let message = match record.args().as_str() {
            Some(s) => s.to_owned(),
            None => record.args().to_string(),
        };
        let time_ms = super::files::now_ms();
        match ACCESS_FILE.get().filter(|_| is_access(record.target())) {
            Some(file) => write_access(file, time_ms, record, &message),
            None => self.inner.log(
                &Record::builder()
                    .metadata(record.metadata().clone())
                    .args(format_args!("{message}"))
                    .module_path(record.module_path())
                    .file(record.file())
                    .line(record.line())
                    .build(),
            ),
        }
        self.ring.push(LogLine {
            time_ms,
            level: record.level(),
            target: record.target().into(),
            message,
        });
    }

    fn flush(&self) {
        self.inner.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_lines_are_appended_to_the_file_as_stderr_has_them() {
        let dir = std::env::temp_dir().join(format!("ms-access-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("logs/access.log");
        std::fs::create_dir_all(&dir).unwrap();
        // Its directory is made; a second open appends.
        let file = open_access_file(&path).unwrap();
        let json = Record::builder()
            .target(ACCESS_TARGET)
            .level(Level::Info)
            .build();
        write_access(&file, 0, &json, "{\"a\":1}");
        drop(file);
        let file = open_access_file(&path).unwrap();
        let text = Record::builder()
            .target(ACCESS_TEXT_TARGET)
            .level(Level::Info)
            .build();
        write_access(&file, 1_000, &text, "req_1 GET /x status=200");
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "{\"a\":1}\n[1970-01-01T00:00:01.000Z INFO  modelswitch::proxy::access_log] req_1 GET /x status=200\n"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn line(level: Level, target: &str, message: &str, time_ms: i64) -> LogLine {
        LogLine {
            time_ms,
            level,
            target: target.into(),
            message: message.into(),
        }
    }

    #[test]
    fn keeps_the_last_lines_each_cut_to_size() {
        let ring = LogRing::new(3);
        for i in 0..5 {
            ring.push(line(Level::Info, "modelswitch", &format!("line {i}"), i));
        }
        let all = ring.query(&LogQuery {
            limit: 10,
            ..LogQuery::default()
        });
        let messages: Vec<&str> = all.iter().map(|v| v["message"].as_str().unwrap()).collect();
        assert_eq!(messages, ["line 4", "line 3", "line 2"]);
        // A long line is cut at a character boundary (é is two bytes).
        ring.push(line(Level::Info, "m", &"é".repeat(MAX_LINE_BYTES), 9));
        let v = ring.query(&LogQuery {
            limit: 1,
            ..LogQuery::default()
        });
        let m = v[0]["message"].as_str().unwrap();
        assert_eq!(m.len(), MAX_LINE_BYTES);
        assert!(m.chars().all(|c| c == 'é'));
    }

    #[test]
    fn filters_by_level_request_key_and_time() {
        let ring = LogRing::new(100);
        ring.push(line(
            Level::Info,
            ACCESS_TEXT_TARGET,
            "req_aaa 127.0.0.1:5 POST /v1/messages status=200 dialect=anthropic key=alice model=m",
            10,
        ));
        ring.push(line(
            Level::Info,
            ACCESS_TARGET,
            r#"{"ts_ms":1,"request_id":"req_bbb","key":"bob","status":200}"#,
            20,
        ));
        ring.push(line(
            Level::Warn,
            "modelswitch::exchange::attempt",
            "req_bbb openai/mock key#0: Status(503)",
            30,
        ));
        ring.push(line(
            Level::Error,
            "modelswitch",
            "no request here (key=alice)",
            40,
        ));
        let q = |f: fn(&mut LogQuery)| {
            let mut q = LogQuery {
                limit: 100,
                ..LogQuery::default()
            };
            f(&mut q);
            ring.query(&q)
                .iter()
                .map(|v| v["time"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        };
        let t = |ms: i64| rfc3339_ms(ms);
        assert_eq!(q(|q| q.level = Some(Level::Warn)), [t(40), t(30)]);
        assert_eq!(q(|q| q.request_id = Some("req_bbb".into())), [t(30), t(20)]);
        // `key=` is read from access lines only: elsewhere it is prose.
        assert_eq!(q(|q| q.key = Some("alice".into())), [t(10)]);
        assert_eq!(q(|q| q.key = Some("bob".into())), [t(20)]);
        assert_eq!(q(|q| q.since_ms = Some(30)), [t(40), t(30)]);
        let first = ring.query(&LogQuery {
            limit: 1,
            request_id: Some("req_aaa".into()),
            ..LogQuery::default()
        });
        assert_eq!(first[0]["key"], "alice");
        assert_eq!(first[0]["level"], "INFO");
        assert_eq!(first[0]["target"], ACCESS_TEXT_TARGET);
    }
}
