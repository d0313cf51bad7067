# ByteTrack (YOLOX depth 0.33, width 0.25) on the synthetic world, its detector trained on real
# (rendered) frames only: the baseline of the generated runs. Paths: _base_/synthetic_world.py.
_base_ = ['./_base_/bytetrack_yolox-tiny_synthetic.py']

train_dataloader = dict(dataset=dict(dataset=dict(_delete_=True, **_base_.real_train)))
