#!/usr/bin/env bash
# Fuzz/run.sh: builds the libFuzzer targets of Fuzz/Package.swift (-sanitize=fuzzer,address, debug, so
# Swift's own bounds and overflow checks trap too) in .build-fuzz, makes a seed corpus (small files from
# ../shared plus the tiny synthetic seeds of make_seeds.py) in .fuzz/seeds, and runs each target for
# FUZZ_SECONDS seconds, one after another, each one process (no -jobs/-workers: one core). Inputs that crash, hang or run out of memory
# are written to .fuzz/artifacts/<target>/; the grown corpus stays in .fuzz/corpus/<target>/ for the
# next run. Usage: Fuzz/run.sh [target ...] (default: all five); FUZZ_ARGS adds libFuzzer flags (e.g.
# "-max_len=16384"). Exit status 1 when a target failed.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SECONDS_EACH=${FUZZ_SECONDS:-60}
SHARED=${FUZZ_SHARED:-../shared}
SCRATCH=$ROOT/.build-fuzz
WORK=$ROOT/.fuzz
TARGETS=("$@")
[ ${#TARGETS[@]} -eq 0 ] && TARGETS=(FuzzTorchZip FuzzLegacyTorch FuzzSafeTensors FuzzPNG FuzzJPEG)

# (gold warns once per ASan helper that it cannot export a local symbol: harmless, filtered.)
swift build --package-path Fuzz --scratch-path "$SCRATCH" -c debug \
  -Xswiftc -sanitize=fuzzer,address -Xswiftc -enable-testing 2>&1 | { grep -v "Cannot export local symbol" || true; }
BIN=$(swift build --package-path Fuzz --scratch-path "$SCRATCH" -c debug --show-bin-path)

# Seeds: files of at most 5 MB from the shared fixtures, by format, and the synthetic ones.
mkdir -p "$WORK/seeds"
python3 Fuzz/make_seeds.py "$WORK/seeds"
copy() {  # copy <dir> <find pattern...>
  local dir=$WORK/seeds/$1; shift; mkdir -p "$dir"
  [ -d "$SHARED" ] && find "$SHARED" -type f -size -5M \( "$@" \) -exec cp -f {} "$dir/" \; || true
}
copy torch_zip -name '*.pth' ! -name '*legacy*'
copy legacy -name '*legacy*.pth'
copy safetensors -name '*.safetensors'
copy png -name '*.png'
copy jpeg -iname '*.jpg' -o -iname '*.jpeg'
seeds_of() {
  case $1 in
    FuzzTorchZip) echo torch_zip ;; FuzzLegacyTorch) echo legacy ;; FuzzSafeTensors) echo safetensors ;;
    FuzzPNG) echo png ;; FuzzJPEG) echo jpeg ;; *) echo "unknown target $1" >&2; exit 2 ;;
  esac
}

status=0
for t in "${TARGETS[@]}"; do
  corpus=$WORK/corpus/$t; artifacts=$WORK/artifacts/$t
  mkdir -p "$corpus" "$artifacts"
  echo "== $t: ${SECONDS_EACH} s (corpus $corpus, seeds $WORK/seeds/$(seeds_of "$t"))"
  # Regression inputs kept in the tests are seeds too, so a fix that regresses is found at once.
  extra=()
  for d in Tests/CheckpointTests/Fuzz Tests/ImagingTests/Fuzz; do [ -d "$d" ] && extra+=("$ROOT/$d"); done
  if ! "$BIN/$t" "$corpus" "$WORK/seeds/$(seeds_of "$t")" "${extra[@]}" \
      -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 \
      -print_final_stats=1 -artifact_prefix="$artifacts/" ${FUZZ_ARGS:-} 2> "$WORK/$t.log"; then
    echo "   $t FAILED: see $WORK/$t.log and $artifacts/"; tail -40 "$WORK/$t.log"; status=1
  else
    grep -E "^(stat::number_of_executed_units|stat::peak_rss_mb|Done)" "$WORK/$t.log" | sed 's/^/   /' || true
    tail -1 "$WORK/$t.log" | sed 's/^/   /'
  fi
done
exit $status
