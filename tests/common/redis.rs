//! A real `redis-server` for tests of the shared limiter: a free loopback
//! port, its own temp dir, nothing persisted; stopped and restarted on the
//! same port to play an outage; killed on drop. Every wait is bounded.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where `make deps` (apt's `redis-server`) puts it.
pub const REDIS_SERVER: &str = "/usr/bin/redis-server";

/// How long a starting server may take to answer PING.
const START: Duration = Duration::from_secs(5);

pub struct Redis {
    child: Option<Child>,
    pub port: u16,
    dir: PathBuf,
}

impl Redis {
    /// A server on a free port. Panics, naming `make deps`, when the
    /// binary is missing: a skipped Redis test would pass silently.
    pub fn start() -> Self {
        assert!(
            Path::new(REDIS_SERVER).exists(),
            "{REDIS_SERVER} is missing: the Redis limiter tests need it; `make deps` installs it"
        );
        for attempt in 0..5 {
            // Free when picked; another process may take it before redis
            // binds, hence the attempts.
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("a free port")
                .port();
            let dir = std::env::temp_dir().join(format!(
                "modelswitch-test-redis-{}-{port}-{attempt}",
                std::process::id()
            ));
            std::fs::create_dir_all(&dir).expect("redis temp dir");
            let mut server = Self {
                child: None,
                port,
                dir,
            };
            if server.launch() {
                return server;
            }
        }
        panic!("redis-server did not start on any of 5 ports");
    }

    /// `redis://127.0.0.1:PORT` for `[limits] redis_url`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills the server (an outage); the port stays reserved for
    /// [`Self::restart`].
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// A fresh, empty server on the same port.
    pub fn restart(&mut self) {
        self.stop();
        assert!(
            self.launch(),
            "redis-server did not restart on port {}",
            self.port
        );
    }

    pub fn ping(&self) -> bool {
        ping(self.port)
    }

    /// Starts the server on `self.port`; false if it exited or did not
    /// answer PING in time.
    fn launch(&mut self) -> bool {
        let child = Command::new(REDIS_SERVER)
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("{REDIS_SERVER} did not start ({e}); `make deps` installs it")
            });
        self.child = Some(child);
        let deadline = Instant::now() + START;
        while Instant::now() < deadline {
            let exited = self
                .child
                .as_mut()
                .is_some_and(|c| c.try_wait().ok().flatten().is_some());
            if exited {
                self.child = None;
                return false;
            }
            if ping(self.port) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.stop();
        false
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn ping(port: u16) -> bool {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    let _ = s.set_write_timeout(Some(Duration::from_millis(500)));
    let mut buf = [0u8; 16];
    s.write_all(b"PING\r\n").is_ok()
        && s.read(&mut buf)
            .is_ok_and(|n| buf[..n].starts_with(b"+PONG"))
}
