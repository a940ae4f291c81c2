#!/usr/bin/env bash
# usb_vs_peers.sh - ferry's stick export and import of a 1 GiB data set (the
# archive path) against cp + sync, tar | zstd -3 | age and NNCP, same data,
# same run.
#
#   bash bench/usb_vs_peers.sh                # RUNS=1, warm cache
#   COLD=1 RUNS=5 bash bench/usb_vs_peers.sh  # figures to compare (root: drops the page cache)
#
# Data: the peer kit's deterministic "mixed" set (1 GiB: 32 x 16 MiB random
# "media" + 8192 x 64 KiB HTML-like pages). DATA=DIR uses DIR (default
# /tmp/ferrybench/mixed1g, made with the kit's gen.sh when missing). PEERS
# names the kit (default ../shared/bench/peers next to the repository, or
# /work/shared/bench/peers); its common.sh gives tm, settle, summarize and
# nncp_pair. FERRY=BINARY skips `go build ./cmd/ferry`.
#
# Phases of one round, back to back, each under /usr/bin/time
# (wall user sys maxrss), each ending in sync; the "stick" is a folder:
#   cp_out        cp -r DATA -> stick/data                          (export baseline)
#   pipeline_out  tar -c | zstd -3 -T1 | age -r R -> stick/data.tar.zst.age
#   ferry_out     north: archive add DATA + archive send ITEM --to river
#                 + usb sync stick     (sub-phases ferry_add, ferry_send, ferry_usb_out)
#   files_out     north_f: files send DATA --to river + usb sync stick_f
#                 (ferry's file transfer: no archive copy; sub-phases
#                 files_send, files_usb_out)
#   nncp_out      alice: nncp-file DATA bob:data + nncp-xfer -mkdir stick/nncp
#                 (sub-phases nncp_file, nncp_xfer_tx)
#   cp_in         cp -r stick/data -> dest                          (import baseline)
#   pipeline_in   age -d | zstd -d | tar -x -> dest
#   ferry_in      river: usb sync stick + archive get ITEM --out dest
#                 (sub-phases ferry_usb_in, ferry_get)
#   files_in      river_f: usb sync stick_f (files land, verified, under
#                 river_f/received/north/DATA's name)
#   nncp_in       bob: nncp-xfer -rx + nncp-toss + tar -x -> dest
#                 (sub-phases nncp_xfer_rx, nncp_toss, nncp_untar)
# north and river are initialised once (ferry init, cards exchanged with
# ferry peer add) and copied afresh into new data folders every round, so each
# round's export starts from empty nodes. Round 1 checks every import against
# DATA with diff -r. Ratios are per round (phase wall / cp wall of the same
# round), medians quoted. Results: $RESULTS_DIR/usb_vs_peers.{txt,times}.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
RUNS=${RUNS:-1}
COLD=${COLD:-0}
export COLD
BENCH_TMP=${BENCH_TMP:-/tmp/ferrybench-usb}
RESULTS_DIR=${RESULTS_DIR:-/tmp/ferrybench-results}
DATA=${DATA:-/tmp/ferrybench/mixed1g}
if [ -z "${PEERS:-}" ]; then
  for p in "$REPO/../shared/bench/peers" /work/shared/bench/peers; do
    if [ -f "$p/common.sh" ]; then PEERS=$p; break; fi
  done
fi
[ -n "${PEERS:-}" ] || { echo "peer kit not found: set PEERS=.../bench/peers" >&2; exit 1; }
# shellcheck source=/dev/null
source "$PEERS/common.sh"
need go tar zstd age age-keygen nncp-cfgnew nncp-file nncp-xfer nncp-toss /usr/bin/time

W=$BENCH_TMP
rm -rf "$W" && mkdir -p "$W/stick" "$W/tpl" "$RESULTS_DIR"
trap 'rm -rf "$W"' EXIT
T=$RESULTS_DIR/usb_vs_peers.times
OUT=$RESULTS_DIR/usb_vs_peers.txt
: >"$T"
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)

if [ ! -d "$DATA" ]; then
  log "generating the 1 GiB mixed set in $DATA"
  bash "$PEERS/gen.sh" mixed "$DATA"
fi
BYTES=$(file_bytes "$DATA")
NFILES=$(find "$DATA" -type f | wc -l)

if [ -n "${FERRY:-}" ]; then F=$FERRY; else
  log "building ferry"
  (cd "$REPO" && go build -o "$W/ferry" ./cmd/ferry)
  F=$W/ferry
fi

