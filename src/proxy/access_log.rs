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
