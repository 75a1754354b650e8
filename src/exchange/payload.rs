//! The heavy parts of a request — the client's body, its decoded canonical
//! form, the body prepared for a target — owned in one place so that a
//! stream can let go of them at its commit point: after it, no other
//! target will be tried, and a held stream should cost only its transcoder
//! state (Claude Code prompts run 100 KB to 1 MB each).
//!
//! Also the one place that rewrites a same-dialect body: the routed model
//! and a `max_output_tokens` cap are spliced into the client's bytes.

use super::conversation::{self, PendingTurn};
use bytes::Bytes;
use filters::canonical::Request;
use filters::conversations::ConversationStore;
use filters::dialect::{self, Dialect};
use filters::error::{ApiError, ErrorKind};
use filters::wire::json_peek::Members;
use std::ops::Range;

/// Where the members the gateway rewrites sit in the client's body. The
/// scanner refuses duplicate keys, so each is there at most once.
#[derive(Debug, Default, Clone)]
pub struct Rewritable {
    model: Option<Range<usize>>,
    max_tokens: Option<(Range<usize>, Option<u64>)>,
    max_completion_tokens: Option<(Range<usize>, Option<u64>)>,
    /// OpenAI Responses' name for the budget.
    max_output_tokens: Option<(Range<usize>, Option<u64>)>,
    /// OpenAI `stream_options.include_usage`, for a same-dialect stream
    /// that is re-encoded rather than passed through.
    include_usage: bool,
    /// `"stream": true`, and where `stream_options` sits, if anywhere: a
    /// same-dialect OpenAI stream is asked for usage the client did not
    /// ask for (limits and accounting need it).
    stream: bool,
    stream_options: Option<Range<usize>>,
    /// OpenAI Chat: `reasoning_effort` is set, and where `messages` sit (an
    /// OpenAI-compatible target may read either differently).
    reasoning_effort: bool,
    messages: Option<Range<usize>>,
    /// Nothing the canonical stream cannot carry (OpenAI `n > 1`,
    /// `logprobs`): a same-dialect stream may be re-encoded.
    reencodable: bool,
}

impl Rewritable {
    pub fn of(members: &Members<'_>) -> Self {
        let number = |key: &str| {
            members.get(key).map(|r| {
                let n = std::str::from_utf8(&members.json[r.clone()])
                    .ok()
                    .and_then(|t| t.trim().parse::<u64>().ok());
                (r, n)
            })
        };
        Self {
            model: members.get("model"),
            max_tokens: number("max_tokens"),
            max_completion_tokens: number("max_completion_tokens"),
            max_output_tokens: number("max_output_tokens"),
            include_usage: members
                .raw("stream_options")
                .and_then(|raw| filters::wire::json_peek::members(raw).ok())
                .is_some_and(|m| m.raw("include_usage") == Some(b"true")),
            stream: members.raw("stream") == Some(b"true"),
            stream_options: members.get("stream_options"),
            reasoning_effort: members.get("reasoning_effort").is_some(),
            messages: members.get("messages"),
            reencodable: members.raw("n").is_none_or(|n| n == b"1" || n == b"null")
                && members.raw("logprobs") != Some(b"true"),
        }
    }
}

pub struct Payload {
    /// The client's body; `None` once released.
    body: Option<Bytes>,
    rewritable: Rewritable,
    canonical: Option<Request>,
    /// Gemini: the model and the mode come from the URL, not the body.
    from_path: Option<(String, bool)>,
    /// OpenAI Responses clients: the gateway's conversation store, and the
    /// turn this request adds to it (once decoded for a non-Responses
    /// upstream).
    conversations: Option<Conversations>,
    turn: Option<PendingTurn>,
    expanded: bool,
}

/// A Responses client's conversation context.
struct Conversations {
    store: &'static ConversationStore,
    owner: String,
    /// `previous_response_id` names a turn the gateway keeps.
    local_previous: bool,
}

