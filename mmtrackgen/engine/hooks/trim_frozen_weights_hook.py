"""Checkpoints without the frozen pretrained weights."""
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from mmtrackgen.registry import HOOKS


@HOOKS.register_module()
class TrimFrozenWeightsHook(Hook):
    """Leave frozen parameters (``requires_grad=False``) out of saved checkpoints.

    The frozen parts (VAE, text encoder, spatial UNet layers) are loaded from their pretrained
    folders whenever the model is built, so storing them again in every checkpoint only costs
    disk (gigabytes at full size). Loading a trimmed checkpoint (``load_from``, ``--resume``)
    reports those keys as missing and keeps the pretrained values. Buffers are kept.
    """
    priority = 'LOW'

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        frozen = {name for name, p in model.named_parameters() if not p.requires_grad}
        if not frozen:
            return
        state = checkpoint['state_dict']
        for key in [k for k in state if k in frozen]:
            del state[key]
        checkpoint.setdefault('meta', {})['trimmed_frozen_parameters'] = len(frozen)
