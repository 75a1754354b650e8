//! Which configured model a requested name reaches: its own name, then an
//! alias, then the first glob-named model (in config order) that matches,
//! then `[routing] default_model`. Exact names and aliases are one hash
//! lookup; globs are tried only when those miss.

use std::collections::HashMap;

/// How a name was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    Exact,
    Alias,
    Glob,
    Default,
}

impl Found {
    pub fn label(self) -> &'static str {
        match self {
            Self::Exact => "exact",
            Self::Alias => "alias",
            Self::Glob => "glob",
            Self::Default => "default",
        }
    }
}

/// The names configured models answer to.
#[derive(Debug, Default, Clone)]
pub struct Names {
    /// Own names and aliases → (the model's name, how).
    exact: HashMap<String, (usize, Found)>,
    /// Glob-named models, in config order: (pattern, index).
    globs: Vec<(String, usize)>,
    /// Model names by index.
    models: Vec<String>,
    default: Option<usize>,
}

/// An alias that collides or a default that names nothing: the index
/// of the model whose alias it is (`None`: the default), and why.
pub type Conflict = (Option<usize>, String);

impl Names {
    /// `models`: (name, aliases) in config order. Conflicts are reported,
    /// the first definition kept (a name defined twice is the config's to
    /// report).
    pub fn build<'a>(
        models: impl IntoIterator<Item = (&'a str, &'a [String])>,
        default: Option<&str>,
    ) -> (Self, Vec<Conflict>) {
        let mut n = Self::default();
        let mut conflicts = Vec::new();
        let list: Vec<(&str, &[String])> = models.into_iter().collect();
        for (i, (name, _)) in list.iter().enumerate() {
            n.models.push((*name).to_owned());
            if crate::glob::is_glob(name) {
                n.globs.push(((*name).to_owned(), i));
            } else {
                n.exact
                    .entry((*name).to_owned())
                    .or_insert((i, Found::Exact));
            }
        }
        for (i, (name, aliases)) in list.iter().enumerate() {
            for alias in aliases.iter() {
                if crate::glob::is_glob(alias) {
                    conflicts.push((Some(i), format!(
                        "alias '{alias}' has a '*': aliases are exact names (name a model with the glob instead)"
                    )));
                } else if let Some((j, _)) = n.exact.get(alias.as_str()) {
                    conflicts.push((
                        Some(i),
                        format!(
                            "alias '{alias}' of '{name}' is already a name of '{}'",
                            n.models[*j]
                        ),
                    ));
                } else {
                    n.exact.insert(alias.clone(), (i, Found::Alias));
                }
            }
        }
        if let Some(d) = default {
            match n.exact.get(d) {
                Some((i, _)) => n.default = Some(*i),
                None => conflicts.push((
                    None,
                    format!("'{d}' is not a configured model's name or alias"),
                )),
            }
        }
        (n, conflicts)
    }

    /// Takes models out of resolution (out of service): their names and
    /// aliases resolve no more, a glob of theirs matches nothing, and a
    /// default among them is no default.
    pub fn retire(&mut self, models: &[String]) {
        let gone: Vec<bool> = self.models.iter().map(|m| models.contains(m)).collect();
        let gone = |i: &usize| gone.get(*i).copied().unwrap_or(false);
        self.exact.retain(|_, (i, _)| !gone(i));
        self.globs.retain(|(_, i)| !gone(i));
        if self.default.as_ref().is_some_and(gone) {
            self.default = None;
        }
    }

    /// The configured model `requested` reaches, and how.
    pub fn resolve(&self, requested: &str) -> Option<(&str, Found)> {
        let (i, found) = match self.exact.get(requested) {
            Some(&(i, f)) => (i, f),
            None => match self
                .globs
                .iter()
                .find(|(p, _)| crate::glob::matches(p, requested))
            {
                Some(&(_, i)) => (i, Found::Glob),
                None => (self.default?, Found::Default),
            },
        };
        Some((self.models[i].as_str(), found))
    }

    /// The configured model a name or alias names exactly (no glob, no
    /// default): what rules and the classifier may `use`.
    pub fn exact(&self, name: &str) -> Option<&str> {
        self.exact.get(name).map(|(i, _)| self.models[*i].as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(default: Option<&str>) -> Names {
        let sonnet = vec!["sonnet".to_owned(), "claude-sonnet-4-5".to_owned()];
        let none: Vec<String> = Vec::new();
        let (n, conflicts) = Names::build(
            [
                ("big", sonnet.as_slice()),
                ("claude-*", none.as_slice()),
                ("*", none.as_slice()),
                ("small", none.as_slice()),
            ],
            default,
        );
        assert!(conflicts.is_empty(), "{conflicts:?}");
        n
    }

    #[test]
    fn exact_alias_glob_in_order_then_default() {
        let n = names(None);
        assert_eq!(n.resolve("big"), Some(("big", Found::Exact)));
        assert_eq!(n.resolve("sonnet"), Some(("big", Found::Alias)));
        // An alias beats a glob that also matches it.
        assert_eq!(n.resolve("claude-sonnet-4-5"), Some(("big", Found::Alias)));
        assert_eq!(
            n.resolve("claude-haiku-4-5"),
            Some(("claude-*", Found::Glob))
        );
        // The first glob in config order wins, even the catch-all after it.
        assert_eq!(n.resolve("gpt-4o"), Some(("*", Found::Glob)));
        assert_eq!(n.exact("sonnet"), Some("big"));
        assert_eq!(n.exact("claude-x"), None);

        let (n, _) = Names::build([("big", [].as_slice())], Some("big"));
        assert_eq!(n.resolve("anything"), Some(("big", Found::Default)));
        let (n, _) = Names::build([("big", [].as_slice())], None);
        assert_eq!(n.resolve("anything"), None, "off by default");
    }

    #[test]
    fn conflicts_are_reported() {
        let a = vec!["x".to_owned(), "b".to_owned(), "g*".to_owned()];
        let (_, c) = Names::build(
            [
                ("a", a.as_slice()),
                ("b", [].as_slice()),
                ("a", [].as_slice()),
            ],
            Some("nope"),
        );
        let has =
            |at: Option<usize>, text: &str| c.iter().any(|(i, m)| *i == at && m.contains(text));
        assert_eq!(c.len(), 3, "{c:?}");
        assert!(has(Some(0), "already a name of 'b'"));
        assert!(has(Some(0), "aliases are exact"));
        assert!(has(None, "'nope'"));
    }

    #[test]
    fn a_retired_model_resolves_nothing_and_the_next_one_does() {
        let aliases = vec!["sonnet".to_owned()];
        let none: Vec<String> = Vec::new();
        let (mut n, conflicts) = Names::build(
            [
                ("claude-*", none.as_slice()),
                ("claude-sonnet-4-5", aliases.as_slice()),
                ("c*", none.as_slice()),
                ("fallback", none.as_slice()),
            ],
            Some("fallback"),
        );
        assert!(conflicts.is_empty());
        n.retire(&["claude-*".to_owned(), "claude-sonnet-4-5".to_owned()]);
        assert_eq!(n.resolve("claude-opus").map(|r| r.0), Some("c*"));
        assert_eq!(n.resolve("sonnet").map(|r| r.0), Some("fallback"));
        assert_eq!(n.exact("claude-sonnet-4-5"), None);
        n.retire(&["fallback".to_owned(), "c*".to_owned()]);
        assert_eq!(n.resolve("anything"), None);
    }
}
