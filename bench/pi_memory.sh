#!/usr/bin/env bash
# pi_memory.sh - what a Raspberry Pi cares about in `ferry serve`: start-up time,
# resident memory idle, and resident memory under the web inbox load, on a store of
# 100,000 messages and a 1 GiB archive (issue 10; docs/benchmarks.md, "Raspberry Pi:
# memory and start-up").
#
#   bash bench/pi_memory.sh                       # RUNS=3, the product's defaults
#   RUNS=1 VARIANTS="default GOGC=50" bash bench/pi_memory.sh
#
# The store is made once under $WORK/base (default /tmp/ferrybench-pi) and reused:
# 100,000 messages in 50 rooms through node.Post (as web/load_test.go seeds), then
# `ferry archive add` of DATA (default /tmp/ferrybench/mixed1g, the peer kit's 1 GiB
# "mixed" set, made with its gen.sh when missing; ~4 min to add). Remove $WORK to make it
# again. Each run copies it (database copied, chunks and spool hard-linked), starts
# `ferry serve` on loopback (live links off), and measures:
#   start    time from exec to "serving ... web inbox" on stderr (the node is open and
#            the listener bound)
#   idle     VmRSS after IDLE (15 s) with nothing to do
#   load     admin set up with the setup code, 50 members invited and logged in (argon2id),
#            then 50 closed-loop clients for LOAD (60 s): 80 % room pages, 10 % room
#            lists, 10 % posts; VmRSS at the end and VmHWM (peak since start)
#   after    VmRSS after IDLE more seconds
# VARIANTS lists environments for serve, "default" meaning none (e.g. "default GOGC=50
# GOMEMLIMIT=40MiB"). FERRY=BINARY skips the build. Results: $RESULTS_DIR/pi_memory.txt.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
RUNS=${RUNS:-3}
WORK=${WORK:-/tmp/ferrybench-pi}
DATA=${DATA:-/tmp/ferrybench/mixed1g}
IDLE=${IDLE:-15s}
LOAD=${LOAD:-60s}
VARIANTS=${VARIANTS:-default}
RESULTS_DIR=${RESULTS_DIR:-/tmp/ferrybench-results}
mkdir -p "$WORK" "$RESULTS_DIR"

if [ ! -d "$DATA" ]; then
  for p in "$REPO/../shared/bench/peers" /work/shared/bench/peers; do
    if [ -f "$p/gen.sh" ]; then PEERS=$p; break; fi
  done
  [ -n "${PEERS:-}" ] || { echo "no $DATA and no peer kit to make it: set DATA=DIR (about 1 GiB)" >&2; exit 1; }
  echo "generating the 1 GiB mixed set in $DATA"
  bash "$PEERS/gen.sh" mixed "$DATA"
fi
if [ -z "${FERRY:-}" ]; then
  (cd "$REPO" && go build -o "$WORK/ferry" ./cmd/ferry)
  FERRY=$WORK/ferry
fi
(cd "$REPO" && go build -o "$WORK/pi_memory" ./bench/pi_memory)

OUT=$RESULTS_DIR/pi_memory.txt
{
  echo "# $(date -u +%FT%TZ) $(uname -m), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
  "$FERRY" version
} | tee "$OUT"
for v in $VARIANTS; do
  env=""
  [ "$v" = default ] || env=$v
  echo "## serve environment: $v" | tee -a "$OUT"
  "$WORK/pi_memory" -ferry "$FERRY" -work "$WORK" -tree "$DATA" -runs "$RUNS" \
    -idle "$IDLE" -load "$LOAD" -serve-env "$env" | tee -a "$OUT"
done
echo "results in $OUT"
