#!/usr/bin/env bash
# Training A/B of anchors: the preset's against an anchor file, same recipe and seeds.
#
#   benchmarks/anchor_fit_ab.sh ARM_NAME DATA "TRAIN OPTIONS" [ANCHOR_FILE]
#
# Trains seeds 0, 1 and 2 at once (on a GPU: DEVICE=cuda), evaluates each on the test split
# and prints VOC mAP@0.5 and proposal recall. benchmarks/anchor_fit_ab.md has the runs made
# with it, e.g. the raccoon arms:
#   RAC="--preset mobilenet_v2_fpn --weights mobilenet_v2-b0353104.pth --steps 360 \
#        --batch-size 2 --lr 0.01 --schedule cosine --min-size 512 --max-size 853"
#   faster-rcnn anchors --data raccoon --preset mobilenet_v2_fpn --min-size 512 \
#        --max-size 853 --fit --out runs/fit
#   benchmarks/anchor_fit_ab.sh rac_preset raccoon "$RAC"
#   benchmarks/anchor_fit_ab.sh rac_tied raccoon "$RAC" runs/fit/fitted_anchors.json
set -euo pipefail
name=$1 data=$2 options=$3 anchors=${4:-}
device=${DEVICE:-cpu} out=${OUT_DIR:-runs/anchor_ab}
mkdir -p "$out"
for seed in 0 1 2; do
  (
    run=$out/${name}_$seed
    python -m faster_rcnn train --data "$data" $options --seed $seed --device "$device" \
      --out "$run" ${anchors:+--anchors "$anchors"} > "$run.log" 2>&1
    python -m faster_rcnn evaluate --model "$run/model.safetensors" --data "$data" \
      --split test --device "$device" --out "$run/eval" >> "$run.log" 2>&1
  ) &
done
wait
for seed in 0 1 2; do
  python - "$out/${name}_$seed" <<'PY'
import json, sys
m = json.load(open(sys.argv[1] + "/eval/metrics.json"))
print(sys.argv[1], *(f"{k} {m[k]:.3f}" for k in ("voc_map50", "recall@300@0.7", "AR@300")))
PY
done
