//! Gemini content parts ⇄ canonical parts, shared by requests, responses
//! and streams.
//!
//! Signatures. Gemini signs *parts*: a `thoughtSignature` may ride on a
//! thought, on a text part, or on a `functionCall` (Gemini 3 requires it on
//! the first call of a step, at that place). Canonical has a signature slot
//! only on `Reasoning`, so:
//! - decoding, a Gemini-minted signature on a thought part stays on that
//!   part's `Reasoning`; on any other part it becomes a signature-only
//!   `Reasoning` (empty text) placed just before the part;
//! - encoding, a signature-only `Reasoning` lends its signature to the
//!   first later `functionCall` of the same turn that has none (so it lands
//!   back on its call, even after another dialect moved reasoning to the
//!   front), else to the next text or media part, or is sent alone as
//!   `{"text":"","thoughtSignature"}` when no such part follows. Gemini
//!   never signs a text part ahead of an unsigned call of the same turn (a
//!   step's signature sits on its first call), so this restores its layout.
//!
//! A foreign signature (another vendor's, tagged by `signature_to_client`)
//! reaches a Gemini client base64-encoded: google-genai reads
//! `thoughtSignature` as base64 bytes and refuses a whole answer whose
//! signature is not. It signs a whole reasoning text, which a Gemini
//! client may hold as several thought parts: decoding folds the run of
//! unsigned reasoning right before it into one `Reasoning` with that
//! signature.

use crate::canonical::*;
use crate::error::ApiError;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde_json::{json, Value};

/// `base64("modelswitch-")`: how every tagged token starts once encoded
/// for a Gemini client (12 bytes, so the prefix does not depend on what
/// follows). Gemini's own signatures are base64 of opaque bytes that never
/// start so.
pub(super) const TAGGED_BASE64_PREFIX: &str = "bW9kZWxzd2l0Y2gt";

/// A canonical signature as a Gemini client should carry it: Gemini's raw,
/// any other vendor's tagged and base64-encoded.
pub(super) fn client_signature(canonical: &str) -> String {
    if let Some(raw) = signature_issued_by(canonical, Issuer::Gemini) {
        return raw.to_owned();
    }
    BASE64.encode(signature_to_client(canonical, Issuer::Gemini))
}

/// The inverse of [`client_signature`], for a token a Gemini client replays.
pub(super) fn signature_from_gemini_client(wire: &str) -> String {
    let tagged = wire
        .strip_prefix(TAGGED_BASE64_PREFIX)
        .and_then(|_| BASE64.decode(wire).ok())
        .and_then(|b| String::from_utf8(b).ok());
    signature_from_client(tagged.as_deref().unwrap_or(wire), Issuer::Gemini)
}

/// `v[camel]`, else `v[snake]`: Google's JSON parsers take both spellings
/// and its own curl examples use snake_case.
pub(super) fn get<'a>(v: &'a Value, camel: &str, snake: &str) -> Option<&'a Value> {
    v.get(camel).or_else(|| v.get(snake))
}

pub(super) fn get_str<'a>(v: &'a Value, camel: &str, snake: &str) -> Option<&'a str> {
    get(v, camel, snake).and_then(Value::as_str)
}

/// A part's `thoughtSignature`, raw.
pub(super) fn signature(p: &Value) -> Option<&str> {
    get_str(p, "thoughtSignature", "thought_signature").filter(|s| !s.is_empty())
}

/// One wire part, read.
pub(super) enum WirePart {
    Text(String),
    Thought(String),
    Media(Part),
    Call {
        id: Option<String>,
        name: String,
        arguments: String,
    },
    Response {
        id: Option<String>,
        name: String,
        content: Vec<Part>,
        is_error: bool,
    },
    /// Nothing another dialect could use (`videoMetadata`, unknown kinds).
    Skip,
}