/// A body ready for one target.
pub struct Prepared {
    pub body: Bytes,
    pub pass_through: bool,
    pub include_usage: bool,
    /// A same-dialect stream may be re-encoded (see `Rewritable`).
    pub reencodable: bool,
    /// The upstream was asked for usage the client did not ask for: its
    /// usage chunk is read, not forwarded.
    pub usage_injected: bool,
    /// Tools went through the prompt: the answer's text is read back
    /// into tool calls before the client's encoder sees it.
    pub tool_emulation: bool,
}

/// How the body for one target is made.
pub struct Target<'a> {
    pub dialect: Dialect,
    pub model: &'a str,
    pub encode: &'a dialect::EncodeOptions,
    pub max_output_tokens: Option<u64>,
    /// The target has no native tools and emulates them in the prompt.
    pub tool_emulation: bool,
}

/// `req` encoded for `target` (a translated body: never the client's bytes).
fn encoded(
    target: &Target<'_>,
    req: &filters::canonical::Request,
    tool_emulation: bool,
) -> Result<Prepared, ApiError> {
    let value = dialect::encode_request(
        target.dialect,
        req,
        target.model,
        target.encode,
        target.max_output_tokens,
    )?;
    let body =
        serde_json::to_vec(&value).map_err(|e| ApiError::new(ErrorKind::Api, e.to_string()))?;
    Ok(Prepared {
        body: Bytes::from(body),
        pass_through: false,
        include_usage: req.include_usage,
        reencodable: true,
        // A translated stream's encoder writes usage only if asked.
        usage_injected: false,
        tool_emulation,
    })
}

fn released() -> ApiError {
    ApiError::new(ErrorKind::Api, "the request was already released")
}

impl Payload {
    pub fn new(body: Bytes, rewritable: Rewritable) -> Self {
        Self {
            body: Some(body),
            rewritable,
            canonical: None,
            from_path: None,
            conversations: None,
            turn: None,
            expanded: false,
        }
    }

    /// The model and the streaming mode named by the URL (Gemini).
    pub fn with_path_model(mut self, model: &str, stream: bool) -> Self {
        self.from_path = Some((model.to_owned(), stream));
        self
    }

    /// A Responses client's request by the key named `owner`:
    /// `previous_response_id` is expanded from `store` for upstreams that
    /// keep no conversations, and for any upstream when the gateway kept it
    /// (`local_previous`, looked up once by the caller).
    pub fn with_conversations(
        mut self,
        store: &'static ConversationStore,
        owner: &str,
        local_previous: bool,
    ) -> Self {
        self.conversations = Some(Conversations {
            store,
            owner: owner.to_owned(),
            local_previous,
        });
        self
    }

    /// The turn to keep once answered (taken before a stream's commit
    /// point releases the request).
    pub fn take_turn(&mut self) -> Option<PendingTurn> {
        self.turn.take()
    }

    /// Frees the body and its decoded form (at a stream's commit point).
    pub fn release(&mut self) {
        self.body = None;
        self.canonical = None;
    }

    fn canonical(&mut self, client: Dialect, upstream: Dialect) -> Result<&Request, ApiError> {
        if self.canonical.is_none() {
            let body = self.body.as_ref().ok_or_else(released)?;
            let mut req = dialect::decode_request(client, body)?;
            if let Some((model, stream)) = &self.from_path {
                req.model.clone_from(model);
                req.stream = *stream;
            }
            self.canonical = Some(req);
        }
        let req = self.canonical.as_mut().ok_or_else(released)?;
        // A Responses provider resolves the ids it minted; every other id
        // (and every id for any other upstream) the gateway expands, once:
        // the expanded request suits a Responses fallback target too.
        if let Some(c) = &self.conversations {
            let providers_id = req.previous_response_id.is_some() && !c.local_previous;
            let resolved_upstream = upstream == Dialect::OpenAiResponses && providers_id;
            if !self.expanded && !resolved_upstream {
                self.expanded = true;
                self.turn = conversation::expand(req, c.store, &c.owner)?;
            }
        }
        Ok(req)
    }

