//! How many input tokens to reserve for a request, from its body alone
//! (before any upstream has counted it). It must err high — what requests
//! in flight reserve is what keeps `tpm` from being overshot — but not so
//! high that an image makes a request look larger than any limit.
//!
//! Text: JSON bytes / 3, above the token count of text in any script (CJK
//! is three UTF-8 bytes and about one token per character; English about
//! four bytes per token; JSON adds its own). Media sent inline as base64
//! is not text: an image costs a bounded number of tokens whatever its
//! size (providers resize: Claude's largest is ~1,600, OpenAI's high detail
//! less, Gemini 258), a document (PDF) about a token per 40 bytes of
//! base64 (1.5–3k tokens per page).

use memchr::memmem;
use std::sync::LazyLock;

/// Base64 runs shorter than this are left to the text estimate.
const MIN_BLOB: usize = 256;
/// What one inline image may cost at most, across providers.
pub const IMAGE_TOKENS: u64 = 1_600;
/// Base64 bytes per token of a document.
const DOCUMENT_BYTES_PER_TOKEN: u64 = 40;

/// The input tokens to reserve for `body`.
pub fn input_tokens(body: &[u8]) -> u64 {
    estimate(body, 3)
}

/// The input tokens `body` most likely holds, for routing (a context
/// window, `min_input_tokens`): English text and JSON run about four bytes
/// a token, so the reserve's three would turn a 150k-token prompt away
/// from a 200k window.
pub fn typical_input_tokens(body: &[u8]) -> u64 {
    estimate(body, 4)
}

fn estimate(body: &[u8], text_bytes_per_token: u64) -> u64 {
    let text_only = u64::try_from(body.len())
        .unwrap_or(u64::MAX)
        .div_ceil(text_bytes_per_token);
    // Too short to hold a blob: most chat requests stop here.
    if body.len() < MIN_BLOB {
        return text_only;
    }
    let mut media_bytes = 0usize;
    let mut media_tokens = 0u64;
    for (start, len) in blobs(body) {
        media_bytes += len;
        let before = &body[start.saturating_sub(200)..start];
        media_tokens = media_tokens.saturating_add(if memmem::find(before, b"image/").is_some() {
            IMAGE_TOKENS
        } else {
            u64::try_from(len).unwrap_or(u64::MAX) / DOCUMENT_BYTES_PER_TOKEN
        });
    }
    let text = u64::try_from(body.len().saturating_sub(media_bytes)).unwrap_or(u64::MAX);
    text.div_ceil(text_bytes_per_token)
        .saturating_add(media_tokens)
}

fn is_base64(b: u8) -> bool {
    // `\` too: some encoders write `/` as `\/` inside JSON strings.
    b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=' | b'\\')
}

/// Inline base64 payloads: after `base64,` (data URLs: OpenAI, Responses)
/// or as the string value of a `"data"` member (Anthropic, Gemini).
fn blobs(body: &[u8]) -> Vec<(usize, usize)> {
    let mut out: Vec<(usize, usize)> = Vec::new();
    let run = |from: usize| -> usize {
        body.get(from..)
            .map_or(0, |rest| rest.iter().take_while(|&&b| is_base64(b)).count())
    };
    static DATA_URL: LazyLock<memmem::Finder<'static>> =
        LazyLock::new(|| memmem::Finder::new(b"base64,"));
    static DATA_MEMBER: LazyLock<memmem::Finder<'static>> =
        LazyLock::new(|| memmem::Finder::new(b"\"data\""));
    for at in DATA_URL.find_iter(body) {
        let start = at + 7;
        let len = run(start);
        if len >= MIN_BLOB {
            out.push((start, len));
        }
    }
    for at in DATA_MEMBER.find_iter(body) {
        // `"data"`, optional spaces, `:`, optional spaces, `"`.
        let mut i = at + 6;
        while body.get(i).is_some_and(|b| b.is_ascii_whitespace()) {
            i += 1;
        }
        if body.get(i) != Some(&b':') {
            continue;
        }
        i += 1;
        while body.get(i).is_some_and(|b| b.is_ascii_whitespace()) {
            i += 1;
        }
        if body.get(i) != Some(&b'"') {
            continue;
        }
        let start = i + 1;
        let len = run(start);
        if len >= MIN_BLOB && !out.iter().any(|&(s, l)| s <= start && start < s + l) {
            out.push((start, len));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(n: usize) -> String {
        "QUJD".repeat(n / 4)
    }

    #[test]
    fn text_is_a_third_of_its_bytes() {
        let body = format!(
            r#"{{"messages":[{{"role":"user","content":"{}"}}]}}"#,
            "word ".repeat(300)
        );
        assert_eq!(
            input_tokens(body.as_bytes()),
            (body.len() as u64).div_ceil(3)
        );
        assert_eq!(input_tokens(b""), 0);
    }

    #[test]
    fn an_inline_image_costs_a_bounded_amount_in_every_dialect() {
        let img = b64(2_000_000);
        let shapes = [
            // OpenAI Chat, Responses: a data URL.
            format!(
                r#"{{"content":[{{"type":"image_url","image_url":{{"url":"data:image/png;base64,{img}"}}}}]}}"#
            ),
            // Anthropic.
            format!(
                r#"{{"content":[{{"type":"image","source":{{"type":"base64","media_type":"image/png","data":"{img}"}}}}]}}"#
            ),
            // Gemini.
            format!(
                r#"{{"contents":[{{"parts":[{{"inlineData":{{"mimeType":"image/jpeg","data" : "{img}"}}}}]}}]}}"#
            ),
        ];
        for body in shapes {
            let t = input_tokens(body.as_bytes());
            assert!((IMAGE_TOKENS..IMAGE_TOKENS + 100).contains(&t), "{t}");
        }
    }

    #[test]
    fn documents_count_by_size_and_short_strings_stay_text() {
        let pdf = b64(400_000);
        let body = format!(
            r#"{{"source":{{"type":"base64","media_type":"application/pdf","data":"{pdf}"}}}}"#
        );
        let t = input_tokens(body.as_bytes());
        assert!((10_000..10_100).contains(&t), "{t}");
        let short = r#"{"data":"abc","x":"base64,QUJD"}"#;
        assert_eq!(
            input_tokens(short.as_bytes()),
            (short.len() as u64).div_ceil(3)
        );
    }
}
