#!/usr/bin/env bash
# Training A/B of recipes: arms trained side by side, one thread each, same budget.
#
#   benchmarks/recipe_ab.sh OUT DATA "COMMON OPTIONS" NAME="ARM OPTIONS" [NAME="..." ...]
#
# Every arm trains at once with OMP_NUM_THREADS=1 (so they share the machine alike and a
# --minutes budget is fair between them), then is evaluated on the test split; the last
# lines print VOC mAP@0.5, each class's AP and the steps run. benchmarks/recipe_ab.md has
# the runs made with it, e.g.
#   W=../shared/weights/mobilenet_v2-b0353104.pth
#   benchmarks/recipe_ab.sh runs/recipe slides \
#     "--preset mobilenet_v2_fpn --weights $W --minutes 30 --cache-images" \
#     preset="--recipe preset" auto=""
set -euo pipefail
out=$1 data=$2 common=$3
shift 3
mkdir -p "$out"
for arm in "$@"; do
  (
    name=${arm%%=*} options=${arm#*=} run=$out/${arm%%=*}
    export OMP_NUM_THREADS=1
    python -m faster_rcnn train --data "$data" $common $options --out "$run" > "$run.log" 2>&1
    python -m faster_rcnn evaluate --model "$run/model.safetensors" --data "$data" \
      --split test --out "$run/eval" >> "$run.log" 2>&1
  ) &
done
wait
for arm in "$@"; do
  run=$out/${arm%%=*}
  python - "$run" <<'PY'
import json, sys
run = sys.argv[1]
metrics = json.load(open(run + "/eval/metrics.json"))
steps = sum(1 for _ in open(run + "/metrics.jsonl"))
per_class = {k: v for k, v in metrics.items() if k.startswith("voc_ap50/")}
print(run, f"steps {steps}", f"mAP@0.5 {metrics['voc_map50']:.3f}",
      *(f"{k} {v:.3f}" for k, v in per_class.items()))
PY
done
