//! UI sessions: login with an admin, viewer or user key or the admin
//! password, a server-side session in an HttpOnly cookie, CSRF on every
//! change. A user key's session reads only its own data: the handlers it
//! reaches filter by its name (`usage`, `conversations`), every other one
//! asks for the admin or viewer role.
//!
//! The cookie holds 32 random bytes (hex); the store keeps only their
//! SHA-256, so a copy of the database is no cookie. The CSRF token is
//! derived from the cookie's token (SHA-256 under a prefix of its own), so
//! it need not be stored and cannot be computed from the stored hash. A
//! session's public id is the first 16 hex digits of the stored hash.
//!
//! Sessions live in the store, read on every UI request, so a revocation
//! is seen by every replica at once. A key session also re-checks its key
//! on every request: a key revoked, disabled, expired or stripped of its
//! admin, viewer and user roles ends its sessions' use at once, and so does a
//! key rotated under the same name (a fingerprint of the key is stored
//! with each key session and compared).
//!
//! Failed logins are limited per client address, in memory. A key login
//! is looked up first: a correct admin or viewer key always logs in (keys
//! are ~190 random bits, throttling a correct one gains nothing), a wrong
//! one counts for its address and, once the address is over its limit, is
//! answered 429. A password attempt is refused with 429 before any Argon2
//! work while its address or all addresses together are over their
//! limits, and counts as failed from the moment it is let through.

use super::auth::{self, Caller, Via};
use super::{password, AdminPlane};
use crate::downstream::{read_body_within, respond};
use crate::proxy::auth::unix_now;
use crate::record::RequestRecord;
use crate::state::Live;
use crate::store::{self, KeyStore, SessionMatch, UiSession};
use bytes::Bytes;
use filters::auth::Role;
use filters::error::{ApiError, ErrorKind};
use pingora::proxy::Session;
use serde_json::{json, Value};
use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The cookie's name.
pub const COOKIE: &str = "ms_session";
const CSRF_HEADER: &str = "x-csrf-token";
/// Seven days.
const DEFAULT_TTL: Duration = Duration::from_secs(7 * 24 * 3600);
/// `last_seen_at` is written at most this often per session (seconds): a
/// UI polling every second must not write every second.
const TOUCH_EVERY: i64 = 60;
/// A login body is a key or a password: a few hundred bytes at most.
const BODY_CAP: usize = 8 * 1024;
/// Failed logins per client address within the window before it waits
/// (wrong keys and password attempts are counted apart).
const PER_ADDR: usize = 5;
/// Failed password logins from all addresses together within the window
/// before every password login waits: a spray from many addresses is
/// slowed too. Key logins are not held up by it.
const GLOBAL: usize = 100;
/// Addresses with wrong keys remembered at most (no overall cap bounds
/// them, as it bounds the password side).
const KEY_ADDRS: usize = 4096;
const DEFAULT_WINDOW: Duration = Duration::from_secs(300);
/// The user a password session is shown as: key names cannot contain
/// parentheses, so it is never a key's.
pub const PASSWORD_USER: &str = "(password)";
/// Argon2 verifications at once: each holds ~19 MiB and a core for tens
/// of milliseconds.
const VERIFYING: usize = 2;

/// Sessions and the failed-login limiter.
pub struct Sessions {
    ttl: Duration,
    failures: Mutex<Failures>,
    verifying: tokio::sync::Semaphore,
}

impl Default for Sessions {
    /// Seven days and a five-minute window; hidden variables shorten them
    /// for the integration tests only (real expiry without a week's wait),
    /// read by debug builds alone: a release binary ignores them.
    fn default() -> Self {
        let var = |name: &str| {
            if cfg!(debug_assertions) {
                std::env::var(name).ok()
            } else {
                None
            }
        };
        Self::new(
            test_secs(var("MODELSWITCH_SESSION_TTL_SECS").as_deref(), MAX_TTL)
                .unwrap_or(DEFAULT_TTL),
            test_secs(var("MODELSWITCH_LOGIN_WINDOW_SECS").as_deref(), MAX_WINDOW)
                .unwrap_or(DEFAULT_WINDOW),
        )
    }
}

/// The longest a test variable may make a session live or a window last:
/// far from anything that overflows a clock or a cookie's Max-Age.
const MAX_TTL: Duration = Duration::from_secs(30 * 24 * 3600);
const MAX_WINDOW: Duration = Duration::from_secs(24 * 3600);

