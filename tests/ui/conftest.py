"""Starts the mock upstream and the gateway (with the UI bundled) on
ephemeral loopback ports, and Debian's chromium through Playwright for the
browser tests. Every wait is bounded; every page visited is screenshotted
under target/ui-screenshots/."""

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(os.environ.get("MODELSWITCH_BIN_DIR", ROOT / "target" / "debug"))
SHOTS = Path(os.environ.get("MODELSWITCH_SCREENSHOTS", ROOT / "target" / "ui-screenshots"))
CHROMIUM = os.environ.get("MODELSWITCH_CHROMIUM", "/usr/bin/chromium")
TIMEOUT_MS = 15_000

ADMIN_KEY = "sk-ui-admin-key-0001"
VIEWER_KEY = "sk-ui-viewer-key-0001"
USER_KEY = "sk-ui-user-key-0001"

# model name -> ordered (provider, upstream model) chain
MODELS = {
    "chat": [("openai", "mock")],
    "order": [("openai", "mock;tag=first"), ("openai", "mock;tag=second")],
    "think": [("openai", "mock;reasoning=5;calls=1")],
    "claude": [("anthropic", "mock")],
    # cache reads and writes in every answer, priced (the Sessions page)
    "cached": [("anthropic", "mock;cached=30;cache_write=10")],
}

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _config(tmp, mock_port, port):
    mock = f"http://127.0.0.1:{mock_port}"
    lines = [
        "# The browser tests' gateway.",
        "[server]",
        f'listen = "127.0.0.1:{port}"',
        "threads = 2",
        'first_event_timeout = "5s"',
        'idle_timeout = "5s"',
        "",
        "[storage]",
        f"sqlite_path = {json.dumps(str(Path(tmp) / 'modelswitch.db'))}",
        "record_usage = true",
        "",
        "[logging]",
        "conversations = true",
        f"dir = {json.dumps(str(Path(tmp) / 'conversations'))}",
        "",
        "[[providers]]",
        'name = "openai"',
        'type = "openai"',
        f'base_url = "{mock}/v1"',
        'api_key = "sk-upstream-openai-secret"',
        "",
        "[[providers]]",
        'name = "anthropic"',
        'type = "anthropic"',
        f'base_url = "{mock}"',
        'api_key = "sk-upstream-anthropic-secret"',
    ]
    for name, key, roles in [
        ("ui-admin", ADMIN_KEY, '["admin"]'),
        ("ui-viewer", VIEWER_KEY, '["viewer"]'),
        ("ui-user", USER_KEY, '["user"]'),
    ]:
        lines += ["", "[[api_keys]]", f'key = "{key}"', f'name = "{name}"', f"roles = {roles}"]
    lines += [
        "",
        "[[prices]]",
        'model = "mock;cached=*"',
        'currency = "USD"',
        "input = 1",
        "output = 2",
        'cache_read = "0.5"',
        "cache_write = 4",
    ]
    for name, chain in MODELS.items():
        targets = ", ".join(f"{{ provider = {json.dumps(p)}, model = {json.dumps(m)} }}" for p, m in chain)
        lines += ["", "[[models]]", f"name = {json.dumps(name)}", f"targets = [{targets}]"]
    return "\n".join(lines) + "\n"


class Stack:
    def __init__(self, gateway, mock, config):
        self.gateway = gateway
        self.mock = mock
        self.config = config

    def api(self, method, path, key=ADMIN_KEY, body=None, headers=None):
        """(status, parsed body) of an admin API call with a key."""
        data = None if body is None else json.dumps(body).encode()
        h = {"authorization": f"Bearer {key}", "content-type": "application/json", **(headers or {})}
        req = urllib.request.Request(self.gateway + path, data=data, method=method, headers=h)
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                raw = r.read()
                return r.status, json.loads(raw) if raw else None
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                return e.code, json.loads(raw)
            except ValueError:
                return e.code, raw


@pytest.fixture(scope="session")
def stack():
    mock = subprocess.Popen(
        [str(BIN / "mock-upstream"), "--listen", "127.0.0.1:0", "--threads", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    procs = [mock]
    tmp = tempfile.mkdtemp(prefix="modelswitch-ui-")
    try:
        line = mock.stdout.readline()  # bounded: the mock prints at once or dies
        mock_port = int(line.strip().rsplit(":", 1)[1])
        for _ in range(5):
            port = _free_port()
            cfg = Path(tmp) / "gateway.toml"
            cfg.write_text(_config(tmp, mock_port, port))
            log = open(Path(tmp) / "gateway.log", "wb")
            gw = subprocess.Popen(
                [str(BIN / "modelswitch"), "--config", str(cfg)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "RUST_LOG": "info"},
            )
            deadline = time.time() + 10
            up = False
            while time.time() < deadline and gw.poll() is None:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    up = True
                    break
                except OSError:
                    time.sleep(0.05)
            if up:
                procs.append(gw)
                yield Stack(f"http://127.0.0.1:{port}", f"http://127.0.0.1:{mock_port}", cfg)
                return
            gw.kill()
            gw.wait(timeout=5)
        raise RuntimeError("gateway did not start: " + (Path(tmp) / "gateway.log").read_text()[-2000:])
    finally:
        for p in procs:
            p.kill()
            p.wait(timeout=5)
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="session")
def playwright_driver():
    with sync_playwright() as p:
        yield p


@pytest.fixture
def page(playwright_driver):
    """A page in a fresh browser profile (its own cookies and storage)."""
    profile = tempfile.mkdtemp(prefix="modelswitch-ui-chromium-")
    ctx = playwright_driver.chromium.launch_persistent_context(
        profile,
        executable_path=CHROMIUM,
        headless=True,
        args=CHROMIUM_ARGS,
        viewport={"width": 1280, "height": 900},
        timeout=TIMEOUT_MS,
    )
    ctx.set_default_timeout(TIMEOUT_MS)
    ctx.set_default_navigation_timeout(TIMEOUT_MS)
    pg = ctx.pages[0] if ctx.pages else ctx.new_page()
    errors = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.js_errors = errors
    # Console errors other than HTTP statuses the flows expect (a CSP
    # refusal shows up here), and any request to
    # another origin than the gateway's: the UI must work offline.
    console = []
    pg.on("console", lambda m: console.append(m.text) if m.type == "error" and "Failed to load resource" not in m.text else None)
    pg.console_errors = console
    foreign = []
    pg.on("request", lambda r: foreign.append(r.url) if not r.url.startswith("http://127.0.0.1:") else None)
    pg.foreign_requests = foreign
    try:
        yield pg
    finally:
        ctx.close()
        shutil.rmtree(profile, ignore_errors=True)


def shot(page, name):
    """Saves a full-page screenshot as target/ui-screenshots/<name>.png."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True, timeout=TIMEOUT_MS)


def login(page, gateway, key=ADMIN_KEY):
    page.goto(gateway + "/ui/")
    page.locator("#login-secret").fill(key)
    page.locator("#login-submit").click()
    page.locator("#logout").wait_for()


def until(check, timeout=15.0, every=0.3):
    """Polls `check()` until it returns something truthy (bounded)."""
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        last = check()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"not true within {timeout} s (last: {last!r})")
