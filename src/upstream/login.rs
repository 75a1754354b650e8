//! Token-login providers: an upstream that takes calls only with a token
//! got from a login (`auth = { login_url, username, password, … }`).
//!
//! One token per login for the whole process: every worker (each its own
//! single-threaded runtime) and every config reload that keeps the same
//! login share it, found by a fingerprint of the login (URL, field names,
//! how the token is read and sent, the username and password, hashed with a
//! per-process random key: no credential is kept in a key). A valid token
//! is one lock-free load away; a missing or expired one is fetched by one
//! login that concurrent callers wait for (a `tokio::sync::Mutex`, which
//! works across runtimes), and a token near its end is renewed by one
//! caller while the others go on with it.
//!
//! Nothing here logs or returns a credential, the token, or the login's
//! answer (a body may echo what was sent): errors name the login host and
//! what failed.

use super::{OneOff, UpstreamClient};
use crate::config::{provider_auth::fill, Login};
use arc_swap::ArcSwapOption;
use bytes::Bytes;
use filters::failure::{Failure, Phase};
use http::{HeaderName, HeaderValue};
use serde_json::Value;
use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, RwLock};
use std::time::{Duration, Instant};

/// A login's answer is read up to this size.
const MAX_ANSWER: usize = 64 * 1024;
/// No token is used for less than this, whatever its answer says: a
/// lifetime of 0 would make every call log in.
const SHORTEST: Duration = Duration::from_secs(10);
const LONGEST: Duration = Duration::from_secs(30 * 24 * 3600);
/// After a failed login, callers get the same failure this long rather
/// than each trying again (a wrong password must not hammer the login, nor
/// lock the account); each failure in a row doubles it, up to
/// `LONGEST_PAUSE`.
const FAILED_PAUSE: Duration = Duration::from_secs(2);
const LONGEST_PAUSE: Duration = Duration::from_secs(60);

/// The last failed login: when, what, and how long it stands.
type Failed = Option<(Instant, Failure, Duration)>;

/// A token as sent: its header value, ready.
#[derive(Clone)]
pub struct Token {
    /// `format` with the token in it; marked sensitive.
    value: HeaderValue,
    /// Which login got it, so a 401 drops only the token it was seen with.
    serial: u64,
    expires: Instant,
    /// From here on the token is renewed.
    refresh_at: Instant,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Token(#{})", self.serial)
    }
}

impl Token {
    /// The header a call carries it in.
    pub fn header(&self, login: &Login) -> (HeaderName, HeaderValue) {
        (login.header.clone(), self.value.clone())
    }
}

/// One login's token and its single flight.
#[derive(Default)]
struct Slot {
    current: ArcSwapOption<Token>,
    /// Held while logging in; remembers the last failure and its pause.
    login: tokio::sync::Mutex<Failed>,
}

static SEED: LazyLock<RandomState> = LazyLock::new(RandomState::new);
static SLOTS: LazyLock<RwLock<HashMap<u64, Arc<Slot>>>> = LazyLock::new(RwLock::default);
static SERIAL: AtomicU64 = AtomicU64::new(1);

/// The login's identity: everything that decides which token it gets and
/// how it is sent, hashed with this process's random key.
fn fingerprint(l: &Login) -> u64 {
    SEED.hash_one((
        (l.tls, &l.host, l.port, &l.path),
        (l.username.expose(), l.password.expose()),
        (&l.username_field, &l.password_field),
        (&l.token_path, &l.expires_in_path, l.ttl, l.refresh_before),
        (l.header.as_str(), &l.format),
    ))
}

fn slot(login: &Login) -> Arc<Slot> {
    let key = fingerprint(login);
    let found = SLOTS
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .get(&key)
        .cloned();
    found.unwrap_or_else(|| {
        SLOTS
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .entry(key)
            .or_default()
            .clone()
    })
}

