//! The operator's CLI over real processes: the workspace's first run and
//! its admin key against the gateway it runs, the access log file, service
//! install/uninstall under a root, `status`, `chat`, `models` and `usage`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{api_call, free_addr, mock, post_json, wait_until};
use serde_json::json;
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_modelswitch");

/// A fresh directory, removed when dropped.
struct Temp(PathBuf);

impl Temp {
    fn new(tag: &str) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let d = std::env::temp_dir().join(format!(
            "modelswitch-ops-{tag}-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&d).unwrap();
        Self(d)
    }
}

impl Drop for Temp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The binary with `args`, `HOME` pointed at `home` (so no default
/// workspace lands in the real one), `stdin` fed, bounded to 60 s.
fn ms_in(home: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .env("HOME", home)
        .env_remove("MODELSWITCH_WORKSPACE")
        .env_remove("MODELSWITCH_ADMIN_KEY")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).unwrap();
    }
    drop(input);
    let (tx, rx) = std::sync::mpsc::channel();
    let pid = child.id();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(out) => out.unwrap(),
        Err(_) => {
            let _ = Command::new("kill").arg(pid.to_string()).status();
            panic!("modelswitch {args:?} did not finish in 60 s");
        }
    }
}

fn ms(home: &Path, args: &[&str]) -> Output {
    ms_in(home, args, None)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A gateway process, killed when dropped.
struct Running {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The gateway on `addr`, its stderr appended to `stderr`.
fn start(home: &Path, args: &[&str], addr: SocketAddr, stderr: &Path) -> Running {
    let stderr = std::fs::File::create(stderr).unwrap();
    let child = Command::new(BIN)
        .args(args)
        .env("HOME", home)
        .env_remove("MODELSWITCH_WORKSPACE")
        // The access log is info: whatever the runner's RUST_LOG says.
        .env("RUST_LOG", "modelswitch=info,warn")
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap();
    let mut g = Running { child, addr };
    let up = wait_until(Duration::from_secs(15), || {
        g.child.try_wait().ok().flatten().is_none()
            && TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
    });
    assert!(up, "the gateway did not start: {:?}", g.child.try_wait());
    g
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

fn admin_key(stdout: &str) -> Option<String> {
    stdout
        .split_whitespace()
        .find(|w| w.starts_with("sk-ms-"))
        .map(str::to_owned)
}

#[test]
fn the_first_run_makes_a_workspace_whose_admin_key_runs_the_gateway() {
    let home = Temp::new("home");
    let ws = home.0.join("ws");
    let w = ws.to_str().unwrap();
    // The first run makes the workspace and prints the key, once.
    let first = ms(&home.0, &["check", "--workspace", w]);
    let out = text(&first.stdout);
    assert!(first.status.success(), "{out}{}", text(&first.stderr));
    let key = admin_key(&out).unwrap_or_else(|| panic!("no key printed: {out}"));
    assert!(out.contains("not shown again"), "{out}");
    assert_eq!(mode(&ws), 0o700);
    assert_eq!(mode(&ws.join("data")), 0o700);
    assert_eq!(mode(&ws.join("logs")), 0o700);
    assert_eq!(mode(&ws.join("config.toml")), 0o600);
    assert!(ws.join("data/modelswitch.db").exists());
    let second = ms(&home.0, &["check", "--workspace", w]);
    assert!(second.status.success());
    assert_eq!(admin_key(&text(&second.stdout)), None);
    assert!(text(&second.stdout).contains(": ok ("));
    // MODELSWITCH_WORKSPACE names it as well; --config wins over both.
    let by_env = Command::new(BIN)
        .arg("check")
        .env("MODELSWITCH_WORKSPACE", &ws)
        .env("HOME", &home.0)
        .output()
        .unwrap();
    assert!(text(&by_env.stdout).contains("ws/config.toml: ok"));

    // The workspace's config with a port of the test's and the mock as
    // its one provider.
    let m = mock();
    let addr = free_addr();
    let config = std::fs::read_to_string(ws.join("config.toml")).unwrap();
    let config = config.replace(
        "listen = \"127.0.0.1:8000\"",
        &format!("listen = \"{addr}\""),
    );
    assert!(config.contains(&addr.to_string()));
    let config = format!(
        "{config}\n[[providers]]\nname = \"mock-openai\"\ntype = \"openai\"\n\
         base_url = \"http://{}/v1\"\napi_key = \"sk-mock\"\n\n\
         [[models]]\nname = \"demo\"\ntargets = [{{ provider = \"mock-openai\", model = \"mock\" }}]\n",
        m.addr
    );
    std::fs::write(ws.join("config.toml"), config).unwrap();
    let stderr = home.0.join("gateway.stderr");
    let gw = start(&home.0, &["--workspace", w], addr, &stderr);
    assert_eq!(
        api_call(gw.addr, "GET", "/api/overview", &key, None).status,
        200
    );
    assert_eq!(
        api_call(gw.addr, "GET", "/api/overview", "sk-ms-wrong", None).status,
        401
    );
    for i in 0..3 {
        let r = post_json(
            gw.addr,
            "/v1/chat/completions",
            &key,
            &json!({"model": "demo", "messages": [{"role": "user", "content": format!("hi {i}")}]}),
        );
        assert_eq!(r.status, 200, "{}", text(&r.body));
    }
    // The access log goes to logs/access.log, not stderr.
    let access = ws.join("logs/access.log");
    assert!(
        wait_until(Duration::from_secs(10), || {
            std::fs::read_to_string(&access)
                .is_ok_and(|t| t.lines().filter(|l| l.contains("model=demo")).count() == 3)
        }),
        "{:?}",
        std::fs::read_to_string(&access)
    );

    // Not on stderr as well, which still has the gateway's other lines.
    let err = std::fs::read_to_string(&stderr).unwrap();
    assert!(err.contains("modelswitch listening on"), "{err}");
    assert!(!err.contains("model=demo"), "{err}");

    // status: the listener and the provider table.
    let st = ms_in(
        &home.0,
        &[
            "status",
            "--workspace",
            w,
            "--url",
            &format!("http://{addr}"),
            "--key",
            "-",
        ],
        Some(&format!("{key}\n")),
    );
    let st_out = text(&st.stdout);
    assert!(st.status.success(), "{st_out}{}", text(&st.stderr));
    assert!(st_out.contains(&format!("listen:   {addr}")), "{st_out}");
    assert!(st_out.contains("PROVIDER"), "{st_out}");
    assert!(st_out.contains("mock-openai  mock"), "{st_out}");
    assert!(st_out.contains("closed"), "{st_out}");
    // Without --url it finds the gateway from the config; without a key
    // it says how to get the details.
    let st = ms(&home.0, &["status", "--workspace", w]);
    assert!(text(&st.stdout).contains("up"), "{}", text(&st.stdout));
    assert!(text(&st.stdout).contains("MODELSWITCH_ADMIN_KEY"));

    // usage: the three requests, under the admin key and the model.
    let mut last = String::new();
    let counted = wait_until(Duration::from_secs(15), || {
        let u = ms(&home.0, &["usage", "--workspace", w, "--since", "24h"]);
        last = text(&u.stdout) + &text(&u.stderr);
        last.lines()
            .any(|l| l.starts_with("admin ") && l.split_whitespace().nth(1) == Some("3"))
            && last
                .lines()
                .any(|l| l.starts_with("demo ") && l.split_whitespace().nth(1) == Some("3"))
    });
    assert!(counted, "{last}");
}

/// `GET /api/overview` with each of `keys` on a gateway run from the
/// workspace (its listen moved to a free port): the statuses.
fn overview_with(home: &Path, ws: &Path, keys: &[&str]) -> Vec<u16> {
    let addr = free_addr();
    let config = std::fs::read_to_string(ws.join("config.toml"))
        .unwrap()
        .replace(
            "listen = \"127.0.0.1:8000\"",
            &format!("listen = \"{addr}\""),
        );
    assert!(config.contains(&addr.to_string()));
    std::fs::write(ws.join("config.toml"), config).unwrap();
    let gw = start(
        home,
        &["--workspace", ws.to_str().unwrap()],
        addr,
        &home.join("overview.stderr"),
    );
    keys.iter()
        .map(|k| api_call(gw.addr, "GET", "/api/overview", k, None).status)
        .collect()
}

#[test]
fn two_first_runs_at_once_make_one_admin_key_that_works() {
    let home = Temp::new("race");
    let ws = home.0.join("ws");
    let w = ws.to_str().unwrap().to_owned();
    let runs: Vec<_> = (0..2)
        .map(|_| {
            let (h, w) = (home.0.clone(), w.clone());
            std::thread::spawn(move || ms(&h, &["check", "--workspace", &w]))
        })
        .collect();
    let outs: Vec<Output> = runs.into_iter().map(|t| t.join().unwrap()).collect();
    for o in &outs {
        assert!(o.status.success(), "{}{}", text(&o.stdout), text(&o.stderr));
        assert!(text(&o.stdout).contains(": ok ("), "{}", text(&o.stdout));
    }
    let keys: Vec<String> = outs
        .iter()
        .filter_map(|o| admin_key(&text(&o.stdout)))
        .collect();
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert_eq!(overview_with(&home.0, &ws, &[&keys[0]]), [200]);
}

#[test]
fn an_admin_key_never_shown_is_replaced_by_the_next_first_run() {
    let home = Temp::new("orphan");
    let ws = home.0.join("ws");
    let w = ws.to_str().unwrap();
    let first = ms(&home.0, &["check", "--workspace", w]);
    let old = admin_key(&text(&first.stdout)).unwrap();
    // A store holding an 'admin' key and no config.toml: a first run that
    // crashed before the rename, or could not print the key.
    std::fs::remove_file(ws.join("config.toml")).unwrap();
    let again = ms(&home.0, &["check", "--workspace", w]);
    assert!(again.status.success(), "{}", text(&again.stderr));
    let new = admin_key(&text(&again.stdout)).expect("a fresh key");
    assert_ne!(new, old);
    assert_eq!(overview_with(&home.0, &ws, &[&new, &old]), [200, 401]);
}

#[test]
fn a_first_run_of_another_verb_keeps_its_stdout_clean() {
    let home = Temp::new("json");
    let ws = home.0.join("ws");
    let out = ms(
        &home.0,
        &[
            "keys",
            "list",
            "--json",
            "--workspace",
            ws.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", text(&out.stdout)));
    assert!(listed.to_string().contains("admin"), "{listed}");
    assert_eq!(admin_key(&text(&out.stdout)), None);
    // The welcome went to stderr instead.
    assert!(
        admin_key(&text(&out.stderr)).is_some(),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_config_file_wins_and_no_workspace_is_made() {
    let home = Temp::new("cfg");
    let m = mock();
    let path = home.0.join("gateway.toml");
    std::fs::write(
        &path,
        common::config(m.addr, &[], "").replace("LISTEN", "127.0.0.1:1"),
    )
    .unwrap();
    let out = ms(
        &home.0,
        &[
            "check",
            "--config",
            path.to_str().unwrap(),
            "--workspace",
            "ws",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(!home.0.join("ws").exists());
    assert!(!home.0.join(".modelswitch").exists());
    assert_eq!(admin_key(&text(&out.stdout)), None);
}

/// `key=value` lines of the unit, comments and sections skipped.
fn ini(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.starts_with('['))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

#[test]
fn install_writes_a_unit_systemd_accepts_and_uninstall_removes_it() {
    let home = Temp::new("unit");
    let root = home.0.join("root");
    let ws = home.0.join("ws");
    let (r, w) = (root.to_str().unwrap(), ws.to_str().unwrap());
    let args = [
        "install",
        "--root",
        r,
        "--platform",
        "linux",
        "--workspace",
        w,
    ];
    let out = ms(&home.0, &args);
    assert!(out.status.success(), "{}", text(&out.stderr));
    // --root: nothing outside it, no systemctl.
    assert!(!ws.exists());
    assert!(!text(&out.stdout).contains("running:"));
    let unit = root.join("etc/systemd/system/modelswitch.service");
    let body = std::fs::read_to_string(&unit).unwrap();
    let kv = ini(&body);
    let get = |k: &str| {
        kv.iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let bin = std::fs::canonicalize(BIN).unwrap();
    assert_eq!(
        get("ExecStart"),
        format!("{} --workspace {w} run", bin.display())
    );
    // The workspace is missing (--root makes none): `-` so the unit does
    // not fail on it.
    assert_eq!(get("ReadWritePaths"), format!("-{w}"));
    assert_eq!(get("EnvironmentFile"), format!("-{w}/env"));
    assert_eq!(get("Restart"), "on-failure");
    assert_eq!(get("ProtectSystem"), "strict");
    assert_eq!(get("LimitNOFILE"), "65536");
    assert_eq!(get("TimeoutStopSec"), "45");
    // A second install refuses, --force replaces.
    assert!(!ms(&home.0, &args).status.success());
    let forced: Vec<&str> = args.iter().copied().chain(["--force"]).collect();
    assert!(ms(&home.0, &forced).status.success());
    systemd_verifies(&unit, "");
    // A workspace that exists, at a path with a space, owned by whoever
    // runs the test; and a --config whose data lives elsewhere.
    let spaced = home.0.join("my ws");
    let sw = spaced.to_str().unwrap();
    assert!(ms(&home.0, &["check", "--workspace", sw]).status.success());
    let etc = home.0.join("etc");
    std::fs::create_dir_all(&etc).unwrap();
    let data = home.0.join("var");
    let conf = etc.join("gw.toml");
    std::fs::write(
        &conf,
        format!(
            "[server]\nlisten = \"127.0.0.1:1\"\nshutdown_grace = \"18446744073709551615s\"\n\
             [storage]\nsqlite_path = \"{d}/ms.db\"\n[logging]\ndir = \"{d}/conv\"\n",
            d = data.display()
        ),
    )
    .unwrap();
    let uid = text(&Command::new("id").arg("-u").output().unwrap().stdout)
        .trim()
        .to_owned();
    let user_line = if uid == "0" {
        String::new()
    } else {
        uid.clone()
    };
    for (source, rw, env) in [
        (
            ["--workspace", sw],
            format!("\"-{sw}\""),
            format!("-{sw}/env"),
        ),
        (
            ["--config", conf.to_str().unwrap()],
            format!("-{d} -{d}/conv", d = data.display()),
            format!("-{}/modelswitch.env", etc.display()),
        ),
    ] {
        let mut a = vec!["install", "--root", r, "--platform", "linux", "--force"];
        a.extend(source);
        let out = ms(&home.0, &a);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let body = std::fs::read_to_string(&unit).unwrap();
        let kv = ini(&body);
        let get = |k: &str| {
            kv.iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        assert_eq!(get("ReadWritePaths"), rw, "{body}");
        assert_eq!(get("EnvironmentFile"), env, "{body}");
        assert_eq!(get("User"), user_line, "{body}");
        // The huge grace is clamped to the hour the gateway accepts.
        if source[0] == "--config" {
            assert_eq!(get("TimeoutStopSec"), "3615", "{body}");
        }
        systemd_verifies(&unit, &body);
    }
    // --user goes under $HOME.
    let user = ms(
        &home.0,
        &[
            "install",
            "--user",
            "--root",
            r,
            "--platform",
            "linux",
            "--workspace",
            w,
        ],
    );
    assert!(user.status.success(), "{}", text(&user.stderr));
    let user_unit = rooted(
        &root,
        &home.0.join(".config/systemd/user/modelswitch.service"),
    );
    assert!(ini(&std::fs::read_to_string(&user_unit).unwrap())
        .contains(&("WantedBy".into(), "default.target".into())));
    for (scope, path) in [(None, &unit), (Some("--user"), &user_unit)] {
        let mut a = vec!["uninstall", "--root", r, "--platform", "linux"];
        a.extend(scope);
        let out = ms(&home.0, &a);
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert!(!path.exists());
    }
    assert!(
        !ms(&home.0, &["uninstall", "--root", r, "--platform", "linux"])
            .status
            .success()
    );
}

fn rooted(root: &Path, p: &Path) -> PathBuf {
    root.join(p.strip_prefix("/").unwrap())
}

#[test]
fn install_writes_a_launchd_plist_on_macos() {
    let home = Temp::new("plist");
    let root = home.0.join("root");
    let ws = home.0.join("ws");
    let (r, w) = (root.to_str().unwrap(), ws.to_str().unwrap());
    for (user, path) in [
        (
            false,
            root.join("Library/LaunchDaemons/dev.modelswitch.gateway.plist"),
        ),
        (
            true,
            rooted(
                &root,
                &home
                    .0
                    .join("Library/LaunchAgents/dev.modelswitch.gateway.plist"),
            ),
        ),
    ] {
        let mut a = vec![
            "install",
            "--root",
            r,
            "--platform",
            "macos",
            "--workspace",
            w,
        ];
        if user {
            a.push("--user");
        }
        let out = ms(&home.0, &a);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let body = std::fs::read_to_string(&path).unwrap();
        assert!(body.starts_with("<?xml"), "{body}");
        let script =
            "import plistlib,sys,json; print(json.dumps(plistlib.load(open(sys.argv[1],'rb'))))";
        match Command::new("python3")
            .args(["-c", script])
            .arg(&path)
            .output()
        {
            Ok(o) if o.status.success() => {
                let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
                assert_eq!(v["Label"], "dev.modelswitch.gateway");
                let bin = std::fs::canonicalize(BIN).unwrap();
                assert_eq!(
                    v["ProgramArguments"],
                    json!([bin.to_str().unwrap(), "--workspace", w, "run"])
                );
                assert_eq!(v["RunAtLoad"], true);
                assert_eq!(v["KeepAlive"]["SuccessfulExit"], false);
                assert_eq!(v["StandardErrorPath"], format!("{w}/logs/gateway.err.log"));
            }
            // No python3 with plistlib: the keys as text.
            _ => {
                for k in [
                    "Label",
                    "ProgramArguments",
                    "RunAtLoad",
                    "KeepAlive",
                    "StandardOutPath",
                ] {
                    assert!(body.contains(&format!("<key>{k}</key>")), "{body}");
                }
            }
        }
        let mut a = vec!["uninstall", "--root", r, "--platform", "macos"];
        if user {
            a.push("--user");
        }
        assert!(ms(&home.0, &a).status.success());
        assert!(!path.exists());
    }
}

/// A config file for `chat` and `models` (nothing listens).
fn chat_config(dir: &Path, mock: SocketAddr) -> String {
    let path = dir.join("gateway.toml");
    let text = common::config(
        mock,
        &[
            ("oa", &[("openai", "mock")]),
            ("an", &[("anthropic", "mock;text=from anthropic")]),
            (
                "fallback",
                &[
                    ("openai", "mock;status=503"),
                    ("anthropic", "mock;text=second"),
                ],
            ),
            ("broken", &[("openai", "mock;status=503"), ("dead", "x")]),
        ],
        "",
    )
    .replace("LISTEN", "127.0.0.1:1");
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

#[test]
fn chat_streams_one_answer_and_falls_over_before_the_first_text() {
    let home = Temp::new("chat");
    let m = mock();
    let c = chat_config(&home.0, m.addr);
    let out = ms(
        &home.0,
        &["chat", "--config", &c, "-m", "oa", "hello from the cli"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("hello from the cli"),
        "{}",
        text(&out.stdout)
    );
    // From stdin, to an Anthropic provider.
    let out = ms_in(
        &home.0,
        &["chat", "--config", &c, "-m", "an"],
        Some("piped\n"),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), "from anthropic");
    // The first target fails: the second answers, the failure on stderr.
    let out = ms(&home.0, &["chat", "--config", &c, "-m", "fallback", "hi"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), "second");
    assert!(
        text(&out.stderr).contains("openai/mock;status=503"),
        "{}",
        text(&out.stderr)
    );
    // Every target fails: non-zero, and why.
    let out = ms(&home.0, &["chat", "--config", &c, "-m", "broken", "hi"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("every target failed"),
        "{}",
        text(&out.stderr)
    );
    assert!(text(&out.stdout).is_empty());
    let out = ms(&home.0, &["chat", "--config", &c, "-m", "nope", "hi"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn models_list_and_test_report_each_target() {
    let home = Temp::new("models");
    let m = mock();
    let c = chat_config(&home.0, m.addr);
    let out = ms(&home.0, &["models", "list", "--config", &c]);
    let list = text(&out.stdout);
    assert!(out.status.success());
    assert!(
        list.lines().any(|l| l.starts_with("fallback ")
            && l.contains("openai/mock;status=503, anthropic/mock;text=second")),
        "{list}"
    );
    // A chain with a failing target still works: exit 0, the row says 503.
    let out = ms(&home.0, &["models", "test", "fallback", "--config", &c]);
    let table = text(&out.stdout);
    assert!(out.status.success(), "{table}{}", text(&out.stderr));
    assert!(
        table
            .lines()
            .any(|l| l.contains("openai/mock;status=503") && l.contains(" 503 ")),
        "{table}"
    );
    assert!(
        table
            .lines()
            .any(|l| l.contains("anthropic/mock;text=second")
                && l.contains(" ok ")
                && l.contains("second")),
        "{table}"
    );
    assert!(table.contains(" ms "), "{table}");
    // Every model: `broken` has no working target, so non-zero.
    let out = ms(&home.0, &["models", "test", "--config", &c]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("no working target: broken"),
        "{}",
        text(&out.stderr)
    );
    let rows = text(&out.stdout);
    assert!(
        rows.lines()
            .any(|l| l.starts_with("broken") && l.contains("dead/x") && l.contains("failed")),
        "{rows}"
    );
    assert!(
        rows.lines()
            .any(|l| l.starts_with("oa ") && l.contains(" ok ")),
        "{rows}"
    );
}

#[test]
fn every_verb_has_help() {
    let home = Temp::new("help");
    for verb in [
        "run",
        "check",
        "chat",
        "models",
        "usage",
        "install",
        "uninstall",
        "status",
        "keys",
        "admin",
    ] {
        let out = ms(&home.0, &[verb, "--help"]);
        assert!(out.status.success(), "{verb}");
        assert!(text(&out.stdout).contains("Usage: modelswitch"), "{verb}");
    }
    let status = text(&ms(&home.0, &["status", "--help"]).stdout);
    assert!(status.contains("plain http"), "{status}");
    // No HOME, no workspace named: a clear error.
    let out = Command::new(BIN)
        .arg("check")
        .env_remove("HOME")
        .env_remove("MODELSWITCH_WORKSPACE")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("HOME is not set"));
}

/// systemd's own check of a unit, when the machine has it; `context` is
/// shown on failure.
fn systemd_verifies(unit: &std::path::Path, context: &str) {
    if let Ok(v) = Command::new("systemd-analyze")
        .arg("verify")
        .arg(unit)
        .output()
    {
        let err = text(&v.stderr);
        assert!(
            v.status.success() && !err.contains("modelswitch.service:"),
            "systemd-analyze verify: {err}\n{context}"
        );
    }
}
