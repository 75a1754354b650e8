import { useRef, useState } from "preact/hooks";

const lineId = (l) => l.time + "|" + l.target + "|" + l.message;
import { api, qs } from "../api.js";
import { ErrorBox, Link, fmtTime, usePoll, useT } from "../ui.jsx";

export function Logs() {
  const t = useT();
  const [f, setF] = useState({ level: "", request_id: "", key: "" });
  const [paused, setPaused] = useState(false);
  const [lines, setLines] = useState([]);
  const [error, setError] = useState(null);
  const keep = 1000;
  // Polls only what is new: `since` the newest line held (inclusive, so the
  // lines of that same millisecond are dropped as already shown).
  const held = useRef({ filters: "", lines: [] });
  usePoll(
    async () => {
      const sig = JSON.stringify(f);
      if (held.current.filters !== sig) held.current = { filters: sig, lines: [] };
      const have = held.current.lines;
      const since = have.length ? Date.parse(have[0].time) : undefined;
      try {
        const r = await api("/api/logs" + qs({ ...f, since, limit: 500 }));
        const seen = new Set(have.filter((l) => Date.parse(l.time) === since).map(lineId));
        const fresh = (r.lines || []).filter((l) => !seen.has(lineId(l)));
        if (held.current.filters !== sig) return;
        held.current.lines = fresh.concat(have).slice(0, keep);
        setLines(held.current.lines);
        setError(null);
      } catch (e) {
        setError(e);
      }
    },
    2000,
    [f.level, f.request_id, f.key],
    !paused,
  );
  const set = (k) => (e) => setF({ ...f, [k]: e.currentTarget.value });
  return (
    <section>
      <h1>{t("nav.logs")}</h1>
      <div class="row wrap toolbar">
        <label for="log-level">{t("logs.level")}</label>
        <select id="log-level" value={f.level} onChange={set("level")}>
          <option value="">{t("all")}</option>
          {["error", "warn", "info", "debug", "trace"].map((l) => (
            <option key={l} value={l}>
              {l}
            </option>
          ))}
        </select>
        <label for="log-rid">{t("logs.request_id")}</label>
        <input id="log-rid" value={f.request_id} onInput={set("request_id")} />
        <label for="log-key">{t("col.key")}</label>
        <input id="log-key" value={f.key} onInput={set("key")} />
        <span class="spacer" />
        <button id="log-pause" aria-pressed={paused ? "true" : "false"} onClick={() => setPaused(!paused)}>
          {paused ? t("logs.resume") : t("logs.pause")}
        </button>
      </div>
      <ErrorBox error={error} />
      <div class="log" role="log" aria-live={paused ? "off" : "polite"} id="log-lines">
        {lines.length === 0 && <p class="muted">{t("empty")}</p>}
        {lines.map((l, i) => (
          <div key={i} class={"logline lv-" + l.level}>
            <span class="muted">{fmtTime(l.time)}</span> <span class="lv">{l.level}</span>{" "}
            <span class="muted">{l.target}</span>{" "}
            {l.request_id && (
              <Link href={"/ui/requests/" + encodeURIComponent(l.request_id)} class="mono">
                {l.request_id}
              </Link>
            )}{" "}
            <span class="msg">{l.message}</span>
          </div>
        ))}
      </div>
    </section>
  );
}
