//! A generation request up to the exchange: auth, the body, the model and
//! its route, the key's allow-list.

use super::auth::authenticate;
use crate::downstream::read_body;
use crate::exchange::{self, ClientHeaders, ClientRequest};
use crate::record::RequestRecord;
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
) -> Result<(), ApiError> {
    let snap = &live.config;
    let key = authenticate(snap, session)?;
    rec.client.key_name = Some(key.name.clone());
    let body = read_body(session, snap.max_request_body_bytes).await?;
    if let Err(e) = std::str::from_utf8(&body) {
        return Err(ApiError::invalid(format!(
            "request body is not valid UTF-8 (byte {})",
            e.valid_up_to()
        )));
    }
    let members = filters::wire::json_peek::members(&body)
        .map_err(|e| ApiError::invalid(format!("request body is not a valid JSON object: {e}")))?;
    let model = members
        .str("model")
        .ok_or_else(|| ApiError::invalid("model: a string is required").with_param("model"))?;
    if members
        .raw("messages")
        .is_none_or(|m| m.first() != Some(&b'['))
    {
        return Err(ApiError::invalid("messages: an array is required").with_param("messages"));
    }
    rec.client.model = Some(model.clone());
    rec.client.stream = members.bool("stream").unwrap_or(false);
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
        body: &body,
        members: &members,
        model: &model,
        stream: rec.client.stream,
        headers: ClientHeaders::from_request(session.req_header(), dialect),
    };
    Box::pin(exchange::run(
        upstream, session, rec, live, &route, &request,
    ))
    .await
}
