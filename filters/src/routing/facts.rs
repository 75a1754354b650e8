//! What rules read of a request body, found without decoding it: the
//! members' raw bytes are scanned (memchr speed), so a 200 KB Claude Code
//! prompt costs microseconds, not a parse.

use crate::wire::json_peek::{self, Members};
use crate::Dialect;
use memchr::memmem;
use std::sync::LazyLock;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BodyFacts {
    pub has_tools: bool,
    pub has_images: bool,
    pub thinking: bool,
    pub web_search: bool,
}

/// The body's facts in `dialect`.
pub fn read(dialect: Dialect, members: &Members<'_>) -> BodyFacts {
    let tools = members.raw("tools").filter(|t| non_empty_array(t));
    let (conversation, _) = crate::dialect::conversation_member(dialect);
    let web_search = tools.is_some_and(offers_web_search)
        || (dialect == Dialect::OpenAiChat
            && members
                .raw("web_search_options")
                .is_some_and(|v| v != b"null"));
    BodyFacts {
        has_tools: tools.is_some(),
        has_images: members.raw(conversation).is_some_and(has_images),
        thinking: thinking(dialect, members),
        web_search,
    }
}

/// Image parts in any dialect, in one pass over the conversation for
/// `image`, counted only where it is structure: the value of a `type`
/// (Anthropic `image`, OpenAI `image_url`, Responses `input_image`), of a
/// MIME-type member (`media_type`, `mimeType`, `mime_type`: `image/…`,
/// Gemini's `inlineData`/`fileData`), or a data URL (`data:image/`). A
/// tool's arguments that mention `"image/logo.png"` are none of these, and
/// text that says `"image"` is escaped inside its string.
fn has_images(conversation: &[u8]) -> bool {
    static IMAGE: LazyLock<memmem::Finder<'static>> =
        LazyLock::new(|| memmem::Finder::new(b"image"));
    let j = conversation;
    IMAGE.find_iter(j).any(|at| {
        let after = &j[at + 5..];
        if j[..at].ends_with(b"data:") {
            return after.starts_with(b"/");
        }
        // The value opens with a quote (`"image…` or `"input_image`).
        let open = if j[..at].ends_with(b"\"input_") {
            at - 7
        } else {
            at.wrapping_sub(1)
        };
        if j.get(open) != Some(&b'"') || (open > 0 && j[open - 1] == b'\\') {
            return false;
        }
        let member = member_before(j, open);
        let typed = member == Some(&b"type"[..])
            && (after.starts_with(b"\"") || after.starts_with(b"_url\""));
        let mime = matches!(member, Some(b"media_type" | b"mimeType" | b"mime_type"))
            && after.starts_with(b"/");
        typed || mime
    })
}

/// The member name a value at `value` belongs to: `"name"`, spaces, `:`,
/// spaces, then the value.
fn member_before(json: &[u8], value: usize) -> Option<&[u8]> {
    let head = json[..value]
        .trim_ascii_end()
        .strip_suffix(b":")?
        .trim_ascii_end();
    let head = head.strip_suffix(b"\"")?;
    let start = memchr::memrchr(b'"', head)?;
    Some(&head[start + 1..])
}

/// A web-search tool among `tools`, in one pass for `earch`: a tool whose
/// name or type starts `web_search` (Anthropic's `web_search_20250305`,
/// OpenAI's `web_search`, `web_search_preview`, a client function so
/// named), Gemini's `google_search` / `googleSearch`. `brave_web_search`
/// and descriptions that say "web search" are not one.
fn offers_web_search(tools: &[u8]) -> bool {
    static EARCH: LazyLock<memmem::Finder<'static>> =
        LazyLock::new(|| memmem::Finder::new(b"earch"));
    EARCH.find_iter(tools).any(|at| {
        let before = &tools[..at];
        before.ends_with(b"\"web_s")
            || before.ends_with(b"\"google_s")
            || before.ends_with(b"\"googleS")
    })
}

fn non_empty_array(raw: &[u8]) -> bool {
    raw.first() == Some(&b'[')
        && raw[1..]
            .iter()
            .find(|b| !b.is_ascii_whitespace())
            .is_some_and(|&b| b != b']')
}

fn sub(raw: Option<&[u8]>) -> Option<Members<'_>> {
    raw.and_then(|r| json_peek::members(r).ok())
}

