//! `modelswitch check --explain`: what the config comes to once presets
//! and defaults are applied, provider by provider; never a secret (keys
//! are counted, a login names its host and user).

use crate::config::{Provider, Snapshot};
use std::fmt::Write;

pub fn explain(snap: &Snapshot) -> String {
    let mut out = String::new();
    for p in &snap.providers {
        let _ = writeln!(out, "{}", provider(p));
    }
    out
}

fn provider(p: &Provider) -> String {
    let mut s = format!("provider {}", p.name);
    if let Some(d) = &p.display_name {
        let _ = write!(s, " ({d})");
    }
    if !p.enabled {
        s.push_str(" [disabled: no chain calls it]");
    }
    s.push('\n');
    let mut line = |k: &str, v: String| {
        let _ = writeln!(s, "  {k:<24} {v}");
    };
    line(
        "type",
        crate::config::preset::dialect_type(p.dialect).to_owned(),
    );
    line("base_url", p.base_url());
    line("auth", auth(p));
    if let Some(name) = p.preset {
        let vendor = crate::config::preset::named(name).map_or("", |x| x.vendor);
        line("preset", format!("{name} ({vendor})"));
        if p.preset_filled.is_empty() {
            line("  filled in", "nothing (every field it sets is set)".into());
        }
        for (field, value) in &p.preset_filled {
            line(&format!("  filled in {field}"), value.clone());
        }
    }
    let o = &p.encode.openai;
    if p.dialect == filters::Dialect::OpenAiChat {
        line(
            "max tokens field",
            if o.max_completion_tokens_field {
                "max_completion_tokens"
            } else {
                "max_tokens"
            }
            .into(),
        );
        line("reasoning_param", o.reasoning.name().into());
        line("reasoning_history", o.reasoning_history.to_string());
        use filters::openai_chat::request::MidSystem;
        let mid = match o.mid_system {
            MidSystem::Keep => "keep",
            MidSystem::DemoteToUser => "demote",
            MidSystem::MergeIntoLeading => "merge",
            MidSystem::Drop => "drop",
        };
        line("mid_conversation_system", mid.into());
    }
    s.trim_end().to_owned()
}

/// How calls authenticate, without the secret.
fn auth(p: &Provider) -> String {
    if let Some(login) = &p.login {
        let scheme = if login.tls { "https" } else { "http" };
        return format!(
            "login at {scheme}://{}{} (token in {}, ttl {})",
            login.host_header,
            // Without its query: it may carry a secret.
            login.path.split('?').next().unwrap_or_default(),
            login.header,
            crate::config::show_duration(login.ttl)
        );
    }
    let headers: Vec<&str> = p
        .credentials(Some(0))
        .iter()
        .filter(|(_, v)| v.is_sensitive())
        .map(|(n, _)| n.as_str())
        .collect();
    match (p.keys.len(), headers.as_slice()) {
        (0, _) => "none (no key configured)".into(),
        (n, []) => format!("{n} key(s)"),
        (n, h) => format!("{n} key(s) in {}", h.join(", ")),
    }
}
