//! Client authentication: which gateway key a request carries and what that
//! key may do. The key table itself is built from config in `src/`.

use std::collections::HashSet;

/// A gateway API key as the request path sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientKey {
    pub name: String,
    pub roles: Vec<String>,
    /// `None`: every model.
    pub allowed_models: Option<HashSet<String>>,
}

impl ClientKey {
    pub fn allows_model(&self, model: &str) -> bool {
        self.allowed_models
            .as_ref()
            .is_none_or(|m| m.contains(model))
    }

    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }
}

/// The credential a client sent: `Authorization: Bearer <key>`,
/// `x-api-key: <key>` (Anthropic SDKs, Claude Code), or a bare
/// `Authorization: <key>`. `x-api-key` wins when both are present, since
/// Anthropic clients may also send an unrelated bearer token.
pub fn credential<'a>(
    authorization: Option<&'a [u8]>,
    x_api_key: Option<&'a [u8]>,
) -> Option<&'a str> {
    let trimmed = |b: &'a [u8]| {
        std::str::from_utf8(b)
            .ok()
            .map(str::trim)
            .filter(|s| !s.is_empty())
    };
    if let Some(k) = x_api_key.and_then(trimmed) {
        return Some(k);
    }
    let auth = authorization.and_then(trimmed)?;
    match auth.split_once(' ') {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => {
            Some(rest.trim()).filter(|s| !s.is_empty())
        }
        Some(_) => None,
        None if auth.eq_ignore_ascii_case("bearer") => None,
        None => Some(auth),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_supported_header_form() {
        assert_eq!(credential(Some(b"Bearer sk-1"), None), Some("sk-1"));
        assert_eq!(credential(Some(b"bearer   sk-1 "), None), Some("sk-1"));
        assert_eq!(credential(Some(b"sk-bare"), None), Some("sk-bare"));
        assert_eq!(
            credential(Some(b"Bearer x"), Some(b"sk-anth")),
            Some("sk-anth")
        );
        assert_eq!(credential(Some(b"Basic abc"), None), None);
        assert_eq!(credential(Some(b"Bearer "), None), None);
        assert_eq!(credential(None, Some(b"")), None);
        assert_eq!(credential(Some(b"\xff"), None), None);
    }

    #[test]
    fn allow_list() {
        let mut k = ClientKey {
            name: "a".into(),
            roles: vec!["admin".into()],
            allowed_models: None,
        };
        assert!(k.allows_model("anything") && k.has_role("admin") && !k.has_role("user"));
        k.allowed_models = Some(["glm-5".to_string()].into_iter().collect());
        assert!(k.allows_model("glm-5") && !k.allows_model("gpt-x"));
    }
}
