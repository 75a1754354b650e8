//! A generation request up to the exchange: auth, the body, the model and
//! its route, the key's allow-list.

use super::auth::authenticate;
use crate::downstream::read_body;
use crate::exchange::{self, ClientHeaders, ClientRequest, Payload, Rewritable};
use crate::record::RequestRecord;
use crate::shutdown::Drain;
use crate::state::Live;
use crate::upstream::UpstreamClient;
use filters::error::{ApiError, ErrorKind};
use filters::Dialect;
use pingora::proxy::Session;

pub async fn generate(
    upstream: &UpstreamClient,
    session: &mut Session,
    rec: &mut RequestRecord,
    live: &Live,
    dialect: Dialect,
    drain: &Drain,
) -> Result<(), ApiError> {
    let snap = &live.config;
    let key = authenticate(snap, session)?;
    rec.client.key_name = Some(key.name.clone());
    let body = read_body(session, snap).await?;
    if let Err(e) = std::str::from_utf8(&body) {
        return Err(ApiError::invalid(format!(
            "request body is not valid UTF-8 (byte {})",
            e.valid_up_to()
        )));
    }
    let members = filters::wire::json_peek::members(&body)
        .map_err(|e| ApiError::invalid(format!("request body is not a valid JSON object: {e}")))?;
    for name in ["model", "stream"] {
        if let Some(variant) = members.case_variant_of(name) {
            return Err(ApiError::invalid(format!(
                "\"{variant}\" is not allowed: case-insensitive upstream parsers read it as \"{name}\""
            ))
            .with_param(name));
        }
    }
    let model = members
        .str("model")
        .ok_or_else(|| ApiError::invalid("model: a string is required").with_param("model"))?;
    if members
        .raw("messages")
        .is_none_or(|m| m.first() != Some(&b'['))
    {
        return Err(ApiError::invalid("messages: an array is required").with_param("messages"));
    }
    // One reading: the upstream must see what the gateway saw. A string
    // "true" that the gateway reads as false would stream anyway.
    let stream = match members.raw("stream") {
        None | Some(b"false") | Some(b"null") => false,
        Some(b"true") => true,
        Some(_) => {
            return Err(ApiError::invalid("stream: must be true or false").with_param("stream"))
        }
    };
    let rewritable = Rewritable::of(&members);
    drop(members);
    rec.client.model = Some(model.clone());
    rec.client.stream = stream;
    let route = snap.routes.get(&model).cloned().ok_or_else(|| {
        let mut known: Vec<&str> = snap
            .model_names
            .iter()
            .map(String::as_str)
            .filter(|m| key.allows_model(m))
            .collect();
        known.truncate(20);
        ApiError::new(
            ErrorKind::NotFound,
            format!(
                "model '{model}' is not configured; available: {}",
                known.join(", ")
            ),
        )
        .with_param("model")
    })?;
    if !key.allows_model(&model) {
        return Err(ApiError::new(
            ErrorKind::PermissionDenied,
            format!("this API key may not use model '{model}'"),
        ));
    }
    let request = ClientRequest {
        dialect,
        model: &model,
        stream,
        headers: ClientHeaders::from_request(session.req_header(), dialect),
        body_len: body.len(),
        carries_synthetic_signature: filters::dialect::carries_synthetic_signature(dialect, &body),
        max_event_bytes: snap.downstream.max_event_bytes,
        drain,
        write_timeout: snap.downstream.client_write_timeout,
    };
    let payload = Payload::new(body, rewritable);
    let run = Box::pin(exchange::run(
        upstream, session, rec, live, &route, &request, payload,
    ));
    // A request still waiting for its upstream when a shutdown's grace
    // ends gets an error; a committed stream ends itself just before.
    let finished = tokio::select! {
        biased;
        done = run => Some(done),
        () = drain.ended() => None,
    };
    match finished {
        Some(done) => done,
        None if rec.result.status == 0 => Err(ApiError::new(
            ErrorKind::Overloaded,
            "the gateway is shutting down",
        )),
        None => Ok(()),
    }
}
