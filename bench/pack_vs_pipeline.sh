#!/usr/bin/env bash
# pack_vs_pipeline.sh - ferry pack/open against cp and tar | zstd -3 -T1 | age, same data, same run.
#
#   bash bench/pack_vs_pipeline.sh            # RUNS=3 rounds on 256 MiB, then 1 GiB once for peak RSS
#   COLD=1 RUNS=5 bash bench/pack_vs_pipeline.sh
#
# Data: the peer kit's deterministic "mixed" set (half incompressible media,
# half HTML-like pages), made by its gen.sh under $BENCH_TMP: 1 GiB, and a
# 256 MiB subset of it (8 of the 32 media files, 2048 of the 8192 pages,
# hard links). PEERS names the kit (default: ../shared/bench/peers next to
# the repository, or /work/shared/bench/peers); DATA_1G=DIR skips generation
# and uses DIR instead (any tree; the subset is then its first 8 media files
# and pages/s0..s7 if present, else the whole tree).
#
# Phases of one round, run back to back (the order of pipeline and ferry
# flips every other round), each under /usr/bin/time, each ending in sync:
#   cp_out         cp -r data -> stick                    (baseline for packing)
#   pipeline_pack  tar -c | zstd -3 -T1 | age -r R -> stick/data.tar.zst.age
#   ferry_pack     packbench pack -r R -> stick/data.bundle
#   cp_in          cp -r stick -> dest                    (baseline for opening)
#   pipeline_open  age -d | zstd -d | tar -x -> dest
#   ferry_open     packbench open -> dest
# Ratios are taken round by round (phase wall / baseline wall of the same
# round) and their median quoted: the machine's drift cancels out better
# than in absolute times. COLD=1 drops the page cache before every phase
# (root only). Results: $RESULTS_DIR/pack_vs_pipeline.{txt,times}.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
RUNS=${RUNS:-3}
COLD=${COLD:-0}
BENCH_TMP=${BENCH_TMP:-/tmp/ferrybench-run}
RESULTS_DIR=${RESULTS_DIR:-/tmp/ferrybench-results}
if [ -z "${PEERS:-}" ]; then
  for p in "$REPO/../shared/bench/peers" /work/shared/bench/peers; do
    if [ -f "$p/gen.sh" ]; then PEERS=$p; break; fi
  done
fi

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
for t in go tar zstd age age-keygen /usr/bin/time; do
  command -v "$t" >/dev/null || { echo "missing $t: apt-get install -y tar zstd age time" >&2; exit 1; }
done

W=$BENCH_TMP
rm -rf "$W" && mkdir -p "$W/stick" "$RESULTS_DIR"
trap 'rm -rf "$W"' EXIT
T=$RESULTS_DIR/pack_vs_pipeline.times
OUT=$RESULTS_DIR/pack_vs_pipeline.txt
: >"$T"

# tm LABEL ROUND 'command': wall, user, sys seconds and peak RSS (KiB) of
# the command's largest process, appended to $T.
tm() { /usr/bin/time -a -o "$T" -f "$1 $2 %e %U %S %M" bash -c "set -euo pipefail; $3"; }

# settle PATH...: remove, flush dirty pages, and with COLD=1 drop the page cache.
settle() {
  rm -rf "$@"
  sync
  if [ "$COLD" = 1 ]; then echo 3 >/proc/sys/vm/drop_caches; fi
}

file_bytes() { find "$1" -type f -printf '%s\n' | awk '{s += $1} END {printf "%.0f\n", s}'; }

