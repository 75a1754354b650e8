import { Fragment } from "preact";
import { useState } from "preact/hooks";
import { api, enc, qs } from "../api.js";
import { Badge, ErrorBox, Modal, fmtTime, useLoad, usePoll, useReadOnly, useT } from "../ui.jsx";

const DIMS = ["rpm", "tpm", "rpd", "tpd", "concurrency"];

// Form fields -> the API's key body; empty limits are null (PATCH removes them).
export function keyBody(f, forPatch) {
  const limits = {};
  for (const d of DIMS) {
    const v = String(f[d] ?? "").trim();
    if (v !== "") limits[d] = Number(v);
    else if (forPatch) limits[d] = null;
  }
  const models = String(f.allowed_models || "")
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
  const body = {
    roles: f.roles ? [f.roles] : ["user"],
    enabled: !!f.enabled,
    description: f.description || (forPatch ? null : undefined),
    allowed_models: models.length ? models : forPatch ? null : undefined,
    expires_at: String(f.expires_at || "").trim() || (forPatch ? null : undefined),
    limits,
  };
  if (!forPatch) body.name = f.name.trim();
  return body;
}

function formOf(k) {
  const f = {
    name: k ? k.name : "",
    roles: k && k.roles && k.roles.length ? k.roles[0] : "user",
    enabled: k ? k.enabled !== false : true,
    description: (k && k.description) || "",
    allowed_models: k && k.allowed_models ? k.allowed_models.join(", ") : "",
    expires_at: (k && k.expires_at) || "",
  };
  for (const d of DIMS) f[d] = k && k.limits && k.limits[d] !== undefined ? String(k.limits[d]) : "";
  return f;
}

function KeyForm({ initial, onSubmit, submitLabel, isNew, disabled }) {
  const t = useT();
  const [f, setF] = useState(initial);
  const set = (k) => (e) =>
    setF({ ...f, [k]: e.currentTarget.type === "checkbox" ? e.currentTarget.checked : e.currentTarget.value });
  const p = isNew ? "new-" : "edit-";
  return (
    <form
      class="form-grid"
      onSubmit={(e) => {
        e.preventDefault();
        onSubmit(f);
      }}
    >
      {isNew && (
        <>
          <label for={p + "name"}>{t("col.name")}</label>
          <input id={p + "name"} value={f.name} onInput={set("name")} required />
        </>
      )}
      <label for={p + "role"}>{t("col.role")}</label>
      <select id={p + "role"} value={f.roles} onChange={set("roles")} disabled={disabled}>
        <option value="user">{t("role.user")}</option>
        <option value="viewer">{t("role.viewer")}</option>
        <option value="admin">{t("role.admin")}</option>
      </select>
      <label for={p + "desc"}>{t("col.description")}</label>
      <input id={p + "desc"} value={f.description} onInput={set("description")} disabled={disabled} />
      <label for={p + "models"}>{t("keys.allowed")}</label>
      <input
        id={p + "models"}
        value={f.allowed_models}
        onInput={set("allowed_models")}
        placeholder="gpt-*, claude-*"
        disabled={disabled}
      />
      <label for={p + "expires"}>{t("keys.expires")}</label>
      <input
        id={p + "expires"}
        value={f.expires_at}
        onInput={set("expires_at")}
        placeholder="2027-01-01T00:00:00Z"
        disabled={disabled}
      />
      {DIMS.map((d) => (
        <Fragment key={d}>
          <label for={p + d}>{t("lim." + d)}</label>
          <input
            id={p + d}
            type="number"
            min="0"
            value={f[d]}
            onInput={set(d)}
            disabled={disabled}
            placeholder={t("unlimited")}
          />
        </Fragment>
      ))}
      <label for={p + "enabled"}>{t("col.enabled")}</label>
      <input id={p + "enabled"} type="checkbox" checked={f.enabled} onChange={set("enabled")} disabled={disabled} />
      <span />
      <button type="submit" class="primary" disabled={disabled}>
        {submitLabel}
      </button>
    </form>
  );
}

