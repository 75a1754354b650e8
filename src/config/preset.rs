//! Provider presets: `preset = "deepseek"` fills in what a vendor or a
//! local server needs (dialect, base URL, key variable, request quirks)
//! wherever the provider leaves it unset. Pure data and one function that
//! applies it before validation, so every filled-in value is checked like
//! a typed one and `modelswitch check --explain` can print them.

use super::file::{FileBetaPolicy, FileMidSystem, FileProvider, OneOrMany, ProviderType};

/// How a provider lists the models it serves (the admin API's discovery).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listing {
    /// `GET {base}/models` (`data[].id`).
    OpenAi,
    /// `GET /v1/models`, paged by `after_id`.
    Anthropic,
    /// `GET /v1beta/models`, paged by `pageToken`.
    Gemini,
    /// `GET /api/tags` at the server's root.
    Ollama,
    /// `GET /api/v0/models` (with each model's load state), at the root.
    LmStudio,
}

#[derive(Debug)]
pub struct Preset {
    pub name: &'static str,
    /// Who it is, for `--explain` and the README table.
    pub vendor: &'static str,
    /// The dialect when `type` is unset.
    pub(super) default_type: ProviderType,
    /// Base URL per dialect the vendor speaks.
    pub openai: Option<&'static str>,
    pub anthropic: Option<&'static str>,
    pub gemini: Option<&'static str>,
    pub responses: Option<&'static str>,
    /// The key's conventional variable; `key_required = false`: used when
    /// set, none sent otherwise (local servers).
    pub key_env: Option<&'static str>,
    pub key_required: bool,
    pub max_tokens_field: Option<&'static str>,
    pub reasoning_param: Option<&'static str>,
    /// The vendor refuses a thinking tool-call turn without its reasoning.
    pub reasoning_history: bool,
    pub(super) mid_system: Option<FileMidSystem>,
    pub listing: Listing,
}

const fn openai_compatible(
    name: &'static str,
    vendor: &'static str,
    url: &'static str,
    key_env: &'static str,
) -> Preset {
    Preset {
        name,
        vendor,
        default_type: ProviderType::OpenAi,
        openai: Some(url),
        anthropic: None,
        gemini: None,
        responses: None,
        key_env: Some(key_env),
        key_required: true,
        max_tokens_field: Some("max_tokens"),
        reasoning_param: None,
        reasoning_history: false,
        mid_system: None,
        listing: Listing::OpenAi,
    }
}

const fn local(
    name: &'static str,
    vendor: &'static str,
    url: &'static str,
    listing: Listing,
) -> Preset {
    Preset {
        key_env: None,
        key_required: false,
        listing,
        ..openai_compatible(name, vendor, url, "")
    }
}

