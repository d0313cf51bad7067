#!/usr/bin/env bash
# The README's main job on the embedded default: make the synthetic tracklet world, train the
# tiny TrackDiffusion, generate clips for new layouts with it, and score them against their
# tracklets (and the real clips the same way, as the reference).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
OUT=${OUT:-outputs/demo}
ITERS=${DEMO_ITERS:-300}
WORK=${DEMO_WORK_DIR:-work_dirs/demo}
CONFIG=configs/trackdiff/synthetic_tiny.py
mkdir -p "$OUT"
echo "== 1/6 synthetic world -> data/synthetic"
"$PY" tools/make_synthetic.py --out data/synthetic --overwrite
echo "== 2/6 clips with their tracklets -> $OUT/train_clips.png, $OUT/val_clips.png"
for split in train val; do
    "$PY" tools/browse_dataset.py configs/_base_/datasets/synthetic.py --split $split \
        --out "$OUT/${split}_clips.png"
done
echo "== 3/6 train $CONFIG for $ITERS iterations -> $WORK (resumes an interrupted run)"
resume=()
ls "$WORK"/iter_*.pth >/dev/null 2>&1 && resume=(--resume)
"$PY" tools/train.py "$CONFIG" --work-dir "$WORK" "${resume[@]}" \
    --cfg-options train_cfg.max_iters="$ITERS" param_scheduler.1.end="$ITERS"
CKPT="$WORK/iter_$ITERS.pth"
echo "== 4/6 alignment with and without tracklets on held-out clips -> $OUT/alignment.json"
"$PY" tools/evaluate_alignment.py "$CONFIG" "$CKPT" --num-clips 16 --steps 10 \
    --out "$OUT/alignment.json"
echo "== 5/6 generate one clip per new layout (novel split) -> $OUT/generated (GIF previews)"
"$PY" tools/generate.py "$CONFIG" "$CKPT" --out-dir "$OUT/generated" \
    --tracklets data/synthetic/annotations/novel_tracklets.json --clip-stride 24 \
    --scheduler DPMSolverMultistepScheduler --steps 10 --batch-size 8 --previews gif
echo "== 6/6 score generated and real clips against their tracklets"
"$PY" tools/evaluate_generated.py "$OUT/generated" --out "$OUT/generated_report.json" \
    --reference-ann data/synthetic/annotations/test_cocoformat.json \
    --reference-prefix data/synthetic/test/ --random-features 0
"$PY" tools/evaluate_generated.py --ann data/synthetic/annotations/test_cocoformat.json \
    --img-prefix data/synthetic/test/ --out "$OUT/real_report.json"
echo "done: see $OUT/ (generated/previews/contact_sheet.png, *_report.json) and the sample"
echo "sheets in $WORK/*/vis_data/vis_image/"
