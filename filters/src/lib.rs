//! ModelSwitch's request-path stages that need no socket: client auth,
//! the canonical model and every dialect's codec, SSE framing, stream state
//! machines and usage. `src/` wires them to Pingora.

pub mod anthropic;
pub mod auth;
pub mod breaker;
pub mod canonical;
pub mod error;
pub mod failure;
pub mod ingress;
pub mod json_peek;
pub mod key_pool;
pub mod lenient;
pub mod openai_chat;
pub mod sse;
pub mod stream;

/// The wire dialects ModelSwitch speaks, to clients and to upstreams.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dialect {
    OpenAiChat,
    Anthropic,
}

impl Dialect {
    pub fn name(self) -> &'static str {
        match self {
            Self::OpenAiChat => "openai",
            Self::Anthropic => "anthropic",
        }
    }
}
