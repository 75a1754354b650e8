//! `modelswitch chat -m MODEL [MESSAGE]`: one request through the model's
//! chain with no server running, the answer streamed to stdout as it
//! arrives. The chain is tried in order, as the gateway would, through the
//! same upstream client, key pool and stream decoders; the next target is
//! tried only while nothing has been printed (the commit point is the
//! first text on the terminal).

use super::Progress;
use crate::config::{Route, Target};
use crate::state::Live;
use crate::upstream::{Outgoing, UpstreamClient};
use bytes::Bytes;
use clap::Args;
use filters::canonical::StreamEvent;
use filters::dialect::StreamDecoder;
use filters::error::ApiError;
use filters::failure::{Failure, Phase};
use filters::key_pool::Pick;
use filters::wire::sse::SseDecoder;
use serde_json::json;
use std::io::{IsTerminal, Read, Write};
use std::process::ExitCode;
use std::time::Instant;

#[derive(Args)]
pub struct ChatArgs {
    /// The model, as clients name it (`modelswitch models list`).
    #[arg(short, long)]
    model: String,
    /// The message; read from standard input when absent.
    message: Option<String>,
    /// Print the model's reasoning (dimmed, on stderr) when it streams any.
    #[arg(long)]
    reasoning: bool,
}

/// Why a target gave nothing: before any text, so the next one is tried.
type Miss = String;

pub fn run(live: &Live, args: ChatArgs) -> ExitCode {
    let Some(route) = live.config.routes.get(&args.model).cloned() else {
        let mut names: Vec<&String> = live.config.routes.keys().collect();
        names.sort();
        let names: Vec<&str> = names.iter().map(|s| s.as_str()).collect();
        eprintln!(
            "no model named '{}' (configured: {})",
            args.model,
            if names.is_empty() {
                "none".into()
            } else {
                names.join(", ")
            }
        );
        return ExitCode::from(2);
    };
    let message = match args.message {
        Some(m) => m,
        None => {
            let mut m = String::new();
            if let Err(e) = std::io::stdin().read_to_string(&mut m) {
                eprintln!("cannot read the message from stdin: {e}");
                return ExitCode::from(2);
            }
            m
        }
    };
    if message.trim().is_empty() {
        eprintln!("the message is empty");
        return ExitCode::from(2);
    }
    let runtime = match super::runtime_or_exit() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let upstream = UpstreamClient::new(4);
    let outcome = runtime.block_on(chain(&upstream, live, &route, &message, args.reasoning));
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(1)
        }
    }
}

/// Each target in turn until one has printed its answer.
async fn chain(
    upstream: &UpstreamClient,
    live: &Live,
    route: &Route,
    message: &str,
    reasoning: bool,
) -> Result<(), String> {
    let deadline = Instant::now() + route.total_timeout;
    let mut misses = Vec::new();
    let mut progress = Progress::new();
    for (i, target) in route.targets.iter().enumerate() {
        let name = format!("{}/{}", target.provider.name, target.model);
        progress.set(&format!(
            "asking {name} ({}/{})",
            i + 1,
            route.targets.len()
        ));
        match one(
            upstream,
            live,
            route,
            target,
            message,
            deadline,
            reasoning,
            &mut progress,
        )
        .await
        {
            Ok(Ok(())) => return Ok(()),
            // Text was printed: no other target may add to it.
            Ok(Err(e)) => return Err(format!("\n{name} failed mid-answer: {e}")),
            Err(miss) => {
                progress.clear();
                eprintln!("{name}: {miss}");
                misses.push(name);
            }
        }
    }
    Err(format!(
        "every target failed ({})",
        if misses.is_empty() {
            "the model has none".into()
        } else {
            misses.join(", ")
        }
    ))
}

/// The request in the provider's own dialect, streaming.
fn body_for(route: &Route, target: &Target, message: &str) -> Result<Bytes, ApiError> {
    let chat = json!({
        "model": &*target.model,
        "messages": [{"role": "user", "content": message}],
        "stream": true,
    });
    let req = filters::dialect::decode_request(
        filters::Dialect::OpenAiChat,
        chat.to_string().as_bytes(),
    )?;
    let provider = &target.provider;
    let body = filters::dialect::encode_request(
        provider.dialect,
        &req,
        &target.model,
        &provider.encode,
        route.max_output_tokens,
    )?;
    Ok(Bytes::from(body.to_string()))
}

