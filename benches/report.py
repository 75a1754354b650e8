"""Turns benches/load.sh's raw results into the tables of benches/README.md
and checks them against the targets of issue #4."""

import collections
import datetime
import os
import platform
import re
import subprocess
import sys

out, idle_rss, load_rss, load_cpu, soak_rss, peak_fds, soak = sys.argv[1:8]
rows = collections.OrderedDict()
for line in open(f"{out}/results.txt"):
    scen, target, conns, reqs, secs, errs, p50, p99, p999 = line.split()
    rows[(scen, target, int(conns))] = dict(
        rps=int(reqs) / max(float(secs), 1e-9), errs=int(errs), p50=int(p50) / 1000, p99=int(p99) / 1000, p999=int(p999) / 1000)

lines = []
w = lines.append
cpu = platform.processor() or platform.machine()
try:
    model = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
except (OSError, StopIteration):
    model = cpu
workers = os.environ.get("WORKERS", "1")
w(f"Measured {datetime.date.today()} on {os.cpu_count()} cores ({model}), `make bench-load` (WORKERS={workers}); "
  f"load generator (wrk -t2), mock upstream (1 thread), nginx ({workers} worker{'s' if workers != '1' else ''}) "
  f"and ModelSwitch ({workers} thread{'s' if workers != '1' else ''}) share the machine.\n")
w("| scenario | conns | target | RPS | p50 ms | p99 ms | p99.9 ms | errors | added p50 ms | added p99 ms | RPS vs nginx |")
w("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
for (scen, target, conns), r in rows.items():
    base_scen = {"translated": "passthrough", "stream-translated": "stream"}.get(scen, scen)
    d = rows.get((base_scen, "direct", conns))
    n = rows.get((base_scen, "nginx", conns))
    added = f"{r['p50'] - d['p50']:.3f} | {r['p99'] - d['p99']:.3f}" if d and target != "direct" else "— | —"
    vs = f"{100 * r['rps'] / n['rps']:.0f}%" if n and n["rps"] and target == "gateway" else "—"
    w(f"| {scen} | {conns} | {target} | {r['rps']:.0f} | {r['p50']:.3f} | {r['p99']:.3f} | {r['p999']:.3f} | {r['errs']} | {added} | {vs} |")

w("\nStreaming time to first byte (500 sequential streams of 64 chunks on one connection, two rounds):\n")
w("| target | TTFB p50 ms | TTFB p99 ms | full stream p50 ms | full stream p99 ms |")
w("| --- | --- | --- | --- | --- |")
ttfb = {}
for line in open(f"{out}/ttfb.txt"):
    target, rest = line.split(" ", 1)
    vals = dict(kv.split("=") for kv in re.findall(r"\w+=[\d.]+", rest))
    ttfb.setdefault(target, []).append({k: float(v) for k, v in vals.items()})
    v = ttfb[target][-1]
    w(f"| {target} | {v['ttfb_p50_ms']:.3f} | {v['ttfb_p99_ms']:.3f} | {v['full_p50_ms']:.3f} | {v['full_p99_ms']:.3f} |")

w(f"\nGateway memory and CPU: idle RSS {int(idle_rss) / 1024:.1f} MB; peak RSS under the load runs {int(load_rss) / 1024:.1f} MB; "
  f"{load_cpu} CPU seconds over the load runs.")
w(f"Soak: {soak.replace('RESULT ', '')}; peak RSS {int(soak_rss) / 1024:.1f} MB; peak open file descriptors {peak_fds}.")

# Targets of issue #4.
def get(s, t, c):
    return rows.get((s, t, c))

checks = []
def check(name, ok, detail):
    checks.append(f"| {name} | {'met' if ok else '**not met**'} | {detail} |")

g, n = get("passthrough", "gateway", 64), get("passthrough", "nginx", 64)
if g and n:
    check("pass-through RPS ≥ 90% of nginx at 64 conns", g["rps"] >= 0.9 * n["rps"], f"{100 * g['rps'] / n['rps']:.0f}%")
g, d = get("passthrough", "gateway", 1), get("passthrough", "direct", 1)
if g and d:
    check("added p50 ≤ 0.15 ms at 1 conn", g["p50"] - d["p50"] <= 0.15, f"{g['p50'] - d['p50']:.3f} ms")
    check("added p99 ≤ 1 ms at 1 conn", g["p99"] - d["p99"] <= 1.0, f"{g['p99'] - d['p99']:.3f} ms")
for c in (16, 64):
    g, n, d = get("passthrough", "gateway", c), get("passthrough", "nginx", c), get("passthrough", "direct", c)
    if g and n and d:
        ga, na = g["p50"] - d["p50"], n["p50"] - d["p50"]
        check(f"added p50 at {c} conns ≤ 1.1× nginx's", ga <= 1.1 * na, f"{ga:.3f} ms vs nginx {na:.3f} ms")
if "gateway" in ttfb and "direct" in ttfb:
    gt = min(v["ttfb_p50_ms"] for v in ttfb["gateway"])
    dt = min(v["ttfb_p50_ms"] for v in ttfb["direct"])
    check("streaming TTFB adds ≤ 0.5 ms at p50", gt - dt <= 0.5, f"{gt - dt:.3f} ms")
st, sp = get("stream-translated", "gateway", 64), get("stream", "gateway", 64)
if st and sp:
    check("translated streaming ≥ 80% of pass-through (64 conns)", st["rps"] >= 0.8 * sp["rps"], f"{100 * st['rps'] / sp['rps']:.0f}%")
m = re.search(r"errors=(\d+)", soak)
check("10,000 streams, 0 errors, peak RSS ≤ 300 MB", bool(m) and m.group(1) == "0" and int(soak_rss) <= 300 * 1024,
      f"{soak.replace('RESULT ', '')}, {int(soak_rss) / 1024:.0f} MB")
check("idle RSS ≤ 30 MB", int(idle_rss) <= 30 * 1024, f"{int(idle_rss) / 1024:.1f} MB")
g, d = get("big", "gateway", 1), get("big", "direct", 1)
if g and d:
    check("1 MiB body adds ≤ 2 ms at p50", g["p50"] - d["p50"] <= 2.0, f"{g['p50'] - d['p50']:.3f} ms")

w("\n| target (issue #4) | status | measured |")
w("| --- | --- | --- |")
lines.extend(checks)
report = "\n".join(lines) + "\n"
print(report)
open(f"{out}/report.md", "w").write(report)

# Record in benches/README.md between the markers.
readme = "benches/README.md"
text = open(readme).read() if os.path.exists(readme) else ""
start, end = "<!-- bench-load:start -->", "<!-- bench-load:end -->"
if start in text and end in text:
    text = text[: text.index(start) + len(start)] + "\n" + report + text[text.index(end):]
    open(readme, "w").write(text)
