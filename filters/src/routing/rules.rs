//! `[[routing.rules]]`: conditions on a request, evaluated in order; the
//! first rule whose every condition holds names the model (or `tags:`
//! query) that serves it. Conditions read `Facts`, taken from the request
//! once, so a rule costs a few comparisons.

use crate::auth::Role;
use crate::Dialect;

/// What rules (and capabilities) read of one request.
#[derive(Debug, Clone, Copy)]
pub struct Facts<'a> {
    /// The name the client asked for.
    pub model: &'a str,
    pub dialect: Dialect,
    /// The client key's name.
    pub key: &'a str,
    pub roles: &'a [Role],
    pub has_tools: bool,
    pub has_images: bool,
    /// The request asks for reasoning.
    pub thinking: bool,
    /// A web-search tool is offered.
    pub web_search: bool,
    /// Estimated (`limits::estimate::typical_input_tokens`); 0 when no
    /// rule or capability needs it.
    pub input_tokens: u64,
    /// One of an agent's background chores (`[routing] background_models`).
    pub background: bool,
}

/// What a rule (or the classifier) sends a request to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Use {
    /// A configured model, by its own name (aliases resolved at load).
    Model(String),
    /// The best healthy model with all these tags (`tags:a,b`).
    Tags(Vec<String>),
}

impl Use {
    /// `tags:a,b` or a model name; `None` for an empty tag list.
    pub fn parse(s: &str) -> Option<Self> {
        match s.strip_prefix("tags:") {
            Some(list) => super::tags::parse(list).map(Self::Tags),
            None => Some(Self::Model(s.to_owned())),
        }
    }
}

/// A rule's conditions; an empty list or `None` does not constrain.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct When {
    /// Globs of the requested name.
    pub model: Vec<String>,
    pub dialect: Vec<Dialect>,
    /// Globs of the key's name.
    pub key: Vec<String>,
    pub role: Vec<Role>,
    /// Lower-case header name → glob of its value (a missing header fails).
    pub header: Vec<(String, String)>,
    pub has_tools: Option<bool>,
    pub has_images: Option<bool>,
    pub thinking: Option<bool>,
    pub web_search: Option<bool>,
    pub min_input_tokens: Option<u64>,
    pub background: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// `rule#N` (1-based) unless named.
    pub name: String,
    pub when: When,
    pub use_: Use,
}

impl When {
    /// Whether every condition holds; `header` reads a request header by
    /// lower-case name.
    pub fn holds<'h>(&self, f: &Facts<'_>, header: &impl Fn(&str) -> Option<&'h str>) -> bool {
        let flag = |want: Option<bool>, have: bool| want.is_none_or(|w| w == have);
        let any_glob = |globs: &[String], s: &str| {
            globs.is_empty() || globs.iter().any(|g| crate::glob::matches(g, s))
        };
        flag(self.has_tools, f.has_tools)
            && flag(self.has_images, f.has_images)
            && flag(self.thinking, f.thinking)
            && flag(self.web_search, f.web_search)
            && flag(self.background, f.background)
            && self.min_input_tokens.is_none_or(|n| f.input_tokens >= n)
            && (self.dialect.is_empty() || self.dialect.contains(&f.dialect))
            && (self.role.is_empty() || self.role.iter().any(|r| f.roles.contains(r)))
            && any_glob(&self.model, f.model)
            && any_glob(&self.key, f.key)
            && self
                .header
                .iter()
                .all(|(name, glob)| header(name).is_some_and(|v| crate::glob::matches(glob, v)))
    }

    /// Whether holding needs the input estimated.
    pub fn counts_tokens(&self) -> bool {
        self.min_input_tokens.is_some()
    }
}

/// The first rule that holds.
pub fn first<'r, 'h>(
    rules: &'r [Rule],
    f: &Facts<'_>,
    header: &impl Fn(&str) -> Option<&'h str>,
) -> Option<&'r Rule> {
    rules.iter().find(|r| r.when.holds(f, header))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> Facts<'static> {
        Facts {
            model: "claude-sonnet-4-5",
            dialect: Dialect::Anthropic,
            key: "alice",
            roles: &[Role::User],
            has_tools: true,
            has_images: false,
            thinking: false,
            web_search: false,
            input_tokens: 1000,
            background: false,
        }
    }

    fn no_headers(_: &str) -> Option<&'static str> {
        None
    }

    #[test]
    fn every_condition_must_hold() {
        let f = facts();
        let all = When {
            model: vec!["claude-*".into()],
            dialect: vec![Dialect::Anthropic],
            key: vec!["al*".into()],
            role: vec![Role::User],
            header: vec![("x-team".into(), "core-*".into())],
            has_tools: Some(true),
            has_images: Some(false),
            thinking: Some(false),
            web_search: Some(false),
            min_input_tokens: Some(1000),
            background: Some(false),
        };
        let team = |n: &str| (n == "x-team").then_some("core-infra");
        assert!(all.holds(&f, &team));
        assert!(!all.holds(&f, &no_headers), "a missing header fails");
        assert!(
            When::default().holds(&f, &no_headers),
            "no condition: holds"
        );

        // Each condition alone turns it off.
        let off: Vec<When> = vec![
            When {
                model: vec!["gpt-*".into()],
                ..When::default()
            },
            When {
                dialect: vec![Dialect::OpenAiChat],
                ..When::default()
            },
            When {
                key: vec!["bob".into()],
                ..When::default()
            },
            When {
                role: vec![Role::Admin],
                ..When::default()
            },
            When {
                header: vec![("x-team".into(), "other".into())],
                ..When::default()
            },
            When {
                has_tools: Some(false),
                ..When::default()
            },
            When {
                has_images: Some(true),
                ..When::default()
            },
            When {
                thinking: Some(true),
                ..When::default()
            },
            When {
                web_search: Some(true),
                ..When::default()
            },
            When {
                min_input_tokens: Some(1001),
                ..When::default()
            },
            When {
                background: Some(true),
                ..When::default()
            },
        ];
        for w in &off {
            assert!(!w.holds(&f, &team), "{w:?}");
        }
    }

    #[test]
    fn first_match_wins_and_use_parses() {
        let rule = |name: &str, when: When, to: &str| Rule {
            name: name.into(),
            when,
            use_: Use::parse(to).unwrap_or(Use::Model(String::new())),
        };
        let rules = vec![
            rule(
                "bg",
                When {
                    background: Some(true),
                    ..When::default()
                },
                "small",
            ),
            rule(
                "long",
                When {
                    min_input_tokens: Some(500),
                    ..When::default()
                },
                "tags:long,cheap",
            ),
            rule("any", When::default(), "big"),
        ];
        let f = facts();
        assert_eq!(
            first(&rules, &f, &no_headers).map(|r| r.name.as_str()),
            Some("long")
        );
        assert_eq!(
            rules[1].use_,
            Use::Tags(vec!["long".into(), "cheap".into()])
        );
        let f = Facts {
            background: true,
            ..facts()
        };
        assert_eq!(
            first(&rules, &f, &no_headers).map(|r| r.name.as_str()),
            Some("bg")
        );
        assert_eq!(Use::parse("tags:"), None);
        assert!(rules[1].when.counts_tokens() && !rules[0].when.counts_tokens());
    }
}
