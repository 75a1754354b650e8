//! Discovered models added to the config file itself (`toml_edit`): each
//! becomes a new `[[models]]` with one target, or, when a model of that
//! name exists, one more target at the end of its chain. Everything else
//! in the file, comments and layout included, is left byte for byte.

use std::str::FromStr;
use toml_edit::{Array, ArrayOfTables, DocumentMut, InlineTable, Item, Table, Value};

/// One model to add: its name in the config and the provider's id for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewModel {
    pub name: String,
    pub id: String,
}

/// What became of one [`NewModel`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// A new `[[models]]`.
    Added,
    /// The target went at the end of the existing model's chain.
    Appended,
    /// The chain already sends the provider this id.
    Unchanged,
}

impl Change {
    pub fn name(self) -> &'static str {
        match self {
            Change::Added => "added",
            Change::Appended => "appended",
            Change::Unchanged => "unchanged",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Added {
    pub name: String,
    pub id: String,
    pub change: Change,
}

/// `text` with each of `wanted` added for `provider`, and what became of
/// each. `Err`: the file does not parse, or `models` (or a chain) is not
/// a shape this edit knows.
pub fn add_models(
    text: &str,
    provider: &str,
    wanted: &[NewModel],
) -> Result<(String, Vec<Added>), String> {
    let mut doc = DocumentMut::from_str(text).map_err(|e| {
        let line = e.span().map_or(1, |s| {
            text.get(..s.start)
                .map_or(1, |t| t.matches('\n').count() + 1)
        });
        format!("the file does not parse (line {line})")
    })?;
    let mut out = Vec::with_capacity(wanted.len());
    for m in wanted {
        let change = add_one(&mut doc, provider, m)?;
        out.push(Added {
            name: m.name.clone(),
            id: m.id.clone(),
            change,
        });
    }
    Ok((doc.to_string(), out))
}

fn add_one(doc: &mut DocumentMut, provider: &str, m: &NewModel) -> Result<Change, String> {
    let is_it = |v: Option<&str>| v == Some(m.name.as_str());
    match doc.get_mut("models") {
        None => {
            let mut models = ArrayOfTables::new();
            models.push(new_table(provider, m));
            doc.insert("models", Item::ArrayOfTables(models));
            Ok(Change::Added)
        }
        Some(Item::ArrayOfTables(models)) => {
            let found = models
                .iter()
                .position(|t| is_it(t.get("name").and_then(Item::as_str)));
            match found.and_then(|i| models.get_mut(i)) {
                Some(t) => append_in_table(t, provider, &m.id),
                None => {
                    models.push(new_table(provider, m));
                    Ok(Change::Added)
                }
            }
        }
        Some(Item::Value(Value::Array(models))) => {
            let found = models.iter().position(|v| {
                v.as_inline_table()
                    .is_some_and(|t| is_it(t.get("name").and_then(Value::as_str)))
            });
            match found
                .and_then(|i| models.get_mut(i))
                .and_then(Value::as_inline_table_mut)
            {
                Some(t) => match t.get_mut("targets") {
                    Some(Value::Array(a)) => Ok(append_in_array(a, provider, &m.id)),
                    None => {
                        t.insert("targets", Value::Array(chain_of(provider, &m.id)));
                        Ok(Change::Appended)
                    }
                    Some(_) => Err(format!("models '{}': targets is not an array", m.name)),
                },
                None => {
                    let mut t = InlineTable::new();
                    t.insert("name", m.name.as_str().into());
                    t.insert("targets", Value::Array(chain_of(provider, &m.id)));
                    let mut v = Value::InlineTable(t);
                    spaced(&mut v, models);
                    models.push_formatted(v);
                    Ok(Change::Added)
                }
            }
        }
        Some(_) => Err("models: not an array of tables".into()),
    }
}

/// `[[models]]` with `name` and a one-target chain, a blank line above.
fn new_table(provider: &str, m: &NewModel) -> Table {
    let mut t = Table::new();
    t.insert("name", toml_edit::value(m.name.as_str()));
    t.insert("targets", toml_edit::value(chain_of(provider, &m.id)));
    t.decor_mut().set_prefix("\n");
    t
}

fn chain_of(provider: &str, id: &str) -> Array {
    let mut a = Array::new();
    a.push(super::config_targets::target_table(provider, id));
    a
}

fn is_target(provider: Option<&str>, model: Option<&str>, p: &str, id: &str) -> bool {
    provider == Some(p) && model == Some(id)
}

fn append_in_table(model: &mut Table, provider: &str, id: &str) -> Result<Change, String> {
    match model.get_mut("targets") {
        Some(Item::Value(Value::Array(a))) => Ok(append_in_array(a, provider, id)),
        Some(Item::ArrayOfTables(a)) => {
            let there = a.iter().any(|t| {
                is_target(
                    t.get("provider").and_then(Item::as_str),
                    t.get("model").and_then(Item::as_str),
                    provider,
                    id,
                )
            });
            if there {
                return Ok(Change::Unchanged);
            }
            let mut t = Table::new();
            t.insert("provider", toml_edit::value(provider));
            t.insert("model", toml_edit::value(id));
            t.decor_mut().set_prefix("\n");
            a.push(t);
            Ok(Change::Appended)
        }
        None => {
            model.insert("targets", toml_edit::value(chain_of(provider, id)));
            Ok(Change::Appended)
        }
        Some(_) => Err("targets: not an array".into()),
    }
}

/// The target at the end of an inline chain, laid out like its entries:
/// one per line when they are, else after a space.
fn append_in_array(a: &mut Array, provider: &str, id: &str) -> Change {
    let there = a.iter().any(|v| {
        v.as_inline_table().is_some_and(|t| {
            is_target(
                t.get("provider").and_then(Value::as_str),
                t.get("model").and_then(Value::as_str),
                provider,
                id,
            )
        })
    });
    if there {
        return Change::Unchanged;
    }
    let mut v = Value::InlineTable(super::config_targets::target_table(provider, id));
    spaced(&mut v, a);
    a.push_formatted(v);
    Change::Appended
}

/// `v`'s spacing as the next entry of `a`.
fn spaced(v: &mut Value, a: &Array) {
    let entries: Vec<Value> = a.iter().cloned().collect();
    let p = match super::config_targets::line_indent(&entries) {
        Some(indent) => indent,
        None if a.is_empty() => String::new(),
        None => " ".to_owned(),
    };
    v.decor_mut().set_prefix(p);
    v.decor_mut().set_suffix("");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(name: &str, id: &str) -> NewModel {
        NewModel {
            name: name.into(),
            id: id.into(),
        }
    }

    const FILE: &str = r#"# The gateway.
[[providers]]
name = "ollama"   # local
preset = "ollama"

# Chat models.
[[models]]
name = "chat"
targets = [{ provider = "openai", model = "gpt-4o" }]  # main

[[api_keys]]
key = "sk-x"
"#;

    #[test]
    fn a_new_model_follows_the_last_one_and_nothing_else_moves() {
        let (out, added) = add_models(FILE, "ollama", &[m("qwen3-8b", "qwen3:8b")]).unwrap();
        assert_eq!(
            out,
            FILE.replace(
                "  # main\n",
                "  # main\n\n[[models]]\nname = \"qwen3-8b\"\ntargets = [{ provider = \"ollama\", model = \"qwen3:8b\" }]\n"
            )
        );
        assert_eq!(added[0].change, Change::Added);
        let parsed: toml::Table = toml::from_str(&out).unwrap();
        assert_eq!(parsed["models"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn an_existing_model_gets_the_target_appended_once() {
        let (out, added) = add_models(
            FILE,
            "ollama",
            &[m("chat", "qwen3:8b"), m("chat", "qwen3:8b")],
        )
        .unwrap();
        assert!(out.contains(
            "targets = [{ provider = \"openai\", model = \"gpt-4o\" }, { provider = \"ollama\", model = \"qwen3:8b\" }]  # main"
        ), "{out}");
        assert_eq!(
            added.iter().map(|a| a.change).collect::<Vec<_>>(),
            [Change::Appended, Change::Unchanged]
        );
        assert!(out.starts_with("# The gateway.\n[[providers]]\nname = \"ollama\"   # local\n"));
    }

    #[test]
    fn a_chain_one_per_line_stays_one_per_line() {
        let text = "[[models]]\nname = \"chat\"\ntargets = [\n  # primary\n  { provider = \"a\", model = \"x\" },\n]\n";
        let (out, _) = add_models(text, "b", &[m("chat", "y")]).unwrap();
        assert_eq!(
            out,
            "[[models]]\nname = \"chat\"\ntargets = [\n  # primary\n  { provider = \"a\", model = \"x\" },\n  { provider = \"b\", model = \"y\" },\n]\n"
        );
    }

    #[test]
    fn tables_of_targets_get_one_more_table() {
        let text = "[[models]]\nname = \"chat\"\n\n[[models.targets]]\nprovider = \"a\"\nmodel = \"x\"\n\n[[models]]\nname = \"next\"\ntargets = []\n";
        let (out, _) = add_models(text, "b", &[m("chat", "y")]).unwrap();
        let parsed: toml::Table = toml::from_str(&out).unwrap();
        let chain = parsed["models"][0]["targets"].as_array().unwrap();
        assert_eq!(chain.len(), 2, "{out}");
        assert_eq!(chain[1]["provider"].as_str(), Some("b"));
        assert_eq!(parsed["models"][1]["name"].as_str(), Some("next"));
    }

    #[test]
    fn a_file_without_models_gets_its_first() {
        let (out, _) = add_models("[server]\nthreads = 2\n", "p", &[m("a", "a")]).unwrap();
        let parsed: toml::Table = toml::from_str(&out).unwrap();
        assert_eq!(parsed["models"][0]["name"].as_str(), Some("a"));
        assert!(out.starts_with("[server]\nthreads = 2\n"));
    }

    #[test]
    fn inline_models_are_extended_too() {
        let text =
            "models = [{ name = \"chat\", targets = [{ provider = \"a\", model = \"x\" }] }]\n";
        let (out, _) = add_models(text, "b", &[m("chat", "y"), m("new", "z")]).unwrap();
        assert_eq!(
            out,
            "models = [{ name = \"chat\", targets = [{ provider = \"a\", model = \"x\" }, { provider = \"b\", model = \"y\" }] }, { name = \"new\", targets = [{ provider = \"b\", model = \"z\" }] }]\n"
        );
    }

    #[test]
    fn a_broken_file_is_refused() {
        assert!(add_models("[[models]\n", "p", &[m("a", "a")]).is_err());
        assert!(add_models("models = 3\n", "p", &[m("a", "a")]).is_err());
    }
}
