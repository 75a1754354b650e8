//! The Responses WebSocket transport (Codex `supports_websockets = true`)
//! over real sockets with a real WebSocket client: a tool round trip on
//! one socket against an OpenAI Chat and an Anthropic upstream (the
//! events the same as the SSE POST's, in order and type), a warm-up
//! (`generate: false`) continued with an empty delta, auth before the
//! upgrade, 426 for a plain GET, `error` frames (the socket stays) for an
//! unknown model, a malformed frame and a second request while one runs,
//! ping/pong, a binary frame closed with 1003, a client closing
//! mid-stream cancelling the upstream call, an idle socket closed after
//! `client_idle_timeout`, and a shutdown closing sockets with 1001 once
//! their response has ended.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

const WAIT: Duration = Duration::from_secs(15);

fn gateway_config(m: &Proc) -> String {
    config(
        m.addr,
        &[
            ("ws-oa", &[("openai", "mock;shell=1")]),
            ("ws-an", &[("anthropic", "mock;shell=1")]),
            ("ws-slow", &[("openai", "mock;chunks=400;delay_ms=25")]),
        ],
        "",
    )
}

async fn connect(addr: SocketAddr, key: &str) -> Ws {
    let mut req = format!("ws://{addr}/v1/responses")
        .into_client_request()
        .unwrap();
    let h = req.headers_mut();
    h.insert("authorization", format!("Bearer {key}").parse().unwrap());
    h.insert(
        "openai-beta",
        "responses_websockets=2026-02-06".parse().unwrap(),
    );
    h.insert("session_id", "ws-session-1".parse().unwrap());
    let (ws, resp) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(req))
        .await
        .expect("connect in time")
        .expect("upgrade");
    assert_eq!(resp.status(), 101);
    ws
}

async fn send(ws: &mut Ws, frame: Value) {
    ws.send(Message::text(frame.to_string())).await.unwrap();
}

/// The next text frame as JSON (pings and pongs skipped).
async fn next_json(ws: &mut Ws) -> Value {
    loop {
        let msg = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("a frame in time")
            .expect("socket open")
            .expect("a good frame");
        match msg {
            Message::Text(t) => return serde_json::from_str(t.as_str()).unwrap(),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("unexpected frame: {other:?}"),
        }
    }
}

/// Frames until the response ends (`response.completed`, `.incomplete`,
/// `.failed`, or an `error`).
async fn response(ws: &mut Ws) -> Vec<Value> {
    let mut out = Vec::new();
    loop {
        let v = next_json(ws).await;
        let t = v["type"].as_str().unwrap_or_default().to_owned();
        out.push(v);
        if matches!(
            t.as_str(),
            "response.completed" | "response.incomplete" | "response.failed" | "error"
        ) {
            return out;
        }
    }
}

fn types(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["type"].as_str().unwrap_or_default().to_owned())
        .collect()
}

fn shell_tool() -> Value {
    json!([{"type": "function", "name": "shell", "description": "run a command",
            "parameters": {"type": "object", "properties":
                {"command": {"type": "array", "items": {"type": "string"}}}}}])
}

