// The official Node SDKs against ModelSwitch, through each upstream dialect:
// `openai` chat.completions.stream(...).finalChatCompletion() and
// `@anthropic-ai/sdk` messages.stream(...).finalMessage(). What these stream
// helpers accumulate must come out whole or not at all, never garbled.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { KEY, requireSdk, startStack } from '../stack.mjs';

const OpenAIModule = requireSdk('openai');
const OpenAI = OpenAIModule.OpenAI ?? OpenAIModule.default;
const AnthropicModule = requireSdk('@anthropic-ai/sdk');
const Anthropic = AnthropicModule.Anthropic ?? AnthropicModule.default;

const HELLO = 'Hello from the mock upstream! You said: hi there';
const REASONING = 'Let me think about that.';
const CITIES = ['Paris', 'Tokyo', 'Lima'];
const RESULTS = `Tool results: ${CITIES.map((c) => `${c}: sunny`).join(' | ')}`;

// upstream dialect -> route prefix; MODELSWITCH_TEST_UPSTREAMS narrows the set.
const ALL = { openai: 'oa', anthropic: 'an', gemini: 'ge', 'openai-responses': 'rs' };
const UPSTREAMS = (process.env.MODELSWITCH_TEST_UPSTREAMS || Object.keys(ALL).join(','))
  .split(',').filter((u) => ALL[u]);

const MODELS = {};
for (const u of UPSTREAMS) {
  const p = ALL[u];
  MODELS[p] = [[u, 'mock']];
  MODELS[`${p}-3calls`] = [[u, 'mock;calls=3']];
  // Reasoning that arrives over many chunks (one per word).
  MODELS[`${p}-think`] = [[u, 'mock;reasoning=5']];
}

const WEATHER_OA = [{
  type: 'function',
  function: {
    name: 'get_weather',
    description: 'Weather for a city',
    parameters: { type: 'object', properties: { location: { type: 'string' } }, required: ['location'] },
  },
}];
const WEATHER_AN = [{
  name: 'get_weather',
  description: 'Weather for a city',
  input_schema: { type: 'object', properties: { location: { type: 'string' } }, required: ['location'] },
}];

let stack;
let oa;
let an;

before(async () => {
  stack = await startStack(MODELS);
  oa = new OpenAI({ baseURL: `${stack.gateway}/v1`, apiKey: KEY, maxRetries: 0, timeout: 20_000 });
  an = new Anthropic({ baseURL: stack.gateway, apiKey: KEY, maxRetries: 0, timeout: 20_000 });
});

after(() => stack?.stop());

/** Whole or absent: never a fragment of `whole`. Says which in the report. */
function wholeOrAbsent(t, value, whole, what) {
  if (value === undefined || value === null || value === '') {
    t.diagnostic(`${what}: absent`);
    return;
  }
  assert.equal(value, whole, `${what} is a fragment or garbled: ${JSON.stringify(value)}`);
  t.diagnostic(`${what}: whole`);
}

