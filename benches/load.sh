#!/usr/bin/env bash
# make bench-load: the same mock upstream reached directly (the floor),
# through nginx (the reference proxy hop) and through ModelSwitch, in one
# run, interleaved, at 1/16/64/256 connections; then streaming time to
# first byte and a 10,000-stream soak. Loopback only; every run is bounded.
#
#   DURATION=5 CONNS="1 16 64 256" SOAK=10000 WORKERS=1 benches/load.sh
#
# WORKERS is nginx's worker_processes and ModelSwitch's threads, the same
# for both. One each is the default: on 2 cores shared with the load
# generator and the mock, both proxies serve more with one worker than two
# (measured: nginx 29k vs 26k RPS at 64 connections).
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-5}
CONNS=${CONNS:-"1 16 64 256"}
SOAK=${SOAK:-10000}
export WORKERS=${WORKERS:-1}
OUT=${OUT:-target/bench-load}
MOCK=127.0.0.1:19100
NGINX=127.0.0.1:19101
GW=127.0.0.1:19102

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

cargo build --release --bins
cargo bench --no-run --bench stream_probe >/dev/null 2>&1
PROBE=$(ls -t target/release/deps/stream_probe-* | grep -v '\.d$' | head -1)

rm -rf "$OUT" && mkdir -p "$OUT"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

target/release/mock-upstream --listen $MOCK --threads 1 > "$OUT/mock.log" 2>&1 & pids+=($!)

cat > "$OUT/nginx.conf" <<EOF
worker_processes $WORKERS;
pid $PWD/$OUT/nginx.pid;
error_log $PWD/$OUT/nginx-error.log warn;
events { worker_connections 16384; }
http {
  access_log off;
  client_body_temp_path $PWD/$OUT/nginx-body;
  proxy_temp_path $PWD/$OUT/nginx-proxy;
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
nginx -c "$PWD/$OUT/nginx.conf" -g 'daemon off;' & pids+=($!)

cat > "$OUT/gateway.toml" <<EOF
[server]
listen = "$GW"
threads = $WORKERS
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
[[api_keys]]
key = "sk-bench-key-0001"
name = "bench"
EOF
RUST_LOG=error target/release/modelswitch --config "$OUT/gateway.toml" > "$OUT/gateway.log" 2>&1 & GW_PID=$!; pids+=($GW_PID)

for addr in $MOCK $NGINX $GW; do
  for _ in $(seq 100); do (exec 3<>/dev/tcp/${addr%:*}/${addr#*:}) 2>/dev/null && break; sleep 0.05; done
done
idle_rss=$(awk '/VmRSS/ {print $2}' /proc/$GW_PID/status)

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
}
for name, b in bodies.items():
    open(f"{out}/{name}.json", "w").write(json.dumps(b))
EOF

cat > "$OUT/post.lua" <<'EOF'
local f = io.open(os.getenv("BODY_FILE"), "rb")
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer sk-bench-key-0001"
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT %d %.3f %d %d %d %d\n", summary.requests, summary.duration / 1e6,
    e.connect + e.read + e.write + e.status + e.timeout,
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9)))
end
EOF

results="$OUT/results.txt"
: > "$results"
run() { # scenario target addr path body conns
  local line
  local threads=2
  [ "$6" -lt 2 ] && threads=1
  line=$(BODY_FILE="$OUT/$5.json" wrk -t"$threads" -c"$6" -d"${DURATION}s" --timeout 10s -s "$OUT/post.lua" "http://$3$4" | grep '^RESULT' || echo "RESULT 0 1 1 0 0 0")
  echo "$1 $2 $6 ${line#RESULT }" | tee -a "$results"
}
# Interleaved: direct, nginx, gateway back to back at every level.
for c in $CONNS; do
  run passthrough direct  $MOCK  /v1/chat/completions chat "$c"
  run passthrough nginx   $NGINX /v1/chat/completions chat "$c"
  run passthrough gateway $GW    /v1/chat/completions chat "$c"
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

ttfb="$OUT/ttfb.txt"
: > "$ttfb"
for i in 1 2; do
  echo "direct $("$PROBE" ttfb $MOCK /v1/chat/completions "$OUT/stream.json" 500 | grep RESULT)" >> "$ttfb"
  echo "nginx $("$PROBE" ttfb $NGINX /v1/chat/completions "$OUT/stream.json" 500 | grep RESULT)" >> "$ttfb"
  echo "gateway $("$PROBE" ttfb $GW /v1/chat/completions "$OUT/stream.json" 500 | grep RESULT)" >> "$ttfb"
done

# The many-developers case: SOAK slow streams held open at once.
python3 -c "
import json; json.dump({'model': 'bench;chunks=20;delay_ms=500', 'stream': True,
  'messages': [{'role': 'user', 'content': 'hi'}]}, open('$OUT/soak.json', 'w'))"
sed -i 's/^\[\[api_keys\]\]/[[models]]\nname = "bench;chunks=20;delay_ms=500"\ntargets = [{ provider = "mock-openai", model = "bench;chunks=20;delay_ms=500" }]\n\n[[api_keys]]/' "$OUT/gateway.toml"
load_rss=$(awk '/VmHWM/ {print $2}' /proc/$GW_PID/status)
load_cpu=$(awk '{printf "%.1f", ($14 + $15) / 100}' /proc/$GW_PID/stat)
kill -INT $GW_PID; wait $GW_PID 2>/dev/null || true  # SIGINT: fast shutdown (SIGTERM waits out a grace period)
RUST_LOG=error target/release/modelswitch --config "$OUT/gateway.toml" > "$OUT/gateway-soak.log" 2>&1 & GW_PID=$!; pids+=($GW_PID)
for _ in $(seq 100); do (exec 3<>/dev/tcp/${GW%:*}/${GW#*:}) 2>/dev/null && break; sleep 0.05; done
peak_fds=0
( while kill -0 $GW_PID 2>/dev/null; do ls /proc/$GW_PID/fd 2>/dev/null | wc -l; sleep 0.5; done ) > "$OUT/fds.txt" &
soak=$("$PROBE" soak $GW /v1/chat/completions "$OUT/soak.json" "$SOAK" | grep RESULT || echo "RESULT soak failed")
peak_fds=$(sort -n "$OUT/fds.txt" | tail -1)
soak_rss=$(awk '/VmHWM/ {print $2}' /proc/$GW_PID/status)

python3 benches/report.py "$OUT" "$idle_rss" "$load_rss" "$load_cpu" "$soak_rss" "$peak_fds" "$soak"
