//! OpenAI Responses (`/v1/responses`, what Codex speaks) ⇄ the canonical model.

pub mod error;
pub mod pass;
pub mod request;
pub mod response;
pub mod stream;
