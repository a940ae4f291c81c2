#!/usr/bin/env bash
# archive_delta.sh - the archive on the ~300 MB, 20,000-file website mirror of
# the peer kit (gen.sh site) and its 1 % update (gen.sh mutate), through the
# real binary and a stick folder, side by side with rsync --write-batch,
# casync and tar | zstd -3 on the same trees. Not part of `go test`.
#
#   bash bench/archive_delta.sh              # RUNS=3, warm cache
#   COLD=1 RUNS=3 bash bench/archive_delta.sh  # root: drops the page cache before each timed phase
#
# SITE=DIR and NEW=DIR reuse trees made earlier (NEW = a copy of SITE after
# gen.sh mutate NEW NEW.manifest); by default both are generated under
# $BENCH_TMP. PEERS names the kit (default ../shared/bench/peers next to the
# repository, or /work/shared/bench/peers). FERRY=BINARY skips the build.
#
# Bytes (deterministic, measured once):
#   ferry first sync   north: archive add SITE, archive send, usb sync -> stick
#                      (the bundles' bytes; the manifest travels in them)
#   ferry 1 % update   after river imported the stick and its receipts came
#                      back: archive add NEW --item, send (patch-from against
#                      version 1), usb sync -> the bytes added to the stick;
#                      river imports them and archive get must equal NEW (diff -r)
#   rsync batch        rsync -a --delete --no-whole-file --only-write-batch=B NEW/ SITE/
#                      raw and zstd -3 (it needs the receiver's old tree at the sender)
#   casync             16 KiB and 64 KiB chunks: new chunks (zstd) + the new .caidx,
#                      from a store primed with SITE (skipped if casync is missing)
#   tar | zstd -3      of SITE (the first sync's peer) and of the changed files
# Times (RUNS rounds, phases back to back; ratios per round):
#   tar_zstd_pack      tar -C SITE -cf - . | zstd -3 -T1 > file
#   ferry_add          archive add SITE into a fresh node (chunk store + manifest)
#   tar_zstd_unpack    zstd -d | tar -x of that file into a new folder
#   ferry_import       river: usb sync of the stick holding the first sync
#                      (verify, store chunks, rebuild and check every file)
#   ferry_get          river: archive get (plain files out)
# Results: $RESULTS_DIR/archive_delta.{txt,times}.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
RUNS=${RUNS:-3}
COLD=${COLD:-0}
export COLD
BENCH_TMP=${BENCH_TMP:-/tmp/ferrybench-archive}
RESULTS_DIR=${RESULTS_DIR:-/tmp/ferrybench-results}
if [ -z "${PEERS:-}" ]; then
  for p in "$REPO/../shared/bench/peers" /work/shared/bench/peers; do
    if [ -f "$p/common.sh" ]; then PEERS=$p; break; fi
  done
fi
[ -n "${PEERS:-}" ] || { echo "peer kit not found: set PEERS=.../bench/peers" >&2; exit 1; }
# shellcheck source=/dev/null
source "$PEERS/common.sh"
need go tar zstd rsync /usr/bin/time diff
HAVE_CASYNC=0
command -v casync >/dev/null 2>&1 && HAVE_CASYNC=1

W=$BENCH_TMP
rm -rf "$W" && mkdir -p "$W/tpl" "$RESULTS_DIR"
trap 'rm -rf "$W"' EXIT
T=$RESULTS_DIR/archive_delta.times
OUT=$RESULTS_DIR/archive_delta.txt
: >"$T"

if [ -z "${SITE:-}" ]; then
  SITE=$W/site NEW=$W/new
  log "generating the site (gen.sh site) and its 1 % update (gen.sh mutate)"
  gen_site "$SITE"
  cp -a "$SITE" "$NEW"
  mutate_site "$NEW" "$NEW.manifest"
fi
[ -f "$NEW.manifest" ] || { echo "$NEW.manifest missing (gen.sh mutate NEW NEW.manifest)" >&2; exit 1; }
TREE=$(file_bytes "$SITE"); NFILES=$(find "$SITE" -type f | wc -l)
IDEAL=$(awk '{s += $3} END {printf "%.0f", s}' "$NEW.manifest")

