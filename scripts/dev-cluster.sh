#!/usr/bin/env bash
# Starts a 3-node DynamoKV cluster (N=3, R=2, W=2) on 127.0.0.1:7400-7402 with
# data under ${DYNAMO_DATA:-./data/dev}, and stops it on Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p dynamo-node -p dynamo-client
data=${DYNAMO_DATA:-./data/dev}
members="node-0=127.0.0.1:7400,node-1=127.0.0.1:7401,node-2=127.0.0.1:7402"
pids=()
stop() {
  kill -TERM "${pids[@]}" 2>/dev/null || true
  wait "${pids[@]}" 2>/dev/null || true
}
trap stop EXIT INT TERM
for i in 0 1 2; do
  mkdir -p "$data/node-$i"
  ./target/release/dynamo-node --id "node-$i" --listen "127.0.0.1:740$i" \
    --data-dir "$data/node-$i" --member "$members" &
  pids+=($!)
done
echo "DynamoKV is running. Try: ./target/release/dynamoctl --endpoint 127.0.0.1:7400 status"
wait
