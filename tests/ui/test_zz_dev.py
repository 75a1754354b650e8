# DEV ONLY (not committed): the real tests with login faked and the admin key injected.
import json
import conftest
import test_ui
from conftest import ADMIN_KEY, VIEWER_KEY

def fake_login(page, gateway, key=ADMIN_KEY):
    role = "viewer" if key == VIEWER_KEY else "admin"
    def handler(route):
        url = route.request.url
        if "/api/session" in url or "/api/login" in url:
            route.fulfill(status=200, content_type="application/json",
                          body=json.dumps({"user": "dev", "role": role, "via": "key", "csrf": "x", "expires_at": 0}))
            return
        route.continue_(headers={**route.request.headers, "authorization": f"Bearer {key}"})
    page.route("**/api/**", handler)
    from pathlib import Path
    dist = Path("/work/wt-u/target/ui/dist")
    def ui(route):
        rel = route.request.url.split("/ui/", 1)[1].split("?")[0]
        f = dist / rel
        if not rel or not f.is_file():
            f = dist / "index.html"
        ct = "text/html" if f.suffix == ".html" else "text/css" if f.suffix == ".css" else "application/javascript"
        route.fulfill(status=200, content_type=ct, body=f.read_bytes())
    page.route("**/ui/**", ui)
    page.goto(gateway + "/ui/")
    page.locator("#logout").wait_for()

test_ui.login = fake_login
from test_ui import (test_every_page_renders, test_a_created_key_works_and_shows_under_requests_and_usage,
    test_a_logged_conversation_replays, test_testing_a_model_and_one_target,
    test_reordering_a_chain_changes_what_is_served, test_switching_to_chinese, test_a_viewer_sees_but_cannot_change)
