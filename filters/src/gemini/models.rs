//! `GET /v1beta/models` and `GET /v1beta/models/{m}` in Google's shape.

use serde_json::{json, Value};

pub fn listing(names: &[&str]) -> Value {
    json!({ "models": names.iter().map(|n| model(n)).collect::<Vec<_>>() })
}

/// The gateway does not know each model's limits; Gemini's own (1M in, 64k
/// out) are given so clients that read them do not refuse large prompts.
pub fn model(name: &str) -> Value {
    let id = name.strip_prefix("models/").unwrap_or(name);
    json!({
        "name": format!("models/{id}"),
        "version": "001",
        "displayName": id,
        "description": format!("{id}, served through ModelSwitch"),
        "inputTokenLimit": 1_048_576,
        "outputTokenLimit": 65_536,
        "supportedGenerationMethods": ["generateContent", "streamGenerateContent", "countTokens"],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_prefixed_once() {
        let v = listing(&["gemini-x", "models/claude-y"]);
        assert_eq!(v["models"][0]["name"], "models/gemini-x");
        assert_eq!(v["models"][1]["name"], "models/claude-y");
        assert_eq!(v["models"][1]["displayName"], "claude-y");
        assert_eq!(
            model("m")["supportedGenerationMethods"][1],
            "streamGenerateContent"
        );
    }
}
