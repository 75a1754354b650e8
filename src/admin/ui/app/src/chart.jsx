// A uPlot time-series chart: created once, fed new data in place (cheap on
// live polls), resized with its container.
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import { useEffect, useRef } from "preact/hooks";
import { timeTicks } from "./stats.js";
import { useApp } from "./ui.jsx";


const zeroBased = (u, min, max) => [0, max > 0 ? max * 1.1 : 1];

const COLORS = ["#2563eb", "#16a34a", "#dc2626", "#9333ea", "#d97706", "#0891b2"];

// data: [xs (unix seconds), ...ys]; series: [{label}] for each ys.
export function Chart({ data, series, height = 200, label, bars = false, xRange = null, xLabel = "Time" }) {
  const range = useRef(xRange);
  range.current = xRange;
  const box = useRef(null);
  const plot = useRef(null);
  const { lang } = useApp();
  const locale = lang === "zh" ? "zh-CN" : "en-GB";
  const key = series.map((s) => s.label).join("|");
  useEffect(() => {
    const el = box.current;
    if (!el) return undefined;
    const opts = {
      width: Math.max(200, el.clientWidth),
      height,
      legend: { show: true },
      cursor: { drag: { x: false, y: false } },
      // A fixed window (e.g. the last 24 h) when given: one bar must not
      // stretch the axis over years.
      // Counts, rates and latencies start at zero: a bar of 3 must not look empty.
      scales: {
        x: { time: true, range: (u, min, max) => (range.current ? range.current : [min, max]) },
        y: { range: zeroBased },
        tok: { range: zeroBased },
      },
      // A second scale (e.g. tokens beside requests) gets its own axis on the right.
      axes: [
        { values: (u, splits) => timeTicks(locale, splits, u.scales.x.max - u.scales.x.min), space: 60 },
        { size: 56 },
        ...(series.some((x) => x.scale) ? [{ scale: series.find((x) => x.scale).scale, side: 1, size: 56, grid: { show: false } }] : []),
      ],
      series: [
        { label: xLabel, value: (u, v) => (v === null || v === undefined ? "–" : new Date(v * 1000).toLocaleString(locale)) },
        // With `bars`, the first series is drawn as bars, the rest as lines over them.
        ...series.map((s, i) => {
          const bar = bars && i === 0;
          return {
            label: s.label,
            stroke: COLORS[i % COLORS.length],
            fill: bar ? COLORS[i % COLORS.length] + "55" : undefined,
            width: 1.5,
            scale: s.scale || "y",
            value: (u, v) => (v === null || v === undefined ? "–" : +v.toFixed(3)),
            paths: bar ? uPlot.paths.bars({ size: [0.7, 40] }) : undefined,
            // uPlot's default: points only while the data is sparse.
            points: bar ? { show: false } : {},
          };
        }),
      ],
    };
    plot.current = new uPlot(opts, data, el);
    const ro = new ResizeObserver(() => {
      if (plot.current) plot.current.setSize({ width: Math.max(200, el.clientWidth), height });
    });
    ro.observe(el);
    return () => {
      ro.disconnect();
      plot.current && plot.current.destroy();
      plot.current = null;
    };
  }, [key, height, bars, xLabel, lang]);
  useEffect(() => {
    if (plot.current) plot.current.setData(data);
  }, [data]);
  return <div class="chart" ref={box} role="img" aria-label={label} />;
}
