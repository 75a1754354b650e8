//! Test harness: the real `mock-upstream` and `modelswitch` binaries on
//! ephemeral loopback ports, and a small HTTP/1.1 client. Every wait is
//! bounded so a hang fails fast.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod postgres;
pub mod redis;

use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

pub const KEY: &str = "sk-test-admin-key";
pub const LIMITED_KEY: &str = "sk-test-limited-key";
pub const UPSTREAM_OPENAI_KEY: &str = "sk-upstream-openai-secret";
pub const UPSTREAM_ANTHROPIC_KEY: &str = "sk-upstream-anthropic-secret";

pub struct Proc {
    child: Child,
    pub addr: SocketAddr,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proc {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The exit status once the process has ended (and is reaped), else None.
    pub fn try_wait(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }
}

pub fn mock() -> Proc {
    mock_with(&[])
}

/// The mock upstream with extra command-line options.
pub fn mock_with(args: &[&str]) -> Proc {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mock-upstream"))
        .args(["--listen", "127.0.0.1:0", "--threads", "2"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn mock-upstream");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("mock-upstream did not start");
    let addr = line
        .trim()
        .rsplit(' ')
        .next()
        .unwrap()
        .parse()
        .expect("mock address");
    Proc { child, addr }
}

/// Providers `openai` and `anthropic` on the mock; every model name in
/// `models` routes through the given chain of (provider, upstream model).
pub fn config(mock: SocketAddr, models: &[(&str, &[(&str, &str)])], extra_server: &str) -> String {
    let mut c = format!(
        r#"
[server]
listen = "LISTEN"
threads = 2
first_event_timeout = "3s"
idle_timeout = "2s"
connect_timeout = "1s"
{extra_server}

[[providers]]
name = "openai"
type = "openai"
base_url = "http://{mock}/v1"
api_key = "{UPSTREAM_OPENAI_KEY}"

[[providers]]
name = "anthropic"
type = "anthropic"
base_url = "http://{mock}"
api_key = "{UPSTREAM_ANTHROPIC_KEY}"

# A second Anthropic account: its key cools down on 429 without
# benching the main one.
[[providers]]
name = "anthropic-2"
type = "anthropic"
base_url = "http://{mock}"
api_key = "sk-upstream-anthropic-second"

[[providers]]
name = "dead"
type = "openai"
base_url = "http://127.0.0.1:9/v1"

[[api_keys]]
key = "{KEY}"
name = "admin"
roles = ["admin"]

[[api_keys]]
key = "{LIMITED_KEY}"
name = "limited"
allowed_models = ["oa"]
"#
    );
    for (name, targets) in models {
        let t: Vec<String> = targets
            .iter()
            .map(|(p, m)| format!("{{ provider = \"{p}\", model = \"{m}\" }}"))
            .collect();
        c.push_str(&format!(
            "\n[[models]]\nname = \"{name}\"\ntargets = [{}]\n",
            t.join(", ")
        ));
    }
    if !models.iter().any(|(n, _)| *n == "oa") {
        c.push_str("\n[[models]]\nname = \"oa\"\ntargets = [{ provider = \"openai\", model = \"mock\" }]\n");
    }
    c
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn gateway(config_text: &str) -> Proc {
    spawn_gateway(config_text, None)
}

/// The gateway under an open-files limit of `open_files`.
pub fn gateway_with_open_files(config_text: &str, open_files: u32) -> Proc {
    spawn_gateway(config_text, Some(open_files))
}

fn spawn_gateway(config_text: &str, open_files: Option<u32>) -> Proc {
    launch(config_text, open_files, None).proc
}

/// A fresh, empty directory under the system temp dir.
pub fn fresh_dir() -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "modelswitch-test-{}-{}-{}",
        std::process::id(),
        fastrand_u64(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

struct Launched {
    proc: Proc,
    dir: PathBuf,
    path: PathBuf,
    log: Option<Arc<Mutex<String>>>,
}

/// Starts the gateway from `config_text`, its `LISTEN` replaced by a free
/// loopback address, written to `gateway.toml` in a fresh temp dir.
/// `capture`: the `RUST_LOG` filter, and stderr is captured; `None`:
/// `RUST_LOG=warn` and stderr discarded.
fn launch(config_text: &str, open_files: Option<u32>, capture: Option<&str>) -> Launched {
    let dir = fresh_dir();
    let path = dir.join("gateway.toml");
    let mut last_log = String::new();
    // The port is free when picked; another process may grab it before the
    // gateway binds, so retry a few times.
    for _ in 0..5 {
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        std::fs::write(&path, config_text.replace("LISTEN", &addr.to_string())).unwrap();
        let bin = env!("CARGO_BIN_EXE_modelswitch");
        let mut command = match open_files {
            None => Command::new(bin),
            Some(n) => {
                let mut c = Command::new("sh");
                c.args(["-c", &format!("ulimit -n {n} && exec \"$0\" \"$@\""), bin]);
                c
            }
        };
        command.arg("--config").arg(&path).stdout(Stdio::null());
        match capture {
            None => {
                command.env("RUST_LOG", "warn").stderr(Stdio::null());
            }
            Some(filter) => {
                command.env("RUST_LOG", filter).stderr(Stdio::piped());
            }
        }
        let mut child = command.spawn().expect("spawn modelswitch");
        let log = child.stderr.take().map(capture_pipe);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                break;
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Launched {
                    proc: Proc { child, addr },
                    dir,
                    path,
                    log,
                };
            }
            std::thread::sleep(Duration::from_millis(30));
        }
        let _ = child.kill();
        let _ = child.wait();
        if let Some(log) = &log {
            // The reader sees EOF once the child is gone.
            std::thread::sleep(Duration::from_millis(50));
            last_log = lock(log).clone();
        }
    }
    panic!("gateway did not start\n{last_log}");
}

fn lock(log: &Mutex<String>) -> std::sync::MutexGuard<'_, String> {
    log.lock().unwrap_or_else(|e| e.into_inner())
}

/// A thread that appends everything read from `pipe` to the buffer.
fn capture_pipe(pipe: impl Read + Send + 'static) -> Arc<Mutex<String>> {
    let buf = Arc::new(Mutex::new(String::new()));
    let sink = buf.clone();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(pipe);
        let mut line = Vec::new();
        loop {
            line.clear();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => lock(&sink).push_str(&String::from_utf8_lossy(&line)),
            }
        }
    });
    buf
}

