"""Turns benches/load.sh's raw results into the tables of benches/README.md
and checks them against the targets of issue #4: one table (and one check)
per worker count, plus CPU per request of nginx and ModelSwitch side by side.

    python3 benches/report.py OUT    # OUT: load.sh's output dir (target/bench-load)

Reads OUT/w<N>/{meta,results,ttfb}.txt, prints the report, writes it to
OUT/report.md and, unless RECORD=0, between the bench-load markers of
benches/README.md."""

import datetime
import glob
import os
import re
import sys

out = sys.argv[1]
BASE = {"translated": "passthrough", "stream-translated": "stream", "passthrough-limited": "passthrough"}


def us(v):
    return "—" if v is None else f"{v:.1f}" if v < 100 else f"{v:.0f}"


def ratio(a, b):
    return f"{a / b:.2f}×" if a is not None and b else "—"


def load(d):
    meta = {}
    for line in open(f"{d}/meta.txt"):
        if "=" in line:
            k, v = line.rstrip("\n").split("=", 1)
            meta[k] = v
    rows = {}
    for line in open(f"{d}/results.txt"):
        f = line.split()
        if len(f) < 9:
            continue
        scen, target, conns, reqs, secs, errs, p50, p99, p999 = f[:9]
        cpu = f[9] if len(f) > 9 else "-"
        reqs = int(reqs)
        rows[(scen, target, int(conns))] = dict(
            rps=reqs / max(float(secs), 1e-9), errs=int(errs),
            p50=int(p50) / 1000, p99=int(p99) / 1000, p999=int(p999) / 1000,
            cpu=int(cpu) / reqs if cpu.lstrip("-").isdigit() and reqs else None)
    ttfb = []
    if os.path.exists(f"{d}/ttfb.txt"):
        for line in open(f"{d}/ttfb.txt"):
            target, rest = line.split(" ", 1)
            v = {k: float(x) for k, x in re.findall(r"(\w+)=([\d.]+)", rest)}
            v["cpu"] = v["cpu_us"] / v["streams"] if v.get("streams") and "cpu_us" in v else None
            ttfb.append((target, v))
    return meta, rows, ttfb


runs = []
for m in glob.glob(f"{out}/w*/meta.txt"):
    d = os.path.dirname(m)
    n = re.fullmatch(r"w(\d+)", os.path.basename(d))
    if n:
        runs.append((int(n.group(1)), *load(d)))
runs.sort(key=lambda r: r[0])
if not runs:
    sys.exit(f"no {out}/w<N>/meta.txt: run benches/load.sh first")

lines = []
w = lines.append
try:
    model = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
except (OSError, StopIteration):
    model = os.uname().machine
meta0 = runs[0][1]
counts = " ".join(str(r[0]) for r in runs)
w(f"Measured {datetime.date.today()} on {os.cpu_count()} cores ({model}), `make bench-load` "
  f"(WORKERS=\"{counts}\", {meta0.get('duration', '5')} s per wrk run); load generator (wrk -t2), mock upstream "
  f"(1 thread), nginx and ModelSwitch share the machine. Each table below is one worker count: nginx's "
  f"`worker_processes` and ModelSwitch's `threads`, the same for both.")
gw_bin = meta0.get("gw_bin", "")
if gw_bin and os.path.realpath(gw_bin) != os.path.realpath("target/release/modelswitch"):
    w(f"ModelSwitch binary under test: `{gw_bin}` (GW_BIN).")
w("\nCPU µs/req is the utime + stime of the proxy's processes (nginx: master and workers) over the run, "
  "from `/proc/PID/stat`, divided by the requests wrk completed (a stream row's request is one whole "
  "64-chunk stream); the clock tick is 10 ms, so rows with few requests (1 connection, 1 MiB bodies) are "
  "approximate. CPU vs nginx is ModelSwitch's over nginx's for the same scenario (a translated row: "
  "against nginx's same-dialect row).\n")

# CPU per request, both proxies, every worker count side by side.
keys = []
for _, _, rows, _ in runs:
    for (scen, target, conns) in rows:
        if target == "nginx" and (scen, conns) not in keys:
            keys.append((scen, conns))