/// A test variable's seconds, between one and `max`; `None` when unset or
/// not a number.
fn test_secs(value: Option<&str>, max: Duration) -> Option<Duration> {
    let n = value?.trim().parse::<u64>().ok()?;
    Some(Duration::from_secs(n.clamp(1, max.as_secs())))
}

/// A session cookie looked up in the store.
enum Found {
    /// No session cookie: the caller may be someone else (or no one).
    Absent,
    /// A cookie that names no live session, or a store that failed.
    Refused(ApiError),
    Live {
        row: UiSession,
        token: String,
    },
}

/// Who a login admits.
struct Who {
    user: String,
    role: Role,
    via: &'static str,
    /// A key login's key: its SHA-256, for the session's fingerprint.
    key_hash: Option<[u8; 32]>,
}

/// Why a login is refused: a wrong credential counts toward the limiter,
/// anything else does not.
enum Refusal {
    Wrong(ApiError),
    Other(ApiError),
}

impl Sessions {
    pub fn new(ttl: Duration, window: Duration) -> Self {
        Self {
            ttl,
            failures: Mutex::new(Failures::new(window, PER_ADDR, GLOBAL)),
            verifying: tokio::sync::Semaphore::new(VERIFYING),
        }
    }

    /// The caller a session cookie names, or `None` without a cookie.
    pub async fn resolve(
        &self,
        store: Option<&KeyStore>,
        live: &Live,
        session: &Session,
    ) -> Option<Result<Caller, ApiError>> {
        match find(store, session).await {
            Found::Absent => None,
            Found::Refused(e) => Some(Err(e)),
            Found::Live { row, token } => Some(admit(store, live, session, &row, &token).await),
        }
    }

    async fn login(
        &self,
        plane: &AdminPlane,
        session: &mut Session,
        rec: &mut RequestRecord,
        live: &Live,
    ) -> Result<(), ApiError> {
        let addr = client_bucket(session);
        require_json(&session.req_header().headers)?;
        let body = read_login(session, live).await?;
        let store = plane.store.as_ref().ok_or_else(no_store)?;
        let who = match body {
            Credential::Key(key) => self.key_login(live, &key, addr)?,
            Credential::Password(pw) => self.password_login(store, pw, addr).await?,
        };
        let now = unix_now();
        let token = new_token()?;
        let ttl = i64::try_from(self.ttl.as_secs()).unwrap_or(i64::MAX);
        let hash = token_hash(&token);
        let row = UiSession {
            key_fingerprint: who.key_hash.map(|k| fingerprint(&hash, &k)),
            hash,
            user: who.user,
            role: who.role.name().to_owned(),
            via: who.via.to_owned(),
            created_at: now,
            last_seen_at: now,
            expires_at: now.saturating_add(ttl),
        };
        store
            .create_session(row.clone())
            .await
            .map_err(store_failed)?;
        // The browser's previous session, if it sent one, ends: logging in
        // again replaces it rather than piling sessions up per browser.
        if let Some(old) = cookie(&session.req_header().headers, COOKIE).filter(|t| is_token(t)) {
            match store
                .revoke_sessions(SessionMatch::Hash(token_hash(old)))
                .await
            {
                Ok(0) => {}
                Ok(_) => log::info!("admin UI login from {addr} replaced its previous session"),
                Err(e) => log::warn!("admin UI sessions: ending the replaced one failed: {e}"),
            }
        }
        // Expired rows go at the next login rather than on a timer of
        // their own: they are refused whenever they are read anyway.
        if let Err(e) = store.revoke_sessions(SessionMatch::ExpiredAt(now)).await {
            log::warn!("admin UI sessions: purging expired ones failed: {e}");
        }
        log::info!(
            "admin UI login: '{}' ({}, by {}) from {addr}, session {}",
            row.user,
            row.role,
            row.via,
            row.id()
        );
        rec.client.key_name = Some(row.user.clone());
        let cookie = set_cookie(&token, self.ttl.as_secs(), is_tls(session));
        let v = shape(
            &row.user,
            who.role,
            &row.via,
            &csrf_of(&token),
            row.expires_at,
        );
        send(session, rec, 200, &v, vec![("set-cookie", cookie)]).await
    }

