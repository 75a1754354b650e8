//! One upstream stream on its way to one client: SSE framing, the upstream
//! dialect's decoder, the client dialect's encoder, and the facts the
//! commit-late loop needs (has a real event arrived, did the stream finish
//! or fail, what usage did it report). Sans-IO: bytes in, bytes out.

use crate::canonical::{Accumulator, Observed, Response, StreamEvent, Usage};
use crate::dialect::{self, ClientStream, Dialect, PassThrough, StreamDecoder, StreamEncoder};
use crate::error::{ApiError, ErrorKind};
use crate::wire::json_array::JsonArrayFraming;
use crate::wire::json_peek;
use crate::wire::sse::{SseDecoder, SseEvent};
use bytes::BytesMut;

/// Where a stream stands after the latest bytes.
#[derive(Debug, Clone, PartialEq)]
pub enum Progress {
    /// Nothing that proves a real answer yet (headers, `message_start`,
    /// an empty preamble chunk): safe to fall over to another target.
    Pending,
    /// A real event arrived: commit and keep streaming.
    Streaming,
    /// The upstream finished properly.
    Done,
    /// The upstream failed; before commit, fall over, after it, `out`
    /// already holds the client's in-stream error event.
    Failed(ApiError),
}

#[expect(
    clippy::large_enum_variant,
    reason = "one per request, never moved on the hot path"
)]
enum Mode {
    Translate {
        decoder: StreamDecoder,
        encoder: StreamEncoder,
    },
    /// Same-dialect streams are forwarded event by event; only `model` is
    /// rewritten and only usage, terminators and errors are looked at.
    PassThrough(PassThrough),
}

pub struct StreamTranscoder {
    client: Dialect,
    sse: SseDecoder,
    raw: Vec<SseEvent>,
    events: Vec<StreamEvent>,
    mode: Mode,
    progress: Progress,
    /// A real event reached `out` (the commit point), even if the same
    /// read then failed.
    content_seen: bool,
    usage: Option<Usage>,
    /// Gemini clients that did not ask for SSE get one JSON array.
    array: Option<(JsonArrayFraming, BytesMut)>,
    /// What the client got, folded into a response (for the gateway's
    /// own Responses conversation store).
    accumulator: Option<Accumulator>,
    /// Tool calls read out of a text-only model's text (translated
    /// streams only); `None` costs one check per batch of events.
    tool_emulation: Option<Box<crate::tool_emulation::StreamParser>>,
}

impl StreamTranscoder {
    /// A cross-dialect stream. `model` is what the client asked for;
    /// `estimated_input` feeds Anthropic's `message_start`.
    pub fn translate(
        upstream: Dialect,
        client: Dialect,
        model: &str,
        include_usage: bool,
        estimated_input: u64,
    ) -> Self {
        let c = ClientStream {
            model,
            include_usage,
            estimated_input,
            ..ClientStream::default()
        };
        Self::translate_for(upstream, client, &c)
    }

    /// A cross-dialect stream, with everything the client encoder needs.
    pub fn translate_for(upstream: Dialect, client: Dialect, c: &ClientStream<'_>) -> Self {
        let decoder = StreamDecoder::new(upstream);
        let encoder = StreamEncoder::new(client, c);
        Self::with_mode(client, Mode::Translate { decoder, encoder })
    }

    /// Frames the client's stream as one JSON array (Gemini without
    /// `alt=sse`).
    pub fn with_json_array(mut self) -> Self {
        self.array = Some((JsonArrayFraming::new(), BytesMut::new()));
        self
    }

    /// Keeps what the client got, for [`Self::take_response`]
    /// (translated streams only).
    pub fn with_accumulator(mut self) -> Self {
        self.accumulator = Some(Accumulator::default());
        self
    }

    /// Reads `<tool_call>` blocks in the upstream's text as tool calls
    /// (a target with tools emulated through the prompt; translated
    /// streams only).
    pub fn with_tool_emulation(mut self) -> Self {
        self.tool_emulation = Some(Box::default());
        self
    }

    /// The id the upstream gave a same-dialect Responses stream.
    pub fn upstream_response_id(&self) -> Option<&str> {
        match &self.mode {
            Mode::PassThrough(p) => p.response_id(),
            Mode::Translate { .. } => None,
        }
    }

