// Shared pieces: the app context (session, language), small widgets.
import { createContext } from "preact";
import { useContext, useEffect, useRef, useState } from "preact/hooks";
import { translate } from "./i18n.js";

export const Ctx = createContext(null);

export function useApp() {
  return useContext(Ctx);
}

export function useT() {
  const { lang } = useContext(Ctx);
  return (key, vars, fallback) => translate(lang, key, vars, fallback);
}

// Whether change controls are off (the viewer role).
export function useReadOnly() {
  const { session } = useContext(Ctx);
  return !session || session.role !== "admin";
}

export function navigate(href) {
  if (location.pathname + location.search !== href) history.pushState(null, "", href);
  window.dispatchEvent(new Event("ms-navigate"));
}

export function Link({ href, children, ...rest }) {
  const click = (e) => {
    if (e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
    e.preventDefault();
    navigate(href);
  };
  return (
    <a href={href} onClick={click} {...rest}>
      {children}
    </a>
  );
}

// Runs `fn` now and every `ms` while `active`; `deps` restart it.
export function usePoll(fn, ms, deps, active = true) {
  const saved = useRef(fn);
  saved.current = fn;
  useEffect(() => {
    if (!active) return undefined;
    let stop = false;
    let timer = null;
    const tick = async () => {
      try {
        await saved.current();
      } catch {
        // shown by the page's own error state
      }
      if (!stop) timer = setTimeout(tick, ms);
    };
    tick();
    return () => {
      stop = true;
      clearTimeout(timer);
    };
  }, [...deps, active]);
}

// Loads `fn()` when deps change: [data, error, reload].
export function useLoad(fn, deps) {
  const [state, setState] = useState({ data: null, error: null });
  const [n, setN] = useState(0);
  useEffect(() => {
    let live = true;
    fn().then(
      (data) => live && setState({ data, error: null }),
      (error) => live && setState((s) => ({ data: s.data, error })),
    );
    return () => {
      live = false;
    };
  }, [...deps, n]);
  return [state.data, state.error, () => setN((x) => x + 1)];
}

export function ErrorBox({ error }) {
  const t = useT();
  if (!error) return null;
  const list = error.errors || [];
  return (
    <div class="error" role="alert">
      <strong>{error.status ? `${error.status}: ` : ""}</strong>
      {error.status === 403 ? t("err.forbidden") + " " : ""}
      {error.message}
      {list.length > 0 && (
        <ul class="errlist">
          {list.map((e, i) => (
            <li key={i}>
              <code>{e.path || "(file)"}</code>: {e.message}
            </li>
          ))}
        </ul>
      )}
    </div>
  );
}

export function Stat({ label, value, id }) {
  return (
    <div class="stat" id={id}>
      <div class="stat-label">{label}</div>
      <div class="stat-value">{value}</div>
    </div>
  );
}

// A state as a coloured pill, its text translated when the dictionary
// knows it (state.closed, state.healthy, ...).
export function Badge({ state }) {
  const t = useT();
  const s = String(state ?? "");
  const cls =
    s === "closed" || s === "true" || s === "healthy" || s === "active" || s === "ok" || s === "enabled"
      ? "ok"
      : s === "half_open" || s === "cooling"
        ? "warn"
        : s === "open" || s === "false" || s === "unhealthy" || s === "disabled" || s === "error"
          ? "bad"
          : "";
  return <span class={"badge " + cls} data-state={s}>{s ? t("state." + s, null, s) : "–"}</span>;
}

// Dates and numbers in the UI's language, not the browser's.
let timeLocale = "en";
export function setTimeLocale(lang) {
  timeLocale = lang === "zh" ? "zh-CN" : "en-GB";
}

export function fmtTime(v) {
  if (v === null || v === undefined || v === "") return "–";
  const d = typeof v === "number" ? new Date(v < 1e11 ? v * 1000 : v) : new Date(v);
  if (Number.isNaN(d.getTime())) return String(v);
  return d.toLocaleString(timeLocale);
}

// A modal built on <dialog>: focus stays inside, Esc closes.
export function Modal({ open, onClose, title, children, id }) {
  const ref = useRef(null);
  useEffect(() => {
    const d = ref.current;
    if (!d) return;
    if (open && !d.open) d.showModal();
    if (!open && d.open) d.close();
  }, [open]);
  return (
    <dialog ref={ref} id={id} aria-label={title} onClose={onClose} onCancel={onClose}>
      <h2>{title}</h2>
      {open && children}
    </dialog>
  );
}

// The result of a test request: status, latency, first tokens.
export function TestResult({ r }) {
  const t = useT();
  if (!r) return null;
  return (
    <div class={"test-result " + (r.ok ? "ok" : "bad")} role="status">
      <span class="badge">{r.status ?? "–"}</span> {r.provider ? `${r.provider}/${r.model} ` : ""}
      {r.latency_ms !== undefined && r.latency_ms !== null ? `${Math.round(r.latency_ms)} ms ` : ""}
      {r.text ? (
        <q class="tokens">{r.text}</q>
      ) : r.error ? (
        <span class="errtext">{r.error}</span>
      ) : (
        <span>{r.ok ? t("test.ok") : ""}</span>
      )}
    </div>
  );
}
