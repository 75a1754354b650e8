import { useEffect, useState } from "preact/hooks";
import { api } from "../api.js";
import { ErrorBox, useReadOnly, useT } from "../ui.jsx";

export function Config() {
  const t = useT();
  const ro = useReadOnly();
  const [doc, setDoc] = useState(null);
  const [text, setText] = useState("");
  const [error, setError] = useState(null);
  const [msg, setMsg] = useState(null);
  const [conflict, setConflict] = useState(false);
  const [busy, setBusy] = useState(false);

  const load = async () => {
    setError(null);
    setMsg(null);
    setConflict(false);
    try {
      const d = await api("/api/config");
      setDoc(d);
      setText(d.toml);
    } catch (e) {
      setError(e);
    }
  };
  useEffect(() => {
    load();
  }, []);

  const validate = async () => {
    setBusy(true);
    setError(null);
    setMsg(null);
    try {
      const r = await api("/api/config/validate", { method: "POST", body: { toml: text } });
      if (r.ok) setMsg(t("config.valid"));
      else setError({ message: t("config.invalid"), errors: r.errors || [] });
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };
  const save = async () => {
    setBusy(true);
    setError(null);
    setMsg(null);
    try {
      const r = await api("/api/config", { method: "PUT", body: { toml: text, etag: doc.etag } });
      setDoc({ ...doc, etag: r.etag, toml: text });
      const restart = r.restart_needed && r.restart_needed.length ? " " + t("config.restart", { s: r.restart_needed.join(", ") }) : "";
      setMsg(t("config.saved") + restart);
    } catch (e) {
      if (e.status === 409) setConflict(true);
      setError(e);
    } finally {
      setBusy(false);
    }
  };
  const dirty = doc && text !== doc.toml;
  return (
    <section>
      <div class="row between">
        <h1>{t("nav.config")}</h1>
        <div class="row">
          <button onClick={load}>{t("reload")}</button>
          <button id="config-validate" onClick={validate} disabled={ro || busy || !doc}>
            {t("config.validate")}
          </button>
          <button id="config-save" class="primary" onClick={save} disabled={ro || busy || !doc || !dirty}>
            {t("save")}
          </button>
        </div>
      </div>
      {doc && (
        <p class="muted small">
          {doc.path} · etag <span class="mono">{String(doc.etag).slice(0, 12)}</span>
          {doc.masked && doc.masked.length > 0 ? " · " + t("config.masked", { n: doc.masked.length }) : ""}
        </p>
      )}
      {conflict && (
        <div class="error" role="alert" id="config-conflict">
          {t("config.conflict")}
        </div>
      )}
      <ErrorBox error={error} />
      {msg && (
        <p class="ok-text" role="status" id="config-msg">
          {msg}
        </p>
      )}
      <label for="config-text" class="sr-only">
        {t("nav.config")}
      </label>
      <textarea
        id="config-text"
        class="mono config"
        spellcheck={false}
        readOnly={ro}
        value={text}
        onInput={(e) => setText(e.currentTarget.value)}
      />
    </section>
  );
}
