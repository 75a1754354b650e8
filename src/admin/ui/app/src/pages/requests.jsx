import { useEffect, useState } from "preact/hooks";
import { api, enc, qs } from "../api.js";
import { ErrorBox, Link, fmtTime, navigate, useApp, useLoad, useT } from "../ui.jsx";

const PAGE = 50;

export function Requests({ sub }) {
  const t = useT();
  const { session } = useApp();
  // A user key reads its own rows only: no key to filter by or show.
  const mine = session && session.role === "user";
  const [f, setF] = useState({ key: "", model: "", provider: "", status: "" });
  const [applied, setApplied] = useState(f);
  const [rows, setRows] = useState([]);
  const [cursor, setCursor] = useState(null);
  const [more, setMore] = useState(false);
  const [error, setError] = useState(null);
  const [n, setN] = useState(0);

  const load = async (after) => {
    setError(null);
    try {
      const r = await api("/api/usage/requests" + qs({ ...applied, limit: PAGE, cursor: after }));
      setRows((old) => (after ? [...old, ...r.data] : r.data));
      setCursor(r.next_cursor);
      setMore(!!r.has_more);
    } catch (e) {
      setError(e);
    }
  };
  useEffect(() => {
    load(null);
  }, [applied, n]);

  const field = (k, label, ph) => (
    <>
      <label for={"rq-" + k}>{label}</label>
      <input id={"rq-" + k} value={f[k]} placeholder={ph} onInput={(e) => setF({ ...f, [k]: e.currentTarget.value })} />
    </>
  );
  return (
    <section>
      <h1>{t(mine ? "nav.my_requests" : "nav.requests")}</h1>
      <form
        class="row wrap toolbar"
        onSubmit={(e) => {
          e.preventDefault();
          setApplied({ ...f });
          setN(n + 1);
        }}
      >
        {!mine && field("key", t("col.key"))}
        {field("model", t("col.model"))}
        {field("provider", t("col.provider"))}
        {field("status", t("col.status"), "429, 5xx, error")}
        <button type="submit" class="primary">
          {t("filter")}
        </button>
      </form>
      <ErrorBox error={error} />
      <div class={sub ? "split" : ""}>
        <div class="table-wrap">
          <table id="requests-table">
            <thead>
              <tr>
                <th>{t("col.time")}</th>
                {!mine && <th>{t("col.key")}</th>}
                <th>{t("col.model")}</th>
                <th>{t("col.provider")}</th>
                <th class="num">{t("col.status")}</th>
                <th class="num">{t("col.latency")}</th>
                <th class="num">{t("col.tokens")}</th>
              </tr>
            </thead>
            <tbody>
              {rows.map((r) => (
                <tr key={r.request_id} class={r.request_id === sub ? "selected" : ""}>
                  <td>
                    <Link href={"/ui/requests/" + enc(r.request_id)} data-request={r.request_id}>
                      {fmtTime(r.time)}
                    </Link>
                  </td>
                  {!mine && <td>{r.key_name || "–"}</td>}
                  <td>{r.model || "–"}</td>
                  <td>{r.provider || "–"}</td>
                  <td class={"num " + (r.status >= 400 ? "bad-text" : "")}>{r.status}</td>
                  <td class="num">{Math.round(r.latency_ms)} ms</td>
                  <td class="num">{r.input_uncached + r.cache_read + r.cache_write + r.output}</td>
                </tr>
              ))}
            </tbody>
          </table>
          {rows.length === 0 && !error && <p class="muted">{t("empty")}</p>}
          {more && (
            <button id="load-more" onClick={() => load(cursor)}>
              {t("load_more")}
            </button>
          )}
        </div>
        {sub && <RequestDetail id={sub} />}
      </div>
    </section>
  );
}

function RequestDetail({ id }) {
  const t = useT();
  const [r, error] = useLoad(() => api("/api/usage/requests/" + enc(id)), [id]);
  const [conv] = useLoad(() => api("/api/conversations/" + enc(id)).then(() => true, () => false), [id]);
  const row = (label, v) => (
    <>
      <dt>{label}</dt>
      <dd>{v === null || v === undefined || v === "" ? "–" : v}</dd>
    </>
  );
  return (
    <article class="card" id="request-detail" aria-label={t("req.detail")}>
      <div class="row between">
        <h2 class="mono">{id}</h2>
        <button onClick={() => navigate("/ui/requests")} aria-label={t("close")}>
          ✕
        </button>
      </div>
      <ErrorBox error={error} />
      {r && (
        <>
          <dl class="kv">
            {row(t("col.time"), fmtTime(r.time))}
            {row(t("col.key"), r.key_name)}
            {row(t("col.endpoint"), r.endpoint)}
            {row(t("col.model"), r.model)}
            {row(t("col.provider"), r.provider && `${r.provider} / ${r.upstream_model || ""}`)}
            {row(t("col.status"), r.status)}
            {row(t("col.stream"), r.stream ? t("yes") : t("no"))}
            {row(t("col.latency"), `${Math.round(r.latency_ms)} ms`)}
            {row(t("req.ttfb"), r.ttfb_ms !== null ? `${Math.round(r.ttfb_ms)} ms` : null)}
            {row(t("req.overhead"), r.overhead_ms !== null ? `${r.overhead_ms.toFixed(2)} ms` : null)}
            {row(t("col.input"), `${r.input_uncached} + ${t("req.cache_read")} ${r.cache_read} + ${t("req.cache_write")} ${r.cache_write}`)}
            {row(t("col.output"), `${r.output} (${t("req.reasoning")} ${r.reasoning})`)}
            {row(t("col.cost"), r.cost !== null ? `${r.cost} ${r.currency || ""}` : null)}
            {row(t("req.client"), [r.client_addr, r.user_agent].filter(Boolean).join(" · "))}
            {row(
              t("req.session"),
              r.session_id && (
                <Link href={"/ui/sessions/" + enc(r.session_id) + (r.key_name ? "?key=" + enc(r.key_name) : "")} id="session-link">
                  {r.session_id}
                </Link>
              ),
            )}
            {row(t("req.routed"), r.routed_model && `${r.routed_model}${r.routed_by ? ` (${r.routed_by})` : ""}`)}
            {row(t("req.scene"), r.scene)}
            {row(t("col.error"), r.error)}
          </dl>
          <h3>{t("req.attempts")}</h3>
          <table id="attempts">
            <thead>
              <tr>
                <th>#</th>
                <th>{t("col.provider")}</th>
                <th>{t("col.model")}</th>
                <th>{t("req.outcome")}</th>
                <th>{t("col.key")}</th>
              </tr>
            </thead>
            <tbody>
              {(Array.isArray(r.attempts) ? r.attempts : []).map((a, i) => (
                <tr key={i}>
                  <td>{i + 1}</td>
                  <td>{a.provider}</td>
                  <td class="mono">{a.model}</td>
                  <td>{a.outcome}</td>
                  <td class="mono">{a.key || "–"}</td>
                </tr>
              ))}
            </tbody>
          </table>
          {conv && (
            <p>
              <Link href={"/ui/conversations/" + enc(id)} id="conversation-link">
                {t("req.conversation")}
              </Link>
            </p>
          )}
        </>
      )}
    </article>
  );
}
