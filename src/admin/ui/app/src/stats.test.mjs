// node --test src/admin/ui/app/src/stats.test.mjs
import { test } from "node:test";
import assert from "node:assert/strict";
import { rates, quantile, baseline, timeTicks, ratioText } from "./stats.js";

const snap = (t, req, err, tok, counts) => ({
  time_ms: t, requests: req, errors: err, input_tokens: tok, output_tokens: 0,
  latency: { le: [0.1, 0.5, 1, null], counts, count: counts[3], sum_s: 0 },
});

test("rates come from the deltas between two polls", () => {
  const r = rates(snap(0, 10, 1, 100, [0, 0, 0, 0]), snap(2000, 30, 3, 500, [0, 0, 0, 0]));
  assert.equal(r.rps, 10);
  assert.equal(r.tps, 200);
  assert.equal(r.errorRate, 0.1);
});

test("quantiles interpolate inside the bucket of the window's requests", () => {
  const a = snap(0, 0, 0, 0, [100, 100, 100, 100]);
  const b = snap(2000, 0, 0, 0, [110, 200, 200, 200]); // 10 <0.1, 90 in 0.1..0.5
  assert.equal(quantile(0.5, a, b), 0.1 + 0.4 * (40 / 90));
  assert.equal(quantile(0.99, a, b) > 0.45, true);
  assert.equal(quantile(0.5, b, b), null);
  const inf = snap(0, 0, 0, 0, [0, 0, 0, 5]);
  assert.equal(quantile(0.5, null, inf), 1);
});

test("the baseline is the newest poll old enough", () => {
  const p = [0, 2000, 4000, 6000, 8000].map((t) => ({ time_ms: t }));
  assert.equal(baseline(p, 5000).time_ms, 2000);
  assert.equal(baseline(p, 60000).time_ms, 0);
});

test("every English label has a Chinese one", async () => {
  const { DICT } = await import("./i18n.js");
  const missing = Object.keys(DICT.en).filter((k) => !(k in DICT.zh));
  assert.deepEqual(missing, []);
});

test("time ticks are dates over days, 24-hour clock times otherwise", () => {
  const t = Date.UTC(2026, 11, 3, 15, 4, 5) / 1000;
  const [day] = timeTicks("en-GB", [t], 7 * 86400);
  assert.match(day, /^0?3\/12$/);
  assert.match(timeTicks("en-GB", [t], 3600)[0], /^\d\d:04$/);
  assert.match(timeTicks("en-GB", [t], 60)[0], /^\d\d:04:05$/);
});

test("a cache-hit ratio reads as a percentage, none as a dash", () => {
  assert.equal(ratioText(0.625), "62.5%");
  assert.equal(ratioText(1), "100.0%");
  assert.equal(ratioText(0), "0.0%");
  assert.equal(ratioText(30 / 56), "53.6%");
  assert.equal(ratioText(null), "–");
  assert.equal(ratioText(undefined), "–");
});
