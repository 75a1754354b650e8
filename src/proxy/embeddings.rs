//! Embeddings, routed by model like generation: OpenAI `/v1/embeddings`
//! and Gemini `:embedContent` / `:batchEmbedContents` in, any provider
//! that embeds out (OpenAI-compatible `/embeddings`, Gemini
//! `:batchEmbedContents`). Targets are tried in order; one that cannot
//! embed (Anthropic) is passed over.

use super::auth::authenticate_caller;
use crate::downstream::{read_body, respond_json};
use crate::record::RequestRecord;
use crate::state::Live;
use crate::upstream::UpstreamClient;
use bytes::Bytes;
use filters::canonical::{EmbedRequest, EmbedResponse, Usage};
use filters::dialect;
use filters::error::{ApiError, ErrorKind};
use filters::ingress::GeminiAction;
use filters::{gemini, openai_chat, Dialect};
use pingora::proxy::Session;

/// What the client asked, in canonical form, and how it wants it back.
struct Asked {
    req: EmbedRequest,
    /// OpenAI: vectors as base64.
    base64: bool,
    /// Gemini: `:embedContent` (one vector) rather than a batch.
    single: bool,
}

fn decode(dialect: Dialect, path: &str, body: &[u8]) -> Result<Asked, ApiError> {
    match dialect {
        Dialect::Gemini => {
            let call = filters::ingress::gemini_call(path).ok_or_else(|| {
                ApiError::new(ErrorKind::NotFound, format!("no route for {path}"))
            })?;
            let single = call.action == GeminiAction::EmbedContent;
            let req = if single {
                gemini::embed::decode_embed_content(body, &call.model)?
            } else {
                gemini::embed::decode_batch(body, &call.model)?
            };
            Ok(Asked {
                req,
                base64: false,
                single,
            })
        }
        _ => {
            let (req, base64) = openai_chat::embed::decode(body)?;
            Ok(Asked {
                req,
                base64,
                single: false,
            })
        }
    }
}

pub async fn embeddings(
    upstream: &UpstreamClient,
    session: &mut Session,
    rec: &mut RequestRecord,
    live: &Live,
    dialect: Dialect,
) -> Result<(), ApiError> {
    rec.client.dialect = Some(dialect);
    let key = authenticate_caller(live, session)?;
    rec.client.key_name = Some(key.name.clone());
    let body = read_body(session, &live.config).await?;
    let asked = decode(dialect, session.req_header().uri.path(), &body)?;
    let model = asked.req.model.clone();
    rec.client.model = Some(model.clone());
    let chosen = super::route::exact(live, &model)
        .ok_or_else(|| super::route::not_found(&live.config, &key, &model))?;
    super::route::allowed(&key, &model, &chosen)?;
    rec.client.routed = chosen.routed;
    let (route, configured) = (chosen.route, chosen.name);
    let denied = (!key.deny_params.is_empty())
        .then(|| filters::wire::json_peek::members(&body).ok())
        .flatten()
        .and_then(|m| key.deny_params.iter().find(|f| m.raw(f).is_some()).cloned());
    if let Some(field) = denied {
        return Err(ApiError::new(
            ErrorKind::PermissionDenied,
            format!("this API key may not set '{field}'"),
        )
        .with_status(400)
        .with_param(field.as_str()));
    }
    // Embeddings produce no output tokens: the input estimate is the hold.
    let size = super::admission::Size {
        input: if super::admission::needs_size(&key, &route) {
            filters::limits::estimate::input_tokens(&body)
        } else {
            0
        },
        output: 0,
    };
    super::admission::admit(live, rec, &key, &route, &configured, dialect, size).await?;
    let mut last: Option<ApiError> = None;
    for target in &route.targets {
        if !key.allows_provider(&target.provider.name) {
            continue;
        }
        let p = &target.provider;
        let Some(path) = dialect::embed_path(p.dialect, &p.path_prefix, &target.model) else {
            continue;
        };
        let upstream_body = dialect::encode_embed(p.dialect, &asked.req, &target.model);
        let answer = crate::exchange::call_once(
            upstream,
            live,
            rec,
            target,
            ("POST", &path),
            Bytes::from(upstream_body.to_string()),
        )
        .await;
        let decoded = answer
            .map_err(|f| f.to_api_error(&p.name, &rec.id))
            .and_then(|b| dialect::decode_embed_response(p.dialect, &b));
        match decoded {
            Ok(mut r) => return answer_client(session, rec, &asked, &mut r, dialect).await,
            Err(e) if e.is_deterministic() => return Err(e),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        ApiError::invalid(format!(
            "model '{model}' has no provider that serves embeddings"
        ))
        .with_param("model")
    }))
}

async fn answer_client(
    session: &mut Session,
    rec: &mut RequestRecord,
    asked: &Asked,
    r: &mut EmbedResponse,
    dialect: Dialect,
) -> Result<(), ApiError> {
    if r.vectors.len() != asked.req.inputs.len() {
        return Err(ApiError::new(
            ErrorKind::Api,
            format!(
                "the upstream returned {} vectors for {} inputs",
                r.vectors.len(),
                asked.req.inputs.len()
            ),
        ));
    }
    // Gemini does not count embedding input: the tokenizer does.
    if r.input_tokens == 0 {
        // CPU-bound: off the worker's runtime, which serves other requests.
        let inputs = asked.req.inputs.clone();
        r.input_tokens = tokio::task::spawn_blocking(move || {
            filters::tokens::text_tokens(inputs.iter().map(String::as_str))
        })
        .await
        .unwrap_or(0);
    }
    rec.result.usage = Some(Usage {
        input_uncached: r.input_tokens,
        ..Usage::default()
    });
    let v = dialect::encode_embed_answer(dialect, r, &asked.req.model, asked.base64, asked.single);
    respond_json(session, rec, &v).await;
    Ok(())
}
