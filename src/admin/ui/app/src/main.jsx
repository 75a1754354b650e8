// The ModelSwitch admin UI: a session check, the login page, then the shell
// (header, navigation) around one page per route under /ui/.
import { render } from "preact";
import { useEffect, useState } from "preact/hooks";
import "./style.css";
import { api, onSessionLost, setCsrf } from "./api.js";
import { LANGS, initialLang, saveLang, translate } from "./i18n.js";
import { Ctx, Link, navigate, setTimeLocale } from "./ui.jsx";
import { Login } from "./pages/login.jsx";
import { Dashboard } from "./pages/dashboard.jsx";
import { Providers } from "./pages/providers.jsx";
import { Models } from "./pages/models.jsx";
import { Keys } from "./pages/keys.jsx";
import { Usage } from "./pages/usage.jsx";
import { Requests } from "./pages/requests.jsx";
import { Logs } from "./pages/logs.jsx";
import { Conversations } from "./pages/conversations.jsx";
import { Sessions } from "./pages/sessions.jsx";
import { Config } from "./pages/config.jsx";

const PAGES = [
  ["", "nav.dashboard", Dashboard],
  ["providers", "nav.providers", Providers],
  ["models", "nav.models", Models],
  ["keys", "nav.keys", Keys],
  ["usage", "nav.usage", Usage],
  ["requests", "nav.requests", Requests],
  ["sessions", "nav.sessions", Sessions],
  ["logs", "nav.logs", Logs],
  ["conversations", "nav.conversations", Conversations],
  ["config", "nav.config", Config],
];

// A user key's own view: its usage, requests and sessions (the server
// holds every call to its own rows). The first is its home page;
// conversations open from a request's details, outside the menu.
const USER_PAGES = [
  ["usage", "nav.my_usage", Usage],
  ["requests", "nav.my_requests", Requests],
  ["sessions", "nav.my_sessions", Sessions],
];
const USER_HIDDEN = [["conversations", "nav.conversations", Conversations]];

// The pages a role may open, and the ones its menu lists.
export function pagesFor(role) {
  return role === "user" ? [USER_PAGES, [...USER_PAGES, ...USER_HIDDEN]] : [PAGES, PAGES];
}

// "/ui/requests/req_1" -> ["requests", "req_1"]
export function route(pathname) {
  const rest = pathname.replace(/^\/ui\/?/, "");
  const [page = "", ...more] = rest.split("/").filter(Boolean);
  return [page, more.map(decodeURIComponent).join("/")];
}

function usePath() {
  const [path, setPath] = useState(location.pathname);
  useEffect(() => {
    const update = () => setPath(location.pathname);
    window.addEventListener("popstate", update);
    window.addEventListener("ms-navigate", update);
    return () => {
      window.removeEventListener("popstate", update);
      window.removeEventListener("ms-navigate", update);
    };
  }, []);
  return path;
}

function App() {
  const [lang, setLangState] = useState(initialLang());
  const [session, setSession] = useState(undefined); // undefined: checking
  const [menu, setMenu] = useState(false);
  const path = usePath();
  const t = (k, v) => translate(lang, k, v);
  setTimeLocale(lang); // before the pages render their times

  const setLang = (l) => {
    saveLang(l);
    setLangState(l);
  };
  useEffect(() => {
    document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
  }, [lang]);

  const login = (s) => {
    setCsrf(s.csrf);
    setSession(s);
  };
  useEffect(() => {
    onSessionLost(() => {
      setCsrf(null);
      setSession(null);
    });
    api("/api/session", { quiet401: true }).then(login, () => setSession(null));
  }, []);
  const logout = async () => {
    try {
      await api("/api/logout", { method: "POST", quiet401: true });
    } catch {
      // the session is gone either way
    }
    setCsrf(null);
    setSession(null);
  };

  const ctx = { lang, setLang, session, t };
  const [menuPages, pages] = pagesFor(session && session.role);
  const [routed, sub] = route(path);
  // A user key has no dashboard: its home is its usage.
  const page = routed === "" && session && session.role === "user" ? "usage" : routed;
  const found = pages.find(([p]) => p === page);
  const Page = found ? found[2] : null;
  useEffect(() => {
    document.title = (found ? t(found[1]) : t("notfound")) + " · ModelSwitch";
    setMenu(false);
  }, [path, lang, session]);
  if (session === undefined) return <div class="loading">…</div>;
  if (!session) {
    return (
      <Ctx.Provider value={ctx}>
        <Login onLogin={login} />
      </Ctx.Provider>
    );
  }
  return (
    <Ctx.Provider value={ctx}>
      <header class="top">
        <button
          class="menu-btn"
          aria-label={t("menu")}
          aria-expanded={menu ? "true" : "false"}
          aria-controls="nav"
          onClick={() => setMenu(!menu)}
        >
          ☰
        </button>
        <Link href="/ui/" class="brand">
          ModelSwitch
        </Link>
        <nav id="nav" class={menu ? "open" : ""} aria-label={t("menu")}>
          {menuPages.map(([p, label]) => (
            <Link key={p} href={"/ui/" + p} aria-current={p === page ? "page" : undefined}>
              {t(label)}
            </Link>
          ))}
        </nav>
        <div class="who">
          <label for="lang" class="sr-only">
            {t("language")}
          </label>
          <select id="lang" value={lang} onChange={(e) => setLang(e.currentTarget.value)}>
            {LANGS.map(([code, name]) => (
              <option key={code} value={code}>
                {name}
              </option>
            ))}
          </select>
          <span class="user" title={session.via}>
            {session.user} <span class="badge">{t("role." + session.role)}</span>
          </span>
          <button id="logout" onClick={logout}>
            {t("logout")}
          </button>
        </div>
      </header>
      <main id="main">
        {Page ? (
          <Page sub={sub} />
        ) : (
          <section>
            <h1>{t("notfound")}</h1>
            <button onClick={() => navigate("/ui/")}>{t(session.role === "user" ? "nav.my_usage" : "nav.dashboard")}</button>
          </section>
        )}
      </main>
    </Ctx.Provider>
  );
}

render(<App />, document.getElementById("app"));
