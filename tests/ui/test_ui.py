"""The admin web UI in headless Chromium against a real gateway and the
mock upstream: login, keys, requests, usage, conversations, models, config,
language, the viewer role and a user key's own view (usage, requests,
agent sessions). Each test screenshots the pages it visits."""

import json
import math
import re
import subprocess
import time
import urllib.request

from openai import AuthenticationError, OpenAI

from conftest import BIN, ADMIN_KEY, USER_KEY, VIEWER_KEY, login, shot, until

PAGES = ["providers", "models", "keys", "usage", "requests", "sessions", "logs", "conversations", "config"]


def client(stack, key=USER_KEY):
    return OpenAI(base_url=stack.gateway + "/v1", api_key=key, timeout=15, max_retries=0)


def served_target(stack, model, key=USER_KEY):
    raw = client(stack, key).chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": "hello"}]
    )
    return raw.headers.get("x-modelswitch-target")


UNLABELLED = """() => [...document.querySelectorAll('input, select, textarea, button')]
  .filter((el) => !(el.labels && el.labels.length) && !el.getAttribute('aria-label')
    && !(el.tagName === 'BUTTON' && el.textContent.trim()))
  .map((el) => el.outerHTML.slice(0, 120))"""


def unlabelled(page):
    """Controls a screen reader could not name."""
    return page.evaluate(UNLABELLED)


def goto(page, stack, path):
    """A client-side route through the nav when it is there, else a load."""
    page.goto(stack.gateway + path)
    page.locator("#main h1").first.wait_for()


def test_a_wrong_key_is_refused_and_an_admin_key_logs_in(stack, page):
    page.goto(stack.gateway + "/ui/")
    page.locator("#login-secret").wait_for()
    page.locator("#login-secret").fill("sk-not-a-key-at-all")
    page.locator("#login-submit").click()
    page.locator("#login-error").wait_for()
    shot(page, "login-refused")
    page.locator("#login-secret").fill(ADMIN_KEY)
    page.locator("#login-submit").click()
    page.locator("#logout").wait_for()
    page.locator("#stat-rps").wait_for()
    # the dashboard polls /api/stats every 2 s: with traffic between two
    # polls, the rates and quantiles fill in
    for _ in range(3):
        served_target(stack, "chat")
    until(lambda: page.locator("#stat-total .stat-value").inner_text() not in ("–", "0"))
    for _ in range(3):
        served_target(stack, "chat")
    until(lambda: page.locator("#stat-p50 .stat-value").inner_text() != "–"
          and page.locator("#stat-rps .stat-value").inner_text() not in ("–", "0"))
    for _ in range(3):  # a few more live points on the charts
        served_target(stack, "chat")
        page.wait_for_timeout(1500)
    shot(page, "dashboard")
    # the session survives a reload (cookie), and client routes load directly
    page.goto(stack.gateway + "/ui/keys")
    page.locator("#key-create").wait_for()
    page.locator("#logout").click()
    page.locator("#login-secret").wait_for()
    # after logout the API refuses the old cookie
    status = page.evaluate("fetch('/api/session').then(r => r.status)")
    assert status == 401
    assert not page.js_errors, page.js_errors


def test_a_password_logs_in(stack, page):
    password = "a long enough ui test password"
    done = subprocess.run(
        [str(BIN / "modelswitch"), "admin", "set-password", "--password-stdin", "--config", str(stack.config)],
        input=password + "\n", capture_output=True, text=True, timeout=30,
    )
    assert done.returncode == 0, done.stderr
    page.goto(stack.gateway + "/ui/")
    page.locator("#tab-password").click()
    page.locator("#login-secret").fill(password)
    shot(page, "login-password")
    page.locator("#login-submit").click()
    page.locator("#logout").wait_for()
    assert "admin" in page.locator(".who .user").inner_text()
    assert not page.js_errors, page.js_errors


def test_revoking_this_browsers_session_goes_back_to_login(stack, page):
    login(page, stack.gateway)
    goto(page, stack, "/ui/keys")
    mine = page.locator("#sessions tr", has=page.locator(".badge.ok"))
    mine.wait_for()
    page.once("dialog", lambda d: d.accept())
    mine.get_by_role("button").click()
    # the next call is a 401: the UI is back at its login page
    page.locator("#login-secret").wait_for()
    assert page.evaluate("fetch('/api/session').then(r => r.status)") == 401
    assert not page.js_errors, page.js_errors


