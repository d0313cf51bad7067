# The YouTube-VIS recipe under FSDP (mmengine FlexibleRunner): parameters, gradients and AdamW
# states sharded over the GPUs, bf16 autocast from the schedule's AmpOptimWrapper. Launch with
# tools/dist_train.sh or tools/slurm_train.sh like any config (docs/pretrained.md).
_base_ = ['./ytvis.py']
runner_type = 'FlexibleRunner'
strategy = dict(
    type='FSDPStrategy',
    model_wrapper=dict(
        # One FSDP unit per >= 10M parameters (UNet blocks); frozen spatial and trained
        # temporal parameters share units, which FSDP allows with use_orig_params.
        auto_wrap_policy=dict(
            type='torch.distributed.fsdp.wrap.size_based_auto_wrap_policy',
            min_num_params=int(1e7)),
        use_orig_params=True),
    state_dict_cfg='full')  # checkpoints as one ordinary state dict, loadable anywhere
