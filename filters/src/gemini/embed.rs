//! Gemini embeddings: `:embedContent` (one text) and `:batchEmbedContents`
//! (many) from clients; upstream, always the batch form, which serves both.

use crate::canonical::{EmbedRequest, EmbedResponse};
use crate::error::{ApiError, ErrorKind};
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireEmbed {
    content: Option<Value>,
    #[serde(alias = "task_type")]
    task_type: Option<String>,
    #[serde(alias = "output_dimensionality")]
    output_dimensionality: Option<u64>,
}

#[derive(Deserialize)]
struct WireBatch {
    requests: Vec<WireEmbed>,
}

/// A Content's text parts as one input (Gemini embeds them together).
fn content_text(content: Option<&Value>, at: &str) -> Result<String, ApiError> {
    let parts = content
        .and_then(|c| c.get("parts"))
        .and_then(Value::as_array)
        .ok_or_else(|| ApiError::invalid(format!("{at}.parts is required")).with_param(at))?;
    let mut texts = Vec::with_capacity(parts.len());
    for (i, p) in parts.iter().enumerate() {
        texts.push(p.get("text").and_then(Value::as_str).ok_or_else(|| {
            ApiError::invalid(format!("{at}.parts[{i}]: only text parts can be embedded"))
                .with_param(at)
        })?);
    }
    Ok(texts.join("\n"))
}

/// `{content:{parts:[{text}]}, taskType, outputDimensionality}` for `model`
/// (from the URL path).
pub fn decode_embed_content(body: &[u8], model: &str) -> Result<EmbedRequest, ApiError> {
    let w: WireEmbed = crate::error::parse_body(body)?;
    Ok(EmbedRequest {
        model: model.to_owned(),
        inputs: vec![content_text(w.content.as_ref(), "content")?],
        dimensions: w.output_dimensionality,
        task_type: w.task_type,
        user: None,
    })
}

/// `{requests:[{model, content, taskType, outputDimensionality}]}`: one
/// input per request; the first task type and dimensionality given apply
/// to all (the canonical request has one of each).
pub fn decode_batch(body: &[u8], model: &str) -> Result<EmbedRequest, ApiError> {
    let w: WireBatch = crate::error::parse_body(body)?;
    if w.requests.is_empty() {
        return Err(
            ApiError::invalid("requests: at least one request is required").with_param("requests"),
        );
    }
    let mut req = EmbedRequest {
        model: model.to_owned(),
        ..EmbedRequest::default()
    };
    for (i, r) in w.requests.into_iter().enumerate() {
        req.inputs.push(content_text(
            r.content.as_ref(),
            &format!("requests[{i}].content"),
        )?);
        req.task_type = req.task_type.or(r.task_type);
        req.dimensions = req.dimensions.or(r.output_dimensionality);
    }
    Ok(req)
}

/// The body for an upstream `models/{model}:batchEmbedContents`.
pub fn encode_batch(req: &EmbedRequest, model: &str) -> Value {
    let name = format!("models/{}", model.strip_prefix("models/").unwrap_or(model));
    let requests: Vec<Value> = req
        .inputs
        .iter()
        .map(|t| {
            let mut r = json!({"model": name, "content": {"parts": [{"text": t}]}});
            if let Some(tt) = &req.task_type {
                r["taskType"] = json!(tt);
            }
            if let Some(d) = req.dimensions {
                r["outputDimensionality"] = json!(d);
            }
            r
        })
        .collect();
    json!({ "requests": requests })
}

fn values(e: &Value) -> Result<Vec<f64>, ApiError> {
    e.get("values")
        .and_then(Value::as_array)
        .and_then(|a| a.iter().map(Value::as_f64).collect::<Option<Vec<f64>>>())
        .ok_or_else(|| ApiError::new(ErrorKind::Api, "upstream embedding has no numeric values"))
}