def test_every_page_renders(stack, page):
    login(page, stack.gateway)
    for name in PAGES:
        page.locator(f'nav a[href="/ui/{name}"]').click()
        page.wait_for_url(f"**/ui/{name}")
        page.locator("#main h1").first.wait_for()
        page.wait_for_load_state("networkidle")
        shot(page, name)
        assert not unlabelled(page), (name, unlabelled(page))
    goto(page, stack, "/ui/providers")
    page.locator("#provider-openai").wait_for()
    # secrets never reach the page
    assert "sk-upstream-openai-secret" not in page.content()
    page.get_by_role("button", name="Test connection openai").click()
    page.locator("#provider-openai .test-result").wait_for()
    shot(page, "providers-tested")
    # a phone: the nav collapses behind the menu button
    page.set_viewport_size({"width": 390, "height": 800})
    assert not page.locator("nav#nav").is_visible()
    page.get_by_role("button", name="Menu").click()
    assert page.locator("nav#nav").is_visible()
    shot(page, "phone-menu")
    assert not page.js_errors, page.js_errors
    assert not page.console_errors, page.console_errors
    assert not page.foreign_requests, page.foreign_requests


def test_a_created_key_works_and_shows_under_requests_and_usage(stack, page):
    login(page, stack.gateway)
    goto(page, stack, "/ui/keys")
    page.locator("#key-create").click()
    name = f"ui-made-{int(time.time() * 1000) % 10**8}"
    page.locator("#new-name").fill(name)
    page.locator("#new-rpm").fill("100")
    page.locator("#create-dialog button[type=submit]").click()
    page.locator("#created-key").wait_for()
    shot(page, "keys-created")
    secret = page.locator("#created-key").input_value()
    assert secret.startswith("sk-"), secret
    # the Copy button puts it on the clipboard
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=stack.gateway)
    page.locator("#copy-key").click()
    until(lambda: page.locator("#copy-key").inner_text() == "Copied")
    assert page.evaluate("navigator.clipboard.readText()") == secret
    page.locator("#created-close").click()
    page.locator(f'tr[data-key="{name}"]').wait_for()
    shot(page, "keys")

    answer = client(stack, secret).chat.completions.create(
        model="chat", messages=[{"role": "user", "content": "hello from the ui test"}]
    )
    assert answer.choices[0].message.content

    # the live quota of the new key
    page.locator(f'tr[data-key="{name}"] button.linklike').click()
    page.locator("#key-limits").wait_for()
    # edit a limit: the live quota follows
    page.locator("#edit-rpm").fill("50")
    page.locator("#key-detail button[type=submit]").click()
    page.locator("#key-detail [role=status]").wait_for()
    until(lambda: "50" in page.locator("#key-limits").inner_text())
    shot(page, "key-detail")

    # Requests: the row appears once the usage writer flushed it
    goto(page, stack, "/ui/requests")

    def row():
        page.locator("#rq-key").fill(name)
        page.locator("#rq-key").press("Enter")
        page.wait_for_timeout(400)
        return page.locator("#requests-table tbody tr").count() > 0

    until(row)
    shot(page, "requests")
    page.locator("#requests-table tbody tr a").first.click()
    page.locator("#attempts tbody tr").first.wait_for()
    assert "openai" in page.locator("#attempts").inner_text()
    shot(page, "request-detail")

    # Usage: provider -> model -> key
    goto(page, stack, "/ui/usage")
    page.get_by_role("button", name="Drill down: openai").click()
    page.get_by_role("button", name="Drill down: chat").click()
    until(lambda: name in page.locator("#usage-groups").inner_text())
    href = page.locator("#csv-export").get_attribute("href")
    assert href.startswith("/api/usage/export?") and "provider=openai" in href
    shot(page, "usage")

    # revoke it (after a confirm): the SDK is refused from then on
    goto(page, stack, "/ui/keys")
    page.once("dialog", lambda d: d.accept())
    page.get_by_role("button", name=f"Revoke {name}").click()
    page.locator(f'tr[data-key="{name}"]').wait_for(state="detached")
    try:
        client(stack, secret).chat.completions.create(model="chat", messages=[{"role": "user", "content": "hi"}])
        raise AssertionError("a revoked key still works")
    except AuthenticationError:
        pass
    assert not page.js_errors, page.js_errors


