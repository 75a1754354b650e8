import { useMemo, useState } from "preact/hooks";
import { api, qs } from "../api.js";
import { Chart } from "../chart.jsx";
import { ErrorBox, useApp, useLoad, useT } from "../ui.jsx";

const RANGES = { "1h": 3600e3, "24h": 86400e3, "7d": 7 * 86400e3, "30d": 30 * 86400e3 };
const LEVELS = ["provider", "model", "key"];
// A user key's own usage: by model, then one model by day.
const USER_LEVELS = ["model", "day"];

// The [from, to] ISO times of a range choice.
export function rangeTimes(range, custom, now = Date.now()) {
  if (range === "custom") {
    const from = custom.from ? new Date(custom.from) : new Date(now - 86400e3);
    const to = custom.to ? new Date(custom.to) : new Date(now);
    return [from.toISOString(), to.toISOString()];
  }
  return [new Date(now - RANGES[range]).toISOString(), new Date(now).toISOString()];
}

export function costText(cost) {
  const parts = Object.entries(cost || {}).map(([c, v]) => `${v} ${c}`);
  return parts.length ? parts.join(", ") : "0";
}

export function Usage() {
  const t = useT();
  const { session } = useApp();
  const mine = session && session.role === "user";
  const [range, setRange] = useState("24h");
  const [custom, setCustom] = useState({ from: "", to: "" });
  const [drill, setDrill] = useState({}); // {provider?, model?}
  const [tick, setTick] = useState(0);
  const [from, to] = useMemo(() => rangeTimes(range, custom), [range, custom.from, custom.to, tick]);
  const levels = mine ? USER_LEVELS : LEVELS;
  const level = levels[Math.min(Object.keys(drill).length, levels.length - 1)];
  const filters = { from, to, provider: drill.provider, model: drill.model };
  const span = Date.parse(to) - Date.parse(from);
  const bucket = span <= 2 * 86400e3 ? "hour" : "day";

  const [summary, err] = useLoad(() => api("/api/usage" + qs({ ...filters, group_by: level })), [from, to, level, drill.provider, drill.model]);
  const [series, serr] = useLoad(() => api("/api/usage" + qs({ ...filters, group_by: bucket })), [from, to, bucket, drill.provider, drill.model]);
  const chart = useMemo(() => {
    const g = ((series && series.groups) || []).slice().sort((a, b) => String(a[bucket]).localeCompare(String(b[bucket])));
    return [
      g.map((x) => Date.parse(x[bucket]) / 1000),
      g.map((x) => x.requests),
      g.map((x) => x.input + x.output),
    ];
  }, [series]);

  const down = (name) => {
    if (mine) {
      if (level === "model") setDrill({ model: name });
    } else if (level === "provider") setDrill({ provider: name });
    else if (level === "model") setDrill({ ...drill, model: name });
  };
  const tot = summary && summary.totals;
  return (
    <section>
      <h1>{t(mine ? "nav.my_usage" : "nav.usage")}</h1>
      <div class="row wrap toolbar">
        <span id="range-label">{t("usage.range")}</span>
        <div role="group" aria-labelledby="range-label" class="seg">
          {[...Object.keys(RANGES), "custom"].map((r) => (
            <button key={r} class={range === r ? "active" : ""} aria-pressed={range === r ? "true" : "false"} onClick={() => setRange(r)}>
              {t("range." + r)}
            </button>
          ))}
        </div>
        {range === "custom" && (
          <>
            <label for="u-from">{t("from")}</label>
            <input id="u-from" type="datetime-local" value={custom.from} onInput={(e) => setCustom({ ...custom, from: e.currentTarget.value })} />
            <label for="u-to">{t("to")}</label>
            <input id="u-to" type="datetime-local" value={custom.to} onInput={(e) => setCustom({ ...custom, to: e.currentTarget.value })} />
          </>
        )}
        <button onClick={() => setTick(tick + 1)}>{t("reload")}</button>
        <span class="spacer" />
        <a class="button" id="csv-export" href={"/api/usage/export" + qs(filters)} download>
          {t("usage.csv")}
        </a>
      </div>
      <nav class="crumbs" aria-label={t("usage.drill")}>
        <button class="linklike" onClick={() => setDrill({})}>
          {t(mine ? "usage.all_models" : "usage.all")}
        </button>
        {mine && drill.model && <> › {drill.model}</>}
        {!mine && drill.provider && (
          <>
            {" › "}
            <button class="linklike" onClick={() => setDrill({ provider: drill.provider })}>
              {drill.provider}
            </button>
          </>
        )}
        {!mine && drill.model && <> › {drill.model}</>}
      </nav>
      <ErrorBox error={err} />
      {tot && (
        <div class="stats" id="usage-totals">
          <div class="stat"><div class="stat-label">{t("col.requests")}</div><div class="stat-value">{tot.requests}</div></div>
          <div class="stat"><div class="stat-label">{t("col.errors")}</div><div class="stat-value">{tot.errors}</div></div>
          <div class="stat"><div class="stat-label">{t("col.input")}</div><div class="stat-value">{tot.input}</div></div>
          <div class="stat"><div class="stat-label">{t("col.output")}</div><div class="stat-value">{tot.output}</div></div>
          <div class="stat"><div class="stat-label">{t("col.cost")}</div><div class="stat-value">{costText(tot.cost)}</div></div>
        </div>
      )}
      <div class="card">
        <h2>{t(bucket === "hour" ? "usage.by_hour" : "usage.by_day")}</h2>
        <ErrorBox error={serr} />
        <Chart xLabel={t("col.time")} label={t("nav.usage")} data={chart} bars xRange={[Date.parse(from) / 1000, Date.parse(to) / 1000]} series={[{ label: t("col.requests") }, { label: t("col.tokens"), scale: "tok" }]} />
      </div>
      <div class="table-wrap">
        <table id="usage-groups">
          <thead>
            <tr>
              <th>{t("col." + level)}</th>
              <th class="num">{t("col.requests")}</th>
              <th class="num">{t("col.errors")}</th>
              <th class="num">{t("col.input")}</th>
              <th class="num">{t("col.output")}</th>
              <th class="num">{t("col.cost")}</th>
            </tr>
          </thead>
          <tbody>
            {((summary && summary.groups) || []).map((g) => (
              <tr key={g[level] ?? "-"}>
                <td>
                  {level !== "key" && level !== "day" && g[level] ? (
                    <button class="linklike" onClick={() => down(g[level])} aria-label={t("usage.drill") + ": " + g[level]}>
                      {g[level]}
                    </button>
                  ) : (
                    g[level] ?? "–"
                  )}
                </td>
                <td class="num">{g.requests}</td>
                <td class="num">{g.errors}</td>
                <td class="num">{g.input}</td>
                <td class="num">{g.output}</td>
                <td class="num">{costText(g.cost)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </section>
  );
}