if [ -n "${FERRY:-}" ]; then F=$FERRY; else
  log "building ferry"
  (cd "$REPO" && CGO_ENABLED=0 go build -o "$W/ferry" ./cmd/ferry)
  F=$W/ferry
fi
"$F" init --data "$W/tpl/north" --name north >/dev/null
"$F" init --data "$W/tpl/river" --name river >/dev/null
"$F" card --data "$W/tpl/north" >"$W/north.card"
"$F" card --data "$W/tpl/river" >"$W/river.card"
"$F" peer add --data "$W/tpl/north" --as river - <"$W/river.card" >/dev/null
"$F" peer add --data "$W/tpl/river" --as north - <"$W/north.card" >/dev/null

jsonint() { sed -n "s/.*\"$1\":\([0-9]*\).*/\1/p" "$2"; }

for r in $(seq 1 "$RUNS"); do
  log "round $r/$RUNS"
  settle "$W/north" "$W/river" "$W/stick" "$W/untar" "$W/got" "$W/site.tar.zst"
  cp -a "$W/tpl/north" "$W/north" && cp -a "$W/tpl/river" "$W/river" && mkdir -p "$W/stick" "$W/untar" && sync
  tm "$T" tar_zstd_pack "$r" "tar -C '$SITE' -cf - . | zstd -3 -T1 -q -c > '$W/site.tar.zst' && sync"
  settle
  tm "$T" ferry_add "$r" "'$F' archive add --data '$W/north' '$SITE' --title mirror > '$W/add.out' && sync"
  ID=$(awk '/^added/ {print $2; exit}' "$W/add.out")
  "$F" archive send --data "$W/north" "$ID" --to river --json >"$W/send1.json"
  "$F" usb sync --data "$W/north" "$W/stick" >/dev/null
  FIRST_STICK=$(file_bytes "$W/stick")
  settle
  tm "$T" tar_zstd_unpack "$r" "zstd -d -q -c '$W/site.tar.zst' | tar -C '$W/untar' -xf - && sync"
  settle
  tm "$T" ferry_import "$r" "'$F' usb sync --data '$W/river' '$W/stick' > '$W/import.out' && sync"
  settle
  tm "$T" ferry_get "$r" "'$F' archive get --data '$W/river' '$ID' --out '$W/got' > /dev/null && sync"
  if [ "$r" = 1 ]; then
    diff -r -q "$SITE" "$W/got" >/dev/null && log "first sync: river's copy is identical" || { log "FIRST SYNC MISMATCH"; exit 1; }
    # The 1 % update: river's receipts go back, then north sends the delta.
    "$F" usb sync --data "$W/north" "$W/stick" >/dev/null
    "$F" archive add --data "$W/north" "$NEW" --item "$ID" >"$W/add2.out"
    "$F" archive send --data "$W/north" "$ID" --to river --json >"$W/send2.json"
    BEFORE=$(file_bytes "$W/stick")
    "$F" usb sync --data "$W/north" "$W/stick" >/dev/null
    UPDATE_STICK=$(( $(file_bytes "$W/stick") - BEFORE ))
    "$F" usb sync --data "$W/river" "$W/stick" >/dev/null
    rm -rf "$W/got2"
    "$F" archive get --data "$W/river" "$ID" --out "$W/got2" >/dev/null
    diff -r -q "$NEW" "$W/got2" >/dev/null && log "update: river's copy is identical" || { log "UPDATE MISMATCH"; exit 1; }
    rm -rf "$W/got2"
  fi
done
FIRST_BUNDLES=$(jsonint BundleBytes "$W/send1.json")
UPDATE_BUNDLES=$(jsonint BundleBytes "$W/send2.json")
SITE_TZ=$(stat -c %s "$W/site.tar.zst")

