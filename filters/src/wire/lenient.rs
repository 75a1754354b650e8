//! Reading single fields of upstream JSON straight from the wire bytes,
//! leniently: a field of an unexpected kind reads as absent instead of
//! failing the whole object, just as `Value::as_u64` / `Value::pointer` /
//! `Value::is_string` would see it, but without building a `Value` tree
//! (the pass-through path reads usage and finish reasons from every
//! response and stream chunk).

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use std::fmt;
use std::marker::PhantomData;

/// What a JSON value turned out to be: an unsigned integer, a string, an
/// object (read as `T`), or anything else (read past).
pub enum Lenient<T> {
    U64(u64),
    Str,
    Object(T),
    Other,
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Lenient<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = Lenient<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_u64<E>(self, n: u64) -> Result<Lenient<T>, E> {
                Ok(Lenient::U64(n))
            }
            fn visit_i64<E>(self, n: i64) -> Result<Lenient<T>, E> {
                Ok(u64::try_from(n).map_or(Lenient::Other, Lenient::U64))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Lenient<T>, E> {
                Ok(Lenient::Other)
            }
            fn visit_bool<E>(self, _: bool) -> Result<Lenient<T>, E> {
                Ok(Lenient::Other)
            }
            fn visit_str<E>(self, _: &str) -> Result<Lenient<T>, E> {
                Ok(Lenient::Str)
            }
            fn visit_unit<E>(self) -> Result<Lenient<T>, E> {
                Ok(Lenient::Other)
            }
            fn visit_none<E>(self) -> Result<Lenient<T>, E> {
                Ok(Lenient::Other)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Lenient<T>, A::Error> {
                while a.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Lenient::Other)
            }
            fn visit_map<A: MapAccess<'de>>(self, a: A) -> Result<Lenient<T>, A::Error> {
                T::deserialize(de::value::MapAccessDeserializer::new(a)).map(Lenient::Object)
            }
        }
        d.deserialize_any(V(PhantomData))
    }
}

/// A token count: an unsigned integer, or absent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(from = "Lenient<IgnoredAny>")]
pub struct Count(pub Option<u64>);

impl From<Lenient<IgnoredAny>> for Count {
    fn from(v: Lenient<IgnoredAny>) -> Self {
        match v {
            Lenient::U64(n) => Count(Some(n)),
            _ => Count(None),
        }
    }
}

/// A nested object (`prompt_tokens_details`), or absent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Nested<T>(pub Option<T>);

impl<T> Default for Nested<T> {
    fn default() -> Self {
        Nested(None)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Nested<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(match Lenient::<T>::deserialize(d)? {
            Lenient::Object(t) => Nested(Some(t)),
            _ => Nested(None),
        })
    }
}

/// Whether a value is a string (a `finish_reason` that ends a choice).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(from = "Lenient<IgnoredAny>")]
pub struct IsString(pub bool);

impl From<Lenient<IgnoredAny>> for IsString {
    fn from(v: Lenient<IgnoredAny>) -> Self {
        IsString(matches!(v, Lenient::Str))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Default, PartialEq, serde::Deserialize)]
    #[serde(default)]
    struct Probe {
        n: Count,
        s: IsString,
        o: Nested<Inner>,
    }

    #[derive(Debug, Default, PartialEq, serde::Deserialize)]
    #[serde(default)]
    struct Inner {
        k: Count,
    }

    fn probe(json: &str) -> Probe {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn each_field_reads_as_absent_when_of_another_kind() {
        assert_eq!(
            probe(r#"{"n": 7, "s": "stop", "o": {"k": 2, "x": [1]}}"#),
            Probe {
                n: Count(Some(7)),
                s: IsString(true),
                o: Nested(Some(Inner { k: Count(Some(2)) })),
            }
        );
        for odd in [
            "null",
            "-1",
            "1.5",
            "true",
            "\"7\"",
            "[1, {\"a\": 2}]",
            "{\"deep\": {\"x\": null}}",
        ] {
            let p = probe(&format!(r#"{{"n": {odd}, "o": {odd}}}"#));
            assert_eq!(p.n, Count(None), "{odd}");
            assert!(odd.starts_with('{') || p.o == Nested(None), "{odd}");
        }
        assert_eq!(probe(r#"{"s": null}"#).s, IsString(false));
        assert_eq!(probe(r#"{"s": {"a": 1}}"#).s, IsString(false));
    }
}
