//! A generation request up to the exchange: auth, the body, the model and
//! its route, the key's allow-list.

use super::auth::authenticate_caller;
use crate::downstream::read_body;
use crate::exchange::{self, ClientHeaders, ClientRequest, Payload, Responses, Rewritable};
use crate::record::RequestRecord;
use crate::shutdown::Drain;
use crate::state::Live;
use crate::upstream::UpstreamClient;
use filters::conversations::ConversationStore;
use filters::error::{ApiError, ErrorKind};
use filters::Dialect;
use pingora::proxy::Session;

/// Where the model and the streaming mode are named, per dialect.
struct Shape {
    model: String,
    stream: bool,
}

/// The body's model, stream flag and conversation member, read once: the
/// upstream must see what the gateway saw.
fn shape(
    dialect: Dialect,
    path: &str,
    members: &filters::wire::json_peek::Members<'_>,
) -> Result<Shape, ApiError> {
    for name in ["model", "stream"] {
        if let Some(variant) = members.case_variant_of(name) {
            return Err(ApiError::invalid(format!(
                "\"{variant}\" is not allowed: case-insensitive upstream parsers read it as \"{name}\""
            ))
            .with_param(name));
        }
    }
    let (conversation, array) = filters::dialect::conversation_member(dialect);
    let present = members.raw(conversation).is_some_and(|m| {
        let first = m.first().copied();
        first == Some(b'[') || (!array && first == Some(b'"'))
    });
    if !present {
        let what = if array {
            "an array"
        } else {
            "a string or an array"
        };
        return Err(
            ApiError::invalid(format!("{conversation}: {what} is required"))
                .with_param(conversation),
        );
    }
    if dialect.model_in_path() {
        let call = filters::ingress::gemini_call(path)
            .ok_or_else(|| ApiError::new(ErrorKind::NotFound, format!("no route for {path}")))?;
        let stream = call.action == filters::ingress::GeminiAction::StreamGenerate;
        return Ok(Shape {
            model: call.model,
            stream,
        });
    }
    let model = members
        .str("model")
        .ok_or_else(|| ApiError::invalid("model: a string is required").with_param("model"))?;
    // A string "true" that the gateway reads as false would stream anyway.
    let stream = match members.raw("stream") {
        None | Some(b"false") | Some(b"null") => false,
        Some(b"true") => true,
        Some(_) => {
            return Err(ApiError::invalid("stream: must be true or false").with_param("stream"))
        }
    };
    Ok(Shape { model, stream })
}

/// How the body names the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    /// The dialect's own request.
    Native,
    /// `POST /route/invoke`: tags and an OpenAI Chat request, rewritten
    /// into one for `tags:…` before anything reads it.
    Invoke,
}

