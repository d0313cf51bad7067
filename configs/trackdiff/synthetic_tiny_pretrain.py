# Pretraining the tiny generator on the synthetic world's unlabelled pool (make_synthetic.py
# --pool N): the miniature of a video model pretrained on web videos. The pool has frames and
# captions but no boxes, so every instance slot is empty (nulled): the model learns appearance
# and motion unconditionally (caption-only where the model encodes captions). The tracklet
# config then fine-tunes from it on the labelled split:
#   python tools/train.py configs/trackdiff/synthetic_tiny.py --cfg-options load_from=CKPT
_base_ = ['./synthetic_tiny.py']

train_dataloader = dict(
    dataset=dict(
        ann_file='annotations/pool_cocoformat.json',
        data_prefix=dict(img_path='pool/'),
        clip_step=None))  # one clip per short pool video
