//! The one internal model every dialect decodes into and encodes out of,
//! so each dialect needs one decoder and one encoder rather than a converter
//! per pair of dialects. It is deliberately neither OpenAI- nor
//! Anthropic-shaped: tool results are parts, system text is kept apart from
//! the conversation, reasoning carries its origin, usage is split into the
//! buckets every dialect's formulas can be derived from.

use crate::error::ApiError;
use serde_json::Value;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Request {
    /// The model name as the client asked for it.
    pub model: String,
    /// Leading system / developer text, one part per source block (keeps
    /// cache breakpoints where a dialect has them).
    pub system: Vec<TextPart>,
    pub messages: Vec<Message>,
    pub tools: Vec<Tool>,
    pub tool_choice: Option<ToolChoice>,
    pub parallel_tool_calls: Option<bool>,
    pub sampling: Sampling,
    pub reasoning: Option<ReasoningConfig>,
    pub output_format: Option<OutputFormat>,
    pub user: Option<String>,
    pub stream: bool,
    /// The client asked for usage in the stream (OpenAI
    /// `stream_options.include_usage`); Anthropic streams always carry it.
    pub include_usage: bool,
    /// Tools only one vendor runs (OpenAI's web search, Gemini's Google
    /// search...): sent to an upstream of that vendor's dialect as given,
    /// a 400 for any other.
    pub hosted_tools: Vec<HostedTool>,
    /// OpenAI Responses: the conversation this one continues. A Responses
    /// upstream resolves it; for any other the gateway does (its own store).
    pub previous_response_id: Option<String>,
    /// OpenAI Responses `store`, forwarded to a Responses upstream.
    pub store: Option<bool>,
    /// OpenAI `metadata` (string map), forwarded where a dialect has it.
    pub metadata: Option<Value>,
}

/// A tool the upstream vendor runs itself, in that vendor's own JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct HostedTool {
    pub issuer: Issuer,
    pub spec: Value,
}

impl HostedTool {
    /// A group of the client's own functions that only its vendor's API
    /// can describe (Codex's `namespace` tools): left out for other
    /// vendors rather than refused, since nothing is lost but the group.
    pub fn client_side(&self) -> bool {
        self.issuer == Issuer::OpenAi
            && self.spec.get("type").and_then(Value::as_str) == Some("namespace")
    }

    /// Refuses the first hosted tool an upstream speaking for `vendor`
    /// (`None`: a vendor with no hosted tools of this kind) cannot run.
    pub fn check_all(
        tools: &[Self],
        vendor: Option<Issuer>,
        upstream: &str,
    ) -> Result<(), ApiError> {
        match tools
            .iter()
            .find(|t| Some(t.issuer) != vendor && !t.client_side())
        {
            Some(t) => Err(t.refused(upstream)),
            None => Ok(()),
        }
    }

