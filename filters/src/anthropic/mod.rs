//! The Anthropic Messages dialect (Claude, Claude Code).

pub mod beta;
pub mod error;
pub mod pass;
pub mod request;
pub mod response;
pub mod stream;
