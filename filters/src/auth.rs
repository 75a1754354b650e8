//! Client authentication: which gateway key a request carries and what that
//! key may do. One `KeySpec` describes a key wherever it comes from (the
//! TOML file, the key store, the admin API); `ClientKey` is its validated
//! form as the request path reads it.

use crate::limits::budget::Budget;
use crate::limits::Limits;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;

/// What a key may do. `viewer` reads the admin API and changes nothing;
/// `user` calls models; `admin` does everything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    Admin,
    User,
    Viewer,
}

impl Role {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "admin" => Some(Self::Admin),
            "user" => Some(Self::User),
            "viewer" => Some(Self::Viewer),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::User => "user",
            Self::Viewer => "viewer",
        }
    }
}

/// Where a key is defined: the file is read-only at runtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeySource {
    Config,
    Store,
}

impl KeySource {
    pub fn name(self) -> &'static str {
        match self {
            Self::Config => "config",
            Self::Store => "store",
        }
    }
}

/// A key's attributes as data: the shape of `[[api_keys]]` (without its
/// `key`), of a key store row and of the admin API's JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeySpec {
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// Empty: `["user"]`.
    #[serde(default)]
    pub roles: Vec<String>,
    #[serde(default = "enabled_default")]
    pub enabled: bool,
    /// RFC 3339, e.g. `2027-01-01T00:00:00Z`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    /// Exact names or `*` globs; absent: every model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_models: Option<Vec<String>>,
    /// Provider names; absent: every provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_providers: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Limits::is_empty")]
    pub limits: Limits,
    /// Money per day and month in the gateway's budget currency
    /// (`{ daily = 5, monthly = "100.50" }`).
    #[serde(default, skip_serializing_if = "Budget::is_empty")]
    pub budget: Budget,
    /// Requests asking for more output are clamped to this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_output_tokens: Option<u64>,
    /// Top-level request fields this key may not set.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deny_params: Vec<String>,
    /// Conversation logging for this key's requests, over `[logging]
    /// conversations` either way; absent: the global setting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_conversations: Option<bool>,
}

fn enabled_default() -> bool {
    true
}

impl KeySpec {
    pub fn named(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            description: String::new(),
            roles: Vec::new(),
            enabled: true,
            expires_at: None,
            allowed_models: None,
            allowed_providers: None,
            limits: Limits::default(),
            budget: Budget::default(),
            max_output_tokens: None,
            deny_params: Vec::new(),
            log_conversations: None,
        }
    }
}

/// An allow-list of model names: exact names in a set, globs in order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NameFilter {
    exact: HashSet<String>,
    globs: Vec<String>,
}

impl NameFilter {
    pub fn new<'a>(names: impl IntoIterator<Item = &'a String>) -> Self {
        let mut f = Self::default();
        for n in names {
            if crate::glob::is_glob(n) {
                f.globs.push(n.clone());
            } else {
                f.exact.insert(n.clone());
            }
        }
        f
    }

    pub fn allows(&self, name: &str) -> bool {
        self.exact.contains(name) || self.globs.iter().any(|g| crate::glob::matches(g, name))
    }
}

/// A gateway API key as the request path sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientKey {
    pub name: String,
    pub description: String,
    pub roles: Vec<Role>,
    pub enabled: bool,
    /// Unix seconds.
    pub expires_at: Option<i64>,
    /// `None`: every model.
    pub allowed_models: Option<NameFilter>,
    /// `None`: every provider.
    pub allowed_providers: Option<Vec<String>>,
    pub limits: Limits,
    pub max_output_tokens: Option<u64>,
    pub deny_params: Vec<String>,
    pub source: KeySource,
    /// Store keys: the first characters of the key, safe to show.
    pub prefix: Option<String>,
    /// The attributes it was built from, for listing and editing.
    pub spec: KeySpec,
}

/// Why a known key may not be used now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unusable {
    Disabled,
    Expired,
}

