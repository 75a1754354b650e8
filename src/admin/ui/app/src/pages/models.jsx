import { useEffect, useState } from "preact/hooks";
import { api, enc } from "../api.js";
import { Badge, ErrorBox, TestResult, useLoad, useReadOnly, useT } from "../ui.jsx";

// The list with the item at `from` moved to index `to`.
export function moved(list, from, to) {
  if (from === to || from < 0 || to < 0 || from >= list.length || to >= list.length) return list;
  const out = list.slice();
  const [x] = out.splice(from, 1);
  out.splice(to, 0, x);
  return out;
}

export function Models() {
  const t = useT();
  const [data, error, reload] = useLoad(() => api("/api/models"), []);
  const [providers] = useLoad(() => api("/api/providers").catch(() => ({ providers: [] })), []);
  const names = ((providers && providers.providers) || []).map((p) => p.name);
  return (
    <section>
      <div class="row between">
        <h1>{t("nav.models")}</h1>
        <button onClick={reload}>{t("reload")}</button>
      </div>
      <ErrorBox error={error} />
      {data &&
        data.models.map((m) => (
          // Keyed by the chain too: a reload that brings another chain starts the card afresh.
          <ModelCard key={m.name + "|" + m.targets.map((x) => x.provider + "/" + x.model).join(",")} model={m} providers={names} />
        ))}
    </section>
  );
}

