//! A model's chain edited in the file itself (`toml_edit`): the `targets`
//! of one `[[models]]` replaced in a new order, whether written inline
//! (`targets = [{ ... }]`) or as `[[models.targets]]` tables. A target
//! that stays keeps its own formatting and any other fields; everything
//! else in the file is left byte for byte.

use std::str::FromStr;
use toml_edit::{Array, ArrayOfTables, Decor, DocumentMut, InlineTable, Item, Table, Value};

/// One entry of a chain, as the API names it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct TargetRef {
    pub provider: String,
    pub model: String,
}

#[derive(Debug, PartialEq, Eq)]
pub enum EditError {
    /// The file does not parse (its line).
    Unparsed(String),
    /// No `[[models]]` has this name.
    NoModel,
    /// `models` or the model's `targets` is not a shape this edit knows.
    Shape(String),
}

/// `text` with model `name`'s targets replaced by `targets`, in order.
pub fn set_targets(text: &str, name: &str, targets: &[TargetRef]) -> Result<String, EditError> {
    let mut doc = DocumentMut::from_str(text).map_err(|e| {
        let line = e.span().map_or(1, |s| {
            text.get(..s.start)
                .map_or(1, |t| t.matches('\n').count() + 1)
        });
        EditError::Unparsed(format!("the file does not parse (line {line})"))
    })?;
    let is_it = |v: Option<&str>| v == Some(name);
    match doc.get_mut("models") {
        Some(Item::ArrayOfTables(models)) => {
            let model = models
                .iter_mut()
                .find(|t| is_it(t.get("name").and_then(Item::as_str)))
                .ok_or(EditError::NoModel)?;
            in_table(model, targets)?;
        }
        Some(Item::Value(Value::Array(models))) => {
            let model = models
                .iter_mut()
                .filter_map(Value::as_inline_table_mut)
                .find(|t| is_it(t.get("name").and_then(Value::as_str)))
                .ok_or(EditError::NoModel)?;
            in_inline_table(model, targets)?;
        }
        None => return Err(EditError::NoModel),
        Some(_) => return Err(EditError::Shape("models: not an array of tables".into())),
    }
    Ok(doc.to_string())
}

fn in_table(model: &mut Table, targets: &[TargetRef]) -> Result<(), EditError> {
    match model.get_mut("targets") {
        Some(Item::Value(Value::Array(a))) => reorder_array(a, targets),
        Some(Item::ArrayOfTables(a)) => reorder_tables(a, targets),
        None => {
            let mut a = Array::new();
            reorder_array(&mut a, targets);
            model.insert("targets", toml_edit::value(a));
        }
        Some(_) => return Err(EditError::Shape("targets: not an array".into())),
    }
    Ok(())
}

fn in_inline_table(model: &mut InlineTable, targets: &[TargetRef]) -> Result<(), EditError> {
    match model.get_mut("targets") {
        Some(Value::Array(a)) => reorder_array(a, targets),
        None => {
            let mut a = Array::new();
            reorder_array(&mut a, targets);
            model.insert("targets", Value::Array(a));
        }
        Some(_) => return Err(EditError::Shape("targets: not an array".into())),
    }
    Ok(())
}

/// Whether a target entry (an inline or a standard table) is `t`.
fn names(provider: Option<&str>, model: Option<&str>, t: &TargetRef) -> bool {
    provider == Some(t.provider.as_str()) && model == Some(t.model.as_str())
}

/// The first entry not yet taken that is `t`.
fn take<T>(old: &[T], used: &mut [bool], is: impl Fn(&T) -> bool) -> Option<usize> {
    let j = (0..old.len()).find(|&j| !used[j] && is(&old[j]))?;
    used[j] = true;
    Some(j)
}

/// `{ provider = …, model = … }`: one chain entry.
pub(super) fn target_table(provider: &str, model: &str) -> InlineTable {
    let mut it = InlineTable::new();
    it.insert("provider", provider.into());
    it.insert("model", model.into());
    it
}