    /// A key login. The key is looked up before the limiter is asked: a
    /// correct key always logs in; a wrong one counts for its address,
    /// and is answered 429 once the address is over its limit.
    fn key_login(&self, live: &Live, key: &str, addr: IpAddr) -> Result<Who, ApiError> {
        match admit_key(live, key) {
            Ok(who) => Ok(who),
            Err(Refusal::Other(e)) => Err(e),
            Err(Refusal::Wrong(e)) => {
                if let Err(wait) = lock(&self.failures).wrong_key(addr, Instant::now()) {
                    log::warn!("admin UI key login refused from {addr}: too many wrong keys");
                    return Err(too_many(wait));
                }
                log::warn!("admin UI login failed from {addr}: {}", e.message);
                Err(e)
            }
        }
    }

    /// A password login: refused before any Argon2 work while the address
    /// or all addresses are over their limits, and counted as failed
    /// until it is known not to be (a hundred guesses sent at once must
    /// not all pass the check before one has failed).
    async fn password_login(
        &self,
        store: &KeyStore,
        pw: String,
        addr: IpAddr,
    ) -> Result<Who, ApiError> {
        let at = Instant::now();
        if let Err(wait) = lock(&self.failures).password_attempt(addr, at) {
            log::warn!("admin UI password login refused from {addr}: too many failed logins");
            return Err(too_many(wait));
        }
        match self.check_password(store, pw).await {
            Ok(who) => {
                lock(&self.failures).password_succeeded(addr);
                Ok(who)
            }
            Err(Refusal::Wrong(e)) => {
                log::warn!("admin UI login failed from {addr}: {}", e.message);
                Err(e)
            }
            Err(Refusal::Other(e)) => {
                lock(&self.failures).forgive_password(addr, at);
                Err(e)
            }
        }
    }

    async fn check_password(&self, store: &KeyStore, pw: String) -> Result<Who, Refusal> {
        let phc = store
            .setting(store::ADMIN_PASSWORD)
            .await
            .map_err(|e| Refusal::Other(store_failed(e)))?;
        let Some(phc) = phc else {
            log::info!(
                "admin UI password login: no password is set (modelswitch admin set-password)"
            );
            return Err(Refusal::Wrong(wrong()));
        };
        // Argon2 is deliberately slow: off the worker, a few at a time.
        let permit = self.verifying.acquire().await;
        let ok = tokio::task::spawn_blocking(move || password::verify(&pw, &phc))
            .await
            .unwrap_or(false);
        drop(permit);
        if ok {
            Ok(Who {
                user: PASSWORD_USER.into(),
                role: Role::Admin,
                via: "password",
                key_hash: None,
            })
        } else {
            Err(Refusal::Wrong(wrong()))
        }
    }
}

/// `/api/login`, `/api/logout`, `/api/session`, `/api/sessions[/{id}]`.
pub async fn handle(
    plane: &AdminPlane,
    session: &mut Session,
    rec: &mut RequestRecord,
    live: &Arc<Live>,
) -> Result<(), ApiError> {
    let method = session.req_header().method.clone();
    let path = session.req_header().uri.path().to_owned();
    let rest = path.strip_prefix("/api/").unwrap_or_default();
    let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    let read = method == http::Method::GET || method == http::Method::HEAD;
    match (segments.as_slice(), &method) {
        (["login"], &http::Method::POST) => plane.sessions.login(plane, session, rec, live).await,
        (["logout"], &http::Method::POST) => logout(plane, session, rec).await,
        (["session"], _) if read => current(plane, session, rec, live).await,
        (["sessions"], _) if read => list(plane, session, rec, live).await,
        (["sessions", id], &http::Method::DELETE) => revoke(plane, session, rec, live, id).await,
        (["login" | "logout" | "session" | "sessions"] | ["sessions", _], _) => {
            Err(super::not_allowed(&method, &path))
        }
        _ => Err(super::no_route(&path)),
    }
}

/// `POST /api/logout`: the session ends and the cookie is cleared. Without
/// a live session there is nothing to end, and the cookie is cleared all
/// the same.
async fn logout(
    plane: &AdminPlane,
    session: &mut Session,
    rec: &mut RequestRecord,
) -> Result<(), ApiError> {
    let store = plane.store.as_ref();
    match find(store, session).await {
        Found::Live { row, token } => {
            check_csrf(session, &token)?;
            let store = store.ok_or_else(no_store)?;
            store
                .revoke_sessions(SessionMatch::Hash(row.hash.clone()))
                .await
                .map_err(store_failed)?;
            log::info!("admin UI logout: '{}', session {}", row.user, row.id());
            rec.client.key_name = Some(row.user);
        }
        Found::Refused(e) if e.kind != ErrorKind::Authentication => return Err(e),
        Found::Refused(_) | Found::Absent => {}
    }
    let cookie = set_cookie("", 0, is_tls(session));
    respond(
        session,
        rec,
        204,
        "application/json",
        Bytes::new(),
        &[("set-cookie", cookie), ("cache-control", "no-store".into())],
        true,
    )
    .await;
    Ok(())
}

