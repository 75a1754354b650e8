//! Subcommands that work on stored state without running the gateway.

pub mod admin;
pub mod keys;
