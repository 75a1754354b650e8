//! What the gateway writes down besides usage rows and metrics:
//!
//! - the conversation log (`[logging] conversations`, or a key's
//!   `log_conversations`): per request, the client's request and the
//!   assembled answer, as JSON lines in daily, size-capped files;
//! - a ring of recent log lines for `GET /api/logs`.
//!
//! Neither is on the request path: a logged request keeps shared buffers
//! (`capture`), its entry is queued without waiting, and one background
//! writer decodes, renders and appends (`conversations`, `line`, `files`).
//! The admin API reads the files back newest first (`read`).

pub mod capture;
pub mod conversations;
pub mod files;
pub mod line;
pub mod read;
pub mod ring;

pub use capture::Capture;
pub use conversations::{flush_now, ConversationLog, ConversationWriter};
pub use line::Entry;
pub use ring::{open_access_file, send_access_log_to, LogRing, RingLogger};

use filters::auth::ClientKey;
use std::sync::Arc;

/// The handles the gateway reads and writes through.
#[derive(Clone)]
pub struct Journal {
    pub conversations: Arc<ConversationLog>,
    pub ring: Arc<LogRing>,
}

/// Whether `key`'s requests are logged: its own `log_conversations`, else
/// the global `[logging] conversations`.
pub fn logs_conversations(global: bool, key: &ClientKey) -> bool {
    key.spec.log_conversations.unwrap_or(global)
}

#[cfg(test)]
mod tests {
    use super::*;
    use filters::auth::{KeySource, KeySpec};

    #[test]
    fn a_key_overrides_the_global_setting_either_way() {
        let key = |v: Option<bool>| {
            let mut spec = KeySpec::named("k");
            spec.log_conversations = v;
            ClientKey::from_spec(spec, KeySource::Config, None).unwrap()
        };
        assert!(!logs_conversations(false, &key(None)));
        assert!(logs_conversations(true, &key(None)));
        assert!(logs_conversations(false, &key(Some(true))));
        assert!(!logs_conversations(true, &key(Some(false))));
    }

    const BASE: &str = r#"
        [[providers]]
        name = "p"
        type = "openai"
        base_url = "http://127.0.0.1:9/v1"

        [[models]]
        name = "m"
        targets = [{ provider = "p", model = "up" }]

        [[api_keys]]
        key = "sk-client-key"
        name = "c"
        log_conversations = true
    "#;

    #[test]
    fn logging_settings_default_and_validate() {
        let snap = crate::config::parse(BASE).unwrap();
        assert!(!snap.log_conversations);
        let files = &snap.process.conversation_files;
        assert_eq!(files.dir, std::path::Path::new("conversations"));
        assert_eq!(files.max_file_bytes, 64 << 20);
        assert_eq!(files.retention, std::time::Duration::from_secs(14 * 86_400));
        assert_eq!(files.max_files, 1000);
        let key = snap.keys.values().next().unwrap();
        assert_eq!(key.spec.log_conversations, Some(true));

        let on = format!(
            "{BASE}\n[logging]\nconversations = true\ndir = \"/var/log/ms\"\n\
             max_file_bytes = 1048576\nretention = \"2d\"\nmax_files = 7\n"
        );
        let snap = crate::config::parse(&on).unwrap();
        assert!(snap.log_conversations);
        let files = &snap.process.conversation_files;
        assert_eq!(files.dir, std::path::Path::new("/var/log/ms"));
        assert_eq!(
            (
                files.max_file_bytes,
                files.retention.as_secs(),
                files.max_files
            ),
            (1 << 20, 2 * 86_400, 7)
        );

        let bad = format!(
            "{BASE}\n[logging]\ndir = \"\"\nmax_file_bytes = 10\nretention = \"1m\"\nmax_files = 0\n"
        );
        let errs = crate::config::parse(&bad).unwrap_err().0;
        for field in ["dir", "max_file_bytes", "retention", "max_files"] {
            assert!(
                errs.iter()
                    .any(|e| e.starts_with(&format!("logging.{field}:"))),
                "{field}: {errs:?}"
            );
        }
        let unknown = format!("{BASE}\n[logging]\nconversation = true\n");
        assert!(crate::config::parse(&unknown).is_err());
    }
}