def test_a_logged_conversation_replays(stack, page):
    c = client(stack)
    raw = c.chat.completions.with_raw_response.create(
        model="think", messages=[{"role": "user", "content": "replay me please"}]
    )
    rid = raw.headers.get("x-request-id")
    assert rid
    login(page, stack.gateway)
    goto(page, stack, "/ui/conversations")

    def listed():
        page.locator("#conv-key").fill("ui-user")
        page.locator("#conv-key").press("Enter")
        page.wait_for_timeout(400)
        return page.locator(f'#conversations-table a[data-conversation="{rid}"]').count() > 0

    until(listed)
    shot(page, "conversations")
    page.locator(f'a[data-conversation="{rid}"]').click()
    page.locator("#replay details.msg").first.wait_for()
    text = page.locator("#replay").inner_text()
    assert "replay me please" in text
    assert page.locator("#replay details").count() >= 2
    shot(page, "conversation")

    # a tool round trip: the call in the answer, then the call and its
    # result in the next request, each collapsible
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {
        "type": "object", "properties": {"location": {"type": "string"}}}}}]
    msgs = [{"role": "user", "content": "weather please"}]
    first = c.chat.completions.create(model="think", messages=msgs, tools=tools)
    call = first.choices[0].message.tool_calls[0]
    msgs += [
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": call.id, "type": "function", "function": {"name": call.function.name, "arguments": call.function.arguments}}]},
        {"role": "tool", "tool_call_id": call.id, "content": "sunny, 21 C"},
    ]
    raw = c.chat.completions.with_raw_response.create(model="think", messages=msgs, tools=tools)
    rid2 = raw.headers.get("x-request-id")
    # the conversation log is written off the request path: wait until the
    # API has it rather than racing the writer
    until(lambda: stack.api("GET", "/api/conversations/" + rid2)[0] == 200)
    page.goto(stack.gateway + "/ui/conversations/" + rid2)
    replay = page.locator("#replay")
    replay.locator("details.tool-call").first.wait_for()
    assert "get_weather" in replay.locator("details.tool-call").first.inner_text()
    assert "sunny, 21 C" in replay.locator("details.msg.role-tool").inner_text()
    shot(page, "conversation-tools")
    assert not page.js_errors, page.js_errors


def test_the_log_tail_filters_by_request_id_and_pauses(stack, page):
    raw = client(stack).chat.completions.with_raw_response.create(
        model="chat", messages=[{"role": "user", "content": "log me"}]
    )
    rid = raw.headers.get("x-request-id")
    assert rid
    login(page, stack.gateway)
    goto(page, stack, "/ui/logs")
    page.locator("#log-lines .logline").first.wait_for()
    page.locator("#log-rid").fill(rid)
    until(lambda: page.locator("#log-lines .logline").count() > 0
          and all(rid in t for t in page.locator("#log-lines .logline").all_inner_texts()))
    shot(page, "logs")
    page.locator("#log-pause").click()
    assert page.locator("#log-pause").get_attribute("aria-pressed") == "true"
    assert not page.js_errors, page.js_errors


def test_testing_a_model_and_one_target(stack, page):
    login(page, stack.gateway)
    goto(page, stack, "/ui/models")
    page.get_by_role("button", name="Test model chat").click()
    result = page.locator("#model-chat .test-chain .test-result").first
    result.wait_for()
    assert "200" in result.inner_text()
    page.get_by_role("button", name="Test: openai/mock;tag=second").click()
    page.locator("#model-order .chain-item .test-result").first.wait_for()
    shot(page, "models")
    assert not page.js_errors, page.js_errors


def test_reordering_a_chain_changes_what_is_served(stack, page):
    assert served_target(stack, "order") == "openai/mock;tag=first"
    login(page, stack.gateway)
    goto(page, stack, "/ui/models")
    card = page.locator("#model-order")
    card.get_by_role("button", name="Move down: openai/mock;tag=first").click()
    card.get_by_role("button", name="Save", exact=True).click()
    card.get_by_role("status").wait_for()
    shot(page, "models-reordered")
    until(lambda: served_target(stack, "order") == "openai/mock;tag=second")
    # and back by drag and drop
    items = card.locator("li.chain-item")
    items.nth(1).drag_to(items.nth(0))
    assert "tag=first" in items.nth(0).inner_text()
    card.get_by_role("button", name="Save", exact=True).click()
    card.get_by_role("status").wait_for()
    until(lambda: served_target(stack, "order") == "openai/mock;tag=first")

    # add a third target, then remove it again
    def chain():
        _, body = stack.api("GET", "/api/models")
        return [t["model"] for m in body["models"] if m["name"] == "order" for t in m["targets"]]

    card.locator("select").select_option("anthropic")
    card.get_by_label("Upstream model").fill("mock;tag=third")
    card.get_by_role("button", name="Add target").click()
    card.get_by_role("button", name="Save", exact=True).click()
    card.get_by_role("status").wait_for()
    until(lambda: chain() == ["mock;tag=first", "mock;tag=second", "mock;tag=third"])
    assert "mock;tag=third" in stack.config.read_text()
    card.get_by_role("button", name="Remove: anthropic/mock;tag=third").click()
    card.get_by_role("button", name="Save", exact=True).click()
    card.get_by_role("status").wait_for()
    until(lambda: chain() == ["mock;tag=first", "mock;tag=second"])
    assert not page.js_errors, page.js_errors


