//! The pure parts of UI sessions: cookies, tokens, CSRF, the login body and
//! the failed-login limiter under explicit clocks.

use super::*;

fn headers(cookies: &[&str]) -> http::HeaderMap {
    let mut h = http::HeaderMap::new();
    for c in cookies {
        h.append(http::header::COOKIE, c.parse().unwrap());
    }
    h
}

#[test]
fn the_session_cookie_is_found_among_others_and_across_headers() {
    let h = headers(&["theme=dark; ms_session=abc ; lang=zh"]);
    assert_eq!(cookie(&h, COOKIE), Some("abc"));
    let h = headers(&["theme=dark", "ms_session=\"def\""]);
    assert_eq!(cookie(&h, COOKIE), Some("def"));
    let h = headers(&["xms_session=no; ms_sessionx=no"]);
    assert_eq!(cookie(&h, COOKIE), None);
    assert_eq!(cookie(&headers(&[]), COOKIE), None);
}

#[test]
fn cookies_are_httponly_strict_and_secure_under_tls() {
    assert_eq!(
        set_cookie("t0k", 604_800, false),
        "ms_session=t0k; Path=/; HttpOnly; SameSite=Strict; Max-Age=604800"
    );
    assert_eq!(
        set_cookie("", 0, true),
        "ms_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0; Secure"
    );
}

#[test]
fn tokens_are_random_hex_and_only_their_hash_and_csrf_leave_them() {
    let a = new_token().unwrap();
    let b = new_token().unwrap();
    assert!(is_token(&a) && is_token(&b));
    assert_ne!(a, b);
    assert!(!is_token(&a[1..]) && !is_token(&a.to_uppercase()));
    let (hash, csrf) = (token_hash(&a), csrf_of(&a));
    assert_eq!(hash.len(), 64);
    assert_eq!(csrf.len(), 64);
    assert_ne!(hash, csrf, "the csrf token is not the stored hash");
    assert!(!hash.contains(&a) && !csrf.contains(&a));
    assert_eq!(csrf, csrf_of(&a), "derived, so never stored");
    assert_ne!(csrf, csrf_of(&b));
}

#[test]
fn equality_is_exact() {
    assert!(same(b"abc", b"abc"));
    assert!(!same(b"abc", b"abd"));
    assert!(!same(b"abc", b"ab"));
    assert!(!same(b"", b"a"));
}

