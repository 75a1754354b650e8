//! The OpenAI Chat Completions dialect, spoken by OpenAI and every
//! OpenAI-compatible service (DeepSeek, Qwen, GLM, Kimi, OpenRouter, vLLM, …).

pub mod embed;
pub mod error;
pub mod pass;
pub mod request;
pub mod response;
pub mod stream;
