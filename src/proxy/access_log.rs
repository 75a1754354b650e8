//! The access log: one line per request, read from the request record.
//! Written with `Display` pieces straight into the log line (no
//! intermediate strings): with the log on, as it is by default, this line
//! is a measurable share of a small request's CPU.

use crate::record::RequestRecord;
use filters::Dialect;
use pingora::proxy::Session;
use std::fmt::{self, Display, Formatter, Write};
use std::time::Duration;

pub fn write(session: &Session, rec: &RequestRecord) {
    let req = session.req_header();
    let served = rec.served_by();
    log::info!(
        "{} {} {} {} status={} dialect={} key={} model={} stream={} target={} attempts=[{}] \
         usage={} upstream_ms={}/{} ms={}{}",
        rec.id,
        Opt(session.client_addr()),
        req.method,
        Escaped(req.uri.path()),
        rec.result.status,
        rec.client.dialect.map_or("-", Dialect::name),
        rec.client.key_name.as_deref().unwrap_or("-"),
        Escaped(rec.client.model.as_deref().unwrap_or("-")),
        rec.client.stream,
        Opt(served.map(|a| Target(&a.provider.name, &a.model))),
        Attempts(rec),
        Opt(rec.result.usage.map(Usage)),
        Ms(served.and_then(|a| a.to_status)),
        Ms(served.and_then(|a| a.to_first_event)),
        Ms(Some(rec.started.elapsed())),
        ErrorNote(rec.result.error.as_deref()),
    );
}

/// The same facts as one JSON object per line (`[server] access_log =
/// "json"`), for log pipelines: written under the `modelswitch::access` target, which
/// the logger prints bare (no timestamp prefix), so each line parses.
/// serde_json escapes every string, so client text cannot break a line.
pub fn write_json(session: &Session, rec: &RequestRecord) {
    let req = session.req_header();
    let served = rec.served_by();
    let ms = |d: Option<Duration>| d.map(|d| d.as_secs_f64() * 1000.0);
    let attempts: Vec<serde_json::Value> = rec
        .attempts
        .iter()
        .map(|a| {
            serde_json::json!({
                "provider": &*a.provider.name,
                "model": &*a.model,
                "outcome": a.outcome.to_string(),
                "key": a.key,
            })
        })
        .collect();
    let usage = rec.result.usage.map(|u| {
        serde_json::json!({
            "input": u.input_total(),
            "cache_read": u.cache_read,
            "cache_write": u.cache_write,
            "output": u.output_total,
            "reasoning": u.reasoning,
        })
    });
    let ts = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let line = serde_json::json!({
        "ts_ms": ts,
        "request_id": rec.id,
        "client": session.client_addr().map(ToString::to_string),
        "method": req.method.as_str(),
        "path": req.uri.path(),
        "status": rec.result.status,
        "dialect": rec.client.dialect.map(Dialect::name),
        "key": rec.client.key_name,
        "model": rec.client.model,
        "stream": rec.client.stream,
        "provider": served.map(|a| &*a.provider.name),
        "upstream_model": served.map(|a| &*a.model),
        "attempts": attempts,
        "usage": usage,
        "upstream_ms": ms(served.and_then(|a| a.to_status)),
        "first_event_ms": ms(served.and_then(|a| a.to_first_event)),
        "ms": ms(Some(rec.started.elapsed())),
        "error": rec.result.error,
    });
    log::info!(target: "modelswitch::access", "{line}");
}

/// Client-supplied text, escaped only when it holds something that could
/// forge or garble a line (control characters, quotes, backslashes).
struct Escaped<'a>(&'a str);

impl Display for Escaped<'_> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let plain = self
            .0
            .bytes()
            .all(|b| b >= 0x20 && b != 0x7f && b != b'"' && b != b'\\');
        if plain {
            f.write_str(self.0)
        } else {
            write!(f, "{}", self.0.escape_debug())
        }
    }
}

struct Opt<T>(Option<T>);

impl<T: Display> Display for Opt<T> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Some(v) => v.fmt(f),
            None => f.write_char('-'),
        }
    }
}

struct Target<'a>(&'a str, &'a str);

impl Display for Target<'_> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.0, self.1)
    }
}

struct Attempts<'a>(&'a RequestRecord);

impl Display for Attempts<'_> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        self.0.write_attempts(f)
    }
}

struct Usage(filters::canonical::Usage);

impl Display for Usage {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let u = &self.0;
        write!(
            f,
            "in={} cached={} out={}",
            u.input_total(),
            u.cache_read,
            u.output_total
        )
    }
}

/// Milliseconds with one decimal, from integer arithmetic.
struct Ms(Option<Duration>);

impl Display for Ms {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(d) => {
                let tenths = d.as_micros() / 100;
                write!(f, "{}.{}", tenths / 10, tenths % 10)
            }
            None => f.write_char('-'),
        }
    }
}

struct ErrorNote<'a>(Option<&'a str>);

impl Display for ErrorNote<'_> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(e) => write!(f, " error={e:?}"),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_render_without_surprises() {
        assert_eq!(
            Escaped("/v1/chat/completions").to_string(),
            "/v1/chat/completions"
        );
        assert_eq!(Escaped("a\nfake line").to_string(), "a\\nfake line");
        assert_eq!(Escaped("q\"x").to_string(), "q\\\"x");
        assert_eq!(Ms(Some(Duration::from_micros(12_345))).to_string(), "12.3");
        assert_eq!(Ms(None).to_string(), "-");
        assert_eq!(Opt::<u8>(None).to_string(), "-");
    }
}
