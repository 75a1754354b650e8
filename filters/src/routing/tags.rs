//! `tags:` queries: the model that carries every tag asked, the highest
//! `priority` first, a healthy one before a sick one, config order among
//! equals.

/// `coding,cheap` → the tags, trimmed, deduplicated; `None` when empty.
pub fn parse(list: &str) -> Option<Vec<String>> {
    let mut tags: Vec<String> = Vec::new();
    for t in list.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        if !tags.iter().any(|have| have == t) {
            tags.push(t.to_owned());
        }
    }
    (!tags.is_empty()).then_some(tags)
}

/// One configured model as a query sees it.
#[derive(Debug, Clone, Copy)]
pub struct Tagged<'a> {
    pub name: &'a str,
    pub tags: &'a [String],
    pub priority: i64,
}

/// The best model with all of `wanted`. `healthy(name)`: whether any of
/// its targets can be tried now; when none is, the best sick one is still
/// chosen (its chain reports why it cannot serve, and a half-open breaker
/// gets its probe).
pub fn select<'a>(
    models: impl IntoIterator<Item = Tagged<'a>>,
    wanted: &[String],
    healthy: impl Fn(&str) -> bool,
) -> Option<&'a str> {
    let mut best: Option<(bool, i64, &'a str)> = None;
    for m in models {
        if !wanted.iter().all(|w| m.tags.iter().any(|t| t == w)) {
            continue;
        }
        let ok = healthy(m.name);
        // Strictly better only: the first in config order keeps a tie.
        if best.is_none_or(|(b_ok, b_pri, _)| (ok, m.priority) > (b_ok, b_pri)) {
            best = Some((ok, m.priority, m.name));
        }
    }
    best.map(|(_, _, name)| name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_trims_and_dedupes() {
        assert_eq!(
            parse(" coding, cheap ,coding,"),
            Some(vec!["coding".to_owned(), "cheap".to_owned()])
        );
        assert_eq!(parse(" , "), None);
    }

    #[test]
    fn all_tags_then_health_then_priority_then_order() {
        let t = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        let (a, b, c, d) = (
            t(&["coding", "cheap"]),
            t(&["coding", "cheap", "fast"]),
            t(&["coding"]),
            t(&["coding", "cheap"]),
        );
        let models = [
            Tagged {
                name: "a",
                tags: &a,
                priority: 1,
            },
            Tagged {
                name: "b",
                tags: &b,
                priority: 5,
            },
            Tagged {
                name: "c",
                tags: &c,
                priority: 9,
            },
            Tagged {
                name: "d",
                tags: &d,
                priority: 5,
            },
        ];
        let want = t(&["coding", "cheap"]);
        assert_eq!(
            select(models, &want, |_| true),
            Some("b"),
            "c lacks cheap; b before d"
        );
        assert_eq!(
            select(models, &want, |n| n != "b"),
            Some("d"),
            "a sick b is passed over"
        );
        assert_eq!(
            select(models, &want, |_| false),
            Some("b"),
            "all sick: the best still"
        );
        assert_eq!(select(models, &t(&["gpu"]), |_| true), None);
    }
}