/// Reads part `p`; `at` names it in errors (`contents[2].parts[0]`).
pub(super) fn read_part(p: &Value, at: &str) -> Result<WirePart, ApiError> {
    if !p.is_object() {
        return Err(ApiError::invalid(format!("{at}: expected a part object")).with_param(at));
    }
    if let Some(t) = p.get("text") {
        let t = t.as_str().ok_or_else(|| {
            ApiError::invalid(format!("{at}.text must be a string")).with_param(at)
        })?;
        let thought = p.get("thought").and_then(Value::as_bool) == Some(true);
        return Ok(if thought {
            WirePart::Thought(t.to_owned())
        } else {
            WirePart::Text(t.to_owned())
        });
    }
    if let Some(d) = get(p, "inlineData", "inline_data") {
        let data = d.get("data").and_then(Value::as_str).ok_or_else(|| {
            ApiError::invalid(format!("{at}.inlineData.data is required")).with_param(at)
        })?;
        let mime = get_str(d, "mimeType", "mime_type").unwrap_or("application/octet-stream");
        return Ok(WirePart::Media(media_part(
            mime,
            Media::Base64 {
                mime: mime.to_owned(),
                data: data.to_owned(),
            },
        )));
    }
    if let Some(f) = get(p, "fileData", "file_data") {
        let uri = get_str(f, "fileUri", "file_uri").ok_or_else(|| {
            ApiError::invalid(format!("{at}.fileData.fileUri is required")).with_param(at)
        })?;
        let mime = get_str(f, "mimeType", "mime_type").unwrap_or_else(|| guess_mime(uri, false));
        return Ok(WirePart::Media(media_part(
            mime,
            Media::Url(uri.to_owned()),
        )));
    }
    if let Some(fc) = get(p, "functionCall", "function_call") {
        return read_call(fc, at);
    }
    if let Some(fr) = get(p, "functionResponse", "function_response") {
        return Ok(read_response(fr));
    }
    Ok(code_text(p).map_or(WirePart::Skip, WirePart::Text))
}

fn read_call(fc: &Value, at: &str) -> Result<WirePart, ApiError> {
    let name = fc.get("name").and_then(Value::as_str).ok_or_else(|| {
        ApiError::invalid(format!("{at}.functionCall.name is required")).with_param(at)
    })?;
    let arguments = arguments_text(fc.get("args").unwrap_or(&Value::Null))
        .map_err(|e| e.with_param(format!("{at}.functionCall.args")))?;
    Ok(WirePart::Call {
        id: non_empty(fc.get("id")),
        name: name.to_owned(),
        arguments,
    })
}

/// A `functionResponse`: `{"result": x}` and `{"error": x}` (google-genai's
/// own convention) unwrap to `x`; any other object is kept as JSON text.
fn read_response(fr: &Value) -> WirePart {
    let plain = |v: &Value| v.as_str().map_or_else(|| v.to_string(), str::to_owned);
    let (text, is_error) = match fr.get("response") {
        None | Some(Value::Null) => (String::new(), false),
        Some(Value::Object(o)) if o.len() == 1 && o.contains_key("result") => {
            (o.get("result").map(plain).unwrap_or_default(), false)
        }
        Some(Value::Object(o)) if o.len() == 1 && o.contains_key("error") => {
            (o.get("error").map(plain).unwrap_or_default(), true)
        }
        Some(v) => (v.to_string(), false),
    };
    let mut content = Vec::new();
    if !text.is_empty() {
        content.push(Part::Text(TextPart { text, cache: false }));
    }
    // Multimodal function responses (newer models) carry media parts.
    for p in fr
        .get("parts")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Ok(WirePart::Media(m)) = read_part(p, "functionResponse.parts") {
            content.push(m);
        }
    }
    WirePart::Response {
        id: non_empty(fr.get("id")),
        name: str_at(fr, "name").to_owned(),
        content,
        is_error,
    }
}

/// Code execution parts, as fenced text for dialects that have no such part.
fn code_text(p: &Value) -> Option<String> {
    if let Some(c) = get(p, "executableCode", "executable_code") {
        let lang = str_at(c, "language").to_ascii_lowercase();
        let lang = if lang == "language_unspecified" {
            ""
        } else {
            &lang
        };
        return Some(format!("```{lang}\n{}\n```\n", str_at(c, "code")));
    }
    let r = get(p, "codeExecutionResult", "code_execution_result")?;
    Some(format!("```\n{}\n```\n", str_at(r, "output")))
}

fn non_empty(v: Option<&Value>) -> Option<String> {
    v.and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

fn media_part(mime: &str, m: Media) -> Part {
    if mime.starts_with("image/") {
        Part::Image(m)
    } else {
        Part::Document(m)
    }
}

/// A MIME type from a URI's extension, for `fileData` which requires one.
pub(super) fn guess_mime(uri: &str, image: bool) -> &'static str {
    let path = uri.split(['?', '#']).next().unwrap_or_default();
    let ext = path.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
    match ext.as_deref() {
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("gif") => "image/gif",
        Some("webp") => "image/webp",
        Some("pdf") => "application/pdf",
        Some("txt") => "text/plain",
        Some("mp3") => "audio/mp3",
        Some("wav") => "audio/wav",
        Some("mp4") => "video/mp4",
        _ if image => "image/jpeg",
        _ => "application/pdf",
    }
}