/// A token for `login`: the cached one while it is fresh, else one login
/// (shared with every concurrent caller). `connect`: the connect timeout
/// for the login's connection.
pub async fn token(
    client: &UpstreamClient,
    login: &Login,
    connect: Duration,
    deadline: Instant,
) -> Result<Token, Failure> {
    let slot = slot(login);
    if let Some(held) = slot.current.load_full() {
        let now = Instant::now();
        if now < held.refresh_at {
            return Ok((*held).clone());
        }
        if now < held.expires {
            // Near its end: one caller renews it, the others use it.
            let Ok(mut flight) = slot.login.try_lock() else {
                return Ok((*held).clone());
            };
            if let Some(fresh) = fresh(&slot, now) {
                return Ok(fresh);
            }
            if recent(&flight).is_some() {
                return Ok((*held).clone());
            }
            return match renew(client, login, &slot, &mut flight, connect, deadline).await {
                Ok(t) => Ok(t),
                // Still valid: used until it expires.
                Err(_) => Ok((*held).clone()),
            };
        }
    }
    let mut flight = tokio::time::timeout_at(deadline.into(), slot.login.lock())
        .await
        .map_err(|_| Failure::Timeout(Phase::FirstByte))?;
    let now = Instant::now();
    if let Some(fresh) = fresh(&slot, now) {
        return Ok(fresh);
    }
    if let Some(failed) = recent(&flight) {
        // A valid token whose renewal just failed is still good.
        if let Some(held) = slot.current.load_full().filter(|t| now < t.expires) {
            return Ok((*held).clone());
        }
        return Err(failed);
    }
    renew(client, login, &slot, &mut flight, connect, deadline).await
}

/// The cached token if it needs no renewal.
fn fresh(slot: &Slot, now: Instant) -> Option<Token> {
    slot.current
        .load_full()
        .filter(|t| now < t.refresh_at)
        .map(|t| (*t).clone())
}

fn recent(flight: &Failed) -> Option<Failure> {
    flight
        .as_ref()
        .filter(|(at, _, pause)| at.elapsed() < *pause)
        .map(|(_, f, _)| f.clone())
}

/// Logs in and caches the token; a failure is remembered in `flight`.
async fn renew(
    client: &UpstreamClient,
    login: &Login,
    slot: &Slot,
    flight: &mut Failed,
    connect: Duration,
    deadline: Instant,
) -> Result<Token, Failure> {
    match log_in(client, login, connect, deadline).await {
        Ok(token) => {
            slot.current.store(Some(Arc::new(token.clone())));
            *flight = None;
            Ok(token)
        }
        Err(f) => {
            if let Failure::Login(why) = &f {
                log::warn!("{why}");
            }
            let pause = flight
                .as_ref()
                .map_or(FAILED_PAUSE, |(_, _, p)| (*p * 2).min(LONGEST_PAUSE));
            *flight = Some((Instant::now(), f.clone(), pause));
            Err(f)
        }
    }
}

/// Drops the cached token if it is still `used` (the one a call was
/// refused with): of many calls refused at once, one causes a new login.
pub fn invalidate(login: &Login, used: &Token) {
    slot(login).current.rcu(|held| match held {
        Some(t) if t.serial == used.serial => None,
        other => other.clone(),
    });
}

/// `POST login_url` with the credentials as JSON; the token and its
/// lifetime from the answer.
async fn log_in(
    client: &UpstreamClient,
    login: &Login,
    connect: Duration,
    deadline: Instant,
) -> Result<Token, Failure> {
    let failed = |what: String| Failure::Login(format!("login at {} {what}", login.host));
    let mut fields = serde_json::Map::new();
    fields.insert(
        login.username_field.clone(),
        Value::String(login.username.expose().to_owned()),
    );
    fields.insert(
        login.password_field.clone(),
        Value::String(login.password.expose().to_owned()),
    );
    let body = Bytes::from(Value::Object(fields).to_string());
    let accept = [(
        http::header::ACCEPT,
        HeaderValue::from_static("application/json"),
    )];
    let request = OneOff {
        tls: login.tls,
        host: &login.host,
        port: login.port,
        host_header: &login.host_header,
        method: "POST",
        path: &login.path,
        headers: &accept,
        body: &body,
        connect,
        limit: MAX_ANSWER,
    };
    let started = Instant::now();
    let (status, answer) = match client.one_off(&request, deadline).await {
        Ok(done) => done,
        Err(Failure::Timeout(_)) => return Err(failed("timed out".into())),
        Err(Failure::Connect(e)) => return Err(failed(format!("failed: cannot connect ({e})"))),
        Err(Failure::Io(e)) => return Err(failed(format!("failed: connection broke ({e})"))),
        Err(Failure::BadResponse(e)) => return Err(failed(format!("failed: {e}"))),
        Err(other) => return Err(other),
    };
    if !(200..300).contains(&status) {
        return Err(failed(format!("answered {status}")));
    }
    let (token, lifetime) = read_answer(
        &answer,
        &login.token_path,
        login.expires_in_path.as_deref(),
        login.ttl,
    )
    .map_err(|why| failed(format!("failed: {why}")))?;
    let mut value = HeaderValue::from_str(&fill(&login.format, &token))
        .map_err(|_| failed("failed: its token cannot be sent in a header".into()))?;
    value.set_sensitive(true);
    let margin = login.refresh_before.min(lifetime / 2);
    let serial = SERIAL.fetch_add(1, Ordering::Relaxed);
    log::debug!(
        "logged in at {} (token #{serial} for {}s)",
        login.host,
        lifetime.as_secs()
    );
    // Counted from when the login was sent: the token may be older than
    // its answer.
    Ok(Token {
        value,
        serial,
        expires: started + lifetime,
        refresh_at: started + lifetime - margin,
    })
}