export function Keys() {
  const t = useT();
  const ro = useReadOnly();
  const [data, error, reload] = useLoad(() => api("/api/keys"), []);
  const [creating, setCreating] = useState(false);
  const [createErr, setCreateErr] = useState(null);
  const [created, setCreated] = useState(null);
  const [copied, setCopied] = useState(false);
  const [selected, setSelected] = useState(null);
  const [actErr, setActErr] = useState(null);

  const create = async (f) => {
    setCreateErr(null);
    try {
      const r = await api("/api/keys", { method: "POST", body: keyBody(f, false) });
      setCreating(false);
      setCreated(r);
      setCopied(false);
      reload();
    } catch (e) {
      setCreateErr(e);
    }
  };
  const revoke = async (name) => {
    if (!window.confirm(t("keys.confirm_revoke", { name }))) return;
    setActErr(null);
    try {
      await api(`/api/keys/${enc(name)}`, { method: "DELETE" });
      if (selected === name) setSelected(null);
      reload();
    } catch (e) {
      setActErr(e);
    }
  };
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(created.key);
      setCopied(true);
    } catch {
      // no clipboard (plain http): select the text so Ctrl+C works
      const el = document.getElementById("created-key");
      if (el) {
        el.focus();
        el.select();
      }
    }
  };
  const keys = (data && data.data) || [];
  const sel = keys.find((k) => k.name === selected);
  return (
    <section>
      <div class="row between">
        <h1>{t("nav.keys")}</h1>
        <div class="row">
          <button onClick={reload}>{t("reload")}</button>
          <button class="primary" id="key-create" disabled={ro} onClick={() => setCreating(true)}>
            {t("keys.create")}
          </button>
        </div>
      </div>
      <ErrorBox error={error} />
      <ErrorBox error={actErr} />
      <div class="table-wrap">
        <table id="keys-table">
          <thead>
            <tr>
              <th>{t("col.name")}</th>
              <th>{t("col.prefix")}</th>
              <th>{t("col.role")}</th>
              <th>{t("col.source")}</th>
              <th>{t("col.enabled")}</th>
              <th>{t("keys.expires")}</th>
              <th>{t("keys.last_used")}</th>
              <th>{t("col.actions")}</th>
            </tr>
          </thead>
          <tbody>
            {keys.map((k) => (
              <tr key={k.name} class={k.name === selected ? "selected" : ""} data-key={k.name}>
                <td>
                  <button class="linklike" onClick={() => setSelected(k.name)}>
                    {k.name}
                  </button>
                </td>
                <td class="mono">{k.prefix || "–"}</td>
                <td>{(k.roles || []).map((r) => t("role." + r)).join(", ")}</td>
                <td>{t("source." + k.source)}</td>
                <td>
                  <Badge state={k.enabled ? (k.usable ? "enabled" : "expired") : "disabled"} />
                </td>
                <td>{k.expires_at ? fmtTime(k.expires_at) : "–"}</td>
                <td>{fmtTime(k.last_used_at)}</td>
                <td>
                  <button
                    class="danger"
                    disabled={ro || k.source === "config"}
                    title={k.source === "config" ? t("keys.config_ro") : ""}
                    onClick={() => revoke(k.name)}
                    aria-label={t("keys.revoke") + " " + k.name}
                  >
                    {t("keys.revoke")}
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      {sel && <KeyDetail key={sel.name} k={sel} onSaved={reload} />}
      <Sessions />
      <Modal open={creating} onClose={() => setCreating(false)} title={t("keys.create")} id="create-dialog">
        <KeyForm initial={formOf(null)} onSubmit={create} submitLabel={t("keys.create")} isNew />
        <ErrorBox error={createErr} />
        <button onClick={() => setCreating(false)}>{t("cancel")}</button>
      </Modal>
      <Modal open={!!created} onClose={() => setCreated(null)} title={t("keys.created")} id="created-dialog">
        {created && (
          <div>
            <p class="warn-text">{t("keys.once")}</p>
            <label for="created-key">{t("col.key")}</label>
            <div class="row">
              <input id="created-key" class="mono wide" readOnly value={created.key} />
              <button id="copy-key" onClick={copy}>
                {copied ? t("copied") : t("copy")}
              </button>
            </div>
            <button class="primary" id="created-close" onClick={() => setCreated(null)}>
              {t("done")}
            </button>
          </div>
        )}
      </Modal>
    </section>
  );
}

function KeyDetail({ k, onSaved }) {
  const t = useT();
  const ro = useReadOnly();
  const [limits, setLimits] = useState(null);
  const [err, setErr] = useState(null);
  const [saved, setSaved] = useState(false);
  usePoll(
    async () => {
      setLimits(await api(`/api/keys/${enc(k.name)}/limits`));
    },
    5000,
    [k.name],
  );
  const [usage, usageErr] = useLoad(
    () => api("/api/usage" + qs({ key: k.name, from: new Date(Date.now() - 86400e3).toISOString(), group_by: "model" })),
    [k.name],
  );
  const save = async (f) => {
    setErr(null);
    setSaved(false);
    try {
      await api(`/api/keys/${enc(k.name)}`, { method: "PATCH", body: keyBody(f, true) });
      setSaved(true);
      onSaved();
    } catch (e) {
      setErr(e);
    }
  };
  const lim = (limits && limits.limits) || {};
  const tot = usage && usage.totals;
  return (
    <article class="card" id="key-detail">
      <h2>
        {k.name} {k.description && <span class="muted">— {k.description}</span>}
      </h2>
      <div class="grid2">
        <div>
          <h3>{t("keys.quota")}</h3>
          {Object.keys(lim).length === 0 ? (
            <p class="muted">{t("unlimited")}</p>
          ) : (
            <table id="key-limits">
              <thead>
                <tr>
                  <th>{t("col.dimension")}</th>
                  <th class="num">{t("col.used")}</th>
                  <th class="num">{t("col.limit")}</th>
                  <th class="num">{t("col.remaining")}</th>
                  <th class="num">{t("col.reset")}</th>
                </tr>
              </thead>
              <tbody>
                {Object.entries(lim).map(([d, v]) => (
                  <tr key={d}>
                    <td>{t("lim." + d)}</td>
                    <td class="num">{v.used}</td>
                    <td class="num">{v.limit}</td>
                    <td class="num">{v.remaining}</td>
                    <td class="num">{v.reset_seconds !== undefined ? Math.ceil(v.reset_seconds) + " s" : "–"}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
          <h3>{t("keys.usage24")}</h3>
          <ErrorBox error={usageErr} />
          {tot && (
            <p id="key-usage">
              {t("col.requests")}: <strong>{tot.requests}</strong> · {t("col.errors")}: {tot.errors} ·{" "}
              {t("col.input")}: {tot.input} · {t("col.output")}: {tot.output} · {t("col.cost")}:{" "}
              {Object.entries(tot.cost || {})
                .map(([c, v]) => `${v} ${c}`)
                .join(", ") || "0"}
            </p>
          )}
          {usage && usage.groups && usage.groups.length > 0 && (
            <table>
              <tbody>
                {usage.groups.map((g) => (
                  <tr key={g.model}>
                    <td>{g.model}</td>
                    <td class="num">{g.requests}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
        </div>
        <div>
          <h3>{t("edit")}</h3>
          {k.source === "config" && <p class="muted">{t("keys.config_ro")}</p>}
          <KeyForm
            initial={formOf(k)}
            onSubmit={save}
            submitLabel={t("save")}
            disabled={ro || k.source === "config"}
          />
          {saved && (
            <p class="ok-text" role="status">
              {t("saved")}
            </p>
          )}
          <ErrorBox error={err} />
        </div>
      </div>
    </article>
  );
}

// The UI's logged-in sessions (every replica's: they live in the store).
function Sessions() {
  const t = useT();
  const ro = useReadOnly();
  const [data, error, reload] = useLoad(() => api("/api/sessions"), []);
  const [err, setErr] = useState(null);
  const revoke = async (id) => {
    if (!window.confirm(t("sessions.confirm"))) return;
    setErr(null);
    try {
      await api(`/api/sessions/${enc(id)}`, { method: "DELETE" });
      reload();
    } catch (e) {
      setErr(e);
    }
  };
  const list = (data && data.sessions) || [];
  return (
    <article class="card" id="sessions">
      <h2>{t("sessions.title")}</h2>
      <ErrorBox error={error || err} />
      <div class="table-wrap">
        <table>
          <thead>
            <tr>
              <th>{t("sessions.user")}</th>
              <th>{t("col.role")}</th>
              <th>{t("sessions.via")}</th>
              <th>{t("sessions.created")}</th>
              <th>{t("sessions.seen")}</th>
              <th>{t("keys.expires")}</th>
              <th>{t("col.actions")}</th>
            </tr>
          </thead>
          <tbody>
            {list.map((s) => (
              <tr key={s.id}>
                <td>
                  {s.user} {s.current && <span class="badge ok">{t("sessions.current")}</span>}
                </td>
                <td>{t("role." + s.role)}</td>
                <td>{t("via." + s.via, null, s.via)}</td>
                <td>{fmtTime(s.created_at)}</td>
                <td>{fmtTime(s.last_seen_at)}</td>
                <td>{fmtTime(s.expires_at)}</td>
                <td>
                  <button class="danger" disabled={ro} onClick={() => revoke(s.id)} aria-label={t("keys.revoke") + " " + s.user}>
                    {t("keys.revoke")}
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </article>
  );
}