/// A loopback address with no listener (free when picked).
pub fn free_addr() -> SocketAddr {
    format!("127.0.0.1:{}", free_port()).parse().unwrap()
}

/// Polls `f` every 25 ms until it holds (true) or `timeout` passes (false).
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// The log filter of a [`LiveGateway`]: the gateway's own info lines (such
/// as `config reloaded`), warnings from everything else.
pub const LIVE_LOG: &str = "modelswitch=info,warn";

/// A gateway run from a config file the test can rewrite, with its stderr
/// captured for the test to search.
pub struct LiveGateway {
    pub proc: Proc,
    pub dir: PathBuf,
    /// The file given to `--config`.
    pub path: PathBuf,
    log: Arc<Mutex<String>>,
    writes: AtomicU64,
}

/// The gateway on a free port, run with `--config <dir>/gateway.toml` holding
/// `config_text` (`LISTEN` replaced by its address).
pub fn live_gateway(config_text: &str) -> LiveGateway {
    let l = launch(config_text, None, Some(LIVE_LOG));
    LiveGateway {
        proc: l.proc,
        dir: l.dir,
        path: l.path,
        log: l.log.expect("stderr captured"),
        writes: AtomicU64::new(0),
    }
}

/// A [`LiveGateway`] whose stderr is captured at `RUST_LOG=filter`.
pub fn live_gateway_logging(config_text: &str, filter: &str) -> LiveGateway {
    let l = launch(config_text, None, Some(filter));
    LiveGateway {
        proc: l.proc,
        dir: l.dir,
        path: l.path,
        log: l.log.expect("stderr captured"),
        writes: AtomicU64::new(0),
    }
}

