//! Google Gemini (`generateContent`, `streamGenerateContent`, `countTokens`,
//! embeddings) ⇄ the canonical model.

pub mod embed;
pub mod error;
pub mod models;
pub mod pass;
pub mod request;
pub mod response;
pub mod stream;

mod parts;
mod schema;
