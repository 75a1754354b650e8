//! Admin UI sessions over real sockets (issue 13, item 2): login with an
//! admin or viewer key or the password `modelswitch admin set-password`
//! stored, the cookie as a browser holds it, CSRF on every change, logout,
//! revocation by id, by revoking the key and by rotating a config key,
//! real expiry, the failed-login limiter (wrong keys per address, password
//! attempts per address and overall, a right key never held up), JSON-only
//! logins, one session per browser, and a database and log that never hold
//! a token, a key or the password.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use serde_json::{json, Value};
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const VIEWER_KEY: &str = "sk-test-viewer-key";
const PASSWORD: &str = "correct horse battery staple";

/// A gateway with its own environment (the hidden TTL and window
/// variables), its config and store in a temp dir, stderr in a file.
struct Gw {
    child: Child,
    addr: SocketAddr,
    dir: PathBuf,
}

impl Drop for Gw {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Gw {
    fn config(&self) -> PathBuf {
        self.dir.join("gateway.toml")
    }

    fn db_bytes(&self) -> Vec<u8> {
        let db = self.dir.join("keys.db");
        [
            std::fs::read(&db).unwrap(),
            std::fs::read(db.with_extension("db-wal")).unwrap_or_default(),
        ]
        .concat()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("stderr.log")).unwrap_or_default()
    }
}

