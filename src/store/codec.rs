//! How a key's row is encoded, the same on every backend: the attributes
//! as JSON without the name (which has its own column), the hash as hex,
//! counts as signed integers (what SQL integers are), times as Unix
//! seconds.

use super::StoreError;
use filters::auth::KeySpec;

/// The attributes without the name, which has its own column.
pub(super) fn spec_json(spec: &KeySpec) -> Result<String, StoreError> {
    let mut value = serde_json::to_value(spec)
        .map_err(|e| StoreError::Backend(format!("cannot encode attributes: {e}")))?;
    if let Some(map) = value.as_object_mut() {
        map.remove("name");
    }
    Ok(value.to_string())
}

pub(super) fn spec_from(name: &str, json: &str) -> Result<KeySpec, StoreError> {
    let unreadable = |e: String| StoreError::Backend(format!("key '{name}': attributes: {e}"));
    let mut value: serde_json::Value =
        serde_json::from_str(json).map_err(|e| unreadable(e.to_string()))?;
    let map = value
        .as_object_mut()
        .ok_or_else(|| unreadable("not an object".into()))?;
    map.insert("name".into(), name.into());
    serde_json::from_value(value).map_err(|e| unreadable(e.to_string()))
}

/// The hash column of the key `name` back into bytes.
pub(super) fn hash_from(name: &str, hex: &str) -> Result<[u8; 32], StoreError> {
    unhex(hex).ok_or_else(|| StoreError::Backend(format!("key '{name}': malformed hash")))
}

fn unhex(s: &str) -> Option<[u8; 32]> {
    let bytes = s.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let digit = |b: u8| {
        char::from(b)
            .to_digit(16)
            .and_then(|d| u8::try_from(d).ok())
    };
    let mut out = [0u8; 32];
    for (o, pair) in out.iter_mut().zip(bytes.chunks_exact(2)) {
        *o = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Some(out)
}

/// SQL integers are signed; counts past i64 are not real anyway.
pub(super) fn int(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

pub(super) fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_round_trip_through_hex() {
        let h = filters::auth::key_hash("sk-ms-x");
        assert_eq!(hash_from("k", &filters::auth::hex(&h)).unwrap(), h);
        assert_eq!(unhex("zz"), None);
        assert_eq!(unhex(&"g".repeat(64)), None);
        assert_eq!(
            hash_from("k", "zz").unwrap_err(),
            StoreError::Backend("key 'k': malformed hash".into())
        );
    }

    #[test]
    fn the_name_lives_in_its_column_not_in_the_json() {
        let mut spec = KeySpec::named("k");
        spec.limits.rpm = Some(5);
        let json = spec_json(&spec).unwrap();
        assert!(!json.contains("\"name\""));
        assert_eq!(spec_from("k", &json).unwrap(), spec);
        assert!(spec_from("k", "[1]").is_err());
    }

    #[test]
    fn counts_past_i64_saturate() {
        assert_eq!(int(7), 7);
        assert_eq!(int(u64::MAX), i64::MAX);
    }
}
