// Model discovery's pure parts (the dialog is pages/discover.jsx): what
// the listing shows for a filter, and the POST body for what is ticked.

// Models whose id or display name holds `q` (any case); all for an empty `q`.
export function filtered(models, q) {
  const s = String(q || "").trim().toLowerCase();
  if (!s) return models;
  return models.filter((m) => m.id.toLowerCase().includes(s) || (m.display_name || "").toLowerCase().includes(s));
}

// `{models: [{id, name?}]}` for the ticked ids, in the listing's order; a
// name only when one was typed and differs from the id.
export function addBody(models, picks) {
  const out = [];
  for (const m of models) {
    const p = picks[m.id];
    if (!p || !p.checked) continue;
    const name = String(p.name || "").trim();
    out.push(name && name !== m.id ? { id: m.id, name } : { id: m.id });
  }
  return { models: out };
}

// How many are ticked.
export function ticked(picks) {
  return Object.values(picks).filter((p) => p && p.checked).length;
}

// A context window in tokens, short ("128k", "1M").
export function fmtWindow(n) {
  if (n === null || n === undefined) return "–";
  // Powers of two read as such (1048576 is 1M, 131072 is 128k).
  const pow2 = Number.isInteger(n) && n > 0 && (n & (n - 1)) === 0;
  const short = (x) => (Number.isInteger(x) ? String(x) : x.toFixed(1).replace(/\.0$/, ""));
  if (n >= 1_000_000) return short(pow2 ? n / 1048576 : n / 1e6) + "M";
  if (n >= 1000) return short(pow2 ? n / 1024 : Math.round(n / 1000)) + "k";
  return String(n);
}
