//! OpenAI Responses conversations kept by the gateway, for models whose
//! provider keeps none (Chat, Anthropic, Gemini): `previous_response_id`
//! is expanded into the turns it stands for, and each answered turn is
//! kept (unless the client said `store: false`). A Responses upstream
//! resolves its own ids: its requests pass through untouched — unless the
//! id is one the gateway keeps, which is then expanded for it too.
//! Every turn belongs to the client key that made it.

use super::ClientRequest;
use crate::config::Provider;
use bytes::Bytes;
use filters::canonical::{Message, Request, Response};
use filters::conversations::{ConversationStore, Lookup, Turn};
use filters::error::{ApiError, ErrorKind};
use filters::stream::StreamTranscoder;
use std::time::Instant;

/// A Responses client's request: the id minted for its answer and the
/// store the turn goes to.
#[derive(Clone, Copy)]
pub struct Responses<'a> {
    pub id: &'a str,
    pub store: &'a ConversationStore,
    /// The conversation it continues, echoed in the answer as OpenAI does.
    pub previous: Option<&'a str>,
    /// `previous` is a turn the gateway keeps (not a provider's id).
    pub local_previous: bool,
    /// The client key's name: the turn's owner.
    pub owner: &'a str,
    /// The client did not say `store: false`.
    pub keep: bool,
}

/// A response id the gateway keeps a turn under: 24 base62 characters
/// from the OS's CSPRNG (~143 bits), since a kept turn is read by id.
/// `None` only if the OS has no randomness to give.
pub fn mint_id() -> Option<String> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes).ok()?;
    let mut id = String::with_capacity(29);
    id.push_str("resp_");
    // 256 % 62 leaves a slight bias towards the first 8 letters: ~0.1 bit
    // of 143, immaterial here.
    id.extend(bytes.iter().map(|b| ALPHABET[usize::from(*b) % 62] as char));
    Some(id)
}

/// A turn waiting for its answer: what the client added to the
/// conversation.
#[derive(Debug)]
pub struct PendingTurn {
    pub previous: Option<String>,
    pub input: Vec<Message>,
}

/// Before a request for a non-Responses upstream is encoded: the turn it
/// adds (to keep once answered), with `previous_response_id` replaced by
/// the messages it stands for.
pub fn expand(
    req: &mut Request,
    store: &ConversationStore,
    owner: &str,
) -> Result<Option<PendingTurn>, ApiError> {
    let keep = req.store != Some(false);
    let previous = req.previous_response_id.take();
    let turn = keep.then(|| PendingTurn {
        previous: previous.clone(),
        input: req.messages.clone(),
    });
    if let Some(id) = previous {
        let history = match store.history(&id, owner, Instant::now()) {
            Lookup::Found(m) => m,
            Lookup::Unknown => {
                return Err(not_found(format!(
                    "Previous response with id '{id}' not found."
                )))
            }
            Lookup::Broken(gone) => {
                return Err(not_found(format!(
                    "Previous response with id '{id}' builds on '{gone}', which has expired."
                )))
            }
        };
        let new = std::mem::take(&mut req.messages);
        req.messages = history;
        req.messages.extend(new);
    }
    Ok(turn)
}

fn not_found(message: String) -> ApiError {
    let mut e = ApiError::new(ErrorKind::NotFound, message).with_param("previous_response_id");
    e.code = Some("previous_response_not_found".into());
    e
}

/// A Responses client's stream has ended: a Responses provider keeps its
/// own turns (remember whose the id is); any other answer is kept here
/// when the client did not say `store: false` and the stream completed.
pub fn after_stream(
    r: Responses<'_>,
    t: &mut StreamTranscoder,
    turn: Option<PendingTurn>,
    provider: &Provider,
    req: &ClientRequest<'_>,
) {
    if let Some(id) = t.upstream_response_id() {
        r.store.remember_origin(id, provider.name.clone(), r.owner);
    }
    let Some(turn) = turn else {
        return;
    };
    if let Some(answer) = t.take_response(r.id.to_owned(), req.model.to_owned()) {
        let mut body = filters::dialect::encode_response(req.dialect, &answer, req.model);
        if let Some(previous) = r.previous {
            body["previous_response_id"] = previous.into();
        }
        keep(r, turn, &answer, body.to_string().into());
    }
}

/// The answered turn, kept under the response's id.
pub fn keep(r: Responses<'_>, turn: PendingTurn, answer: &Response, body: Bytes) {
    r.store.insert(
        r.id.to_owned(),
        Turn {
            previous: turn.previous,
            input: turn.input,
            output: answer.parts.clone(),
            response: body,
            owner: r.owner.to_owned(),
        },
        Instant::now(),
    );
}