order = {}
for scen, _ in keys:
    order.setdefault(scen, len(order))
keys.sort(key=lambda k: (order[k[0]], k[1]))
w("CPU per request (µs), nginx and ModelSwitch:\n")
w("| scenario | conns | " + " | ".join(f"nginx W={n} | ModelSwitch W={n} | ratio W={n}" for n, *_ in runs) + " |")
w("| --- | --- |" + " --- | --- | --- |" * len(runs))
for scen, conns in keys:
    cells = []
    for _, _, rows, _ in runs:
        n = (rows.get((scen, "nginx", conns)) or {}).get("cpu")
        g = (rows.get((scen, "gateway", conns)) or {}).get("cpu")
        cells.append(f"{us(n)} | {us(g)} | {ratio(g, n)}")
    w(f"| {scen} | {conns} | " + " | ".join(cells) + " |")
cells = []
for _, _, _, ttfb in runs:
    per = {t: [v["cpu"] for tt, v in ttfb if tt == t and v.get("cpu") is not None] for t in ("nginx", "gateway")}
    n, g = (min(per[t]) if per[t] else None for t in ("nginx", "gateway"))
    cells.append(f"{us(n)} | {us(g)} | {ratio(g, n)}")
w("| TTFB probe (sequential streams, best round) | 1 | " + " | ".join(cells) + " |")


