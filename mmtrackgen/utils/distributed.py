"""Distributed runs on machines without GPUs (tests, CPU clusters)."""
import datetime
import os

import torch
import torch.distributed as dist


def prepare_cpu_distributed(cfg) -> bool:
    """Make an mmengine config with ``launcher='pytorch'`` run on CPU processes over gloo.

    mmengine 0.10's ``init_dist`` always calls ``torch.cuda.set_device``, and its DDP wrapper
    passes ``device_ids=[LOCAL_RANK]``, which CPU modules refuse. Without CUDA this joins the
    process group itself with gloo (mmengine then skips ``init_dist``) and wraps the model with
    ``device_ids=None``. Returns whether it did so.

    ``env_cfg.dist_cfg.timeout`` (seconds) bounds every collective, as mmengine's ``init_dist``
    does on GPUs: a rank left waiting for one that hangs fails after it instead of torch's
    default (30 minutes for gloo). A rank that dies needs no timeout: torchrun
    (tools/dist_train.sh) stops the others at once and names it.
    """
    if cfg.get('launcher', 'none') == 'none' or torch.cuda.is_available():
        return False
    if 'RANK' not in os.environ:
        raise RuntimeError(f"launcher '{cfg.launcher}' without the RANK/WORLD_SIZE environment: "
                           'start it with tools/dist_train.sh (torchrun)')
    dist_cfg = cfg.setdefault('env_cfg', {}).setdefault('dist_cfg', {})
    if not dist.is_initialized():
        kwargs = {}
        if dist_cfg.get('timeout') is not None:
            kwargs['timeout'] = datetime.timedelta(seconds=dist_cfg['timeout'])
        dist.init_process_group(backend='gloo', **kwargs)
    dist_cfg['backend'] = 'gloo'
    wrapper = dict(cfg.get('model_wrapper_cfg') or {})
    wrapper.setdefault('type', 'MMDistributedDataParallel')
    wrapper.setdefault('broadcast_buffers', False)
    wrapper['device_ids'] = None
    cfg.model_wrapper_cfg = wrapper
    return True


def build_runner(cfg):
    """The mmengine Runner of a config (``runner_type`` honoured), CPU-only DDP prepared."""
    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner
    prepare_cpu_distributed(cfg)
    return Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)
