//! `[routing]`, model names and capabilities, validated: every name a
//! rule, the classifier or the default uses must be a configured model
//! (or alias), resolved here to the model's own name so the request path
//! does one lookup.

use super::file::{
    FileBetaPolicy, FileCapabilities, FileClassifier, FileModel, FileRouting, FileScene, OneOrMany,
};
use super::snapshot::{Affinity, Classifier, Route, Routing};
use filters::anthropic::beta::BetaPolicy;
use filters::auth::Role;
use filters::routing::classifier::{self, Scene};
use filters::routing::names::Names;
use filters::routing::rules::{Rule, Use, When};
use filters::routing::Capabilities;
use filters::Dialect;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

type Errors = Vec<String>;

pub(super) fn beta_policy(at: &str, p: Option<&FileBetaPolicy>, errs: &mut Errors) -> BetaPolicy {
    match p {
        None => BetaPolicy::Forward,
        Some(FileBetaPolicy::Mode(m)) if m == "forward" => BetaPolicy::Forward,
        Some(FileBetaPolicy::Mode(m)) if m == "drop" => BetaPolicy::Drop,
        Some(FileBetaPolicy::Mode(m)) => {
            errs.push(format!(
                "{at}.anthropic_beta: '{m}' is not \"forward\", \"drop\" or a list of betas"
            ));
            BetaPolicy::Forward
        }
        Some(FileBetaPolicy::Allow(list)) => {
            if let Some(b) = list.iter().find(|b| b.trim().is_empty() || b.contains(',')) {
                errs.push(format!(
                    "{at}.anthropic_beta: '{b}' is not one beta name (one per list item)"
                ));
            }
            BetaPolicy::Allow(list.clone())
        }
    }
}

/// `over`'s fields replace `base`'s where set.
pub(super) fn capabilities(
    at: &str,
    base: Capabilities,
    over: &FileCapabilities,
    errs: &mut Errors,
) -> Capabilities {
    if over.context_window == Some(0) {
        errs.push(format!("{at}.context_window: must be at least 1"));
    }
    Capabilities {
        context_window: over.context_window.or(base.context_window),
        vision: over.vision.unwrap_or(base.vision),
        tools: over.tools.unwrap_or(base.tools),
        reasoning: over.reasoning.unwrap_or(base.reasoning),
    }
}

fn list(v: Option<&OneOrMany>) -> Vec<String> {
    match v {
        None => Vec::new(),
        Some(OneOrMany::One(s)) => vec![s.clone()],
        Some(OneOrMany::Many(v)) => v.clone(),
    }
}