/// `GET /api/session`: the cookie's session, as login answered it.
async fn current(
    plane: &AdminPlane,
    session: &mut Session,
    rec: &mut RequestRecord,
    live: &Live,
) -> Result<(), ApiError> {
    let store = plane.store.as_ref();
    let (row, token) = match find(store, session).await {
        Found::Live { row, token } => (row, token),
        Found::Refused(e) => return Err(e),
        Found::Absent => {
            return Err(ApiError::new(ErrorKind::Authentication, "not logged in"));
        }
    };
    let caller = admit(store, live, session, &row, &token).await?;
    rec.client.key_name = Some(caller.name.clone());
    let v = shape(
        &row.user,
        effective_role(&caller.roles),
        &row.via,
        &csrf_of(&token),
        row.expires_at,
    );
    send(session, rec, 200, &v, Vec::new()).await
}

/// `GET /api/sessions`: every live session, for admins and viewers.
async fn list(
    plane: &AdminPlane,
    session: &mut Session,
    rec: &mut RequestRecord,
    live: &Live,
) -> Result<(), ApiError> {
    let caller = auth::caller(plane, live, session, rec).await?;
    auth::require_viewer(&caller)?;
    let store = plane.store.as_ref().ok_or_else(no_store)?;
    let now = unix_now();
    let rows = store.sessions().await.map_err(store_failed)?;
    if rows.iter().any(|s| s.expires_at <= now) {
        if let Err(e) = store.revoke_sessions(SessionMatch::ExpiredAt(now)).await {
            log::warn!("admin UI sessions: purging expired ones failed: {e}");
        }
    }
    // Sessions whose key no longer admits them are not listed: they
    // would be refused at their next request.
    let items: Vec<Value> = rows
        .iter()
        .filter(|s| s.expires_at > now)
        .filter_map(|s| {
            roles_now(live, s, now)
                .ok()
                .map(|r| (s, effective_role(&r)))
        })
        .map(|(s, role)| {
            json!({
                "id": s.id(),
                "user": s.user,
                "role": role.name(),
                "via": s.via,
                "created_at": s.created_at,
                "last_seen_at": s.last_seen_at,
                "expires_at": s.expires_at,
                "current": caller.via == Via::Session(s.id().to_owned()),
            })
        })
        .collect();
    send(session, rec, 200, &json!({ "sessions": items }), Vec::new()).await
}

/// `DELETE /api/sessions/{id}`: ends one session at once, for admins.
async fn revoke(
    plane: &AdminPlane,
    session: &mut Session,
    rec: &mut RequestRecord,
    live: &Live,
    id: &str,
) -> Result<(), ApiError> {
    let caller = auth::caller(plane, live, session, rec).await?;
    auth::require_role(&caller, Role::Admin)?;
    let store = plane.store.as_ref().ok_or_else(no_store)?;
    let gone = if store::is_session_id(id) {
        store
            .revoke_sessions(SessionMatch::Id(id.to_owned()))
            .await
            .map_err(store_failed)?
    } else {
        0
    };
    if gone == 0 {
        return Err(ApiError::new(
            ErrorKind::NotFound,
            format!("no session with id '{id}'"),
        ));
    }
    log::info!("admin UI session {id} revoked by '{}'", caller.name);
    respond(
        session,
        rec,
        204,
        "application/json",
        Bytes::new(),
        &[],
        true,
    )
    .await;
    Ok(())
}

/// The session the request's cookie names, if it is live.
async fn find(store: Option<&KeyStore>, session: &Session) -> Found {
    let Some(token) = cookie(&session.req_header().headers, COOKIE) else {
        return Found::Absent;
    };
    if !is_token(token) {
        return Found::Refused(expired());
    }
    let Some(store) = store else {
        return Found::Refused(no_store());
    };
    let hash = token_hash(token);
    let row = match store.session(&hash).await {
        Ok(Some(row)) => row,
        Ok(None) => return Found::Refused(expired()),
        Err(e) => return Found::Refused(store_failed(e)),
    };
    if row.expires_at <= unix_now() {
        if let Err(e) = store.revoke_sessions(SessionMatch::Hash(hash)).await {
            log::warn!("admin UI sessions: deleting an expired one failed: {e}");
        }
        return Found::Refused(expired());
    }
    Found::Live {
        row,
        token: token.to_owned(),
    }
}

