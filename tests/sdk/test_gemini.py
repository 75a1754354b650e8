"""The official `google-genai` SDK against ModelSwitch's Gemini endpoints,
routed to each upstream dialect (OpenAI Chat, Anthropic, Gemini, OpenAI
Responses): what the real client accepts is the contract."""

import pytest
from google import genai
from google.genai import errors, types

from conftest import ENABLED, KEY

HELLO = "Hello from the mock upstream! You said: hi there"
UPSTREAMS = ENABLED  # oa, an, ge, rs: OpenAI Chat, Anthropic, Gemini, OpenAI Responses upstreams
EMBEDDERS = [p for p in ("oa", "ge") if p in ENABLED]
CITIES = ["Paris", "Tokyo", "Lima"]
WEATHER = types.Tool(function_declarations=[types.FunctionDeclaration(
    name="get_weather",
    description="Weather for a city",
    parameters_json_schema={"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]},
)])
NO_AFC = types.AutomaticFunctionCallingConfig(disable=True)


def client(base_url):
    return genai.Client(
        api_key=KEY,
        http_options=types.HttpOptions(
            base_url=base_url,
            api_version="v1beta",
            timeout=20_000,
            retry_options=types.HttpRetryOptions(attempts=1),
        ),
    )


@pytest.fixture
def ge(stack):
    return client(stack.gateway)


@pytest.mark.parametrize("model", UPSTREAMS)
def test_generate_content(ge, model):
    r = ge.models.generate_content(model=model, contents="hi there")
    assert r.text == HELLO
    assert r.candidates[0].finish_reason == types.FinishReason.STOP
    assert r.usage_metadata.prompt_token_count > 0
    assert r.usage_metadata.candidates_token_count > 0


@pytest.mark.parametrize("model", UPSTREAMS)
def test_generate_content_with_system_instruction(ge, model):
    r = ge.models.generate_content(
        model=model,
        contents=[types.Content(role="user", parts=[types.Part(text="hi there")])],
        config=types.GenerateContentConfig(system_instruction="be brief", max_output_tokens=100, temperature=0.2),
    )
    assert r.text == HELLO


@pytest.mark.parametrize("model", UPSTREAMS)
def test_generate_content_stream(ge, model):
    chunks = list(ge.models.generate_content_stream(model=model, contents="hi there"))
    assert chunks, "no chunk"
    assert "".join(c.text or "" for c in chunks) == HELLO
    assert chunks[-1].candidates[0].finish_reason == types.FinishReason.STOP
    assert chunks[-1].usage_metadata.prompt_token_count > 0


@pytest.mark.parametrize("model", UPSTREAMS)
def test_gemini_prefix_path(stack, model):
    """The same API under /gemini (base_url ending /gemini)."""
    c = client(f"{stack.gateway}/gemini")  # held: a dropped Client closes its connection pool
    assert c.models.generate_content(model=model, contents="hi there").text == HELLO
    assert "".join(x.text or "" for x in c.models.generate_content_stream(model=model, contents="hi there")) == HELLO


@pytest.mark.parametrize("model", UPSTREAMS)
def test_thinking_comes_whole(ge, model):
    """Reasoning from the upstream reaches a Gemini client as `thought` parts
    that add up to the whole text, or not at all; the answer is intact."""
    cfg = types.GenerateContentConfig(thinking_config=types.ThinkingConfig(include_thoughts=True))
    chunks = list(ge.models.generate_content_stream(model=f"{model}-think", contents="hi there", config=cfg))
    parts = [p for c in chunks if c.candidates and c.candidates[0].content
             for p in (c.candidates[0].content.parts or [])]
    thoughts = "".join(p.text or "" for p in parts if p.thought)
    answer = "".join(p.text or "" for p in parts if not p.thought)
    assert answer == HELLO
    assert thoughts in ("", "Let me think about that.")
    whole = ge.models.generate_content(model=f"{model}-think", contents="hi there", config=cfg)
    assert whole.text == HELLO


@pytest.mark.parametrize("model", UPSTREAMS)
@pytest.mark.parametrize("streaming", [False, True])
def test_function_calling_round_trip(ge, model, streaming):
    cfg = types.GenerateContentConfig(tools=[WEATHER], automatic_function_calling=NO_AFC)
    contents = [types.Content(role="user", parts=[types.Part(text="weather in three cities?")])]
    if streaming:
        chunks = list(ge.models.generate_content_stream(model=f"{model}-3calls", contents=contents, config=cfg))
        parts = [p for c in chunks if c.candidates and c.candidates[0].content
                 for p in (c.candidates[0].content.parts or [])]
    else:
        first = ge.models.generate_content(model=f"{model}-3calls", contents=contents, config=cfg)
        parts = first.candidates[0].content.parts
    calls = [p.function_call for p in parts if p.function_call]
    assert [c.name for c in calls] == ["get_weather"] * 3
    assert [c.args["location"] for c in calls] == CITIES

    contents.append(types.Content(role="model", parts=parts))
    contents.append(types.Content(role="user", parts=[
        types.Part(function_response=types.FunctionResponse(id=c.id, name=c.name, response={"result": f"{c.args['location']}: sunny"}))
        for c in calls
    ]))
    second = ge.models.generate_content(model=f"{model}-3calls", contents=contents, config=cfg)
    text = second.text
    assert text.startswith("Tool results: "), text
    for city in CITIES:
        assert f"{city}: sunny" in text


@pytest.mark.parametrize("model", UPSTREAMS)
def test_automatic_function_calling(ge, model):
    """The SDK runs a Python callable and sends its result back by itself."""
    seen = []

    def get_weather(location: str) -> str:
        """Weather for a city."""
        seen.append(location)
        return f"{location}: sunny"

    r = ge.models.generate_content(
        model=f"{model}-3calls", contents="weather in three cities?",
        config=types.GenerateContentConfig(tools=[get_weather]),
    )
    assert seen == CITIES
    for city in CITIES:
        assert f"{city}: sunny" in r.text


@pytest.mark.skipif("ge" not in ENABLED, reason="gemini upstream not enabled")
def test_thought_signature_goes_back_to_gemini(ge, stack):
    """Gemini upstream: the thoughtSignature the client got is replayed to it."""
    cfg = types.GenerateContentConfig(tools=[WEATHER], automatic_function_calling=NO_AFC)
    contents = [types.Content(role="user", parts=[types.Part(text="weather?")])]
    first = ge.models.generate_content(model="ge-think", contents=contents, config=cfg)
    parts = first.candidates[0].content.parts
    calls = [p.function_call for p in parts if p.function_call]
    assert calls
    contents.append(first.candidates[0].content)
    contents.append(types.Content(role="user", parts=[
        types.Part(function_response=types.FunctionResponse(id=c.id, name=c.name, response={"result": "sunny"}))
        for c in calls
    ]))
    ge.models.generate_content(model="ge-think", contents=contents, config=cfg)
    last = stack.seen("mock;reasoning=5")[-1]
    assert "bW9jay1nZW1pbmktc2lnbmF0dXJl" in last["thought_signatures"]  # base64 of mock-gemini-signature


@pytest.mark.parametrize("model", UPSTREAMS)
def test_count_tokens(ge, model):
    r = ge.models.count_tokens(model=model, contents="hello " * 200)
    assert 100 <= r.total_tokens <= 600


@pytest.mark.parametrize("model", EMBEDDERS)
def test_embed_content(ge, model):
    r = ge.models.embed_content(model=model, contents=["a cat", "a dog", "a cat"])
    vecs = [e.values for e in r.embeddings]
    assert len(vecs) == 3
    assert all(len(v) > 0 and all(isinstance(x, float) for x in v) for v in vecs)
    assert vecs[0] == vecs[2] and vecs[0] != vecs[1]
    one = ge.models.embed_content(model=model, contents="a cat",
                                  config=types.EmbedContentConfig(output_dimensionality=16))
    assert len(one.embeddings[0].values) == 16


def test_embed_content_without_embeddings_upstream_is_a_client_error(ge):
    """Anthropic has no embeddings: a clean 4xx in Google's error shape."""
    with pytest.raises(errors.ClientError) as e:
        ge.models.embed_content(model="an", contents="a cat")
    assert 400 <= e.value.code < 500


def test_list_models(ge):
    names = [m.name for m in ge.models.list()]
    assert "models/oa" in names and "models/an" in names


def test_unknown_model_is_404(ge):
    with pytest.raises(errors.ClientError) as e:
        ge.models.generate_content(model="nope", contents="x")
    assert e.value.code == 404


def test_bad_key_is_rejected(stack):
    bad = genai.Client(api_key="not-a-key", http_options=types.HttpOptions(
        base_url=stack.gateway, api_version="v1beta", timeout=10_000,
        retry_options=types.HttpRetryOptions(attempts=1)))
    with pytest.raises(errors.ClientError) as e:
        bad.models.generate_content(model="oa", contents="x")
    assert e.value.code in (400, 401, 403)


@pytest.mark.parametrize("model,code", [("oa-429", 429), ("an-429", 429), ("oa-500", 500)])
def test_upstream_errors_keep_their_status(ge, model, code):
    with pytest.raises(errors.APIError) as e:
        ge.models.generate_content(model=model, contents="x")
    assert e.value.code == code
