//! Embeddings (OpenAI `/v1/embeddings`, Gemini `:embedContent` /
//! `:batchEmbedContents`) and token counts: deterministic answers.

use serde_json::{json, Value};
use std::collections::HashMap;

/// Vector length: the request's own, else `dims=N`, else 8.
fn dims(asked: Option<&Value>, opts: &HashMap<String, String>) -> usize {
    asked
        .and_then(Value::as_u64)
        .or_else(|| opts.get("dims").and_then(|v| v.parse().ok()))
        .map_or(8, |n| n.clamp(1, 4096) as usize)
}

/// A deterministic vector for `text`: FNV-1a of the text, then xorshift;
/// values in [-1, 1] with four decimals.
pub(crate) fn vector(text: &str, dims: usize) -> Vec<f64> {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (0..dims)
        .map(|_| {
            h ^= h << 13;
            h ^= h >> 7;
            h ^= h << 17;
            ((h % 20_001) as f64 - 10_000.0) / 10_000.0
        })
        .collect()
}

fn base64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for c in bytes.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for (k, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if k <= c.len() {
                out.push(A[((n >> shift) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Tokens the mock counts for a text: a quarter of its bytes, at least 1.
pub(crate) fn tokens(text: &str) -> u64 {
    (text.len() as u64 / 4).max(1)
}

/// The texts of an OpenAI `input`: a string, strings, or token arrays.
fn openai_texts(input: Option<&Value>) -> Vec<String> {
    match input {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(xs)) if xs.iter().all(Value::is_number) && !xs.is_empty() => {
            vec![Value::Array(xs.clone()).to_string()]
        }
        Some(Value::Array(xs)) => xs
            .iter()
            .map(|x| x.as_str().map_or_else(|| x.to_string(), str::to_owned))
            .collect(),
        _ => Vec::new(),
    }
}

/// `POST /v1/embeddings`; `encoding_format: "base64"` gives little-endian
/// f32 bytes in base64, as OpenAI does.
pub(crate) fn openai(req: &Value, opts: &HashMap<String, String>, model: &str) -> Value {
    let n = dims(req.get("dimensions"), opts);
    let b64 = req.get("encoding_format").and_then(Value::as_str) == Some("base64");
    let texts = openai_texts(req.get("input"));
    let data: Vec<Value> = texts
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let v = vector(t, n);
            let emb = if b64 {
                let bytes: Vec<u8> = v.iter().flat_map(|x| (*x as f32).to_le_bytes()).collect();
                json!(base64(&bytes))
            } else {
                json!(v)
            };
            json!({"object": "embedding", "index": i, "embedding": emb})
        })
        .collect();
    let used: u64 = texts.iter().map(|t| tokens(t)).sum();
    json!({"object": "list", "data": data, "model": model,
           "usage": {"prompt_tokens": used, "total_tokens": used}})
}

fn gemini_text(content: Option<&Value>) -> String {
    content
        .and_then(|c| c.get("parts"))
        .and_then(Value::as_array)
        .map(|ps| {
            ps.iter()
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default()
}

fn gemini_one(r: &Value, opts: &HashMap<String, String>) -> Value {
    let n = dims(r.get("outputDimensionality"), opts);
    json!({"values": vector(&gemini_text(r.get("content")), n)})
}

/// `:embedContent` → `{"embedding":{"values"}}`; `:batchEmbedContents` →
/// `{"embeddings":[{"values"}]}`.
pub(crate) fn gemini(req: &Value, opts: &HashMap<String, String>, batch: bool) -> Value {
    if !batch {
        return json!({"embedding": gemini_one(req, opts)});
    }
    let list: Vec<Value> = req
        .get("requests")
        .and_then(Value::as_array)
        .map(|rs| rs.iter().map(|r| gemini_one(r, opts)).collect())
        .unwrap_or_default();
    json!({"embeddings": list})
}

/// The count a token-counting endpoint answers: `tokens=N`, else a
/// quarter of the body.
pub(crate) fn count(opts: &HashMap<String, String>, body_len: usize) -> u64 {
    opts.get("tokens")
        .and_then(|v| v.parse().ok())
        .unwrap_or((body_len as u64 / 4).max(1))
}
