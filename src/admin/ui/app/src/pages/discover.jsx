// "Refresh models": what a provider says it serves, in a dialog; ticked
// ones are added to the config file as models (or to the chain of the
// model of that name) by POST /api/providers/{name}/models.
import { useEffect, useState } from "preact/hooks";
import { api, enc } from "../api.js";
import { addBody, filtered, fmtWindow, ticked } from "../discover.js";
import { Badge, ErrorBox, Modal, useReadOnly, useT } from "../ui.jsx";

export function Discover({ provider, onClose, onAdded }) {
  const t = useT();
  const ro = useReadOnly();
  const [list, setList] = useState(null);
  const [error, setError] = useState(null);
  const [loading, setLoading] = useState(false);
  const [picks, setPicks] = useState({});
  const [q, setQ] = useState("");
  const [busy, setBusy] = useState(false);
  const [addError, setAddError] = useState(null);
  const [done, setDone] = useState(null);

  const load = async () => {
    setLoading(true);
    setError(null);
    try {
      setList(await api(`/api/providers/${enc(provider)}/models`));
    } catch (e) {
      setError(e);
    } finally {
      setLoading(false);
    }
  };
  useEffect(() => {
    if (!provider) return;
    setList(null);
    setPicks({});
    setQ("");
    setDone(null);
    setAddError(null);
    load();
  }, [provider]);

  const models = (list && list.models) || [];
  const shown = filtered(models, q);
  const pick = (id, patch) => setPicks((p) => ({ ...p, [id]: { ...(p[id] || {}), ...patch } }));
  const n = ticked(picks);
  const idOf = (id) => "disc-" + id.replace(/[^A-Za-z0-9_-]/g, "_");

  const add = async () => {
    setBusy(true);
    setAddError(null);
    setDone(null);
    try {
      const r = await api(`/api/providers/${enc(provider)}/models`, { method: "POST", body: addBody(models, picks) });
      setDone(r.added || []);
      setPicks({});
      onAdded && onAdded();
      await load();
    } catch (e) {
      setAddError(e);
    } finally {
      setBusy(false);
    }
  };

  return (
    <Modal open={!!provider} onClose={onClose} title={t("disc.title", { name: provider || "" })} id="discover-dialog">
      <div class="row wrap">
        <label for="disc-filter">{t("filter")}</label>
        <input id="disc-filter" value={q} onInput={(e) => setQ(e.currentTarget.value)} placeholder="gpt, qwen…" />
        <span class="spacer" />
        <button type="button" onClick={load} disabled={loading}>
          {loading ? t("disc.loading") : t("reload")}
        </button>
      </div>
      <ErrorBox error={error} />
      {list && (
        <p class="small muted">
          {t("disc.count", { n: models.length, listing: list.listing })}
        </p>
      )}
      {list && models.length > 0 && (
        <div class="disc-list">
          <table id="discover-table">
            <thead>
              <tr>
                <th>
                  <span class="sr-only">{t("disc.select")}</span>
                </th>
                <th>{t("col.model")}</th>
                <th>{t("disc.name")}</th>
                <th>{t("disc.kind")}</th>
                <th class="num">{t("disc.context")}</th>
                <th>{t("disc.configured")}</th>
              </tr>
            </thead>
            <tbody>
              {shown.map((m) => {
                const p = picks[m.id] || {};
                const id = idOf(m.id);
                return (
                  <tr key={m.id} id={id + "-row"} class={m.configured.length ? "configured" : ""}>
                    <td>
                      <input
                        type="checkbox"
                        id={id}
                        checked={!!p.checked}
                        disabled={ro}
                        onChange={(e) => pick(m.id, { checked: e.currentTarget.checked })}
                        aria-label={t("disc.select") + ": " + m.id}
                      />
                    </td>
                    <td>
                      <label for={id} class="mono">
                        {m.id}
                      </label>
                      {m.display_name && m.display_name !== m.id && <div class="small muted">{m.display_name}</div>}
                      {m.loaded !== undefined && <Badge state={m.loaded ? "loaded" : "not_loaded"} />}
                    </td>
                    <td>
                      <input
                        class="disc-name"
                        value={p.name || ""}
                        placeholder={m.id}
                        disabled={ro}
                        onInput={(e) => pick(m.id, { name: e.currentTarget.value, checked: true })}
                        aria-label={t("disc.name") + ": " + m.id}
                      />
                    </td>
                    <td>{t("disc.kind." + m.kind, null, m.kind)}</td>
                    <td class="num">{fmtWindow(m.context_window)}</td>
                    <td>
                      {m.configured.length ? (
                        <span class="badge ok" title={t("disc.configured")}>
                          {m.configured.join(", ")}
                        </span>
                      ) : (
                        "–"
                      )}
                    </td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </div>
      )}
      {list && models.length === 0 && <p class="muted">{t("empty")}</p>}
      <ErrorBox error={addError} />
      {done && (
        <p class="ok-text" role="status" id="discover-done">
          {t("disc.done", { n: done.filter((a) => a.change !== "unchanged").length })}
        </p>
      )}
      <div class="row">
        <span class="spacer" />
        <button type="button" onClick={onClose}>
          {t("close")}
        </button>
        <button type="button" class="primary" id="discover-add" disabled={ro || busy || n === 0} onClick={add}>
          {t("disc.add", { n })}
        </button>
      </div>
    </Modal>
  );
}