impl ClientKey {
    /// Validates `spec`; errors name the field (`roles[1]: …`).
    pub fn from_spec(
        spec: KeySpec,
        source: KeySource,
        prefix: Option<String>,
    ) -> Result<Self, Vec<String>> {
        let mut errs = spec_problems(&spec);
        let mut roles = Vec::new();
        for (i, r) in spec.roles.iter().enumerate() {
            match Role::parse(r) {
                Some(role) if !roles.contains(&role) => roles.push(role),
                Some(_) => {}
                None => errs.push(format!(
                    "roles[{i}]: unknown role '{r}' (admin, user or viewer)"
                )),
            }
        }
        if roles.is_empty() {
            roles.push(Role::User);
        }
        let expires_at = match spec.expires_at.as_deref() {
            None => None,
            Some(s) => match parse_rfc3339(s) {
                Some(t) => Some(t),
                None => {
                    errs.push(format!(
                        "expires_at: '{s}' is not an RFC 3339 time (e.g. 2027-01-01T00:00:00Z)"
                    ));
                    None
                }
            },
        };
        if !errs.is_empty() {
            return Err(errs);
        }
        Ok(Self {
            name: spec.name.clone(),
            description: spec.description.clone(),
            roles,
            enabled: spec.enabled,
            expires_at,
            allowed_models: spec.allowed_models.as_ref().map(NameFilter::new),
            allowed_providers: spec.allowed_providers.clone(),
            limits: Limits {
                budget: spec.budget,
                ..spec.limits
            },
            max_output_tokens: spec.max_output_tokens,
            deny_params: spec.deny_params.clone(),
            source,
            prefix,
            spec,
        })
    }

    pub fn allows_model(&self, model: &str) -> bool {
        self.allowed_models.as_ref().is_none_or(|m| m.allows(model))
    }

    pub fn allows_provider(&self, provider: &str) -> bool {
        self.allowed_providers
            .as_ref()
            .is_none_or(|p| p.iter().any(|n| n == provider))
    }

    pub fn has_role(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    /// May read the admin API.
    pub fn can_view(&self) -> bool {
        self.has_role(Role::Admin) || self.has_role(Role::Viewer)
    }

    /// Whether the key may be used at `now` (Unix seconds).
    pub fn usable(&self, now: i64) -> Result<(), Unusable> {
        if !self.enabled {
            Err(Unusable::Disabled)
        } else if self.expires_at.is_some_and(|t| now >= t) {
            Err(Unusable::Expired)
        } else {
            Ok(())
        }
    }
}

/// What is wrong with a spec besides its roles and expiry.
fn spec_problems(spec: &KeySpec) -> Vec<String> {
    let mut errs = Vec::new();
    let name_ok = !spec.name.is_empty()
        && spec.name.len() <= 64
        && spec
            .name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'@'));
    if !name_ok {
        errs.push(
            "name: 1 to 64 characters of letters, digits, '-', '_', '.' or '@' are required".into(),
        );
    }
    if spec.description.len() > 1024 {
        errs.push("description: at most 1024 characters".into());
    }
    let lists = [
        (
            "allowed_models",
            spec.allowed_models.as_deref().unwrap_or(&[]),
        ),
        (
            "allowed_providers",
            spec.allowed_providers.as_deref().unwrap_or(&[]),
        ),
        ("deny_params", &spec.deny_params[..]),
    ];
    for (field, list) in lists {
        if list.len() > 1000 {
            errs.push(format!("{field}: at most 1000 entries"));
        }
        for (i, v) in list.iter().enumerate() {
            if v.is_empty() || v.len() > 256 {
                errs.push(format!("{field}[{i}]: 1 to 256 characters are required"));
            }
        }
    }
    if spec.max_output_tokens == Some(0) {
        errs.push("max_output_tokens: must be at least 1".into());
    }
    errs.extend(
        spec.limits
            .problems()
            .into_iter()
            .map(|p| format!("limits.{p}")),
    );
    errs.extend(
        spec.budget
            .problems()
            .into_iter()
            .map(|p| format!("budget.{p}")),
    );
    errs
}

/// RFC 3339 → Unix seconds.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    s.parse::<jiff::Timestamp>().ok().map(|t| t.as_second())
}

/// Unix seconds → RFC 3339 (UTC).
pub fn format_rfc3339(t: i64) -> String {
    jiff::Timestamp::from_second(t).map_or_else(|_| t.to_string(), |ts| ts.to_string())
}

/// Every key the gateway mints starts with this.
pub const KEY_PREFIX: &str = "sk-ms-";
const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
/// Random characters after the prefix: 32 × log2(62) ≈ 190 bits.
pub const KEY_RANDOM_CHARS: usize = 32;

