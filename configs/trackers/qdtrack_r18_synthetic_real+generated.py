# QDTrack R18 trained on real videos plus generated clips, the generated set repeated
# `generated_ratio` times (videos are sampled uniformly, so generated clips make up
# n_gen * ratio / (n_real + n_gen * ratio) of the samples). Tested on the real test split.
_base_ = ['./_base_/qdtrack_r18_synthetic.py']

train_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='ConcatDataset',
        datasets=[
            _base_.real_train,
            dict(
                type='RepeatDataset', times=_base_.generated_ratio, dataset=_base_.generated_train),
        ]))
