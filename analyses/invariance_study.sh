#!/usr/bin/env bash
# Reproduces the STM-Evaluation study's invariance curves (translation, rotation, scale) for its five
# spatial token mixers with `stm-analyze invariance`: one run per perturbation, all five models in each,
# so every figure shows five curves (U-DWConv, U-Swin, U-HaloNet, U-PVT, U-InternImage).
#
# Usage:
#   analyses/invariance_study.sh CKPT_DIR IMAGES [OUT_DIR]
#
#   CKPT_DIR  folder with the trained checkpoints, named as the study's models:
#             unified_convnext_S.pth unified_swin_S.pth unified_halo_S.pth unified_pvt_S.pth
#             unified_dcn_v3_S.pth, where S is $SCALE (default tiny). Any format stm-analyze reads
#             (.pth .pt .ckpt .bin .safetensors) works; set EXT to its extension (default pth).
#   IMAGES    the evaluation images: ImageNet's validation set as 1000 wnid class folders (the
#             sorted folder names give the class indices), or a flat folder with LABELS set to a file
#             of 'name class-index' lines. Without labels only consistency and ce are measured.
#   OUT_DIR   where the results go (default outputs/invariance-study): OUT_DIR/<kind>/<kind>.{json,csv,png}
#             for kind = translate, rotate, scale (and rotate_pre with PRE_ROTATION=1).
#
# Environment:
#   SCALE=tiny|small|base|micro   model size (the architecture is the preset unified_<mixer>_<SCALE>, or
#                                  the file unified_<mixer>_<SCALE>.json beside the checkpoint when there is one)
#   LABELS=file                    labels for a flat image folder
#   PRE_ROTATION=1                 also run the study's pre_rotation variant (rotate before the crop)
#   BIN=path                       the stm-analyze binary (default .build/release/stm-analyze; `make build` makes it)
#   BATCH=N THREADS=N SEED=S       forwarded as --batch, --threads, --seed (defaults 32, all cores, 0)
#   EXTRA="..."                    more options for every run, e.g. EXTRA="--levels 0,30,60" for a quick look
#
# The protocol is the study's (see `stm-analyze invariance --help`): jitter 0..64 px step 4 along a seeded
# compass direction per image and level (all eight directions, where the study's code only ever draws
# seven), rotation 0..90 degrees step 5 after the centre crop, crop ratio 0.2..1.95 step 0.125; 224 px
# crops of the evaluation transform with crop-pct 0.875. The full ImageNet validation set (50000 images,
# 18-20 forward passes each per model) takes many hours on a CPU; a class-balanced subset (e.g. the first
# 10 images of each class folder, copied into the same layout) gives the curves' shape in a fraction of that.

set -euo pipefail

if [[ $# -lt 2 || $# -gt 3 ]]; then
    sed -n '2,34p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
fi

CKPT_DIR=$1
IMAGES=$2
OUT=${3:-outputs/invariance-study}
SCALE=${SCALE:-tiny}
EXT=${EXT:-pth}
BIN=${BIN:-.build/release/stm-analyze}

if [[ ! -x $BIN ]]; then
    echo "error: $BIN is not built (run 'make build', or set BIN)" >&2
    exit 1
fi
if [[ ! -e $IMAGES ]]; then
    echo "error: $IMAGES: no such image folder" >&2
    exit 1
fi

# The five mixers: preset family name and legend label, in the study's order.
MIXERS=(convnext swin halo pvt dcn_v3)
LABELS_OF=("U-DWConv" "U-Swin" "U-HaloNet" "U-PVT" "U-InternImage")

MODEL_ARGS=()
for i in "${!MIXERS[@]}"; do
    m=${MIXERS[$i]}
    ckpt="$CKPT_DIR/unified_${m}_${SCALE}.${EXT}"
    if [[ ! -f $ckpt ]]; then
        echo "error: $ckpt: no such checkpoint (expected unified_{convnext,swin,halo,pvt,dcn_v3}_${SCALE}.${EXT} in $CKPT_DIR)" >&2
        exit 1
    fi
    arch="unified_${m}_${SCALE}"
    # An architecture file beside the checkpoint (same name, .json) takes the preset's place.
    [[ -f $CKPT_DIR/unified_${m}_${SCALE}.json ]] && arch="$CKPT_DIR/unified_${m}_${SCALE}.json"
    MODEL_ARGS+=(--model "$ckpt" --arch "$arch" --label "${LABELS_OF[$i]}")
done

COMMON=(--images "$IMAGES" --batch "${BATCH:-32}" --seed "${SEED:-0}")
[[ -n ${LABELS:-} ]] && COMMON+=(--labels "$LABELS")
[[ -n ${THREADS:-} ]] && COMMON+=(--threads "$THREADS")
# shellcheck disable=SC2206  # EXTRA is split into words on purpose
[[ -n ${EXTRA:-} ]] && COMMON+=($EXTRA)

run() {
    local kind=$1 dir=$2
    shift 2
    echo "== $kind -> $OUT/$dir" >&2
    "$BIN" invariance "$kind" "${MODEL_ARGS[@]}" "${COMMON[@]}" --out "$OUT/$dir" "$@"
}

run translate translate
run rotate rotate
run scale scale
if [[ ${PRE_ROTATION:-0} == 1 ]]; then
    run rotate rotate_pre --pre-crop
fi

echo "figures: $OUT/{translate,rotate,scale}/*.png; numbers: the .json and .csv beside them" >&2