# ferry nodes, set up once; each round works on fresh copies.
"$F" init --data "$W/tpl/north" --name north >/dev/null
"$F" init --data "$W/tpl/river" --name river >/dev/null
"$F" card --data "$W/tpl/north" >"$W/north.card"
"$F" card --data "$W/tpl/river" >"$W/river.card"
"$F" peer add --data "$W/tpl/north" --as river - <"$W/river.card" >/dev/null
"$F" peer add --data "$W/tpl/river" --as north - <"$W/north.card" >/dev/null

age-keygen -o "$W/key.txt" 2>/dev/null
RCPT=$(age-keygen -y "$W/key.txt")
nncp_pair "$W/n"
A="-cfg $W/n/alice.hjson -quiet"
B="-cfg $W/n/bob.hjson -quiet"
S=$W/stick
mkdir -p "$S/nncp"

# sub LABEL ROUND 'command': a sub-phase timed inside a phase (same $T).
cat >"$W/sub.sh" <<EOF
sub() { /usr/bin/time -a -o '$T' -f "\$1 \$2 %e %U %S %M" bash -c "set -euo pipefail; \$3"; }
EOF

# The timed phases; ROUND is $1.
ferry_out() {
  tm "$T" ferry_out "$1" "source '$W/sub.sh'
    sub ferry_add $1 \"'$F' archive add --data '$W/north' '$DATA' --title mixed1g > '$W/add.out'\"
    ID=\$(awk '/^added/ {print \$2; exit}' '$W/add.out'); [ -n \"\$ID\" ]; echo \$ID > '$W/item'
    sub ferry_send $1 \"'$F' archive send --data '$W/north' \$ID --to river > '$W/send.out'\"
    sub ferry_usb_out $1 \"'$F' usb sync --data '$W/north' '$S' > '$W/usb_out.out'\"
    sync"
}
ferry_in() {
  tm "$T" ferry_in "$1" "source '$W/sub.sh'
    sub ferry_usb_in $1 \"'$F' usb sync --data '$W/river' '$S' > '$W/usb_in.out'\"
    sub ferry_get $1 \"'$F' archive get --data '$W/river' \$(cat '$W/item') --out '$W/dest' > '$W/get.out'\"
    sync"
}
# ferry's file transfer: the folder goes straight into bundles (no archive
# copy) and arrives as plain files under river's received folder.
files_out() {
  tm "$T" files_out "$1" "source '$W/sub.sh'
    sub files_send $1 \"'$F' files send --data '$W/north_f' --to river '$DATA' > '$W/files.out'\"
    sub files_usb_out $1 \"'$F' usb sync --data '$W/north_f' '$W/stick_f' > /dev/null\"
    sync"
}
files_in() {
  tm "$T" files_in "$1" "'$F' usb sync --data '$W/river_f' '$W/stick_f' > /dev/null && sync"
}
nncp_out() {
  tm "$T" nncp_out "$1" "source '$W/sub.sh'
    sub nncp_file $1 \"nncp-file $A '$DATA' bob:data\"
    sub nncp_xfer_tx $1 \"nncp-xfer $A -mkdir '$S/nncp'\"
    sync"
}
nncp_in() {
  tm "$T" nncp_in "$1" "source '$W/sub.sh'
    sub nncp_xfer_rx $1 \"nncp-xfer $B -rx '$S/nncp'\"
    sub nncp_toss $1 \"nncp-toss $B\"
    sub nncp_untar $1 \"mkdir '$W/dest' && tar -C '$W/dest' -xf '$W/n/bob/incoming/data'\"
    sync"
}
# phase_ok NAME: run a phase; a failing peer phase is recorded, not fatal.
FAILED=""
phase_ok() { if "$@"; then return 0; fi; log "PHASE FAILED: $*"; FAILED="$FAILED $1/r$2"; return 1; }
# check NAME DIR: round 1 compares an import with the data.
check() {
  if diff -r -q "$DATA" "$2" >/dev/null; then log "$1 import: identical"; else log "$1 import: MISMATCH"; FAILED="$FAILED $1-mismatch"; fi
}

for r in $(seq 1 "$RUNS"); do
  log "round $r/$RUNS"
  settle "$S/data" "$S/data.tar.zst.age" "$S/FERRY" "$S/nncp"/* "$W/north" "$W/river" "$W/dest" "$W/n/bob/incoming/data" \
    "$W/north_f" "$W/river_f" "$W/stick_f"
  cp -a "$W/tpl/north" "$W/north" && cp -a "$W/tpl/river" "$W/river" && sync
  cp -a "$W/tpl/north" "$W/north_f" && cp -a "$W/tpl/river" "$W/river_f" && mkdir -p "$W/stick_f" && sync

  log "cp_out"
  tm "$T" cp_out "$r" "cp -r '$DATA' '$S/data' && sync"
  STICK_CP=$(file_bytes "$S/data")
  settle
  log "pipeline_out"
  tm "$T" pipeline_out "$r" "tar -C '$DATA' -cf - . | zstd -3 -T1 -q -c | age -r '$RCPT' > '$S/data.tar.zst.age' && sync"
  STICK_PIPE=$(stat -c %s "$S/data.tar.zst.age")
  settle
  log "ferry_out"
  phase_ok ferry_out "$r" || true
  STICK_FERRY=$(file_bytes "$S/FERRY" 2>/dev/null || echo 0)
  STICK_FERRY_BUNDLES=$(file_bytes "$S/FERRY/bundles" -name '*.bundle' 2>/dev/null || echo 0)
  STICK_FERRY_N=$(find "$S/FERRY/bundles" -name '*.bundle' 2>/dev/null | wc -l)
  settle
  log "files_out"
  phase_ok files_out "$r" || true
  STICK_FILES=$(file_bytes "$W/stick_f/FERRY" 2>/dev/null || echo 0)
  settle
  log "nncp_out"
  phase_ok nncp_out "$r" || true
  STICK_NNCP=$(file_bytes "$S/nncp")
  settle

  log "cp_in"
  tm "$T" cp_in "$r" "cp -r '$S/data' '$W/dest' && sync"
  settle "$W/dest"
  log "pipeline_in"
  tm "$T" pipeline_in "$r" "mkdir '$W/dest' && age -d -i '$W/key.txt' '$S/data.tar.zst.age' | zstd -d -q -c | tar -C '$W/dest' -xf - && sync"
  if [ "$r" = 1 ]; then check pipeline "$W/dest"; fi
  settle "$W/dest"
  log "ferry_in"
  if phase_ok ferry_in "$r" && [ "$r" = 1 ]; then check ferry "$W/dest"; fi
  settle "$W/dest"
  log "files_in"
  if phase_ok files_in "$r" && [ "$r" = 1 ]; then check files "$W/river_f/received/north/$(basename "$DATA")"; fi
  settle
  log "nncp_in"
  # nncp-file of a folder archives it under its own base name
  if phase_ok nncp_in "$r" && [ "$r" = 1 ]; then check nncp "$W/dest/$(basename "$DATA")"; fi
done

{
  echo "# usb_vs_peers  $(date -u +%FT%TZ)  $(nproc) cores  $(uname -r)  load at start $LOAD_START, at end $(cut -d' ' -f1-3 /proc/loadavg)  COLD=$COLD  RUNS=$RUNS"
  echo "# $(go version | cut -d' ' -f3); $(zstd -V | head -1); age $(age --version); $(nncp-file -version 2>&1 | head -1)"
  echo "# data: $BYTES bytes in $NFILES files ($DATA); MB/s = 1e6 bytes / median wall"
  awk -v b="$BYTES" -v cp="$STICK_CP" -v p="$STICK_PIPE" -v f="$STICK_FERRY" -v fb="$STICK_FERRY_BUNDLES" -v fn="$STICK_FERRY_N" -v n="$STICK_NNCP" -v ff="$STICK_FILES" 'BEGIN {
    printf "# stick bytes (last round): cp %d (%.4f)  pipeline %d (%.4f)  ferry archive %d (%.4f; %d bundle files %d)  ferry files %d (%.4f)  nncp %d (%.4f)\n",
      cp, cp / b, p, p / b, f, f / b, fn, fb, ff, ff / b, n, n / b }'
  echo "# ferry archive: $(tr '\n' ' ' <"$W/send.out" 2>/dev/null)"
  echo "# ferry files: $(tr '\n' ' ' <"$W/files.out" 2>/dev/null)"
  [ -z "$FAILED" ] || echo "# FAILED:$FAILED"
  summarize "$T" "$BYTES" cp_out cp_out pipeline_out files_out files_send files_usb_out ferry_out ferry_add ferry_send ferry_usb_out nncp_out nncp_file nncp_xfer_tx
  summarize "$T" "$BYTES" cp_in cp_in pipeline_in files_in ferry_in ferry_usb_in ferry_get nncp_in nncp_xfer_rx nncp_toss nncp_untar | tail -n +2
} | tee "$OUT"
log "results: $OUT (raw times: $T)"
