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
fn roles_in_the_admin_plane_are_admin_viewer_and_user() {
    assert_eq!(ui_roles(&[Role::User]), [Role::User]);
    assert_eq!(
        ui_roles(&[Role::User, Role::Viewer]),
        [Role::User, Role::Viewer]
    );
    assert_eq!(effective_role(&[Role::Viewer, Role::Admin]), Role::Admin);
    assert_eq!(effective_role(&[Role::User, Role::Viewer]), Role::Viewer);
    assert_eq!(effective_role(&[Role::User]), Role::User);
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
fn five_wrong_keys_block_an_address_until_the_oldest_leaves_the_window() {
    let mut f = Failures::new(5 * MIN, 5, 100);
    let t0 = Instant::now();
    let a = ip("10.0.0.1");
    for i in 0..5 {
        assert_eq!(f.wrong_key(a, t0 + i * MIN / 2), Ok(()), "attempt {i}");
    }
    // The oldest failure (t0) leaves the window at t0 + 5 min.
    assert_eq!(f.wrong_key(a, t0 + 3 * MIN), Err(2 * MIN));
    // Other addresses are not held up, nor are its password attempts.
    assert_eq!(f.wrong_key(ip("10.0.0.2"), t0 + 3 * MIN), Ok(()));
    assert_eq!(f.password_blocked(a, t0 + 3 * MIN), None);
    // Then it has one more try before the next oldest leaves.
    assert_eq!(f.wrong_key(a, t0 + 5 * MIN), Ok(()));
    assert_eq!(f.wrong_key(a, t0 + 5 * MIN), Err(MIN / 2));
}

#[test]
fn wrong_keys_do_not_count_toward_the_overall_password_cap() {
    let mut f = Failures::new(5 * MIN, 5, 10);
    let t0 = Instant::now();
    for i in 0..50u8 {
        assert_eq!(f.wrong_key(ip(&format!("10.0.2.{i}")), t0), Ok(()));
    }
    assert!(f.global.is_empty());
    assert_eq!(f.password_attempt(ip("192.0.2.1"), t0), Ok(()));
}

#[test]
fn only_a_correct_password_forgets_its_address_password_failures() {
    let mut f = Failures::new(5 * MIN, 5, 100);
    let t0 = Instant::now();
    let a = ip("10.0.0.1");
    for _ in 0..4 {
        assert_eq!(f.password_attempt(a, t0), Ok(()));
    }
    // A key login (right or wrong) leaves the password count alone.
    assert_eq!(f.wrong_key(a, t0), Ok(()));
    assert_eq!(f.password_attempt(a, t0), Ok(()));
    assert!(f.password_attempt(a, t0).is_err());
    f.password_succeeded(a);
    for _ in 0..5 {
        assert_eq!(f.password_attempt(a, t0), Ok(()));
    }
    assert!(f.password_blocked(a, t0).is_some());
}

#[test]
fn password_attempts_count_before_they_finish_and_non_guesses_are_forgiven() {
    let mut f = Failures::new(5 * MIN, 5, 100);
    let t0 = Instant::now();
    let a = ip("10.0.0.1");
    // Six sent at once: the sixth is refused though none has failed yet.
    for i in 0..5 {
        assert_eq!(f.password_attempt(a, t0), Ok(()), "attempt {i}");
    }
    assert_eq!(f.password_attempt(a, t0), Err(5 * MIN));
    // One of them was no guess (the store failed): its place comes back.
    f.forgive_password(a, t0);
    assert_eq!(f.global.len(), 4);
    assert_eq!(f.password_attempt(a, t0 + MIN), Ok(()));
    assert!(f.password_attempt(a, t0 + MIN).is_err());
}

#[test]
fn a_password_spray_from_many_addresses_hits_the_overall_cap() {
    let mut f = Failures::new(5 * MIN, 5, 10);
    let t0 = Instant::now();
    for i in 0..10u8 {
        let a = ip(&format!("10.0.1.{i}"));
        assert_eq!(
            f.password_attempt(a, t0 + Duration::from_secs(u64::from(i))),
            Ok(())
        );
    }
    // A fresh address waits too, until the first failure leaves; its
    // wrong keys are counted as before.
    assert_eq!(f.password_blocked(ip("192.0.2.1"), t0 + MIN), Some(4 * MIN));
    assert_eq!(f.wrong_key(ip("192.0.2.1"), t0 + MIN), Ok(()));
    assert_eq!(f.password_blocked(ip("192.0.2.1"), t0 + 5 * MIN), None);
}

#[test]
fn the_address_maps_stay_bounded() {
    let mut f = Failures::new(MIN, 5, 10);
    f.key_addrs = 50;
    let t0 = Instant::now();
    for i in 0..10_000u32 {
        let a = IpAddr::V4(Ipv4Addr::from(i));
        let now = t0 + Duration::from_millis(u64::from(i) * 100);
        let _ = f.password_attempt(a, now);
        assert!(f.passwords.len() <= 2 * 10, "{} at {i}", f.passwords.len());
        // Wrong keys from ever new addresses, all inside the window.
        let _ = f.wrong_key(a, t0);
        assert!(f.keys.len() <= 50, "{} at {i}", f.keys.len());
    }
}

#[test]
fn a_window_end_past_the_clock_waits_the_window() {
    let t0 = Instant::now();
    let mut q: VecDeque<Instant> = [t0].into();
    let huge = Duration::from_secs(u64::MAX);
    assert_eq!(over(Some(&mut q), 1, huge, t0), Some(huge));
    assert_eq!(over(Some(&mut q), 2, huge, t0), None);
    assert_eq!(over(None, 1, huge, t0), None);
}

#[test]
fn test_variables_are_clamped_and_ignored_when_not_numbers() {
    let max = Duration::from_secs(100);
    assert_eq!(test_secs(Some("2"), max), Some(Duration::from_secs(2)));
    assert_eq!(test_secs(Some("0"), max), Some(Duration::from_secs(1)));
    assert_eq!(test_secs(Some("18446744073709551615"), max), Some(max));
    assert_eq!(test_secs(Some("-1"), max), None);
    assert_eq!(test_secs(Some("soon"), max), None);
    assert_eq!(test_secs(None, max), None);
}

#[test]
fn a_login_must_say_it_is_json() {
    let with = |ct: &str| {
        let mut h = http::HeaderMap::new();
        h.insert(http::header::CONTENT_TYPE, ct.parse().unwrap());
        require_json(&h)
    };
    assert!(with("application/json").is_ok());
    assert!(with("Application/JSON; charset=utf-8").is_ok());
    for bad in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/jsonp",
    ] {
        let e = with(bad).unwrap_err();
        assert_eq!(e.status, Some(415), "{bad}");
        assert!(e.message.contains("application/json"), "{}", e.message);
    }
    assert_eq!(
        require_json(&http::HeaderMap::new()).unwrap_err().status,
        Some(415)
    );
}

#[test]
fn a_key_fingerprint_tells_rotated_keys_apart_and_holds_no_key() {
    let (old, new) = (
        filters::auth::key_hash("sk-old-secret"),
        filters::auth::key_hash("sk-new-secret"),
    );
    let session = token_hash("a-token");
    let fp = fingerprint(&session, &old);
    assert_eq!(fp.len(), 16);
    assert_eq!(fp, fingerprint(&session, &old));
    assert_ne!(fp, fingerprint(&session, &new));
    // Salted per session: the same key gives another value elsewhere.
    assert_ne!(fp, fingerprint(&token_hash("another"), &old));
    assert!(!filters::auth::hex(&old).contains(&fp));
}

#[test]
fn rate_limited_answers_say_when_to_retry() {
    let e = too_many(Duration::from_millis(1500));
    assert_eq!(e.kind, ErrorKind::RateLimited);
    assert_eq!(e.retry_after.as_deref(), Some("2"));
    assert_eq!(too_many(Duration::ZERO).retry_after.as_deref(), Some("1"));
}
