//! Which certificate answers a TLS client: by the name it asks for (SNI),
//! exact names before wildcards, the default for every other client.
//! Pure: no files, no rustls.

use std::collections::HashMap;

/// The certificate a client without SNI, or asking for a name no other
/// certificate serves, gets.
pub const DEFAULT: usize = 0;

/// Names to certificate positions. A wildcard `*.example.com` matches one
/// label (`a.example.com`, not `example.com` nor `a.b.example.com`), as
/// clients check it (RFC 6125 §6.4.3).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Table {
    exact: HashMap<String, usize>,
    /// By the part after `*.`.
    wildcard: HashMap<String, usize>,
}

impl Table {
    /// From (certificate position, name) in order of preference: a name
    /// claimed twice goes to the first.
    pub fn new<'a>(entries: impl IntoIterator<Item = (usize, &'a str)>) -> Self {
        let mut table = Self::default();
        for (i, name) in entries {
            let name = normal(name);
            let (map, key) = match name.strip_prefix("*.") {
                Some(rest) => (&mut table.wildcard, rest.to_owned()),
                None => (&mut table.exact, name),
            };
            map.entry(key).or_insert(i);
        }
        table
    }

    /// The certificate for a client asking for `sni`.
    pub fn select(&self, sni: Option<&str>) -> usize {
        let Some(name) = sni else {
            return DEFAULT;
        };
        let name = normal(name);
        if let Some(&i) = self.exact.get(&name) {
            return i;
        }
        name.split_once('.')
            .and_then(|(_, parent)| self.wildcard.get(parent))
            .copied()
            .unwrap_or(DEFAULT)
    }
}

/// DNS names compare without case and without a final dot.
fn normal(name: &str) -> String {
    name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase()
}

/// A name a certificate may be configured to serve: a DNS name, or a
/// wildcard in its first label only (`*.example.com`).
pub fn check_name(name: &str) -> Result<(), &'static str> {
    let host = name.strip_prefix("*.").unwrap_or(name);
    if host.is_empty() || host.len() > 253 {
        return Err("is not a DNS name");
    }
    for label in host.split('.') {
        if label.contains('*') {
            return Err("has a wildcard outside its first label (only *.example.com is served)");
        }
        let ok = !label.is_empty()
            && label.len() <= 63
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            && !label.starts_with('-')
            && !label.ends_with('-');
        if !ok {
            return Err("is not a DNS name");
        }
    }
    if name.starts_with("*.") && !host.contains('.') {
        return Err("is a wildcard over a top-level domain");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> Table {
        Table::new([
            (1, "a.test"),
            (2, "*.b.test"),
            (3, "x.b.test"),
            (2, "A.Other.TEST"),
            // Claimed again later: the first keeps it.
            (3, "a.test"),
            (0, "default.test"),
        ])
    }

    #[test]
    fn exact_names_pick_their_certificate() {
        let t = table();
        assert_eq!(t.select(Some("a.test")), 1);
        assert_eq!(t.select(Some("default.test")), 0);
    }

    #[test]
    fn names_compare_without_case_or_final_dot() {
        let t = table();
        assert_eq!(t.select(Some("A.TEST")), 1);
        assert_eq!(t.select(Some("a.other.test")), 2);
        assert_eq!(t.select(Some("a.test.")), 1);
    }

    #[test]
    fn a_wildcard_matches_one_label_and_yields_to_an_exact_name() {
        let t = table();
        assert_eq!(t.select(Some("y.b.test")), 2);
        assert_eq!(t.select(Some("Y.B.Test")), 2);
        assert_eq!(t.select(Some("x.b.test")), 3);
        assert_eq!(t.select(Some("b.test")), DEFAULT);
        assert_eq!(t.select(Some("z.y.b.test")), DEFAULT);
    }

    #[test]
    fn no_sni_or_an_unknown_name_gets_the_default() {
        let t = table();
        assert_eq!(t.select(None), DEFAULT);
        assert_eq!(t.select(Some("unknown.test")), DEFAULT);
        assert_eq!(t.select(Some("")), DEFAULT);
        assert_eq!(Table::default().select(Some("a.test")), DEFAULT);
    }

    #[test]
    fn configured_names_are_checked() {
        for ok in ["a.test", "*.example.com", "x-1.example.com", "localhost"] {
            assert_eq!(check_name(ok), Ok(()), "{ok}");
        }
        for bad in [
            "", "*", "*.com", "a.*.test", "a..test", "-a.test", "a b.test", "a*.test", ".a.test",
        ] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }
}