/// A live session's caller for this request: the CSRF token for every
/// change, the key (for a key session) still there and still allowed, and
/// its use recorded at most once a minute.
async fn admit(
    store: Option<&KeyStore>,
    live: &Live,
    session: &Session,
    row: &UiSession,
    token: &str,
) -> Result<Caller, ApiError> {
    check_csrf(session, token)?;
    let now = unix_now();
    let roles = match roles_now(live, row, now) {
        Ok(roles) => roles,
        Err(Lapsed::Ended(e)) => {
            // The key itself says no (switched off, expired, no longer an
            // admin or viewer): the session ends for good, re-enabling the
            // key does not revive it.
            if let Some(store) = store {
                if let Err(e) = store
                    .revoke_sessions(SessionMatch::Hash(row.hash.clone()))
                    .await
                {
                    log::warn!("admin UI sessions: ending one failed: {e}");
                }
            }
            log::info!(
                "admin UI session {} of '{}' ended: {}",
                row.id(),
                row.user,
                e.message
            );
            return Err(e);
        }
        Err(Lapsed::Missing(e)) => return Err(e),
    };
    if touch_due(row.last_seen_at, now) {
        if let Some(store) = store {
            if let Err(e) = store.touch_session(&row.hash, now).await {
                log::warn!("admin UI sessions: recording a use failed: {e}");
            }
        }
    }
    Ok(Caller {
        name: row.user.clone(),
        roles,
        via: Via::Session(row.id().to_owned()),
    })
}

/// Whether a session's use is worth a write: at most once a minute.
fn touch_due(last_seen_at: i64, now: i64) -> bool {
    now.saturating_sub(last_seen_at) >= TOUCH_EVERY
}

/// Why a session's key no longer admits it.
enum Lapsed {
    /// The key is not in this gateway's table (revoked, or made again
    /// under its name). Refused, not deleted: a replica that has not yet
    /// loaded a key made a moment ago must not end its sessions.
    Missing(ApiError),
    /// The key is there and refuses: the session ends.
    Ended(ApiError),
}

/// The roles a session has now: the password's admin, or what its key
/// (the same key it logged in with) still allows of admin and viewer.
fn roles_now(live: &Live, row: &UiSession, now: i64) -> Result<Vec<Role>, Lapsed> {
    match row.via.as_str() {
        "password" => Ok(vec![Role::Admin]),
        "key" => {
            let gone = || {
                Lapsed::Missing(ApiError::new(
                    ErrorKind::Authentication,
                    "the key of this session was revoked; log in again",
                ))
            };
            let entry = live.keys.by_name(&row.user).ok_or_else(gone)?;
            // A key rotated or made again under the same name is another
            // key. Refused, not deleted, as a missing key: a replica still
            // serving the old key must not end the new key's sessions.
            let now_fp = fingerprint(&row.hash, &entry.secret_hash);
            let same_key = row
                .key_fingerprint
                .as_deref()
                .is_some_and(|fp| same(fp.as_bytes(), now_fp.as_bytes()));
            if !same_key {
                return Err(gone());
            }
            if entry.usable(now).is_err() {
                return Err(Lapsed::Ended(ApiError::new(
                    ErrorKind::Authentication,
                    "the key of this session is disabled or has expired",
                )));
            }
            let mut roles = ui_roles(&entry.roles);
            if row.role == Role::User.name() {
                // A session that logged in to its own view keeps to it,
                // even when its key is later made a viewer or an admin:
                // nothing widens it but a new login.
                if !roles.is_empty() {
                    roles = vec![Role::User];
                }
            } else {
                // One that logged in to see the whole gateway ends when its
                // key is demoted to a user key, rather than living on with
                // another view: its holder logs in again to get that one.
                roles.retain(|r| *r != Role::User);
            }
            if roles.is_empty() {
                return Err(Lapsed::Ended(ApiError::new(
                    ErrorKind::Authentication,
                    if row.role == Role::User.name() {
                        "the key of this session no longer has a role that may log in"
                    } else {
                        "the key of this session no longer has the admin or viewer role"
                    },
                )));
            }
            Ok(roles)
        }
        _ => Err(Lapsed::Missing(expired())),
    }
}

