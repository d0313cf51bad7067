# QDTrack R18 trained on generated clips only (tools/generate.py output in `generated_root`),
# tested on the real test split: how far generated data alone gets a tracker.
_base_ = ['./_base_/qdtrack_r18_synthetic.py']

train_dataloader = dict(dataset=dict(_delete_=True, **_base_.generated_train))
