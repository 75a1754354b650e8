//! `anthropic-beta`: Claude Code sends new betas with each release, and an
//! Anthropic-compatible endpoint of another vendor may refuse a request
//! carrying one it does not know. Per provider, the header is forwarded
//! (Anthropic itself), dropped, or cut to an allow-list, so a new beta
//! never breaks a route.

use std::borrow::Cow;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum BetaPolicy {
    #[default]
    Forward,
    Drop,
    /// Only these betas go on (exact names).
    Allow(Vec<String>),
}

impl BetaPolicy {
    /// The header value to send for the client's `value`; `None`: send no
    /// header. Forwarding borrows: the common case costs nothing.
    pub fn apply<'v>(&self, value: &'v str) -> Option<Cow<'v, str>> {
        match self {
            Self::Forward => Some(Cow::Borrowed(value)),
            Self::Drop => None,
            Self::Allow(allowed) => {
                let kept: Vec<&str> = value
                    .split(',')
                    .map(str::trim)
                    .filter(|b| !b.is_empty() && allowed.iter().any(|a| a == b))
                    .collect();
                (!kept.is_empty()).then(|| Cow::Owned(kept.join(",")))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forward_drop_allow() {
        let v = "claude-code-20250219, interleaved-thinking-2025-05-14,brand-new-2026-12-01";
        assert!(matches!(BetaPolicy::Forward.apply(v), Some(Cow::Borrowed(b)) if b == v));
        assert_eq!(BetaPolicy::Drop.apply(v), None);
        let allow = BetaPolicy::Allow(vec!["interleaved-thinking-2025-05-14".into()]);
        assert_eq!(
            allow.apply(v).as_deref(),
            Some("interleaved-thinking-2025-05-14")
        );
        assert_eq!(
            allow.apply("brand-new-2026-12-01"),
            None,
            "nothing left: no header"
        );
    }
}