/// One target: `Err` a miss (nothing printed), `Ok(Err)` a failure after
/// text was printed, `Ok(Ok)` the whole answer printed.
#[expect(
    clippy::too_many_arguments,
    reason = "one call site, each argument a different handle"
)]
async fn one(
    upstream: &UpstreamClient,
    live: &Live,
    route: &Route,
    target: &Target,
    message: &str,
    total: Instant,
    reasoning: bool,
    progress: &mut Progress,
) -> Result<Result<(), String>, Miss> {
    let provider = &target.provider;
    let state = live.provider(provider);
    let now = Instant::now();
    let key = match state.key_pool().pick(now, &target.model) {
        Pick::Key(i) => Some(i),
        Pick::NoKey => None,
        Pick::Unavailable { .. } => state.key_pool().pick_earliest(now, &target.model),
    };
    let body = body_for(route, target, message).map_err(|e| e.message.clone())?;
    let headers = [(
        http::header::ACCEPT,
        http::HeaderValue::from_static("text/event-stream"),
    )];
    let first_deadline = (now + target.timeouts.first_event).min(total);
    let outgoing = Outgoing {
        method: "POST",
        path: target.generate_path(true),
        key,
        headers: &headers,
        body,
        replica: None,
    };
    let mut call = upstream
        .send(
            provider,
            state.replicas.as_deref(),
            &target.timeouts,
            outgoing,
            first_deadline,
        )
        .await
        .map_err(|f| crate::admin::probe::describe(&f))?;
    if !(200..300).contains(&call.status) {
        return Err(crate::admin::probe::describe(
            &call.into_failure(first_deadline).await,
        ));
    }
    let mut stdout = std::io::stdout().lock();
    if !call.is_event_stream() {
        // A provider that answered whole despite the stream asked for.
        let raw = call
            .read_all(first_deadline, 64 << 20)
            .await
            .map_err(|f| crate::admin::probe::describe(&f))?;
        let answer = filters::dialect::decode_response(provider.dialect, &raw)
            .map_err(|e| e.message.clone())?;
        progress.clear();
        let text: String = answer.text();
        let _ = writeln!(stdout, "{text}");
        return Ok(Ok(()));
    }
    let dim = std::io::stderr().is_terminal();
    let mut sse = SseDecoder::new();
    let mut decoder = StreamDecoder::new(provider.dialect);
    let (mut raw_events, mut events) = (Vec::new(), Vec::new());
    let mut printed = false;
    let mut reasoned = false;
    let mut ended_with_newline = true;
    loop {
        let deadline = if printed {
            (Instant::now() + target.timeouts.idle).min(total)
        } else {
            first_deadline
        };
        let phase = if printed {
            Phase::Idle
        } else {
            Phase::FirstEvent
        };
        let chunk = match call.read(deadline, phase).await {
            Ok(c) => c,
            Err(f) => {
                let why = crate::admin::probe::describe(&f);
                return if printed { Ok(Err(why)) } else { Err(why) };
            }
        };
        match &chunk {
            Some(bytes) => sse.feed(bytes, &mut raw_events),
            None => sse.finish(&mut raw_events),
        }
        for ev in raw_events.drain(..) {
            decoder.feed(&ev, &mut events);
        }
        if chunk.is_none() {
            decoder.finish(&mut events);
        }
        for ev in events.drain(..) {
            match ev {
                StreamEvent::Text(t) if !t.is_empty() => {
                    if !printed {
                        progress.clear();
                        printed = true;
                    }
                    if std::mem::take(&mut reasoned) {
                        // The reasoning's last line ends before the answer.
                        let _ = writeln!(std::io::stderr());
                    }
                    let _ = stdout.write_all(t.as_bytes());
                    let _ = stdout.flush();
                    ended_with_newline = t.ends_with('\n');
                }
                StreamEvent::Reasoning(r) if reasoning => {
                    progress.clear();
                    reasoned = true;
                    let mut err = std::io::stderr().lock();
                    let _ = if dim {
                        write!(err, "\x1b[2m{r}\x1b[0m")
                    } else {
                        write!(err, "{r}")
                    };
                }
                StreamEvent::Error(e) => {
                    let why = format!("stream error: {}", e.message);
                    return if printed { Ok(Err(why)) } else { Err(why) };
                }
                _ => {}
            }
        }
        if chunk.is_none() {
            break;
        }
    }
    if !ended_with_newline {
        let _ = writeln!(stdout);
    }
    if !printed && sse.overflowed() {
        return Err(describe_overflow());
    }
    Ok(Ok(()))
}

fn describe_overflow() -> String {
    crate::admin::probe::describe(&Failure::BadResponse(
        "an SSE event over the size limit".into(),
    ))
}
