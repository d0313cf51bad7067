# The paper's schedule: AdamW 1e-5, weight decay 1e-2, 1k warm-up then cosine, 50k iterations,
# global batch 8 (8 GPUs x 1 clip), bf16 autocast, EMA of the weights, trimmed checkpoints.
max_iters = 50000
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters + 1)
optim_wrapper = dict(
    type='AmpOptimWrapper',
    dtype='bfloat16',
    optimizer=dict(type='AdamW', lr=1e-5, weight_decay=1e-2),
    clip_grad=dict(max_norm=1.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=1000),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=1000, end=max_iters, eta_min=0),
]
auto_scale_lr = dict(enable=False, base_batch_size=8)
custom_hooks = [
    dict(type='TrimFrozenWeightsHook'),
    dict(type='EMAHook', momentum=1e-4, update_buffers=False, priority=49),
]
