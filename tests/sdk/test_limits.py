"""Client limits as the official SDKs see them: the rate-limit headers each
SDK exposes (read back with `with_raw_response`), and a refusal raised as
the SDK's own `RateLimitError` with the limit named and `retry-after` set."""

from datetime import datetime, timezone

import anthropic
import openai
import pytest

from conftest import ENABLED, LIMITED_KEY, TINY_KEYS

HELLO = "Hello from the mock upstream! You said: hi there"
UPSTREAMS = [p for p in ("oa", "an") if p in ENABLED]


def _oa(stack, key):
    return openai.OpenAI(base_url=f"{stack.gateway}/v1", api_key=key, max_retries=0, timeout=20)


def _an(stack, key):
    return anthropic.Anthropic(base_url=stack.gateway, api_key=key, max_retries=0, timeout=20)


def _openai_headers(h):
    return {k: h.get(f"x-ratelimit-{k}") for k in (
        "limit-requests", "remaining-requests", "reset-requests",
        "limit-tokens", "remaining-tokens", "reset-tokens")}


@pytest.mark.parametrize("model", UPSTREAMS)
def test_openai_chat_reads_the_limit_headers(stack, model):
    client = _oa(stack, LIMITED_KEY)
    first = client.chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": "hi there"}], max_tokens=50)
    assert first.parse().choices[0].message.content == HELLO
    h1 = _openai_headers(first.headers)
    assert h1["limit-requests"] == "1000"
    assert h1["limit-tokens"] == "10000000"
    # The tightest request limit is reported: rpm (1000) has less room than rpd (100000).
    second = client.chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": "hi there"}], max_tokens=50)
    h2 = _openai_headers(second.headers)
    assert int(h2["remaining-requests"]) == int(h1["remaining-requests"]) - 1
    assert int(h2["remaining-tokens"]) < 10000000
    for reset in (h2["reset-requests"], h2["reset-tokens"]):
        assert reset.endswith("s") and ("m" in reset or float(reset.rstrip("s")) > 0), reset


@pytest.mark.parametrize("model", UPSTREAMS)
def test_openai_stream_carries_the_headers_too(stack, model):
    client = _oa(stack, LIMITED_KEY)
    with client.chat.completions.with_streaming_response.create(
            model=model, messages=[{"role": "user", "content": "hi there"}], stream=True) as resp:
        assert resp.headers["x-ratelimit-limit-requests"] == "1000"
        text = "".join(c.choices[0].delta.content or "" for c in resp.parse() if c.choices)
    assert text == HELLO


@pytest.mark.parametrize("model", UPSTREAMS)
def test_openai_responses_reads_the_limit_headers(stack, model):
    client = _oa(stack, LIMITED_KEY)
    raw = client.responses.with_raw_response.create(model=model, input="hi there")
    assert raw.parse().output_text == HELLO
    assert raw.headers["x-ratelimit-limit-requests"] == "1000"
    assert int(raw.headers["x-ratelimit-remaining-tokens"]) < 10000000


@pytest.mark.parametrize("model", UPSTREAMS)
def test_anthropic_reads_its_limit_headers(stack, model):
    client = _an(stack, LIMITED_KEY)
    raw = client.messages.with_raw_response.create(
        model=model, max_tokens=50, messages=[{"role": "user", "content": "hi there"}])
    assert raw.parse().content[0].text == HELLO
    h = raw.headers
    assert h["anthropic-ratelimit-requests-limit"] == "1000"
    assert int(h["anthropic-ratelimit-requests-remaining"]) < 1000
    assert h["anthropic-ratelimit-tokens-limit"] == "10000000"
    now = datetime.now(timezone.utc)
    for name in ("anthropic-ratelimit-requests-reset", "anthropic-ratelimit-tokens-reset"):
        reset = datetime.fromisoformat(h[name].replace("Z", "+00:00"))
        assert 0 <= (reset - now).total_seconds() <= 62, (name, h[name])
    assert "x-ratelimit-limit-requests" not in h


def test_unlimited_keys_get_no_limit_headers(stack):
    from conftest import KEY
    raw = _oa(stack, KEY).chat.completions.with_raw_response.create(
        model="oa", messages=[{"role": "user", "content": "hi there"}])
    assert "x-ratelimit-limit-requests" not in raw.headers


def test_openai_refusal_is_a_rate_limit_error(stack):
    client = _oa(stack, TINY_KEYS["openai"])
    client.chat.completions.create(model="oa", messages=[{"role": "user", "content": "hi there"}])
    with pytest.raises(openai.RateLimitError) as e:
        client.chat.completions.create(model="oa", messages=[{"role": "user", "content": "hi there"}])
    assert e.value.status_code == 429
    assert "rate limit reached for key 'sdk-tiny-openai': rpm = 1" in e.value.message
    assert 1 <= int(e.value.response.headers["retry-after"]) <= 61
    assert e.value.response.headers["x-ratelimit-remaining-requests"] == "0"


def test_anthropic_refusal_is_a_rate_limit_error(stack):
    client = _an(stack, TINY_KEYS["anthropic"])
    msg = [{"role": "user", "content": "hi there"}]
    client.messages.create(model="an", max_tokens=20, messages=msg)
    with pytest.raises(anthropic.RateLimitError) as e:
        client.messages.create(model="an", max_tokens=20, messages=msg)
    assert e.value.status_code == 429
    assert "rpm = 1 (requests per minute)" in str(e.value)
    assert e.value.body["error"]["type"] == "rate_limit_error"
    assert 1 <= int(e.value.response.headers["retry-after"]) <= 61
    assert e.value.response.headers["anthropic-ratelimit-requests-remaining"] == "0"