fn start(env: &[(&str, &str)]) -> Gw {
    let dir = std::env::temp_dir().join(format!(
        "modelswitch-admin-session-{}-{}",
        std::process::id(),
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let mut text = config("127.0.0.1:9".parse().unwrap(), &[], "");
    text.push_str(&format!(
        "\n[[api_keys]]\nkey = \"{VIEWER_KEY}\"\nname = \"viewer\"\nroles = [\"viewer\"]\n\
         \n[storage]\nsqlite_path = \"keys.db\"\n"
    ));
    for _ in 0..5 {
        let addr = free_addr();
        std::fs::write(
            dir.join("gateway.toml"),
            text.replace("LISTEN", &addr.to_string()),
        )
        .unwrap();
        let log = std::fs::File::create(dir.join("stderr.log")).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_modelswitch"))
            .arg("--config")
            .arg(dir.join("gateway.toml"))
            .env("RUST_LOG", "modelswitch=info,warn")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let up = wait_until(Duration::from_secs(10), || {
            matches!(child.try_wait(), Ok(Some(_)))
                || TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
        });
        if up && matches!(child.try_wait(), Ok(None)) {
            return Gw { child, addr, dir };
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    panic!(
        "gateway did not start: {}",
        std::fs::read_to_string(dir.join("stderr.log")).unwrap_or_default()
    );
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A login from another loopback address (127.0.0.0/8 is all local on
/// Linux): the limiter counts each as its own client.
fn login_from(gw: &Gw, ip: &str, body: &Value) -> Response {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let raw = rt.block_on(async {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(format!("{ip}:0").parse().unwrap()).unwrap();
        let mut s = socket.connect(gw.addr).await.unwrap();
        let body = body.to_string();
        let head = format!(
            "POST /api/login HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            gw.addr,
            body.len()
        );
        s.write_all(head.as_bytes()).await.unwrap();
        let mut raw = Vec::new();
        let _ = s.read_to_end(&mut raw).await;
        raw
    });
    parse_response(&raw, false)
}

fn login(gw: &Gw, body: &Value) -> Response {
    request(
        gw.addr,
        "POST",
        "/api/login",
        &[("Content-Type", "application/json")],
        body.to_string().as_bytes(),
    )
}

/// A logged-in browser: its cookie's token and the CSRF token it was given.
#[derive(Clone)]
struct Browser {
    token: String,
    csrf: String,
}

/// The token of a `Set-Cookie: ms_session=...`.
fn cookie_token(r: &Response) -> String {
    let c = r.header("set-cookie").expect("a session cookie");
    c.strip_prefix("ms_session=")
        .and_then(|rest| rest.split(';').next())
        .unwrap_or_else(|| panic!("not the session cookie: {c}"))
        .to_owned()
}

fn logged_in(gw: &Gw, body: &Value) -> Browser {
    let r = login(gw, body);
    assert_eq!(r.status, 200, "{}", r.text());
    Browser {
        token: cookie_token(&r),
        csrf: r.json()["csrf"].as_str().unwrap().to_owned(),
    }
}

impl Browser {
    /// A request as the UI makes it: the cookie, and the CSRF token when
    /// `csrf` says so.
    fn call(
        &self,
        gw: &Gw,
        method: &str,
        path: &str,
        body: Option<&Value>,
        csrf: bool,
    ) -> Response {
        let cookie = format!("theme=dark; ms_session={}", self.token);
        let mut headers = vec![
            ("Cookie", cookie.as_str()),
            ("Content-Type", "application/json"),
        ];
        if csrf {
            headers.push(("X-CSRF-Token", self.csrf.as_str()));
        }
        let body = body.map(Value::to_string).unwrap_or_default();
        request(gw.addr, method, path, &headers, body.as_bytes())
    }

    fn get(&self, gw: &Gw, path: &str) -> Response {
        self.call(gw, "GET", path, None, false)
    }

    /// The listing's entry for this browser's own session.
    fn id(&self, gw: &Gw) -> String {
        let r = self.get(gw, "/api/sessions");
        assert_eq!(r.status, 200, "{}", r.text());
        let list = r.json();
        let mine: Vec<&Value> = list["sessions"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["current"] == true)
            .collect();
        assert_eq!(mine.len(), 1, "{list}");
        mine[0]["id"].as_str().unwrap().to_owned()
    }
}

fn with_key(gw: &Gw, method: &str, path: &str, body: Option<&Value>) -> Response {
    let body = body.map(Value::to_string).unwrap_or_default();
    request(
        gw.addr,
        method,
        path,
        &[
            ("Authorization", &format!("Bearer {KEY}")),
            ("Content-Type", "application/json"),
        ],
        body.as_bytes(),
    )
}

fn message(r: &Response) -> String {
    r.json()["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

fn set_password(config: &Path, password: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_modelswitch"))
        .args(["admin", "set-password", "--password-stdin", "--config"])
        .arg(config)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{password}\n").as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn a_key_login_sets_a_strict_cookie_that_works_until_logout() {
    let gw = start(&[]);
    let r = login(&gw, &json!({"key": KEY}));
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(
        (&v["user"], &v["role"], &v["via"]),
        (&json!("admin"), &json!("admin"), &json!("key"))
    );
    let csrf = v["csrf"].as_str().unwrap();
    assert!(
        csrf.len() == 64 && csrf.bytes().all(|b| b.is_ascii_hexdigit()),
        "{csrf}"
    );
    let expires = v["expires_at"].as_i64().unwrap();
    assert!((expires - (now() + 604_800)).abs() < 30, "{expires}");
    let cookie = r.header("set-cookie").unwrap();
    let token = cookie_token(&r);
    assert_eq!(
        cookie,
        format!("ms_session={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age=604800")
    );
    assert!(
        !r.text().contains(&token),
        "the token is in the cookie only"
    );
    let me = Browser {
        token: token.clone(),
        csrf: csrf.to_owned(),
    };

    // The cookie alone reads the admin API.
    assert_eq!(me.get(&gw, "/api/keys").status, 200);
    let s = me.get(&gw, "/api/session");
    assert_eq!(s.status, 200, "{}", s.text());
    assert_eq!(s.json(), v, "the same answer as the login");
    assert!(s.header("set-cookie").is_none());
    let anon = request(gw.addr, "GET", "/api/session", &[], b"");
    assert_eq!(anon.status, 401, "{}", anon.text());
    let nonsense = Browser {
        token: "f".repeat(64),
        csrf: String::new(),
    };
    assert_eq!(nonsense.get(&gw, "/api/keys").status, 401);

    // A change needs the CSRF token as well.
    let new_key = json!({"name": "from-ui"});
    let r = me.call(&gw, "POST", "/api/keys", Some(&new_key), false);
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(message(&r).contains("X-CSRF-Token"), "{}", r.text());
    let forged = Browser {
        token: token.clone(),
        csrf: "0".repeat(64),
    };
    assert_eq!(
        forged
            .call(&gw, "POST", "/api/keys", Some(&new_key), true)
            .status,
        403
    );
    let r = me.call(&gw, "POST", "/api/keys", Some(&new_key), true);
    assert_eq!(r.status, 201, "{}", r.text());

    // Logout needs it too, then ends the session and clears the cookie.
    assert_eq!(me.call(&gw, "POST", "/api/logout", None, false).status, 403);
    let out = me.call(&gw, "POST", "/api/logout", None, true);
    assert_eq!(out.status, 204, "{}", out.text());
    assert!(
        out.header("set-cookie")
            .unwrap()
            .starts_with("ms_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
        "{:?}",
        out.header("set-cookie")
    );
    let after = me.get(&gw, "/api/keys");
    assert_eq!(after.status, 401, "{}", after.text());
    assert_eq!(me.get(&gw, "/api/session").status, 401);

    // The store keeps a hash: never the token or its CSRF token.
    let db = String::from_utf8_lossy(&gw.db_bytes()).into_owned();
    assert!(db.contains("ui_sessions"), "read the wrong file");
    assert!(!db.contains(&token) && !db.contains(csrf));
    let log = gw.log();
    assert!(log.contains("admin UI login: 'admin'"), "{log}");
    assert!(log.contains("admin UI logout: 'admin'"), "{log}");
    assert!(!log.contains(&token) && !log.contains(KEY), "{log}");
}

#[test]
fn wrong_keys_user_keys_and_viewers_get_what_their_role_allows() {
    let gw = start(&[]);
    let wrong = login(&gw, &json!({"key": "sk-not-a-real-key-0123"}));
    assert_eq!(wrong.status, 401, "{}", wrong.text());
    assert_eq!(message(&wrong), "invalid key or password");
    assert!(!wrong.text().contains("sk-not-a-real-key"));
    assert!(wrong.header("set-cookie").is_none());

    // A user key logs in to its own view (tests/admin_user_view.rs).
    let user = login(&gw, &json!({"key": LIMITED_KEY}));
    assert_eq!(user.status, 200, "{}", user.text());
    assert_eq!(user.json()["role"], "user");
    assert!(!user.text().contains(LIMITED_KEY));

    let bad = login(&gw, &json!({"key": KEY, "password": "x"}));
    assert_eq!(bad.status, 400, "{}", bad.text());
    assert!(!bad.text().contains(KEY));

    let r = login(&gw, &json!({"key": VIEWER_KEY}));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        (&r.json()["user"], &r.json()["role"]),
        (&json!("viewer"), &json!("viewer"))
    );
    let viewer = Browser {
        token: cookie_token(&r),
        csrf: r.json()["csrf"].as_str().unwrap().to_owned(),
    };
    assert_eq!(viewer.get(&gw, "/api/keys").status, 200);
    assert_eq!(viewer.get(&gw, "/api/sessions").status, 200);
    let change = viewer.call(
        &gw,
        "POST",
        "/api/keys",
        Some(&json!({"name": "nope"})),
        true,
    );
    assert_eq!(change.status, 403, "{}", change.text());
    assert!(message(&change).contains("admin role"), "{}", change.text());
    assert!(!gw.log().contains(VIEWER_KEY));
}

#[test]
fn sessions_are_listed_and_one_can_end_another() {
    let gw = start(&[]);
    let a = logged_in(&gw, &json!({"key": KEY}));
    let b = logged_in(&gw, &json!({"key": KEY}));
    let v = logged_in(&gw, &json!({"key": VIEWER_KEY}));
    let (a_id, b_id) = (a.id(&gw), b.id(&gw));
    assert_ne!(a_id, b_id);
    assert_eq!(a_id.len(), 16);
    assert!(!a.token.contains(&a_id), "the id is not part of the token");

    let list = a.get(&gw, "/api/sessions").json();
    let sessions = list["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 3, "{list}");
    let viewer = sessions.iter().find(|s| s["user"] == "viewer").unwrap();
    assert_eq!(viewer["role"], "viewer");
    assert_eq!(viewer["via"], "key");
    assert_eq!(viewer["current"], false);
    for field in ["created_at", "last_seen_at", "expires_at"] {
        assert!(viewer[field].as_i64().unwrap() > 0, "{field}: {viewer}");
    }
    assert!(!list.to_string().contains(&a.token));

    // A viewer sees the list and ends nothing.
    let path = format!("/api/sessions/{b_id}");
    let r = v.call(&gw, "DELETE", &path, None, true);
    assert_eq!(r.status, 403, "{}", r.text());
    // An admin ends b at once (with CSRF, as every change).
    assert_eq!(a.call(&gw, "DELETE", &path, None, false).status, 403);
    let r = a.call(&gw, "DELETE", &path, None, true);
    assert_eq!(r.status, 204, "{}", r.text());
    assert_eq!(b.get(&gw, "/api/keys").status, 401);
    assert_eq!(a.get(&gw, "/api/keys").status, 200);
    let r = a.call(&gw, "DELETE", &path, None, true);
    assert_eq!(r.status, 404, "{}", r.text());
    // A key in the headers may end one too, without CSRF.
    let v_id = v.id(&gw);
    let r = with_key(&gw, "DELETE", &format!("/api/sessions/{v_id}"), None);
    assert_eq!(r.status, 204, "{}", r.text());
    assert_eq!(v.get(&gw, "/api/session").status, 401);
    assert_eq!(
        with_key(&gw, "DELETE", "/api/sessions/not-an-id", None).status,
        404
    );
}

#[test]
fn revoking_or_disabling_the_key_ends_its_sessions() {
    let gw = start(&[]);
    let r = with_key(
        &gw,
        "POST",
        "/api/keys",
        Some(&json!({"name": "ops", "roles": ["admin"]})),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let secret = r.json()["key"].as_str().unwrap().to_owned();

    let ops = logged_in(&gw, &json!({"key": secret}));
    assert_eq!(ops.get(&gw, "/api/keys").status, 200);
    // Disabled: refused, and re-enabling the key does not revive it.
    let off = with_key(
        &gw,
        "PATCH",
        "/api/keys/ops",
        Some(&json!({"enabled": false})),
    );
    assert_eq!(off.status, 200, "{}", off.text());
    assert_eq!(ops.get(&gw, "/api/keys").status, 401);
    let on = with_key(
        &gw,
        "PATCH",
        "/api/keys/ops",
        Some(&json!({"enabled": true})),
    );
    assert_eq!(on.status, 200, "{}", on.text());
    assert_eq!(ops.get(&gw, "/api/keys").status, 401);

    // Demoted to a user key: the session ends.
    let ops = logged_in(&gw, &json!({"key": secret}));
    let demote = with_key(
        &gw,
        "PATCH",
        "/api/keys/ops",
        Some(&json!({"roles": ["user"]})),
    );
    assert_eq!(demote.status, 200, "{}", demote.text());
    assert_eq!(ops.get(&gw, "/api/keys").status, 401);
    // Made a viewer: a new session is a viewer's.
    let r = with_key(
        &gw,
        "PATCH",
        "/api/keys/ops",
        Some(&json!({"roles": ["viewer"]})),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let ops = logged_in(&gw, &json!({"key": secret}));
    assert_eq!(ops.get(&gw, "/api/session").json()["role"], "viewer");

    // Revoked through the admin API (here by the UI's own admin session).
    let admin = logged_in(&gw, &json!({"key": KEY}));
    let r = admin.call(&gw, "DELETE", "/api/keys/ops", None, true);
    assert_eq!(r.status, 200, "{}", r.text());
    let after = ops.get(&gw, "/api/keys");
    assert_eq!(after.status, 401, "{}", after.text());
    assert!(message(&after).contains("revoked"), "{}", after.text());
    // A key made again under the name is another key.
    let r = with_key(
        &gw,
        "POST",
        "/api/keys",
        Some(&json!({"name": "ops", "roles": ["viewer"]})),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(ops.get(&gw, "/api/keys").status, 401);
    assert!(!gw.log().contains(&secret));
}

#[test]
fn sessions_expire() {
    let gw = start(&[("MODELSWITCH_SESSION_TTL_SECS", "2")]);
    let r = login(&gw, &json!({"key": KEY}));
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        r.header("set-cookie").unwrap().contains("Max-Age=2"),
        "{:?}",
        r.header("set-cookie")
    );
    let me = Browser {
        token: cookie_token(&r),
        csrf: r.json()["csrf"].as_str().unwrap().to_owned(),
    };
    assert_eq!(me.get(&gw, "/api/keys").status, 200);
    // expires_at is whole seconds: past it by a margin.
    std::thread::sleep(Duration::from_millis(3100));
    let r = me.get(&gw, "/api/keys");
    assert_eq!(r.status, 401, "{}", r.text());
    assert!(message(&r).contains("expired"), "{}", r.text());
    // The expired row is gone, not just refused.
    let list = with_key(&gw, "GET", "/api/sessions", None).json();
    assert_eq!(list["sessions"], json!([]), "{list}");
}

#[test]
fn wrong_keys_are_rate_limited_per_address_and_a_right_key_always_logs_in() {
    let gw = start(&[("MODELSWITCH_LOGIN_WINDOW_SECS", "4")]);
    let started = Instant::now();
    for i in 0..5 {
        let r = login(&gw, &json!({"key": format!("sk-wrong-{i}")}));
        assert_eq!(r.status, 401, "attempt {i}: {}", r.text());
    }
    // Behind a reverse proxy every client is this one address: a right
    // key still logs in, and does not reset the count.
    let r = login(&gw, &json!({"key": KEY}));
    assert_eq!(r.status, 200, "{}", r.text());
    let r = login(&gw, &json!({"key": "sk-wrong-5"}));
    assert_eq!(r.status, 429, "{}", r.text());
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=4).contains(&retry), "{retry}");
    assert_eq!(login(&gw, &json!({"key": VIEWER_KEY})).status, 200);
    // Another address is not held up.
    let r = login_from(&gw, "127.0.0.2", &json!({"key": "sk-wrong-6"}));
    assert_eq!(r.status, 401, "{}", r.text());
    // Once the oldest failure leaves the window, wrong keys are 401 again.
    let window = Duration::from_secs(4) + Duration::from_millis(300);
    std::thread::sleep(window.saturating_sub(started.elapsed()));
    let r = login(&gw, &json!({"key": "sk-wrong-7"}));
    assert_eq!(r.status, 401, "{}", r.text());
    assert!(!gw.log().contains("sk-wrong-"), "{}", gw.log());
}

#[test]
fn a_limited_address_gets_429_for_passwords_before_any_verification() {
    let gw = start(&[]);
    let set = set_password(&gw.config(), PASSWORD);
    assert!(
        set.status.success(),
        "{}",
        String::from_utf8_lossy(&set.stderr)
    );
    // A good key login between the guesses resets nothing.
    for i in 0..5 {
        let r = login(&gw, &json!({"password": format!("wrong password {i}")}));
        assert_eq!(r.status, 401, "attempt {i}: {}", r.text());
        assert_eq!(login(&gw, &json!({"key": VIEWER_KEY})).status, 200);
    }
    // The right password is refused too: it is not even verified.
    let r = login(&gw, &json!({"password": PASSWORD}));
    assert_eq!(r.status, 429, "{}", r.text());
    assert!(r.header("retry-after").is_some());
    // Keys are not held up by the password count.
    assert_eq!(login(&gw, &json!({"key": KEY})).status, 200);
    let r = login(&gw, &json!({"key": "sk-wrong-key"}));
    assert_eq!(r.status, 401, "{}", r.text());
    // Another address still may try (and a right password resets its own
    // count, not this one's).
    let r = login_from(&gw, "127.0.0.2", &json!({"password": PASSWORD}));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(login(&gw, &json!({"password": PASSWORD})).status, 429);
}

#[test]
fn the_overall_cap_holds_up_passwords_only() {
    // No password set: every password attempt fails without Argon2 work,
    // so a hundred are quick. Twenty addresses, five each.
    let gw = start(&[]);
    for a in 2..22 {
        let ip = format!("127.0.0.{a}");
        for i in 0..5 {
            let r = login_from(&gw, &ip, &json!({"password": format!("spray {i}")}));
            assert_eq!(r.status, 401, "{ip} attempt {i}: {}", r.text());
        }
    }
    let fresh = "127.0.0.99";
    let r = login_from(&gw, fresh, &json!({"password": "from a fresh address"}));
    assert_eq!(r.status, 429, "{}", r.text());
    assert!(r.header("retry-after").is_some());
    // Key logins carry on: right keys log in, wrong keys are counted per
    // address only.
    assert_eq!(login_from(&gw, fresh, &json!({"key": KEY})).status, 200);
    assert_eq!(login(&gw, &json!({"key": VIEWER_KEY})).status, 200);
    let r = login_from(&gw, fresh, &json!({"key": "sk-wrong-key"}));
    assert_eq!(r.status, 401, "{}", r.text());
}

#[test]
fn a_login_must_be_sent_as_json() {
    let gw = start(&[]);
    let body = json!({"key": KEY}).to_string();
    for ct in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
    ] {
        let r = request(
            gw.addr,
            "POST",
            "/api/login",
            &[("Content-Type", ct)],
            body.as_bytes(),
        );
        assert_eq!(r.status, 415, "{ct}: {}", r.text());
        assert!(message(&r).contains("application/json"), "{}", r.text());
        assert!(r.header("set-cookie").is_none());
        assert!(!r.text().contains(KEY));
    }
    let r = request(gw.addr, "POST", "/api/login", &[], body.as_bytes());
    assert_eq!(r.status, 415, "{}", r.text());
    let r = request(
        gw.addr,
        "POST",
        "/api/login",
        &[("Content-Type", "application/json; charset=utf-8")],
        body.as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
}

#[test]
fn logging_in_again_ends_the_browser_previous_session() {
    let gw = start(&[]);
    let old = logged_in(&gw, &json!({"key": KEY}));
    let other = logged_in(&gw, &json!({"key": KEY}));
    let cookie = format!("theme=dark; ms_session={}", old.token);
    let r = request(
        gw.addr,
        "POST",
        "/api/login",
        &[
            ("Cookie", cookie.as_str()),
            ("Content-Type", "application/json"),
        ],
        json!({"key": VIEWER_KEY}).to_string().as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let new = Browser {
        token: cookie_token(&r),
        csrf: r.json()["csrf"].as_str().unwrap().to_owned(),
    };
    assert_ne!(new.token, old.token);
    assert_eq!(old.get(&gw, "/api/session").status, 401);
    assert_eq!(new.get(&gw, "/api/session").json()["user"], "viewer");
    // Another browser's session is untouched.
    assert_eq!(other.get(&gw, "/api/session").status, 200);
    let list = with_key(&gw, "GET", "/api/sessions", None).json();
    assert_eq!(list["sessions"].as_array().unwrap().len(), 2, "{list}");
}

#[test]
fn rotating_a_config_key_under_its_name_ends_its_sessions() {
    let gw = start(&[]);
    let viewer = logged_in(&gw, &json!({"key": VIEWER_KEY}));
    let admin = logged_in(&gw, &json!({"key": KEY}));
    assert_eq!(viewer.get(&gw, "/api/keys").status, 200);
    let viewer_id = viewer.id(&gw);
    let rotated = "sk-test-viewer-key-rotated";
    let text = std::fs::read_to_string(gw.config()).unwrap();
    let quoted = format!("\"{VIEWER_KEY}\"");
    assert!(text.contains(&quoted));
    std::fs::write(
        gw.config(),
        text.replace(&quoted, &format!("\"{rotated}\"")),
    )
    .unwrap();
    let pid = gw.child.id().to_string();
    assert!(Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap()
        .success());
    // Polled with the key in the headers: wrong keys at /api/login would
    // count against this address.
    let bearer = format!("Bearer {rotated}");
    assert!(
        wait_until(Duration::from_secs(10), || {
            request(
                gw.addr,
                "GET",
                "/api/keys",
                &[("Authorization", &bearer)],
                b"",
            )
            .status
                == 200
        }),
        "the rotated key was not loaded: {}",
        gw.log()
    );
    assert_eq!(login(&gw, &json!({"key": rotated})).status, 200);
    // Same name, another secret: the old key's session is refused.
    let r = viewer.get(&gw, "/api/keys");
    assert_eq!(r.status, 401, "{}", r.text());
    assert!(message(&r).contains("revoked"), "{}", r.text());
    assert_eq!(viewer.get(&gw, "/api/session").status, 401);
    assert_eq!(login(&gw, &json!({"key": VIEWER_KEY})).status, 401);
    // A key the reload left alone keeps its sessions.
    assert_eq!(admin.get(&gw, "/api/keys").status, 200);
    let list = admin.get(&gw, "/api/sessions").json();
    assert!(
        list["sessions"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["id"] != viewer_id.as_str()),
        "{list}"
    );
    assert!(!gw.log().contains(rotated) && !gw.log().contains(VIEWER_KEY));
}

#[test]
fn a_password_set_with_the_cli_logs_in_as_admin() {
    let gw = start(&[]);
    // No password yet: refused like a wrong one.
    let r = login(&gw, &json!({"password": PASSWORD}));
    assert_eq!(r.status, 401, "{}", r.text());

    let short = set_password(&gw.config(), "too short");
    assert_eq!(short.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&short.stderr).contains("at least 12 characters"),
        "{}",
        String::from_utf8_lossy(&short.stderr)
    );
    let set = set_password(&gw.config(), PASSWORD);
    assert!(
        set.status.success(),
        "{}",
        String::from_utf8_lossy(&set.stderr)
    );
    assert!(!String::from_utf8_lossy(&set.stderr).contains(PASSWORD));

    let r = login(&gw, &json!({"password": "correct horse battery stapler"}));
    assert_eq!(r.status, 401, "{}", r.text());
    assert_eq!(message(&r), "invalid key or password");
    let r = login(&gw, &json!({"password": PASSWORD}));
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(
        (&v["user"], &v["role"], &v["via"]),
        (&json!("(password)"), &json!("admin"), &json!("password"))
    );
    let me = Browser {
        token: cookie_token(&r),
        csrf: v["csrf"].as_str().unwrap().to_owned(),
    };
    let r = me.call(
        &gw,
        "POST",
        "/api/keys",
        Some(&json!({"name": "by-pw"})),
        true,
    );
    assert_eq!(r.status, 201, "{}", r.text());

    // The file holds an Argon2id hash: never the password or the token.
    let db = String::from_utf8_lossy(&gw.db_bytes()).into_owned();
    assert!(db.contains("$argon2id$"), "no hash stored");
    assert!(!db.contains(PASSWORD) && !db.contains(&me.token));
    assert!(!gw.log().contains(PASSWORD) && !gw.log().contains(&me.token));

    // A new password ends the password sessions.
    let set = set_password(&gw.config(), "another long passphrase");
    assert!(
        set.status.success(),
        "{}",
        String::from_utf8_lossy(&set.stderr)
    );
    assert_eq!(me.get(&gw, "/api/session").status, 401);
    assert_eq!(login(&gw, &json!({"password": PASSWORD})).status, 401);
    assert_eq!(
        login(&gw, &json!({"password": "another long passphrase"})).status,
        200
    );
}

#[test]
fn guesses_sent_at_once_are_limited_like_guesses_in_a_row() {
    let gw = start(&[]);
    let set = set_password(&gw.config(), PASSWORD);
    assert!(
        set.status.success(),
        "{}",
        String::from_utf8_lossy(&set.stderr)
    );
    // Each wrong password takes an Argon2 verification: all twelve are in
    // flight before the first has failed.
    let statuses: Vec<u16> = std::thread::scope(|s| {
        let gw = &gw;
        let sent: Vec<_> = (0..12)
            .map(|i| {
                s.spawn(move || login(gw, &json!({"password": format!("guess number {i}")})).status)
            })
            .collect();
        sent.into_iter().map(|t| t.join().unwrap()).collect()
    });
    let wrong = statuses.iter().filter(|s| **s == 401).count();
    let limited = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!((wrong, limited), (5, 7), "{statuses:?}");
}
