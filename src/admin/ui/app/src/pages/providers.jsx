import { useState } from "preact/hooks";
import { api, enc } from "../api.js";
import { Badge, ErrorBox, TestResult, useLoad, useReadOnly, useT } from "../ui.jsx";
import { Discover } from "./discover.jsx";

export function Providers() {
  const t = useT();
  const ro = useReadOnly();
  const [data, error, reload] = useLoad(() => api("/api/providers"), []);
  const [tests, setTests] = useState({});
  const [busy, setBusy] = useState(null);
  const [discover, setDiscover] = useState(null);

  const test = async (name) => {
    setBusy(name);
    try {
      const r = await api(`/api/providers/${enc(name)}/test`, { method: "POST", body: {} });
      setTests((x) => ({ ...x, [name]: r }));
    } catch (e) {
      setTests((x) => ({ ...x, [name]: { ok: false, status: e.status, error: e.message } }));
    } finally {
      setBusy(null);
    }
  };

  return (
    <section>
      <div class="row between">
        <h1>{t("nav.providers")}</h1>
        <button onClick={reload}>{t("reload")}</button>
      </div>
      <ErrorBox error={error} />
      {data &&
        data.providers.map((p) => (
          <article class="card" key={p.name} id={"provider-" + p.name}>
            <div class="row between">
              <h2>
                {p.display_name || p.name} {p.display_name && <span class="mono small">{p.name}</span>}{" "}
                <span class="muted">{p.type}</span>
                {p.preset && (
                  <span class="badge" title={t("prov.preset")}>
                    {p.preset}
                  </span>
                )}
                {p.enabled === false && <Badge state="disabled" />}
              </h2>
              <div class="row">
                <button onClick={() => setDiscover(p.name)} aria-label={t("prov.discover") + " " + p.name}>
                  {t("prov.discover")}
                </button>
                <button
                  onClick={() => test(p.name)}
                  disabled={ro || busy === p.name}
                  aria-label={t("prov.test") + " " + p.name}
                >
                  {busy === p.name ? t("testing") : t("prov.test")}
                </button>
              </div>
            </div>
            {(p.description || (p.tags && p.tags.length > 0)) && (
              <p class="prov-about">
                {p.description && <span class="muted">{p.description}</span>}
                {(p.tags || []).map((tag) => (
                  <span class="badge tag" key={tag}>
                    {tag}
                  </span>
                ))}
              </p>
            )}
            <TestResult r={tests[p.name]} />
            <div class="grid2">
              <div>
                <h3>{t("prov.replicas")}</h3>
                <table>
                  <thead>
                    <tr>
                      <th>{t("col.url")}</th>
                      <th>{t("col.health")}</th>
                      <th>{t("col.state")}</th>
                    </tr>
                  </thead>
                  <tbody>
                    {(p.replicas && p.replicas.length ? p.replicas : (p.base_urls || []).map((url) => ({ url }))).map(
                      (r) => (
                        <tr key={r.url}>
                          <td class="mono">{r.url}</td>
                          <td>{r.healthy === undefined ? "–" : <Badge state={r.healthy ? "healthy" : "unhealthy"} />}</td>
                          <td>{r.state || "–"}</td>
                        </tr>
                      ),
                    )}
                  </tbody>
                </table>
                <h3>{t("prov.breakers")}</h3>
                <table>
                  <thead>
                    <tr>
                      <th>{t("col.model")}</th>
                      <th>{t("col.slot")}</th>
                      <th>{t("col.breaker")}</th>
                    </tr>
                  </thead>
                  <tbody>
                    {(p.targets || []).map((x, i) => (
                      <tr key={i}>
                        <td>{x.model}</td>
                        <td class="mono">{x.slot}</td>
                        <td>
                          <Badge state={x.breaker} />
                        </td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </div>
              <div>
                <h3>{t("prov.keys")}</h3>
                <table>
                  <thead>
                    <tr>
                      <th>{t("col.key")}</th>
                      <th>{t("col.state")}</th>
                      <th class="num">{t("col.requests")}</th>
                      <th class="num">{t("col.failures")}</th>
                      <th class="num">{t("col.success_rate")}</th>
                    </tr>
                  </thead>
                  <tbody>
                    {(p.keys || []).map((k, i) => (
                      <tr key={i}>
                        <td class="mono">{k.key}</td>
                        <td>
                          <Badge state={k.state} />
                        </td>
                        <td class="num">{k.requests}</td>
                        <td class="num">{k.failures}</td>
                        <td class="num">
                          {k.success_rate === null || k.success_rate === undefined
                            ? "–"
                            : (k.success_rate * 100).toFixed(1) + " %"}
                        </td>
                      </tr>
                    ))}
                  </tbody>
                </table>
                {(p.limits || p.budget) && (
                  <p class="small mono">
                    {p.limits ? t("col.limits") + ": " + JSON.stringify(p.limits) + " " : ""}
                    {p.budget ? t("col.budget") + ": " + JSON.stringify(p.budget) : ""}
                  </p>
                )}
              </div>
            </div>
          </article>
        ))}
      <Discover provider={discover} onClose={() => setDiscover(null)} onAdded={reload} />
    </section>
  );
}
