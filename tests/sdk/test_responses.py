"""The official `openai` SDK's Responses API (`client.responses`) and
embeddings against ModelSwitch, routed to each upstream dialect. For
upstreams that do not speak Responses the gateway keeps the conversation
itself, so `previous_response_id` chains, `retrieve` and `delete` work with
any upstream."""

import json

import openai
import pytest
from pydantic import BaseModel

from conftest import ENABLED, KEY

HELLO = "Hello from the mock upstream! You said: hi there"
UPSTREAMS = ENABLED  # oa, an, ge, rs: OpenAI Chat, Anthropic, Gemini, OpenAI Responses upstreams
EMBEDDERS = [p for p in ("oa", "ge") if p in ENABLED]
CITIES = ["Paris", "Tokyo", "Lima"]
WEATHER = [{
    "type": "function",
    "name": "get_weather",
    "description": "Weather for a city",
    "parameters": {"type": "object", "properties": {"location": {"type": "string"}},
                   "required": ["location"], "additionalProperties": False},
    "strict": True,
}]
REASONING = "Let me think about that."


@pytest.fixture
def oa(stack):
    return openai.OpenAI(base_url=f"{stack.gateway}/v1", api_key=KEY, max_retries=0, timeout=20)


def calls_of(resp):
    return [o for o in resp.output if o.type == "function_call"]


def reasoning_text(resp):
    """Summary and content text of the reasoning items, joined."""
    out = []
    for o in resp.output:
        if o.type == "reasoning":
            out += [s.text for s in (o.summary or [])]
            out += [c.text for c in (getattr(o, "content", None) or [])]
    return "".join(out)


@pytest.mark.parametrize("model", UPSTREAMS)
def test_create_text(oa, model):
    r = oa.responses.create(model=model, input="hi there")
    assert r.status == "completed"
    assert r.output_text == HELLO
    assert r.model == model
    assert r.usage.input_tokens > 0 and r.usage.output_tokens > 0


@pytest.mark.parametrize("model", UPSTREAMS)
def test_create_with_instructions_and_message_items(oa, model):
    r = oa.responses.create(
        model=model,
        instructions="be brief",
        input=[{"role": "user", "content": [{"type": "input_text", "text": "hi there"}]}],
        max_output_tokens=100,
    )
    assert r.output_text == HELLO


@pytest.mark.parametrize("model", UPSTREAMS)
def test_stream_get_final_response(oa, model):
    deltas = []
    with oa.responses.stream(model=model, input="hi there") as s:
        for ev in s:
            if ev.type == "response.output_text.delta":
                deltas.append(ev.delta)
        final = s.get_final_response()
    assert "".join(deltas) == HELLO
    assert final.output_text == HELLO
    assert final.status == "completed"
    assert final.usage.input_tokens > 0


@pytest.mark.parametrize("model", UPSTREAMS)
@pytest.mark.parametrize("streaming", [False, True])
def test_tools_round_trip(oa, model, streaming):
    items = [{"role": "user", "content": "weather in three cities?"}]
    if streaming:
        with oa.responses.stream(model=f"{model}-3calls", input=items, tools=WEATHER) as s:
            first = s.get_final_response()
    else:
        first = oa.responses.create(model=f"{model}-3calls", input=items, tools=WEATHER)
    calls = calls_of(first)
    assert [c.name for c in calls] == ["get_weather"] * 3
    assert [json.loads(c.arguments)["location"] for c in calls] == CITIES
    assert len({c.call_id for c in calls}) == 3

    items += [o.model_dump(exclude_none=True) for o in first.output]
    items += [{"type": "function_call_output", "call_id": c.call_id,
               "output": f"{json.loads(c.arguments)['location']}: sunny"} for c in calls]
    second = oa.responses.create(model=f"{model}-3calls", input=items, tools=WEATHER)
    assert second.output_text == "Tool results: " + " | ".join(f"{c}: sunny" for c in CITIES)


@pytest.mark.parametrize("model", UPSTREAMS)
def test_previous_response_id_tool_chain(oa, model):
    """Second turn sends only the tool outputs and the first response's id."""
    first = oa.responses.create(model=f"{model}-3calls", input="weather in three cities?", tools=WEATHER)
    calls = calls_of(first)
    assert len(calls) == 3
    second = oa.responses.create(
        model=f"{model}-3calls", previous_response_id=first.id, tools=WEATHER,
        input=[{"type": "function_call_output", "call_id": c.call_id,
                "output": f"{json.loads(c.arguments)['location']}: sunny"} for c in calls],
    )
    assert second.output_text == "Tool results: " + " | ".join(f"{c}: sunny" for c in CITIES)
    assert second.previous_response_id == first.id