/// Every preset, by name.
pub static PRESETS: &[Preset] = &[
    Preset {
        default_type: ProviderType::OpenAi,
        responses: Some("https://api.openai.com/v1"),
        max_tokens_field: Some("max_completion_tokens"),
        reasoning_param: Some("reasoning_effort"),
        ..openai_compatible(
            "openai",
            "OpenAI",
            "https://api.openai.com/v1",
            "OPENAI_API_KEY",
        )
    },
    Preset {
        default_type: ProviderType::Anthropic,
        openai: None,
        anthropic: Some("https://api.anthropic.com"),
        max_tokens_field: None,
        listing: Listing::Anthropic,
        ..openai_compatible("anthropic", "Anthropic", "", "ANTHROPIC_API_KEY")
    },
    Preset {
        default_type: ProviderType::Gemini,
        openai: Some("https://generativelanguage.googleapis.com/v1beta/openai"),
        gemini: Some("https://generativelanguage.googleapis.com"),
        reasoning_param: Some("reasoning_effort"),
        listing: Listing::Gemini,
        ..openai_compatible("gemini", "Google Gemini API", "", "GEMINI_API_KEY")
    },
    Preset {
        anthropic: Some("https://api.deepseek.com/anthropic"),
        reasoning_param: Some("thinking"),
        reasoning_history: true,
        ..openai_compatible(
            "deepseek",
            "DeepSeek",
            "https://api.deepseek.com",
            "DEEPSEEK_API_KEY",
        )
    },
    Preset {
        anthropic: Some("https://dashscope.aliyuncs.com/apps/anthropic"),
        reasoning_param: Some("enable_thinking"),
        mid_system: Some(FileMidSystem::Demote),
        ..openai_compatible(
            "qwen",
            "Alibaba Cloud Model Studio (DashScope), mainland China",
            "https://dashscope.aliyuncs.com/compatible-mode/v1",
            "DASHSCOPE_API_KEY",
        )
    },
    Preset {
        anthropic: Some("https://dashscope-intl.aliyuncs.com/apps/anthropic"),
        reasoning_param: Some("enable_thinking"),
        mid_system: Some(FileMidSystem::Demote),
        ..openai_compatible(
            "qwen-intl",
            "Alibaba Cloud Model Studio (DashScope), international",
            "https://dashscope-intl.aliyuncs.com/compatible-mode/v1",
            "DASHSCOPE_API_KEY",
        )
    },
    Preset {
        anthropic: Some("https://open.bigmodel.cn/api/anthropic"),
        reasoning_param: Some("thinking"),
        reasoning_history: true,
        ..openai_compatible(
            "glm",
            "Zhipu AI BigModel (GLM), mainland China",
            "https://open.bigmodel.cn/api/paas/v4",
            "ZHIPUAI_API_KEY",
        )
    },
    Preset {
        anthropic: Some("https://api.z.ai/api/anthropic"),
        reasoning_param: Some("thinking"),
        reasoning_history: true,
        ..openai_compatible(
            "glm-intl",
            "Z.ai (GLM), international",
            "https://api.z.ai/api/paas/v4",
            "ZAI_API_KEY",
        )
    },
    Preset {
        anthropic: Some("https://api.moonshot.cn/anthropic"),
        // Kimi's thinking models think unasked and want their reasoning
        // kept with the turn.
        reasoning_history: true,
        ..openai_compatible(
            "kimi",
            "Moonshot AI (Kimi), mainland China",
            "https://api.moonshot.cn/v1",
            "MOONSHOT_API_KEY",
        )
    },
    Preset {
        anthropic: Some("https://api.moonshot.ai/anthropic"),
        reasoning_history: true,
        ..openai_compatible(
            "kimi-intl",
            "Moonshot AI (Kimi), international",
            "https://api.moonshot.ai/v1",
            "MOONSHOT_API_KEY",
        )
    },
    Preset {
        anthropic: Some("https://api.minimaxi.com/anthropic"),
        ..openai_compatible(
            "minimax",
            "MiniMax, mainland China",
            "https://api.minimaxi.com/v1",
            "MINIMAX_API_KEY",
        )
    },
    Preset {
        anthropic: Some("https://api.minimax.io/anthropic"),
        ..openai_compatible(
            "minimax-intl",
            "MiniMax, international",
            "https://api.minimax.io/v1",
            "MINIMAX_API_KEY",
        )
    },
    Preset {
        reasoning_param: Some("thinking"),
        ..openai_compatible(
            "ark",
            "Volcengine Ark (Doubao), mainland China",
            "https://ark.cn-beijing.volces.com/api/v3",
            "ARK_API_KEY",
        )
    },
    Preset {
        reasoning_param: Some("enable_thinking"),
        ..openai_compatible(
            "siliconflow",
            "SiliconFlow, mainland China",
            "https://api.siliconflow.cn/v1",
            "SILICONFLOW_API_KEY",
        )
    },
    Preset {
        reasoning_param: Some("enable_thinking"),
        ..openai_compatible(
            "siliconflow-intl",
            "SiliconFlow, international",
            "https://api.siliconflow.com/v1",
            "SILICONFLOW_API_KEY",
        )
    },
    Preset {
        anthropic: Some("https://openrouter.ai/api"),
        reasoning_param: Some("reasoning"),
        ..openai_compatible(
            "openrouter",
            "OpenRouter",
            "https://openrouter.ai/api/v1",
            "OPENROUTER_API_KEY",
        )
    },
    Preset {
        ..openai_compatible("xai", "xAI (Grok)", "https://api.x.ai/v1", "XAI_API_KEY")
    },
    Preset {
        max_tokens_field: Some("max_completion_tokens"),
        ..openai_compatible(
            "groq",
            "Groq",
            "https://api.groq.com/openai/v1",
            "GROQ_API_KEY",
        )
    },
    openai_compatible(
        "mistral",
        "Mistral AI",
        "https://api.mistral.ai/v1",
        "MISTRAL_API_KEY",
    ),
    openai_compatible(
        "together",
        "Together AI",
        "https://api.together.xyz/v1",
        "TOGETHER_API_KEY",
    ),
    openai_compatible(
        "fireworks",
        "Fireworks AI",
        "https://api.fireworks.ai/inference/v1",
        "FIREWORKS_API_KEY",
    ),
    Preset {
        anthropic: Some("http://localhost:11434"),
        reasoning_param: Some("reasoning_effort"),
        ..local(
            "ollama",
            "Ollama (local)",
            "http://localhost:11434/v1",
            Listing::Ollama,
        )
    },
    Preset {
        anthropic: Some("http://localhost:1234"),
        ..local(
            "lmstudio",
            "LM Studio (local)",
            "http://localhost:1234/v1",
            Listing::LmStudio,
        )
    },
    Preset {
        // Its `--api-key`, when the server was started with one.
        key_env: Some("VLLM_API_KEY"),
        anthropic: Some("http://localhost:8000"),
        // Qwen-style chat templates take a system message first only.
        mid_system: Some(FileMidSystem::Demote),
        reasoning_param: Some("chat_template_kwargs"),
        ..local(
            "vllm",
            "vLLM (self-hosted)",
            "http://localhost:8000/v1",
            Listing::OpenAi,
        )
    },
];