function ModelCard({ model, providers }) {
  const t = useT();
  const ro = useReadOnly();
  const [m, setM] = useState(model);
  const [chain, setChain] = useState(model.targets);
  const [drag, setDrag] = useState(null);
  const [addP, setAddP] = useState(providers[0] || "");
  const [addM, setAddM] = useState("");
  const [saveErr, setSaveErr] = useState(null);
  const [saved, setSaved] = useState(false);
  const [tests, setTests] = useState({ chain: null, targets: {} });
  const [busy, setBusy] = useState(false);

  useEffect(() => {
    if (!addP && providers.length) setAddP(providers[0]);
  }, [providers.join()]);

  const dirty =
    chain.length !== m.targets.length ||
    chain.some((x, i) => x.provider !== m.targets[i].provider || x.model !== m.targets[i].model);
  const idBase = "model-" + m.name.replace(/[^A-Za-z0-9_-]/g, "_");

  const edit = (next) => {
    setChain(next);
    setSaved(false);
  };
  const save = async () => {
    setBusy(true);
    setSaveErr(null);
    try {
      const r = await api(`/api/models/${enc(m.name)}/targets`, {
        method: "PUT",
        body: { targets: chain.map((x) => ({ provider: x.provider, model: x.model })) },
      });
      const next = r && r.model ? r.model : { ...m, targets: chain };
      setM(next);
      setChain(next.targets);
      setSaved(true);
    } catch (e) {
      setSaveErr(e);
    } finally {
      setBusy(false);
    }
  };
  const test = async (index) => {
    const body = index === undefined ? {} : { target: index };
    try {
      const r = await api(`/api/models/${enc(m.name)}/test`, { method: "POST", body });
      if (index === undefined) setTests((x) => ({ ...x, chain: r.results }));
      else setTests((x) => ({ ...x, targets: { ...x.targets, [index]: r.results[r.results.length - 1] } }));
    } catch (e) {
      const fail = { ok: false, status: e.status, error: e.message };
      if (index === undefined) setTests((x) => ({ ...x, chain: [fail] }));
      else setTests((x) => ({ ...x, targets: { ...x.targets, [index]: fail } }));
    }
  };
  const add = (e) => {
    e.preventDefault();
    if (!addP || !addM.trim()) return;
    edit([...chain, { provider: addP, model: addM.trim(), breaker: null, healthy: null, index: null }]);
    setAddM("");
  };

  return (
    <article class="card" id={idBase}>
      <div class="row between">
        <h2>
          {m.display_name || m.name} {m.display_name && <span class="mono small">{m.name}</span>}
        </h2>
        <div class="row">
          <button onClick={() => test()} disabled={ro} aria-label={t("models.test") + " " + m.name}>
            {t("models.test")}
          </button>
        </div>
      </div>
      {m.description && <p class="muted model-about">{m.description}</p>}
      {tests.chain && (
        <div class="test-chain">
          {tests.chain.map((r, i) => (
            <TestResult key={i} r={r} />
          ))}
        </div>
      )}
      <ol class="chain" aria-label={t("models.chain") + " " + m.name}>
        {chain.map((x, i) => (
          <li
            key={x.provider + "/" + x.model + "/" + i}
            class={"chain-item" + (drag === i ? " dragging" : "")}
            draggable={!ro}
            onDragStart={(e) => {
              setDrag(i);
              e.dataTransfer.effectAllowed = "move";
              e.dataTransfer.setData("text/plain", String(i));
            }}
            onDragOver={(e) => {
              if (drag !== null) e.preventDefault();
            }}
            onDrop={(e) => {
              e.preventDefault();
              if (drag !== null) edit(moved(chain, drag, i));
              setDrag(null);
            }}
            onDragEnd={() => setDrag(null)}
          >
            <span class="grip" aria-hidden="true">
              ⋮⋮
            </span>
            <span class="pos">{i + 1}.</span>
            <span class="target-name">
              <strong>{x.provider}</strong> / <span class="mono">{x.model}</span>
            </span>
            {x.breaker && <Badge state={x.breaker} />}
            {x.healthy !== null && x.healthy !== undefined && <Badge state={x.healthy ? "healthy" : "unhealthy"} />}
            <span class="spacer" />
            <button
              class="icon"
              disabled={ro || i === 0}
              onClick={() => edit(moved(chain, i, i - 1))}
              aria-label={t("models.up") + ": " + x.provider + "/" + x.model}
            >
              ↑
            </button>
            <button
              class="icon"
              disabled={ro || i === chain.length - 1}
              onClick={() => edit(moved(chain, i, i + 1))}
              aria-label={t("models.down") + ": " + x.provider + "/" + x.model}
            >
              ↓
            </button>
            <button
              disabled={ro || dirty || x.index === null || x.index === undefined}
              onClick={() => test(x.index)}
              aria-label={t("models.test_target") + ": " + x.provider + "/" + x.model}
            >
              {t("models.test_target")}
            </button>
            <button
              class="danger"
              disabled={ro || chain.length <= 1}
              onClick={() => edit(chain.filter((_, j) => j !== i))}
              aria-label={t("remove") + ": " + x.provider + "/" + x.model}
            >
              {t("remove")}
            </button>
            {tests.targets[x.index] && !dirty && <TestResult r={tests.targets[x.index]} />}
          </li>
        ))}
      </ol>
      <form class="row wrap" onSubmit={add}>
        <label for={idBase + "-addp"}>{t("col.provider")}</label>
        <select id={idBase + "-addp"} value={addP} disabled={ro} onChange={(e) => setAddP(e.currentTarget.value)}>
          {providers.map((p) => (
            <option key={p} value={p}>
              {p}
            </option>
          ))}
        </select>
        <label for={idBase + "-addm"}>{t("models.upstream")}</label>
        <input
          id={idBase + "-addm"}
          value={addM}
          disabled={ro}
          onInput={(e) => setAddM(e.currentTarget.value)}
          placeholder="gpt-4o-mini"
        />
        <button type="submit" disabled={ro || !addM.trim()}>
          {t("models.add")}
        </button>
        <span class="spacer" />
        <button type="button" disabled={!dirty} onClick={() => edit(m.targets)}>
          {t("reset")}
        </button>
        <button type="button" class="primary" disabled={ro || !dirty || busy} onClick={save}>
          {t("save")}
        </button>
      </form>
      {saved && !dirty && (
        <p class="ok-text" role="status">
          {t("saved")}
        </p>
      )}
      <ErrorBox error={saveErr} />
    </article>
  );
}
