"""The agent CLIs themselves, installed from npm under target/cli by
`make test-cli`: Claude Code (`claude -p … --output-format json`) and Codex
(`codex exec --json`, a `model_providers` entry with `wire_api = "responses"`,
over SSE and, with `supports_websockets = true`, over the Responses
WebSocket) each complete a two-turn task through ModelSwitch, routed to each upstream
dialect. The mock's first answer is a call to the shell tool the CLI offers
(`Bash` for Claude Code, `exec_command`/`shell` for Codex) running
`echo modelswitch-$((6*7))`; its second answer quotes the tool result it was
sent. `modelswitch-42` appears only if a shell really ran the command.
Loopback only; every run is bounded."""

import json
import os
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import sdk_stack

KEY = sdk_stack.KEY
ROOT = sdk_stack.ROOT
CLI_BIN = Path(os.environ.get("MODELSWITCH_CLI_DIR", ROOT / "target" / "cli")) / "node_modules" / ".bin"
UPSTREAMS = {prov: p for p, prov in sdk_stack.UPSTREAMS.items() if p in sdk_stack.ENABLED}
PROOF = "modelswitch-42"
TIMEOUT = 120
TASK = "Run the shell command you are given, then report its output."

# Variables of the outer environment that must not steer the CLIs.
DROP = ("ANTHROPIC_", "CLAUDE_", "OPENAI_", "CODEX_", "GEMINI_", "GOOGLE_")


def base_env(home):
    env = {k: v for k, v in os.environ.items() if not k.startswith(DROP)}
    env.update({
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
    })
    for k in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
        env.pop(k, None)
    return env


def run(cmd, env, cwd):
    try:
        return subprocess.run(cmd, env=env, cwd=cwd, stdin=subprocess.DEVNULL, capture_output=True,
                              text=True, timeout=TIMEOUT)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"{cmd[0]} did not finish in {TIMEOUT} s; stdout tail: {(e.stdout or '')[-2000:]!r}"
                    f" stderr tail: {(e.stderr or '')[-2000:]!r}")


def requests_for(stack, upstream_model):
    return stack.stats()["by_model"].get(upstream_model, 0)


def check_tool_ran(stack, upstream_model, before):
    """Two upstream requests, the second carrying the shell's output."""
    seen = stack.seen(upstream_model)
    n = requests_for(stack, upstream_model) - before
    assert n == 2, f"{n} upstream requests, expected 2 (tool call, then answer): {seen[-n:] if n else seen}"
    second = seen[-1]
    assert PROOF in json.dumps(second["tool_results"]), f"tool output did not reach the upstream: {second}"
    assert PROOF not in json.dumps(seen[-2]["tool_results"])


def upstream_model(prefix):
    return dict(sdk_stack.MODELS[f"{prefix}-shell"])[sdk_stack.UPSTREAMS[prefix]]


def need(binary):
    path = CLI_BIN / binary
    if binary == "claude":
        # The native binary ships in a platform package; the launcher in .bin
        # is only linked to it by an install script npm may have skipped.
        scope = CLI_BIN.parent / "@anthropic-ai"
        native = sorted(scope.glob("claude-code-linux-*/claude")) if scope.is_dir() else []
        if native:
            path = native[0]
    if not path.exists():
        pytest.fail(f"{path} is missing: run `make test-cli` (it installs the CLIs under target/cli)")
    return str(path)


def claude_env(home, base_url, prefix):
    env = base_env(home)
    env.update({
        "ANTHROPIC_BASE_URL": base_url,
        "ANTHROPIC_AUTH_TOKEN": KEY,
        "ANTHROPIC_MODEL": f"{prefix}-shell",
        "ANTHROPIC_SMALL_FAST_MODEL": f"{prefix}-shell",
        "ANTHROPIC_DEFAULT_HAIKU_MODEL": f"{prefix}-shell",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "CLAUDE_CODE_DISABLE_NONSTREAMING_FALLBACK": "1",
        "DISABLE_AUTOUPDATER": "1",
        "DISABLE_TELEMETRY": "1",
        "DISABLE_ERROR_REPORTING": "1",
        "DISABLE_COST_WARNINGS": "1",
        "API_TIMEOUT_MS": "60000",
    })
    return env


def claude_two_turn_task(stack, tmp_path, prefix, base_url):
    claude = need("claude")
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    env = claude_env(home, base_url, prefix)
    model = upstream_model(prefix)
    before = requests_for(stack, model)
    p = run([claude, "-p", TASK, "--output-format", "json", "--allowedTools", "Bash", "--max-turns", "4"],
            env, work)
    assert p.returncode == 0, f"exit {p.returncode}\nstdout: {p.stdout[-3000:]}\nstderr: {p.stderr[-3000:]}"
    out = json.loads(p.stdout)
    assert out["is_error"] is False, out
    assert out["subtype"] == "success", out
    assert out["num_turns"] == 2, out
    assert out["result"].startswith("Tool results: "), out["result"]
    assert PROOF in out["result"], out["result"]
    assert out["usage"]["input_tokens"] > 0 and out["usage"]["output_tokens"] > 0, out["usage"]
    check_tool_ran(stack, model, before)