    /// Whether the client's OpenAI Chat bytes, passed through, would break
    /// a quirk of an OpenAI-compatible target: the token-limit field it
    /// reads, the field it reads a request for reasoning from, system
    /// messages only first. Then they are decoded and encoded for it
    /// instead (members only that target reads are lost then).
    pub fn breaks_quirks(&self, client: Dialect, target: &Target<'_>) -> bool {
        use filters::openai_chat::request::{MidSystem, ReasoningParam};
        if client != Dialect::OpenAiChat || target.dialect != Dialect::OpenAiChat {
            return false;
        }
        let o = &target.encode.openai;
        let r = &self.rewritable;
        // What the canonical request cannot carry (`n > 1`, logprobs) is
        // worth more than a quirk.
        if !r.reencodable {
            return false;
        }
        // Only fields the provider's config (or preset) chose: a default
        // never costs a client its request's other members.
        let limit = o.strict_limit_field
            && if o.max_completion_tokens_field {
                r.max_tokens.is_some()
            } else {
                r.max_completion_tokens.is_some()
            };
        let reasoning =
            r.reasoning_effort && o.strict_reasoning && o.reasoning != ReasoningParam::Effort;
        let system = o.mid_system != MidSystem::Keep
            && match (&self.body, &r.messages) {
                (Some(b), Some(m)) => b
                    .get(m.clone())
                    .is_some_and(filters::openai_chat::request::may_have_late_system),
                _ => false,
            };
        limit || reasoning || system
    }

    /// `pass_through`: the client's bytes with only the model (and an
    /// over-cap max-tokens) replaced; else decoded and encoded for the
    /// target's dialect.
    pub fn prepare(
        &mut self,
        client: Dialect,
        target: &Target<'_>,
        pass_through: bool,
    ) -> Result<Prepared, ApiError> {
        if target.tool_emulation {
            return self.prepare_emulated(client, target);
        }
        if pass_through {
            let body = self.body.as_ref().ok_or_else(released)?;
            let r = &self.rewritable;
            let usage_injected =
                target.dialect == Dialect::OpenAiChat && r.stream && !r.include_usage;
            return Ok(Prepared {
                body: Bytes::from(self.splice(body, target, usage_injected)?),
                pass_through: true,
                include_usage: r.include_usage,
                reencodable: r.reencodable,
                usage_injected,
                tool_emulation: false,
            });
        }
        let canonical = self.canonical(client, target.dialect)?;
        // An OpenAI client's own `reasoning_effort` stays what it said to a
        // backend whose reasoning field nobody chose, as when passed through
        // (translated reasoning is not sent there; `reasoning_param =
        // "none"` strips it).
        if client == Dialect::OpenAiChat
            && target.dialect == Dialect::OpenAiChat
            && !target.encode.openai.strict_reasoning
            && target.encode.openai.reasoning == filters::openai_chat::request::ReasoningParam::None
        {
            let mut encode = target.encode.clone();
            encode.openai.reasoning = filters::openai_chat::request::ReasoningParam::Effort;
            return encoded(
                &Target {
                    encode: &encode,
                    ..*target
                },
                canonical,
                false,
            );
        }
        encoded(target, canonical, false)
    }

    /// A target whose tools are emulated: never the client's bytes (they
    /// may carry tools); a request with tools or tool history is
    /// rewritten for a text-only model (a copy: the next target may have
    /// native tools), any other is encoded as it is.
    fn prepare_emulated(
        &mut self,
        client: Dialect,
        target: &Target<'_>,
    ) -> Result<Prepared, ApiError> {
        let canonical = self.canonical(client, target.dialect)?;
        let emulated = filters::tool_emulation::applies(canonical).then(|| {
            let mut copy = canonical.clone();
            filters::tool_emulation::rewrite_request(&mut copy);
            copy
        });
        let req = emulated.as_ref().unwrap_or(canonical);
        encoded(target, req, emulated.is_some())
    }

