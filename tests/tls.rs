//! TLS on the client side (issue 14, item 4) over real sockets: a CA and
//! server certificates made here (rcgen), HTTPS over HTTP/1.1 and HTTP/2
//! (ALPN), h2c, SNI, a certificate replaced on disk, the startup errors,
//! and the admin cookie's `Secure`.
//!
//! The client is tokio-rustls plus the h2 crate, both already built for
//! Pingora: no second HTTP stack to compile. curl checks what a common
//! client negotiates.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use bytes::Bytes;
use common::*;
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};
use tokio_rustls::TlsConnector;

/// A test CA and the files it issues, in a directory of its own.
struct Pki {
    dir: PathBuf,
    ca: Issuer<'static, KeyPair>,
    ca_pem: String,
}

impl Pki {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!(
            "modelswitch-tls-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "modelswitch test CA");
        let key = KeyPair::generate().unwrap();
        let ca_pem = params.self_signed(&key).unwrap().pem();
        std::fs::write(dir.join("ca.pem"), &ca_pem).unwrap();
        Self {
            dir,
            ca: Issuer::new(params, key),
            ca_pem,
        }
    }

    /// A certificate for `names` (PEM chain, PEM key).
    fn issue(&self, names: &[&str]) -> (String, String) {
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let params = CertificateParams::new(names).unwrap();
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.ca).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    /// Issued and written as `<stem>.pem` and `<stem>.key`.
    fn write(&self, stem: &str, names: &[&str]) -> (PathBuf, PathBuf) {
        let (cert, key) = self.issue(names);
        let paths = (
            self.dir.join(format!("{stem}.pem")),
            self.dir.join(format!("{stem}.key")),
        );
        std::fs::write(&paths.0, cert).unwrap();
        std::fs::write(&paths.1, key).unwrap();
        paths
    }

    fn ca_path(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// A TLS client trusting only this CA, offering `alpn`.
    fn client(&self, alpn: &[&[u8]]) -> TlsConnector {
        let mut roots = RootCertStore::empty();
        for c in CertificateDer::pem_slice_iter(self.ca_pem.as_bytes()) {
            roots.add(c.unwrap()).unwrap();
        }
        let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        TlsConnector::from(Arc::new(config))
    }
}

use tokio_rustls::rustls::pki_types::pem::PemObject;

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

type Tls = tokio_rustls::client::TlsStream<tokio::net::TcpStream>;

/// A TLS connection to `addr` asking for `name`, within 5 seconds.
async fn connect(tls: &TlsConnector, addr: SocketAddr, name: &str) -> std::io::Result<Tls> {
    let name = ServerName::try_from(name.to_owned()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), async {
        let tcp = tokio::net::TcpStream::connect(addr).await?;
        tls.connect(name, tcp).await
    })
    .await
    .map_err(|_| std::io::Error::other("TLS connect timed out"))?
}

/// The DNS names of the certificate the server presented.
fn presented_names(s: &Tls) -> Vec<String> {
    let cert = &s.get_ref().1.peer_certificates().unwrap()[0];
    webpki::EndEntityCert::try_from(cert)
        .unwrap()
        .valid_dns_names()
        .map(str::to_owned)
        .collect()
}

fn presented_der(s: &Tls) -> Vec<u8> {
    s.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}

/// One HTTP/1.1 request over `s` (`Connection: close`), read to the end.
async fn http1(mut s: Tls, method: &str, path: &str, body: &[u8]) -> Response {
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\
         Authorization: Bearer {KEY}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(body).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(15), s.read_to_end(&mut raw))
        .await
        .expect("response within 15s")
        .ok();
    parse_response(&raw, method == "HEAD")
}

