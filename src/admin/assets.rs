//! The embedded web UI: the bundle `make ui` builds, compiled into the
//! binary by `build.rs` (each file with a gzipped copy). Paths under
//! `/ui/` that name no file get `index.html`, so the UI's own routes
//! survive a reload; a binary built without the bundle says how to build it.

use crate::downstream::respond;
use crate::record::RequestRecord;
use bytes::Bytes;
use filters::error::ApiError;
use pingora::proxy::Session;

pub struct Asset {
    pub path: &'static str,
    pub mime: &'static str,
    pub body: &'static [u8],
    pub gzip: Option<&'static [u8]>,
    pub etag: &'static str,
    /// The gzipped copy is another representation: another tag.
    pub etag_gzip: &'static str,
}

include!(concat!(env!("OUT_DIR"), "/ui_assets.rs"));

/// No request to another origin, no framing, no sniffing: the UI's own
/// scripts and styles only (charts set inline styles).
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
                   img-src 'self' data:; connect-src 'self'; font-src 'self'; \
                   frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

const NOT_BUILT: &str = "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<title>ModelSwitch</title></head><body style=\"font-family:sans-serif;max-width:40em;margin:3em auto\">\
<h1>The web UI is not in this binary</h1>\
<p>This gateway was built without the UI bundle. Build it with <code>make build</code> \
(or <code>make ui</code> followed by <code>cargo build</code>): it installs the UI's npm \
packages under <code>target/ui</code>, builds the bundle and embeds it.</p>\
<p>The admin API under <code>/api/</code> works without it.</p></body></html>";

/// Whether this binary carries the UI bundle.
pub fn bundled() -> bool {
    find("index.html").is_some()
}

fn find(path: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.path == path)
}

/// `GET /` from a browser: to the UI.
pub async fn to_ui(session: &mut Session, rec: &mut RequestRecord) -> Result<(), ApiError> {
    let head = session.req_header().method == http::Method::HEAD;
    let extra = [("location", "/ui/".to_owned())];
    respond(session, rec, 302, "text/plain", Bytes::new(), &extra, head).await;
    Ok(())
}

/// `GET /ui`, `/ui/...`.
pub async fn serve(session: &mut Session, rec: &mut RequestRecord) -> Result<(), ApiError> {
    let req = session.req_header();
    let head = req.method == http::Method::HEAD;
    let path = req.uri.path();
    if path == "/ui" {
        let extra = [("location", "/ui/".to_owned())];
        respond(session, rec, 308, "text/plain", Bytes::new(), &extra, head).await;
        return Ok(());
    }
    let rel = path.strip_prefix("/ui/").unwrap_or_default();
    let (asset, fallback) = match find(rel) {
        Some(a) if !rel.is_empty() => (Some(a), false),
        _ => (find("index.html"), true),
    };
    // A missing file with an extension (a stale script name) is a 404,
    // not the index page parsed as JavaScript.
    if fallback
        && rel
            .rsplit('/')
            .next()
            .is_some_and(|last| last.contains('.'))
    {
        let extra = security_headers("no-store");
        respond(
            session,
            rec,
            404,
            "text/plain; charset=utf-8",
            Bytes::from_static(b"not found\n"),
            &extra,
            head,
        )
        .await;
        return Ok(());
    }
    let Some(asset) = asset else {
        let extra = security_headers("no-store");
        let body = Bytes::from_static(NOT_BUILT.as_bytes());
        respond(
            session,
            rec,
            200,
            "text/html; charset=utf-8",
            body,
            &extra,
            head,
        )
        .await;
        return Ok(());
    };
    // Bundle files carry a content hash in their names: cached for good.
    // The index names them, so it is revalidated every time.
    let cache = if asset.path == "index.html" {
        "no-cache"
    } else {
        "public, max-age=31536000, immutable"
    };
    let h = &session.req_header().headers;
    let gzip_ok = h
        .get(http::header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(accepts_gzip);
    let (body, etag, gzipped) = match asset.gzip {
        Some(z) if gzip_ok => (z, asset.etag_gzip, true),
        _ => (asset.body, asset.etag, false),
    };
    let mut extra = security_headers(cache);
    extra.push(("etag", etag.to_owned()));
    extra.push(("vary", "accept-encoding".to_owned()));
    if h.get(http::header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"))
    {
        respond(session, rec, 304, asset.mime, Bytes::new(), &extra, true).await;
        return Ok(());
    }
    if gzipped {
        extra.push(("content-encoding", "gzip".to_owned()));
    }
    respond(
        session,
        rec,
        200,
        asset.mime,
        Bytes::from_static(body),
        &extra,
        head,
    )
    .await;
    Ok(())
}

fn security_headers(cache: &str) -> Vec<(&'static str, String)> {
    vec![
        ("cache-control", cache.to_owned()),
        ("content-security-policy", CSP.to_owned()),
        ("x-content-type-options", "nosniff".to_owned()),
        ("x-frame-options", "DENY".to_owned()),
        ("referrer-policy", "no-referrer".to_owned()),
    ]
}

/// `gzip` in an Accept-Encoding list, unless given `q=0`.
fn accepts_gzip(v: &str) -> bool {
    v.split(',').any(|item| {
        let mut parts = item.split(';');
        let coding = parts.next().unwrap_or_default().trim();
        let refused = parts.any(|p| {
            let p = p.trim();
            p.strip_prefix("q=")
                .and_then(|q| q.trim().parse::<f32>().ok())
                .is_some_and(|q| q == 0.0)
        });
        (coding.eq_ignore_ascii_case("gzip") || coding == "*") && !refused
    })
}

#[cfg(test)]
mod tests {
    use super::accepts_gzip;

    #[test]
    fn gzip_is_taken_unless_refused() {
        assert!(accepts_gzip("gzip, deflate, br"));
        assert!(accepts_gzip("br;q=1.0, gzip;q=0.8"));
        assert!(accepts_gzip("*"));
        assert!(!accepts_gzip("gzip;q=0, br"));
        assert!(!accepts_gzip("br, deflate"));
        assert!(!accepts_gzip(""));
    }
}