# summarize BYTES BASELINE LABEL...: per label, runs, median/min/max wall,
# median CPU, MB/s at the median wall, peak RSS, and the median (min-max)
# of the per-round ratio wall / wall of BASELINE.
summarize() {
  local bytes=$1 base=$2 l
  shift 2
  printf '%-14s %4s %7s %7s %7s %7s %7s %8s %17s\n' phase runs med_s min_s max_s cpu_s MB/s rss_MiB "x$base(med,min-max)"
  for l in "$@"; do
    awk -v L="$l" -v B="$base" -v bytes="$bytes" '
      function sort(a, n,   i, j, t) { for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t } }
      function med(a, n) { sort(a, n); return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 }
      $1 == B { bw[$2] = $3 }
      $1 == L { n++; w[n] = $3; c[n] = $4 + $5; r[n] = $2; if ($6 > rss) rss = $6 }
      END {
        if (!n) { printf "%-14s (no runs)\n", L; exit }
        k = 0
        for (i = 1; i <= n; i++) if (bw[r[i]] > 0) q[++k] = w[i] / bw[r[i]]
        mw = med(w, n); mc = med(c, n)
        rat = k ? sprintf("%.2f(%.2f-%.2f)", med(q, k), q[1], q[k]) : "-"
        printf "%-14s %4d %7.2f %7.2f %7.2f %7.2f %7.0f %8.1f %17s\n", L, n, mw, w[1], w[n], mc, bytes / 1e6 / mw, rss / 1024, rat
      }' "$T"
  done
}

# ratios A B: the per-round ratios wall(A) / wall(B) and their median.
ratios() {
  awk -v A="$1" -v B="$2" '
    $1 == A { a[$2] = $3; if ($2 > last) last = $2 } $1 == B { b[$2] = $3 }
    END {
      for (r = 1; r <= last; r++) if (b[r] > 0) { q[++n] = a[r] / b[r]; line = line sprintf(" r%d=%.2f", r, a[r] / b[r]) }
      for (i = 2; i <= n; i++) { t = q[i]; for (j = i - 1; j >= 1 && q[j] > t; j--) q[j + 1] = q[j]; q[j + 1] = t }
      m = (n % 2) ? q[(n + 1) / 2] : (q[n / 2] + q[n / 2 + 1]) / 2
      printf "%s / %s per round:%s  median %.2f\n", A, B, line, m
    }' "$T"
}

log "building packbench"
(cd "$REPO" && go build -o "$W/packbench" ./bench/cmd/packbench)
PB=$W/packbench

if [ -n "${DATA_1G:-}" ]; then
  BIG=$DATA_1G
else
  [ -n "${PEERS:-}" ] || { echo "no peer kit found: set PEERS=.../bench/peers or DATA_1G=DIR" >&2; exit 1; }
  BIG=$W/mixed1g
  log "generating the 1 GiB mixed set with $PEERS/gen.sh"
  bash "$PEERS/gen.sh" mixed "$BIG"
fi
# link SRC... DST: hard links where the file system allows, copies elsewhere.
link() { cp -rl "$@" 2>/dev/null || cp -r "$@"; }
SRC=$W/mixed256
if [ -d "$BIG/media" ] && [ -d "$BIG/pages/s7" ]; then
  mkdir -p "$SRC/media" "$SRC/pages"
  mapfile -t media < <(find "$BIG/media" -maxdepth 1 -type f | LC_ALL=C sort | head -8)
  link "${media[@]}" "$SRC/media/"
  for s in 0 1 2 3 4 5 6 7; do link "$BIG/pages/s$s" "$SRC/pages/"; done
else
  mkdir -p "$SRC" && link "$BIG/." "$SRC"
fi
BYTES=$(file_bytes "$SRC")
BIGBYTES=$(file_bytes "$BIG")
age-keygen -o "$W/key.txt" 2>/dev/null
RCPT=$(age-keygen -y "$W/key.txt")
S=$W/stick

# The four timed phases: LABEL ROUND [DIR].
pipeline_pack() { tm "$1" "$2" "tar -C '$3' -cf - . | zstd -3 -T1 -q -c | age -r '$RCPT' > '$S/data.tar.zst.age' && sync"; }
ferry_pack() { tm "$1" "$2" "'$PB' pack -r '$RCPT' '$3' '$S/data.bundle' >/dev/null && sync"; }
pipeline_open() { tm "$1" "$2" "mkdir '$W/dest' && age -d -i '$W/key.txt' '$S/data.tar.zst.age' | zstd -d -q -c | tar -C '$W/dest' -xf - && sync"; }
ferry_open() { tm "$1" "$2" "'$PB' open -i '$W/key.txt' '$S/data.bundle' '$W/dest' && sync"; }

