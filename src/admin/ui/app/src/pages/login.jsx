import { useState } from "preact/hooks";
import { api } from "../api.js";
import { LANGS } from "../i18n.js";
import { useApp, useT } from "../ui.jsx";

// Key or password, each on its own tab; 401/403/429 explained.
export function Login({ onLogin }) {
  const t = useT();
  const { lang, setLang } = useApp();
  const [tab, setTab] = useState("key");
  const [value, setValue] = useState("");
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);

  const submit = async (e) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const s = await api("/api/login", {
        method: "POST",
        body: tab === "key" ? { key: value.trim() } : { password: value },
        quiet401: true,
      });
      onLogin(s);
    } catch (err) {
      if (err.status === 401) setError(t("login.bad"));
      else if (err.status === 403) setError(t("login.forbidden"));
      else if (err.status === 429) setError(t("login.limited", { s: err.retryAfter || "?" }));
      else setError(err.message);
    } finally {
      setBusy(false);
    }
  };
  const tabBtn = (id) => (
    <button
      type="button"
      role="tab"
      id={"tab-" + id}
      aria-selected={tab === id ? "true" : "false"}
      class={tab === id ? "active" : ""}
      onClick={() => {
        setTab(id);
        setValue("");
        setError(null);
      }}
    >
      {t("login.tab." + id)}
    </button>
  );
  return (
    <div class="login-wrap">
      <form class="login card" onSubmit={submit} aria-labelledby="login-title">
        <div class="row between">
          <h1 id="login-title">ModelSwitch</h1>
          <label class="sr-only" for="login-lang">
            {t("language")}
          </label>
          <select id="login-lang" value={lang} onChange={(e) => setLang(e.currentTarget.value)}>
            {LANGS.map(([c, n]) => (
              <option key={c} value={c}>
                {n}
              </option>
            ))}
          </select>
        </div>
        <div role="tablist" class="tabs">
          {tabBtn("key")}
          {tabBtn("password")}
        </div>
        <label for="login-secret">{tab === "key" ? t("login.key") : t("login.password")}</label>
        <input
          id="login-secret"
          type="password"
          autocomplete={tab === "key" ? "off" : "current-password"}
          value={value}
          onInput={(e) => setValue(e.currentTarget.value)}
          required
          autofocus
        />
        {error && (
          <div class="error" role="alert" id="login-error">
            {error}
          </div>
        )}
        <button type="submit" class="primary" id="login-submit" disabled={busy}>
          {t("login.submit")}
        </button>
        <p class="muted small">{t("login.hint")}</p>
      </form>
    </div>
  );
}
