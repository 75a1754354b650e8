"""The official `openai` and `anthropic` Python SDKs against ModelSwitch,
across dialects: what real clients accept is the contract."""

import json

import anthropic
import openai
import pytest

from conftest import KEY

HELLO = "Hello from the mock upstream! You said: hi there"
WEATHER_OA = [{
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]},
    },
}]
WEATHER_AN = [{
    "name": "get_weather",
    "description": "Weather for a city",
    "input_schema": {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]},
}]
CITIES = ["Paris", "Tokyo", "Lima"]


@pytest.fixture
def oa(stack):
    return openai.OpenAI(base_url=f"{stack.gateway}/v1", api_key=KEY, max_retries=0, timeout=20)


@pytest.fixture
def an(stack):
    return anthropic.Anthropic(base_url=stack.gateway, api_key=KEY, max_retries=0, timeout=20)


# ------------------------------------------------------------ OpenAI client

@pytest.mark.parametrize("model", ["an", "oa"])
def test_openai_create(oa, model):
    r = oa.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi there"}])
    assert r.model == model
    assert r.choices[0].message.content == HELLO
    assert r.choices[0].finish_reason == "stop"
    assert r.usage.prompt_tokens > 0 and r.usage.completion_tokens > 0


@pytest.mark.parametrize("model", ["an", "oa", "fallback"])
def test_openai_stream_final_completion(oa, model):
    with oa.chat.completions.stream(
        model=model,
        messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi there"}],
        stream_options={"include_usage": True},
    ) as s:
        final = s.get_final_completion()
    assert final.choices[0].message.content == HELLO
    assert final.choices[0].finish_reason == "stop"
    assert final.usage is not None and final.usage.prompt_tokens > 0


@pytest.mark.parametrize("model,calls", [("an", 2), ("an-3calls", 3), ("oa-3calls", 3)])
@pytest.mark.parametrize("streaming", [True, False])
def test_openai_parallel_tool_round_trip(oa, stack, model, calls, streaming):
    messages = [{"role": "user", "content": "weather in three cities?"}]
    if streaming:
        with oa.chat.completions.stream(model=model, messages=messages, tools=WEATHER_OA) as s:
            first = s.get_final_completion()
    else:
        first = oa.chat.completions.create(model=model, messages=messages, tools=WEATHER_OA)
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    tcs = choice.message.tool_calls
    assert [json.loads(t.function.arguments)["location"] for t in tcs] == CITIES[:calls]
    assert all(t.function.name == "get_weather" for t in tcs)
    assert len({t.id for t in tcs}) == calls

    messages.append(choice.message.model_dump(exclude_none=True))
    for t in tcs:
        loc = json.loads(t.function.arguments)["location"]
        messages.append({"role": "tool", "tool_call_id": t.id, "content": f"{loc}: sunny"})
    second = oa.chat.completions.create(model=model, messages=messages, tools=WEATHER_OA)
    expected = " | ".join(f"{c}: sunny" for c in CITIES[:calls])
    assert second.choices[0].message.content == f"Tool results: {expected}"


@pytest.mark.parametrize(
    "model,exc,status",
    [
        ("oa-429", openai.RateLimitError, 429),
        ("an-429", openai.RateLimitError, 429),
        ("oa-500", openai.InternalServerError, 500),
        ("an-529", openai.InternalServerError, 503),
        ("an-400", openai.BadRequestError, 400),
        ("nope", openai.NotFoundError, 404),
    ],
)
@pytest.mark.parametrize("streaming", [False, True])
def test_openai_upstream_errors_are_typed(oa, model, exc, status, streaming):
    with pytest.raises(exc) as e:
        if streaming:
            with oa.chat.completions.stream(model=model, messages=[{"role": "user", "content": "x"}]) as s:
                s.get_final_completion()
        else:
            oa.chat.completions.create(model=model, messages=[{"role": "user", "content": "x"}])
    assert e.value.status_code == status


