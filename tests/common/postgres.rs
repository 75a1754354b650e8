//! A real PostgreSQL server for tests of the Postgres store: Debian's
//! `postgresql` package, a fresh cluster in a temp dir (initdb), a free
//! loopback port, password login (scram) so URLs carry a secret as in
//! production; stopped and started again on the same port and data to play
//! an outage; stopped on drop. Every wait is bounded.
//!
//! As root (CI, the dev machines) the server runs as the `postgres` user:
//! PostgreSQL refuses to run as root.

use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Where Debian's `postgresql` puts each version's binaries.
pub const PG_ROOT: &str = "/usr/lib/postgresql";
/// The superuser `initdb` makes, and the database the tests use.
pub const USER: &str = "modelswitch";
pub const DB: &str = "modelswitch";
/// How long a starting server may take to accept connections.
const START: Duration = Duration::from_secs(20);
/// How long a fast shutdown may take before the server is killed.
const STOP: Duration = Duration::from_secs(10);

pub struct Postgres {
    child: Option<Child>,
    pub port: u16,
    /// The login's password: a test checks it never shows.
    pub password: String,
    bin: PathBuf,
    dir: PathBuf,
    /// uid and gid to run the server as (set when the tests run as root).
    run_as: Option<(u32, u32)>,
}

impl Postgres {
    /// A fresh cluster with the database [`DB`], on a free port. Panics
    /// with the one-line fix when PostgreSQL is not installed: a skipped
    /// Postgres test would pass silently.
    pub fn start() -> Self {
        Self::start_with(false)
    }

    /// The same, with TLS on (a self-signed certificate made by `openssl`)
    /// and required: a connection without it is refused.
    pub fn start_tls() -> Self {
        Self::start_with(true)
    }

