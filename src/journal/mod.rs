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
pub use ring::{LogRing, RingLogger};

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
}
