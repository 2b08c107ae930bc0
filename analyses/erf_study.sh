#!/usr/bin/env bash
# Reproduces the study's ERF comparison: the effective receptive field of every stage of the five
# unified models of one scale, on the same images, with the same settings, in one table and one
# folder of figures per model.
#
# Usage: analyses/erf_study.sh CHECKPOINT_DIR IMAGE_DIR [SCALE] [NUM_IMAGES]
#   CHECKPOINT_DIR  holds unified_{convnext,swin,halo,pvt,dcn_v3}_SCALE.pth (the released checkpoints)
#   IMAGE_DIR       ImageNet validation images (files, read in name order)
#   SCALE           micro | tiny | small | base (default tiny)
#   NUM_IMAGES      images per model (default 50, the study's number)
# Outputs: outputs/erf_study/<model>/ (erf.json, maps, heatmaps) and outputs/erf_study/summary.tsv.
# Settings are the study's ERF script's: Resize((224, 224)) bicubic, stage outputs after the stage
# norms, relu of the input gradient. Add --stm-legacy-scaling below to match numbers published with
# the study's own division by 4 x images.
set -euo pipefail
ckpts=${1:?checkpoint folder}; images=${2:?image folder}; scale=${3:-tiny}; n=${4:-50}
bin=${STM_ANALYZE:-.build/release/stm-analyze}
out=outputs/erf_study
mkdir -p "$out"
printf "model\tstage\tERF@0.2\tERF@0.3\tERF@0.5\tERF@0.99\n" > "$out/summary.tsv"
for family in convnext swin halo pvt dcn_v3; do
  model="unified_${family}_${scale}"
  "$bin" erf --model "$ckpts/$model.pth" --arch "$model" --images "$images" --num-images "$n" --out "$out/$model"
  python3 - "$out/$model/erf.json" "$model" >> "$out/summary.tsv" <<'PY'
import json, sys
doc = json.load(open(sys.argv[1]))
for stage, t in sorted(doc["stages"].items()):
    print("\t".join([sys.argv[2], stage] + ["%.3f" % t[k]["side_ratio"] for k in ("0.2", "0.3", "0.5", "0.99")]))
PY
done
column -t "$out/summary.tsv"
