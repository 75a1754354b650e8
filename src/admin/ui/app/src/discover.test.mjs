import { test } from "node:test";
import assert from "node:assert/strict";
import { addBody, filtered, fmtWindow, ticked } from "./discover.js";

const models = [
  { id: "gpt-4o", display_name: "GPT-4o" },
  { id: "qwen3:8b" },
  { id: "text-embedding-3-small" },
];

test("the filter matches ids and display names in any case", () => {
  assert.deepEqual(filtered(models, "").length, 3);
  assert.deepEqual(filtered(models, "QWEN").map((m) => m.id), ["qwen3:8b"]);
  assert.deepEqual(filtered(models, "gpt-4O").map((m) => m.id), ["gpt-4o"]);
});

test("the body names only what is ticked, a name only when it differs", () => {
  const picks = {
    "gpt-4o": { checked: true, name: "  " },
    "qwen3:8b": { checked: true, name: "qwen3-8b" },
    "text-embedding-3-small": { checked: false, name: "x" },
  };
  assert.deepEqual(addBody(models, picks), { models: [{ id: "gpt-4o" }, { id: "qwen3:8b", name: "qwen3-8b" }] });
  assert.equal(ticked(picks), 2);
  assert.deepEqual(addBody(models, { "gpt-4o": { checked: true, name: "gpt-4o" } }), { models: [{ id: "gpt-4o" }] });
});

test("context windows read short", () => {
  assert.equal(fmtWindow(1048576), "1M");
  assert.equal(fmtWindow(32768), "32k");
  assert.equal(fmtWindow(128000), "128k");
  assert.equal(fmtWindow(2048), "2k");
  assert.equal(fmtWindow(131072), "128k");
  assert.equal(fmtWindow(200000), "200k");
  assert.equal(fmtWindow(null), "–");
});