def test_openai_bad_key(stack):
    c = openai.OpenAI(base_url=f"{stack.gateway}/v1", api_key="sk-not-a-key", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        c.chat.completions.create(model="oa", messages=[{"role": "user", "content": "x"}])


@pytest.mark.parametrize("model", ["an-mid", "oa-mid"])
def test_openai_mid_stream_failure_raises(oa, model):
    with pytest.raises(openai.APIError):
        with oa.chat.completions.stream(model=model, messages=[{"role": "user", "content": "hi there"}]) as s:
            s.get_final_completion()


def test_openai_models_list(oa):
    ids = [m.id for m in oa.models.list()]
    assert "oa" in ids and "an" in ids


# --------------------------------------------------------- Anthropic client

@pytest.mark.parametrize("model", ["oa", "an"])
def test_anthropic_create(an, model):
    m = an.messages.create(model=model, max_tokens=100, messages=[{"role": "user", "content": "hi there"}])
    assert m.model == model
    assert m.content[0].type == "text" and m.content[0].text == HELLO
    assert m.stop_reason == "end_turn"
    assert m.usage.input_tokens > 0 and m.usage.output_tokens > 0


@pytest.mark.parametrize("model", ["oa", "an", "fallback"])
def test_anthropic_stream_final_message(an, model):
    with an.messages.stream(model=model, max_tokens=100, system="be brief",
                            messages=[{"role": "user", "content": "hi there"}]) as s:
        texts = list(s.text_stream)
        final = s.get_final_message()
    assert "".join(texts) == HELLO
    assert final.content[0].text == HELLO
    assert final.stop_reason == "end_turn"
    assert final.usage.input_tokens > 0


@pytest.mark.parametrize("model,calls", [("oa", 2), ("oa-3calls", 3), ("an-3calls", 3)])
@pytest.mark.parametrize("streaming", [True, False])
def test_anthropic_parallel_tool_round_trip(an, model, calls, streaming):
    messages = [{"role": "user", "content": "weather in three cities?"}]
    if streaming:
        with an.messages.stream(model=model, max_tokens=200, messages=messages, tools=WEATHER_AN) as s:
            first = s.get_final_message()
    else:
        first = an.messages.create(model=model, max_tokens=200, messages=messages, tools=WEATHER_AN)
    assert first.stop_reason == "tool_use"
    uses = [b for b in first.content if b.type == "tool_use"]
    assert [u.input["location"] for u in uses] == CITIES[:calls]
    assert len({u.id for u in uses}) == calls

    messages.append({"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]})
    messages.append({"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": u.id, "content": f"{u.input['location']}: sunny"} for u in uses
    ]})
    with an.messages.stream(model=model, max_tokens=200, messages=messages, tools=WEATHER_AN) as s:
        second = s.get_final_message()
    expected = " | ".join(f"{c}: sunny" for c in CITIES[:calls])
    assert second.content[0].text == f"Tool results: {expected}"


@pytest.mark.parametrize(
    "model,exc,status",
    [
        ("oa-429", anthropic.RateLimitError, 429),
        ("an-429", anthropic.RateLimitError, 429),
        ("oa-500", anthropic.InternalServerError, 500),
        ("an-529", anthropic.InternalServerError, 529),
        ("oa-400", anthropic.BadRequestError, 400),
        ("nope", anthropic.NotFoundError, 404),
    ],
)
@pytest.mark.parametrize("streaming", [False, True])
def test_anthropic_upstream_errors_are_typed(an, model, exc, status, streaming):
    with pytest.raises(exc) as e:
        if streaming:
            with an.messages.stream(model=model, max_tokens=10, messages=[{"role": "user", "content": "x"}]) as s:
                s.get_final_message()
        else:
            an.messages.create(model=model, max_tokens=10, messages=[{"role": "user", "content": "x"}])
    assert e.value.status_code == status


def test_anthropic_bad_key(stack):
    c = anthropic.Anthropic(base_url=stack.gateway, api_key="sk-not-a-key", max_retries=0)
    with pytest.raises(anthropic.AuthenticationError):
        c.messages.create(model="oa", max_tokens=10, messages=[{"role": "user", "content": "x"}])


@pytest.mark.parametrize("model", ["oa-mid", "an-mid"])
def test_anthropic_mid_stream_failure_raises(an, model):
    with pytest.raises(anthropic.APIError):
        with an.messages.stream(model=model, max_tokens=100, messages=[{"role": "user", "content": "hi there"}]) as s:
            s.get_final_message()


def test_anthropic_count_tokens(an):
    r = an.messages.count_tokens(model="an", messages=[{"role": "user", "content": "hello " * 200}])
    assert 250 <= r.input_tokens <= 400


def test_nothing_is_retried_behind_the_clients_back_and_retry_after_is_honoured(oa, stack):
    model = "mock;status=429;solo=1"
    before = stack.stats()["by_model"].get(model, 0)
    with pytest.raises(openai.RateLimitError) as first:
        oa.chat.completions.create(model="oa-429-solo", messages=[{"role": "user", "content": "x"}])
    assert first.value.response.headers.get("retry-after") == "1"
    assert stack.stats()["by_model"][model] == before + 1, "one upstream call, no hidden retries"
    # The key now rests for this model, but nothing else can serve it: the
    # gateway never answers a configured model with a 429 of its own, so the
    # next call asks the upstream (once) and relays its verdict.
    with pytest.raises(openai.RateLimitError) as second:
        oa.chat.completions.create(model="oa-429-solo", messages=[{"role": "user", "content": "x"}])
    assert second.value.response.headers.get("retry-after") == "1"
    assert stack.stats()["by_model"][model] == before + 2, "asked once more, no hidden retries"