    /// The 400 for a hosted tool sent to an upstream that cannot run it.
    pub fn refused(&self, upstream: &str) -> ApiError {
        let kind = self
            .spec
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("unknown");
        ApiError::invalid(format!(
            "tool type '{kind}' is run only by {} models; this model is served by a {upstream} provider",
            self.issuer.vendor()
        ))
        .with_param("tools")
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct TextPart {
    pub text: String,
    /// The client marked a cache breakpoint here.
    pub cache: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    User,
    Assistant,
    /// A system message in the middle of the conversation.
    System,
    /// Results of tool calls; every part is a `Part::ToolResult`.
    Tool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub role: Role,
    pub parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Part {
    Text(TextPart),
    Image(Media),
    Document(Media),
    ToolCall(ToolCall),
    ToolResult(ToolResult),
    Reasoning(Reasoning),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Media {
    Base64 {
        mime: String,
        data: String,
    },
    Url(String),
    /// A document given as plain text.
    Text(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    /// The arguments as a JSON object text (never empty: `{}` at least).
    pub arguments: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ToolResult {
    pub call_id: String,
    pub content: Vec<Part>,
    pub is_error: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Reasoning {
    pub text: String,
    /// Opaque, provider-minted; replayed byte-exact or dropped.
    pub signature: Option<String>,
    /// Anthropic `redacted_thinking.data`.
    pub redacted: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Tool {
    pub name: String,
    pub description: Option<String>,
    /// JSON Schema of the arguments object.
    pub schema: Value,
    pub strict: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolChoice {
    Auto,
    None,
    Required,
    Named(String),
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sampling {
    pub max_output_tokens: Option<u64>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub top_k: Option<u64>,
    pub stop: Vec<String>,
    pub n: Option<u64>,
    pub seed: Option<i64>,
    pub presence_penalty: Option<f64>,
    pub frequency_penalty: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effort {
    None,
    Minimal,
    Low,
    Medium,
    High,
    XHigh,
    Max,
}

impl Effort {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "none" => Self::None,
            "minimal" => Self::Minimal,
            "low" => Self::Low,
            "medium" => Self::Medium,
            "high" => Self::High,
            "xhigh" => Self::XHigh,
            "max" => Self::Max,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Minimal => "minimal",
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
            Self::XHigh => "xhigh",
            Self::Max => "max",
        }
    }

    /// A thinking budget for dialects that only speak in tokens.
    pub fn budget_tokens(self) -> Option<u64> {
        match self {
            Self::None => None,
            Self::Minimal | Self::Low => Some(2048),
            Self::Medium => Some(8192),
            Self::High => Some(16384),
            Self::XHigh | Self::Max => Some(32768),
        }
    }

    /// The effort bucket a token budget falls into: up to 2k tokens is low,
    /// up to 8k medium, anything larger high.
    pub fn from_budget(budget: u64) -> Self {
        match budget {
            0 => Self::None,
            1..=2048 => Self::Low,
            2049..=8192 => Self::Medium,
            _ => Self::High,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReasoningConfig {
    pub effort: Option<Effort>,
    pub budget_tokens: Option<u64>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum OutputFormat {
    Text,
    JsonObject,
    JsonSchema {
        name: String,
        schema: Value,
        strict: Option<bool>,
    },
}

// --------------------------------------------------------------- embeddings

/// An embeddings request in any dialect (OpenAI `/v1/embeddings`, Gemini
/// `:embedContent` / `:batchEmbedContents`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EmbedRequest {
    pub model: String,
    /// One vector is returned per input, in order.
    pub inputs: Vec<String>,
    /// Output dimensionality, where the model can shorten its vectors.
    pub dimensions: Option<u64>,
    /// Gemini `taskType` (`RETRIEVAL_QUERY`...), kept for Gemini upstreams.
    pub task_type: Option<String>,
    pub user: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct EmbedResponse {
    pub vectors: Vec<Vec<f64>>,
    /// Input tokens as the upstream counted them (0 when it did not say).
    pub input_tokens: u64,
}

// ---------------------------------------------------------------- responses

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    Stop,
    StopSequence,
    Length,
    ToolCalls,
    ContentFilter,
    /// Anthropic `pause_turn`: a server tool wants the turn continued.
    Pause,
}

/// Token usage in buckets every dialect's fields can be computed from:
/// input without cache reads and writes, each cache bucket, and output
/// including reasoning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    pub input_uncached: u64,
    pub cache_read: u64,
    pub cache_write: u64,
    /// Visible output plus reasoning.
    pub output_total: u64,
    pub reasoning: u64,
}

impl Usage {
    /// Everything that went in, cached or not (OpenAI's `prompt_tokens`).
    pub fn input_total(&self) -> u64 {
        // Saturating: the counts come from upstreams, which may send anything.
        self.input_uncached
            .saturating_add(self.cache_read)
            .saturating_add(self.cache_write)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    pub id: String,
    pub model: String,
    /// In dialect-neutral order: reasoning, text, tool calls.
    pub parts: Vec<Part>,
    pub finish: FinishReason,
    pub stop_sequence: Option<String>,
    pub usage: Usage,
}

impl Response {
    pub fn has_tool_calls(&self) -> bool {
        self.parts.iter().any(|p| matches!(p, Part::ToolCall(_)))
    }

    /// The answer's text parts, joined.
    pub fn text(&self) -> String {
        text_of(&self.parts)
    }
}

/// The text parts of `parts`, joined (reasoning, calls and media left out).
pub fn text_of(parts: &[Part]) -> String {
    parts
        .iter()
        .filter_map(|p| match p {
            Part::Text(t) => Some(t.text.as_str()),
            _ => None,
        })
        .collect()
}

// ------------------------------------------------------------ stream events

/// What an upstream stream decoder hands to a client stream encoder. The
/// decoder has already normalised the upstream's quirks: tool calls are
/// numbered 0.. in order of appearance, a call's start (with id and name)
/// precedes its argument fragments, empty deltas are gone.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamEvent {
    /// The upstream acknowledged the request; input usage if it said so.
    Start {
        usage: Option<Usage>,
    },
    Text(String),
    Reasoning(String),
    ReasoningSignature(String),
    ToolCallStart {
        index: usize,
        id: String,
        name: String,
    },
    ToolCallArgs {
        index: usize,
        fragment: String,
    },
    /// Cumulative usage so far; later values replace earlier ones.
    Usage(Usage),
    Finish {
        reason: FinishReason,
        stop_sequence: Option<String>,
    },
    /// The upstream finished the stream properly.
    Done,
    /// The upstream reported an error inside the stream.
    Error(crate::error::ApiError),
}

impl StreamEvent {
    /// Events that prove the upstream is really answering: commit to a
    /// stream only after one of these (or its clean end) is in hand.
    pub fn is_content(&self) -> bool {
        matches!(
            self,
            Self::Text(_)
                | Self::Reasoning(_)
                | Self::ReasoningSignature(_)
                | Self::ToolCallStart { .. }
                | Self::ToolCallArgs { .. }
                | Self::Finish { .. }
                | Self::Done
        )
    }
}

/// Ids in a client's dialect.
pub fn new_id(prefix: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut s = String::with_capacity(prefix.len() + 24);
    s.push_str(prefix);
    for _ in 0..24 {
        s.push(ALPHABET[fastrand::usize(..ALPHABET.len())] as char);
    }
    s
}

/// A fresh id that sorts by time: `prefix`, then the Unix milliseconds
/// `now_ms` in 8 base-62 digits (fixed width, in ASCII order, so ids
/// compare as their times do, for some 6,900 years), then 16 random
/// characters (~95 bits). Request ids key the usage table's unique index,
/// and an index fed ids in time order appends at its right edge instead
/// of touching a random page per row: measured at half the insert cost.
pub fn new_sortable_id(prefix: &str, now_ms: u64) -> String {
    const DIGITS: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut s = String::with_capacity(prefix.len() + 24);
    s.push_str(prefix);
    let mut time = [b'0'; 8];
    let mut rest = now_ms;
    for d in time.iter_mut().rev() {
        *d = DIGITS[(rest % 62) as usize];
        rest /= 62;
    }
    s.extend(time.iter().map(|&b| b as char));
    for _ in 0..16 {
        s.push(DIGITS[fastrand::usize(..DIGITS.len())] as char);
    }
    s
}

/// Who minted an opaque reasoning token (Anthropic `signature`, Gemini
/// `thoughtSignature`, OpenAI Responses `encrypted_content`). Each vendor
/// rejects (or silently mis-reads) tokens it did not mint, so a token goes
/// back only to its issuer's dialect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Issuer {
    Anthropic,
    Gemini,
    OpenAi,
}

impl Issuer {
    fn tag(self) -> &'static str {
        match self {
            Self::Anthropic => "modelswitch-anthropic:",
            Self::Gemini => "modelswitch-gemini:",
            Self::OpenAi => "modelswitch-openai:",
        }
    }

    pub fn vendor(self) -> &'static str {
        match self {
            Self::Anthropic => "Anthropic",
            Self::Gemini => "Google Gemini",
            Self::OpenAi => "OpenAI",
        }
    }
}

/// All tags start so: a client-facing token that starts so is the gateway's.
const TAG_PREFIX: &str = "modelswitch-";

/// A token as it sits in [`Reasoning::signature`] and
/// [`StreamEvent::ReasoningSignature`]: Anthropic's raw (the format
/// Anthropic clients already replay), every other issuer's tagged. The
/// canonical form of a token `issuer` minted.
pub fn signature_minted(issuer: Issuer, raw: &str) -> String {
    match issuer {
        Issuer::Anthropic => raw.to_owned(),
        _ => format!("{}{raw}", issuer.tag()),
    }
}

/// The raw token for an upstream of `issuer`, if it minted this one.
pub fn signature_issued_by(canonical: &str, issuer: Issuer) -> Option<&str> {
    match issuer {
        Issuer::Anthropic => (!canonical.starts_with(TAG_PREFIX)).then_some(canonical),
        _ => canonical.strip_prefix(issuer.tag()),
    }
}

/// A canonical token as a client of dialect `client` should carry it: its
/// own issuer's raw, anyone else's tagged so it comes back recognisable.
pub fn signature_to_client(canonical: &str, client: Issuer) -> String {
    if let Some(raw) = signature_issued_by(canonical, client) {
        return raw.to_owned();
    }
    if canonical.starts_with(TAG_PREFIX) {
        canonical.to_owned()
    } else {
        format!("{}{canonical}", Issuer::Anthropic.tag())
    }
}

/// The inverse of [`signature_to_client`]: a token a client of `client`
/// replays, back in canonical form (untagged means its own issuer's).
pub fn signature_from_client(wire: &str, client: Issuer) -> String {
    if let Some(raw) = wire.strip_prefix(Issuer::Anthropic.tag()) {
        return raw.to_owned();
    }
    if wire.starts_with(TAG_PREFIX) {
        return wire.to_owned();
    }
    signature_minted(client, wire)
}

/// Whether raw request bytes carry a token the gateway tagged (one of the
/// issuer tags, or the unsigned marker). Exact tags only: a conversation
/// that merely mentions "modelswitch-" keeps its pass-through.
pub fn contains_tagged_token(body: &[u8]) -> bool {
    const TAILS: [&[u8]; 4] = [b"anthropic:", b"gemini:", b"openai:", b"unsigned:"];
    memchr::memmem::find_iter(body, TAG_PREFIX.as_bytes()).any(|at| {
        let rest = &body[at + TAG_PREFIX.len()..];
        TAILS.iter().any(|t| rest.starts_with(t))
    })
}

/// Marks a reasoning signature the gateway made up because the upstream
/// gave none (Anthropic clients drop unsigned thinking). It must never reach
/// a real Anthropic upstream, which rejects any signature it did not mint.
pub const SYNTHETIC_SIGNATURE_PREFIX: &str = "modelswitch-unsigned:";

pub fn is_synthetic_signature(sig: &str) -> bool {
    sig.starts_with(SYNTHETIC_SIGNATURE_PREFIX)
}

#[cfg(test)]
mod signature_tests {
    use super::*;

    #[test]
    fn accumulated_reasoning_keeps_each_signature_with_its_block() {
        let fold = |evs: Vec<StreamEvent>| {
            let mut a = Accumulator::default();
            evs.iter().for_each(|e| a.push(e));
            a.into_response("r".into(), "m".into())
                .parts
                .into_iter()
                .filter_map(|p| match p {
                    Part::Reasoning(r) => Some((r.text, r.signature)),
                    _ => None,
                })
                .collect::<Vec<_>>()
        };
        let sig = |s: &str| StreamEvent::ReasoningSignature(s.into());
        let think = |s: &str| StreamEvent::Reasoning(s.into());
        // Anthropic: text, then its signature; two blocks.
        assert_eq!(
            fold(vec![
                think("a"),
                think("b"),
                sig("s1"),
                think("c"),
                sig("s2")
            ]),
            [
                ("ab".into(), Some("s1".into())),
                ("c".into(), Some("s2".into()))
            ]
        );
        // Gemini: the thought's signature first, then one for the call.
        assert_eq!(
            fold(vec![sig("g1"), think("t"), sig("g2")]),
            [
                ("t".into(), Some("g1".into())),
                (String::new(), Some("g2".into()))
            ]
        );
    }

    #[test]
    fn tokens_go_back_only_to_their_issuer() {
        let g = signature_minted(Issuer::Gemini, "g1");
        assert_eq!(signature_issued_by(&g, Issuer::Gemini), Some("g1"));
        assert_eq!(signature_issued_by(&g, Issuer::Anthropic), None);
        assert_eq!(signature_issued_by(&g, Issuer::OpenAi), None);
        let a = signature_minted(Issuer::Anthropic, "a1");
        assert_eq!(a, "a1");
        assert_eq!(signature_issued_by(&a, Issuer::Anthropic), Some("a1"));
        assert_eq!(signature_issued_by(&a, Issuer::Gemini), None);
        let synthetic = format!("{SYNTHETIC_SIGNATURE_PREFIX}x");
        assert_eq!(signature_issued_by(&synthetic, Issuer::Anthropic), None);
    }

    #[test]
    fn only_exact_tags_count_as_tagged_tokens() {
        assert!(contains_tagged_token(
            b"{\"signature\":\"modelswitch-gemini:abc\"}"
        ));
        assert!(contains_tagged_token(b"x modelswitch-unsigned:1"));
        assert!(!contains_tagged_token(
            b"echo modelswitch-$((6*7)) -> modelswitch-42"
        ));
        assert!(!contains_tagged_token(b"modelswitch-"));
    }

    #[test]
    fn a_client_round_trip_keeps_the_issuer() {
        for client in [Issuer::Anthropic, Issuer::Gemini, Issuer::OpenAi] {
            for issuer in [Issuer::Anthropic, Issuer::Gemini, Issuer::OpenAi] {
                let c = signature_minted(issuer, "tok");
                let wire = signature_to_client(&c, client);
                assert_eq!(wire == "tok", client == issuer, "{client:?} {issuer:?}");
                assert_eq!(signature_from_client(&wire, client), c);
            }
        }
    }
}

/// Text length → token estimate, for places where a dialect needs a number
/// before the upstream gave one (Anthropic `message_start`, count_tokens).
/// About four bytes per token for English and code; never 0.
pub fn estimate_tokens_from_bytes(bytes: usize) -> u64 {
    (bytes as u64).div_ceil(4).max(1)
}

/// Bytes of everything a model reads from `req`: system text, message
/// text, tool arguments and results, tool definitions. Images count as a
/// flat allowance, since their cost depends on the provider.
pub fn text_bytes(req: &Request) -> usize {
    fn part_bytes(p: &Part) -> usize {
        match p {
            Part::Text(t) => t.text.len(),
            Part::Image(_) => 6000,
            Part::Document(Media::Text(t)) => t.len(),
            Part::Document(Media::Base64 { data, .. }) => data.len() / 2,
            Part::Document(Media::Url(_)) => 6000,
            Part::ToolCall(c) => c.name.len() + c.arguments.len(),
            Part::ToolResult(r) => r.content.iter().map(part_bytes).sum::<usize>() + 8,
            Part::Reasoning(r) => r.text.len(),
        }
    }
    let system: usize = req.system.iter().map(|t| t.text.len()).sum();
    let messages: usize = req
        .messages
        .iter()
        .flat_map(|m| &m.parts)
        .map(part_bytes)
        .sum::<usize>()
        + 4 * req.messages.len();
    let tools: usize = req
        .tools
        .iter()
        .map(|t| {
            t.name.len()
                + t.description.as_ref().map_or(0, String::len)
                + t.schema.to_string().len()
        })
        .sum();
    system + messages + tools
}

/// `v[key]` as text, `""` when absent or not a string: wire decoders are
/// lenient about optional fields.
pub(crate) fn str_at<'a>(v: &'a serde_json::Value, key: &str) -> &'a str {
    v.get(key)
        .and_then(serde_json::Value::as_str)
        .unwrap_or_default()
}

/// `v[key]` as an owned string, if it is one.
pub(crate) fn opt_str(v: &serde_json::Value, key: &str) -> Option<String> {
    v.get(key)
        .and_then(serde_json::Value::as_str)
        .map(str::to_owned)
}

/// Canonical stream events folded back into one response: what a client
/// that streamed got, for the gateway's own conversation store.
#[derive(Debug, Default)]
pub struct Accumulator {
    text: String,
    /// In order, each with its own signature: a signature belongs to the
    /// reasoning before it (Gemini also signs a function call with one of
    /// its own), and a token must come back exactly as it was minted.
    reasoning: Vec<Reasoning>,
    calls: Vec<ToolCall>,
    finish: Option<FinishReason>,
    stop_sequence: Option<String>,
    usage: Usage,
}

impl Accumulator {
    pub fn push(&mut self, ev: &StreamEvent) {
        match ev {
            StreamEvent::Start { usage: Some(u) } | StreamEvent::Usage(u) => self.usage = *u,
            StreamEvent::Text(t) => self.text.push_str(t),
            // Anthropic signs a block after its text, Gemini before it: a
            // signed block takes more text only while it has none.
            StreamEvent::Reasoning(t) => match self.reasoning.last_mut() {
                Some(r) if r.signature.is_none() || r.text.is_empty() => r.text.push_str(t),
                _ => self.reasoning.push(Reasoning {
                    text: t.clone(),
                    signature: None,
                    redacted: None,
                }),
            },
            StreamEvent::ReasoningSignature(s) => match self.reasoning.last_mut() {
                Some(r) if r.signature.is_none() => r.signature = Some(s.clone()),
                _ => self.reasoning.push(Reasoning {
                    text: String::new(),
                    signature: Some(s.clone()),
                    redacted: None,
                }),
            },
            StreamEvent::ToolCallStart { index, id, name } => {
                if *index >= self.calls.len() {
                    self.calls.resize_with(index + 1, || ToolCall {
                        id: String::new(),
                        name: String::new(),
                        arguments: String::new(),
                    });
                }
                self.calls[*index].id.clone_from(id);
                self.calls[*index].name.clone_from(name);
            }
            StreamEvent::ToolCallArgs { index, fragment } => {
                if let Some(c) = self.calls.get_mut(*index) {
                    c.arguments.push_str(fragment);
                }
            }
            StreamEvent::Finish {
                reason,
                stop_sequence,
            } => {
                self.finish = Some(*reason);
                self.stop_sequence.clone_from(stop_sequence);
            }
            StreamEvent::Start { usage: None } | StreamEvent::Done | StreamEvent::Error(_) => {}
        }
    }

    pub fn into_response(self, id: String, model: String) -> Response {
        let mut parts: Vec<Part> = self.reasoning.into_iter().map(Part::Reasoning).collect();
        if !self.text.is_empty() {
            parts.push(Part::Text(TextPart {
                text: self.text,
                cache: false,
            }));
        }
        for mut c in self.calls {
            if c.arguments.trim().is_empty() {
                c.arguments = "{}".into();
            }
            parts.push(Part::ToolCall(c));
        }
        let finish =
            self.finish
                .unwrap_or(if parts.iter().any(|p| matches!(p, Part::ToolCall(_))) {
                    FinishReason::ToolCalls
                } else {
                    FinishReason::Stop
                });
        Response {
            id,
            model,
            parts,
            finish,
            stop_sequence: self.stop_sequence,
            usage: self.usage,
        }
    }
}

/// What a same-dialect stream event tells the gateway; the event itself is
/// forwarded as it came, with only the model name rewritten.
#[derive(Debug)]
pub enum Observed {
    Nothing,
    /// A real event: past it, the stream is committed.
    Content,
    Usage(Usage),
    Done,
    /// The upstream's own error; the caller writes it in the client dialect.
    Error(ApiError),
}

impl Observed {
    /// An event that is not what its dialect promises.
    pub fn malformed(e: impl std::fmt::Display) -> Self {
        Self::Error(ApiError::new(
            crate::error::ErrorKind::Api,
            format!("upstream sent a malformed stream event: {e}"),
        ))
    }
}

/// Tool-call arguments as JSON object text: `""` → `{}`, an object given
/// as JSON (not a string) is serialised, anything unparseable is a 400 —
/// never silently `{}`.
pub fn arguments_text(v: &Value) -> Result<String, ApiError> {
    match v {
        Value::Null => Ok("{}".into()),
        Value::String(s) if s.trim().is_empty() => Ok("{}".into()),
        Value::String(s) => match serde_json::from_str::<Value>(s) {
            Ok(Value::Object(_)) => Ok(s.clone()),
            _ => Err(ApiError::invalid(format!(
                "tool call arguments must be a JSON object, got: {}",
                truncate(s, 120)
            ))),
        },
        Value::Object(_) => Ok(v.to_string()),
        _ => Err(ApiError::invalid(
            "tool call arguments must be a JSON object",
        )),
    }
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod id_tests {
    use super::*;

    #[test]
    fn sortable_ids_sort_by_time_and_differ_within_a_millisecond() {
        let a = new_sortable_id("req_", 1_764_000_000_000);
        let b = new_sortable_id("req_", 1_764_000_000_001);
        let c = new_sortable_id("req_", 1_764_000_000_001);
        assert_eq!(a.len(), 4 + 24);
        assert!(a.starts_with("req_") && a.is_ascii());
        assert!(a < b && a < c, "{a} {b} {c}");
        assert_ne!(b, c);
        assert_eq!(b[..12], c[..12]);
        // Far-apart times keep their order too: fixed-width digits.
        assert!(new_sortable_id("r", 0) < new_sortable_id("r", 61));
        assert!(new_sortable_id("r", 61) < new_sortable_id("r", 62));
        assert!(new_sortable_id("r", 62u64.pow(8) - 1).starts_with("rzzzzzzzz"));
    }
}