    /// The whole answer as the client got it, once the stream is done.
    pub fn take_response(&mut self, id: String, model: String) -> Option<Response> {
        if self.progress != Progress::Done {
            return None;
        }
        Some(self.accumulator.take()?.into_response(id, model))
    }

    /// A same-dialect stream; `rename` replaces the upstream's model name.
    pub fn pass_through(dialect: Dialect, rename: Option<&str>) -> Self {
        Self::with_mode(
            dialect,
            Mode::PassThrough(PassThrough::new(dialect, rename)),
        )
    }

    /// A pass-through stream whose upstream was asked for usage its client
    /// did not ask for: that usage is counted, not forwarded.
    pub fn hiding_usage(mut self) -> Self {
        if let Mode::PassThrough(p) = &mut self.mode {
            p.hide_usage_chunk();
        }
        self
    }

    fn with_mode(client: Dialect, mode: Mode) -> Self {
        Self {
            client,
            sse: SseDecoder::new(),
            raw: Vec::new(),
            events: Vec::new(),
            mode,
            progress: Progress::Pending,
            content_seen: false,
            usage: None,
            array: None,
            accumulator: None,
            tool_emulation: None,
        }
    }

    pub fn progress(&self) -> &Progress {
        &self.progress
    }

    /// Whether a real event was produced: past the commit point, even when
    /// the upstream failed later in the same read.
    pub fn has_content(&self) -> bool {
        self.content_seen
    }

    /// The latest usage the upstream reported, if any.
    pub fn usage(&self) -> Option<Usage> {
        self.usage
    }

    /// Refuse upstream lines and events over `limit` bytes (an upstream
    /// failure, like a malformed event).
    pub fn with_event_limit(mut self, limit: usize) -> Self {
        self.sse = SseDecoder::with_limit(limit);
        self
    }

    /// Feeds one upstream read; appends what the client should get.
    pub fn feed(&mut self, chunk: &[u8], out: &mut BytesMut) -> &Progress {
        self.framed(out, |t, out| t.feed_sse(chunk, out));
        &self.progress
    }

    /// The upstream closed the body.
    pub fn finish(&mut self, out: &mut BytesMut) -> &Progress {
        self.framed(out, Self::finish_sse);
        &self.progress
    }

    /// Ends the stream with the client dialect's in-stream error (a timeout
    /// or read error after commit). Never a clean-looking finish.
    pub fn fail(&mut self, e: &ApiError, out: &mut BytesMut) {
        self.framed(out, |t, out| t.fail_sse(e, out));
    }

    /// A dialect-correct keep-alive for long upstream silences.
    pub fn keepalive(&self, out: &mut BytesMut) {
        match &self.array {
            Some((framing, _)) => framing.keepalive(out),
            None => dialect::keepalive(self.client, out),
        }
    }

    /// Runs `f` with SSE output, turned into JSON-array elements when the
    /// client asked for those (the array closes when the stream is over).
    fn framed(&mut self, out: &mut BytesMut, f: impl FnOnce(&mut Self, &mut BytesMut)) {
        let Some((framing, mut sse)) = self.array.take() else {
            return f(self, out);
        };
        let mut framing = framing;
        sse.clear();
        f(self, &mut sse);
        framing.reframe(&sse, out);
        if self.is_over() {
            framing.close(out);
        }
        self.array = Some((framing, sse));
    }

    fn feed_sse(&mut self, chunk: &[u8], out: &mut BytesMut) {
        if self.is_over() {
            return;
        }
        self.sse.feed(chunk, &mut self.raw);
        self.drain(out);
        if self.sse.overflowed() && !self.is_over() {
            let e = ApiError::new(
                ErrorKind::Api,
                "upstream sent a stream event over the size limit",
            );
            self.fail_sse(&e, out);
        }
    }

    fn finish_sse(&mut self, out: &mut BytesMut) {
        if self.is_over() {
            return;
        }
        self.sse.finish(&mut self.raw);
        self.drain(out);
        if self.is_over() {
            return;
        }
        match &mut self.mode {
            Mode::Translate { decoder, .. } => {
                decoder.finish(&mut self.events);
                self.apply_events(out);
            }
            Mode::PassThrough(p) => {
                if p.finish(out) {
                    self.progress = Progress::Done;
                } else {
                    let e = ApiError::new(
                        ErrorKind::Api,
                        "upstream closed the stream before it finished",
                    );
                    self.fail_sse(&e, out);
                }
            }
        }
    }