    /// The same-dialect rewrite: whatever the client sent, the upstream
    /// receives exactly the routed model, no more output tokens than the
    /// model's cap, and (`ask_usage`) `stream_options.include_usage`.
    fn splice(
        &self,
        body: &[u8],
        target: &Target<'_>,
        ask_usage: bool,
    ) -> Result<Vec<u8>, ApiError> {
        let quote = |v: &str| {
            serde_json::to_vec(v).map_err(|e| ApiError::new(ErrorKind::Api, e.to_string()))
        };
        let r = &self.rewritable;
        if target.dialect.model_in_path() {
            return gemini_cap(body, target.max_output_tokens);
        }
        let mut edits: Vec<(Range<usize>, Vec<u8>)> = Vec::with_capacity(2);
        match &r.model {
            Some(at) => edits.push((at.clone(), quote(target.model)?)),
            None => return Err(ApiError::invalid("model: a string is required")),
        }
        if let Some(cap) = target.max_output_tokens {
            let present = [
                &r.max_tokens,
                &r.max_completion_tokens,
                &r.max_output_tokens,
            ];
            let mut any = false;
            for (at, n) in present.into_iter().flatten() {
                any = true;
                if n.is_none_or(|n| n > cap) {
                    edits.push((at.clone(), cap.to_string().into_bytes()));
                }
            }
            if !any {
                // Unbounded: add the cap as the member the dialect reads.
                let field = dialect::max_tokens_member(target.dialect, target.encode);
                let open = body.iter().position(|&b| b == b'{').unwrap_or(0);
                let member = format!("\"{field}\":{cap},").into_bytes();
                edits.push((open + 1..open + 1, member));
            }
        }
        if ask_usage {
            let open = body.iter().position(|&b| b == b'{').unwrap_or(0);
            match &r.stream_options {
                // The client's options, with usage on.
                Some(at) => {
                    let mut options: serde_json::Value = serde_json::from_slice(&body[at.clone()])
                        .ok()
                        .filter(serde_json::Value::is_object)
                        .unwrap_or_else(|| serde_json::json!({}));
                    options["include_usage"] = true.into();
                    edits.push((at.clone(), options.to_string().into_bytes()));
                }
                None => edits.push((
                    open + 1..open + 1,
                    b"\"stream_options\":{\"include_usage\":true},".to_vec(),
                )),
            }
        }
        edits.sort_by_key(|(at, _)| at.start);
        let mut out = Vec::with_capacity(body.len() + 64);
        let mut from = 0;
        for (at, with) in edits {
            out.extend_from_slice(&body[from..at.start]);
            out.extend_from_slice(&with);
            from = at.end;
        }
        out.extend_from_slice(&body[from..]);
        Ok(out)
    }
}

