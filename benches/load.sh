#!/usr/bin/env bash
# make bench-load: the same mock upstream reached directly (the floor),
# through nginx (the reference proxy hop) and through ModelSwitch, in one
# run, interleaved, at 1/16/64/256 connections; then streaming time to
# first byte, a 10,000-stream soak (tiny prompts) and a 2,000-stream soak of
# 200 KB Anthropic prompts. Loopback only; every run is bounded.
# Every phase also records the CPU time nginx (master + workers) and
# ModelSwitch spent, from /proc/PID/stat, per request wrk completed.
#
#   DURATION=5 CONNS="1 16 64 256" SOAK=10000 SOAK_BIG=2000 WORKERS="1 2" benches/load.sh
#
# WORKERS is a list: the whole matrix (wrk runs and TTFB probe) runs once per
# entry, each with nginx's worker_processes and ModelSwitch's threads set to
# it, the same for both. "1 2" is the default: one worker is what serves most
# on 2 cores shared with wrk and the mock, two is closer to what users run
# (ModelSwitch's default thread count). `WORKERS=1 make bench-load` is a
# single, quicker run.
#
# The soaks are long and are run only at the first worker count, each on a
# freshly started gateway; SOAK_ALL=1 runs them at every count. SOAK (10,000
# streams, OpenAI chat, tiny prompts) and SOAK_BIG (2,000 streams, Anthropic
# /v1/messages with a ~200 KB prompt split across `system` and `messages`:
# the Claude Code shape, Anthropic -> Anthropic pass-through to the mock's
# anthropic-type provider) set the stream counts; 0 skips that soak. The big
# soak's mock holds every prompt it is streaming (~0.7 MB each, ~1.4 GB at
# 2,000); the probe holds one copy.
#
# GW_BIN=/path/to/modelswitch benchmarks another ModelSwitch binary (e.g. one
# built from an older commit, for before/after) against the same nginx, mock
# and probe; the default is target/release/modelswitch. SKIP_BUILD=1 skips the
# cargo builds (the mock, probe and gateway binaries must already exist).
# RECORD=0 leaves benches/README.md alone (the report is still printed and
# written to $OUT/report.md).
#
# Output: $OUT (target/bench-load) holds the mock's log, the request bodies
# and report.md; $OUT/w<N>/ holds one worker count's nginx.conf,
# gateway.toml, logs, results.txt, ttfb.txt and meta.txt.
# `python3 benches/report.py $OUT` rebuilds the report from them.
set -euo pipefail
if [ -n "${GW_BIN:-}" ]; then GW_BIN=$(readlink -m "$GW_BIN"); fi
cd "$(dirname "$0")/.."

DURATION=${DURATION:-5}
CONNS=${CONNS:-"1 16 64 256"}
SOAK=${SOAK:-10000}
SOAK_BIG=${SOAK_BIG:-2000}
WORKERS=${WORKERS:-"1 2"}
SOAK_ALL=${SOAK_ALL:-0}
SKIP_BUILD=${SKIP_BUILD:-0}
GW_BIN=${GW_BIN:-$PWD/target/release/modelswitch}
OUT=${OUT:-target/bench-load}
TTFB_N=500
MOCK=127.0.0.1:19100
NGINX=127.0.0.1:19101
GW=127.0.0.1:19102
CLK_TCK=$(getconf CLK_TCK)

for w in $WORKERS; do
  case $w in '' | *[!0-9]* | 0) echo "WORKERS must be a list of positive integers, got '$WORKERS'"; exit 1 ;; esac
done
for v in SOAK SOAK_BIG; do
  case ${!v} in '' | *[!0-9]*) echo "$v must be a non-negative integer, got '${!v}'"; exit 1 ;; esac
done

need() {
  command -v "$1" >/dev/null 2>&1 && return
  if [ "$(id -u)" = 0 ]; then
    echo "installing $2"
    apt-get update -qq && apt-get install -y -qq "$2" >/dev/null
  else
    echo "$1 is missing: run 'sudo apt-get install -y $2'"; exit 1
  fi
}
need wrk wrk
need nginx nginx-light
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