impl LiveGateway {
    pub fn addr(&self) -> SocketAddr {
        self.proc.addr
    }

    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }

    /// `text` as it is written to the file: `LISTEN` is the running address.
    pub fn render(&self, text: &str) -> String {
        text.replace("LISTEN", &self.proc.addr.to_string())
    }

    /// Writes a temp file in the same directory and renames it over the
    /// config, as editors and config-management tools do.
    pub fn replace_file(&self, text: &str) {
        let n = self.writes.fetch_add(1, Ordering::Relaxed);
        let tmp = self.dir.join(format!(".gateway.toml.{n}.tmp"));
        std::fs::write(&tmp, self.render(text)).unwrap();
        std::fs::rename(&tmp, &self.path).unwrap();
    }

    /// Truncates the config file and writes `text` into it, same inode.
    pub fn overwrite_file(&self, text: &str) {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&self.path)
            .unwrap();
        f.write_all(self.render(text).as_bytes()).unwrap();
    }

    /// `kill -HUP <pid>`.
    pub fn sighup(&self) {
        let pid = self.pid().to_string();
        let status = Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -HUP {pid} failed");
    }

    /// Everything the gateway wrote to stderr so far.
    pub fn log(&self) -> String {
        lock(&self.log).clone()
    }

    /// A position in the log, for [`Self::log_since`].
    pub fn log_mark(&self) -> usize {
        lock(&self.log).len()
    }

    pub fn log_since(&self, mark: usize) -> String {
        lock(&self.log).get(mark..).unwrap_or("").to_owned()
    }

    /// Waits up to `timeout` for `needle` to appear in the log after `mark`.
    pub fn wait_for_log(&self, mark: usize, needle: &str, timeout: Duration) -> bool {
        wait_until(timeout, || self.log_since(mark).contains(needle))
    }
}

impl Drop for LiveGateway {
    fn drop(&mut self) {
        let _ = self.proc.child.kill();
        let _ = self.proc.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// What `modelswitch check` says of `config_text` (written as is): Ok, or
/// the error lines it prints after its `…: invalid configuration:` line,
/// trimmed.
pub fn check_config(config_text: &str) -> Result<(), Vec<String>> {
    let dir = fresh_dir();
    let path = dir.join("check.toml");
    std::fs::write(&path, config_text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_modelswitch"))
        .arg("check")
        .arg("--config")
        .arg(&path)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run modelswitch check");
    let _ = std::fs::remove_dir_all(&dir);
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    Err(stderr
        .lines()
        .skip_while(|l| !l.contains("invalid configuration"))
        .skip(1)
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect())
}

fn fastrand_u64() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// SSE events as (event name, parsed data); `[DONE]` appears as ("", "[DONE]").
    pub fn events(&self) -> Vec<(String, Value)> {
        let text = self.text();
        text.split("\n\n")
            .filter(|block| !block.trim().is_empty())
            .filter_map(|block| {
                let mut name = String::new();
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event: ") {
                        name = v.to_owned();
                    } else if let Some(v) = line.strip_prefix("data: ") {
                        data = v.to_owned();
                    }
                }
                if data.is_empty() {
                    return None;
                }
                let v = if data == "[DONE]" {
                    Value::String(data)
                } else {
                    serde_json::from_str(&data).unwrap()
                };
                Some((name, v))
            })
            .collect()
    }
}

pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(15))).unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).unwrap();
    // A server may answer (413) before reading a huge body.
    let _ = s.write_all(body);
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    parse_response(&raw, method == "HEAD")
}

pub fn parse_response(raw: &[u8], head_only: bool) -> Response {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no response head: {:?}", String::from_utf8_lossy(raw)));
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| {
            l.split_once(':')
                .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        })
        .collect();
    let rest = &raw[end + 4..];
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"));
    let body = if head_only {
        Vec::new()
    } else if chunked {
        dechunk(rest)
    } else {
        rest.to_vec()
    };
    Response {
        status,
        headers,
        body,
    }
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(p) = b.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size = usize::from_str_radix(String::from_utf8_lossy(&b[..p]).trim(), 16).unwrap_or(0);
        if size == 0 {
            return out;
        }
        let start = p + 2;
        let end = (start + size).min(b.len());
        out.extend_from_slice(&b[start..end]);
        if end + 2 > b.len() {
            return out;
        }
        b = &b[end + 2..];
    }
}

/// An admin API call with a key and an optional JSON body.
pub fn api_call(
    gw: SocketAddr,
    method: &str,
    path: &str,
    key: &str,
    body: Option<&Value>,
) -> Response {
    let auth = format!("Bearer {key}");
    let body = body.map(Value::to_string).unwrap_or_default();
    request(
        gw,
        method,
        path,
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        body.as_bytes(),
    )
}

pub fn post_json(addr: SocketAddr, path: &str, key: &str, body: &Value) -> Response {
    let auth = format!("Bearer {key}");
    request(
        addr,
        "POST",
        path,
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        body.to_string().as_bytes(),
    )
}

pub fn mock_stats(mock: SocketAddr) -> Value {
    request(mock, "GET", "/_mock/stats", &[], b"").json()
}
