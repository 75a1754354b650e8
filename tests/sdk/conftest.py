"""Starts the real mock-upstream and modelswitch binaries on ephemeral
loopback ports for the official-SDK tests. Every wait is bounded."""

import json
import os
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(os.environ.get("MODELSWITCH_BIN_DIR", ROOT / "target" / "debug"))
KEY = "sk-sdk-test-key"
# Keys with limits (test_limits.py): roomy ones that only report, and one
# per client that allows a single request a minute.
LIMITED_KEY = "sk-sdk-limited-key"
TINY_KEYS = {"openai": "sk-sdk-tiny-openai", "anthropic": "sk-sdk-tiny-anthropic"}

# model name -> ordered (provider, upstream model) chain
MODELS = {
    "oa": [("openai", "mock")],
    "an": [("anthropic", "mock")],
    "oa-3calls": [("openai", "mock;calls=3;interleave=1")],
    "an-3calls": [("anthropic", "mock;calls=3")],
    "oa-429": [("openai", "mock;status=429")],
    "oa-429-solo": [("openai", "mock;status=429;solo=1")],
    "an-429": [("anthropic", "mock;status=429")],
    "oa-500": [("openai", "mock;status=500")],
    "an-529": [("anthropic", "mock;status=529")],
    "oa-400": [("openai", "mock;status=400")],
    "an-400": [("anthropic", "mock;status=400")],
    "oa-mid": [("openai", "mock;fault=close_mid;after=4")],
    "an-mid": [("anthropic", "mock;fault=error_event;after=5")],
    "fallback": [("openai", "mock;status=503"), ("anthropic", "mock;fault=close_before_first"), ("anthropic", "mock")],
}

# One route per upstream dialect, under a short prefix: `{prefix}` plain,
# `{prefix}-3calls` three parallel tool calls, `{prefix}-think` reasoning first
# (over five stream pieces),
# `{prefix}-json` a JSON answer, `{prefix}-shell` a call to the shell tool the
# client offers (the agent CLIs in tests/cli; `tag` only keeps their mock
# statistics apart).
UPSTREAMS = {"oa": "openai", "an": "anthropic", "ge": "gemini", "rs": "openai-responses"}
# MODELSWITCH_TEST_UPSTREAMS=openai,anthropic narrows the upstream dialects
# configured and tested (all four by default).
_wanted = os.environ.get("MODELSWITCH_TEST_UPSTREAMS", ",".join(UPSTREAMS.values())).split(",")
ENABLED = [p for p, prov in UPSTREAMS.items() if prov in _wanted]
for _prefix, _prov in UPSTREAMS.items():
    MODELS.setdefault(_prefix, [(_prov, "mock")])
    MODELS.setdefault(f"{_prefix}-3calls", [(_prov, "mock;calls=3")])
    MODELS[f"{_prefix}-think"] = [(_prov, "mock;reasoning=5")]
    MODELS[f"{_prefix}-json"] = [(_prov, 'mock;text={"city":"Paris","sunny":true}')]
    MODELS[f"{_prefix}-shell"] = [(_prov, f"mock;shell=1;tag={_prefix}")]


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def enabled_providers():
    return {"openai", "anthropic"} | {UPSTREAMS[p] for p in ENABLED}


def _provider(name, kind, base_url):
    return ["", "[[providers]]", f'name = "{name}"', f'type = "{kind}"', f'base_url = "{base_url}"',
            f'api_key = "sk-upstream-{name}"']


def _config(mock_port, port):
    lines = [
        "[server]",
        f'listen = "127.0.0.1:{port}"',
        "threads = 2",
        'first_event_timeout = "5s"',
        'idle_timeout = "5s"',
    ]
    mock = f"http://127.0.0.1:{mock_port}"
    lines += _provider("openai", "openai", f"{mock}/v1")
    lines += _provider("anthropic", "anthropic", mock)
    if "gemini" in enabled_providers():
        lines += _provider("gemini", "gemini", mock)
    if "openai-responses" in enabled_providers():
        lines += _provider("openai-responses", "openai-responses", f"{mock}/v1")
    lines += [
        "",
        "[[api_keys]]",
        f'key = "{KEY}"',
        'name = "sdk"',
        "",
        "[[api_keys]]",
        f'key = "{LIMITED_KEY}"',
        'name = "sdk-limited"',
        "limits = { rpm = 1000, tpm = 10000000, rpd = 100000 }",
    ]
    for client, key in TINY_KEYS.items():
        lines += ["", "[[api_keys]]", f'key = "{key}"', f'name = "sdk-tiny-{client}"', "limits = { rpm = 1 }"]
    for name, chain in MODELS.items():
        if any(p not in enabled_providers() for p, _ in chain):
            continue
        # json.dumps: a JSON string is a valid TOML basic string (models may hold quotes)
        targets = ", ".join(f"{{ provider = {json.dumps(p)}, model = {json.dumps(m)} }}" for p, m in chain)
        lines += ["", "[[models]]", f"name = {json.dumps(name)}", f"targets = [{targets}]"]
    return "\n".join(lines) + "\n"


class Stack:
    def __init__(self, gateway, mock):
        self.gateway = gateway
        self.mock = mock

    def stats(self):
        with urllib.request.urlopen(f"{self.mock}/_mock/stats", timeout=5) as r:
            return json.load(r)

    def last(self, upstream_model):
        """What the last request for `upstream_model` carried to the mock."""
        return self.stats()["last"].get(upstream_model)

    def seen(self, upstream_model):
        """Digests of the last requests for `upstream_model`, oldest first."""
        return self.stats().get("seen", {}).get(upstream_model, [])


@pytest.fixture(scope="session")
def stack():
    mock = subprocess.Popen(
        [str(BIN / "mock-upstream"), "--listen", "127.0.0.1:0", "--threads", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    procs = [mock]
    try:
        line = mock.stdout.readline()  # bounded: the mock prints at once or dies
        mock_port = int(line.strip().rsplit(":", 1)[1])
        tmp = tempfile.mkdtemp(prefix="modelswitch-sdk-")
        for _ in range(5):
            port = _free_port()
            cfg = Path(tmp) / "gateway.toml"
            cfg.write_text(_config(mock_port, port))
            gw = subprocess.Popen(
                [str(BIN / "modelswitch"), "--config", str(cfg)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                env={**os.environ, "RUST_LOG": "warn"},
            )
            deadline = time.time() + 10
            up = False
            while time.time() < deadline and gw.poll() is None:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    up = True
                    break
                except OSError:
                    time.sleep(0.03)
            if up:
                procs.append(gw)
                yield Stack(f"http://127.0.0.1:{port}", f"http://127.0.0.1:{mock_port}")
                return
            gw.kill()
            gw.wait(timeout=5)
        raise RuntimeError("gateway did not start")
    finally:
        for p in procs:
            p.kill()
            p.wait(timeout=5)
