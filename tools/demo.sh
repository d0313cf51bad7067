#!/usr/bin/env bash
# The README's main job on the embedded default: make the synthetic tracklet world, then draw
# a few of its clips (after the training pipeline) with their tracklets as a contact sheet.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
OUT=${OUT:-outputs/demo}
mkdir -p "$OUT"
echo "== 1/2 synthetic world -> data/synthetic"
"$PY" tools/make_synthetic.py --out data/synthetic --overwrite
echo "== 2/2 clips with their tracklets -> $OUT/train_clips.png, $OUT/val_clips.png"
"$PY" tools/browse_dataset.py configs/_base_/datasets/synthetic.py --split train \
    --out "$OUT/train_clips.png"
"$PY" tools/browse_dataset.py configs/_base_/datasets/synthetic.py --split val \
    --out "$OUT/val_clips.png"
echo "done: see $OUT/"
