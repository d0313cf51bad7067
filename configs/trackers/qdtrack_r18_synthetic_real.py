# QDTrack R18 on the synthetic world trained on real (rendered) videos only: the baseline of
# the generated and real+generated runs. Paths and schedule: _base_/synthetic_world.py.
_base_ = ['./_base_/qdtrack_r18_synthetic.py']

train_dataloader = dict(dataset=dict(_delete_=True, **_base_.real_train))