for r in $(seq 1 "$RUNS"); do
  log "round $r/$RUNS (256 MiB)"
  if ((r % 2)); then order="pipeline ferry"; else order="ferry pipeline"; fi
  settle "$S/data"
  tm cp_out "$r" "cp -r '$SRC' '$S/data' && sync"
  for who in $order; do
    if [ "$who" = pipeline ]; then settle "$S/data.tar.zst.age"; else settle "$S/data.bundle"; fi
    "${who}_pack" "${who}_pack" "$r" "$SRC"
  done
  settle "$W/dest"
  tm cp_in "$r" "cp -r '$S/data' '$W/dest' && sync"
  for who in $order; do
    settle "$W/dest"
    "${who}_open" "${who}_open" "$r"
    if [ "$r" = 1 ]; then
      diff -r -q "$SRC" "$W/dest" >/dev/null && log "$who open: identical" || { log "$who open: MISMATCH"; exit 1; }
    fi
  done
done
PIPE=$(stat -c %s "$S/data.tar.zst.age")
FERRY=$(stat -c %s "$S/data.bundle")

log "1 GiB: peak memory"
settle "$S/data" "$W/dest" "$S/data.tar.zst.age" "$S/data.bundle"
pipeline_pack pipeline_pack_1g 1 "$BIG"
settle "$S/data.bundle"
ferry_pack ferry_pack_1g 1 "$BIG"
settle
pipeline_open pipeline_open_1g 1
settle "$W/dest"
ferry_open ferry_open_1g 1
diff -r -q "$BIG" "$W/dest" >/dev/null && log "1 GiB ferry open: identical" || { log "1 GiB ferry open: MISMATCH"; exit 1; }
BIGPIPE=$(stat -c %s "$S/data.tar.zst.age")
BIGFERRY=$(stat -c %s "$S/data.bundle")

{
  echo "# pack_vs_pipeline  $(date -u +%FT%TZ)  $(nproc) cores  $(uname -r)  load $(cut -d' ' -f1-3 /proc/loadavg)  COLD=$COLD"
  echo "# $(go version | cut -d' ' -f3); $(zstd -V | head -1); age $(age --version); $(tar --version | head -1)"
  echo "# 256 MiB set: $BYTES bytes in $(find "$SRC" -type f | wc -l) files; MB/s = 1e6 bytes / median wall"
  echo "# bundle bytes: pipeline $PIPE ($(awk -v a="$PIPE" -v b="$BYTES" 'BEGIN{printf "%.4f", a/b}') of data)  ferry $FERRY ($(awk -v a="$FERRY" -v b="$BYTES" 'BEGIN{printf "%.4f", a/b}') of data)  ferry/pipeline $(awk -v a="$FERRY" -v b="$PIPE" 'BEGIN{printf "%.4f", a/b}')"
  summarize "$BYTES" cp_out cp_out pipeline_pack ferry_pack
  summarize "$BYTES" cp_in cp_in pipeline_open ferry_open | tail -n +2
  ratios ferry_pack pipeline_pack
  ratios ferry_open pipeline_open
  echo "# 1 GiB set: $BIGBYTES bytes, one run each; bundle bytes: pipeline $BIGPIPE  ferry $BIGFERRY  ferry/pipeline $(awk -v a="$BIGFERRY" -v b="$BIGPIPE" 'BEGIN{printf "%.4f", a/b}')"
  summarize "$BIGBYTES" none pipeline_pack_1g ferry_pack_1g pipeline_open_1g ferry_open_1g
} | tee "$OUT"
log "results: $OUT (raw times: $T)"