/// The token at `token_path` and its lifetime: seconds at
/// `expires_in_path`, else `expires_in` beside the token, else at the
/// top, else `ttl`; at least `SHORTEST`. The error says what was missing,
/// never what the answer held.
pub(crate) fn read_answer(
    body: &[u8],
    token_path: &[String],
    expires_in_path: Option<&[String]>,
    ttl: Duration,
) -> Result<(String, Duration), String> {
    let v: Value = serde_json::from_slice(body).map_err(|_| "its answer is not JSON".to_owned())?;
    let token = match at(&v, token_path) {
        Some(Value::String(t)) if !t.is_empty() => t.clone(),
        _ => {
            return Err(format!(
                "its answer has no token at {}",
                token_path.join(".")
            ))
        }
    };
    Ok((token, lifetime(&v, token_path, expires_in_path, ttl)))
}

fn lifetime(
    v: &Value,
    token_path: &[String],
    expires_in_path: Option<&[String]>,
    ttl: Duration,
) -> Duration {
    let expires_in = "expires_in".to_owned();
    let beside: Vec<String> = token_path
        .split_last()
        .map(|(_, parent)| parent.iter().chain([&expires_in]).cloned().collect())
        .unwrap_or_default();
    let top = [expires_in];
    let found = expires_in_path
        .into_iter()
        .chain([beside.as_slice(), top.as_slice()])
        .find_map(|path| at(v, path).and_then(seconds));
    found.map_or(ttl, |d| d.clamp(SHORTEST, LONGEST))
}

fn at<'a>(v: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(v, |v, key| v.get(key.as_str()))
}

