#!/usr/bin/env bash
# User-space instructions per request, by function, under callgrind: the harness's floor beside a
# subject server, on the harness's workloads. Deterministic (instructions, not time), so it can
# run on a busy machine. See BENCHMARKS.md ("Where the time goes").
#
#   SUBJECT=target/release/examples/passive_reply WORKLOADS="W1 W2 W3 W7" tools/callgrind/run.sh
#
# Each server runs twice per workload under `valgrind --tool=callgrind`, driven over one
# keep-alive connection with N1 and then N2 requests (drive.py); (cost(N2) - cost(N1)) / (N2 - N1)
# is the cost of one request, start-up and shutdown cancelled out. Requests come from the
# harness's gen.py (the project's load harness, outside this repository: set BENCH to its
# directory; it uses the Python environment the harness's run.sh installs), freshly
# timestamped before each run. Output: out/<server>.<workload>.<n> (callgrind files) and a
# Markdown table per workload on stdout (breakdown.py).
#
# Caveat: valgrind does not emulate SHA-NI, so the sha1 crate falls back to its portable code
# under callgrind: SHA-1 shows ~10x the instructions it costs in the real process (see
# BENCHMARKS.md for its measured cost).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BENCH=${BENCH:?set BENCH to the load harness directory (outside this repository)}
WORK=${BENCH_WORK:-$HOME/.cache/wxbench}
: "${SUBJECT:=$ROOT/target/release/examples/passive_reply}" "${FLOOR:=$WORK/target/release/floor}"
: "${WORKLOADS:=W1 W2 W3 W7}" "${N1:=500}" "${N2:=1500}" "${OUT:=$HERE/out}"
export WECHAT_TOKEN=${WECHAT_TOKEN:-benchtoken} WECHAT_APPID=${WECHAT_APPID:-wx1234567890abcdef}
export WECHAT_ENCODING_AES_KEY=${WECHAT_ENCODING_AES_KEY:-jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C}
command -v valgrind >/dev/null || { apt-get update -qq && apt-get install -y -qq valgrind >/dev/null; }
[ -x "$FLOOR" ] || { echo "no floor at $FLOOR: run $BENCH/run.sh once (it builds it)" >&2; exit 1; }
mkdir -p "$OUT"

one() { # $1 name, $2 binary, $3 workload, $4 requests
  local port=$((19000 + RANDOM % 1000)) pid
  "$WORK/venv/bin/python" "$BENCH/gen.py" "$3" "$OUT/$3.tsv" "$4"
  BIND=127.0.0.1:$port valgrind --tool=callgrind --callgrind-out-file="$OUT/$1.$3.$4" "$2" \
    >"$OUT/$1.$3.$4.log" 2>&1 &
  pid=$!
  for _ in $(seq 150); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.2; done
  python3 "$HERE/drive.py" "$OUT/$3.tsv" "127.0.0.1:$port" "$4" >&2
  kill -TERM "$pid"
  wait "$pid" || true
}

for w in $WORKLOADS; do
  for n in "$N1" "$N2"; do
    one floor "$FLOOR" "$w" "$n"
    one subject "$SUBJECT" "$w" "$n"
  done
  python3 "$HERE/breakdown.py" "$OUT" "$w" "$N1" "$N2"
done
