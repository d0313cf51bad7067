# ByteTrack (YOLOX depth 0.33, width 0.25), its detector trained on real plus generated frames,
# the generated set repeated `generated_ratio` times (frames are sampled uniformly, so generated
# frames make up n_gen * ratio / (n_real + n_gen * ratio) of the samples).
_base_ = ['./_base_/bytetrack_yolox-tiny_synthetic.py']

train_dataloader = dict(
    dataset=dict(
        dataset=dict(
            _delete_=True,
            type='ConcatDataset',
            datasets=[
                _base_.real_train,
                dict(
                    type='RepeatDataset',
                    times=_base_.generated_ratio,
                    dataset=_base_.generated_train),
            ])))
