//! Wire helpers every dialect shares: SSE framing, a top-level JSON member
//! scanner, lenient field readers, HTTP details, and the Responses
//! WebSocket protocol.

pub mod http;
pub mod json_array;
pub mod json_peek;
pub mod lenient;
pub mod sse;
pub mod websocket;
