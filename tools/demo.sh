#!/usr/bin/env bash
# The README's main job on the embedded default: make the synthetic tracklet world, train its
# autoencoder, a category classifier and the tiny TrackDiffusion, generate clips for new layouts
# with it, and score them against their tracklets (and the real clips the same way, as the
# reference). Each training step resumes or is skipped when its output is already there.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
OUT=${OUT:-outputs/demo}
ITERS=${DEMO_ITERS:-300}
AE_ITERS=${DEMO_AE_ITERS:-1000}
WORK=${DEMO_WORK_DIR:-work_dirs/demo}
AE_WORK=work_dirs/synthetic_f4  # where configs/trackdiff/synthetic_tiny.py reads the autoencoder
CONFIG=configs/trackdiff/synthetic_tiny.py
CLASSIFIER=work_dirs/category_classifier.pth
ANN=data/synthetic/annotations
mkdir -p "$OUT"
echo "== 1/8 synthetic world -> data/synthetic"
"$PY" tools/make_synthetic.py --out data/synthetic --overwrite
echo "== 2/8 clips with their tracklets -> $OUT/train_clips.png, $OUT/val_clips.png"
for split in train val; do
    "$PY" tools/browse_dataset.py configs/_base_/datasets/synthetic.py --split $split \
        --out "$OUT/${split}_clips.png"
done
echo "== 3/8 the world's autoencoder ($AE_ITERS iterations) -> $AE_WORK/vae"
if [[ ! -f "$AE_WORK/vae/config.json" ]]; then
    resume=()
    ls "$AE_WORK"/iter_*.pth >/dev/null 2>&1 && resume=(--resume)
    "$PY" tools/train.py configs/autoencoder/synthetic_f4.py --work-dir "$AE_WORK" "${resume[@]}" \
        --cfg-options train_cfg.max_iters="$AE_ITERS" param_scheduler.1.end="$AE_ITERS"
fi
echo "== 4/8 category classifier on real train crops -> $CLASSIFIER"
[[ -f "$CLASSIFIER" ]] || "$PY" tools/train_category_classifier.py --ann $ANN/train_cocoformat.json \
    --img-prefix data/synthetic/train/ --val-ann $ANN/val_cocoformat.json \
    --val-img-prefix data/synthetic/val/ --out "$CLASSIFIER"
echo "== 5/8 train $CONFIG for $ITERS iterations -> $WORK (resumes an interrupted run)"
resume=()
ls "$WORK"/iter_*.pth >/dev/null 2>&1 && resume=(--resume)
"$PY" tools/train.py "$CONFIG" --work-dir "$WORK" "${resume[@]}" \
    --cfg-options train_cfg.max_iters="$ITERS" param_scheduler.1.end="$ITERS"
CKPT="$WORK/iter_$ITERS.pth"
echo "== 6/8 alignment with and without tracklets on held-out clips -> $OUT/alignment.json"
"$PY" tools/evaluate_alignment.py "$CONFIG" "$CKPT" --num-clips 16 --steps 10 \
    --out "$OUT/alignment.json"
echo "== 7/8 generate one clip per new layout (novel split) -> $OUT/generated (GIF previews)"
"$PY" tools/generate.py "$CONFIG" "$CKPT" --out-dir "$OUT/generated" \
    --tracklets $ANN/novel_tracklets.json --captions $ANN/captions.json --clip-stride 24 \
    --scheduler DPMSolverMultistepScheduler --steps 10 --batch-size 8 --previews gif
echo "== 8/8 score generated and real clips against their tracklets"
"$PY" tools/evaluate_generated.py "$OUT/generated" --out "$OUT/generated_report.json" \
    --category-classifier "$CLASSIFIER" --reference-ann $ANN/test_cocoformat.json \
    --reference-prefix data/synthetic/test/ --random-features 0
"$PY" tools/evaluate_generated.py --ann $ANN/test_cocoformat.json --img-prefix data/synthetic/test/ \
    --category-classifier "$CLASSIFIER" --out "$OUT/real_report.json"
"$PY" tools/analysis/compare_reports.py "$OUT/generated_report.json" "$OUT/real_report.json" \
    --out "$OUT/summary.md"
echo "done: see $OUT/ (summary.md, generated/previews/contact_sheet.png, *_report.json) and the"
echo "sample sheets in $WORK/*/vis_data/vis_image/"