fn user(text: &str) -> Value {
    json!({"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]})
}

/// What the SSE POST yields for the same body.
fn post_events(addr: SocketAddr, body: &Value) -> Vec<Value> {
    let mut body = body.clone();
    body["stream"] = true.into();
    let r = post_json(addr, "/v1/responses", KEY, &body);
    assert_eq!(r.status, 200, "{}", r.text());
    r.events().into_iter().map(|(_, v)| v).collect()
}

/// Turn 1 → a function call; turn 2 (previous_response_id + the call's
/// output, nothing else) → the text answer; both as the POST streams them.
async fn tool_round_trip(addr: SocketAddr, model: &str, warm_up: bool) {
    let mut ws = connect(addr, KEY).await;
    let first_input = json!([user("run the check")]);
    let mut turn1 = json!({
        "model": model, "instructions": "be brief", "input": first_input,
        "tools": shell_tool(), "tool_choice": "auto", "store": false,
    });
    let mut frame1 = turn1.clone();
    frame1["type"] = "response.create".into();
    if warm_up {
        // Codex's warm-up: nothing generated, and the first turn then
        // continues it with an empty delta.
        let mut warm = frame1.clone();
        warm["generate"] = false.into();
        send(&mut ws, warm).await;
        let events = response(&mut ws).await;
        assert_eq!(types(&events), ["response.created", "response.completed"]);
        assert_eq!(events[1]["response"]["output"], json!([]));
        let warm_id = events[1]["response"]["id"].as_str().unwrap().to_owned();
        frame1["previous_response_id"] = warm_id.into();
        frame1["input"] = json!([]);
    }
    send(&mut ws, frame1).await;
    let ws1 = response(&mut ws).await;
    let done = ws1.last().unwrap();
    assert_eq!(done["type"], "response.completed", "{ws1:?}");
    let output = done["response"]["output"].as_array().unwrap().clone();
    let call = output
        .iter()
        .find(|i| i["type"] == "function_call")
        .unwrap_or_else(|| panic!("no function_call in {output:?}"));
    assert_eq!(call["name"], "shell");
    let call_id = call["call_id"].as_str().unwrap().to_owned();
    let id1 = done["response"]["id"].as_str().unwrap().to_owned();

    // The same request by POST: the same events, in order.
    turn1["input"] = first_input.clone();
    assert_eq!(types(&ws1), types(&post_events(addr, &turn1)));

    let result = json!({"type": "function_call_output", "call_id": call_id,
                        "output": "modelswitch-42"});
    send(
        &mut ws,
        json!({
            "type": "response.create", "model": model, "instructions": "be brief",
            "previous_response_id": id1, "input": [result.clone()],
            "tools": shell_tool(), "tool_choice": "auto", "store": false,
        }),
    )
    .await;
    let ws2 = response(&mut ws).await;
    let done = ws2.last().unwrap();
    assert_eq!(done["type"], "response.completed", "{ws2:?}");
    let text = done["response"]["output"].to_string();
    assert!(text.contains("Tool results: modelswitch-42"), "{text}");

    // By POST with store: false the client sends the whole conversation.
    let mut whole = first_input.as_array().unwrap().clone();
    whole.extend(output);
    whole.push(result);
    let turn2 = json!({"model": model, "instructions": "be brief", "input": whole,
                       "tools": shell_tool(), "tool_choice": "auto", "store": false});
    assert_eq!(types(&ws2), types(&post_events(addr, &turn2)));
    ws.close(None).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tool_round_trips_on_one_socket_like_the_sse_post() {
    let m = mock();
    let gw = live_gateway(&gateway_config(&m));
    let mark = gw.log_mark();
    tool_round_trip(gw.addr(), "ws-oa", false).await;
    tool_round_trip(gw.addr(), "ws-an", true).await;
    // The upgrade is logged (101) and each response is a request of its
    // own, as the POST would be.
    assert!(
        gw.wait_for_log(mark, "GET /v1/responses status=101", WAIT),
        "{}",
        gw.log_since(mark)
    );
    let log = gw.log_since(mark);
    let ws_posts = log
        .lines()
        .filter(|l| l.contains("POST /v1/responses status=200") && l.contains("model=ws-"))
        .count();
    // 2 socket turns + 2 SSE turns per model.
    assert_eq!(ws_posts, 8, "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_before_the_upgrade() {
    let m = mock();
    let gw = gateway(&gateway_config(&m));
    let upgrade = [
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Version", "13"),
        ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ];
    // A bad key: the POST's 401, before any upgrade.
    let mut h = upgrade.to_vec();
    h.push(("Authorization", "Bearer sk-wrong"));
    let r = request(gw.addr, "GET", "/v1/responses", &h, b"");
    assert_eq!(r.status, 401, "{}", r.text());
    assert_eq!(r.json()["error"]["code"], "invalid_api_key", "{}", r.text());
    // A plain GET: 426 saying what to send.
    let auth = format!("Bearer {KEY}");
    let r = request(
        gw.addr,
        "GET",
        "/v1/responses",
        &[("Authorization", &auth)],
        b"",
    );
    assert_eq!(r.status, 426, "{}", r.text());
    assert_eq!(r.header("upgrade"), Some("websocket"));
    assert!(r.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("WebSocket"));
    // A version other than 13.
    let mut h = upgrade.to_vec();
    h[2] = ("Sec-WebSocket-Version", "8");
    h.push(("Authorization", &auth));
    let r = request(gw.addr, "GET", "/v1/responses", &h, b"");
    assert_eq!(r.status, 426, "{}", r.text());
    assert_eq!(r.header("sec-websocket-version"), Some("13"));
    // No key nonce.
    let mut h = upgrade[..3].to_vec();
    h.push(("Authorization", &auth));
    let r = request(gw.addr, "GET", "/v1/responses", &h, b"");
    assert_eq!(r.status, 400, "{}", r.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_frames_and_the_socket_stays() {
    let m = mock();
    let gw = gateway(&gateway_config(&m));
    let mut ws = connect(gw.addr, KEY).await;

    send(
        &mut ws,
        json!({"type": "response.create", "model": "no-such-model", "input": "hi"}),
    )
    .await;
    let e = next_json(&mut ws).await;
    assert_eq!(e["type"], "error", "{e}");
    assert_eq!(e["status"], 404, "{e}");
    assert!(e["error"]["message"]
        .as_str()
        .unwrap()
        .contains("no-such-model"));

    ws.send(Message::text("{not json")).await.unwrap();
    let e = next_json(&mut ws).await;
    assert_eq!(e["type"], "error", "{e}");
    assert_eq!(e["status"], 400, "{e}");
    assert_eq!(e["error"]["type"], "invalid_request_error", "{e}");

    send(&mut ws, json!({"type": "session.update"})).await;
    let e = next_json(&mut ws).await;
    assert_eq!(
        (e["type"].as_str(), e["status"].as_u64()),
        (Some("error"), Some(400))
    );

    // A key that may not use the model: the POST's 403, as a frame.
    let mut limited = connect(gw.addr, LIMITED_KEY).await;
    send(
        &mut limited,
        json!({"type": "response.create", "model": "ws-oa", "input": "hi"}),
    )
    .await;
    let e = next_json(&mut limited).await;
    assert_eq!(
        (e["type"].as_str(), e["status"].as_u64()),
        (Some("error"), Some(403)),
        "{e}"
    );

    // Ping → pong with the same payload.
    ws.send(Message::Ping(b"are-you-there".to_vec().into()))
        .await
        .unwrap();
    let pong = tokio::time::timeout(WAIT, async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Pong(p))) => return p,
                Some(Ok(_)) => continue,
                other => panic!("no pong: {other:?}"),
            }
        }
    })
    .await
    .expect("pong in time");
    assert_eq!(&pong[..], b"are-you-there");

    // Still usable after all that.
    send(
        &mut ws,
        json!({"type": "response.create", "model": "oa", "input": "still here"}),
    )
    .await;
    let events = response(&mut ws).await;
    assert_eq!(
        events.last().unwrap()["type"],
        "response.completed",
        "{events:?}"
    );

    // Binary frames: closed with 1003.
    ws.send(Message::binary(vec![1u8, 2, 3])).await.unwrap();
    let close = tokio::time::timeout(WAIT, async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Close(f))) => return f,
                Some(Ok(_)) => continue,
                other => panic!("no close: {other:?}"),
            }
        }
    })
    .await
    .expect("close in time");
    assert_eq!(close.unwrap().code, CloseCode::Unsupported);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_response_at_a_time_and_a_close_cancels_it() {
    let m = mock();
    let gw = gateway(&gateway_config(&m));
    let aborted = || mock_stats(m.addr)["aborted"]["mock;chunks=400;delay_ms=25"].as_u64();
    assert_eq!(aborted(), None);
    let mut ws = connect(gw.addr, KEY).await;
    send(
        &mut ws,
        json!({"type": "response.create", "model": "ws-slow", "input": "a long one"}),
    )
    .await;
    // The stream is under way.
    let mut seen = Vec::new();
    while !seen
        .iter()
        .any(|e: &Value| e["type"] == "response.output_text.delta")
    {
        seen.push(next_json(&mut ws).await);
    }
    // A second response.create while it runs: an error frame, not a drop.
    send(
        &mut ws,
        json!({"type": "response.create", "model": "oa", "input": "me too"}),
    )
    .await;
    let e = loop {
        let v = next_json(&mut ws).await;
        if v["type"] == "error" {
            break v;
        }
        assert_eq!(
            v["type"].as_str().map(|t| t.starts_with("response.")),
            Some(true),
            "{v}"
        );
    };
    assert_eq!(e["status"], 409, "{e}");
    assert_eq!(e["error"]["code"], "response_in_progress", "{e}");

    // The client leaves mid-stream: the upstream call is dropped.
    ws.close(None).await.unwrap();
    drop(ws);
    let cancelled = wait_until(WAIT, || aborted() == Some(1));
    assert!(cancelled, "{}", mock_stats(m.addr));
}

