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
# Outputs: outputs/erf_study/<model>/ (erf.json, erf.csv, maps, heatmaps) and outputs/erf_study/summary.tsv
# (made from each erf.csv with awk). The recipes in analyses/*.yaml (`stm-analyze run`) do the same
# with figures and skip finished work.
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
  # erf.csv: model,arch,stage,threshold,side,side_ratio,area_ratio,reached (one row per stage and threshold)
  awk -F, -v name="$model" 'NR > 1 { r[$3 "," $4] = $6; s[$3] = 1 }
    END { for (st in s) printf "%s\t%s\t%.3f\t%.3f\t%.3f\t%.3f\n", name, st, r[st ",0.2"], r[st ",0.3"], r[st ",0.5"], r[st ",0.99"] }' \
    "$out/$model/erf.csv" | sort -t$'\t' -k2,2n >> "$out/summary.tsv"
done
column -t "$out/summary.tsv"
