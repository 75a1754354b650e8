//! Configuration in two layers: a serde mirror of the TOML file (`file`,
//! unknown keys are errors) validated section by section (`validate`) into
//! an immutable runtime `Snapshot`. A file that fails validation never
//! replaces a good snapshot; every message names the TOML path at fault.
//! `reload` watches the file and publishes each valid change.

mod file;
pub mod reload;
pub mod secret;
mod snapshot;
mod toml_error;
mod validate;

use file::FileConfig;
pub use snapshot::*;
use std::path::Path;

/// Every problem found, each with the TOML path it concerns.
#[derive(Debug)]
pub struct ConfigErrors(pub Vec<String>);

impl std::fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for e in &self.0 {
            writeln!(f, "  {e}")?;
        }
        Ok(())
    }
}

pub fn load(path: &Path) -> Result<Snapshot, ConfigErrors> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigErrors(vec![format!("{}: cannot read: {e}", path.display())]))?;
    parse(&text)
}

pub fn parse(text: &str) -> Result<Snapshot, ConfigErrors> {
    let file: FileConfig =
        toml::from_str(text).map_err(|e| ConfigErrors(vec![describe_toml_error(text, &e)]))?;
    validate::validate(file)
}

/// `line N: <dotted path>: <message>`, never the text of the value at
/// fault (it may be a secret): the path comes from where the error's span
/// falls in the document, and the message has its quoted values taken out.
fn describe_toml_error(text: &str, e: &toml::de::Error) -> String {
    let Some(span) = e.span() else {
        return toml_error::redact(e.message(), None);
    };
    let pos = span.start.min(text.len());
    let line = text.get(..pos).map_or(1, |t| t.matches('\n').count() + 1);
    let (path, raw) = match toml_error::locate(text, pos) {
        Some(place) => {
            let raw = place.value.and_then(|v| text.get(v));
            (place.path, raw)
        }
        None => toml_error::guess(text, pos),
    };
    let msg = toml_error::redact(e.message(), raw);
    if path.is_empty() {
        format!("line {line}: {msg}")
    } else {
        format!("line {line}: {path}: {msg}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const GOOD: &str = r#"
        [server]
        listen = ["127.0.0.1:8000", "[::1]:8001"]
        first_event_timeout = "30s"

        [[providers]]
        name = "openai"
        type = "openai"
        base_url = "https://api.openai.com/v1/"
        api_key = "sk-upstream"

        [[providers]]
        name = "claude"
        type = "anthropic"
        base_url = "http://127.0.0.1:9000"
        idle_timeout = "2m"

        [[models]]
        name = "glm-5"
        targets = [{ provider = "openai", model = "gpt-x" }, { provider = "claude", model = "claude-y" }]

        [[api_keys]]
        key = "sk-gateway-admin"
        name = "admin"
        roles = ["admin"]
        allowed_models = ["glm-5"]
    "#;

    #[test]
    fn valid_file_becomes_a_snapshot() {
        let s = parse(GOOD).unwrap();
        assert_eq!(s.process.listen.len(), 2);
        let route = &s.routes["glm-5"];
        assert_eq!(
            route.targets[0].provider.generate_path,
            "/v1/chat/completions"
        );
        assert_eq!(route.targets[0].provider.host_header, "api.openai.com");
        assert!(
            route.targets[0]
                .provider
                .encode
                .openai
                .max_completion_tokens_field
        );
        assert_eq!(route.targets[1].provider.generate_path, "/v1/messages");
        assert_eq!(route.targets[1].provider.host_header, "127.0.0.1:9000");
        let (tls, host, port, prefix) = validate::parse_base_url("http://[::1]:8001/v1/").unwrap();
        assert_eq!(
            (tls, host.as_str(), port, prefix.as_str()),
            (false, "::1", 8001, "/v1")
        );
        assert_eq!(
            route.targets[1].provider.timeouts.idle,
            Duration::from_secs(120)
        );
        assert_eq!(
            route.targets[1].provider.timeouts.first_event,
            Duration::from_secs(30)
        );
        assert!(s.keys["sk-gateway-admin"].allows_model("glm-5"));
        assert!(format!("{:?}", route.targets[0].provider.keys).contains("***"));
        assert!(!format!("{:?}", route.targets[0].provider).contains("sk-upstream"));
    }

    #[test]
    fn framing_headers_cannot_be_configured() {
        let bad = GOOD.replace(
            "idle_timeout = \"2m\"",
            "idle_timeout = \"2m\"\nheaders = { \"Content-Length\" = \"1\", \"x-tenant\" = \"a\" }",
        );
        let e = parse(&bad).unwrap_err().0;
        assert_eq!(
            e,
            vec!["providers[1].headers.content-length: framing headers are the gateway's to set"]
        );
        let ok = GOOD.replace(
            "idle_timeout = \"2m\"",
            "idle_timeout = \"2m\"\nheaders = { \"user-agent\" = \"team-proxy\" }",
        );
        assert_eq!(parse(&ok).unwrap().providers[1].headers.len(), 1);
    }

    #[test]
    fn every_error_names_its_path() {
        let bad = GOOD
            .replace("provider = \"claude\"", "provider = \"nobody\"")
            .replace(
                "base_url = \"http://127.0.0.1:9000\"",
                "base_url = \"ftp://x\"",
            )
            .replace(
                "allowed_models = [\"glm-5\"]",
                "allowed_models = [\"nope\"]",
            );
        let e = parse(&bad).unwrap_err().0;
        assert!(
            e.iter().any(|m| m.starts_with("providers[1].base_url")),
            "{e:?}"
        );
        assert!(
            e.iter()
                .any(|m| m.starts_with("models[0].targets[1].provider")),
            "{e:?}"
        );
        assert!(
            e.iter()
                .any(|m| m.starts_with("api_keys[0].allowed_models[0]")),
            "{e:?}"
        );
    }

    #[test]
    fn unknown_keys_are_errors_with_their_table() {
        let e = parse(&GOOD.replace("first_event_timeout", "first_evnt_timeout"))
            .unwrap_err()
            .0;
        assert!(
            e[0].contains("server.first_evnt_timeout") && e[0].contains("unknown field"),
            "{e:?}"
        );
        let e = parse(&GOOD.replace("api_key = \"sk-upstream\"", "api_key = \"sk\"\nbogus = 1"))
            .unwrap_err()
            .0;
        assert!(e[0].contains("providers.bogus"), "{e:?}");
    }

    #[test]
    fn missing_env_key_is_reported() {
        let e = parse(&GOOD.replace(
            "api_key = \"sk-upstream\"",
            "api_key_env = \"MODELSWITCH_TEST_UNSET_VAR\"",
        ))
        .unwrap_err()
        .0;
        assert_eq!(e, vec!["providers[0].api_key_env: environment variable MODELSWITCH_TEST_UNSET_VAR is not set"]);
    }
}