pub fn named(name: &str) -> Option<&'static Preset> {
    PRESETS.iter().find(|p| p.name == name)
}

/// How a provider lists its models: its preset's way (Ollama and LM
/// Studio have their own), else its dialect's.
pub fn listing(preset: Option<&str>, dialect: filters::Dialect) -> Listing {
    match preset.and_then(named) {
        Some(p) if matches!(p.listing, Listing::Ollama | Listing::LmStudio) => p.listing,
        _ => match dialect {
            filters::Dialect::Anthropic => Listing::Anthropic,
            filters::Dialect::Gemini => Listing::Gemini,
            filters::Dialect::OpenAiChat | filters::Dialect::OpenAiResponses => Listing::OpenAi,
        },
    }
}

impl Preset {
    fn url_for(&self, kind: ProviderType) -> Option<&'static str> {
        match kind {
            ProviderType::OpenAi => self.openai,
            ProviderType::Anthropic => self.anthropic,
            ProviderType::Gemini => self.gemini,
            ProviderType::OpenAiResponses => self.responses,
        }
    }
}

/// What a preset filled in: (field, value) pairs, in the order applied.
pub type Filled = Vec<(&'static str, String)>;

/// Fills `p`'s unset fields from its preset. `Err`: the preset is unknown
/// or has nothing for the chosen dialect (the message names the field).
pub(super) fn apply(p: &mut FileProvider) -> Result<Option<(&'static Preset, Filled)>, String> {
    let Some(name) = p.preset.as_deref() else {
        return Ok(None);
    };
    let preset = named(name).ok_or_else(|| {
        let known: Vec<&str> = PRESETS.iter().map(|p| p.name).collect();
        format!("preset: '{name}' is not a preset ({})", known.join(", "))
    })?;
    let mut filled = Filled::new();
    let kind = match p.kind {
        Some(k) => k,
        None => {
            filled.push(("type", type_name(preset.default_type).to_owned()));
            preset.default_type
        }
    };
    p.kind = Some(kind);
    if p.base_url.is_none() {
        let url = preset.url_for(kind).ok_or_else(|| {
            format!(
                "type: {} has no \"{}\" endpoint in preset '{name}'; set base_url",
                preset.vendor,
                type_name(kind)
            )
        })?;
        filled.push(("base_url", url.to_owned()));
        p.base_url = Some(OneOrMany::One(url.to_owned()));
    }
    let has_credential = p.api_key.is_some()
        || p.api_key_env.is_some()
        || !p.api_keys.is_empty()
        || !p.api_keys_env.is_empty()
        || p.auth
            .as_ref()
            .is_some_and(|a| a.token.is_some() || a.token_env.is_some() || a.login_url.is_some());
    if let Some(var) = preset.key_env.filter(|_| !has_credential) {
        // A local server's key is optional: taken only when it is set.
        if preset.key_required || std::env::var(var).is_ok_and(|v| !v.is_empty()) {
            filled.push(("api_key_env", var.to_owned()));
            p.api_key_env = Some(var.to_owned());
        }
    }
    // Another vendor's Anthropic endpoint may refuse a beta it does not
    // know, and Claude Code sends new ones.
    if kind == ProviderType::Anthropic && preset.name != "anthropic" && p.anthropic_beta.is_none() {
        filled.push(("anthropic_beta", "drop".to_owned()));
        p.anthropic_beta = Some(FileBetaPolicy::Mode("drop".to_owned()));
    }
    if kind == ProviderType::OpenAi {
        if let (None, Some(f)) = (&p.max_tokens_field, preset.max_tokens_field) {
            filled.push(("max_tokens_field", f.to_owned()));
            p.max_tokens_field = Some(f.to_owned());
        }
        let reasoning_set = p.reasoning_param.is_some() || p.reasoning_effort.is_some();
        if let (false, Some(r)) = (reasoning_set, preset.reasoning_param) {
            filled.push(("reasoning_param", r.to_owned()));
            p.reasoning_param = Some(r.to_owned());
        }
        if p.reasoning_history.is_none() && preset.reasoning_history {
            filled.push(("reasoning_history", "true".to_owned()));
            p.reasoning_history = Some(true);
        }
        if let (None, Some(m)) = (p.mid_conversation_system, preset.mid_system) {
            filled.push(("mid_conversation_system", mid_name(m).to_owned()));
            p.mid_conversation_system = Some(m);
        }
    }
    Ok(Some((preset, filled)))
}

/// A dialect's `type = "…"` name.
pub fn dialect_type(d: filters::Dialect) -> &'static str {
    match d {
        filters::Dialect::OpenAiChat => "openai",
        filters::Dialect::Anthropic => "anthropic",
        filters::Dialect::Gemini => "gemini",
        filters::Dialect::OpenAiResponses => "openai-responses",
    }
}