/// A lifetime in seconds: a number, or a string of one.
fn seconds(v: &Value) -> Option<Duration> {
    let s = match v {
        Value::Number(n) => n.as_f64()?,
        Value::String(s) => s.trim().parse::<f64>().ok()?,
        _ => return None,
    };
    (s.is_finite() && s >= 0.0).then(|| Duration::from_secs_f64(s.min(LONGEST.as_secs_f64())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::secret::Secret;

    /// A login nobody answers (port 9), its own by a random password.
    fn unanswered() -> Login {
        Login {
            tls: false,
            host: "127.0.0.1".into(),
            port: 9,
            path: "/login".into(),
            host_header: "127.0.0.1:9".into(),
            username: Secret::new("unit-user".into()),
            password: Secret::new(format!("unit-pw-{}", fastrand::u64(..))),
            username_field: "username".into(),
            password_field: "password".into(),
            token_path: path("data.token"),
            expires_in_path: None,
            ttl: TTL,
            refresh_before: Duration::from_secs(60),
            header: http::header::AUTHORIZATION,
            format: "Bearer {token}".into(),
        }
    }

    fn held(serial: u64, refresh_in: i64, expires_in: u64) -> Token {
        let now = Instant::now();
        let refresh_at = if refresh_in >= 0 {
            now + Duration::from_secs(refresh_in.unsigned_abs())
        } else {
            now - Duration::from_secs(refresh_in.unsigned_abs())
        };
        Token {
            value: HeaderValue::from_static("Bearer t"),
            serial,
            expires: now + Duration::from_secs(expires_in),
            refresh_at,
        }
    }

    // Held across awaits on purpose: no other test may refill the reserve
    // meanwhile (one thread, nothing else takes the lock here).
    #[allow(clippy::await_holding_lock)]
    #[tokio::test]
    async fn a_cached_token_is_used_and_dropped_only_by_the_call_that_saw_it_refused() {
        let _reserve = crate::upstream::reserve::TEST_LOCK
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let client = UpstreamClient::new(0);
        let login = unanswered();
        let soon = || Instant::now() + Duration::from_secs(2);
        slot(&login).current.store(Some(Arc::new(held(7, 30, 60))));
        let t = token(&client, &login, Duration::from_secs(1), soon()).await;
        assert_eq!(t.unwrap().serial, 7);
        // A call refused with an older token leaves the current one.
        invalidate(&login, &held(6, 30, 60));
        assert!(slot(&login).current.load().is_some());
        invalidate(&login, &held(7, 30, 60));
        assert!(slot(&login).current.load().is_none());
        // Now a login is needed, and it fails: named, with no secret in it.
        let f = token(&client, &login, Duration::from_secs(1), soon())
            .await
            .unwrap_err();
        let Failure::Login(why) = &f else {
            panic!("{f:?}")
        };
        assert!(why.starts_with("login at 127.0.0.1 "), "{why}");
        assert!(!why.contains(login.password.expose()) && !why.contains("unit-user"));
        // Within the pause, the same failure without another attempt.
        let again = token(&client, &login, Duration::from_secs(1), soon()).await;
        assert_eq!(again.unwrap_err(), f);
    }

    // Held across awaits on purpose: no other test may refill the reserve
    // meanwhile (one thread, nothing else takes the lock here).
    #[allow(clippy::await_holding_lock)]
    #[tokio::test]
    async fn a_token_due_for_renewal_is_still_used_when_the_renewal_fails() {
        let _reserve = crate::upstream::reserve::TEST_LOCK
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let client = UpstreamClient::new(0);
        let login = unanswered();
        let soon = Instant::now() + Duration::from_secs(2);
        // Past its refresh point, not its end.
        slot(&login).current.store(Some(Arc::new(held(9, -1, 60))));
        let t = token(&client, &login, Duration::from_secs(1), soon).await;
        assert_eq!(t.unwrap().serial, 9);
        // Past its end: never sent.
        slot(&login).current.store(Some(Arc::new(held(10, -2, 0))));
        let f = token(&client, &login, Duration::from_secs(1), soon).await;
        assert!(matches!(f, Err(Failure::Login(_))), "{f:?}");
    }

    fn path(p: &str) -> Vec<String> {
        p.split('.').map(str::to_owned).collect()
    }

    const TTL: Duration = Duration::from_secs(3600);

    #[test]
    fn the_token_is_read_at_its_path() {
        let body = br#"{"code":0,"data":{"token":"tok-1","expires_in":120}}"#;
        let (t, life) = read_answer(body, &path("data.token"), None, TTL).unwrap();
        assert_eq!(t, "tok-1");
        assert_eq!(life, Duration::from_secs(120));
        // A number is not a token; nor is an empty string.
        for body in [
            &br#"{"data":{"token":12345}}"#[..],
            br#"{"data":{"token":""}}"#,
            br#"{"code":401,"message":"bad password hunter2"}"#,
        ] {
            let e = read_answer(body, &path("data.token"), None, TTL).unwrap_err();
            assert_eq!(e, "its answer has no token at data.token");
        }
        // The error never quotes the answer.
        let e = read_answer(b"password=hunter2", &path("token"), None, TTL).unwrap_err();
        assert_eq!(e, "its answer is not JSON");
    }

    #[test]
    fn the_lifetime_is_found_where_the_answer_puts_it() {
        let v = |s: &str| serde_json::from_str::<Value>(s).unwrap();
        let tp = path("data.token");
        let secs = Duration::from_secs;
        // Configured path first.
        let a = v(r#"{"data":{"token":"t","expires_in":50},"meta":{"ttl":"900"}}"#);
        assert_eq!(lifetime(&a, &tp, Some(&path("meta.ttl")), TTL), secs(900));
        // Beside the token, then at the top, then the configured ttl.
        assert_eq!(lifetime(&a, &tp, None, TTL), secs(50));
        let top = v(r#"{"data":{"token":"t"},"expires_in":70}"#);
        assert_eq!(lifetime(&top, &tp, None, TTL), secs(70));
        let none = v(r#"{"data":{"token":"t"}}"#);
        assert_eq!(lifetime(&none, &tp, None, TTL), TTL);
        // Clamped: a lifetime of 2 s or 0 is used for 10 s; nonsense is ignored.
        let short = v(r#"{"data":{"token":"t","expires_in":2}}"#);
        assert_eq!(lifetime(&short, &tp, None, TTL), SHORTEST);
        let zero = v(r#"{"expires_in":0,"data":{"token":"t"}}"#);
        assert_eq!(lifetime(&zero, &tp, None, TTL), SHORTEST);
        let bad = v(r#"{"data":{"token":"t","expires_in":-5}}"#);
        assert_eq!(lifetime(&bad, &tp, None, TTL), TTL);
        let huge = v(r#"{"data":{"token":"t","expires_in":1e30}}"#);
        assert_eq!(lifetime(&huge, &tp, None, TTL), LONGEST);
        // A token at the top has `expires_in` beside it at the top too.
        let flat = v(r#"{"token":"t","expires_in":30}"#);
        assert_eq!(lifetime(&flat, &path("token"), None, TTL), secs(30));
    }
}
