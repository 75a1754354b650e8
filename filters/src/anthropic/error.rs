//! Anthropic's error shape: `{"type":"error","error":{"type","message"}}`,
//! the same in a response body and as an in-stream `event: error`.

use crate::error::{ApiError, ErrorKind};
use serde_json::{json, Value};

pub fn body(e: &ApiError) -> Value {
    json!({
        "type": "error",
        "error": {"type": e.kind.anthropic_type(), "message": e.message},
    })
}

/// Anthropic answers an overload with 529, which its SDK retries; other
/// kinds keep their usual status.
pub fn status(e: &ApiError) -> u16 {
    match e.kind {
        ErrorKind::Overloaded => 529,
        _ => e.status.unwrap_or_else(|| e.kind.status()),
    }
}
