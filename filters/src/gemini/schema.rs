//! Tool and response schemas between JSON Schema (the canonical form) and
//! the OpenAPI-3.0 subset Gemini's `parameters` / `responseSchema` take.
//!
//! Why `parameters` and not `parametersJsonSchema`: every Gemini model and
//! Vertex accept `parameters`, while `parametersJsonSchema` arrived with 2.5
//! and Gemini-compatible servers often lack it. The price is a lossy
//! cleaning, done by a whitelist because Gemini rejects the whole request on
//! the first keyword it does not know (`Unknown name "$schema"`,
//! `"additionalProperties"`, `"const"`, ...): `$ref`s are inlined from
//! `$defs` (recursion becomes a plain object), `allOf` is merged, `oneOf`
//! becomes `anyOf`, `null` in a type or `anyOf` becomes `nullable`,
//! exclusive bounds become inclusive ones, `const` becomes a one-value
//! `enum`, non-string enums and unknown formats are dropped, `required`
//! keeps only declared properties, and an array without `items` gets string
//! items (Gemini answers `items: missing field` otherwise).

use serde_json::{json, Map, Value};

/// Deepest schema nesting kept; deeper subschemas become a plain object.
const MAX_DEPTH: usize = 32;
/// How many `$ref`s may be open at once (a chain through `$defs`).
const MAX_REF_DEPTH: usize = 8;
/// Subschemas written in all; bounds what `$ref` inlining can multiply to.
const MAX_NODES: usize = 10_000;

/// A JSON Schema as Gemini's `parameters` (root always an object: Gemini
/// refuses parameter-less declarations under mode `ANY`).
pub(super) fn parameters(schema: &Value) -> Value {
    let mut out = response_schema(schema);
    if out.get("type").and_then(Value::as_str) != Some("object") {
        out = json!({"type": "object"});
    }
    if out.get("properties").is_none() {
        out["properties"] = json!({});
    }
    out
}

/// A JSON Schema as Gemini's `responseSchema`.
pub(super) fn response_schema(schema: &Value) -> Value {
    let mut cx = Cleaner {
        root: schema,
        refs: Vec::new(),
        nodes: 0,
    };
    cx.clean(schema, 0)
}

struct Cleaner<'a> {
    root: &'a Value,
    /// `$ref`s being inlined, innermost last (to spot recursion).
    refs: Vec<&'a str>,
    nodes: usize,
}

fn object_type() -> Value {
    json!({"type": "object"})
}

impl<'a> Cleaner<'a> {
    fn clean(&mut self, s: &'a Value, depth: usize) -> Value {
        self.nodes += 1;
        let Some(obj) = s.as_object() else {
            return json!({}); // `true` / `{}`-like schemas: anything
        };
        if depth > MAX_DEPTH || self.nodes > MAX_NODES {
            return object_type();
        }
        if let Some(r) = obj.get("$ref").and_then(Value::as_str) {
            return self.inline_ref(r, obj, depth);
        }
        if let Some(all) = obj.get("allOf").and_then(Value::as_array) {
            // The merged schema lives only here; its `$ref`s still resolve
            // against the root, which outlives it.
            // A `$ref` member is merged as what it points to.
            let resolved: Vec<&Value> = all
                .iter()
                .map(|a| {
                    a.get("$ref")
                        .and_then(Value::as_str)
                        .and_then(|r| self.resolve(r))
                        .unwrap_or(a)
                })
                .collect();
            let merged = merge_all_of(obj, &resolved);
            let mut inner = Cleaner {
                root: self.root,
                refs: self.refs.clone(),
                nodes: self.nodes,
            };
            let out = inner.clean(&merged, depth);
            self.nodes = inner.nodes;
            return out;
        }
        let mut out = Map::new();
        let mut nullable = obj.get("nullable").and_then(Value::as_bool) == Some(true);
        let ty = self.clean_type(obj, &mut nullable);
        if let Some(t) = &ty {
            out.insert("type".into(), json!(t));
        }
        for k in ["title", "description", "pattern"] {
            if let Some(v) = obj.get(k).filter(|v| v.is_string()) {
                out.insert(k.into(), v.clone());
            }
        }
        copy_counts(obj, &mut out);
        bounds(obj, ty.as_deref(), &mut out);
        enums(obj, &mut out, &mut nullable);
        if let Some(f) = obj.get("format").and_then(Value::as_str) {
            if matches!(f, "enum" | "date-time") && out.get("type") == Some(&json!("string")) {
                out.insert("format".into(), json!(f));
            }
        }
        self.structure(obj, &mut out, depth);
        self.any_of(obj, &mut out, &mut nullable, depth);
        if nullable {
            out.insert("nullable".into(), json!(true));
        }
        Value::Object(out)
    }

