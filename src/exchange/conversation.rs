//! OpenAI Responses conversations kept by the gateway, for models whose
//! provider keeps none (Chat, Anthropic, Gemini): `previous_response_id`
//! is expanded into the turns it stands for, and each answered turn is
//! kept (unless the client said `store: false`). A Responses upstream
//! resolves its own ids: its requests pass through untouched.

use bytes::Bytes;
use filters::canonical::{Message, Request, Response};
use filters::conversations::{ConversationStore, Lookup, Turn};
use filters::error::{ApiError, ErrorKind};
use std::time::Instant;

/// A Responses client's request: the id minted for its answer and the
/// store the turn goes to.
#[derive(Clone, Copy)]
pub struct Responses<'a> {
    pub id: &'a str,
    pub store: &'a ConversationStore,
    /// The conversation it continues, echoed in the answer as OpenAI does.
    pub previous: Option<&'a str>,
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
) -> Result<Option<PendingTurn>, ApiError> {
    let keep = req.store != Some(false);
    let previous = req.previous_response_id.take();
    let turn = keep.then(|| PendingTurn {
        previous: previous.clone(),
        input: req.messages.clone(),
    });
    if let Some(id) = previous {
        let history = match store.history(&id, Instant::now()) {
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

/// The answered turn, kept under the response's id.
pub fn keep(r: Responses<'_>, turn: PendingTurn, answer: &Response, body: Bytes) {
    r.store.insert(
        r.id.to_owned(),
        Turn {
            previous: turn.previous,
            input: turn.input,
            output: answer.parts.clone(),
            response: body,
        },
        Instant::now(),
    );
}