log "peers: rsync batch, tar | zstd of the changed files"
rm -rf "$W/north" "$W/river" "$W/stick" "$W/untar" "$W/got"
rsync -a --delete --no-whole-file --only-write-batch="$W/batch" "$NEW/" "$SITE/" >/dev/null
BATCH=$(stat -c %s "$W/batch")
BATCH_Z=$(zstd -3 -q -c "$W/batch" | wc -c)
awk '$1 != "delete" {print $2}' "$NEW.manifest" >"$W/changed.list"
TZ_CHANGED=$(tar -C "$NEW" -cf - -T "$W/changed.list" | zstd -3 -T1 -q -c | wc -c)
NEW_TZ=$(tar -C "$NEW" -cf - . | zstd -3 -T1 -q -c | wc -c)
C16=- C64=-
if [ "$HAVE_CASYNC" = 1 ]; then
  log "peers: casync"
  casync_bytes() { # CHUNKSIZE-ARGS... -> new chunk bytes + index bytes
    local st=$W/cas
    rm -rf "$st" "$W/old.caidx" "$W/new.caidx"
    casync make --store="$st" --compression=zstd "$@" "$W/old.caidx" "$SITE" >/dev/null
    find "$st" -type f -printf '%P %s\n' | LC_ALL=C sort >"$st.before"
    casync make --store="$st" --compression=zstd "$@" "$W/new.caidx" "$NEW" >/dev/null
    local chunks
    chunks=$(find "$st" -type f -printf '%P %s\n' | LC_ALL=C sort | LC_ALL=C comm -13 "$st.before" - | awk '{s += $2} END {printf "%.0f", s}')
    echo $((chunks + $(stat -c %s "$W/new.caidx")))
    rm -rf "$st"
  }
  C16=$(casync_bytes --chunk-size=16384)
  C64=$(casync_bytes)
fi

pct() { awk -v a="$1" -v b="$TREE" 'BEGIN { if (a == "-") print "-"; else printf "%.3f %%", 100 * a / b }'; }
row() { printf '%-62s %12s  %10s\n' "$1" "$2" "$(pct "$2")"; }
{
  echo "# archive_delta  $(date -u +%FT%TZ)  $(nproc) cores  load $(cut -d' ' -f1-3 /proc/loadavg)  COLD=$COLD  RUNS=$RUNS"
  echo "# $(go version | cut -d' ' -f3); $(zstd -V | head -1); $(rsync --version | head -1 | awk '{print $1, $2, $3}'); casync $( [ "$HAVE_CASYNC" = 1 ] && casync --version | awk '{print $2}' || echo 'not installed')"
  echo "# tree: $TREE bytes in $NFILES files ($SITE); update: $(awk '{c[$1]++} END {for (k in c) printf "%s=%d ", k, c[k]}' "$NEW.manifest")"
  echo "# ferry first send: $(cat "$W/send1.json")"
  echo "# ferry update send: $(cat "$W/send2.json")"
  printf '%-62s %12s  %10s\n' "1 % update: what travels" bytes "% of tree"
  row "ideal: the new content alone (edits + new files)" "$IDEAL"
  row "ferry: delta bundles (patch-from against version 1)" "$UPDATE_BUNDLES"
  row "ferry: bytes added to the stick by the update" "$UPDATE_STICK"
  row "rsync --write-batch, raw (needs the old tree at the sender)" "$BATCH"
  row "rsync --write-batch, zstd -3" "$BATCH_Z"
  row "casync 16 KiB chunks: new chunks + index" "$C16"
  row "casync 64 KiB chunks: new chunks + index" "$C64"
  row "tar | zstd -3 of the changed and new files" "$TZ_CHANGED"
  row "tar | zstd -3 of the whole new tree" "$NEW_TZ"
  echo
  printf '%-62s %12s  %10s\n' "first sync of the whole mirror" bytes "x tar|zstd"
  awk -v a="$SITE_TZ" -v b="$FIRST_BUNDLES" -v c="$FIRST_STICK" 'BEGIN {
    printf "%-62s %12d  %10.3f\n", "tar | zstd -3 -T1 of the tree", a, 1
    printf "%-62s %12d  %10.3f\n", "ferry: bundles of archive send (chunks + manifest)", b, b / a
    printf "%-62s %12d  %10.3f\n", "ferry: the stick after usb sync (bundles + inventory)", c, c / a }'
  echo
  echo "# times (s); ratio = phase / its tar|zstd peer of the same round (>1: slower)"
  summarize "$T" "$TREE" tar_zstd_pack tar_zstd_pack ferry_add
  summarize "$T" "$TREE" tar_zstd_unpack tar_zstd_unpack ferry_import ferry_get | tail -n +2
} | tee "$OUT"
log "results: $OUT (raw times: $T)"