/// When every entry of an inline array starts its own line: the
/// indentation a new line takes (the first entry's, without its
/// comments). `None`: empty, or entries side by side.
pub(super) fn line_indent(entries: &[Value]) -> Option<String> {
    let prefix = |v: &Value| {
        v.decor()
            .prefix()
            .and_then(|p| p.as_str())
            .unwrap_or_default()
            .to_owned()
    };
    if entries.is_empty() || !entries.iter().all(|v| prefix(v).contains('\n')) {
        return None;
    }
    let first = entries.first().map(prefix).unwrap_or_default();
    Some(format!(
        "\n{}",
        first.rsplit('\n').next().unwrap_or_default()
    ))
}

/// An inline array: entries that stay keep their text; one per line
/// (each prefix starts a line) carries its comments along, else the
/// spacing stays by position (`[a, b]` reordered is `[b, a]`).
fn reorder_array(a: &mut Array, targets: &[TargetRef]) {
    let old: Vec<Value> = a.iter().cloned().collect();
    let line = line_indent(&old);
    let spacing: Vec<Decor> = old.iter().map(|v| v.decor().clone()).collect();
    let mut used = vec![false; old.len()];
    let mut out = Vec::with_capacity(targets.len());
    for (i, t) in targets.iter().enumerate() {
        let found = take(&old, &mut used, |v| {
            v.as_inline_table().is_some_and(|it| {
                names(
                    it.get("provider").and_then(Value::as_str),
                    it.get("model").and_then(Value::as_str),
                    t,
                )
            })
        });
        let mut v = match found {
            Some(j) => old[j].clone(),
            None => Value::InlineTable(target_table(&t.provider, &t.model)),
        };
        let decor = match (&line, found) {
            (Some(_), Some(_)) => None,
            (Some(indent), None) => Some(Decor::new(indent.as_str(), "")),
            (None, _) => Some(
                spacing
                    .get(i)
                    .cloned()
                    .unwrap_or_else(|| Decor::new(if i == 0 { "" } else { " " }, "")),
            ),
        };
        if let Some(d) = decor {
            *v.decor_mut() = d;
        }
        out.push(v);
    }
    a.clear();
    for v in out {
        a.push_formatted(v);
    }
}