/// One request over HTTP/2 on `s`: status, headers, whole body.
async fn http2(s: Tls, method: &str, path: &str, body: &[u8]) -> (u16, http::HeaderMap, Vec<u8>) {
    tokio::time::timeout(Duration::from_secs(15), async {
        let (mut client, conn) = h2::client::handshake(s).await.unwrap();
        tokio::spawn(conn);
        let req = http::Request::builder()
            .method(method)
            .uri(format!("https://localhost{path}"))
            .header("authorization", format!("Bearer {KEY}"))
            .header("content-type", "application/json")
            .header("content-length", body.len())
            .body(())
            .unwrap();
        let (resp, mut send) = client.send_request(req, body.is_empty()).unwrap();
        if !body.is_empty() {
            send.send_data(Bytes::copy_from_slice(body), true).unwrap();
        }
        let resp = resp.await.unwrap();
        let (parts, mut recv) = resp.into_parts();
        let mut out = Vec::new();
        while let Some(chunk) = recv.data().await {
            let chunk = chunk.unwrap();
            let _ = recv.flow_control().release_capacity(chunk.len());
            out.extend_from_slice(&chunk);
        }
        (parts.status.as_u16(), parts.headers, out)
    })
    .await
    .expect("HTTP/2 answer within 15s")
}

fn chat(stream: bool) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "model": "oa",
        "stream": stream,
        "messages": [{"role": "user", "content": "hello over TLS"}]
    }))
    .unwrap()
}

/// The content of a Chat Completions answer, unary or streamed.
fn unary_text(body: &[u8]) -> String {
    let v: Value = serde_json::from_slice(body).unwrap();
    v["choices"][0]["message"]["content"]
        .as_str()
        .unwrap_or_else(|| panic!("no content: {v}"))
        .to_owned()
}

fn streamed_text(body: &[u8]) -> String {
    let r = Response {
        status: 200,
        headers: vec![],
        body: body.to_vec(),
    };
    let events = r.events();
    assert_eq!(
        events.last().map(|e| e.1.clone()),
        Some(json!("[DONE]")),
        "{events:?}"
    );
    events
        .iter()
        .filter_map(|(_, v)| v["choices"][0]["delta"]["content"].as_str())
        .collect()
}

/// `[server]` lines for TLS on `tls_addr` with the default pair and the
/// extra `certificates` tables.
fn tls_server(tls_addr: SocketAddr, cert: &Path, key: &Path, more: &str) -> String {
    format!(
        "tls_listen = \"{tls_addr}\"\n\n[server.tls]\ncert_path = \"{}\"\nkey_path = \"{}\"\n{more}",
        cert.display(),
        key.display()
    )
}

/// The gateway with `server` appended to `[server]`; waits for `tls_addr`.
fn start(mock: SocketAddr, server: &str, tls_addr: SocketAddr) -> Proc {
    let gw = gateway(&config(mock, &[], server));
    assert!(
        wait_until(Duration::from_secs(10), || std::net::TcpStream::connect(
            tls_addr
        )
        .is_ok()),
        "the TLS listener did not open"
    );
    gw
}