/// The next close frame's code (other frames skipped).
async fn close_code(ws: &mut Ws) -> Option<CloseCode> {
    tokio::time::timeout(WAIT, async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Close(f))) => return f.map(|f| f.code),
                Some(Ok(_)) => continue,
                other => panic!("no close frame: {other:?}"),
            }
        }
    })
    .await
    .expect("a close in time")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_socket_closes() {
    let m = mock();
    // The head deadline is long past by then: it bounds the upgrade's
    // head, not the socket.
    let gw = gateway(&config(
        m.addr,
        &[],
        "client_idle_timeout = \"2s\"\nclient_header_timeout = \"1s\"",
    ));
    let mut ws = connect(gw.addr, KEY).await;
    let started = std::time::Instant::now();
    assert_eq!(close_code(&mut ws).await, Some(CloseCode::Normal));
    assert!(started.elapsed() >= Duration::from_millis(1900));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shutdown_closes_sockets_with_1001_after_their_response() {
    let m = mock();
    let mut gw = gateway(&config(
        m.addr,
        &[("ws-short", &[("openai", "mock;chunks=20;delay_ms=50")])],
        "shutdown_grace = \"10s\"",
    ));
    let mut idle = connect(gw.addr, KEY).await;
    let mut busy = connect(gw.addr, KEY).await;
    send(
        &mut busy,
        json!({"type": "response.create", "model": "ws-short", "input": "finish me"}),
    )
    .await;
    assert_eq!(next_json(&mut busy).await["type"], "response.created");
    let status = std::process::Command::new("kill")
        .args(["-TERM", &gw.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    // The idle socket goes at once; the busy one finishes its response.
    assert_eq!(close_code(&mut idle).await, Some(CloseCode::Away));
    let rest = response(&mut busy).await;
    assert_eq!(
        rest.last().unwrap()["type"],
        "response.completed",
        "{rest:?}"
    );
    assert_eq!(close_code(&mut busy).await, Some(CloseCode::Away));
    assert!(
        wait_until(WAIT, || gw.try_wait().is_some()),
        "the gateway exits"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_over_the_body_limit_closes_with_1009() {
    let m = mock();
    let gw = gateway(&config(m.addr, &[], "max_request_body_bytes = 4096"));
    let mut ws = connect(gw.addr, KEY).await;
    let big = json!({"type": "response.create", "model": "oa", "input": "x".repeat(8192)});
    // The same cap as a POST body.
    ws.send(Message::text(big.to_string())).await.unwrap();
    assert_eq!(close_code(&mut ws).await, Some(CloseCode::Size));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fragmented_message_is_one_frame_of_the_protocol() {
    use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
    use tokio_tungstenite::tungstenite::protocol::frame::Frame;
    let m = mock();
    let gw = gateway(&config(m.addr, &[], ""));
    let mut ws = connect(gw.addr, KEY).await;
    let text = json!({"type": "response.create", "model": "oa", "input": "in pieces"}).to_string();
    let (a, b) = text.split_at(text.len() / 2);
    let first = Frame::message(a.as_bytes().to_vec(), OpCode::Data(Data::Text), false);
    let rest = Frame::message(b.as_bytes().to_vec(), OpCode::Data(Data::Continue), true);
    ws.send(Message::Frame(first)).await.unwrap();
    // A control frame may come between fragments (RFC 6455 §5.4).
    ws.send(Message::Ping(b"mid".to_vec().into()))
        .await
        .unwrap();
    ws.send(Message::Frame(rest)).await.unwrap();
    let events = response(&mut ws).await;
    let done = events.last().unwrap();
    assert_eq!(done["type"], "response.completed", "{events:?}");
    assert!(
        done["response"]["output"].to_string().contains("in pieces"),
        "{done}"
    );
}