    fn fail_sse(&mut self, e: &ApiError, out: &mut BytesMut) {
        match &mut self.mode {
            Mode::Translate { encoder, .. } => encoder.fail(e, out),
            Mode::PassThrough(p) => p.fail(self.client, e, out),
        }
        self.progress = Progress::Failed(e.clone());
    }

    fn is_over(&self) -> bool {
        matches!(self.progress, Progress::Done | Progress::Failed(_))
    }

    fn drain(&mut self, out: &mut BytesMut) {
        let raw = std::mem::take(&mut self.raw);
        for ev in &raw {
            if self.is_over() {
                break;
            }
            match &mut self.mode {
                Mode::Translate { decoder, .. } => {
                    decoder.feed(ev, &mut self.events);
                    self.apply_events(out);
                }
                Mode::PassThrough(_) => self.pass_event(ev, out),
            }
        }
        self.raw = raw;
        self.raw.clear();
    }

    fn apply_events(&mut self, out: &mut BytesMut) {
        let Mode::Translate { encoder, .. } = &mut self.mode else {
            return;
        };
        if let Some(parser) = &mut self.tool_emulation {
            parser.transform(&mut self.events);
        }
        for ev in self.events.drain(..) {
            match &ev {
                StreamEvent::Start { usage: Some(u) } | StreamEvent::Usage(u) => {
                    self.usage = Some(*u)
                }
                StreamEvent::Error(e) => self.progress = Progress::Failed(e.clone()),
                StreamEvent::Done => self.progress = Progress::Done,
                e if e.is_content() && self.progress == Progress::Pending => {
                    self.progress = Progress::Streaming;
                    self.content_seen = true;
                }
                _ => {}
            }
            if let Some(acc) = &mut self.accumulator {
                acc.push(&ev);
            }
            encoder.encode(&ev, out);
            if matches!(self.progress, Progress::Failed(_)) {
                break;
            }
        }
        self.events.clear();
    }

    fn pass_event(&mut self, ev: &SseEvent, out: &mut BytesMut) {
        let Mode::PassThrough(p) = &mut self.mode else {
            return;
        };
        let outcome = p.event(ev, out);
        match outcome {
            Observed::Nothing => {}
            Observed::Content => {
                if self.progress == Progress::Pending {
                    self.progress = Progress::Streaming;
                    self.content_seen = true;
                }
            }
            Observed::Usage(u) => self.usage = Some(u),
            Observed::Done => self.progress = Progress::Done,
            Observed::Error(e) => {
                p.fail(self.client, &e, out);
                self.progress = Progress::Failed(e);
            }
        }
    }
}

/// Usage from a same-dialect non-streaming body, without decoding the rest.
pub fn usage_of_body(dialect: Dialect, body: &[u8]) -> Option<Usage> {
    usage_of_members(dialect, &json_peek::members(body).ok()?)
}

