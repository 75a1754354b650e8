//! Token counts where no upstream can give one (`count_tokens` for a model
//! served by an OpenAI-compatible provider): OpenAI's o200k BPE, a real
//! tokenizer rather than bytes ÷ 4, which is off by 2× on code and CJK.
//! Counted the way OpenAI's chat format frames messages: a few tokens per
//! message for its role markers, tools as their JSON text.

use crate::canonical::{Media, Part, Request};

/// Role and separator tokens around each message in OpenAI's chat format.
const PER_MESSAGE: u64 = 3;
/// The assistant reply's own priming tokens.
const REPLY_PRIMING: u64 = 3;
/// Images are billed by size, which the request rarely says: a typical
/// 1024×1024 tile count.
const IMAGE_TOKENS: u64 = 765;

/// BPE merging is quadratic in the length of one unbroken run (a 512 KiB
/// run of letters takes minutes), so text is counted in pieces of at most
/// this many bytes: a cut can split one token in two, one token in 2 KiB.
const PIECE: usize = 2048;

/// Tokens of `text`. CPU-bound (tens of ms for a large prompt): callers on
/// an async runtime run it with `spawn_blocking`. The tables (~50 MB) load
/// on first use, so a gateway whose providers count for themselves never
/// holds them.
fn count(text: &str) -> u64 {
    if text.is_empty() {
        return 0;
    }
    let bpe = tiktoken_rs::o200k_base_singleton();
    let mut total = 0u64;
    let mut rest = text;
    while !rest.is_empty() {
        let mut cut = rest.len().min(PIECE);
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        // Prefer to cut after whitespace, where BPE pieces end anyway.
        if cut < rest.len() {
            if let Some(ws) = rest[..cut].rfind(char::is_whitespace) {
                if ws > 0 {
                    cut = ws;
                }
            }
        }
        total += bpe.encode_ordinary(&rest[..cut]).len() as u64;
        rest = &rest[cut..];
    }
    total
}

fn part_tokens(p: &Part) -> u64 {
    match p {
        Part::Text(t) => count(&t.text),
        Part::Image(_) | Part::Document(Media::Url(_)) => IMAGE_TOKENS,
        Part::Document(Media::Text(t)) => count(t),
        // A PDF's text is not in reach; about a token per 3 bytes of its
        // decoded size (base64 is 4/3 of that).
        Part::Document(Media::Base64 { data, .. }) => (data.len() as u64) / 4,
        Part::ToolCall(c) => count(&c.name) + count(&c.arguments) + 3,
        Part::ToolResult(r) => r.content.iter().map(part_tokens).sum::<u64>() + 3,
        Part::Reasoning(r) => count(&r.text),
    }
}

/// Input tokens of `req` as a model would read them.
pub fn request_tokens(req: &Request) -> u64 {
    let system: u64 = req.system.iter().map(|t| count(&t.text)).sum();
    let system = if req.system.is_empty() {
        0
    } else {
        system + PER_MESSAGE
    };
    let messages: u64 = req
        .messages
        .iter()
        .map(|m| PER_MESSAGE + m.parts.iter().map(part_tokens).sum::<u64>())
        .sum();
    let tools: u64 = req
        .tools
        .iter()
        .map(|t| {
            count(&t.name)
                + t.description.as_deref().map_or(0, count)
                + count(&t.schema.to_string())
                + 8
        })
        .sum();
    system + messages + tools + REPLY_PRIMING
}

/// Tokens of plain inputs (embeddings).
pub fn text_tokens<'a>(texts: impl IntoIterator<Item = &'a str>) -> u64 {
    texts.into_iter().map(count).sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canonical::{Message, Role, TextPart};

    fn user(text: &str) -> Request {
        Request {
            messages: vec![Message {
                role: Role::User,
                parts: vec![Part::Text(TextPart {
                    text: text.into(),
                    cache: false,
                })],
            }],
            ..Request::default()
        }
    }

    #[test]
    fn counts_are_bpe_tokens_not_bytes() {
        // "hello world" is two o200k tokens; bytes ÷ 4 would say 3.
        assert_eq!(text_tokens(["hello world"]), 2);
        assert_eq!(
            request_tokens(&user("hello world")),
            2 + PER_MESSAGE + REPLY_PRIMING
        );
        // Code is punctuation-dense: 9 tokens a 30-byte line, where bytes
        // ÷ 4 would say 7.5.
        let code = "fn main() { println!(\"hi\"); }\n".repeat(50);
        assert_eq!(text_tokens([code.as_str()]), 450);
        // CJK runs far denser than 4 bytes a token.
        let cjk = "今天天气很好，我们去公园散步吧。".repeat(20);
        let n = text_tokens([cjk.as_str()]);
        assert!(
            n > (cjk.len() as u64) / 8,
            "{n} tokens for {} bytes",
            cjk.len()
        );
    }

    #[test]
    fn long_unbroken_runs_are_counted_in_pieces() {
        // Whole, this run takes minutes to merge; in pieces, milliseconds.
        let run = "x".repeat(256 * 1024);
        let n = text_tokens([run.as_str()]);
        assert!(n > 0 && n < run.len() as u64, "{n}");
        // Cuts at whitespace leave ordinary prose counted as a whole.
        let prose = "the quick brown fox jumps over the lazy dog ".repeat(200);
        let whole = tiktoken_rs::o200k_base_singleton()
            .encode_ordinary(&prose)
            .len() as u64;
        assert_eq!(text_tokens([prose.as_str()]), whole);
    }

    #[test]
    fn empty_and_tool_parts_count() {
        assert_eq!(text_tokens([""]), 0);
        let mut r = user("");
        r.tools.push(crate::canonical::Tool {
            name: "get_weather".into(),
            description: Some("Weather for a city".into()),
            schema: serde_json::json!({"type": "object"}),
            strict: None,
        });
        assert!(request_tokens(&r) > PER_MESSAGE + REPLY_PRIMING + 8);
    }
}