/// `[routing]`, with every model a rule or scene names checked.
pub(super) fn routing(
    f: &FileRouting,
    models: &[FileModel],
    routes: &HashMap<String, Arc<Route>>,
    disabled: &[String],
    errs: &mut Errors,
) -> Routing {
    let (names, conflicts) = Names::build(
        models
            .iter()
            .map(|m| (m.name.as_str(), m.aliases.as_slice())),
        f.default_model.as_deref(),
    );
    for (model, why) in conflicts {
        match model {
            Some(i) => errs.push(format!("models[{i}].aliases: {why}")),
            None => errs.push(format!("routing.default_model: {why}")),
        }
    }
    let tags_known = |at: &str, tags: &[String], errs: &mut Errors| {
        if !routes
            .values()
            .any(|r| tags.iter().all(|t| r.tags.contains(t)))
        {
            errs.push(format!(
                "{at}: no model has every tag of 'tags:{}'",
                tags.join(",")
            ));
        }
    };
    // A rule or scene names a model exactly (its name or an alias): a glob
    // or the default would hide a typo.
    let model = |at: &str, name: &str, errs: &mut Errors| -> String {
        match names.exact(name) {
            Some(m) => m.to_owned(),
            None => {
                errs.push(format!("{at}: no model named '{name}' (nor an alias)"));
                name.to_owned()
            }
        }
    };
    let mut rules = Vec::new();
    for (i, r) in f.rules.iter().enumerate() {
        let at = format!("routing.rules[{i}]");
        let use_ = match Use::parse(&r.use_) {
            None => {
                errs.push(format!("{at}.use: 'tags:' needs at least one tag"));
                continue;
            }
            Some(Use::Tags(t)) => {
                tags_known(&format!("{at}.use"), &t, errs);
                Use::Tags(t)
            }
            Some(Use::Model(m)) => Use::Model(model(&format!("{at}.use"), &m, errs)),
        };
        let w = &r.when;
        let mut dialect = Vec::new();
        for d in list(w.dialect.as_ref()) {
            match dialect_named(&d) {
                Some(x) => dialect.push(x),
                None => errs.push(format!(
                    "{at}.when.dialect: '{d}' is not openai, anthropic, gemini or responses"
                )),
            }
        }
        let mut role = Vec::new();
        for r in list(w.role.as_ref()) {
            match Role::parse(&r) {
                Some(x) => role.push(x),
                None => errs.push(format!(
                    "{at}.when.role: '{r}' is not admin, user or viewer"
                )),
            }
        }
        let mut header: Vec<(String, String)> = Vec::new();
        for (name, glob) in &w.header {
            if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                errs.push(format!("{at}.when.header: '{name}' is not a header name"));
            }
            header.push((name.to_ascii_lowercase(), glob.clone()));
        }
        header.sort();
        // A rule to a model out of service is set aside, not an error:
        // taking a model (or its providers) out of service must not stop
        // the config loading. Requests go on to the next rule.
        if matches!(&use_, Use::Model(m) if disabled.contains(m)) {
            continue;
        }
        rules.push(Rule {
            name: r.name.clone().unwrap_or_else(|| format!("rule#{}", i + 1)),
            when: When {
                model: list(w.model.as_ref()),
                dialect,
                key: list(w.key.as_ref()),
                role,
                header,
                has_tools: w.has_tools,
                has_images: w.has_images,
                thinking: w.thinking,
                web_search: w.web_search,
                min_input_tokens: w.min_input_tokens,
                background: w.background,
            },
            use_,
        });
    }
    let classifier = f
        .classifier
        .as_ref()
        .map(|c| classifier_section(c, &model, errs));
    // Names of models out of service answer nothing (a glob or the
    // default after them may); scenes that name one fall to the default.
    let mut names = names;
    names.retire(disabled);
    let a = &f.affinity;
    let header = a.header.as_ref().and_then(|h| {
        let name = http::HeaderName::from_bytes(h.as_bytes()).ok();
        if name.is_none() {
            errs.push(format!(
                "routing.affinity.header: '{h}' is not a header name"
            ));
        }
        name
    });
    let defaults = Affinity::default();
    let ttl = a.ttl.unwrap_or(defaults.ttl);
    if !(Duration::from_secs(1)..=Duration::from_secs(30 * 86_400)).contains(&ttl) {
        errs.push("routing.affinity.ttl: must be between 1s and 30 days".into());
    }
    let max_sessions = a.max_sessions.unwrap_or(defaults.max_sessions);
    if !(2..=10_000_000).contains(&max_sessions) {
        errs.push("routing.affinity.max_sessions: must be between 2 and 10000000".into());
    }
    let background_models = match &f.background_models {
        None => vec!["*haiku*".to_owned()],
        Some(v) => list(Some(v)),
    };
    Routing {
        rules_count_tokens: rules.iter().any(|r| r.when.counts_tokens()),
        any_varies: routes.values().any(|r| r.varies),
        names,
        rules,
        classifier,
        affinity: Affinity {
            enabled: a.enabled.unwrap_or(defaults.enabled),
            header,
            ttl,
            max_sessions,
        },
        background_models,
    }
}

fn classifier_section(
    c: &FileClassifier,
    model: &impl Fn(&str, &str, &mut Errors) -> String,
    errs: &mut Errors,
) -> Classifier {
    let at = "routing.classifier";
    if c.scenes.is_empty() {
        errs.push(format!("{at}.scenes: at least one scene is required"));
    }
    let scenes: Vec<Scene> = c
        .scenes
        .iter()
        .map(|(name, scene)| {
            let (m, description) = match scene {
                FileScene::Model(m) => (m, None),
                FileScene::Described { model, description } => (model, description.clone()),
            };
            let description =
                description.or_else(|| classifier::default_description(name).map(str::to_owned));
            if description.is_none() {
                errs.push(format!(
                    "{at}.scenes.{name}: a scene of its own needs a description \
                     ({name} = {{ model = \"…\", description = \"…\" }})"
                ));
            }
            if !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            {
                errs.push(format!(
                    "{at}.scenes.{name}: scene names are one word (letters, digits, _ and -)"
                ));
            }
            Scene {
                name: name.clone(),
                model: model(&format!("{at}.scenes.{name}"), m, errs),
                description: description.unwrap_or_default(),
            }
        })
        .collect();
    let timeout = c.timeout.unwrap_or(Duration::from_secs(2));
    if !(Duration::from_millis(50)..=Duration::from_secs(60)).contains(&timeout) {
        errs.push(format!("{at}.timeout: must be between 50ms and 60s"));
    }
    Classifier {
        model: model(&format!("{at}.model"), &c.model, errs),
        prompt: classifier::system_prompt(&scenes),
        scenes,
        default: model(&format!("{at}.default"), &c.default, errs),
        timeout,
        models: list(c.models.as_ref()),
    }
}

fn dialect_named(name: &str) -> Option<Dialect> {
    Some(match name {
        "openai" | "chat" => Dialect::OpenAiChat,
        "anthropic" => Dialect::Anthropic,
        "gemini" => Dialect::Gemini,
        "responses" | "openai-responses" => Dialect::OpenAiResponses,
        _ => return None,
    })
}