/// Files a part's signature (canonical form) into `parts`, with the thought
/// text it rode on if any (see the module comment for the rule).
pub(super) fn push_signature(parts: &mut Vec<Part>, sig: String, thought: Option<String>) {
    let own = signature_issued_by(&sig, Issuer::Gemini).is_some();
    let start = if own {
        parts.len()
    } else {
        parts
            .iter()
            .rposition(|p| !matches!(p, Part::Reasoning(r) if r.signature.is_none() && r.redacted.is_none()))
            .map_or(0, |i| i + 1)
    };
    let mut text: String = parts
        .drain(start..)
        .map(|p| match p {
            Part::Reasoning(r) => r.text,
            _ => String::new(),
        })
        .collect();
    text.push_str(thought.as_deref().unwrap_or_default());
    parts.push(Part::Reasoning(Reasoning {
        text,
        signature: Some(sig),
        redacted: None,
    }));
}

/// Who encoded parts go to: an upstream gets only the signatures Gemini
/// minted, a client every signature (foreign ones tagged).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Audience {
    Upstream,
    Client,
}

fn wire_signature(sig: &str, to: Audience) -> Option<String> {
    match to {
        Audience::Upstream => signature_issued_by(sig, Issuer::Gemini).map(str::to_owned),
        Audience::Client => Some(client_signature(sig)),
    }
}

pub(super) fn media_value(m: &Media, image: bool) -> Value {
    match m {
        Media::Base64 { mime, data } => json!({"inlineData": {"mimeType": mime, "data": data}}),
        Media::Url(u) => json!({"fileData": {"mimeType": guess_mime(u, image), "fileUri": u}}),
        Media::Text(t) => json!({"text": t}),
    }
}

/// `args` must be an object: arguments that are not one become `{}`.
pub(super) fn call_value(id: &str, name: &str, arguments: &str, with_id: bool) -> Value {
    let args = serde_json::from_str::<Value>(arguments)
        .ok()
        .filter(Value::is_object)
        .unwrap_or_else(|| json!({}));
    let mut fc = json!({"name": name, "args": args});
    if with_id && !id.is_empty() {
        fc["id"] = json!(id);
    }
    json!({ "functionCall": fc })
}

/// Canonical parts → Gemini parts, appended to `out`. Tool results are the
/// caller's (they need the call's name); empty text is dropped.
pub(super) fn encode_parts(parts: &[Part], to: Audience, out: &mut Vec<Value>) {
    let mut lent = lend_signatures(parts, to);
    for (p, sig) in parts.iter().zip(lent.iter_mut()) {
        let mut v = match p {
            Part::Reasoning(r) if r.text.is_empty() => {
                // A signature no part could take goes alone.
                if let Some(s) = sig.take() {
                    out.push(json!({"text": "", "thoughtSignature": s}));
                }
                continue;
            }
            Part::Reasoning(r) => {
                match r.signature.as_deref().and_then(|s| wire_signature(s, to)) {
                    Some(s) => json!({"text": r.text, "thought": true, "thoughtSignature": s}),
                    // Unsigned or foreign reasoning never goes upstream.
                    None if to == Audience::Upstream => continue,
                    None => json!({"text": r.text, "thought": true}),
                }
            }
            Part::Text(t) if t.text.is_empty() => continue,
            Part::Text(t) => json!({"text": t.text}),
            Part::Image(m) => media_value(m, true),
            Part::Document(m) => media_value(m, false),
            Part::ToolCall(c) => call_value(&c.id, &c.name, &c.arguments, to == Audience::Client),
            Part::ToolResult(_) => continue,
        };
        if let Some(s) = sig.take() {
            v["thoughtSignature"] = json!(s);
        }
        out.push(v);
    }
}

/// Where each signature-only reasoning's signature goes, by part index:
/// onto the first later `functionCall` not yet signed (where Gemini wants
/// it, even when another dialect moved reasoning to the front), else the
/// first later text or media part not yet signed, else its own index
/// (sent alone).
fn lend_signatures(parts: &[Part], to: Audience) -> Vec<Option<String>> {
    let mut at: Vec<Option<String>> = vec![None; parts.len()];
    for (i, p) in parts.iter().enumerate() {
        let Part::Reasoning(r) = p else { continue };
        let Some(s) = r
            .signature
            .as_deref()
            .filter(|_| r.text.is_empty())
            .and_then(|s| wire_signature(s, to))
        else {
            continue;
        };
        let later = || (i + 1..parts.len()).filter(|&j| at[j].is_none());
        let target = later()
            .find(|&j| matches!(parts[j], Part::ToolCall(_)))
            .or_else(|| later().find(|&j| carries_signature(&parts[j])))
            .unwrap_or(i);
        at[target] = Some(s);
    }
    at
}