/// A new key, `sk-ms-` and 32 base62 characters from `fill` (the OS's
/// CSPRNG in the shell). Bytes are drawn without modulo bias: only those
/// below 248 (4 × 62) are used.
pub fn generate_key<E>(mut fill: impl FnMut(&mut [u8]) -> Result<(), E>) -> Result<String, E> {
    let mut out = String::with_capacity(KEY_PREFIX.len() + KEY_RANDOM_CHARS);
    out.push_str(KEY_PREFIX);
    let mut buf = [0u8; 64];
    while out.len() < KEY_PREFIX.len() + KEY_RANDOM_CHARS {
        fill(&mut buf)?;
        for &b in &buf {
            if b < 248 && out.len() < KEY_PREFIX.len() + KEY_RANDOM_CHARS {
                out.push(char::from(BASE62[usize::from(b % 62)]));
            }
        }
    }
    Ok(out)
}

/// Whether `key` has the shape of a gateway-minted key.
pub fn is_minted(key: &str) -> bool {
    key.len() == KEY_PREFIX.len() + KEY_RANDOM_CHARS
        && key.starts_with(KEY_PREFIX)
        && key[KEY_PREFIX.len()..]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric())
}

/// What the key store keeps of a key: SHA-256 (the key has ~190 bits of
/// entropy, so a plain hash cannot be reversed by guessing).
pub fn key_hash(key: &str) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(key.as_bytes()).into()
}

pub fn key_hash_hex(key: &str) -> String {
    hex(&key_hash(key))
}

pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    s
}

/// The part of a key that may be shown: `sk-ms-` and four characters
/// (24 bits of 190).
pub fn display_prefix(key: &str) -> String {
    let end = key
        .char_indices()
        .nth(KEY_PREFIX.len() + 4)
        .map_or(key.len(), |(i, _)| i);
    key[..end].to_owned()
}

