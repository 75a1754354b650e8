//! A non-streaming answer: read whole (bounded), translated or passed
//! through with only `model` replaced, written in one response.

use super::attempt::{Answer, Served, Timing};
use super::conversation;
use super::or_client_left;
use crate::config::Target;
use crate::downstream::respond;
use crate::record::RequestRecord;
use crate::upstream::Failure;
use bytes::Bytes;
use filters::canonical::Part;
use filters::dialect::{self, Dialect};
use filters::openai_chat::stream::ReasoningOutput;
use pingora::proxy::Session;

/// Largest non-streaming upstream body we accept.
const MAX_UPSTREAM_BODY: usize = 64 * 1024 * 1024;
/// An answer larger than a socket's send buffer typically holds.
const LARGE_ANSWER: usize = 256 * 1024;

pub(super) async fn unary_target(
    session: &mut Session,
    rec: &mut RequestRecord,
    a: Answer<'_>,
    timing: &mut Timing,
) -> Result<Served, Failure> {
    let Answer {
        upstream,
        req,
        target,
        prepared,
        payload,
        mut call,
        deadline,
        sent,
        ..
    } = a;
    let Some(body) = or_client_left(session, call.read_all(deadline, MAX_UPSTREAM_BODY)).await
    else {
        return Ok(Served::ClientLeft);
    };
    let body = body?;
    timing.to_first_event = Some(sent.elapsed());
    upstream.release(call);
    let upstream_dialect = target.provider.dialect;
    let out: Bytes = if prepared.pass_through {
        let members = filters::wire::json_peek::members(&body)
            .map_err(|e| Failure::BadResponse(e.to_string()))?;
        rec.result.usage = filters::stream::usage_of_members(upstream_dialect, &members);
        // A Responses provider keeps its own turns: remember whose they are.
        if let (Some(r), Some(id)) = (req.responses, members.str("id")) {
            r.store
                .remember_origin(&id, target.provider.name.clone(), r.owner);
        }
        let member = dialect::model_member(upstream_dialect);
        let quoted =
            serde_json::to_vec(req.model).map_err(|e| Failure::BadResponse(e.to_string()))?;
        match members.str(member) {
            Some(m) if m != req.model => members
                .replace(member, &quoted)
                .map(Bytes::from)
                .unwrap_or(body.clone()),
            _ => body.clone(),
        }
    } else {
        let mut decoded = dialect::decode_response(upstream_dialect, &body)
            .map_err(|e| Failure::BadResponse(e.message))?;
        rec.result.usage = Some(decoded.usage);
        if prepared.tool_emulation {
            filters::tool_emulation::parse_response(&mut decoded);
        }
        if req.dialect == Dialect::OpenAiChat && req.reasoning == ReasoningOutput::Omit {
            decoded.parts.retain(|p| !matches!(p, Part::Reasoning(_)));
        }
        if let Some(r) = req.responses {
            decoded.id = r.id.to_owned();
        }
        let mut v = dialect::encode_response(req.dialect, &decoded, req.model);
        if let Some(previous) = req.responses.and_then(|r| r.previous) {
            v["previous_response_id"] = previous.into();
        }
        let out =
            Bytes::from(serde_json::to_vec(&v).map_err(|e| Failure::BadResponse(e.to_string()))?);
        if let (Some(r), Some(turn)) = (req.responses, payload.take_turn()) {
            conversation::keep(r, turn, &decoded, out.clone());
        }
        out
    };
    // Beyond what socket buffers hold, a client that does not read would
    // hold this write forever.
    if out.len() > LARGE_ANSWER {
        session.set_write_timeout(Some(req.write_timeout));
    }
    if let Some(c) = &mut rec.conversation {
        c.body(upstream_dialect, body);
    }
    let extra = target_headers(rec, target);
    respond(session, rec, 200, "application/json", out, &extra, false).await;
    Ok(Served::Clean)
}

/// `x-modelswitch-target` and `x-modelswitch-attempts` on a served answer.
pub(super) fn target_headers(rec: &RequestRecord, target: &Target) -> Vec<(&'static str, String)> {
    let mut extra = vec![(
        "x-modelswitch-target",
        format!("{}/{}", target.provider.name, target.model),
    )];
    // The answering target is recorded after its answer is written: when
    // it is the session's sticky one, the header says so in its place.
    let sticky_now = rec.sticky == Some(rec.attempts.len());
    if !rec.attempts.is_empty() || rec.client.routed.by.is_some() || sticky_now {
        let mut h = rec.attempts_header();
        if sticky_now {
            let sep = if h.is_empty() { "" } else { ", " };
            h.push_str(&format!(
                "{sep}{}/{}=ok sticky",
                target.provider.name, target.model
            ));
        }
        extra.push(("x-modelswitch-attempts", h));
    }
    extra.extend(rec.limit_headers.iter().cloned());
    extra
}