    /// `type`, with `null` folded into `nullable` and the type inferred
    /// from the schema's shape when absent.
    fn clean_type(&self, obj: &Map<String, Value>, nullable: &mut bool) -> Option<String> {
        let declared = match obj.get("type") {
            Some(Value::String(t)) => Some(t.to_ascii_lowercase()),
            Some(Value::Array(ts)) => {
                let names: Vec<String> = ts
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_ascii_lowercase)
                    .collect();
                *nullable |= names.iter().any(|t| t == "null");
                names.into_iter().find(|t| t != "null")
            }
            _ => None,
        };
        let declared = match declared.as_deref() {
            Some("null") => {
                *nullable = true;
                None
            }
            _ => declared,
        };
        declared.or_else(|| {
            if obj.contains_key("properties") {
                Some("object".into())
            } else if obj.contains_key("items") {
                Some("array".into())
            } else if obj.contains_key("enum") || obj.contains_key("const") {
                Some("string".into())
            } else {
                None
            }
        })
    }

    /// `properties`, `required`, `items`.
    fn structure(
        &mut self,
        obj: &'a Map<String, Value>,
        out: &mut Map<String, Value>,
        depth: usize,
    ) {
        if let Some(props) = obj.get("properties").and_then(Value::as_object) {
            let cleaned: Map<String, Value> = props
                .iter()
                .map(|(k, v)| (k.clone(), self.clean(v, depth + 1)))
                .collect();
            let required: Vec<Value> = obj
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter(|r| r.as_str().is_some_and(|r| cleaned.contains_key(r)))
                .cloned()
                .collect();
            if !required.is_empty() {
                out.insert("required".into(), Value::Array(required));
            }
            if let Some(order) = obj.get("propertyOrdering").filter(|o| {
                o.as_array().is_some_and(|a| {
                    a.iter()
                        .all(|k| k.as_str().is_some_and(|k| cleaned.contains_key(k)))
                })
            }) {
                out.insert("propertyOrdering".into(), order.clone());
            }
            if !cleaned.is_empty() {
                out.insert("properties".into(), Value::Object(cleaned));
            }
        }
        let items = match obj.get("items") {
            Some(Value::Array(tuple)) => tuple.first().map(|i| self.clean(i, depth + 1)),
            Some(i @ Value::Object(_)) => Some(self.clean(i, depth + 1)),
            _ => None,
        };
        match items {
            Some(i) => {
                out.insert("items".into(), i);
            }
            None if out.get("type") == Some(&json!("array")) => {
                out.insert("items".into(), json!({"type": "string"}));
            }
            None => {}
        }
    }

    /// `anyOf` / `oneOf`: `null` alternatives become `nullable`; a single
    /// remaining alternative is merged into this schema.
    fn any_of(
        &mut self,
        obj: &'a Map<String, Value>,
        out: &mut Map<String, Value>,
        nullable: &mut bool,
        depth: usize,
    ) {
        let Some(alts) = obj
            .get("anyOf")
            .or_else(|| obj.get("oneOf"))
            .and_then(Value::as_array)
        else {
            return;
        };
        let mut cleaned = Vec::new();
        for a in alts {
            let c = self.clean(a, depth + 1);
            let is_null = c.get("nullable") == Some(&json!(true))
                && c.as_object().is_some_and(|o| o.len() == 1);
            if is_null {
                *nullable = true;
            } else {
                cleaned.push(c);
            }
        }
        match cleaned.len() {
            0 => {}
            1 => {
                if let Some(Value::Object(only)) = cleaned.pop() {
                    for (k, v) in only {
                        // The outer schema's own words (description) win.
                        out.entry(k).or_insert(v);
                    }
                }
            }
            _ => {
                out.remove("type");
                out.insert("anyOf".into(), Value::Array(cleaned));
            }
        }
    }

    /// What `#/$defs/X`, `#/definitions/X` or `#` points to.
    fn resolve(&self, r: &str) -> Option<&'a Value> {
        r.strip_prefix("#/$defs/")
            .and_then(|n| self.root.get("$defs")?.get(n))
            .or_else(|| {
                r.strip_prefix("#/definitions/")
                    .and_then(|n| self.root.get("definitions")?.get(n))
            })
            .or_else(|| (r == "#").then_some(self.root))
    }

    /// Inlines `#/$defs/X` or `#/definitions/X`; recursion, long chains and
    /// refs elsewhere become a plain object.
    fn inline_ref(&mut self, r: &'a str, obj: &Map<String, Value>, depth: usize) -> Value {
        let mut out = match self.resolve(r) {
            Some(t) if self.refs.len() < MAX_REF_DEPTH && !self.refs.contains(&r) => {
                self.refs.push(r);
                let v = self.clean(t, depth + 1);
                self.refs.pop();
                v
            }
            _ => object_type(),
        };
        if let (Some(d), Some(o)) = (obj.get("description"), out.as_object_mut()) {
            o.insert("description".into(), d.clone());
        }
        out
    }
}