/// The credential a client sent: `Authorization: Bearer <key>`,
/// `x-api-key: <key>` (Anthropic SDKs, Claude Code), or a bare
/// `Authorization: <key>`. `x-api-key` wins when both are present, since
/// Anthropic clients may also send an unrelated bearer token.
pub fn credential<'a>(
    authorization: Option<&'a [u8]>,
    x_api_key: Option<&'a [u8]>,
) -> Option<&'a str> {
    let trimmed = |b: &'a [u8]| {
        std::str::from_utf8(b)
            .ok()
            .map(str::trim)
            .filter(|s| !s.is_empty())
    };
    if let Some(k) = x_api_key.and_then(trimmed) {
        return Some(k);
    }
    let auth = authorization.and_then(trimmed)?;
    match auth.split_once(' ') {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => {
            Some(rest.trim()).filter(|s| !s.is_empty())
        }
        Some(_) => None,
        None if auth.eq_ignore_ascii_case("bearer") => None,
        None => Some(auth),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_supported_header_form() {
        assert_eq!(credential(Some(b"Bearer sk-1"), None), Some("sk-1"));
        assert_eq!(credential(Some(b"bearer   sk-1 "), None), Some("sk-1"));
        assert_eq!(credential(Some(b"sk-bare"), None), Some("sk-bare"));
        assert_eq!(
            credential(Some(b"Bearer x"), Some(b"sk-anth")),
            Some("sk-anth")
        );
        assert_eq!(credential(Some(b"Basic abc"), None), None);
        assert_eq!(credential(Some(b"Bearer "), None), None);
        assert_eq!(credential(None, Some(b"")), None);
        assert_eq!(credential(Some(b"\xff"), None), None);
    }

    fn key(spec: KeySpec) -> ClientKey {
        ClientKey::from_spec(spec, KeySource::Config, None).unwrap()
    }

    #[test]
    fn allow_lists_take_exact_names_and_globs() {
        let mut spec = KeySpec::named("a");
        spec.roles = vec!["admin".into()];
        let k = key(spec.clone());
        assert!(k.allows_model("anything") && k.has_role(Role::Admin) && !k.has_role(Role::User));
        spec.allowed_models = Some(vec!["glm-5".into(), "gpt-*".into()]);
        spec.allowed_providers = Some(vec!["openai".into()]);
        let k = key(spec);
        assert!(k.allows_model("glm-5") && k.allows_model("gpt-4o") && !k.allows_model("glm-4"));
        assert!(k.allows_provider("openai") && !k.allows_provider("anthropic"));
    }

    #[test]
    fn specs_are_validated_with_their_field() {
        let mut spec = KeySpec::named("bad name");
        spec.roles = vec!["user".into(), "root".into()];
        spec.expires_at = Some("tomorrow".into());
        spec.deny_params = vec![String::new()];
        spec.limits.rpm = Some(0);
        let errs = ClientKey::from_spec(spec, KeySource::Store, None).unwrap_err();
        assert_eq!(errs.len(), 5, "{errs:?}");
        assert!(errs[0].starts_with("name:"));
        assert!(errs.iter().any(|e| e.starts_with("deny_params[0]:")));
        assert!(errs.iter().any(|e| e.starts_with("limits.rpm:")));
        assert!(errs
            .iter()
            .any(|e| e == "roles[1]: unknown role 'root' (admin, user or viewer)"));
        assert!(errs.iter().any(|e| e.starts_with("expires_at: 'tomorrow'")));
    }

    #[test]
    fn roles_default_to_user_and_expiry_and_switch_apply() {
        let mut spec = KeySpec::named("k");
        spec.expires_at = Some("2027-01-01T00:00:00Z".into());
        let k = key(spec.clone());
        assert_eq!(k.roles, vec![Role::User]);
        let t = parse_rfc3339("2027-01-01T00:00:00Z").unwrap();
        assert_eq!(k.usable(t - 1), Ok(()));
        assert_eq!(k.usable(t), Err(Unusable::Expired));
        assert_eq!(format_rfc3339(t), "2027-01-01T00:00:00Z");
        spec.enabled = false;
        assert_eq!(key(spec).usable(0), Err(Unusable::Disabled));
        // Offsets are honoured.
        assert_eq!(parse_rfc3339("2027-01-01T08:00:00+08:00"), Some(t));
    }

    #[test]
    fn minted_keys_have_the_documented_shape() {
        let mut n = 0u8;
        let k = generate_key(|b: &mut [u8]| {
            for x in b.iter_mut() {
                *x = n;
                n = n.wrapping_add(7);
            }
            Ok::<_, ()>(())
        })
        .unwrap();
        assert!(is_minted(&k), "{k}");
        assert!(!is_minted("sk-ms-short") && !is_minted(&k.replace("sk-ms-", "sk-mx-")));
        // Bytes of 248 and above are skipped, never folded into a bias.
        let only_high = generate_key(|b: &mut [u8]| {
            b.fill(250);
            b[0] = 61;
            Ok::<_, ()>(())
        })
        .unwrap();
        assert_eq!(&only_high[6..], &"z".repeat(32));
        assert_eq!(display_prefix(&k).len(), 10);
        assert_eq!(
            key_hash_hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn specs_read_from_json_with_defaults() {
        let spec: KeySpec =
            serde_json::from_str(r#"{"name":"ci","limits":{"rate_limit":10},"deny_params":["n"]}"#)
                .unwrap();
        assert!(spec.enabled && spec.roles.is_empty());
        assert_eq!(spec.limits.rpm, Some(10));
        assert!(serde_json::from_str::<KeySpec>(r#"{"name":"x","bogus":1}"#).is_err());
    }

    #[test]
    fn a_budget_sits_beside_limits_and_reaches_the_key() {
        let spec: KeySpec = serde_json::from_str(
            r#"{"name":"ci","limits":{"rpm":10},"budget":{"daily":5,"monthly":"100.50"}}"#,
        )
        .unwrap();
        let key = ClientKey::from_spec(spec.clone(), KeySource::Config, None).unwrap();
        assert_eq!(key.limits.rpm, Some(10));
        assert_eq!(key.limits.budget.daily, Some(5_000_000_000));
        assert_eq!(key.limits.budget.monthly, Some(100_500_000_000));
        let json = serde_json::to_string(&spec).unwrap();
        assert!(
            json.contains(r#""budget":{"daily":"5","monthly":"100.5"}"#),
            "{json}"
        );
        // Only beside `limits`, not inside it.
        assert!(serde_json::from_str::<KeySpec>(
            r#"{"name":"ci","limits":{"budget":{"daily":5}}}"#
        )
        .is_err());
        let mut zero = KeySpec::named("z");
        zero.budget.daily = Some(0);
        let errs = ClientKey::from_spec(zero, KeySource::Config, None).unwrap_err();
        assert!(
            errs.iter().any(|e| e.starts_with("budget.daily:")),
            "{errs:?}"
        );
    }
}
