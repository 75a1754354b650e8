//! `modelswitch models list|test`: the configured models and their
//! chains; a tiny request ("Say OK") to every target of one model or of
//! all, through the same upstream client and key pool as client traffic
//! (the admin UI's test buttons, from a shell).

use super::Progress;
use crate::config::Target;
use crate::record::RequestRecord;
use crate::state::Live;
use crate::upstream::UpstreamClient;
use clap::{Args, Subcommand};
use std::process::ExitCode;
use std::time::Instant;

const TEST_MESSAGE: &str = "Reply with the single word OK.";
/// The first characters of an answer shown in the table.
const SHOWN_CHARS: usize = 40;

#[derive(Args)]
pub struct ModelsArgs {
    #[command(subcommand)]
    verb: Verb,
}

#[derive(Subcommand)]
enum Verb {
    /// Every model clients may ask for, with its chain of provider/model targets.
    List,
    /// Send every target of MODEL (default: of every model) a tiny request;
    /// exits non-zero when a model has no working target.
    Test {
        /// One model; all of them when absent.
        model: Option<String>,
    },
}

pub fn run(live: &Live, args: ModelsArgs) -> ExitCode {
    let mut names: Vec<&String> = live.config.routes.keys().collect();
    names.sort();
    match args.verb {
        Verb::List => {
            let mut rows = vec![["MODEL".to_owned(), "TARGETS".into()]];
            for n in &names {
                if let Some(r) = live.config.routes.get(*n) {
                    rows.push([(*n).clone(), targets(&r.targets)]);
                }
            }
            print!("{}", super::table(&rows));
            ExitCode::SUCCESS
        }
        Verb::Test { model } => {
            let chosen: Vec<&String> = match &model {
                Some(m) if live.config.routes.contains_key(m) => vec![m],
                Some(m) => {
                    eprintln!("no model named '{m}'");
                    return ExitCode::from(2);
                }
                None => names,
            };
            test(live, &chosen)
        }
    }
}

/// `provider/model, provider/model`.
fn targets(targets: &[Target]) -> String {
    targets
        .iter()
        .map(|t| format!("{}/{}", t.provider.name, t.model))
        .collect::<Vec<_>>()
        .join(", ")
}

/// One table row per target; non-zero when a model has no working one.
fn test(live: &Live, models: &[&String]) -> ExitCode {
    let runtime = match super::runtime_or_exit() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let upstream = UpstreamClient::new(4);
    let all: Vec<(&String, &Target)> = models
        .iter()
        .filter_map(|m| live.config.routes.get(*m).map(|r| (*m, r)))
        .flat_map(|(m, r)| r.targets.iter().map(move |t| (m, t)))
        .collect();
    let mut rows = vec![[
        "MODEL".to_owned(),
        "TARGET".into(),
        "STATUS".into(),
        "LATENCY".into(),
        "ANSWER".into(),
    ]];
    let mut working: Vec<&String> = Vec::new();
    let mut progress = Progress::new();
    for (i, (model, target)) in all.iter().enumerate() {
        progress.set(&format!("testing {}/{}", i + 1, all.len()));
        let (ok, status, latency, answer) = runtime.block_on(one(&upstream, live, target));
        if ok {
            working.push(model);
        }
        rows.push([
            (*model).clone(),
            format!("{}/{}", target.provider.name, target.model),
            status,
            format!("{latency} ms"),
            answer,
        ]);
    }
    progress.clear();
    print!("{}", super::table(&rows));
    let broken: Vec<&str> = models
        .iter()
        .filter(|m| !working.contains(m))
        .map(|m| m.as_str())
        .collect();
    if broken.is_empty() {
        ExitCode::SUCCESS
    } else {
        eprintln!("no working target: {}", broken.join(", "));
        ExitCode::from(1)
    }
}

/// (answered, status, latency in ms, the answer's start or the error).
async fn one(
    upstream: &UpstreamClient,
    live: &Live,
    target: &Target,
) -> (bool, String, u128, String) {
    use crate::admin::probe;
    let started = Instant::now();
    let mut rec = RequestRecord::new("cli-models-test".into());
    let outcome = match probe::body_for(&target.provider, &target.model, TEST_MESSAGE) {
        Ok(body) => {
            let path = target.generate_path(false).to_owned();
            crate::exchange::side::call_once(
                upstream,
                live,
                &mut rec,
                target,
                ("POST", &path),
                body,
            )
            .await
            .map_err(|f| (probe::status_of(&f), probe::describe(&f)))
        }
        Err(e) => Err((None, e.message.clone())),
    };
    let latency = started.elapsed().as_millis();
    match outcome {
        Ok(answer) => {
            let text = filters::dialect::decode_response(target.provider.dialect, &answer)
                .map(|r| probe::first_text(&r.parts))
                .unwrap_or_default();
            (true, "ok".into(), latency, shown(&text))
        }
        Err((status, error)) => (
            false,
            status.map_or_else(|| "failed".into(), |s| s.to_string()),
            latency,
            shown(&error),
        ),
    }
}

/// The first characters on one line.
fn shown(text: &str) -> String {
    let one_line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut s: String = one_line.chars().take(SHOWN_CHARS).collect();
    if one_line.chars().count() > SHOWN_CHARS {
        s.push('…');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_shown_on_one_short_line() {
        assert_eq!(shown("O\nK "), "O K");
        let long = "x".repeat(50);
        assert_eq!(shown(&long), format!("{}…", "x".repeat(40)));
    }
}