fn carries_signature(p: &Part) -> bool {
    match p {
        Part::Text(t) => !t.text.is_empty(),
        Part::Image(_) | Part::Document(_) => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reasoning(text: &str, sig: Option<&str>) -> Part {
        Part::Reasoning(Reasoning {
            text: text.into(),
            signature: sig.map(str::to_owned),
            redacted: None,
        })
    }

    #[test]
    fn a_signature_only_reasoning_rides_on_the_next_call() {
        let g = signature_minted(Issuer::Gemini, "SIG");
        let parts = vec![
            reasoning("", Some(&g)),
            Part::ToolCall(ToolCall {
                id: "call_1".into(),
                name: "f".into(),
                arguments: r#"{"a":1}"#.into(),
            }),
            reasoning("", Some(&g)),
        ];
        let mut out = Vec::new();
        encode_parts(&parts, Audience::Upstream, &mut out);
        assert_eq!(
            out,
            vec![
                json!({"functionCall": {"name": "f", "args": {"a": 1}}, "thoughtSignature": "SIG"}),
                json!({"text": "", "thoughtSignature": "SIG"}),
            ]
        );
    }

    #[test]
    fn foreign_reasoning_is_never_sent_upstream_but_reaches_clients_tagged() {
        let parts = vec![
            reasoning("think", Some("anthropic-sig")),
            reasoning("bare", None),
        ];
        let mut up = Vec::new();
        encode_parts(&parts, Audience::Upstream, &mut up);
        assert!(up.is_empty());
        let mut client = Vec::new();
        encode_parts(&parts, Audience::Client, &mut client);
        let wire = client[0]["thoughtSignature"].as_str().unwrap();
        assert_eq!(
            BASE64.decode(wire).unwrap(),
            b"modelswitch-anthropic:anthropic-sig"
        );
        assert_eq!(signature_from_gemini_client(wire), "anthropic-sig");
        assert_eq!(client[1], json!({"text": "bare", "thought": true}));
    }

    #[test]
    fn a_foreign_signature_folds_the_thoughts_before_it() {
        let mut parts = vec![
            Part::Text(TextPart {
                text: "x".into(),
                cache: false,
            }),
            reasoning("a", None),
            reasoning("b", None),
        ];
        push_signature(&mut parts, "anthropic-sig".into(), None);
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[1], reasoning("ab", Some("anthropic-sig")));
        let g = signature_minted(Issuer::Gemini, "g");
        push_signature(&mut parts, g.clone(), Some("c".into()));
        assert_eq!(parts[2], reasoning("c", Some(&g)));
    }

    #[test]
    fn client_signatures_are_base64_and_come_back_canonical() {
        for canonical in [
            signature_minted(Issuer::Gemini, "R2VtaW5p"),
            signature_minted(Issuer::Anthropic, "EqQBCkYIBRgCIkD+/="),
            signature_minted(Issuer::OpenAi, "gAAAAB"),
        ] {
            let wire = client_signature(&canonical);
            assert!(BASE64.decode(&wire).is_ok(), "{wire}");
            assert_eq!(signature_from_gemini_client(&wire), canonical);
        }
        assert_eq!(
            client_signature(&signature_minted(Issuer::Gemini, "R2Vt")),
            "R2Vt"
        );
        // a client that replays the tag unencoded is understood too
        assert_eq!(signature_from_gemini_client("modelswitch-anthropic:a"), "a");
    }

    #[test]
    fn parts_read_in_both_spellings() {
        let p = json!({"inline_data": {"mime_type": "image/png", "data": "AA=="}});
        assert!(matches!(
            read_part(&p, "p"),
            Ok(WirePart::Media(Part::Image(Media::Base64 { .. })))
        ));
        let p = json!({"fileData": {"fileUri": "gs://b/doc.pdf"}});
        assert!(matches!(
            read_part(&p, "p"),
            Ok(WirePart::Media(Part::Document(Media::Url(u)))) if u == "gs://b/doc.pdf"
        ));
        assert!(read_part(&json!({"text": 5}), "contents[0].parts[0]")
            .err()
            .is_some_and(|e| e.message.contains("contents[0].parts[0].text")));
        assert!(read_part(&json!({"functionCall": {"args": {}}}), "p").is_err());
        assert!(read_part(&json!({"functionCall": {"name": "f", "args": [1]}}), "p").is_err());
        let code = json!({"executableCode": {"language": "PYTHON", "code": "print(1)"}});
        assert!(
            matches!(read_part(&code, "p"), Ok(WirePart::Text(t)) if t.contains("```python\nprint(1)"))
        );
    }
}