if [ "$SKIP_BUILD" != 1 ]; then
  cargo build --release --bins
  cargo bench --no-run --bench stream_probe >/dev/null 2>&1
fi
PROBE=$(ls -t target/release/deps/stream_probe-* 2>/dev/null | grep -v '\.d$' | head -1 || true)
for bin in target/release/mock-upstream "$PROBE" "$GW_BIN"; do
  [ -n "$bin" ] && [ -x "$bin" ] || { echo "missing or not executable: ${bin:-the stream_probe bench binary} (check GW_BIN, or unset SKIP_BUILD)"; exit 1; }
done

rm -rf "$OUT" && mkdir -p "$OUT"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
stop() { # pid signal: stop one of our processes and wait for it
  kill "-$2" "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
  local p kept=()
  for p in "${pids[@]}"; do [ "$p" = "$1" ] || kept+=("$p"); done
  pids=("${kept[@]}")
}
wait_port() {
  for _ in $(seq 100); do (exec 3<>/dev/tcp/${1%:*}/${1#*:}) 2>/dev/null && return; sleep 0.05; done
}
# utime + stime in microseconds of the given processes and their children
# (nginx: the master and its workers), from /proc/PID/stat. Resolution: one
# clock tick (10 ms) per process per sample.
cpu_us() {
  local roots=" $* " f line pid ticks=0
  for f in /proc/[0-9]*/stat; do
    read -r line 2>/dev/null < "$f" || continue
    pid=${line%% *}
    set -- ${line##*) }  # fields from the 3rd (state) on: $2 ppid, $12 utime, $13 stime
    case "$roots" in *" $pid "* | *" $2 "*) ticks=$((ticks + ${12} + ${13})) ;; esac
  done
  echo $((ticks * 1000000 / CLK_TCK))
}
cpu_s() { cpu_us "$@" | awk '{printf "%.1f", $1 / 1e6}'; }

target/release/mock-upstream --listen $MOCK --threads 1 > "$OUT/mock.log" 2>&1 & pids+=($!)

python3 - "$OUT" <<'EOF'
import json, sys
out = sys.argv[1]
msgs = [{"role": "user", "content": "Say something short."}]
bodies = {
  "chat": {"model": "bench", "messages": msgs},
  "chat-anthropic": {"model": "bench", "max_tokens": 64, "messages": msgs},
  "stream": {"model": "bench;chunks=64", "stream": True, "messages": msgs},
  "stream-anthropic": {"model": "bench;chunks=64", "max_tokens": 64, "stream": True, "messages": msgs},
  "big": {"model": "bench", "messages": [{"role": "user", "content": "x" * (1024 * 1024)}]},
  # The many-developers case: slow streams held open at once.
  "soak": {"model": "bench;chunks=20;delay_ms=500", "stream": True, "messages": [{"role": "user", "content": "hi"}]},
}

# The Claude Code case: the same slow streams, in Anthropic's dialect, each
# with a ~200 KB prompt: a long system prompt (two text blocks, the second
# cached) and a long user turn after a short exchange. Prose-like text with
# newlines and quotes, so JSON has escapes to handle; no tools (the mock
# would answer tools with tool calls, not the 20 chunks).
def text(n, tag):
    line = (f'{tag}: when editing "src/lib.rs", keep the public API stable; run the tests; '
            'prefer small diffs and explain each change.\n')
    return (line * (n // len(line) + 1))[:n]
big = {
  "model": "bench-claude;chunks=20;delay_ms=500", "max_tokens": 4096, "stream": True,
  "system": [
    {"type": "text", "text": "You are Claude Code, a coding agent.\n" + text(8 * 1024, "policy")},
    {"type": "text", "text": text(72 * 1024, "guideline"), "cache_control": {"type": "ephemeral"}},
  ],
  "messages": [
    {"role": "user", "content": "Read the repository and summarise it."},
    {"role": "assistant", "content": "Here is the summary of the repository."},
    {"role": "user", "content": [
      {"type": "text", "text": text(60 * 1024, "file src/lib.rs")},
      {"type": "text", "text": text(60 * 1024, "file src/main.rs")},
      {"type": "text", "text": "Now fix the failing test.", "cache_control": {"type": "ephemeral"}},
    ]},
  ],
}
bodies["soak-big"] = big
for name, b in bodies.items():
    open(f"{out}/{name}.json", "w").write(json.dumps(b))
size = len(json.dumps(big))
assert 200 * 1024 <= size < 210 * 1024, size
EOF

cat > "$OUT/post.lua" <<'EOF'
local f = io.open(os.getenv("BODY_FILE"), "rb")
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. (os.getenv("BENCH_KEY") or "sk-bench-key-0001")
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT %d %.3f %d %d %d %d\n", summary.requests, summary.duration / 1e6,
    e.connect + e.read + e.write + e.status + e.timeout,
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9)))
end
EOF

BIG_MODEL="bench-claude;chunks=20;delay_ms=500"
# The mock's record of one model, from GET /_mock/stats. With one argument:
# how many requests it has had. With the count from before as the second:
# the requests since, the path of the last one and its body size.
mock_seen() { # model [requests before]
  python3 - "$MOCK" "$1" "${2:-}" <<'EOF' || echo "unknown"
import json, sys, urllib.request
mock, model, before = sys.argv[1:4]
s = json.load(urllib.request.urlopen(f"http://{mock}/_mock/stats", timeout=30))
n = s["by_model"].get(model, 0)
if not before:
    print(n)
else:
    last = s["last"].get(model, {})
    n -= int(before) if before.isdigit() else 0
    print(f"requests={n} path={last.get('path', '-')} body_bytes={last.get('body_len', '-')}")
EOF
}

start_gateway() { # log file
  RUST_LOG=error "$GW_BIN" --config "$DIR/gateway.toml" > "$DIR/$1" 2>&1 & GW_PID=$!; pids+=($GW_PID)
  wait_port $GW
}

run() { # scenario target addr path body conns [client key]
  local line threads=2 procs="" before cpu=- key=${7:-sk-bench-key-0001}
  [ "$6" -lt 2 ] && threads=1
  case $2 in nginx) procs=$NGINX_PID ;; gateway) procs=$GW_PID ;; esac
  [ -n "$procs" ] && before=$(cpu_us $procs)
  line=$(BODY_FILE="$OUT/$5.json" BENCH_KEY="$key" wrk -t"$threads" -c"$6" -d"${DURATION}s" --timeout 10s -s "$OUT/post.lua" "http://$3$4" | grep '^RESULT' || echo "RESULT 0 1 1 0 0 0")
  if [ -n "$procs" ]; then
    sleep 0.2  # let the proxy finish closing wrk's connections
    cpu=$(( $(cpu_us $procs) - before ))
  fi
  # scenario target conns requests seconds errors p50 p99 p99.9 (µs) cpu_us
  echo "$1 $2 $6 ${line#RESULT } $cpu" | tee -a "$results"
}