/// A Gemini body as the client sent it (the model is in the path), with
/// `generationConfig.maxOutputTokens` capped when the model has a cap:
/// the member is nested, so the body is re-serialised, only then.
fn gemini_cap(body: &[u8], cap: Option<u64>) -> Result<Vec<u8>, ApiError> {
    let Some(cap) = cap else {
        return Ok(body.to_vec());
    };
    let mut v: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::invalid(format!("request body is not valid JSON: {e}")))?;
    let Some(obj) = v.as_object_mut() else {
        return Err(ApiError::invalid("request body must be a JSON object"));
    };
    let config = obj
        .entry("generationConfig")
        .or_insert_with(|| serde_json::json!({}));
    let Some(config) = config.as_object_mut() else {
        return Err(
            ApiError::invalid("generationConfig must be an object").with_param("generationConfig")
        );
    };
    let asked = config
        .get("maxOutputTokens")
        .and_then(serde_json::Value::as_u64);
    if asked.is_none_or(|n| n > cap) {
        config.insert("maxOutputTokens".into(), cap.into());
    }
    serde_json::to_vec(&v).map_err(|e| ApiError::new(ErrorKind::Api, e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use filters::wire::json_peek::members;

    fn payload(body: &str) -> Payload {
        let rewritable = Rewritable::of(&members(body.as_bytes()).unwrap());
        Payload::new(Bytes::from(body.to_owned()), rewritable)
    }

    fn pass(p: &mut Payload, cap: Option<u64>, dialect: Dialect) -> serde_json::Value {
        let encode = dialect::EncodeOptions::default();
        let target = Target {
            dialect,
            model: "up\"stream",
            encode: &encode,
            max_output_tokens: cap,
            tool_emulation: false,
        };
        let prepared = p.prepare(dialect, &target, true).unwrap();
        serde_json::from_slice(&prepared.body).unwrap()
    }

    #[test]
    fn the_model_and_an_over_cap_budget_are_replaced_in_place() {
        let mut p = payload(r#"{"model":"m","max_tokens":9000,"messages":[]}"#);
        let v = pass(&mut p, Some(4096), Dialect::Anthropic);
        assert_eq!(v["model"], "up\"stream");
        assert_eq!(v["max_tokens"], 4096);
        let mut p = payload(r#"{"max_tokens":100,"model":"m"}"#);
        assert_eq!(
            pass(&mut p, Some(4096), Dialect::Anthropic)["max_tokens"],
            100
        );
    }

    #[test]
    fn a_same_dialect_openai_stream_is_asked_for_usage() {
        for (body, asked) in [
            (r#"{"model":"m","stream":true,"messages":[]}"#, false),
            (
                r#"{"model":"m","stream":true,"stream_options":{"include_usage":false,"x":1},"messages":[]}"#,
                false,
            ),
            (
                r#"{"model":"m","stream":true,"stream_options":{"include_usage":true},"messages":[]}"#,
                true,
            ),
        ] {
            let mut p = payload(body);
            let encode = dialect::EncodeOptions::default();
            let target = Target {
                dialect: Dialect::OpenAiChat,
                model: "up",
                encode: &encode,
                max_output_tokens: Some(64),
                tool_emulation: false,
            };
            let prepared = p.prepare(Dialect::OpenAiChat, &target, true).unwrap();
            let v: serde_json::Value = serde_json::from_slice(&prepared.body).unwrap();
            assert_eq!(v["stream_options"]["include_usage"], true, "{v}");
            assert_eq!(
                (v["model"].as_str(), v["max_tokens"].as_u64()),
                (Some("up"), Some(64))
            );
            assert_eq!(prepared.usage_injected, !asked, "{body}");
            if body.contains("\"x\"") {
                assert_eq!(
                    v["stream_options"]["x"], 1,
                    "the client's other options stay"
                );
            }
        }
        // Not streaming, or not OpenAI: nothing added.
        let mut p = payload(r#"{"model":"m","messages":[]}"#);
        assert!(pass(&mut p, None, Dialect::OpenAiChat)
            .get("stream_options")
            .is_none());
        let mut p = payload(r#"{"model":"m","stream":true,"messages":[]}"#);
        assert!(pass(&mut p, None, Dialect::Anthropic)
            .get("stream_options")
            .is_none());
    }

    #[test]
    fn an_unbounded_openai_request_gets_the_cap() {
        let mut p = payload(r#" {"model":"m","messages":[]}"#);
        let v = pass(&mut p, Some(512), Dialect::OpenAiChat);
        assert_eq!(v["max_tokens"], 512);
        assert_eq!(v["model"], "up\"stream");
        let mut p = payload(r#"{"model":"m","max_completion_tokens":"lots"}"#);
        assert_eq!(
            pass(&mut p, Some(512), Dialect::OpenAiChat)["max_completion_tokens"],
            512
        );
    }

    #[test]
    fn gemini_bodies_keep_their_bytes_unless_capped() {
        let body = r#"{"contents":[{"role":"user","parts":[{"text":"hi"}]}]}"#;
        let mut p = payload(body).with_path_model("m", false);
        let encode = dialect::EncodeOptions::default();
        let mut target = Target {
            dialect: Dialect::Gemini,
            model: "up",
            encode: &encode,
            max_output_tokens: None,
            tool_emulation: false,
        };
        let same = p.prepare(Dialect::Gemini, &target, true).unwrap();
        assert_eq!(&same.body[..], body.as_bytes());
        target.max_output_tokens = Some(64);
        let capped = p.prepare(Dialect::Gemini, &target, true).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&capped.body).unwrap();
        assert_eq!(v["generationConfig"]["maxOutputTokens"], 64);
        let mut p = payload(r#"{"contents":[],"generationConfig":{"maxOutputTokens":10}}"#);
        let v: serde_json::Value =
            serde_json::from_slice(&p.prepare(Dialect::Gemini, &target, true).unwrap().body)
                .unwrap();
        assert_eq!(v["generationConfig"]["maxOutputTokens"], 10);
    }

    #[test]
    fn responses_budget_is_capped_in_place() {
        let mut p = payload(r#"{"model":"m","input":"hi","max_output_tokens":9000}"#);
        let v = pass(&mut p, Some(100), Dialect::OpenAiResponses);
        assert_eq!(v["max_output_tokens"], 100);
        let mut p = payload(r#"{"model":"m","input":"hi"}"#);
        let v = pass(&mut p, Some(100), Dialect::OpenAiResponses);
        assert_eq!(v["max_output_tokens"], 100);
    }

    #[test]
    fn an_emulated_target_gets_tools_in_the_prompt_and_others_keep_them() {
        let body = r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"tools":[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object"}}}],"tool_choice":"required"}"#;
        let mut p = payload(body);
        let encode = dialect::EncodeOptions::default();
        let mut target = Target {
            dialect: Dialect::OpenAiChat,
            model: "up",
            encode: &encode,
            max_output_tokens: None,
            tool_emulation: true,
        };
        // Same dialect, pass-through asked: emulation decodes anyway.
        let emulated = p.prepare(Dialect::OpenAiChat, &target, true).unwrap();
        assert!(emulated.tool_emulation && !emulated.pass_through);
        let v: serde_json::Value = serde_json::from_slice(&emulated.body).unwrap();
        assert!(
            v.get("tools").is_none() && v.get("tool_choice").is_none(),
            "{v}"
        );
        let system = v["messages"][0]["content"].to_string();
        assert!(
            system.contains("<tools>") && system.contains("get_weather"),
            "{v}"
        );
        assert!(
            system.contains("You must call at least one function"),
            "{v}"
        );
        // The next target (native tools) gets the client's request.
        target.tool_emulation = false;
        let native = p.prepare(Dialect::OpenAiChat, &target, false).unwrap();
        assert!(!native.tool_emulation);
        let v: serde_json::Value = serde_json::from_slice(&native.body).unwrap();
        assert_eq!(v["tools"][0]["function"]["name"], "get_weather");
        // No tools, no history: encoded as it is, nothing to read back.
        let mut p = payload(r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#);
        target.tool_emulation = true;
        let plain = p.prepare(Dialect::OpenAiChat, &target, true).unwrap();
        assert!(!plain.tool_emulation && !plain.pass_through);
        assert!(!String::from_utf8_lossy(&plain.body).contains("<tools>"));
    }

    #[test]
    fn released_payloads_prepare_nothing() {
        let mut p = payload(r#"{"model":"m"}"#);
        p.release();
        let encode = dialect::EncodeOptions::default();
        let target = Target {
            dialect: Dialect::OpenAiChat,
            model: "x",
            encode: &encode,
            max_output_tokens: None,
            tool_emulation: false,
        };
        assert!(p.prepare(Dialect::OpenAiChat, &target, true).is_err());
    }
}