    fn start_with(tls: bool) -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let bin = bin_dir();
        let run_as = run_as();
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let dir = std::env::temp_dir().join(format!(
            "modelswitch-test-pg-{}-{n}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(dir.join("sock")).expect("postgres temp dir");
        // A password no test text could contain by chance.
        let password = format!("pg-Secret-{nanos}-{n}");
        std::fs::write(dir.join("pwfile"), format!("{password}\n")).expect("pwfile");
        if let Some((uid, gid)) = run_as {
            for p in [dir.clone(), dir.join("sock"), dir.join("pwfile")] {
                std::os::unix::fs::chown(&p, Some(uid), Some(gid)).expect("chown to postgres");
            }
        }
        let mut server = Self {
            child: None,
            port: 0,
            password,
            bin,
            dir,
            run_as,
        };
        server.initdb();
        if tls {
            server.require_tls();
        }
        for _ in 0..5 {
            // Free when picked; another process may take it before the
            // server binds, hence the attempts.
            server.port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("a free port")
                .port();
            if server.launch() {
                server.psql_on("postgres", &format!("CREATE DATABASE {DB}"));
                return server;
            }
        }
        panic!(
            "postgres did not start on any of 5 ports; its log:\n{}",
            server.log()
        );
    }

    /// `postgres://modelswitch:<password>@127.0.0.1:<port>/modelswitch`,
    /// for `[storage] postgres_url`.
    pub fn url(&self) -> String {
        format!(
            "postgres://{USER}:{}@127.0.0.1:{}/{DB}",
            self.password, self.port
        )
    }

    /// Stops the server (a fast shutdown: sessions are cut, as in a crash
    /// of the database host); the data and the port stay for [`Self::start_again`].
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + STOP;
        while Instant::now() < deadline {
            if child.try_wait().ok().flatten().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    /// The same cluster (its rows kept) on the same port.
    pub fn start_again(&mut self) {
        self.stop();
        assert!(
            self.launch(),
            "postgres did not start again on port {}; its log:\n{}",
            self.port,
            self.log()
        );
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Runs `sql` in the test database; its rows, one per line, columns
    /// separated by `|`. Panics on an error.
    pub fn psql(&self, sql: &str) -> String {
        self.psql_on(DB, sql)
    }

    /// One integer from `sql` (a `count(*)`, a sum).
    pub fn scalar(&self, sql: &str) -> i64 {
        let out = self.psql(sql);
        out.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{sql}: not an integer: {out:?}"))
    }

    fn psql_on(&self, db: &str, sql: &str) -> String {
        let out = Command::new(self.bin.join("psql"))
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["-U", USER, "-d", db, "-X", "-A", "-t", "-q"])
            .args(["-v", "ON_ERROR_STOP=1", "-c", sql])
            .env("PGPASSWORD", &self.password)
            .env("PGCONNECT_TIMEOUT", "5")
            .stdin(Stdio::null())
            .output()
            .expect("psql runs");
        assert!(
            out.status.success(),
            "psql {sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The server's own log (startup failures, errors).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }

    fn command(&self, program: &str) -> Command {
        let mut c = Command::new(self.bin.join(program));
        if let Some((uid, gid)) = self.run_as {
            // std drops root's supplementary groups with the uid.
            c.uid(uid).gid(gid);
        }
        c.current_dir(&self.dir);
        c
    }

    fn initdb(&self) {
        let out = self
            .command("initdb")
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-U", USER, "--auth=scram-sha-256", "--no-sync"])
            .args(["-E", "UTF8", "--locale=C"])
            .arg(format!("--pwfile={}", self.dir.join("pwfile").display()))
            .stdin(Stdio::null())
            .output()
            .expect("initdb runs");
        assert!(
            out.status.success(),
            "initdb failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A test CA (`ca.crt`, for clients to verify with), a server
    /// certificate it signed for IP 127.0.0.1, and a `pg_hba.conf` that
    /// accepts TCP logins over TLS only.
    fn require_tls(&self) {
        let data = self.dir.join("data");
        let ext = self.dir.join("server.ext");
        std::fs::write(&ext, "subjectAltName=IP:127.0.0.1\n").expect("server.ext");
        let ca = |f: &str| self.dir.join(f).display().to_string();
        let server = |f: &str| data.join(f).display().to_string();
        let steps: [Vec<String>; 3] = [
            // The CA: self-signed, CA:TRUE (openssl's v3_ca).
            vec![
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            ]
            .into_iter()
            .map(String::from)
            .chain(["-subj".into(), "/CN=modelswitch test CA".into()])
            .chain(["-keyout".into(), ca("ca.key"), "-out".into(), ca("ca.crt")])
            .collect(),
            vec![
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-subj",
                "/CN=127.0.0.1",
            ]
            .into_iter()
            .map(String::from)
            .chain(["-keyout".into(), server("server.key")])
            .chain(["-out".into(), ca("server.csr")])
            .collect(),
            vec!["x509", "-req", "-days", "2", "-CAcreateserial"]
                .into_iter()
                .map(String::from)
                .chain(["-in".into(), ca("server.csr"), "-CA".into(), ca("ca.crt")])
                .chain([
                    "-CAkey".into(),
                    ca("ca.key"),
                    "-extfile".into(),
                    ca("server.ext"),
                ])
                .chain(["-out".into(), server("server.crt")])
                .collect(),
        ];
        for args in steps {
            let out = Command::new("openssl")
                .args(&args)
                .stdin(Stdio::null())
                .output()
                .expect("openssl runs");
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::fs::write(
            data.join("pg_hba.conf"),
            "local all all scram-sha-256\nhostssl all all 127.0.0.1/32 scram-sha-256\n",
        )
        .expect("pg_hba.conf");
        // PostgreSQL reads its key only if no one else can.
        use std::os::unix::fs::PermissionsExt;
        for f in ["server.key", "server.crt", "pg_hba.conf"] {
            let p = data.join(f);
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).expect("chmod");
            if let Some((uid, gid)) = self.run_as {
                std::os::unix::fs::chown(&p, Some(uid), Some(gid)).expect("chown to postgres");
            }
        }
        let mut conf = std::fs::OpenOptions::new()
            .append(true)
            .open(data.join("postgresql.conf"))
            .expect("postgresql.conf");
        std::io::Write::write_all(&mut conf, b"ssl = on\n").expect("postgresql.conf");
    }

    /// The CA certificate clients verify the server with (`sslrootcert`).
    pub fn ca_certificate(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }

    /// Starts the server on `self.port`; false if it exited or did not
    /// accept connections in time.
    fn launch(&mut self) -> bool {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("server.log"))
            .expect("server log");
        let child = self
            .command("postgres")
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-p", &self.port.to_string()])
            .arg("-k")
            .arg(self.dir.join("sock"))
            .args(["-c", "listen_addresses=127.0.0.1"])
            // Durability is not under test: a test's rows need no fsync.
            .args(["-c", "fsync=off", "-c", "full_page_writes=off"])
            .args(["-c", "shared_buffers=16MB", "-c", "max_connections=40"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("server log"))
            .stderr(log)
            .spawn()
            .expect("postgres runs");
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
            let ready = Command::new(self.bin.join("pg_isready"))
                .args(["-q", "-h", "127.0.0.1", "-p", &self.port.to_string()])
                .args(["-t", "1"])
                .status()
                .is_ok_and(|s| s.success());
            if ready {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.stop();
        false
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The newest installed version's `bin`.
fn bin_dir() -> PathBuf {
    let newest = std::fs::read_dir(PG_ROOT)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("postgres").exists().then_some((version, bin))
        })
        .max_by_key(|(v, _)| *v);
    match newest {
        Some((_, bin)) => bin,
        None => panic!(
            "PostgreSQL is not installed ({PG_ROOT}/<version>/bin/postgres is missing): \
             run `apt-get install -y postgresql` (`make deps` does it)"
        ),
    }
}

/// The `postgres` user's ids when running as root, else None.
fn run_as() -> Option<(u32, u32)> {
    let root = std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
    if !root {
        return None;
    }
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let ids = passwd.lines().find_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        (f.first() == Some(&"postgres") && f.len() > 3)
            .then(|| Some((f[2].parse().ok()?, f[3].parse().ok()?)))
            .flatten()
    });
    match ids {
        Some(ids) => Some(ids),
        None => panic!(
            "no `postgres` user to run PostgreSQL as (it refuses root): \
             run `apt-get install -y postgresql` (`make deps` does it)"
        ),
    }
}