/// The same, for a body already scanned.
pub fn usage_of_members(dialect: Dialect, m: &json_peek::Members<'_>) -> Option<Usage> {
    dialect::usage_from_raw(dialect, m.raw(dialect::usage_member(dialect))?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(t: &mut StreamTranscoder, input: &[u8], piece: usize) -> (String, Progress) {
        let mut out = BytesMut::new();
        for c in input.chunks(piece) {
            t.feed(c, &mut out);
        }
        let p = t.finish(&mut out).clone();
        (String::from_utf8(out.to_vec()).unwrap(), p)
    }

    const OPENAI_STREAM: &str = concat!(
        "data: {\"id\":\"x\",\"model\":\"up\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n",
        "data: {\"id\":\"x\",\"model\":\"up\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hé\"}}]}\n\n",
        "data: {\"id\":\"x\",\"model\":\"up\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n",
        "data: {\"id\":\"x\",\"model\":\"up\",\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":2}}\n\n",
        "data: [DONE]\n\n",
    );

    #[test]
    fn commit_point_is_the_first_real_event() {
        let mut t =
            StreamTranscoder::translate(Dialect::OpenAiChat, Dialect::Anthropic, "c", false, 10);
        let mut out = BytesMut::new();
        let first = OPENAI_STREAM.split("\n\n").next().unwrap();
        assert_eq!(
            t.feed(format!("{first}\n\n").as_bytes(), &mut out),
            &Progress::Pending
        );
        let rest = &OPENAI_STREAM[first.len() + 2..];
        assert_eq!(t.feed(rest.as_bytes(), &mut out), &Progress::Done);
        let text = String::from_utf8(out.to_vec()).unwrap();
        assert!(text.contains("\"text\":\"Hé\""));
        assert!(text.ends_with("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"));
        assert_eq!(t.usage().map(|u| u.output_total), Some(2));
    }

    #[test]
    fn pass_through_renames_and_tracks_usage_at_any_split() {
        for piece in [1, 7, 64, 4096] {
            let mut t = StreamTranscoder::pass_through(Dialect::OpenAiChat, Some("client"));
            let (text, p) = run(&mut t, OPENAI_STREAM.as_bytes(), piece);
            assert_eq!(p, Progress::Done);
            assert_eq!(text.matches("\"model\":\"client\"").count(), 4);
            assert!(!text.contains("\"up\""));
            assert_eq!(t.usage().map(|u| u.input_uncached), Some(3));
        }
    }

    #[test]
    fn pass_through_eof_after_a_finish_reason_completes_the_stream() {
        let chunk = |finish: &str| {
            format!("data: {{\"id\":\"x\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"a\"}},\"logprobs\":{{\"content\":[{{\"x\":[1]}}]}},\"finish_reason\":{finish}}}]}}\n\n")
        };
        // Only nulls (every OpenAI chunk carries the key): not finished.
        let open = chunk("null") + &chunk("null");
        let mut t = StreamTranscoder::pass_through(Dialect::OpenAiChat, None);
        assert!(matches!(
            run(&mut t, open.as_bytes(), 7).1,
            Progress::Failed(_)
        ));
        // A string finish_reason, then EOF without [DONE]: a complete stream.
        let done = open + &chunk("\"stop\"");
        let mut t = StreamTranscoder::pass_through(Dialect::OpenAiChat, None);
        let (text, p) = run(&mut t, done.as_bytes(), 7);
        assert_eq!(p, Progress::Done);
        assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    }

    #[test]
    fn content_then_an_error_in_one_read_is_past_the_commit_point() {
        let burst = concat!(
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}]}\n\n",
            "data: {\"error\":{\"message\":\"overloaded\",\"type\":\"server_error\"}}\n\n",
        );
        let mut t = StreamTranscoder::pass_through(Dialect::OpenAiChat, None);
        let mut out = BytesMut::new();
        assert!(matches!(
            t.feed(burst.as_bytes(), &mut out),
            Progress::Failed(_)
        ));
        assert!(t.has_content());
        let text = String::from_utf8(out.to_vec()).unwrap();
        assert!(
            text.contains("\"Hi\"") && text.contains("overloaded"),
            "{text}"
        );
        let error_only = &burst[burst.find("data: {\"error").unwrap()..];
        let mut t = StreamTranscoder::pass_through(Dialect::OpenAiChat, None);
        assert!(matches!(
            t.feed(error_only.as_bytes(), &mut out),
            Progress::Failed(_)
        ));
        assert!(!t.has_content());
    }

    #[test]
    fn pass_through_eof_before_finish_is_an_error_event() {
        let cut: String = OPENAI_STREAM.split_inclusive("\n\n").take(2).collect();
        let mut t = StreamTranscoder::pass_through(Dialect::OpenAiChat, None);
        let (text, p) = run(&mut t, cut.as_bytes(), 5);
        assert!(matches!(p, Progress::Failed(_)));
        assert!(text.trim_end().ends_with("}}"), "{text}");
        assert!(text.contains("\"error\""));
        assert!(!text.contains("[DONE]"));

        let anth = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"model\":\"up\",\"usage\":{\"input_tokens\":4}}}\n\nevent: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n";
        let mut t = StreamTranscoder::pass_through(Dialect::Anthropic, Some("client"));
        let (text, p) = run(&mut t, anth.as_bytes(), 3);
        assert!(matches!(p, Progress::Failed(_)));
        assert!(text.contains("\"model\":\"client\""));
        assert!(text.ends_with("\n\n") && text.contains("event: error\n"));
    }

    #[test]
    fn usage_the_client_did_not_ask_for_is_counted_not_forwarded() {
        let mut t = StreamTranscoder::pass_through(Dialect::OpenAiChat, None).hiding_usage();
        let (text, p) = run(&mut t, OPENAI_STREAM.as_bytes(), 5);
        assert_eq!(p, Progress::Done);
        assert!(
            !text.contains("prompt_tokens") && text.ends_with("data: [DONE]\n\n"),
            "{text}"
        );
        assert_eq!(text.matches("data: ").count(), 4, "{text}");
        let u = t.usage().unwrap();
        assert_eq!((u.input_uncached, u.output_total), (3, 2));
        // Without the flag the client's own usage chunk goes through.
        let mut t = StreamTranscoder::pass_through(Dialect::OpenAiChat, None);
        let (text, _) = run(&mut t, OPENAI_STREAM.as_bytes(), 5);
        assert!(text.contains("\"prompt_tokens\":3"));
    }

    #[test]
    fn anthropic_pass_through_keeps_the_input_counts_of_message_start() {
        let anth = concat!(
            "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"model\":\"up\",\"usage\":{\"input_tokens\":24,\"cache_read_input_tokens\":100,\"output_tokens\":1}}}\n\n",
            "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
            "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":9}}\n\n",
            "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
        );
        for piece in [1, 7, anth.len()] {
            let mut t = StreamTranscoder::pass_through(Dialect::Anthropic, None);
            let (_, p) = run(&mut t, anth.as_bytes(), piece);
            assert_eq!(p, Progress::Done);
            let u = t.usage().unwrap();
            assert_eq!(
                (u.input_uncached, u.cache_read, u.output_total),
                (24, 100, 9)
            );
        }
    }

    #[test]
    fn error_before_content_fails_without_commit() {
        let mut t =
            StreamTranscoder::translate(Dialect::Anthropic, Dialect::OpenAiChat, "c", true, 1);
        let mut out = BytesMut::new();
        let p = t.feed(b"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{}}\n\nevent: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n", &mut out);
        assert!(matches!(p, Progress::Failed(e) if e.kind == ErrorKind::Overloaded));
    }

    #[test]
    fn an_oversized_event_fails_the_stream() {
        let mut t = StreamTranscoder::pass_through(Dialect::OpenAiChat, None).with_event_limit(100);
        let mut out = BytesMut::new();
        let endless = format!("data: {{\"x\":\"{}", "a".repeat(500));
        assert!(matches!(
            t.feed(endless.as_bytes(), &mut out),
            Progress::Failed(_)
        ));
        assert!(!t.has_content(), "before commit: falls over");
    }

    #[test]
    fn emulated_tool_calls_reach_the_client_as_tool_use() {
        let text = "Sure.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>";
        let mut upstream = String::from(
            "data: {\"id\":\"x\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n",
        );
        let chars: Vec<char> = text.chars().collect();
        for piece in chars.chunks(3) {
            let piece: String = piece.iter().collect();
            let delta = serde_json::json!({"choices": [{"index": 0, "delta": {"content": piece}}]});
            upstream.push_str(&format!("data: {delta}\n\n"));
        }
        upstream.push_str("data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n");
        for piece in [1, 9, upstream.len()] {
            let mut t =
                StreamTranscoder::translate(Dialect::OpenAiChat, Dialect::Anthropic, "c", false, 1)
                    .with_tool_emulation();
            let (out, p) = run(&mut t, upstream.as_bytes(), piece);
            assert_eq!(p, Progress::Done);
            assert!(!out.contains("tool_call>"), "{out}");
            assert!(out.contains("\"type\":\"tool_use\""), "{out}");
            assert!(out.contains("\"name\":\"get_weather\""), "{out}");
            assert!(out.contains("\"stop_reason\":\"tool_use\""), "{out}");
            assert!(out.contains("\"text\":\"Sur\""), "{out}");
        }
        // Without the flag the text is relayed as it came.
        let mut t =
            StreamTranscoder::translate(Dialect::OpenAiChat, Dialect::Anthropic, "c", false, 1);
        let (out, _) = run(&mut t, upstream.as_bytes(), 64);
        assert!(
            out.contains("\"stop_reason\":\"end_turn\"") && !out.contains("tool_use\""),
            "{out}"
        );
    }

    #[test]
    fn usage_of_a_body() {
        let u = usage_of_body(
            Dialect::Anthropic,
            br#"{"id":"m","usage":{"input_tokens":3,"output_tokens":4}}"#,
        )
        .unwrap();
        assert_eq!((u.input_uncached, u.output_total), (3, 4));
    }
}