def report(workers, meta, rows, ttfb):
    s = "s" if workers != 1 else ""
    w(f"\n### WORKERS={workers}: nginx {workers} worker{s}, ModelSwitch {workers} thread{s}\n")
    w("| scenario | conns | target | RPS | p50 ms | p99 ms | p99.9 ms | errors | added p50 ms | added p99 ms "
      "| RPS vs nginx | CPU µs/req | CPU vs nginx |")
    w("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for (scen, target, conns), r in rows.items():
        base = BASE.get(scen, scen)
        d = rows.get((base, "direct", conns))
        n = rows.get((base, "nginx", conns))
        added = f"{r['p50'] - d['p50']:.3f} | {r['p99'] - d['p99']:.3f}" if d and target != "direct" else "— | —"
        vs = f"{100 * r['rps'] / n['rps']:.0f}%" if n and n["rps"] and target == "gateway" else "—"
        cvs = ratio(r["cpu"], n["cpu"]) if n and target == "gateway" else "—"
        w(f"| {scen} | {conns} | {target} | {r['rps']:.0f} | {r['p50']:.3f} | {r['p99']:.3f} | {r['p999']:.3f} "
          f"| {r['errs']} | {added} | {vs} | {us(r['cpu'])} | {cvs} |")

    w("\nStreaming time to first byte (500 sequential streams of 64 chunks on one connection, two rounds; "
      "CPU per stream includes the probe's warm-up streams):\n")
    w("| target | TTFB p50 ms | TTFB p99 ms | full stream p50 ms | full stream p99 ms | CPU µs/stream |")
    w("| --- | --- | --- | --- | --- | --- |")
    for target, v in ttfb:
        if "ttfb_p50_ms" not in v:
            w(f"| {target} | failed | | | | |")
            continue
        w(f"| {target} | {v['ttfb_p50_ms']:.3f} | {v['ttfb_p99_ms']:.3f} | {v['full_p50_ms']:.3f} "
          f"| {v['full_p99_ms']:.3f} | {us(v['cpu'])} |")

    idle_rss = int(meta["idle_rss"])
    w(f"\nMemory and CPU: ModelSwitch idle RSS {idle_rss / 1024:.1f} MB, peak RSS under the load runs "
      f"{int(meta['load_rss']) / 1024:.1f} MB; CPU seconds from start to the end of the load runs and TTFB probes: "
      f"ModelSwitch {meta['load_cpu']}, nginx {meta.get('nginx_load_cpu', '—')}.")
    usage_rows, writer_us = meta.get("usage_rows", ""), meta.get("writer_cpu_us", "")
    if usage_rows.isdigit() and writer_us.isdigit() and int(usage_rows) > 0 and int(writer_us) > 0:
        per_row = int(writer_us) / int(usage_rows)
        w(f"\nUsage rows (recorded for every request above, SQLite): {int(usage_rows):,} rows; the store's "
          f"threads used {int(writer_us) / 1e6:.2f} CPU s, {per_row:.1f} µs per row: the writer sustains "
          f"about {1e6 / per_row:,.0f} rows/s on one core.")
    soak = meta.get("soak", "").replace("RESULT ", "")
    soak_rss = int(meta["soak_rss"]) if meta.get("soak_rss") else None
    big = meta.get("soak_big", "").replace("RESULT ", "")
    big_rss = int(meta["soak_big_rss"]) if meta.get("soak_big_rss", "").isdigit() else None
    big_body = int(meta["soak_big_body_bytes"]) if meta.get("soak_big_body_bytes", "").isdigit() else None
    soaks = [  # name, result, route, prompt bytes, peak RSS KB, peak fds, CPU µs, streams asked
        ("tiny prompts", soak, meta.get("soak_route", "OpenAI /v1/chat/completions -> mock-openai (type openai)"),
         meta.get("soak_body_bytes", ""), soak_rss, meta.get("peak_fds", "?"), meta.get("soak_cpu_us", ""),
         meta.get("soak_streams", "—")),
        ("200 KB prompts (Claude Code shape)", big, meta.get("soak_big_route", "—"),
         meta.get("soak_big_body_bytes", ""), big_rss, meta.get("soak_big_fds", "?"), meta.get("soak_big_cpu_us", ""),
         meta.get("soak_big_streams", "—")),
    ]
    if soak or big:
        w("\nSoaks: concurrent streams of 20 chunks 500 ms apart, held to their end, each soak on a freshly "
          "started gateway; RSS per stream is (peak − idle RSS) / streams.\n")
        w("| soak | route (client → provider) | prompt KB | streams | completed | errors | seconds "
          "| peak RSS MB | RSS KB/stream | peak fds | CPU µs/stream |")
        w("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        for name, res, route, body, rss, fds, cpu, asked in soaks:
            if not res:
                continue
            v = dict(re.findall(r"(\w+)=([\d.]+)", res))
            n, done = int(v.get("soak_streams", 0)), int(v.get("completed", 0))
            kb = f"{int(body) / 1024:.1f}" if body.isdigit() else "—"
            peak = "—" if rss is None else f"{rss / 1024:.1f}"
            per = f"{(rss - idle_rss) / n:.0f}" if rss is not None and n else "—"
            cpu = us(int(cpu) / done) if done and cpu.isdigit() else "—"
            w(f"| {name} | {route.replace('->', '→')} | {kb} | {v.get('soak_streams', asked)} | {v.get('completed', '—')} "
              f"| {v.get('errors', '—')} | {v.get('seconds', '—')} | {peak} | {per} | {fds or '—'} | {cpu} |")
        if big and meta.get("soak_big_upstream"):
            w(f"\nThe mock's record of the 200 KB soak: {meta['soak_big_upstream']}"
              f"{f' (the client sent {big_body} bytes)' if big_body else ''}.")
    not_run = [name for name, res, *_ in soaks if not res]
    if not_run:
        w(f"\nSoak{'s' if len(not_run) > 1 else ''} not run at this worker count: {', '.join(not_run)} "
          "(load.sh runs the soaks at the first count only, SOAK_ALL=1 at every count; SOAK=0 or SOAK_BIG=0 skips one).")

    # Targets of issue #4.
    def get(s, t, c):
        return rows.get((s, t, c))

    checks = []

    def check(name, ok, detail):
        checks.append(f"| {name} | {'met' if ok else '**not met**'} | {detail} |")

    g, n = get("passthrough", "gateway", 64), get("passthrough", "nginx", 64)
    if g and n and n["rps"]:
        check("pass-through RPS ≥ 90% of nginx at 64 conns", g["rps"] >= 0.9 * n["rps"], f"{100 * g['rps'] / n['rps']:.0f}%")
    for c in (16, 64):
        lim, g = get("passthrough-limited", "gateway", c), get("passthrough", "gateway", c)
        if lim and g and g["rps"]:
            check(f"pass-through RPS with an rpm/tpm-limited key within 3% of an unlimited one ({c} conns)",
                  lim["rps"] >= 0.97 * g["rps"], f"{100 * lim['rps'] / g['rps']:.1f}%")
    g, d = get("passthrough", "gateway", 1), get("passthrough", "direct", 1)
    if g and d:
        check("added p50 ≤ 0.15 ms at 1 conn", g["p50"] - d["p50"] <= 0.15, f"{g['p50'] - d['p50']:.3f} ms")
        check("added p99 ≤ 1 ms at 1 conn", g["p99"] - d["p99"] <= 1.0, f"{g['p99'] - d['p99']:.3f} ms")
    for c in (16, 64):
        g, n, d = get("passthrough", "gateway", c), get("passthrough", "nginx", c), get("passthrough", "direct", c)
        if g and n and d:
            ga, na = g["p50"] - d["p50"], n["p50"] - d["p50"]
            check(f"added p50 at {c} conns ≤ 1.1× nginx's", ga <= 1.1 * na, f"{ga:.3f} ms vs nginx {na:.3f} ms")
    gt = [v["ttfb_p50_ms"] for t, v in ttfb if t == "gateway" and "ttfb_p50_ms" in v]
    dt = [v["ttfb_p50_ms"] for t, v in ttfb if t == "direct" and "ttfb_p50_ms" in v]
    if gt and dt:
        check("streaming TTFB adds ≤ 0.5 ms at p50", min(gt) - min(dt) <= 0.5, f"{min(gt) - min(dt):.3f} ms")
    st, sp = get("stream-translated", "gateway", 64), get("stream", "gateway", 64)
    if st and sp and sp["rps"]:
        check("translated streaming ≥ 80% of pass-through (64 conns)", st["rps"] >= 0.8 * sp["rps"], f"{100 * st['rps'] / sp['rps']:.0f}%")
    if soak:
        m = re.search(r"errors=(\d+)", soak)
        check("10,000 streams, 0 errors, peak RSS ≤ 300 MB",
              bool(m) and m.group(1) == "0" and "soak_streams=10000" in soak and soak_rss <= 300 * 1024,
              f"{soak}, {soak_rss / 1024:.0f} MB")
    if big:
        m = re.search(r"errors=(\d+)", big)
        up = meta.get("soak_big_upstream", "")
        check("2,000 Anthropic streams of 200 KB prompts (Anthropic → Anthropic), 0 errors, peak RSS ≤ 400 MB",
              bool(m) and m.group(1) == "0" and "soak_streams=2000" in big and big_rss is not None
              and big_rss <= 400 * 1024 and (big_body or 0) >= 200 * 1024
              and (not up or up == "unknown" or "path=/v1/messages" in up),
              f"{big}, {'—' if big_rss is None else f'{big_rss / 1024:.0f}'} MB, "
              f"{'—' if big_body is None else f'{big_body / 1024:.0f}'} KB prompts")
    check("idle RSS ≤ 30 MB", idle_rss <= 30 * 1024, f"{idle_rss / 1024:.1f} MB")
    g, d = get("big", "gateway", 1), get("big", "direct", 1)
    if g and d:
        check("1 MiB body adds ≤ 2 ms at p50", g["p50"] - d["p50"] <= 2.0, f"{g['p50'] - d['p50']:.3f} ms")

    w(f"\n| target (issue #4), WORKERS={workers} | status | measured |")
    w("| --- | --- | --- |")
    lines.extend(checks)


for run in runs:
    report(*run)

text_out = "\n".join(lines) + "\n"
print(text_out)
open(f"{out}/report.md", "w").write(text_out)

# Record in benches/README.md between the markers.
readme = "benches/README.md"
if os.environ.get("RECORD", "1") != "0" and os.path.exists(readme):
    text = open(readme).read()
    start, end = "<!-- bench-load:start -->", "<!-- bench-load:end -->"
    if start in text and end in text:
        text = text[: text.index(start) + len(start)] + "\n" + text_out + text[text.index(end):]
        open(readme, "w").write(text)
