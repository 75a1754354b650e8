//! The Anthropic Messages dialect (Claude, Claude Code).

pub mod request;
pub mod response;
pub mod stream;