@pytest.mark.parametrize("model", UPSTREAMS)
def test_previous_response_id_text_chain(oa, stack, model):
    first = oa.responses.create(model=model, input="hi there")
    second = oa.responses.create(model=model, input="and again", previous_response_id=first.id)
    assert second.output_text == "Hello from the mock upstream! You said: and again"
    # The upstream saw the whole conversation (or, for a Responses upstream,
    # the chain by id): never only the last message with no history.
    last = stack.seen("mock")[-1]
    assert len(last["turns"]) >= 3 or last["previous_response_id"], last


@pytest.mark.parametrize("model", UPSTREAMS)
def test_retrieve_and_delete(oa, model):
    r = oa.responses.create(model=model, input="hi there", store=True)
    got = oa.responses.retrieve(r.id)
    assert got.id == r.id
    assert got.output_text == HELLO
    oa.responses.delete(r.id)
    with pytest.raises(openai.NotFoundError):
        oa.responses.retrieve(r.id)


def test_unknown_id_is_404(oa):
    with pytest.raises(openai.NotFoundError):
        oa.responses.retrieve("resp_does_not_exist_0123456789")
    with pytest.raises(openai.NotFoundError):
        oa.responses.create(model="oa", input="x", previous_response_id="resp_does_not_exist_0123456789")


@pytest.mark.parametrize("model", UPSTREAMS)
@pytest.mark.parametrize("streaming", [False, True])
def test_reasoning_comes_whole(oa, model, streaming):
    kw = {"model": f"{model}-think", "input": "hi there", "reasoning": {"effort": "low", "summary": "auto"}}
    if streaming:
        with oa.responses.stream(**kw) as s:
            r = s.get_final_response()
    else:
        r = oa.responses.create(**kw)
    assert r.output_text == HELLO
    assert reasoning_text(r) in ("", REASONING)
    assert r.output[-1].type == "message"


class City(BaseModel):
    city: str
    sunny: bool


@pytest.mark.parametrize("model", UPSTREAMS)
def test_structured_output_text_format(oa, model):
    r = oa.responses.parse(model=f"{model}-json", input="a city, as JSON", text_format=City)
    assert r.output_parsed == City(city="Paris", sunny=True)
    raw = oa.responses.create(
        model=f"{model}-json", input="a city, as JSON",
        text={"format": {"type": "json_schema", "name": "city", "strict": True,
                         "schema": City.model_json_schema() | {"additionalProperties": False}}},
    )
    assert json.loads(raw.output_text) == {"city": "Paris", "sunny": True}


def test_bad_key(stack):
    c = openai.OpenAI(base_url=f"{stack.gateway}/v1", api_key="sk-not-a-key", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        c.responses.create(model="oa", input="x")


@pytest.mark.parametrize("model,exc", [("oa-429", openai.RateLimitError), ("an-429", openai.RateLimitError),
                                       ("oa-500", openai.InternalServerError), ("nope", openai.NotFoundError)])
def test_errors_are_typed(oa, model, exc):
    with pytest.raises(exc):
        oa.responses.create(model=model, input="x")


def test_openai_prefix_path(stack):
    c = openai.OpenAI(base_url=f"{stack.gateway}/openai", api_key=KEY, max_retries=0, timeout=20)
    assert c.responses.create(model="oa", input="hi there").output_text == HELLO


# ------------------------------------------------------------- embeddings

@pytest.mark.parametrize("model", EMBEDDERS)
def test_embeddings_create(oa, model):
    r = oa.embeddings.create(model=model, input=["a cat", "a dog", "a cat"])
    vecs = [d.embedding for d in r.data]
    assert [d.index for d in r.data] == [0, 1, 2]
    assert len(vecs[0]) > 0 and vecs[0] == vecs[2] and vecs[0] != vecs[1]
    assert r.usage.prompt_tokens > 0
    one = oa.embeddings.create(model=model, input="a cat", dimensions=16)
    assert len(one.data[0].embedding) == 16
    # The SDK asks for base64 by default when no format is given and decodes it;
    # float must agree with it.
    flt = oa.embeddings.create(model=model, input="a cat", dimensions=16, encoding_format="float")
    assert flt.data[0].embedding == pytest.approx(one.data[0].embedding, abs=1e-6)


def test_embeddings_without_embeddings_upstream_is_a_client_error(oa):
    with pytest.raises(openai.APIStatusError) as e:
        oa.embeddings.create(model="an", input="a cat")
    assert 400 <= e.value.status_code < 500
