//! OpenAI `/v1/embeddings`, the shape every OpenAI-compatible vendor
//! serves: decoded when the model is served by Gemini, encoded when a
//! Gemini client's model is served by an OpenAI-compatible provider.

use crate::canonical::{EmbedRequest, EmbedResponse};
use crate::error::{ApiError, ErrorKind};
use base64::Engine as _;
use serde_json::{json, Value};

/// The request, and whether the client wants vectors as base64 (the
/// official Python SDK asks for it by default and decodes them itself).
pub fn decode(body: &[u8]) -> Result<(EmbedRequest, bool), ApiError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::invalid(format!("request body is not valid JSON: {e}")))?;
    let model = v
        .get("model")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::invalid("model: a string is required").with_param("model"))?;
    let input_err = || {
        ApiError::invalid("input: a string or an array of strings is required (token arrays are only accepted by OpenAI-compatible providers)")
            .with_param("input")
    };
    let inputs = match v.get("input") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) if !items.is_empty() => items
            .iter()
            .map(|i| i.as_str().map(str::to_owned).ok_or_else(input_err))
            .collect::<Result<_, _>>()?,
        _ => return Err(input_err()),
    };
    let base64 = match v.get("encoding_format").and_then(Value::as_str) {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => {
            return Err(ApiError::invalid(format!(
                "encoding_format: '{other}' must be float or base64"
            ))
            .with_param("encoding_format"))
        }
    };
    let req = EmbedRequest {
        model: model.to_owned(),
        inputs,
        dimensions: v.get("dimensions").and_then(Value::as_u64),
        task_type: None,
        user: v.get("user").and_then(Value::as_str).map(str::to_owned),
    };
    Ok((req, base64))
}

/// The body for an OpenAI-compatible upstream.
pub fn encode(req: &EmbedRequest, model: &str) -> Value {
    let mut v = json!({"model": model, "input": req.inputs, "encoding_format": "float"});
    if let Some(d) = req.dimensions {
        v["dimensions"] = json!(d);
    }
    if let Some(u) = &req.user {
        v["user"] = json!(u);
    }
    v
}

/// An OpenAI-compatible upstream's answer (float vectors, as asked).
pub fn decode_response(body: &[u8]) -> Result<EmbedResponse, ApiError> {
    let v: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            ErrorKind::Api,
            format!("upstream embeddings are not JSON: {e}"),
        )
    })?;
    let mut data: Vec<&Value> = v
        .get("data")
        .and_then(Value::as_array)
        .map(|d| d.iter().collect())
        .unwrap_or_default();
    data.sort_by_key(|d| d.get("index").and_then(Value::as_u64).unwrap_or(0));
    let vectors = data
        .iter()
        .map(|d| match d.get("embedding") {
            Some(Value::Array(xs)) => Ok(xs.iter().filter_map(Value::as_f64).collect()),
            Some(Value::String(b64)) => from_base64(b64),
            _ => Err(ApiError::new(
                ErrorKind::Api,
                "upstream embedding has no vector",
            )),
        })
        .collect::<Result<_, _>>()?;
    let input_tokens = v["usage"]["prompt_tokens"].as_u64().unwrap_or(0);
    Ok(EmbedResponse {
        vectors,
        input_tokens,
    })
}

/// The client's answer; `base64`: little-endian f32s, as OpenAI sends them.
pub fn encode_response(r: &EmbedResponse, model: &str, base64: bool) -> Value {
    let data: Vec<Value> = r
        .vectors
        .iter()
        .enumerate()
        .map(|(i, vec)| {
            let embedding = if base64 {
                json!(to_base64(vec))
            } else {
                json!(vec)
            };
            json!({"object": "embedding", "index": i, "embedding": embedding})
        })
        .collect();
    json!({"object": "list", "data": data, "model": model,
           "usage": {"prompt_tokens": r.input_tokens, "total_tokens": r.input_tokens}})
}

fn to_base64(v: &[f64]) -> String {
    let bytes: Vec<u8> = v.iter().flat_map(|x| (*x as f32).to_le_bytes()).collect();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn from_base64(s: &str) -> Result<Vec<f64>, ApiError> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(s)
        .map_err(|_| ApiError::new(ErrorKind::Api, "upstream embedding is not base64"))?;
    Ok(bytes
        .chunks_exact(4)
        .map(|c| f64::from(f32::from_le_bytes([c[0], c[1], c[2], c[3]])))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_and_formats() {
        let (r, b64) = decode(br#"{"model":"e","input":["a","b"],"dimensions":8}"#).unwrap();
        assert_eq!(r.inputs, ["a", "b"]);
        assert_eq!(r.dimensions, Some(8));
        assert!(!b64);
        let (r, b64) = decode(br#"{"model":"e","input":"x","encoding_format":"base64"}"#).unwrap();
        assert_eq!(r.inputs, ["x"]);
        assert!(b64);
        let e = decode(br#"{"model":"e","input":[[1,2]]}"#).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("input"));
        assert!(decode(br#"{"input":"x"}"#).is_err());
        assert!(decode(br#"{"model":"e","input":"x","encoding_format":"hex"}"#).is_err());
    }

    #[test]
    fn base64_vectors_round_trip_as_f32() {
        let r = EmbedResponse {
            vectors: vec![vec![0.5, -1.25], vec![3.0]],
            input_tokens: 4,
        };
        let v = encode_response(&r, "m", true);
        let back = decode_response(v.to_string().as_bytes()).unwrap();
        assert_eq!(back, r);
        let v = encode_response(&r, "m", false);
        assert_eq!(v["data"][1]["embedding"], json!([3.0]));
        assert_eq!(v["usage"]["prompt_tokens"], 4);
    }
}
