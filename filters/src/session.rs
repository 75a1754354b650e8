//! A request's session: the conversation an agent CLI says it belongs to.
//! Routing keeps a session on one upstream (so the provider's prompt cache
//! keeps hitting) and usage is grouped by it; neither needs it to be
//! secret, only stable for one conversation and bounded in what it costs.
//!
//! Where clients say it, in the order read:
//! - a header the config names (`[routing.affinity] header`);
//! - `X-Claude-Code-Session-Id` (Claude Code since 2.x);
//! - `session_id` (Codex, on every Responses call of a conversation), and
//!   `session-id`;
//! - Anthropic `metadata.user_id`: a JSON string `{"session_id": …}` in
//!   current Claude Code, `user_<hash>_account_<uuid>_session_<uuid>` in
//!   older ones (the part after `_session_`).

use http::{HeaderMap, HeaderName};

/// Longest session id kept; a longer one is not a session id this
/// gateway trusts (it would be a key in the affinity table and Redis).
pub const MAX_LEN: usize = 128;

/// The headers read, after the configured one: Claude Code's, Codex's,
/// and `session-id` (what usage rows read before routing did). Names
/// built once: a lookup by `&str` parses the name on every request.
pub const HEADERS: [HeaderName; 3] = [
    HeaderName::from_static("x-claude-code-session-id"),
    HeaderName::from_static("session_id"),
    HeaderName::from_static("session-id"),
];

/// The session id, if the request names one in a form kept.
/// `metadata_user_id` reads Anthropic's `metadata.user_id`, only when no
/// header names the session (it parses a member of the body).
pub fn session_id(
    configured: Option<&HeaderName>,
    headers: &HeaderMap,
    metadata_user_id: impl FnOnce() -> Option<String>,
) -> Option<String> {
    let from_headers = configured.into_iter().chain(&HEADERS).find_map(|name| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .filter(|v| valid(v))
    });
    if let Some(v) = from_headers {
        return Some(v.to_owned());
    }
    metadata_user_id().as_deref().and_then(from_user_id)
}

/// The session in Anthropic's `metadata.user_id`.
pub fn from_user_id(user_id: &str) -> Option<String> {
    if user_id.trim_start().starts_with('{') {
        let v: serde_json::Value = serde_json::from_str(user_id).ok()?;
        let id = v.get("session_id")?.as_str()?;
        return valid(id).then(|| id.to_owned());
    }
    let (_, id) = user_id.rsplit_once("_session_")?;
    valid(id).then(|| id.to_owned())
}

/// The `metadata.user_id` of an Anthropic body's raw `metadata` member.
pub fn metadata_user_id(raw_metadata: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Metadata {
        user_id: Option<String>,
    }
    serde_json::from_slice::<Metadata>(raw_metadata)
        .ok()?
        .user_id
}

fn valid(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            if let Ok(v) = http::HeaderValue::from_str(value) {
                map.insert(HeaderName::from_static(name), v);
            }
        }
        map
    }

    #[test]
    fn headers_in_order_configured_first() {
        let h = [
            ("x-claude-code-session-id", "cc-1"),
            ("session_id", "codex-1"),
            ("x-team-session", "team-1"),
        ];
        assert_eq!(
            session_id(
                Some(&HeaderName::from_static("x-team-session")),
                &headers(&h),
                || None
            )
            .as_deref(),
            Some("team-1")
        );
        assert_eq!(
            session_id(None, &headers(&h), || None).as_deref(),
            Some("cc-1")
        );
        assert_eq!(
            session_id(None, &headers(&h[1..]), || None).as_deref(),
            Some("codex-1")
        );
    }

    #[test]
    fn claude_code_user_id_both_shapes() {
        let new = r#"{"device_id":"d1","account_uuid":"","session_id":"5f0c1e2a-77aa-4d3e-9c1b-0a1b2c3d4e5f"}"#;
        assert_eq!(
            from_user_id(new).as_deref(),
            Some("5f0c1e2a-77aa-4d3e-9c1b-0a1b2c3d4e5f")
        );
        let old = "user_abc123_account_11111111-2222-3333-4444-555555555555_session_9b2f0c1e-1111-2222-3333-444455556666";
        assert_eq!(
            from_user_id(old).as_deref(),
            Some("9b2f0c1e-1111-2222-3333-444455556666")
        );
        assert_eq!(from_user_id("plain-user"), None);
        assert_eq!(
            session_id(None, &headers(&[]), || Some(old.to_owned())).as_deref(),
            Some("9b2f0c1e-1111-2222-3333-444455556666")
        );
        assert_eq!(
            metadata_user_id(br#"{"user_id":"u_session_s1"}"#).as_deref(),
            Some("u_session_s1")
        );
        assert_eq!(metadata_user_id(b"[1]"), None);
    }

    #[test]
    fn odd_or_long_ids_are_not_sessions() {
        let long = "a".repeat(MAX_LEN + 1);
        for bad in ["", "has space", "semi;colon", "new\nline", long.as_str()] {
            let h = [("x-claude-code-session-id", bad)];
            assert_eq!(session_id(None, &headers(&h), || None), None, "{bad:?}");
        }
        // A bad header does not hide a good one behind it.
        let h = [
            ("x-claude-code-session-id", "bad id"),
            ("session_id", "ok-1"),
        ];
        assert_eq!(
            session_id(None, &headers(&h), || None).as_deref(),
            Some("ok-1")
        );
    }
}