def test_a_broken_config_shows_its_path_and_the_gateway_keeps_serving(stack, page):
    login(page, stack.gateway)
    goto(page, stack, "/ui/config")
    area = page.locator("#config-text")
    until(lambda: "[[providers]]" in area.input_value())
    text = area.input_value()
    assert "sk-upstream-openai-secret" not in text
    broken = text.replace('provider = "anthropic"', 'provider = "no-such-provider"')
    assert broken != text
    area.fill(broken)
    page.locator("#config-validate").click()
    err = page.locator(".errlist li").first
    err.wait_for()
    assert re.search(r"models", err.locator("code").inner_text()), err.inner_text()
    page.locator("#config-save").click()
    page.locator(".errlist li").first.wait_for()
    shot(page, "config-error")
    # untouched on disk, still serving
    assert "no-such-provider" not in stack.config.read_text()
    assert served_target(stack, "claude") == "anthropic/mock"

    # a valid edit is saved, comments and all, secrets kept
    area.fill(text + "\n# edited in the web UI\n")
    page.locator("#config-save").click()
    page.locator("#config-msg").wait_for()
    on_disk = stack.config.read_text()
    assert "# edited in the web UI" in on_disk and "sk-upstream-openai-secret" in on_disk
    assert served_target(stack, "claude") == "anthropic/mock"
    # someone else changes the file: saving over it is refused (409)
    stack.config.write_text(on_disk + "# changed on disk\n")
    area.fill(area.input_value() + "# a second edit\n")
    page.locator("#config-save").click()
    page.locator("#config-conflict").wait_for()
    shot(page, "config-conflict")
    assert "# a second edit" not in stack.config.read_text()
    assert not page.js_errors, page.js_errors


def test_switching_to_chinese(stack, page):
    login(page, stack.gateway)
    page.locator("#lang").select_option("zh")
    page.get_by_role("link", name="仪表盘").wait_for()
    page.locator("#stat-rps").get_by_text("请求/秒").wait_for()
    shot(page, "dashboard-zh")
    # remembered after a reload
    page.goto(stack.gateway + "/ui/keys")
    page.get_by_role("button", name="创建密钥").wait_for()
    shot(page, "keys-zh")
    assert page.evaluate("document.documentElement.lang") == "zh-CN"
    assert not page.js_errors, page.js_errors


def test_a_viewer_sees_but_cannot_change(stack, page):
    login(page, stack.gateway, VIEWER_KEY)
    goto(page, stack, "/ui/keys")
    assert page.locator("#key-create").is_disabled()
    shot(page, "keys-viewer")
    goto(page, stack, "/ui/models")
    card = page.locator("#model-order")
    card.locator("li.chain-item").first.wait_for()
    assert card.get_by_role("button", name="Save", exact=True).is_disabled()
    assert card.get_by_role("button", name=re.compile("^Move down")).first.is_disabled()
    assert page.get_by_role("button", name="Test model chat").is_disabled()
    shot(page, "models-viewer")
    goto(page, stack, "/ui/config")
    assert page.locator("#config-save").is_disabled()
    shot(page, "config-viewer")
    goto(page, stack, "/ui/providers")
    assert page.get_by_role("button", name="Test connection openai").is_disabled()
    # the API refuses the viewer's session even with its CSRF token ...
    status = page.evaluate(
        """async () => {
          const s = await (await fetch('/api/session')).json();
          const r = await fetch('/api/keys', {method: 'POST', headers: {'content-type': 'application/json',
            'x-csrf-token': s.csrf}, body: JSON.stringify({name: 'viewer-made'})});
          return r.status;
        }"""
    )
    assert status == 403
    # ... and the viewer key itself
    code, _ = stack.api("POST", "/api/keys", VIEWER_KEY, {"name": "viewer-made-2"})
    assert code == 403
    code, _ = stack.api("PUT", "/api/models/order/targets", VIEWER_KEY, {"targets": [{"provider": "openai", "model": "mock"}]})
    assert code == 403
    assert not page.js_errors, page.js_errors