#[test]
fn a_login_body_is_a_key_or_a_password_and_errors_never_repeat_it() {
    assert!(matches!(parse_login(br#"{"key":"sk-1"}"#), Ok(Credential::Key(k)) if k == "sk-1"));
    assert!(
        matches!(parse_login(br#"{"password":"pw"}"#), Ok(Credential::Password(p)) if p == "pw")
    );
    for bad in [
        &br#"{"key":"sk-secret","password":"pw-secret"}"#[..],
        br#"{}"#,
        br#"{"key":""}"#,
        br#"{"key":"sk-secret","extra":1}"#,
        br#"{"password":7}"#,
        b"sk-secret",
    ] {
        let Err(e) = parse_login(bad) else {
            panic!("accepted {}", String::from_utf8_lossy(bad));
        };
        assert!(!e.message.contains("secret"), "{}", e.message);
        assert_eq!(e.kind, ErrorKind::InvalidRequest);
    }
}

#[test]
fn ipv6_clients_count_by_their_64_prefix() {
    let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
    let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
    let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
    assert_eq!(bucket(a), bucket(b));
    assert_ne!(bucket(a), bucket(c));
    let mapped: IpAddr = "::ffff:10.1.2.3".parse().unwrap();
    assert_eq!(bucket(mapped), "10.1.2.3".parse::<IpAddr>().unwrap());
}

#[test]
fn roles_in_the_admin_plane_are_admin_and_viewer() {
    assert_eq!(ui_roles(&[Role::User]), []);
    assert_eq!(ui_roles(&[Role::User, Role::Viewer]), [Role::Viewer]);
    assert_eq!(effective_role(&[Role::Viewer, Role::Admin]), Role::Admin);
    assert_eq!(effective_role(&[Role::Viewer]), Role::Viewer);
}

#[test]
fn a_session_use_is_written_at_most_once_a_minute() {
    assert!(!touch_due(1_000, 1_000));
    assert!(!touch_due(1_000, 1_059));
    assert!(touch_due(1_000, 1_060));
    // A clock that stepped back writes nothing.
    assert!(!touch_due(1_000, 900));
}

const MIN: Duration = Duration::from_secs(60);

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn five_failures_block_an_address_until_the_oldest_leaves_the_window() {
    let mut f = Failures::new(5 * MIN, 5, 100);
    let t0 = Instant::now();
    let a = ip("10.0.0.1");
    for i in 0..5 {
        assert_eq!(f.blocked(a, t0 + i * MIN / 2), None, "attempt {i}");
        f.failed(a, t0 + i * MIN / 2);
    }
    // The oldest failure (t0) leaves the window at t0 + 5 min.
    assert_eq!(f.blocked(a, t0 + 3 * MIN), Some(2 * MIN));
    // Other addresses are not held up.
    assert_eq!(f.blocked(ip("10.0.0.2"), t0 + 3 * MIN), None);
    assert_eq!(f.blocked(a, t0 + 5 * MIN), None);
    // Then it has one more try before the next oldest leaves.
    f.failed(a, t0 + 5 * MIN);
    assert_eq!(f.blocked(a, t0 + 5 * MIN), Some(MIN / 2));
}

#[test]
fn a_success_forgets_its_address_failures() {
    let mut f = Failures::new(5 * MIN, 5, 100);
    let t0 = Instant::now();
    let a = ip("10.0.0.1");
    for _ in 0..4 {
        f.failed(a, t0);
    }
    f.succeeded(a);
    for _ in 0..4 {
        f.failed(a, t0);
    }
    assert_eq!(f.blocked(a, t0), None);
    f.failed(a, t0);
    assert!(f.blocked(a, t0).is_some());
}

#[test]
fn attempts_count_before_they_finish_and_non_guesses_are_forgiven() {
    let mut f = Failures::new(5 * MIN, 5, 100);
    let t0 = Instant::now();
    let a = ip("10.0.0.1");
    // Six sent at once: the sixth is refused though none has failed yet.
    for i in 0..5 {
        assert_eq!(f.attempt(a, t0), Ok(()), "attempt {i}");
    }
    assert_eq!(f.attempt(a, t0), Err(5 * MIN));
    // One of them was no guess (a user key): its place comes back.
    f.forgive(a, t0);
    assert_eq!(f.global.len(), 4);
    assert_eq!(f.attempt(a, t0 + MIN), Ok(()));
    assert!(f.attempt(a, t0 + MIN).is_err());
    // One succeeded: the address starts afresh.
    f.succeeded(a);
    assert_eq!(f.attempt(a, t0 + MIN), Ok(()));
}

#[test]
fn a_spray_from_many_addresses_hits_the_overall_cap() {
    let mut f = Failures::new(5 * MIN, 5, 10);
    let t0 = Instant::now();
    for i in 0..10u8 {
        let a = ip(&format!("10.0.1.{i}"));
        assert_eq!(f.blocked(a, t0), None);
        f.failed(a, t0 + Duration::from_secs(u64::from(i)));
    }
    // A fresh address waits too, until the first failure leaves.
    assert_eq!(f.blocked(ip("192.0.2.1"), t0 + MIN), Some(4 * MIN));
    assert_eq!(f.blocked(ip("192.0.2.1"), t0 + 5 * MIN), None);
}

#[test]
fn the_address_map_stays_bounded() {
    let mut f = Failures::new(MIN, 5, 10);
    let t0 = Instant::now();
    for i in 0..10_000u32 {
        let a = IpAddr::V4(Ipv4Addr::from(i));
        let now = t0 + Duration::from_millis(u64::from(i) * 100);
        if f.blocked(a, now).is_none() {
            f.failed(a, now);
        }
        assert!(f.by_addr.len() <= 2 * 10 + 1, "{} at {i}", f.by_addr.len());
    }
}

#[test]
fn rate_limited_answers_say_when_to_retry() {
    let e = too_many(Duration::from_millis(1500));
    assert_eq!(e.kind, ErrorKind::RateLimited);
    assert_eq!(e.retry_after.as_deref(), Some("2"));
    assert_eq!(too_many(Duration::ZERO).retry_after.as_deref(), Some("1"));
}