/// `allOf` folded into one schema: properties and required lists united,
/// other keywords first-wins (the outer schema's own first).
fn merge_all_of(obj: &Map<String, Value>, all: &[&Value]) -> Value {
    let mut merged: Map<String, Value> = obj
        .iter()
        .filter(|(k, _)| k.as_str() != "allOf")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for part in all.iter().filter_map(|a| a.as_object()) {
        for (k, v) in part {
            match (k.as_str(), merged.get_mut(k), v) {
                ("properties", Some(Value::Object(have)), Value::Object(more)) => {
                    for (pk, pv) in more {
                        have.entry(pk.clone()).or_insert_with(|| pv.clone());
                    }
                }
                ("required", Some(Value::Array(have)), Value::Array(more)) => {
                    for r in more {
                        if !have.contains(r) {
                            have.push(r.clone());
                        }
                    }
                }
                (_, Some(_), _) => {}
                (_, None, _) => {
                    merged.insert(k.clone(), v.clone());
                }
            }
        }
    }
    Value::Object(merged)
}

/// Length and count limits, when they are non-negative integers.
fn copy_counts(obj: &Map<String, Value>, out: &mut Map<String, Value>) {
    for k in [
        "minItems",
        "maxItems",
        "minLength",
        "maxLength",
        "minProperties",
        "maxProperties",
    ] {
        if let Some(n) = obj.get(k).and_then(Value::as_u64) {
            out.insert(k.into(), json!(n));
        }
    }
}

/// `minimum` / `maximum`, with exclusive bounds (a number in draft 6+, a
/// flag beside the bound in draft 4) made inclusive: ±1 for integers.
fn bounds(obj: &Map<String, Value>, ty: Option<&str>, out: &mut Map<String, Value>) {
    let integer = ty == Some("integer");
    for (inclusive, exclusive, step) in [
        ("minimum", "exclusiveMinimum", 1i64),
        ("maximum", "exclusiveMaximum", -1),
    ] {
        let bound = match obj.get(exclusive) {
            Some(Value::Number(n)) => Some((n.clone(), true)),
            Some(Value::Bool(true)) => obj
                .get(inclusive)
                .and_then(Value::as_number)
                .map(|n| (n.clone(), true)),
            _ => obj
                .get(inclusive)
                .and_then(Value::as_number)
                .map(|n| (n.clone(), false)),
        };
        let Some((n, exclusive)) = bound else {
            continue;
        };
        let v = match (integer && exclusive, n.as_i64()) {
            (true, Some(i)) => json!(i.saturating_add(step)),
            _ => Value::Number(n),
        };
        out.insert(inclusive.into(), v);
    }
}

