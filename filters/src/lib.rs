//! ModelSwitch's request-path stages that need no socket: client auth,
//! the canonical model and every dialect's codec, SSE framing, stream state
//! machines, failure classification, breakers and key pools. `src/` wires
//! them to Pingora.
//!
//! Layout: `dialect` is the one place that dispatches on the dialect; each
//! dialect folder (`openai_chat/`, `anthropic/`) imports only `canonical`,
//! `error` and the shared `wire` helpers, never another dialect.

pub mod anthropic;
pub mod auth;
pub mod breaker;
pub mod canonical;
pub mod conversations;
pub mod dialect;
pub mod error;
pub mod failure;
pub mod gemini;
pub mod glob;
pub mod ingress;
pub mod key_pool;
pub mod limits;
pub mod openai_chat;
pub mod openai_responses;
pub mod pricing;
pub mod routing;
pub mod session;
pub mod stream;
pub mod tokens;
pub mod tool_emulation;
pub mod wire;

pub use dialect::Dialect;
