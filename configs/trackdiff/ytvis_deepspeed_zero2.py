# The YouTube-VIS recipe under DeepSpeed ZeRO-2 (mmengine FlexibleRunner; `pip install
# deepspeed`): gradients and AdamW states sharded over the GPUs, bf16 weights with fp32 master
# copies kept by DeepSpeed, which also clips gradients, so its optimiser wrapper replaces the
# schedule's AmpOptimWrapper.
_base_ = ['./ytvis.py']
runner_type = 'FlexibleRunner'
strategy = dict(
    type='DeepSpeedStrategy',
    bf16=dict(enabled=True),
    gradient_clipping=1.0,
    train_micro_batch_size_per_gpu=1,
    exclude_frozen_parameters=True,  # checkpoints hold the trained weights only
    zero_optimization=dict(
        stage=2,
        overlap_comm=True,
        contiguous_gradients=True,
        reduce_bucket_size=int(5e8),
        allgather_bucket_size=int(5e8)))
optim_wrapper = dict(
    _delete_=True,
    type='DeepSpeedOptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-5, weight_decay=1e-2))
