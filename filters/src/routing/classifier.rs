//! Intent routing: a small model is asked which scene the latest user turn
//! belongs to, and the scene names the model. What it is asked is fixed
//! (documented in the README) so answers are comparable across models:
//!
//! system: the instruction and one line per scene (`- name: description`)
//! user:   the latest user turn's text (at most `MAX_TURN_CHARS`)
//!
//! and it must answer with one scene name. Anything else is no scene, and
//! the configured default serves.

use crate::canonical::{Part, Request, Role};

/// Most characters of the user turn the classifier reads: intent shows in
/// the first lines, and a small prompt keeps the call fast and cheap.
pub const MAX_TURN_CHARS: usize = 2_000;

/// Most tokens the classifier may answer with.
pub const MAX_ANSWER_TOKENS: u64 = 8;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scene {
    pub name: String,
    /// The configured model that serves it.
    pub model: String,
    pub description: String,
}

/// Descriptions of the usual scenes, for configs that give only a model.
pub fn default_description(name: &str) -> Option<&'static str> {
    Some(match name {
        "chat" => "casual conversation, questions, writing or translation",
        "code" => "writing, reading, reviewing, debugging or explaining code",
        "reasoning" => "math, logic, planning or analysis that needs careful step-by-step thought",
        "long" => "summarising or working over a very long document",
        "vision" => "understanding an image",
        _ => return None,
    })
}

/// The classifier's system prompt for these scenes.
pub fn system_prompt(scenes: &[Scene]) -> String {
    let mut s = String::from(
        "You classify requests for an AI gateway. Read the user's message and reply with \
         exactly one word: the name of the scene it belongs to, from this list:\n",
    );
    for scene in scenes {
        s.push_str("- ");
        s.push_str(&scene.name);
        s.push_str(": ");
        s.push_str(&scene.description);
        s.push('\n');
    }
    s.push_str("Reply with the scene name only, no punctuation or explanation.");
    s
}

/// The latest user turn's text, at most `MAX_TURN_CHARS` characters;
/// `None` when the last user message holds no text (only tool results).
pub fn latest_user_text(req: &Request) -> Option<String> {
    let msg = req.messages.iter().rev().find(|m| m.role == Role::User)?;
    let mut text = String::new();
    for part in &msg.parts {
        if let Part::Text(t) = part {
            if !text.is_empty() {
                text.push('\n');
            }
            text.push_str(&t.text);
        }
    }
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    Some(match text.char_indices().nth(MAX_TURN_CHARS) {
        Some((cut, _)) => text[..cut].to_owned(),
        None => text.to_owned(),
    })
}

/// The scene the answer names: the whole answer, or else the first word
/// of it that is a scene's name (models add quotes, full stops, "Scene:").
pub fn read_answer<'s>(answer: &str, scenes: &'s [Scene]) -> Option<&'s Scene> {
    let clean = |w: &str| {
        w.trim_matches(|c: char| !c.is_alphanumeric() && c != '_' && c != '-')
            .to_ascii_lowercase()
    };
    let whole = clean(answer);
    let by_name = |w: &str| scenes.iter().find(|s| s.name.eq_ignore_ascii_case(w));
    by_name(&whole).or_else(|| answer.split_whitespace().find_map(|w| by_name(&clean(w))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canonical::{Message, TextPart, ToolResult};

    fn scenes() -> Vec<Scene> {
        ["chat", "code", "reasoning"]
            .iter()
            .map(|n| Scene {
                name: (*n).to_owned(),
                model: format!("m-{n}"),
                description: default_description(n).unwrap_or_default().to_owned(),
            })
            .collect()
    }

    #[test]
    fn prompt_lists_every_scene() {
        let p = system_prompt(&scenes());
        assert!(p.contains("- code: writing, reading"), "{p}");
        assert!(p.contains("- reasoning: math"), "{p}");
        assert!(p.ends_with("no punctuation or explanation."));
    }

    #[test]
    fn answers_are_read_loosely_but_only_as_scene_names() {
        let s = scenes();
        let name = |a: &str| read_answer(a, &s).map(|x| x.name.as_str());
        assert_eq!(name("code"), Some("code"));
        assert_eq!(name(" \"Reasoning\".\n"), Some("reasoning"));
        assert_eq!(name("Scene: chat"), Some("chat"));
        assert_eq!(name("I think this is about cooking"), None);
        assert_eq!(name(""), None);
    }

    #[test]
    fn latest_user_text_skips_tool_results_and_is_bounded() {
        let text = |t: &str| {
            Part::Text(TextPart {
                text: t.to_owned(),
                cache: false,
            })
        };
        let mut req = Request::default();
        req.messages.push(Message {
            role: Role::User,
            parts: vec![text("first")],
        });
        req.messages.push(Message {
            role: Role::Assistant,
            parts: vec![text("ok")],
        });
        req.messages.push(Message {
            role: Role::User,
            parts: vec![text("fix the bug"), text("in main.rs")],
        });
        assert_eq!(
            latest_user_text(&req).as_deref(),
            Some("fix the bug\nin main.rs")
        );
        let long = "é".repeat(MAX_TURN_CHARS + 10);
        req.messages.push(Message {
            role: Role::User,
            parts: vec![text(&long)],
        });
        assert_eq!(
            latest_user_text(&req).map(|t| t.chars().count()),
            Some(MAX_TURN_CHARS)
        );
        req.messages.push(Message {
            role: Role::User,
            parts: vec![Part::ToolResult(ToolResult {
                call_id: "c".into(),
                content: vec![],
                is_error: false,
            })],
        });
        assert_eq!(latest_user_text(&req), None);
    }
}
