//! OpenAI's error shape: `{"error":{"message","type","param","code"}}`,
//! the same in a response body and as an in-stream `data:` payload.

use crate::error::ApiError;
use serde_json::{json, Value};

pub fn body(e: &ApiError) -> Value {
    let (ty, code) = e.kind.openai_type_code();
    json!({"error": {
        "message": e.message,
        "type": ty,
        "param": e.param,
        "code": e.code.as_deref().or(code),
    }})
}

/// OpenAI has no overload status of its own: 503, which its SDK retries.
pub fn status(e: &ApiError) -> u16 {
    match e.kind {
        crate::error::ErrorKind::Overloaded => 503,
        _ => e.status.unwrap_or_else(|| e.kind.status()),
    }
}