def test_state_changes_need_the_csrf_token(stack, page):
    login(page, stack.gateway)
    status = page.evaluate(
        """fetch('/api/keys', {method: 'POST', headers: {'content-type': 'application/json'},
             body: JSON.stringify({name: 'no-csrf'})}).then(r => r.status)"""
    )
    assert status == 403


def agent_message(stack, key, session, model="cached"):
    """An Anthropic request in agent session `session`: its request id
    and usage."""
    body = {"model": model, "max_tokens": 20, "messages": [{"role": "user", "content": "hello"}]}
    req = urllib.request.Request(
        stack.gateway + "/v1/messages",
        data=json.dumps(body).encode(),
        method="POST",
        headers={
            "x-api-key": key,
            "anthropic-version": "2023-06-01",
            "content-type": "application/json",
            "x-claude-code-session-id": session,
        },
    )
    with urllib.request.urlopen(req, timeout=15) as r:
        return r.headers["x-request-id"], json.loads(r.read())["usage"]


def test_a_user_key_sees_only_its_own_usage_requests_and_sessions(stack, page):
    code, made = stack.api("POST", "/api/keys", ADMIN_KEY, {"name": "ui-dev", "roles": ["user"]})
    assert code == 201, made
    secret = made["key"]
    sent = [agent_message(stack, secret, "dev-session-1") for _ in range(2)]
    told = [u for _, u in sent]
    # another key's session, which this view must never show
    other_id, _ = agent_message(stack, USER_KEY, "someone-elses-session")
    read = sum(u["cache_read_input_tokens"] for u in told)
    every = sum(u["input_tokens"] + u["cache_read_input_tokens"] + u["cache_creation_input_tokens"] for u in told)
    assert 0 < read < every
    ratio = f"{math.floor(read / every * 1000 + 0.5) / 10:.1f}%"

    login(page, stack.gateway, secret)
    # its home is its usage; the menu holds its three pages only
    page.get_by_role("heading", name="My usage").wait_for()
    assert page.locator("nav#nav a").all_inner_texts() == ["My usage", "My requests", "My sessions"]
    assert "user" in page.locator(".who").inner_text()
    page.locator("#usage-totals").wait_for()
    # by model, then one model by day
    groups = page.locator("#usage-groups")
    assert groups.locator("th").first.inner_text() == "Model"
    until(lambda: groups.get_by_role("button", name="Drill down: cached").count() == 1)
    shot(page, "user-usage")
    assert not unlabelled(page), unlabelled(page)
    groups.get_by_role("button", name="Drill down: cached").click()
    until(lambda: groups.locator("th").first.inner_text() == "Day")
    groups.locator("tbody tr").first.wait_for()
    shot(page, "user-usage-model-by-day")

    # its sessions, with cost and cache-hit ratio (rows land a moment
    # after the requests: reload until they are there)
    page.locator('nav a[href="/ui/sessions"]').click()
    page.get_by_role("heading", name="My sessions").wait_for()
    row = page.locator('#sessions-table tr[data-session="dev-session-1"]')

    def shown():
        if row.count() and row.locator("td.num").first.inner_text() == "2":
            return True
        page.get_by_role("button", name="Reload").click()
        page.wait_for_timeout(300)
        return False

    until(shown)
    assert row.locator('[data-col="cache-hit"]').inner_text() == ratio
    assert "USD" in row.locator('[data-col="cost"]').inner_text()
    assert page.locator('#sessions-table tr[data-session="someone-elses-session"]').count() == 0
    # no key column or filter for a user key
    assert page.locator("#sess-key").count() == 0
    shot(page, "user-sessions")
    assert not unlabelled(page), unlabelled(page)

    # a session opens to its requests
    row.get_by_role("link").click()
    page.wait_for_url("**/ui/sessions/dev-session-1")
    page.locator("#session-requests tbody tr").nth(1).wait_for()
    assert page.locator("#session-requests tbody tr").count() == 2
    shot(page, "user-session-requests")
    # and a request to its details, session and all
    page.locator("#session-requests a[data-request]").first.click()
    page.locator("#request-detail").wait_for()
    page.locator("#session-link").wait_for()
    assert page.get_by_role("heading", name="My requests").is_visible()
    shot(page, "user-request-detail")
    # its logged conversation opens too, with no key filter to widen
    page.locator("#conversation-link").click()
    page.locator("#replay details.msg").first.wait_for()
    shot(page, "user-conversation")
    page.get_by_role("button", name="Back").click()
    page.locator("#conversations-table").wait_for()
    assert page.locator("#conv-key").count() == 0
    page.locator('nav a[href="/ui/requests"]').click()
    page.locator("#requests-table").wait_for()

    # its requests only (its own login is one of them too)
    def ids():
        return page.eval_on_selector_all("#requests-table a[data-request]", "els => els.map((e) => e.dataset.request)")

    until(lambda: {i for i, _ in sent} <= set(ids()))
    assert other_id not in ids()
    assert page.locator("#rq-key").count() == 0

    # the rest of the admin plane is closed to it, in the UI and the API
    goto(page, stack, "/ui/keys")
    page.get_by_role("heading", name="Page not found").wait_for()
    statuses = page.evaluate(
        """async () => Promise.all(['/api/keys', '/api/providers', '/api/config', '/api/logs', '/api/stats',
             '/api/usage/sessions?key=ui-user'].map(async (p) => (await fetch(p)).status))"""
    )
    assert statuses == [403] * 6, statuses

    # the same view in Chinese
    page.locator("#lang").select_option("zh")
    page.get_by_role("link", name="我的会话").wait_for()
    assert page.locator("nav#nav a").all_inner_texts() == ["我的用量", "我的请求", "我的会话"]
    goto(page, stack, "/ui/sessions")
    page.get_by_role("heading", name="我的会话").wait_for()
    page.locator('#sessions-table tr[data-session="dev-session-1"]').wait_for()
    shot(page, "user-sessions-zh")
    page.locator("#lang").select_option("en")

    assert not page.js_errors, page.js_errors
    assert not page.console_errors, page.console_errors
    assert not page.foreign_requests, page.foreign_requests