/// What of a key's roles counts in the admin plane. A `user` key's
/// session carries `User` alone: the handlers hold it to its own rows.
fn ui_roles(roles: &[Role]) -> Vec<Role> {
    roles
        .iter()
        .copied()
        .filter(|r| matches!(r, Role::Admin | Role::Viewer | Role::User))
        .collect()
}

fn effective_role(roles: &[Role]) -> Role {
    if roles.contains(&Role::Admin) {
        Role::Admin
    } else if roles.contains(&Role::Viewer) {
        Role::Viewer
    } else {
        Role::User
    }
}

/// A key login: any key the gateway serves, with the admin, viewer or
/// user role.
fn admit_key(live: &Live, key: &str) -> Result<Who, Refusal> {
    let entry = live.keys.find(key).ok_or(Refusal::Wrong(wrong()))?;
    if entry.usable(unix_now()).is_err() {
        return Err(Refusal::Wrong(ApiError::new(
            ErrorKind::Authentication,
            "this API key is disabled or has expired",
        )));
    }
    let role = match ui_roles(&entry.roles).as_slice() {
        [] => {
            return Err(Refusal::Other(ApiError::new(
                ErrorKind::PermissionDenied,
                "this key has no role that may log in to the admin UI",
            )))
        }
        roles => effective_role(roles),
    };
    Ok(Who {
        user: entry.name.clone(),
        role,
        via: "key",
        key_hash: Some(entry.secret_hash),
    })
}

enum Credential {
    Key(String),
    Password(String),
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginBody {
    key: Option<String>,
    password: Option<String>,
}

/// The login body, small. Its messages never repeat what was sent.
async fn read_login(session: &mut Session, live: &Live) -> Result<Credential, ApiError> {
    let body = read_body_within(session, &live.config, BODY_CAP).await?;
    parse_login(&body)
}

fn parse_login(body: &[u8]) -> Result<Credential, ApiError> {
    let shape = || ApiError::invalid(r#"send {"key": "..."} or {"password": "..."}"#);
    let parsed: LoginBody = serde_json::from_slice(body).map_err(|_| shape())?;
    match (parsed.key, parsed.password) {
        (Some(k), None) if !k.is_empty() => Ok(Credential::Key(k)),
        (None, Some(p)) if !p.is_empty() => Ok(Credential::Password(p)),
        _ => Err(shape()),
    }
}

/// The login, session and logout answers' one shape.
fn shape(user: &str, role: Role, via: &str, csrf: &str, expires_at: i64) -> Value {
    json!({
        "user": user,
        "role": role.name(),
        "via": via,
        "csrf": csrf,
        "expires_at": expires_at,
    })
}

async fn send(
    session: &mut Session,
    rec: &mut RequestRecord,
    status: u16,
    v: &Value,
    mut extra: Vec<(&'static str, String)>,
) -> Result<(), ApiError> {
    // Answers that carry a CSRF token are nobody's to cache.
    extra.push(("cache-control", "no-store".into()));
    let head = session.req_header().method == http::Method::HEAD;
    let body = Bytes::from(v.to_string());
    respond(session, rec, status, "application/json", body, &extra, head).await;
    Ok(())
}

/// Every method that may change something carries the session's CSRF
/// token: a page of another site can make the browser send the cookie,
/// never read the token.
fn check_csrf(session: &Session, token: &str) -> Result<(), ApiError> {
    let req = session.req_header();
    if req.method == http::Method::GET || req.method == http::Method::HEAD {
        return Ok(());
    }
    let sent = req
        .headers
        .get(CSRF_HEADER)
        .map(|v| v.as_bytes())
        .unwrap_or_default();
    if same(sent, csrf_of(token).as_bytes()) {
        Ok(())
    } else {
        Err(ApiError::new(
            ErrorKind::PermissionDenied,
            "missing or wrong X-CSRF-Token: send the csrf value of /api/session",
        ))
    }
}

/// Constant-time equality: how much of a token matched never shows in
/// the time taken.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// 32 random bytes, hex: the cookie's value.
fn new_token() -> Result<String, ApiError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|e| ApiError::new(ErrorKind::Api, format!("no randomness for a session: {e}")))?;
    Ok(filters::auth::hex(&bytes))
}

fn is_token(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// What the store keeps of a token.
fn token_hash(token: &str) -> String {
    filters::auth::key_hash_hex(token)
}

/// What a key session stores of its key: 16 hex digits of SHA-256 over
/// the session's hash and the key's SHA-256. Another key under the same
/// name gives another fingerprint; salted per session, it gives a copy of
/// the database no table of keys to look up.
fn fingerprint(session_hash: &str, key_hash: &[u8; 32]) -> String {
    let full = filters::auth::key_hash_hex(&format!(
        "modelswitch-ui-key:{session_hash}:{}",
        filters::auth::hex(key_hash)
    ));
    full.get(..16).unwrap_or(&full).to_owned()
}

/// A login is JSON, said so in its Content-Type: a page of another site
/// can post a form (`text/plain`, urlencoded, multipart) without the
/// browser asking first, never `application/json`.
fn require_json(headers: &http::HeaderMap) -> Result<(), ApiError> {
    let essence = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(str::trim);
    if essence.is_some_and(|e| e.eq_ignore_ascii_case("application/json")) {
        return Ok(());
    }
    Err(
        ApiError::invalid("a login must be sent with Content-Type: application/json")
            .with_status(415),
    )
}

/// The CSRF token of a session: not the stored hash (another prefix), so
/// the database does not give it away either.
fn csrf_of(token: &str) -> String {
    filters::auth::key_hash_hex(&format!("modelswitch-ui-csrf:{token}"))
}

/// The first cookie named `name` in the request's Cookie headers.
fn cookie<'a>(headers: &'a http::HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| k.trim() == name)
        .map(|(_, v)| v.trim().trim_matches('"'))
}