/// An upstream `{embeddings:[{values}]}` (or a single `{embedding:{values}}`).
pub fn decode_batch_response(body: &[u8]) -> Result<EmbedResponse, ApiError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::new(ErrorKind::Api, format!("upstream sent invalid JSON: {e}")))?;
    let vectors = match (
        v.get("embeddings").and_then(Value::as_array),
        v.get("embedding"),
    ) {
        (Some(list), _) => list.iter().map(values).collect::<Result<Vec<_>, _>>()?,
        (None, Some(one)) => vec![values(one)?],
        (None, None) => {
            return Err(ApiError::new(
                ErrorKind::Api,
                "upstream embeddings response has no embeddings",
            ))
        }
    };
    Ok(EmbedResponse {
        vectors,
        input_tokens: v
            .pointer("/usageMetadata/promptTokenCount")
            .and_then(Value::as_u64)
            .unwrap_or(0),
    })
}

/// `{embedding:{values}}` for `:embedContent`, `{embeddings:[...]}` for the batch.
pub fn encode_embed_response(r: &EmbedResponse, single: bool) -> Value {
    if single {
        let first = r.vectors.first().cloned().unwrap_or_default();
        return json!({ "embedding": { "values": first } });
    }
    json!({ "embeddings": r.vectors.iter().map(|v| json!({"values": v})).collect::<Vec<_>>() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_and_batch_requests_decode() {
        let r = decode_embed_content(
            br#"{"model":"models/e","content":{"parts":[{"text":"a"},{"text":"b"}]},"taskType":"RETRIEVAL_QUERY","outputDimensionality":256}"#,
            "e",
        )
        .unwrap();
        assert_eq!(r.inputs, vec!["a\nb".to_string()]);
        assert_eq!(
            (r.task_type.as_deref(), r.dimensions),
            (Some("RETRIEVAL_QUERY"), Some(256))
        );
        let b = decode_batch(
            br#"{"requests":[{"model":"models/e","content":{"parts":[{"text":"x"}]}},
                {"model":"models/e","content":{"parts":[{"text":"y"}]},"task_type":"CLUSTERING"}]}"#,
            "e",
        )
        .unwrap();
        assert_eq!(b.inputs, vec!["x".to_string(), "y".to_string()]);
        assert_eq!(b.task_type.as_deref(), Some("CLUSTERING"));
        assert_eq!(b.model, "e");
        assert!(decode_batch(br#"{"requests":[]}"#, "e").is_err());
        let e =
            decode_embed_content(br#"{"content":{"parts":[{"inlineData":{}}]}}"#, "e").unwrap_err();
        assert!(e.message.contains("content.parts[0]"));
        assert!(decode_embed_content(br#"{}"#, "e").is_err());
    }

    #[test]
    fn upstream_batch_round_trip() {
        let req = EmbedRequest {
            model: "client".into(),
            inputs: vec!["a".into(), "b".into()],
            dimensions: Some(8),
            task_type: Some("SEMANTIC_SIMILARITY".into()),
            user: None,
        };
        let body = encode_batch(&req, "text-embedding-004");
        assert_eq!(body["requests"][1]["model"], "models/text-embedding-004");
        assert_eq!(
            body["requests"][1]["content"],
            json!({"parts": [{"text": "b"}]})
        );
        assert_eq!(body["requests"][0]["outputDimensionality"], 8);
        assert_eq!(
            encode_batch(&req, "models/x")["requests"][0]["model"],
            "models/x"
        );
        let resp = decode_batch_response(br#"{"embeddings":[{"values":[0.1,-2]},{"values":[3]}]}"#)
            .unwrap();
        assert_eq!(resp.vectors, vec![vec![0.1, -2.0], vec![3.0]]);
        assert_eq!(resp.input_tokens, 0);
        assert_eq!(
            encode_embed_response(&resp, false),
            json!({"embeddings": [{"values": [0.1, -2.0]}, {"values": [3.0]}]})
        );
        assert_eq!(
            encode_embed_response(&resp, true),
            json!({"embedding": {"values": [0.1, -2.0]}})
        );
        assert_eq!(
            decode_batch_response(br#"{"embedding":{"values":[1]}}"#)
                .unwrap()
                .vectors
                .len(),
            1
        );
        assert!(decode_batch_response(br#"{"embeddings":[{"values":["x"]}]}"#).is_err());
        assert!(decode_batch_response(br#"{}"#).is_err());
    }
}