for (const upstream of UPSTREAMS) {
  const p = ALL[upstream];

  describe(`openai chat.completions.stream via ${upstream} upstream`, () => {
    test('finalChatCompletion: text', async () => {
      const s = oa.chat.completions.stream({
        model: p,
        messages: [{ role: 'system', content: 'be brief' }, { role: 'user', content: 'hi there' }],
        stream_options: { include_usage: true },
      });
      const final = await s.finalChatCompletion();
      const c = final.choices[0];
      assert.equal(c.message.role, 'assistant');
      assert.equal(c.message.content, HELLO);
      assert.equal(c.finish_reason, 'stop');
      assert.ok(final.usage && final.usage.prompt_tokens > 0, 'usage');
      assert.equal(await s.finalContent(), HELLO);
    });

    test('finalChatCompletion: parallel tool calls and the round trip', async () => {
      const messages = [{ role: 'user', content: 'weather in three cities?' }];
      const first = await oa.chat.completions.stream({ model: `${p}-3calls`, messages, tools: WEATHER_OA })
        .finalChatCompletion();
      const c = first.choices[0];
      assert.equal(c.finish_reason, 'tool_calls');
      const calls = c.message.tool_calls;
      assert.deepEqual(calls.map((t) => t.type), ['function', 'function', 'function']);
      assert.deepEqual(calls.map((t) => t.function.name), ['get_weather', 'get_weather', 'get_weather']);
      assert.deepEqual(calls.map((t) => JSON.parse(t.function.arguments).location), CITIES);
      assert.equal(new Set(calls.map((t) => t.id)).size, 3);

      messages.push({ role: 'assistant', content: null, tool_calls: calls });
      for (const t of calls) {
        messages.push({ role: 'tool', tool_call_id: t.id, content: `${JSON.parse(t.function.arguments).location}: sunny` });
      }
      const second = await oa.chat.completions.stream({ model: `${p}-3calls`, messages, tools: WEATHER_OA })
        .finalChatCompletion();
      assert.equal(second.choices[0].message.content, RESULTS);
      assert.equal(second.choices[0].finish_reason, 'stop');
    });

    test('finalChatCompletion: reasoning over many chunks is whole or absent', async (t) => {
      const s = oa.chat.completions.stream({
        model: `${p}-think`,
        messages: [{ role: 'user', content: 'hi there' }],
        reasoning_effort: 'low',
      });
      // What a consumer that appends deltas itself sees.
      const appended = { reasoning_content: '', reasoning: '' };
      s.on('chunk', (chunk) => {
        for (const ch of chunk.choices) {
          for (const k of Object.keys(appended)) {
            if (typeof ch.delta?.[k] === 'string') appended[k] += ch.delta[k];
          }
        }
      });
      const final = await s.finalChatCompletion();
      const msg = final.choices[0].message;
      assert.equal(msg.content, HELLO);
      assert.equal(final.choices[0].finish_reason, 'stop');
      for (const k of ['reasoning_content', 'reasoning']) {
        wholeOrAbsent(t, msg[k], REASONING, `finalChatCompletion().choices[0].message.${k}`);
        wholeOrAbsent(t, appended[k], REASONING, `appended ${k} deltas`);
      }
    });
  });

  describe(`@anthropic-ai/sdk messages.stream via ${upstream} upstream`, () => {
    test('finalMessage: text', async () => {
      const s = an.messages.stream({
        model: p, max_tokens: 100, system: 'be brief',
        messages: [{ role: 'user', content: 'hi there' }],
      });
      let streamed = '';
      s.on('text', (t) => { streamed += t; });
      const final = await s.finalMessage();
      assert.equal(streamed, HELLO);
      assert.equal(final.content.length, 1);
      assert.equal(final.content[0].type, 'text');
      assert.equal(final.content[0].text, HELLO);
      assert.equal(final.stop_reason, 'end_turn');
      assert.ok(final.usage.input_tokens > 0 && final.usage.output_tokens > 0, 'usage');
    });

    test('finalMessage: parallel tool_use and the round trip', async () => {
      const messages = [{ role: 'user', content: 'weather in three cities?' }];
      const first = await an.messages.stream({ model: `${p}-3calls`, max_tokens: 200, messages, tools: WEATHER_AN })
        .finalMessage();
      assert.equal(first.stop_reason, 'tool_use');
      const uses = first.content.filter((b) => b.type === 'tool_use');
      assert.deepEqual(uses.map((u) => u.name), ['get_weather', 'get_weather', 'get_weather']);
      assert.deepEqual(uses.map((u) => u.input.location), CITIES);
      assert.equal(new Set(uses.map((u) => u.id)).size, 3);

      messages.push({ role: 'assistant', content: first.content });
      messages.push({
        role: 'user',
        content: uses.map((u) => ({ type: 'tool_result', tool_use_id: u.id, content: `${u.input.location}: sunny` })),
      });
      const second = await an.messages.stream({ model: `${p}-3calls`, max_tokens: 200, messages, tools: WEATHER_AN })
        .finalMessage();
      assert.equal(second.content.filter((b) => b.type === 'text').map((b) => b.text).join(''), RESULTS);
      assert.equal(second.stop_reason, 'end_turn');
    });

    test('finalMessage: thinking over many chunks is whole or absent', async (t) => {
      const final = await an.messages.stream({
        model: `${p}-think`, max_tokens: 2048,
        thinking: { type: 'enabled', budget_tokens: 1024 },
        messages: [{ role: 'user', content: 'hi there' }],
      }).finalMessage();
      const thinking = final.content.filter((b) => b.type === 'thinking');
      assert.ok(thinking.length <= 1, `one thinking block at most, got ${thinking.length}`);
      wholeOrAbsent(t, thinking.map((b) => b.thinking).join(''), REASONING, 'thinking');
      const text = final.content.filter((b) => b.type === 'text');
      assert.equal(text.map((b) => b.text).join(''), HELLO);
      assert.equal(final.content[final.content.length - 1].type, 'text');
      assert.equal(final.stop_reason, 'end_turn');
    });
  });
}
