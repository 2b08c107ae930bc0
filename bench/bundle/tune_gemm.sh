#!/bin/bash
# Sweeps the GEMM blocking (STM_GEMM_KC x STM_GEMM_MC) on this host with an unpacked bundle: for each
# setting, one `bench` process per preset (stage-4 ERF ms per image, and the rate of the ERF's six
# longest product shapes, each timed alone). Settings change no bit, only the speed, so the best one
# can become a kernel's default for such a CPU. Usage (from the bundle's folder):
#   ./tune_gemm.sh [threads] [preset ...]      defaults: 2 threads, unified_convnext_tiny unified_swin_tiny
# KCS and MCS (space-separated) replace the values swept; 0 is the kernel's own. Needs python3.
root=$(cd "$(dirname "$0")" && pwd)
threads=${1:-2}; shift || true
presets=${*:-unified_convnext_tiny unified_swin_tiny}
KCS=${KCS:-0 96 128 256 384}
MCS=${MCS:-0 48 192 384}
out=$(mktemp -d)
grep -m1 'model name' /proc/cpuinfo
for p in $presets; do
  for kc in $KCS; do for mc in $MCS; do
    env $([ "$kc" != 0 ] && echo STM_GEMM_KC=$kc) $([ "$mc" != 0 ] && echo STM_GEMM_MC=$mc) \
      "$root/run" bench --threads "$threads" --presets "$p" --repeats 3 --large-batch 2 --json "$out/r.json" >/dev/null 2>"$out/err" \
      || { echo "$p kc=$kc mc=$mc: failed: $(tail -1 "$out/err")"; continue; }
    python3 - "$out/r.json" "$p" "$kc" "$mc" <<'PY'
import json, sys
d = json.load(open(sys.argv[1])); r = d["presets"][0]
shapes = " ".join("%s%s %dx%dx%d %.0f" % ("T" if s["shape"]["transA"] else "N", "T" if s["shape"]["transB"] else "N",
                  s["shape"]["m"], s["shape"]["n"], s["shape"]["k"], s["ours_gflops"]) for s in r["gemm_shapes"][:6])
print("%s kc=%s mc=%s  ERF s4 %.1f ms/img  peak %.0f  | %s" % (sys.argv[2], sys.argv[3], sys.argv[4],
      r["erf_stage4_ms_per_image"], r["fma_peak_gflops"], shapes))
PY
  done; done
done
rm -rf "$out"