/// The request asks the model to reason.
fn thinking(dialect: Dialect, members: &Members<'_>) -> bool {
    match dialect {
        // `disabled` is a request not to think.
        Dialect::Anthropic => sub(members.raw("thinking"))
            .and_then(|t| t.str("type"))
            .is_some_and(|t| t == "enabled" || t == "adaptive"),
        Dialect::OpenAiChat => members.str("reasoning_effort").is_some_and(|e| e != "none"),
        Dialect::OpenAiResponses => sub(members.raw("reasoning"))
            .and_then(|r| r.str("effort"))
            .is_some_and(|e| e != "none"),
        Dialect::Gemini => {
            let config = sub(members.raw("generationConfig"));
            let thinking = config.as_ref().and_then(|c| sub(c.raw("thinkingConfig")));
            // A budget other than 0 (-1: dynamic), thoughts asked for, or
            // a thinking level.
            thinking.is_some_and(|t| {
                t.raw("thinkingBudget").is_some_and(|b| b != b"0")
                    || t.raw("includeThoughts") == Some(b"true")
                    || t.raw("thinkingLevel").is_some()
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(dialect: Dialect, body: &str) -> BodyFacts {
        let m = json_peek::members(body.as_bytes()).unwrap_or_default();
        read(dialect, &m)
    }

    #[test]
    fn anthropic_facts() {
        let f = facts(
            Dialect::Anthropic,
            r#"{"model":"m","thinking":{"type":"enabled","budget_tokens":2048},
                "tools":[{"type":"web_search_20250305","name":"web_search"}],
                "messages":[{"role":"user","content":[{"type":"image","source":{"type":"base64","media_type":"image/png","data":"iVBOR"}}]}]}"#,
        );
        assert_eq!(
            f,
            BodyFacts {
                has_tools: true,
                has_images: true,
                thinking: true,
                web_search: true
            }
        );
        let f = facts(
            Dialect::Anthropic,
            r#"{"model":"m","thinking":{"type":"disabled"},"tools":[ ],
                "messages":[{"role":"user","content":"say \"image\" and \"image/png\""}]}"#,
        );
        assert_eq!(f, BodyFacts::default(), "text about images is not an image");
        // A tool's arguments naming an image file, a tool called
        // brave_web_search, a description that says "web search".
        let f = facts(
            Dialect::Anthropic,
            r#"{"model":"m","tools":[{"name":"brave_web_search","description":"a web search"}],
                "messages":[{"role":"assistant","content":[{"type":"tool_use","id":"t","name":"Read",
                "input":{"file_path":"image/logo.png","kind":"image","image_url":"x"}}]},
                {"role":"user","content":[{"type":"text","text":"image"}]}]}"#,
        );
        assert!(f.has_tools && !f.has_images && !f.web_search, "{f:?}");
        let f = facts(
            Dialect::Gemini,
            r#"{"contents":[{"parts":[{"text":"hi"}]}],
                "generationConfig":{"thinkingConfig":{"includeThoughts":false}}}"#,
        );
        assert!(!f.thinking, "no budget and no thoughts asked for");
        let f = facts(
            Dialect::OpenAiResponses,
            r#"{"model":"m","tools":[{"type":"web_search_preview"}],
                "input":[{"role":"user","content":[{"type":"input_image","image_url":"data:image/png;base64,AAAA"}]}]}"#,
        );
        assert!(f.web_search && f.has_images, "{f:?}");
    }

    #[test]
    fn other_dialects() {
        let f = facts(
            Dialect::OpenAiChat,
            r#"{"model":"m","reasoning_effort":"high","web_search_options":{},
                "messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"https://x/y.png"}}]}]}"#,
        );
        assert_eq!(
            f,
            BodyFacts {
                has_tools: false,
                has_images: true,
                thinking: true,
                web_search: true
            }
        );
        let f = facts(
            Dialect::OpenAiResponses,
            r#"{"model":"m","reasoning":{"effort":"medium"},"tools":[{"type":"function","name":"shell"}],
                "input":[{"role":"user","content":[{"type":"input_text","text":"hi"}]}]}"#,
        );
        assert_eq!(
            f,
            BodyFacts {
                has_tools: true,
                has_images: false,
                thinking: true,
                web_search: false
            }
        );
        let f = facts(
            Dialect::Gemini,
            r#"{"contents":[{"parts":[{"inlineData":{"mimeType":"image/jpeg","data":"AAAA"}}]}],
                "tools":[{"googleSearch":{}}],"generationConfig":{"thinkingConfig":{"thinkingBudget":0}}}"#,
        );
        assert_eq!(
            f,
            BodyFacts {
                has_tools: true,
                has_images: true,
                thinking: false,
                web_search: true
            }
        );
    }
}