#[expect(
    clippy::too_many_arguments,
    reason = "the request path's shared parts, borrowed"
)]
pub async fn generate(
    upstream: &UpstreamClient,
    session: &mut Session,
    rec: &mut RequestRecord,
    live: &Live,
    dialect: Dialect,
    call: Call,
    drain: &Drain,
    conversations: &'static ConversationStore,
) -> Result<(), ApiError> {
    let snap = &live.config;
    let key = authenticate_caller(live, session)?;
    rec.client.key_name = Some(key.name.clone());
    let mut body = read_body(session, snap).await?;
    if call == Call::Invoke {
        body = filters::routing::invoke::to_chat(&body)?.into();
    }
    // Logged conversations keep the body (a shared buffer, not a copy).
    if crate::journal::logs_conversations(snap.log_conversations, &key) {
        rec.conversation = Some(Box::new(crate::journal::Capture::new(body.clone())));
    }
    if let Err(e) = std::str::from_utf8(&body) {
        return Err(ApiError::invalid(format!(
            "request body is not valid UTF-8 (byte {})",
            e.valid_up_to()
        )));
    }
    let members = filters::wire::json_peek::members(&body)
        .map_err(|e| ApiError::invalid(format!("request body is not a valid JSON object: {e}")))?;
    let Shape { model, stream } = shape(dialect, session.req_header().uri.path(), &members)?;
    let previous_response_id = (dialect == Dialect::OpenAiResponses)
        .then(|| members.str("previous_response_id"))
        .flatten();
    // OpenAI keeps a response unless told `store: false` (Codex always is).
    let store_asked = members.raw("store") != Some(b"false");
    if let Some(field) = key.deny_params.iter().find(|f| members.raw(f).is_some()) {
        return Err(ApiError::new(
            ErrorKind::PermissionDenied,
            format!("this API key may not set '{field}'"),
        )
        .with_status(400)
        .with_param(field.as_str()));
    }
    rec.client.session = filters::session::session_id(
        snap.routing.affinity.header.as_ref(),
        &session.req_header().headers,
        || {
            (dialect == Dialect::Anthropic)
                .then(|| members.raw("metadata"))
                .flatten()
                .and_then(filters::session::metadata_user_id)
        },
    )
    .map(std::sync::Arc::from);
    let asked = filters::dialect::requested_output(dialect, &members);
    let rewritable = Rewritable::of(&members);
    let facts =
        super::route::wants_facts(snap).then(|| filters::routing::facts::read(dialect, &members));
    drop(members);
    rec.client.model = Some(model.clone());
    rec.client.stream = stream;
    let session_id = rec.client.session.clone();
    let (chosen, needs) = super::route::decide(
        upstream,
        live,
        rec,
        &super::route::Asked {
            dialect,
            requested: &model,
            key: &key,
            body: &body,
            headers: &session.req_header().headers,
            facts,
            session: session_id.as_deref(),
        },
    )
    .await?;
    let route = chosen.route;
    rec.client.routed = chosen.routed;
    // Limits and budgets count against the model that serves.
    let configured = chosen.name;
    // The key's output cap tightens the model's.
    let max_output_tokens = match (route.max_output_tokens, key.max_output_tokens) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    // Sized only where a token limit or a budget counts it: the body is
    // scanned for inline media only then.
    let size = if super::admission::needs_size(&key, &route) {
        let output = asked
            .max_tokens
            .unwrap_or(snap.limits.default_reserve_output)
            .min(max_output_tokens.unwrap_or(u64::MAX))
            .saturating_mul(asked.choices);
        super::admission::Size {
            input: filters::limits::estimate::input_tokens(&body),
            output,
        }
    } else {
        super::admission::Size::default()
    };
    let reserve =
        super::admission::admit(live, rec, &key, &route, &configured, dialect, size).await?;
    let head = session.req_header();
    // Gemini's REST API streams one JSON array unless asked for SSE.
    let json_array = stream
        && dialect == Dialect::Gemini
        && head
            .uri
            .query()
            .and_then(|q| filters::wire::http::query_param(q, "alt"))
            .is_none_or(|alt| alt != "sse");
    let response_id = if dialect == Dialect::OpenAiResponses {
        Some(exchange::mint_response_id().ok_or_else(|| {
            ApiError::new(
                ErrorKind::Api,
                "the system has no randomness for a response id",
            )
        })?)
    } else {
        None
    };
    let local_previous = previous_response_id
        .as_deref()
        .is_some_and(|p| conversations.contains(p, &key.name, std::time::Instant::now()));
    // Its own handle: the record is lent to the exchange mutably.
    let affinity_session = rec
        .client
        .session
        .clone()
        .filter(|_| snap.routing.affinity.enabled);
    let request = ClientRequest {
        reasoning: exchange::openai_reasoning(route.openai_reasoning, head),
        json_array,
        responses: response_id.as_deref().map(|id| Responses {
            id,
            store: conversations,
            previous: previous_response_id.as_deref(),
            local_previous,
            owner: &key.name,
            keep: store_asked,
        }),
        dialect,
        model: &model,
        stream,
        needs,
        max_output_tokens,
        allowed_providers: key.allowed_providers.as_deref(),
        reserve,
        headers: ClientHeaders::from_request(session.req_header(), dialect),
        body_len: body.len(),
        carries_synthetic_signature: filters::dialect::carries_synthetic_signature(dialect, &body),
        max_event_bytes: snap.downstream.max_event_bytes,
        drain,
        write_timeout: snap.downstream.client_write_timeout,
        session: affinity_session.as_deref(),
    };
    let mut payload = Payload::new(body, rewritable);
    if dialect.model_in_path() {
        payload = payload.with_path_model(&model, stream);
    }
    if dialect == Dialect::OpenAiResponses {
        payload = payload.with_conversations(conversations, &key.name, local_previous);
    }
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