def test_an_admin_sees_every_keys_sessions_and_filters_by_key(stack, page):
    agent_message(stack, USER_KEY, "admin-view-session")
    login(page, stack.gateway)
    page.locator('nav a[href="/ui/sessions"]').click()
    page.get_by_role("heading", name="Sessions").wait_for()
    row = page.locator('#sessions-table tr[data-session="admin-view-session"]')

    def shown():
        if row.count():
            return True
        page.get_by_role("button", name="Filter").click()
        page.wait_for_timeout(300)
        return False

    until(shown)
    assert "ui-user" in row.inner_text()
    page.locator("#sess-key").fill("nobody-has-this-key")
    page.get_by_role("button", name="Filter").click()
    until(lambda: page.locator("#sessions-table tbody tr").count() == 0)
    page.locator("#sess-key").fill("ui-user")
    page.get_by_role("button", name="Filter").click()
    row.wait_for()
    row.get_by_role("link").click()
    page.locator("#session-requests tbody tr").first.wait_for()
    shot(page, "sessions-admin")
    assert not unlabelled(page), unlabelled(page)
    assert not page.js_errors, page.js_errors


def test_discovered_models_are_added_from_the_providers_page(stack, page):
    login(page, stack.gateway)
    goto(page, stack, "/ui/providers")
    page.get_by_role("button", name="Refresh models openai").click()
    dialog = page.locator("#discover-dialog")
    row = dialog.locator("#disc-gpt-4o-mini-row")
    row.wait_for()
    # what a chain already sends the provider is marked and not ticked
    configured = dialog.locator("#disc-mock-row")
    assert "chat" in configured.inner_text()
    assert not configured.get_by_role("checkbox").is_checked()
    assert not unlabelled(page), unlabelled(page)
    assert dialog.locator("#discover-add").is_disabled()
    shot(page, "providers-discover")
    dialog.get_by_role("checkbox", name="Add: gpt-4o-mini").check()
    dialog.get_by_role("textbox", name="Name in the config: gpt-4o-mini").fill("mini")
    dialog.get_by_role("button", name="Add selected (1)").click()
    dialog.locator("#discover-done").wait_for()
    # listed again: now configured as "mini"
    until(lambda: "mini" in row.locator("td").last.inner_text())
    assert 'name = "mini"' in stack.config.read_text()
    shot(page, "providers-discover-added")
    page.keyboard.press("Escape")
    goto(page, stack, "/ui/models")
    card = page.locator("#model-mini")
    card.wait_for()
    assert "gpt-4o-mini" in card.inner_text()
    assert served_target(stack, "mini") == "openai/gpt-4o-mini"
    assert not page.js_errors, page.js_errors