/// `enum` (strings only, as Gemini requires) and `const`; `null` values
/// become `nullable`.
fn enums(obj: &Map<String, Value>, out: &mut Map<String, Value>, nullable: &mut bool) {
    let values: Vec<Value> = match (obj.get("enum"), obj.get("const")) {
        (Some(Value::Array(v)), _) => v.clone(),
        (None, Some(c)) => vec![c.clone()],
        _ => return,
    };
    if values.iter().any(Value::is_null) {
        *nullable = true;
    }
    let strings: Vec<Value> = values.into_iter().filter(|v| !v.is_null()).collect();
    if strings.is_empty() || !strings.iter().all(Value::is_string) {
        return; // a number enum cannot be said in Gemini's string enums
    }
    if out.get("type").is_some_and(|t| t != "string") {
        return;
    }
    out.insert("type".into(), json!("string"));
    out.insert("enum".into(), Value::Array(strings));
}

/// Gemini `parameters` / `responseSchema` (OpenAPI style: upper-case types,
/// `nullable`) as JSON Schema for the canonical tool.
pub(super) fn to_json_schema(s: &Value) -> Value {
    to_json_schema_at(s, 0)
}

fn to_json_schema_at(s: &Value, depth: usize) -> Value {
    let Some(obj) = s.as_object() else {
        return s.clone();
    };
    if depth > MAX_DEPTH {
        return object_type();
    }
    let mut out = Map::new();
    for (k, v) in obj {
        let v = match (k.as_str(), v) {
            ("type", Value::String(t)) => json!(t.to_ascii_lowercase()),
            ("properties", Value::Object(props)) => Value::Object(
                props
                    .iter()
                    .map(|(pk, pv)| (pk.clone(), to_json_schema_at(pv, depth + 1)))
                    .collect(),
            ),
            ("items", v) => to_json_schema_at(v, depth + 1),
            ("anyOf", Value::Array(alts)) => Value::Array(
                alts.iter()
                    .map(|a| to_json_schema_at(a, depth + 1))
                    .collect(),
            ),
            ("nullable" | "propertyOrdering", _) => continue,
            _ => v.clone(),
        };
        out.insert(k.clone(), v);
    }
    if obj.get("nullable").and_then(Value::as_bool) == Some(true) {
        if let Some(Value::String(t)) = out.get("type").cloned() {
            out.insert("type".into(), json!([t, "null"]));
        }
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claude_code_schema_is_cleaned() {
        let s = json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "type": "object", "additionalProperties": false,
            "properties": {
                "command": {"type": "string", "description": "cmd", "default": "ls"},
                "timeout": {"type": "integer", "exclusiveMinimum": 0, "maximum": 9007199254740991u64},
                "ratio": {"type": "number", "exclusiveMaximum": 1.5},
                "mode": {"type": ["string", "null"], "enum": ["a", "b", null]},
                "kind": {"const": "fixed"},
                "level": {"type": "integer", "enum": [1, 2]},
                "when": {"type": "string", "format": "date-time"},
                "uri": {"type": "string", "format": "uri"},
                "tags": {"type": "array"},
                "pair": {"type": "array", "items": [{"type": "string"}, {"type": "number"}]},
                "opt": {"anyOf": [{"type": "string"}, {"type": "null"}], "description": "maybe"},
                "either": {"oneOf": [{"type": "string"}, {"type": "integer"}]},
                "free": {"type": "object", "patternProperties": {"x": {}}}
            },
            "required": ["command", "ghost"]
        });
        let p = parameters(&s);
        let props = &p["properties"];
        assert!(p.get("$schema").is_none() && p.get("additionalProperties").is_none());
        assert_eq!(p["required"], json!(["command"]));
        assert_eq!(
            props["command"],
            json!({"type": "string", "description": "cmd"})
        );
        assert_eq!(props["timeout"]["minimum"], 1);
        assert!(props["timeout"].get("exclusiveMinimum").is_none());
        assert_eq!(props["ratio"]["maximum"], 1.5);
        assert_eq!(
            props["mode"],
            json!({"type": "string", "enum": ["a", "b"], "nullable": true})
        );
        assert_eq!(props["kind"], json!({"type": "string", "enum": ["fixed"]}));
        assert_eq!(props["level"], json!({"type": "integer"}));
        assert_eq!(props["when"]["format"], "date-time");
        assert!(props["uri"].get("format").is_none());
        assert_eq!(props["tags"]["items"], json!({"type": "string"}));
        assert_eq!(props["pair"]["items"], json!({"type": "string"}));
        assert_eq!(
            props["opt"],
            json!({"type": "string", "description": "maybe", "nullable": true})
        );
        assert_eq!(
            props["either"]["anyOf"],
            json!([{"type": "string"}, {"type": "integer"}])
        );
        assert_eq!(props["free"], json!({"type": "object"}));
    }

    #[test]
    fn refs_are_inlined_and_recursion_stops() {
        let s = json!({
            "type": "object",
            "properties": {
                "a": {"$ref": "#/$defs/A", "description": "the a"},
                "node": {"$ref": "#/definitions/Node"},
                "both": {"allOf": [{"$ref": "#/$defs/A"}, {"properties": {"z": {"type": "boolean"}}, "required": ["z"]}]}
            },
            "$defs": {"A": {"type": "object", "properties": {"x": {"type": "string"}}, "required": ["x"]}},
            "definitions": {"Node": {"type": "object", "properties": {"next": {"$ref": "#/definitions/Node"}}}}
        });
        let p = parameters(&s);
        assert!(p.get("$defs").is_none());
        assert_eq!(p["properties"]["a"]["properties"]["x"]["type"], "string");
        assert_eq!(p["properties"]["a"]["description"], "the a");
        assert_eq!(
            p["properties"]["node"]["properties"]["next"],
            json!({"type": "object"})
        );
        assert_eq!(p["properties"]["both"]["required"], json!(["x", "z"]));
        assert_eq!(
            p["properties"]["both"]["properties"]["z"]["type"],
            "boolean"
        );
    }

    #[test]
    fn parameterless_tools_still_get_an_object() {
        assert_eq!(
            parameters(&json!({})),
            json!({"type": "object", "properties": {}})
        );
        assert_eq!(
            parameters(&json!({"type": "object", "properties": {}})),
            json!({"type": "object", "properties": {}})
        );
    }

    #[test]
    fn a_ref_bomb_stays_bounded() {
        let mut defs = Map::new();
        for i in 0..20 {
            defs.insert(
                format!("D{i}"),
                json!({"type": "object", "properties": {
                    "l": {"$ref": format!("#/$defs/D{}", i + 1)},
                    "r": {"$ref": format!("#/$defs/D{}", i + 1)},
                    "m": {"$ref": format!("#/$defs/D{}", i + 1)}}}),
            );
        }
        let s = json!({"$ref": "#/$defs/D0", "$defs": defs});
        let out = response_schema(&s).to_string();
        assert!(out.len() < 2_000_000, "{}", out.len());
    }

    #[test]
    fn gemini_schemas_read_back_as_json_schema() {
        let g = json!({"type": "OBJECT", "properties": {"n": {"type": "STRING", "nullable": true},
            "xs": {"type": "ARRAY", "items": {"type": "INTEGER"}}}, "propertyOrdering": ["n", "xs"]});
        assert_eq!(
            to_json_schema(&g),
            json!({"type": "object", "properties": {"n": {"type": ["string", "null"]},
                "xs": {"type": "array", "items": {"type": "integer"}}}})
        );
    }
}
