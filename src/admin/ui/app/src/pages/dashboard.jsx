import { useMemo, useRef, useState } from "preact/hooks";
import { api, qs } from "../api.js";
import { Chart } from "../chart.jsx";
import { baseline, fmtMs, fmtNum, quantile, rates } from "../stats.js";
import { ErrorBox, Stat, useLoad, usePoll, useT } from "../ui.jsx";

const POLL_MS = 2000;
const KEEP_MS = 3600 * 1000; // the "last hour" of this session's polls
const WINDOW_MS = 10000; // the headline numbers: the last ~10 s

export function Dashboard() {
  const t = useT();
  const polls = useRef([]);
  const [now, setNow] = useState(null);
  const [error, setError] = useState(null);

  usePoll(
    async () => {
      try {
        const s = await api("/api/stats");
        const list = polls.current;
        list.push(s);
        while (list.length > 2 && s.time_ms - list[0].time_ms > KEEP_MS) list.shift();
        setNow({ s, n: list.length });
        setError(null);
      } catch (e) {
        setError(e);
      }
    },
    POLL_MS,
    [],
  );

  const live = useMemo(() => {
    const list = polls.current;
    const xs = [];
    const rps = [];
    const tps = [];
    const p50 = [];
    const p99 = [];
    for (let i = 1; i < list.length; i++) {
      const r = rates(list[i - 1], list[i]);
      xs.push(list[i].time_ms / 1000);
      rps.push(r.rps);
      tps.push(r.tps);
      const q50 = quantile(0.5, list[i - 1], list[i]);
      const q99 = quantile(0.99, list[i - 1], list[i]);
      p50.push(q50 === null ? null : q50 * 1000);
      p99.push(q99 === null ? null : q99 * 1000);
    }
    // At least the last minute on the axis, so the first polls do not
    // stretch it over years.
    const last = xs.length ? xs[xs.length - 1] : Date.now() / 1000;
    const range = [Math.min(xs.length ? xs[0] : last, last - 60), last];
    return { rate: [xs, rps, tps], lat: [xs, p50, p99], range };
  }, [now]);

  const [day, dayErr] = useLoad(
    () => api("/api/usage" + qs({ from: new Date(Date.now() - 86400e3).toISOString(), group_by: "hour" })),
    [],
  );
  const dayData = useMemo(() => {
    const g = (day && day.groups) || [];
    const sorted = [...g].sort((a, b) => String(a.hour).localeCompare(String(b.hour)));
    return [
      sorted.map((x) => Date.parse(x.hour) / 1000),
      sorted.map((x) => x.requests),
      sorted.map((x) => x.errors),
    ];
  }, [day]);

  let head = { rps: null, tps: null, errorRate: null, p50: null, p99: null };
  const list = polls.current;
  if (now && list.length >= 2) {
    const base = baseline(list, WINDOW_MS);
    const last = list[list.length - 1];
    const r = rates(base, last);
    head = { ...r, p50: quantile(0.5, base, last), p99: quantile(0.99, base, last) };
  }
  const s = now && now.s;
  return (
    <section>
      <h1>{t("nav.dashboard")}</h1>
      <ErrorBox error={error} />
      <div class="stats" aria-live="polite">
        <Stat id="stat-rps" label={t("dash.rps")} value={fmtNum(head.rps, 2)} />
        <Stat id="stat-tps" label={t("dash.tps")} value={fmtNum(head.tps, 1)} />
        <Stat
          id="stat-cost"
          label={t("dash.cost")}
          value={s ? `${Number(s.cost_today || 0).toFixed(4)} ${s.currency || ""}` : "–"}
        />
        <Stat
          id="stat-errors"
          label={t("dash.errors")}
          value={head.errorRate === null ? "–" : (head.errorRate * 100).toFixed(1) + " %"}
        />
        <Stat id="stat-p50" label={t("dash.p50")} value={fmtMs(head.p50)} />
        <Stat id="stat-p99" label={t("dash.p99")} value={fmtMs(head.p99)} />
        <Stat id="stat-streams" label={t("dash.streams")} value={s ? fmtNum(s.streams_in_flight) : "–"} />
        <Stat id="stat-total" label={t("dash.total")} value={s ? fmtNum(s.requests) : "–"} />
      </div>
      <div class="grid2">
        <div class="card">
          <h2>{t("dash.live")}</h2>
          <Chart
            xLabel={t("col.time")}
            label={t("dash.live")}
            data={live.rate}
            xRange={live.range}
            series={[{ label: t("dash.rps") }, { label: t("dash.tps"), scale: "tok" }]}
          />
        </div>
        <div class="card">
          <h2>{t("dash.latency")}</h2>
          <Chart xLabel={t("col.time")} label={t("dash.latency")} data={live.lat} xRange={live.range} series={[{ label: "p50 ms" }, { label: "p99 ms" }]} />
        </div>
      </div>
      <div class="card">
        <h2>{t("dash.day")}</h2>
        <ErrorBox error={dayErr} />
        <Chart
            xLabel={t("col.time")}
          label={t("dash.day")}
          data={dayData}
          bars
          xRange={[Math.floor(Date.now() / 1000) - 86400, Math.floor(Date.now() / 1000)]}
          series={[{ label: t("col.requests") }, { label: t("col.errors") }]}
        />
      </div>
    </section>
  );
}