/// The session cookie (`max_age` 0 with an empty token clears it).
fn set_cookie(token: &str, max_age: u64, secure: bool) -> String {
    let mut c = format!("{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}");
    if secure {
        c.push_str("; Secure");
    }
    c
}

/// Whether the client reached the gateway over TLS.
fn is_tls(session: &Session) -> bool {
    session.digest().is_some_and(|d| d.ssl_digest.is_some())
}

/// The client's address as the limiter counts it.
fn client_bucket(session: &Session) -> IpAddr {
    let ip = session
        .client_addr()
        .and_then(|a| a.as_inet())
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |a| a.ip());
    bucket(ip)
}

/// An IPv6 client owns at least a /64: counting single addresses would let
/// it take a fresh one for every guess.
fn bucket(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        v4 => v4,
    }
}

fn wrong() -> ApiError {
    ApiError::new(ErrorKind::Authentication, "invalid key or password")
}

fn expired() -> ApiError {
    ApiError::new(
        ErrorKind::Authentication,
        "the session has expired or was revoked; log in again",
    )
}

fn no_store() -> ApiError {
    ApiError::new(ErrorKind::Api, "the session store is not open")
}

fn store_failed(e: store::StoreError) -> ApiError {
    log::warn!("admin UI sessions: {e}");
    ApiError::new(
        ErrorKind::Api,
        "the session store failed; see the gateway's log",
    )
}

