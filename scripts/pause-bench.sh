#!/usr/bin/env bash
# p99.9 while one member is paused (SIGSTOP), at half of peak load, against
# the same figure without a pause: the benchmark of "stay fast when a node is
# slow" (docs/benchmarks.md). Not a test: it prints figures and never fails
# on a time.
#
#   scripts/pause-bench.sh [PROFILE]     # PROFILE: release (default) or debug
#
# It starts a 3-node `dynamo-operator local` cluster of examples/
# dynamocluster.yaml (N=3 R=2 W=2) under a temporary directory, measures the
# peak (closed loop), then runs `dynamoctl bench --rate PEAK/2` twice for
# WINDOW seconds: once untouched and once with member 2 stopped for the
# whole measured window (after the warm-up). Every process it starts is
# stopped when it exits, even on failure.
set -euo pipefail
cd "$(dirname "$0")/.."

PROFILE="${1:-release}"
WINDOW="${WINDOW:-10}"
PORT="${PORT:-7720}"
BIN="target/$PROFILE"
# The operator only starts and supervises the members: any build will do.
OPERATOR_BIN="$BIN/dynamo-operator"
[[ -x "$OPERATOR_BIN" ]] || OPERATOR_BIN="target/debug/dynamo-operator"
for binary in dynamo-node dynamoctl; do
  if [[ ! -x "$BIN/$binary" ]]; then
    echo "$BIN/$binary is missing: cargo build --profile ${PROFILE/debug/dev} --bins" >&2
    exit 2
  fi
done
[[ -x "$OPERATOR_BIN" ]] || { echo "no dynamo-operator binary: cargo build -p dynamo-operator" >&2; exit 2; }

ROOT="$(mktemp -d)"
OPERATOR=""
PAUSED=""
cleanup() {
  [[ -n "$PAUSED" ]] && kill -CONT "$PAUSED" 2>/dev/null || true
  [[ -n "$OPERATOR" ]] && kill "$OPERATOR" 2>/dev/null && wait "$OPERATOR" 2>/dev/null || true
  rm -rf "$ROOT"
}
trap cleanup EXIT

sed 's/^  name: demo$/  name: bench/' examples/dynamocluster.yaml > "$ROOT/cluster.yaml"
"$OPERATOR_BIN" local -f "$ROOT/cluster.yaml" --data-dir "$ROOT/data" \
  --base-port "$PORT" --node-binary "$BIN/dynamo-node" > "$ROOT/operator.log" 2>&1 &
OPERATOR=$!

ENDPOINT="127.0.0.1:$PORT"
ctl() { "$BIN/dynamoctl" --endpoint "$ENDPOINT" "$@"; }
for _ in $(seq 1 120); do
  up=$(ctl --output json status 2>/dev/null | grep -o '"state": *"up"' | wc -l || true)
  [[ "$up" -ge 3 ]] && break
  sleep 1 # polling the cluster's status, bounded to 2 minutes
done

# Each bench worker runs its share of the rate one operation at a time, so
# the open-loop runs get enough workers to stay open loop.
bench() { ctl --output json bench --records 2000 --workload a "$@"; }
field() { # field REPORT OP NAME
  python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(r[sys.argv[2]][sys.argv[3]])' "$@"
}

bench --concurrency 16 --duration 10s --warmup 2s > "$ROOT/peak.json"
PEAK=$(python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(int(r["read"]["ops_per_second"] + r["write"]["ops_per_second"]))' "$ROOT/peak.json")
RATE=$((PEAK / 2))
echo "peak (closed loop, 16 clients): $PEAK ops/s; open-loop runs at $RATE ops/s for ${WINDOW} s"

bench --skip-load --concurrency 256 --rate "$RATE" --duration "${WINDOW}s" --warmup 2s > "$ROOT/steady.json"

PID=$(cat "$ROOT/data/bench-2/pid")
bench --skip-load --concurrency 256 --rate "$RATE" --duration "${WINDOW}s" --warmup 2s > "$ROOT/paused.json" &
BENCH=$!
sleep 2 # the bench's warm-up: the pause covers exactly the measured window
kill -STOP "$PID"
PAUSED=$PID
wait "$BENCH" || true
kill -CONT "$PID"
PAUSED=""

printf '%-8s %-6s %10s %8s %10s %10s %10s\n' run op "ops/s" errors "p99 ms" "p99.9 ms" "max ms"
for run in steady paused; do
  for op in read write; do
    printf '%-8s %-6s %10.0f %8d %10.1f %10.1f %10.1f\n' "$run" "$op" \
      "$(field "$ROOT/$run.json" "$op" ops_per_second)" \
      "$(field "$ROOT/$run.json" "$op" errors)" \
      "$(echo "$(field "$ROOT/$run.json" "$op" p99_us) / 1000" | bc -l)" \
      "$(echo "$(field "$ROOT/$run.json" "$op" p999_us) / 1000" | bc -l)" \
      "$(echo "$(field "$ROOT/$run.json" "$op" max_us) / 1000" | bc -l)"
  done
done
for op in read write; do
  steady=$(field "$ROOT/steady.json" "$op" p999_us)
  paused=$(field "$ROOT/paused.json" "$op" p999_us)
  printf 'p99.9 %s: paused / steady = %.2f (target at most 2)\n' "$op" "$(echo "$paused / $steady" | bc -l)"
done
