"""Claude Code, the real CLI, driven through a routing rule set (the README's
Claude Code fleet recipe, cut to two models): the work it hands its small
fast "haiku" model must reach the small model and its main turns the big
one, checked at the mock upstream. In `-p` mode Claude Code sends no title
or topic chores, so the haiku work here is a subagent defined with
`model: haiku` (as Claude Code's own Explore agent is): the big model's
first answer calls the subagent tool, the subagent's turn goes out under
Claude Code's haiku name, and its answer comes back as the tool result of
the big model's second turn. Own mock and gateway, so counts are exact."""

import json
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import sdk_stack
from test_cli import base_env, need, run

KEY = "sk-fleet-developer-key"
BIG = "mock;agent=scout;tag=fleet-big"
# Plain text even though the subagent is offered tools.
SMALL = "mock;calls=0;text=Scout report from the small model;tag=fleet-small"
AGENTS = {"scout": {"description": "Reports back in one line.", "prompt": "You are a scout.",
                    "model": "haiku"}}


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _config(mock_port, port):
    mock = f"http://127.0.0.1:{mock_port}"
    return f"""
[server]
listen = "127.0.0.1:{port}"
threads = 2
first_event_timeout = "5s"
idle_timeout = "5s"

[[providers]]
name = "main-vendor"
type = "anthropic"
base_url = "{mock}"
api_key = "sk-upstream-main"

[[providers]]
name = "cheap-vendor"
type = "openai"
base_url = "{mock}/v1"
api_key = "sk-upstream-cheap"

[[models]]
name = "big"
targets = [{{ provider = "main-vendor", model = "{BIG}" }}]

[[models]]
name = "small"
targets = [{{ provider = "cheap-vendor", model = "{SMALL}" }}]

[routing]
default_model = "big"

[[routing.rules]]
name = "background"
when = {{ background = true }}
use = "small"

[[api_keys]]
key = "{KEY}"
name = "developer"
roles = ["user"]
"""


@pytest.fixture(scope="module")
def fleet():
    mock = subprocess.Popen([str(sdk_stack.BIN / "mock-upstream"), "--listen", "127.0.0.1:0", "--threads", "2"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    procs = [mock]
    try:
        mock_port = int(mock.stdout.readline().strip().rsplit(":", 1)[1])
        cfg = Path(tempfile.mkdtemp(prefix="modelswitch-fleet-")) / "gateway.toml"
        for _ in range(5):
            port = _free_port()
            cfg.write_text(_config(mock_port, port))
            gw = subprocess.Popen([str(sdk_stack.BIN / "modelswitch"), "--config", str(cfg)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            deadline = time.time() + 10
            while time.time() < deadline and gw.poll() is None:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    procs.append(gw)
                    yield f"http://127.0.0.1:{port}", f"http://127.0.0.1:{mock_port}"
                    return
                except OSError:
                    time.sleep(0.03)
            gw.kill()
            gw.wait(timeout=5)
        raise RuntimeError("gateway did not start")
    finally:
        for p in procs:
            p.kill()
            p.wait(timeout=5)


def test_claude_code_background_requests_reach_the_small_model(fleet, tmp_path):
    gateway, mock = fleet
    claude = need("claude")
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    env = base_env(home)
    env.update({
        "ANTHROPIC_BASE_URL": gateway,
        "ANTHROPIC_AUTH_TOKEN": KEY,
        # Claude Code's own model names: neither is configured; the rule
        # and the default route them.
        "ANTHROPIC_MODEL": "claude-sonnet-4-5",
        "ANTHROPIC_SMALL_FAST_MODEL": "claude-haiku-4-5",
        "ANTHROPIC_DEFAULT_HAIKU_MODEL": "claude-haiku-4-5",
        "DISABLE_AUTOUPDATER": "1",
        "DISABLE_TELEMETRY": "1",
        "DISABLE_ERROR_REPORTING": "1",
        "DISABLE_COST_WARNINGS": "1",
        "API_TIMEOUT_MS": "60000",
    })
    task = "Ask the scout subagent for its report, then tell me what it said."
    p = run([claude, "-p", task, "--output-format", "json", "--agents", json.dumps(AGENTS),
             "--max-turns", "4"], env, work)
    assert p.returncode == 0, f"exit {p.returncode}\nstdout: {p.stdout[-3000:]}\nstderr: {p.stderr[-3000:]}"
    out = json.loads(p.stdout)
    assert out["is_error"] is False and out["num_turns"] == 2, out
    assert "Scout report from the small model" in out["result"], out["result"]

    with urllib.request.urlopen(f"{mock}/_mock/stats", timeout=5) as r:
        stats = json.load(r)
    by_model = stats["by_model"]
    # The two main turns (the subagent call, then the answer quoting its
    # report) and nothing else reached the big model, in its dialect.
    assert by_model.get(BIG) == 2, by_model
    assert stats["last"][BIG]["endpoint"] == "messages", stats["last"][BIG]
    # The subagent's haiku turn reached the small one, in the small
    # vendor's own dialect.
    assert by_model.get(SMALL, 0) >= 1, by_model
    assert stats["last"][SMALL]["endpoint"] == "chat", stats["last"][SMALL]
    assert "Scout report" in json.dumps(stats["seen"][BIG][-1]["tool_results"]), stats["seen"][BIG][-1]
