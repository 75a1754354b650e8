// Pure arithmetic over /api/stats polls: rates and latency quantiles come
// from the difference between two snapshots of cumulative counters.

// Per-second rates between two polls `a` (older) and `b` (newer).
export function rates(a, b) {
  const dt = (b.time_ms - a.time_ms) / 1000;
  const dreq = Math.max(0, b.requests - a.requests);
  const derr = Math.max(0, b.errors - a.errors);
  const dtok = Math.max(0, b.input_tokens + b.output_tokens - a.input_tokens - a.output_tokens);
  if (!(dt > 0)) return { rps: 0, tps: 0, errorRate: 0 };
  return { rps: dreq / dt, tps: dtok / dt, errorRate: dreq > 0 ? derr / dreq : 0 };
}

// The q-quantile (0..1) of the requests that finished between two polls,
// from cumulative histogram buckets (`le` upper bounds, null = +Inf),
// interpolated linearly inside the bucket as Prometheus does. null when no
// request finished in between.
export function quantile(q, a, b) {
  const le = b.latency.le;
  const cb = b.latency.counts;
  const ca = a && a.latency && a.latency.counts.length === cb.length ? a.latency.counts : cb.map(() => 0);
  const d = cb.map((c, i) => Math.max(0, c - ca[i]));
  const total = d[d.length - 1];
  if (!total) return null;
  const rank = q * total;
  for (let i = 0; i < d.length; i++) {
    if (d[i] >= rank) {
      const hi = le[i];
      const lo = i > 0 ? le[i - 1] : 0;
      if (hi === null || hi === undefined) return lo; // in +Inf: the last finite bound
      const below = i > 0 ? d[i - 1] : 0;
      const inBucket = d[i] - below;
      if (inBucket <= 0) return hi;
      return lo + (hi - lo) * ((rank - below) / inBucket);
    }
  }
  return null;
}

// The poll at least `ms` older than the last one (or the oldest there is).
export function baseline(polls, ms) {
  const last = polls[polls.length - 1];
  for (let i = polls.length - 2; i >= 0; i--) {
    if (last.time_ms - polls[i].time_ms >= ms) return polls[i];
  }
  return polls[0];
}

export function fmtNum(n, digits = 1) {
  if (n === null || n === undefined || Number.isNaN(n)) return "–";
  if (Math.abs(n) >= 1e6) return (n / 1e6).toFixed(digits) + "M";
  if (Math.abs(n) >= 1e4) return (n / 1e3).toFixed(digits) + "k";
  return Number.isInteger(n) ? String(n) : n.toFixed(digits);
}

export function fmtMs(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  const ms = seconds * 1000;
  return ms >= 1000 ? (ms / 1000).toFixed(2) + " s" : ms.toFixed(ms < 10 ? 1 : 0) + " ms";
}

// Time ticks in the UI's language, 24-hour: dates when the span is days,
// clock times (with seconds when it is minutes) otherwise.
export function timeTicks(locale, splits, spanS) {
  const opts =
    spanS > 2 * 86400
      ? { month: "numeric", day: "numeric" }
      : spanS > 600
        ? { hour: "2-digit", minute: "2-digit", hour12: false }
        : { hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false };
  const f = new Intl.DateTimeFormat(locale, opts);
  return splits.map((v) => f.format(new Date(v * 1000)));
}

// A share in [0, 1] as a percentage with one decimal ("62.5%"); "–" for
// none (a session with no input tokens has no cache-hit ratio).
export function ratioText(r) {
  if (r === null || r === undefined || !Number.isFinite(r)) return "–";
  return (Math.round(r * 1000) / 10).toFixed(1) + "%";
}