@pytest.mark.parametrize("upstream", list(UPSTREAMS))
def test_claude_code_two_turn_shell_task(stack, tmp_path, upstream):
    claude_two_turn_task(stack, tmp_path, UPSTREAMS[upstream], stack.gateway)


def test_claude_code_at_the_seed_claude_code_base_url(stack, tmp_path):
    """Setups made for the gateway ModelSwitch replaces point Claude Code at
    `…/api/v1/claude-code`; the CLI appends `/v1/messages` (and
    `/count_tokens`) to it. One upstream dialect is enough: the entry only
    routes to the same Anthropic Messages endpoint."""
    prefix = "an" if "an" in sdk_stack.ENABLED else sdk_stack.ENABLED[0]
    claude_two_turn_task(stack, tmp_path, prefix, f"{stack.gateway}/api/v1/claude-code")


def codex_config(stack, prefix, transport="sse"):
    return "\n".join([
        f'model = "{prefix}-shell"',
        'model_provider = "modelswitch"',
        "check_for_update_on_startup = false",
        # Web search runs only on OpenAI's side: the gateway refuses it for
        # models served by anyone else, so it is off (as the README says).
        'web_search = "disabled"',
        'approval_policy = "never"',
        'sandbox_mode = "danger-full-access"',
        "",
        "[model_providers.modelswitch]",
        'name = "ModelSwitch"',
        f'base_url = "{stack.gateway}/v1"',
        'wire_api = "responses"',
        'env_key = "MODELSWITCH_API_KEY"',
        "request_max_retries = 0",
        "stream_max_retries = 0",
        # The Responses WebSocket transport: `GET /v1/responses` upgraded,
        # one `response.create` frame per turn on the same socket.
        *(["supports_websockets = true"] if transport == "websocket" else []),
        "",
        "[analytics]",
        "enabled = false",
        "",
    ])


def upgrades(stack):
    """WebSocket upgrades the gateway has answered (and seen end): its
    requests metric with status 101, logged when a socket closes."""
    with urllib.request.urlopen(f"{stack.gateway}/metrics", timeout=5) as r:
        text = r.read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("modelswitch_requests_total{") and 'status="101"' in line)


@pytest.mark.parametrize("transport", ["sse", "websocket"])
@pytest.mark.parametrize("upstream", list(UPSTREAMS))
def test_codex_exec_two_turn_shell_task(stack, tmp_path, upstream, transport):
    prefix = UPSTREAMS[upstream]
    codex = need("codex")
    home, work, codex_home = tmp_path / "home", tmp_path / "work", tmp_path / "codex"
    for d in (home, work, codex_home):
        d.mkdir()
    (codex_home / "config.toml").write_text(codex_config(stack, prefix, transport))
    env = base_env(home)
    env.update({"CODEX_HOME": str(codex_home), "MODELSWITCH_API_KEY": KEY})
    # Codex says on stderr which transport it opened (and any fallback).
    env["RUST_LOG"] = "codex_api=info,codex_core=warn"
    model = upstream_model(prefix)
    before = requests_for(stack, model)
    upgraded = upgrades(stack)
    p = run([codex, "exec", "--json", "--skip-git-repo-check", "--dangerously-bypass-approvals-and-sandbox", TASK],
            env, work)
    assert p.returncode == 0, f"exit {p.returncode}\nstdout: {p.stdout[-3000:]}\nstderr: {p.stderr[-3000:]}"
    if transport == "websocket":
        # The socket was really used: Codex connected (no fallback to SSE)
        # and the gateway answered one upgrade for the whole task.
        assert "successfully connected to Responses WebSocket" in p.stderr, p.stderr[-3000:]
        assert "fallback" not in p.stderr.lower(), p.stderr[-3000:]
        deadline = time.time() + 10
        while upgrades(stack) == upgraded and time.time() < deadline:
            time.sleep(0.1)
        assert upgrades(stack) == upgraded + 1
    else:
        assert "Responses WebSocket" not in p.stderr, p.stderr[-3000:]
        assert upgrades(stack) == upgraded
    events = [json.loads(line) for line in p.stdout.splitlines() if line.startswith("{")]
    kinds = [e["type"] for e in events]
    assert "turn.completed" in kinds and "turn.failed" not in kinds, kinds
    items = [e["item"] for e in events if e["type"] == "item.completed"]
    commands = [i for i in items if i.get("type") == "command_execution"]
    assert commands, f"no command ran: {items}"
    assert PROOF in commands[0].get("aggregated_output", ""), commands[0]
    messages = [i["text"] for i in items if i.get("type") == "agent_message"]
    assert messages, items
    assert messages[-1].startswith("Tool results: ") and PROOF in messages[-1], messages[-1]
    check_tool_ran(stack, model, before)