/// `[[models.targets]]` tables: a table that stays keeps its comments and
/// fields; the order in the file is the tables' positions, handed out in
/// the new order.
fn reorder_tables(a: &mut ArrayOfTables, targets: &[TargetRef]) {
    let old: Vec<Table> = a.iter().cloned().collect();
    let positions: Vec<usize> = old.iter().filter_map(Table::position).collect();
    let mut used = vec![false; old.len()];
    let mut out = Vec::with_capacity(targets.len());
    for (i, t) in targets.iter().enumerate() {
        let found = take(&old, &mut used, |tb| {
            names(
                tb.get("provider").and_then(Item::as_str),
                tb.get("model").and_then(Item::as_str),
                t,
            )
        });
        let mut tb = match found {
            Some(j) => old[j].clone(),
            None => {
                let mut tb = Table::new();
                tb.insert("provider", toml_edit::value(t.provider.as_str()));
                tb.insert("model", toml_edit::value(t.model.as_str()));
                tb
            }
        };
        if let Some(p) = positions.get(i).or(positions.last()) {
            tb.set_position(*p);
        }
        out.push(tb);
    }
    a.clear();
    for tb in out {
        a.push(tb);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(provider: &str, model: &str) -> TargetRef {
        TargetRef {
            provider: provider.into(),
            model: model.into(),
        }
    }

    const INLINE: &str = r#"# Models.
[[models]]
name = "other"
targets = [{ provider = "a", model = "x" }]

[[models]]
name = "chat"   # the main one
targets = [{ provider = "a", model = "x" }, { provider = "b", model = "y" }]
max_output_tokens = 100 # cap
"#;

    #[test]
    fn an_inline_chain_is_reordered_and_nothing_else_moves() {
        let out = set_targets(INLINE, "chat", &[t("b", "y"), t("a", "x")]).unwrap();
        assert_eq!(
            out,
            INLINE.replace(
                "targets = [{ provider = \"a\", model = \"x\" }, { provider = \"b\", model = \"y\" }]",
                "targets = [{ provider = \"b\", model = \"y\" }, { provider = \"a\", model = \"x\" }]"
            )
        );
    }

    #[test]
    fn targets_are_added_and_removed() {
        let out = set_targets(INLINE, "chat", &[t("b", "y"), t("c", "z")]).unwrap();
        assert!(out.contains(
            "targets = [{ provider = \"b\", model = \"y\" }, { provider = \"c\", model = \"z\" }]"
        ), "{out}");
        assert!(out.contains("name = \"chat\"   # the main one"));
        assert!(out.contains("max_output_tokens = 100 # cap"));
    }

    #[test]
    fn a_chain_one_per_line_keeps_each_targets_comment() {
        let text = "[[models]]\nname = \"chat\"\ntargets = [\n  # primary\n  { provider = \"a\", model = \"x\" },\n  # fallback\n  { provider = \"b\", model = \"y\" },\n]\n";
        let out = set_targets(text, "chat", &[t("b", "y"), t("a", "x"), t("c", "z")]).unwrap();
        assert_eq!(
            out,
            "[[models]]\nname = \"chat\"\ntargets = [\n  # fallback\n  { provider = \"b\", model = \"y\" },\n  # primary\n  { provider = \"a\", model = \"x\" },\n  { provider = \"c\", model = \"z\" },\n]\n"
        );
    }

    #[test]
    fn tables_of_targets_are_reordered_with_their_comments() {
        let text = "[[models]]\nname = \"chat\"\n\n# first choice\n[[models.targets]]\nprovider = \"a\"\nmodel = \"x\"\n\n# backup\n[[models.targets]]\nprovider = \"b\"\nmodel = \"y\"\n\n[[models]]\nname = \"next\"\ntargets = []\n";
        let out = set_targets(text, "chat", &[t("b", "y"), t("a", "x")]).unwrap();
        assert_eq!(
            out,
            "[[models]]\nname = \"chat\"\n\n# backup\n[[models.targets]]\nprovider = \"b\"\nmodel = \"y\"\n\n# first choice\n[[models.targets]]\nprovider = \"a\"\nmodel = \"x\"\n\n[[models]]\nname = \"next\"\ntargets = []\n"
        );
        let out = set_targets(text, "chat", &[t("b", "y"), t("c", "z")]).unwrap();
        let parsed: toml::Table = toml::from_str(&out).unwrap();
        let chain = parsed["models"][0]["targets"].as_array().unwrap();
        assert_eq!(chain.len(), 2);
        assert_eq!(chain[1]["provider"].as_str(), Some("c"), "{out}");
        assert!(out.contains("name = \"next\""));
    }

    #[test]
    fn inline_models_are_edited_too() {
        let text =
            "models = [{ name = \"chat\", targets = [{ provider = \"a\", model = \"x\" }] }]\n";
        let out = set_targets(text, "chat", &[t("b", "y")]).unwrap();
        assert_eq!(
            out,
            "models = [{ name = \"chat\", targets = [{ provider = \"b\", model = \"y\" }] }]\n"
        );
    }

    #[test]
    fn an_unknown_model_is_not_found() {
        assert_eq!(
            set_targets(INLINE, "nope", &[t("a", "x")]),
            Err(EditError::NoModel)
        );
        assert_eq!(set_targets("", "nope", &[]), Err(EditError::NoModel));
        assert!(matches!(
            set_targets("[[models]\n", "x", &[]),
            Err(EditError::Unparsed(_))
        ));
    }
}
