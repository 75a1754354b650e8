//! `modelswitch usage [--since 24h] [--limit N]`: the top keys and models
//! by requests, with tokens and cost, from the usage rows in the store
//! (the same summary query as `GET /api/usage`). Reads only `[storage]`
//! of the config, as `keys` does.

use crate::store::usage_query::{Group, GroupBy, GroupValue, SummaryQuery, Totals, UsageFilter};
use clap::Args;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

#[derive(Args)]
pub struct UsageArgs {
    /// How far back: 30m, 24h, 7d, ...
    #[arg(long, default_value = "24h", value_parser = humantime_serde::re::humantime::parse_duration)]
    since: Duration,
    /// Rows per table.
    #[arg(long, default_value_t = 10)]
    limit: usize,
    /// A SQLite key store file, whatever the config says.
    #[arg(long, value_name = "PATH")]
    db: Option<PathBuf>,
}

pub fn run(config: &Path, args: UsageArgs) -> ExitCode {
    let store = match super::keys::open_store(config, args.db) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let runtime = match super::runtime_or_exit() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let now = i64::try_from(crate::usage::row::unix_ms()).unwrap_or(i64::MAX);
    let from = now.saturating_sub(i64::try_from(args.since.as_millis()).unwrap_or(i64::MAX));
    let mut out = String::new();
    for (title, by) in [("TOP KEYS", GroupBy::Key), ("TOP MODELS", GroupBy::Model)] {
        let q = SummaryQuery {
            filter: UsageFilter::between(from, now.saturating_add(1)),
            group_by: vec![by],
            zone: jiff::tz::TimeZone::UTC,
        };
        let summary = match runtime.block_on(store.usage_summary(q)) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::from(1);
            }
        };
        if by == GroupBy::Key {
            out.push_str(&format!(
                "since {}: {} requests ({} errors), {} tokens in, {} out, cost {}\n\n",
                crate::journal::files::rfc3339_ms(from),
                summary.totals.requests,
                summary.totals.errors,
                input(&summary.totals),
                summary.totals.output,
                cost(&summary.totals),
            ));
        }
        out.push_str(&top(title, summary.groups, args.limit));
        out.push('\n');
    }
    print!("{out}");
    ExitCode::SUCCESS
}

fn input(t: &Totals) -> u64 {
    t.input_uncached + t.cache_read + t.cache_write
}

/// `0.0123 USD`, each currency apart; `-` when nothing was priced.
fn cost(t: &Totals) -> String {
    if t.cost_nanos.is_empty() {
        return "-".into();
    }
    t.cost_nanos
        .iter()
        .map(|(c, n)| format!("{:.4} {c}", *n as f64 / 1e9))
        .collect::<Vec<_>>()
        .join(" + ")
}

/// The `limit` groups with the most requests, as a table.
fn top(title: &str, mut groups: Vec<Group>, limit: usize) -> String {
    groups.sort_by_key(|g| std::cmp::Reverse(g.totals.requests));
    let mut rows = vec![[
        title.to_owned(),
        "REQUESTS".into(),
        "ERRORS".into(),
        "INPUT".into(),
        "OUTPUT".into(),
        "COST".into(),
    ]];
    for g in groups.into_iter().take(limit) {
        let name = match g.keys.first() {
            Some(GroupValue::Name(Some(n))) => n.clone(),
            _ => "-".into(),
        };
        rows.push([
            name,
            g.totals.requests.to_string(),
            g.totals.errors.to_string(),
            input(&g.totals).to_string(),
            g.totals.output.to_string(),
            cost(&g.totals),
        ]);
    }
    super::table(&rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(name: Option<&str>, requests: u64, nanos: i64) -> Group {
        Group {
            keys: vec![GroupValue::Name(name.map(str::to_owned))],
            totals: Totals {
                requests,
                output: requests * 10,
                cost_nanos: if nanos > 0 {
                    [("USD".to_owned(), nanos)].into()
                } else {
                    Default::default()
                },
                ..Totals::default()
            },
        }
    }

    #[test]
    fn the_top_groups_come_first_and_are_cut_at_the_limit() {
        let t = top(
            "TOP KEYS",
            vec![
                group(Some("a"), 1, 0),
                group(Some("b"), 5, 12_300_000),
                group(None, 3, 0),
            ],
            2,
        );
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 3, "{t}");
        assert!(
            lines[1].starts_with("b ") && lines[1].contains("0.0123 USD"),
            "{t}"
        );
        assert!(lines[2].starts_with("- "), "{t}");
    }
}