/// `curl <args> -w '%{http_version} %{http_code}'`, body discarded.
/// (`make deps` installs curl: what a common client negotiates is checked,
/// never skipped.)
fn curl_version_and_status(args: &[&str]) -> String {
    let out = Command::new("curl")
        .args(["-sS", "-o", "/dev/null", "--max-time", "10", "-w"])
        .arg("%{http_version} %{http_code}")
        .args(args)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_serves_chat_and_streams_over_http1_and_http2() {
    let pki = Pki::new();
    let (cert, key) = pki.write("server", &["localhost"]);
    let mock = mock();
    let tls_addr = free_addr();
    let _gw = start(mock.addr, &tls_server(tls_addr, &cert, &key, ""), tls_addr);

    // HTTP/1.1: a client offering no ALPN, and one offering only http/1.1.
    for alpn in [&[][..], &[&b"http/1.1"[..]][..]] {
        let tls = pki.client(alpn);
        let s = connect(&tls, tls_addr, "localhost").await.unwrap();
        assert_ne!(s.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
        let r = http1(s, "POST", "/v1/chat/completions", &chat(false)).await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert!(!unary_text(&r.body).is_empty());
        let s = connect(&tls, tls_addr, "localhost").await.unwrap();
        let r = http1(s, "POST", "/v1/chat/completions", &chat(true)).await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert!(r
            .header("content-type")
            .unwrap()
            .starts_with("text/event-stream"));
        assert!(!streamed_text(&r.body).is_empty());
    }

    // HTTP/2 by ALPN: unary and a stream, on one connection each, and the
    // handler-mode answers carry no HTTP/1-only header (h2 would refuse
    // the response outright).
    let tls = pki.client(&[b"h2", b"http/1.1"]);
    let s = connect(&tls, tls_addr, "localhost").await.unwrap();
    assert_eq!(s.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (status, headers, body) = http2(s, "POST", "/v1/chat/completions", &chat(false)).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert!(!unary_text(&body).is_empty());
    for h in ["connection", "transfer-encoding", "keep-alive"] {
        assert!(headers.get(h).is_none(), "{h} over h2: {headers:?}");
    }
    let s = connect(&tls, tls_addr, "localhost").await.unwrap();
    let (status, headers, body) = http2(s, "POST", "/v1/chat/completions", &chat(true)).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert!(headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    assert!(!streamed_text(&body).is_empty());

    // Several streams at once on one HTTP/2 connection.
    let s = connect(&tls, tls_addr, "localhost").await.unwrap();
    let (client, conn) = h2::client::handshake(s).await.unwrap();
    tokio::spawn(conn);
    let mut tasks = Vec::new();
    for i in 0..4 {
        let mut client = client.clone().ready().await.unwrap();
        tasks.push(tokio::spawn(async move {
            let body = chat(i % 2 == 0);
            let req = http::Request::post("https://localhost/v1/chat/completions")
                .header("authorization", format!("Bearer {KEY}"))
                .header("content-length", body.len())
                .body(())
                .unwrap();
            let (resp, mut send) = client.send_request(req, false).unwrap();
            send.send_data(Bytes::from(body), true).unwrap();
            let resp = resp.await.unwrap();
            let status = resp.status().as_u16();
            let mut recv = resp.into_body();
            let mut out = Vec::new();
            while let Some(c) = recv.data().await {
                let c = c.unwrap();
                let _ = recv.flow_control().release_capacity(c.len());
                out.extend_from_slice(&c);
            }
            (status, out)
        }));
    }
    for (i, t) in tasks.into_iter().enumerate() {
        let (status, body) = tokio::time::timeout(Duration::from_secs(15), t)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(status, 200);
        if i % 2 == 0 {
            assert!(!streamed_text(&body).is_empty());
        } else {
            assert!(!unary_text(&body).is_empty());
        }
    }

    // curl negotiates h2 by ALPN, verifying with the CA.
    let url = format!("https://localhost:{}/v1/models", tls_addr.port());
    let resolve = format!("localhost:{}:127.0.0.1", tls_addr.port());
    let ca = pki.ca_path();
    let auth = format!("Authorization: Bearer {KEY}");
    let out = curl_version_and_status(&[
        "--http2",
        "--cacert",
        ca.to_str().unwrap(),
        "--resolve",
        &resolve,
        "-H",
        &auth,
        &url,
    ]);
    assert_eq!(out, "2 200");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_prior_knowledge_is_served_only_when_enabled() {
    let mock = mock();
    let auth = format!("Authorization: Bearer {KEY}");
    let on = gateway(&config(mock.addr, &[], "h2c = true"));
    let url = format!("http://{}/v1/models", on.addr);
    let out = curl_version_and_status(&["--http2-prior-knowledge", "-H", &auth, &url]);
    assert_eq!(out, "2 200");
    // HTTP/1.1 still works beside it, a request shorter than the preface
    // included (answered at once, not after the head deadline).
    let out = curl_version_and_status(&["--http1.1", "-H", &auth, &url]);
    assert_eq!(out, "1.1 200");
    let t = Instant::now();
    let r = request(
        on.addr,
        "GET",
        "/v1/models",
        &[("Authorization", &auth[15..])],
        b"",
    );
    assert_eq!(r.status, 200);
    let mut s = std::net::TcpStream::connect(on.addr).unwrap();
    std::io::Write::write_all(&mut s, b"GET / HTTP/1.0\r\n\r\n").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut raw = Vec::new();
    let _ = std::io::Read::read_to_end(&mut s, &mut raw);
    assert!(
        raw.starts_with(b"HTTP/1."),
        "{:?}",
        String::from_utf8_lossy(&raw)
    );
    assert!(t.elapsed() < Duration::from_secs(4), "{:?}", t.elapsed());

    // Off (the default): the preface is not HTTP/1, and no h2 answer comes.
    let off = gateway(&config(mock.addr, &[], ""));
    let url = format!("http://{}/v1/models", off.addr);
    let out = curl_version_and_status(&["--http2-prior-knowledge", "-H", &auth, &url]);
    assert!(!out.starts_with("2 200"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sni_picks_the_certificate_for_the_name_asked() {
    let pki = Pki::new();
    let (cert, key) = pki.write("default", &["localhost", "127.0.0.1"]);
    let (a_cert, a_key) = pki.write("a", &["a.test"]);
    let (b_cert, b_key) = pki.write("b", &["*.b.test"]);
    // `names` overrides what the certificate says (it must still be valid
    // for them, so this one covers both).
    let (c_cert, c_key) = pki.write("c", &["c.test", "other.test"]);
    let more = format!(
        "\n[[server.tls.certificates]]\ncert_path = \"{}\"\nkey_path = \"{}\"\n\
         \n[[server.tls.certificates]]\ncert_path = \"{}\"\nkey_path = \"{}\"\n\
         \n[[server.tls.certificates]]\ncert_path = \"{}\"\nkey_path = \"{}\"\nnames = [\"other.test\"]\n",
        a_cert.display(),
        a_key.display(),
        b_cert.display(),
        b_key.display(),
        c_cert.display(),
        c_key.display()
    );
    let mock = mock();
    let tls_addr = free_addr();
    let _gw = start(
        mock.addr,
        &tls_server(tls_addr, &cert, &key, &more),
        tls_addr,
    );
    let tls = pki.client(&[b"http/1.1"]);
    for (asked, served) in [
        ("a.test", "a.test"),
        ("A.TEST", "a.test"),
        ("x.b.test", "*.b.test"),
        ("other.test", "c.test"),
        ("localhost", "localhost"),
    ] {
        let s = connect(&tls, tls_addr, asked)
            .await
            .unwrap_or_else(|e| panic!("{asked}: {e}"));
        assert!(presented_names(&s).contains(&served.to_owned()), "{asked}");
        let r = http1(s, "GET", "/v1/models", b"").await;
        assert_eq!(r.status, 200, "{asked}");
    }
    // c.test is not among its configured names: the default answers (and
    // the client, asking for c.test, refuses it).
    assert!(connect(&tls, tls_addr, "c.test").await.is_err());
    // An unknown name gets the default (which the client refuses)...
    assert!(connect(&tls, tls_addr, "unknown.test").await.is_err());
    // ...and so does a client sending no SNI (an IP address is never sent
    // as SNI; the default certificate holds this one).
    let s = connect(&tls, tls_addr, "127.0.0.1").await.unwrap();
    assert!(presented_names(&s).contains(&"localhost".to_owned()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_replaced_on_disk_is_served_to_the_next_connection() {
    let pki = Pki::new();
    let (cert, key) = pki.write("live", &["localhost"]);
    let mock = mock();
    let tls_addr = free_addr();
    let text = config(mock.addr, &[], &tls_server(tls_addr, &cert, &key, ""));
    let gw = live_gateway(&text);
    assert!(wait_until(Duration::from_secs(10), || {
        std::net::TcpStream::connect(tls_addr).is_ok()
    }));
    let tls = pki.client(&[b"h2", b"http/1.1"]);
    let first = presented_der(&connect(&tls, tls_addr, "localhost").await.unwrap());
    assert_eq!(first, pem_der(&std::fs::read_to_string(&cert).unwrap()));
    // A connection kept open across the swap keeps working.
    let kept = connect(&tls, tls_addr, "localhost").await.unwrap();

    // Half a swap: a new certificate whose key is not there yet. The old
    // pair is still served, and one warning says why. (The files are
    // looked at from handshakes, at most once a second.)
    let (new_cert, new_key) = pki.issue(&["localhost"]);
    let mark = gw.log_mark();
    replace(&cert, &new_cert);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !gw.log_since(mark).contains("server.tls.key_path") {
        let s = connect(&tls, tls_addr, "localhost").await.unwrap();
        assert_eq!(presented_der(&s), first, "the old pair until the key comes");
        assert!(
            Instant::now() < deadline,
            "no warning: {}",
            gw.log_since(mark)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for _ in 0..6 {
        let s = connect(&tls, tls_addr, "localhost").await.unwrap();
        assert_eq!(presented_der(&s), first, "the old pair until the key comes");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let warnings = gw
        .log_since(mark)
        .matches("still serving the previous")
        .count();
    assert_eq!(warnings, 1, "{}", gw.log_since(mark));

    // The key arrives: the next connections get the new certificate.
    replace(&key, &new_key);
    let want = pem_der(&new_cert);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let s = connect(&tls, tls_addr, "localhost").await.unwrap();
        if presented_der(&s) == want {
            let r = http2(s, "GET", "/v1/models", b"").await;
            assert_eq!(r.0, 200);
            break;
        }
        assert!(Instant::now() < deadline, "{}", gw.log_since(mark));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(gw.log_since(mark).contains("serving the new certificate"));
    assert_eq!(presented_der(&kept), first);
    let r = http2(kept, "GET", "/v1/models", b"").await;
    assert_eq!(r.0, 200);
}

/// Writes `text` beside `path` and renames it over, as tools that renew
/// certificates do.
fn replace(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn pem_der(pem: &str) -> Vec<u8> {
    CertificateDer::from_pem_slice(pem.as_bytes())
        .unwrap()
        .to_vec()
}

#[test]
fn bad_certificates_fail_check_and_startup_naming_the_toml_path() {
    let pki = Pki::new();
    let (cert, key) = pki.write("good", &["localhost"]);
    let (_, other_key) = pki.write("other", &["localhost"]);
    let missing = pki.dir.join("missing.pem");
    let garbage = pki.dir.join("garbage.pem");
    std::fs::write(&garbage, "not a certificate").unwrap();
    let mock = mock();
    let tls_addr = free_addr();
    let cases: Vec<(String, &str)> = vec![
        (
            tls_server(tls_addr, &missing, &key, ""),
            "server.tls.cert_path:",
        ),
        (
            tls_server(tls_addr, &garbage, &key, ""),
            "server.tls.cert_path:",
        ),
        (
            tls_server(tls_addr, &cert, &other_key, ""),
            "does not match the certificate",
        ),
        (
            tls_server(
                tls_addr,
                &cert,
                &key,
                &format!(
                    "\n[[server.tls.certificates]]\ncert_path = \"{}\"\nkey_path = \"{}\"\n",
                    cert.display(),
                    missing.display()
                ),
            ),
            "server.tls.certificates[0].key_path:",
        ),
        (
            format!("tls_listen = \"{tls_addr}\""),
            "server.tls_listen: needs a certificate",
        ),
    ];
    for (server, want) in &cases {
        let text = config(mock.addr, &[], server).replace("LISTEN", "127.0.0.1:1");
        let errs = check_config(&text).expect_err(want);
        assert!(errs.iter().any(|e| e.contains(want)), "{want}: {errs:?}");
        // Running it fails the same way, with an exit code and no panic.
        let dir = pki.dir.join("run");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("gateway.toml");
        std::fs::write(&path, &text).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_modelswitch"))
            .arg("--config")
            .arg(&path)
            .env("RUST_LOG", "warn")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains(want), "{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    // Relative paths are read beside the config file.
    let text = config(
        mock.addr,
        &[],
        &tls_server(tls_addr, Path::new("good.pem"), Path::new("good.key"), ""),
    );
    let path = pki.dir.join("relative.toml");
    std::fs::write(&path, text.replace("LISTEN", "127.0.0.1:1")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_modelswitch"))
        .arg("check")
        .arg("--config")
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_cookie_is_secure_over_tls_only() {
    let pki = Pki::new();
    let (cert, key) = pki.write("server", &["localhost"]);
    let mock = mock();
    let tls_addr = free_addr();
    let gw = start(mock.addr, &tls_server(tls_addr, &cert, &key, ""), tls_addr);
    let body = serde_json::to_vec(&json!({"key": KEY})).unwrap();
    let tls = pki.client(&[b"http/1.1"]);
    let s = connect(&tls, tls_addr, "localhost").await.unwrap();
    let r = http1(s, "POST", "/api/login", &body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let cookie = r.header("set-cookie").unwrap();
    assert!(cookie.contains("; Secure"), "{cookie}");
    // Over HTTP/2 too.
    let tls = pki.client(&[b"h2"]);
    let s = connect(&tls, tls_addr, "localhost").await.unwrap();
    let (status, headers, _) = http2(s, "POST", "/api/login", &body).await;
    assert_eq!(status, 200);
    assert!(headers["set-cookie"].to_str().unwrap().contains("; Secure"));
    // The plain listener's cookie is not Secure (a browser would drop it).
    let r = request(
        gw.addr,
        "POST",
        "/api/login",
        &[("Content-Type", "application/json")],
        &body,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(!r.header("set-cookie").unwrap().contains("Secure"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_tls_client_is_closed_after_the_head_deadline_on_h1_and_h2() {
    let pki = Pki::new();
    let (cert, key) = pki.write("server", &["localhost"]);
    let mock = mock();
    let tls_addr = free_addr();
    let server = format!(
        "client_header_timeout = \"1s\"\n{}",
        tls_server(tls_addr, &cert, &key, "")
    );
    let _gw = start(mock.addr, &server, tls_addr);
    for alpn in [&b"h2"[..], &b"http/1.1"[..]] {
        let tls = pki.client(&[alpn]);
        let mut s = connect(&tls, tls_addr, "localhost").await.unwrap();
        let t = Instant::now();
        let mut buf = Vec::new();
        // The server's h2 SETTINGS may come first; then the close.
        let read = tokio::time::timeout(Duration::from_secs(8), s.read_to_end(&mut buf)).await;
        assert!(read.is_ok(), "{alpn:?}: still open after 8s");
        let took = t.elapsed();
        assert!(
            took >= Duration::from_millis(900) && took < Duration::from_secs(4),
            "{alpn:?}: closed after {took:?}"
        );
    }
    // A client that sent its preface is not held to it: the same h2
    // connection serves a request after a pause longer than the deadline.
    let tls = pki.client(&[b"h2"]);
    let s = connect(&tls, tls_addr, "localhost").await.unwrap();
    let (client, conn) = h2::client::handshake(s).await.unwrap();
    tokio::spawn(conn);
    for _ in 0..2 {
        let mut c = client.clone().ready().await.unwrap();
        let req = http::Request::get("https://localhost/v1/models")
            .header("authorization", format!("Bearer {KEY}"))
            .body(())
            .unwrap();
        let (resp, _) = c.send_request(req, true).unwrap();
        let resp = tokio::time::timeout(Duration::from_secs(5), resp)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(resp.status(), 200);
        tokio::time::sleep(Duration::from_millis(1500)).await;
    }
}

/// Established TCP connections to `port` (from /proc/net/tcp: remote
/// port `port`, state 01), so each loopback connection counts once, from
/// its client's side.
fn established_to(port: u16) -> usize {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    table
        .lines()
        .skip(1)
        .filter(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() > 3
                && f[3] == "01"
                && f[2]
                    .rsplit(':')
                    .next()
                    .and_then(|p| u16::from_str_radix(p, 16).ok())
                    == Some(port)
        })
        .count()
}

/// Upstream HTTP/2 over TLS end to end: a gateway whose provider is
/// `https://localhost:<port>/v1` with `http2 = true`, in front of a second
/// gateway that terminates TLS and offers h2 by ALPN. The front trusts the
/// test CA through `SSL_CERT_FILE`, as it would an operator's private CA.
/// Twenty streams in flight at once ride one connection (HTTP/1.1 would
/// need twenty); with h2 not offered, the front falls back to HTTP/1.1.
#[test]
fn an_https_http2_provider_multiplexes_streams_over_one_tls_connection() {
    let pki = Pki::new();
    let (cert, key) = pki.write("server", &["localhost"]);
    let mock = mock();
    for offer_h2 in [true, false] {
        let tls_addr = free_addr();
        let server = tls_server(
            tls_addr,
            &cert,
            &key,
            if offer_h2 { "" } else { "http2 = false\n" },
        );
        let back = gateway(&config(
            mock.addr,
            &[("slow", &[("openai", "mock;chunks=20;delay_ms=60")])],
            &server,
        ));
        assert!(wait_until(Duration::from_secs(10), || {
            std::net::TcpStream::connect(tls_addr).is_ok()
        }));
        // Each test runs in a process of its own (nextest); the variable
        // reaches only the gateways this test starts.
        std::env::set_var("SSL_CERT_FILE", pki.ca_path());
        let front = live_gateway(&format!(
            r#"
[server]
listen = "LISTEN"
threads = 1
first_event_timeout = "5s"
connect_timeout = "2s"

[[providers]]
name = "back"
type = "openai"
base_url = "https://localhost:{port}/v1"
api_key = "{KEY}"
http2 = true

[[api_keys]]
key = "{KEY}"
name = "admin"
roles = ["admin"]

[[models]]
name = "via-tls"
targets = [{{ provider = "back", model = "slow" }}]
"#,
            port = tls_addr.port()
        ));
        let addr = front.addr();
        let body = serde_json::to_vec(&json!({
            "model": "via-tls", "stream": true,
            "messages": [{"role": "user", "content": "over tls"}]
        }))
        .unwrap();
        let auth = format!("Bearer {KEY}");
        let clients: Vec<_> = (0..20)
            .map(|_| {
                let (body, auth) = (body.clone(), auth.clone());
                std::thread::spawn(move || {
                    request(
                        addr,
                        "POST",
                        "/v1/chat/completions",
                        &[
                            ("authorization", &auth),
                            ("content-type", "application/json"),
                        ],
                        &body,
                    )
                })
            })
            .collect();
        // The streams last over a second: look while they are in flight.
        let mut most = 0;
        let deadline = Instant::now() + Duration::from_millis(900);
        while Instant::now() < deadline {
            most = most.max(established_to(tls_addr.port()));
            std::thread::sleep(Duration::from_millis(50));
        }
        for c in clients {
            let r = c.join().unwrap();
            assert_eq!(r.status, 200, "{}", r.text());
            assert!(r.text().contains("[DONE]"), "{}", r.text());
        }
        let fell_back = front.log().contains("chose HTTP/1.1 (ALPN)");
        if offer_h2 {
            assert_eq!(most, 1, "twenty streams over h2 share one connection");
            assert!(!fell_back);
        } else {
            assert!(most > 1, "HTTP/1.1 needs a connection per stream: {most}");
            assert!(fell_back, "{}", front.log());
        }
        drop(front);
        drop(back);
    }
}
