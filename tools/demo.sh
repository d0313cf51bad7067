#!/usr/bin/env bash
# The README's main job on the embedded default: make the synthetic tracklet world, draw a few
# of its clips with their tracklets, train the tiny TrackDiffusion and measure how well its
# samples put the objects in their boxes.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
OUT=${OUT:-outputs/demo}
ITERS=${DEMO_ITERS:-300}
WORK=${DEMO_WORK_DIR:-work_dirs/demo}
CONFIG=configs/trackdiff/synthetic_tiny.py
mkdir -p "$OUT"
echo "== 1/4 synthetic world -> data/synthetic"
"$PY" tools/make_synthetic.py --out data/synthetic --overwrite
echo "== 2/4 clips with their tracklets -> $OUT/train_clips.png, $OUT/val_clips.png"
for split in train val; do
    "$PY" tools/browse_dataset.py configs/_base_/datasets/synthetic.py --split $split \
        --out "$OUT/${split}_clips.png"
done
echo "== 3/4 train $CONFIG for $ITERS iterations -> $WORK (resumes an interrupted run)"
resume=()
ls "$WORK"/iter_*.pth >/dev/null 2>&1 && resume=(--resume)
"$PY" tools/train.py "$CONFIG" --work-dir "$WORK" "${resume[@]}" \
    --cfg-options train_cfg.max_iters="$ITERS" param_scheduler.1.end="$ITERS"
echo "== 4/4 alignment of samples with their boxes on held-out clips -> $OUT/alignment.json"
"$PY" tools/evaluate_alignment.py "$CONFIG" "$WORK/iter_$ITERS.pth" --num-clips 16 \
    --out "$OUT/alignment.json"
echo "done: see $OUT/ and the sample sheets in $WORK/*/vis_data/vis_image/"