pub(super) fn type_name(kind: ProviderType) -> &'static str {
    match kind {
        ProviderType::OpenAi => "openai",
        ProviderType::Anthropic => "anthropic",
        ProviderType::Gemini => "gemini",
        ProviderType::OpenAiResponses => "openai-responses",
    }
}

fn mid_name(m: FileMidSystem) -> &'static str {
    match m {
        FileMidSystem::Keep => "keep",
        FileMidSystem::Demote => "demote",
        FileMidSystem::Merge => "merge",
        FileMidSystem::Drop => "drop",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn every_preset_is_whole_and_named_once() {
        let mut names = HashSet::new();
        for p in PRESETS {
            assert!(names.insert(p.name), "{} twice", p.name);
            let url = p.url_for(p.default_type);
            assert!(
                url.is_some_and(|u| !u.is_empty()),
                "{}: no URL for its own type",
                p.name
            );
            for u in [p.openai, p.anthropic, p.gemini, p.responses]
                .into_iter()
                .flatten()
            {
                assert!(
                    super::super::validate::parse_base_url(u).is_some(),
                    "{}: {u}",
                    p.name
                );
            }
            if p.key_required {
                assert!(p.key_env.is_some_and(|v| !v.is_empty()), "{}", p.name);
            }
            if let Some(r) = p.reasoning_param {
                assert!(
                    filters::openai_chat::request::ReasoningParam::named(r).is_some(),
                    "{}: {r}",
                    p.name
                );
            }
        }
        for wanted in [
            "deepseek",
            "qwen",
            "glm",
            "glm-intl",
            "kimi",
            "openrouter",
            "siliconflow",
            "ollama",
            "lmstudio",
            "vllm",
            "xai",
        ] {
            assert!(named(wanted).is_some(), "{wanted}");
        }
    }

    fn provider(toml_text: &str) -> FileProvider {
        toml::from_str(&format!("name = \"p\"\n{toml_text}")).unwrap()
    }

    #[test]
    fn a_preset_fills_only_what_is_unset() {
        let mut p = provider(
            "preset = \"qwen\"\napi_key = \"sk-own\"\nmax_tokens_field = \"max_completion_tokens\"",
        );
        let (preset, filled) = apply(&mut p).unwrap().unwrap();
        assert_eq!(preset.name, "qwen");
        let fields: Vec<&str> = filled.iter().map(|(f, _)| *f).collect();
        assert_eq!(
            fields,
            [
                "type",
                "base_url",
                "reasoning_param",
                "mid_conversation_system"
            ]
        );
        assert_eq!(p.api_key_env, None, "a key of its own: no variable");
        assert_eq!(p.max_tokens_field.as_deref(), Some("max_completion_tokens"));
        assert!(
            matches!(&p.base_url, Some(OneOrMany::One(u)) if u == "https://dashscope.aliyuncs.com/compatible-mode/v1")
        );
    }

    #[test]
    fn the_dialect_chooses_the_endpoint_and_its_quirks() {
        let mut p = provider("preset = \"kimi\"\ntype = \"anthropic\"");
        let (_, filled) = apply(&mut p).unwrap().unwrap();
        assert!(
            matches!(&p.base_url, Some(OneOrMany::One(u)) if u == "https://api.moonshot.cn/anthropic")
        );
        assert!(filled.contains(&("anthropic_beta", "drop".to_owned())));
        // OpenAI Chat quirks stay off another dialect.
        assert!(p.reasoning_history.is_none() && p.max_tokens_field.is_none());
        let mut p = provider("preset = \"anthropic\"");
        let (_, filled) = apply(&mut p).unwrap().unwrap();
        assert!(!filled.iter().any(|(f, _)| *f == "anthropic_beta"));
        let mut p = provider("preset = \"xai\"\ntype = \"gemini\"");
        assert!(apply(&mut p)
            .unwrap_err()
            .starts_with("type: xAI (Grok) has no \"gemini\" endpoint"));
        let mut p = provider("type = \"openai\"\nbase_url = \"http://x/v1\"");
        assert!(apply(&mut p).unwrap().is_none());
    }
}
