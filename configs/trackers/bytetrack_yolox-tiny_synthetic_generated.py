# ByteTrack (YOLOX depth 0.33, width 0.25), its detector trained on generated frames only
# (tools/generate.py output in `generated_root`), tested on the real test split.
_base_ = ['./_base_/bytetrack_yolox-tiny_synthetic.py']

train_dataloader = dict(dataset=dict(dataset=dict(_delete_=True, **_base_.generated_train)))