probe_ttfb() { # target addr [pids]
  local line before=""
  [ -n "${3:-}" ] && before=$(cpu_us $3)
  line=$("$PROBE" ttfb "$2" /v1/chat/completions "$OUT/stream.json" $TTFB_N | grep RESULT)
  # The probe runs max(N/10, 5) warm-up streams before the N it times.
  [ -n "$before" ] && line="$line cpu_us=$(( $(cpu_us $3) - before )) streams=$(( TTFB_N + (TTFB_N / 10 > 5 ? TTFB_N / 10 : 5) ))"
  echo "$1 $line" | tee -a "$ttfb"
}

first=1
for W in $WORKERS; do
  DIR=$OUT/w$W
  mkdir -p "$DIR"
  echo "== WORKERS=$W: nginx $W worker(s), ModelSwitch $W thread(s), $GW_BIN"

  cat > "$DIR/nginx.conf" <<EOF
worker_processes $W;
pid $PWD/$DIR/nginx.pid;
error_log $PWD/$DIR/nginx-error.log warn;
events { worker_connections 16384; }
http {
  access_log off;
  client_body_temp_path $PWD/$DIR/nginx-body;
  proxy_temp_path $PWD/$DIR/nginx-proxy;
  client_max_body_size 64m;
  client_body_buffer_size 2m;
  upstream mock { server $MOCK; keepalive 256; }
  server {
    listen $NGINX;
    location / {
      proxy_pass http://mock;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
    }
  }
}
EOF
  nginx -c "$PWD/$DIR/nginx.conf" -g 'daemon off;' & NGINX_PID=$!; pids+=($NGINX_PID)

  rm -f "$DIR"/modelswitch.db*  # usage rows of this run only
  cat > "$DIR/gateway.toml" <<EOF
