// Agent sessions (Claude Code, Codex, …): per session its requests,
// tokens, cost and cache-hit ratio; a session opens to its requests. A
// user key sees its own sessions (the server holds it to them); admins and
// viewers see every key's and may filter by key.
import { useEffect, useMemo, useState } from "preact/hooks";
import { api, enc, qs } from "../api.js";
import { ErrorBox, Link, fmtTime, navigate, useApp, useLoad, useT } from "../ui.jsx";
import { costText, rangeTimes } from "./usage.jsx";
import { ratioText } from "../stats.js";

const PAGE = 50;
const RANGES = ["24h", "7d", "30d"];

export function Sessions({ sub }) {
  const t = useT();
  const { session } = useApp();
  const mine = session && session.role === "user";
  const [range, setRange] = useState("24h");
  const [key, setKey] = useState("");
  const [appliedKey, setAppliedKey] = useState("");
  const [tick, setTick] = useState(0);
  const [from, to] = useMemo(() => rangeTimes(range, {}), [range, tick]);
  const [rows, setRows] = useState([]);
  const [cursor, setCursor] = useState(null);
  const [more, setMore] = useState(false);
  const [error, setError] = useState(null);

  const load = async (after) => {
    setError(null);
    try {
      const r = await api("/api/usage/sessions" + qs({ from, to, key: mine ? "" : appliedKey, limit: PAGE, cursor: after }));
      setRows((old) => (after ? [...old, ...r.data] : r.data));
      setCursor(r.next_cursor);
      setMore(!!r.has_more);
    } catch (e) {
      setError(e);
    }
  };
  useEffect(() => {
    load(null);
  }, [from, to, appliedKey]);

  // `/ui/sessions/{id}`; the key of the row clicked rides in the query.
  const openKey = new URLSearchParams(location.search).get("key") || "";
  return (
    <section>
      <h1>{t(mine ? "nav.my_sessions" : "nav.sessions")}</h1>
      <form
        class="row wrap toolbar"
        onSubmit={(e) => {
          e.preventDefault();
          setAppliedKey(key.trim());
          setTick(tick + 1);
        }}
      >
        <span id="sess-range-label">{t("usage.range")}</span>
        <div role="group" aria-labelledby="sess-range-label" class="seg">
          {RANGES.map((r) => (
            <button type="button" key={r} class={range === r ? "active" : ""} aria-pressed={range === r ? "true" : "false"} onClick={() => setRange(r)}>
              {t("range." + r)}
            </button>
          ))}
        </div>
        {!mine && (
          <>
            <label for="sess-key">{t("col.key")}</label>
            <input id="sess-key" value={key} onInput={(e) => setKey(e.currentTarget.value)} />
          </>
        )}
        <button type="submit" class="primary">
          {mine ? t("reload") : t("filter")}
        </button>
      </form>
      <ErrorBox error={error} />
      <div class={sub ? "split" : ""}>
        <div class="table-wrap">
          <table id="sessions-table">
            <thead>
              <tr>
                <th>{t("sess.id")}</th>
                {!mine && <th>{t("col.key")}</th>}
                <th>{t("sess.last_seen")}</th>
                <th class="num">{t("col.requests")}</th>
                <th class="num">{t("col.input")}</th>
                <th class="num">{t("col.output")}</th>
                <th class="num">{t("sess.cache_hit")}</th>
                <th class="num">{t("col.cost")}</th>
              </tr>
            </thead>
            <tbody>
              {rows.map((s) => {
                const href = "/ui/sessions/" + enc(s.session_id) + (mine || !s.key ? "" : qs({ key: s.key }));
                const selected = s.session_id === sub && (mine || !openKey || openKey === s.key);
                return (
                  <tr key={s.session_id + "\u0000" + (s.key || "")} class={selected ? "selected" : ""} data-session={s.session_id}>
                    <td class="mono">
                      <Link href={href} aria-label={t("sess.open", { id: s.session_id })}>
                        {s.session_id}
                      </Link>
                    </td>
                    {!mine && <td>{s.key || "–"}</td>}
                    <td>{fmtTime(s.last_seen)}</td>
                    <td class="num">{s.requests}</td>
                    <td class="num">{s.input}</td>
                    <td class="num">{s.output}</td>
                    <td class="num" data-col="cache-hit">{ratioText(s.cache_hit_ratio)}</td>
                    <td class="num" data-col="cost">
                      {costText(s.cost)}
                      {s.unpriced > 0 ? " *" : ""}
                    </td>
                  </tr>
                );
              })}
            </tbody>
          </table>
          {rows.length === 0 && !error && <p class="muted">{t("sess.none")}</p>}
          {more && (
            <button id="sessions-more" onClick={() => load(cursor)}>
              {t("load_more")}
            </button>
          )}
        </div>
        {sub && <SessionDetail id={sub} keyName={mine ? "" : openKey} />}
      </div>
    </section>
  );
}

function SessionDetail({ id, keyName }) {
  const t = useT();
  const [v, error] = useLoad(() => api("/api/usage/sessions/" + enc(id) + qs({ key: keyName, limit: 500 })), [id, keyName]);
  const rows = (v && v.data) || [];
  return (
    <article class="card" id="session-detail" aria-label={t("sess.detail")}>
      <div class="row between">
        <h2 class="mono">{id}</h2>
        <button onClick={() => navigate("/ui/sessions")} aria-label={t("close")}>
          ✕
        </button>
      </div>
      <ErrorBox error={error} />
      {v && (
        <div class="table-wrap">
          <table id="session-requests">
            <thead>
              <tr>
                <th>{t("col.time")}</th>
                <th>{t("col.model")}</th>
                <th>{t("req.routed")}</th>
                <th>{t("req.scene")}</th>
                <th class="num">{t("col.status")}</th>
                <th class="num">{t("col.tokens")}</th>
                <th class="num">{t("col.cost")}</th>
              </tr>
            </thead>
            <tbody>
              {rows.map((r) => (
                <tr key={r.request_id}>
                  <td>
                    <Link href={"/ui/requests/" + enc(r.request_id)} data-request={r.request_id}>
                      {fmtTime(r.time)}
                    </Link>
                  </td>
                  <td>{r.model || "–"}</td>
                  <td>{r.routed_model ? `${r.routed_model}${r.routed_by ? ` (${r.routed_by})` : ""}` : "–"}</td>
                  <td>{r.scene || "–"}</td>
                  <td class={"num " + (r.status >= 400 ? "bad-text" : "")}>{r.status}</td>
                  <td class="num">{r.input_uncached + r.cache_read + r.cache_write + r.output}</td>
                  <td class="num">{r.cost !== null ? `${r.cost} ${r.currency || ""}` : "–"}</td>
                </tr>
              ))}
            </tbody>
          </table>
          {v.has_more && <p class="muted">{t("sess.truncated")}</p>}
        </div>
      )}
    </article>
  );
}