fn too_many(wait: Duration) -> ApiError {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    let secs = secs.max(1);
    let mut e = ApiError::new(
        ErrorKind::RateLimited,
        format!("too many failed logins: try again in {secs} s"),
    );
    e.retry_after = Some(secs.to_string());
    e
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Failed logins in a sliding window, in memory: wrong keys per client
/// address; password attempts per client address and overall.
///
/// Its size is bounded. A password address is only added by an attempt
/// counted overall, and none is counted while the overall cap is full, so
/// at most `global_cap` addresses have password failures inside the
/// window; the others are dropped once the map grows. Wrong keys have no
/// overall cap: their map keeps at most `key_addrs` addresses, the
/// longest quiet leaving first.
struct Failures {
    window: Duration,
    per_addr: usize,
    global_cap: usize,
    key_addrs: usize,
    keys: HashMap<IpAddr, VecDeque<Instant>>,
    passwords: HashMap<IpAddr, VecDeque<Instant>>,
    global: VecDeque<Instant>,
}

impl Failures {
    fn new(window: Duration, per_addr: usize, global_cap: usize) -> Self {
        Self {
            window,
            per_addr,
            global_cap,
            key_addrs: KEY_ADDRS,
            keys: HashMap::new(),
            passwords: HashMap::new(),
            global: VecDeque::new(),
        }
    }

    /// Counts a wrong key from `addr`, or says how long it must wait when
    /// it is already over its limit (then it is not counted: its count is
    /// full anyway).
    fn wrong_key(&mut self, addr: IpAddr, now: Instant) -> Result<(), Duration> {
        if let Some(wait) = over(self.keys.get_mut(&addr), self.per_addr, self.window, now) {
            return Err(wait);
        }
        push(self.keys.entry(addr).or_default(), now, self.per_addr);
        if self.keys.len() > self.key_addrs {
            shrink(&mut self.keys, self.window, now, self.key_addrs);
        }
        Ok(())
    }

    /// How long a password attempt from `addr` must wait, if it must:
    /// its address or all addresses together are over their limits.
    fn password_blocked(&mut self, addr: IpAddr, now: Instant) -> Option<Duration> {
        let (window, per_addr) = (self.window, self.per_addr);
        let mine = over(self.passwords.get_mut(&addr), per_addr, window, now);
        if self.passwords.get(&addr).is_some_and(VecDeque::is_empty) {
            self.passwords.remove(&addr);
        }
        mine.or_else(|| over(Some(&mut self.global), self.global_cap, window, now))
    }

    /// Checks `addr` and counts this password attempt as failed at once
    /// (see `forgive_password` and `password_succeeded`), under one lock:
    /// concurrent attempts cannot all pass the check before one of them
    /// has failed.
    fn password_attempt(&mut self, addr: IpAddr, now: Instant) -> Result<(), Duration> {
        if let Some(wait) = self.password_blocked(addr, now) {
            return Err(wait);
        }
        self.password_failed(addr, now);
        Ok(())
    }

    fn password_failed(&mut self, addr: IpAddr, now: Instant) {
        push(self.passwords.entry(addr).or_default(), now, self.per_addr);
        push(&mut self.global, now, self.global_cap);
        if self.passwords.len() > 2 * self.global_cap {
            shrink(&mut self.passwords, self.window, now, 2 * self.global_cap);
        }
    }

    /// Takes back a password attempt counted at `at` that turned out to
    /// be no guess (a store failure).
    fn forgive_password(&mut self, addr: IpAddr, at: Instant) {
        if let Some(q) = self.passwords.get_mut(&addr) {
            if let Some(i) = q.iter().rposition(|t| *t == at) {
                q.remove(i);
            }
        }
        if let Some(i) = self.global.iter().rposition(|t| *t == at) {
            self.global.remove(i);
        }
    }

    /// A correct password forgets its address's password failures (not
    /// the overall count: a spray that guessed one right has still
    /// sprayed). A correct key forgets nothing: a viewer key's holder
    /// must not reset the password count between guesses.
    fn password_succeeded(&mut self, addr: IpAddr) {
        self.passwords.remove(&addr);
    }
}

/// Drops from `q` the failures that left the window; how long until the
/// oldest leaves when `limit` are still inside it.
fn over(
    q: Option<&mut VecDeque<Instant>>,
    limit: usize,
    window: Duration,
    now: Instant,
) -> Option<Duration> {
    let q = q?;
    while q
        .front()
        .is_some_and(|t| now.saturating_duration_since(*t) >= window)
    {
        q.pop_front();
    }
    let oldest = *q.front()?;
    if q.len() < limit {
        return None;
    }
    // An end past what Instant can hold: wait the whole window.
    Some(
        oldest
            .checked_add(window)
            .map_or(window, |end| end.saturating_duration_since(now)),
    )
}

/// Adds a failure at `now`, keeping the newest `limit`.
fn push(q: &mut VecDeque<Instant>, now: Instant, limit: usize) {
    q.push_back(now);
    while q.len() > limit {
        q.pop_front();
    }
}

/// Drops the addresses with no failure inside the window, then, while
/// there are still more than `max`, the one whose last failure is oldest.
fn shrink(
    map: &mut HashMap<IpAddr, VecDeque<Instant>>,
    window: Duration,
    now: Instant,
    max: usize,
) {
    map.retain(|_, q| {
        q.back()
            .is_some_and(|t| now.saturating_duration_since(*t) < window)
    });
    while map.len() > max {
        let quietest = map
            .iter()
            .min_by_key(|(_, q)| q.back().copied())
            .map(|(a, _)| *a);
        match quietest {
            Some(a) => {
                map.remove(&a);
            }
            None => break,
        }
    }
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