# Usage rows are recorded (the default): their queue and writer are part
# of every figure below.
[server]
listen = "$GW"
threads = $W
[[providers]]
name = "mock-openai"
type = "openai"
base_url = "http://$MOCK/v1"
api_key = "sk-bench-upstream"
[[providers]]
name = "mock-anthropic"
type = "anthropic"
base_url = "http://$MOCK"
api_key = "sk-bench-upstream"
[[models]]
name = "bench"
targets = [{ provider = "mock-openai", model = "bench" }]
[[models]]
name = "bench;chunks=64"
targets = [{ provider = "mock-openai", model = "bench;chunks=64" }]
[[models]]
name = "bench;chunks=20;delay_ms=500"
targets = [{ provider = "mock-openai", model = "bench;chunks=20;delay_ms=500" }]
# The big soak: Anthropic /v1/messages to an anthropic-type provider, the
# same dialect end to end (pass-through, as for Claude Code on Anthropic).
[[models]]
name = "bench-claude;chunks=20;delay_ms=500"
targets = [{ provider = "mock-anthropic", model = "bench-claude;chunks=20;delay_ms=500" }]
[[api_keys]]
key = "sk-bench-key-0001"
name = "bench"
# The same traffic under limits it never reaches: what checking, counting
# and settling rpm/tpm costs per request (scenario passthrough-limited).
[[api_keys]]
key = "sk-bench-key-limited"
name = "bench-limited"
limits = { rpm = 1000000000, tpm = 1000000000000 }
EOF
  start_gateway gateway.log
  wait_port $MOCK
  wait_port $NGINX
  sleep 0.2  # nginx forks its workers after it listens
  idle_rss=$(awk '/VmRSS/ {print $2}' /proc/$GW_PID/status)

  results="$DIR/results.txt"
  : > "$results"
  # Interleaved: direct, nginx, gateway back to back at every level.
  for c in $CONNS; do
    run passthrough direct  $MOCK  /v1/chat/completions chat "$c"
    run passthrough nginx   $NGINX /v1/chat/completions chat "$c"
    run passthrough gateway $GW    /v1/chat/completions chat "$c"
    run passthrough-limited gateway $GW /v1/chat/completions chat "$c" sk-bench-key-limited
    run translated  gateway $GW    /v1/messages          chat-anthropic "$c"
    run stream      direct  $MOCK  /v1/chat/completions stream "$c"
    run stream      nginx   $NGINX /v1/chat/completions stream "$c"
    run stream      gateway $GW    /v1/chat/completions stream "$c"
    run stream-translated gateway $GW /v1/messages       stream-anthropic "$c"
  done
  for c in 1 16; do
    run big direct  $MOCK  /v1/chat/completions big "$c"
    run big nginx   $NGINX /v1/chat/completions big "$c"
    run big gateway $GW    /v1/chat/completions big "$c"
  done

  ttfb="$DIR/ttfb.txt"
  : > "$ttfb"
  for i in 1 2; do
    probe_ttfb direct $MOCK
    probe_ttfb nginx $NGINX "$NGINX_PID"
    probe_ttfb gateway $GW "$GW_PID"
  done

  load_rss=$(awk '/VmHWM/ {print $2}' /proc/$GW_PID/status)
  load_cpu=$(cpu_s $GW_PID)
  nginx_load_cpu=$(cpu_s $NGINX_PID)
  # The usage store's threads (its own and sqlx's SQLite worker): what
  # writing the rows of every request above cost, in µs (10 ms ticks).
  writer_cpu_us=$(for t in /proc/$GW_PID/task/*; do
      case "$(cat "$t/comm" 2>/dev/null)" in key-store|sqlx-sqlite-wor*) awk '{print $14 + $15}' "$t/stat" ;; esac
    done | awk '{s += $1} END {print s * 10000}')
  stop $NGINX_PID TERM
  stop $GW_PID INT  # SIGINT: fast shutdown (SIGTERM waits out a grace period)
  usage_rows=$(python3 -c "import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute('select count(*) from usage').fetchone()[0])" "$DIR/modelswitch.db" 2>/dev/null || echo 0)

  soak="" soak_rss="" peak_fds="" soak_cpu=""
  if [ "$SOAK" -gt 0 ] && { [ $first = 1 ] || [ "$SOAK_ALL" = 1 ]; }; then
    start_gateway gateway-soak.log
    ( while kill -0 $GW_PID 2>/dev/null; do ls /proc/$GW_PID/fd 2>/dev/null | wc -l; sleep 0.5; done ) > "$DIR/fds.txt" &
    before=$(cpu_us $GW_PID)
    soak=$("$PROBE" soak $GW /v1/chat/completions "$OUT/soak.json" "$SOAK" | grep RESULT || echo "RESULT soak failed")
    soak_cpu=$(( $(cpu_us $GW_PID) - before ))
    peak_fds=$(sort -n "$DIR/fds.txt" | tail -1)
    soak_rss=$(awk '/VmHWM/ {print $2}' /proc/$GW_PID/status)
    echo "soak: $soak"
    stop $GW_PID INT
  fi

  # The big-prompt soak, on a gateway of its own so its peak RSS is its own.
  soak_big="" soak_big_rss="" soak_big_fds="" soak_big_cpu="" soak_big_upstream=""
  if [ "$SOAK_BIG" -gt 0 ] && { [ $first = 1 ] || [ "$SOAK_ALL" = 1 ]; }; then
    start_gateway gateway-soak-big.log
    ( while kill -0 $GW_PID 2>/dev/null; do ls /proc/$GW_PID/fd 2>/dev/null | wc -l; sleep 0.5; done ) > "$DIR/fds-big.txt" &
    seen=$(mock_seen "$BIG_MODEL")
    before=$(cpu_us $GW_PID)
    soak_big=$("$PROBE" soak $GW /v1/messages "$OUT/soak-big.json" "$SOAK_BIG" | grep RESULT || echo "RESULT soak failed")
    soak_big_cpu=$(( $(cpu_us $GW_PID) - before ))
    soak_big_fds=$(sort -n "$DIR/fds-big.txt" | tail -1)
    soak_big_rss=$(awk '/VmHWM/ {print $2}' /proc/$GW_PID/status 2>/dev/null || true)  # empty if it died
    # What reached the mock: the path it was sent on shows the dialect.
    soak_big_upstream=$(mock_seen "$BIG_MODEL" "$seen")
    echo "soak (200 KB Anthropic prompts): $soak_big; upstream: $soak_big_upstream"
    stop $GW_PID INT
  fi

  cat > "$DIR/meta.txt" <<EOF
workers=$W
gw_bin=$GW_BIN
duration=$DURATION
idle_rss=$idle_rss
load_rss=$load_rss
load_cpu=$load_cpu
nginx_load_cpu=$nginx_load_cpu
usage_rows=$usage_rows
writer_cpu_us=$writer_cpu_us
soak=$soak
soak_streams=$SOAK
soak_rss=$soak_rss
peak_fds=$peak_fds
soak_cpu_us=$soak_cpu
soak_route=OpenAI /v1/chat/completions -> mock-openai (type openai), same dialect
soak_body_bytes=$(wc -c < "$OUT/soak.json")
soak_big=$soak_big
soak_big_streams=$SOAK_BIG
soak_big_rss=$soak_big_rss
soak_big_fds=$soak_big_fds
soak_big_cpu_us=$soak_big_cpu
soak_big_body_bytes=$(wc -c < "$OUT/soak-big.json")
soak_big_route=Anthropic /v1/messages -> mock-anthropic (type anthropic), same dialect
soak_big_upstream=$soak_big_upstream
EOF
  first=0
done

python3 benches/report.py "$OUT"
