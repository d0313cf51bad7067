"""Checkpoints without the frozen pretrained weights."""
from mmengine.hooks import EMAHook, Hook
from mmengine.model import is_model_wrapper

from mmtrackgen.registry import HOOKS


@HOOKS.register_module()
class TrimFrozenWeightsHook(Hook):
    """Leave frozen parameters (``requires_grad=False``) out of saved checkpoints.

    The frozen parts (VAE, text encoder, spatial UNet layers) are loaded from their pretrained
    folders whenever the model is built, so storing them again in every checkpoint only costs
    disk (gigabytes at full size). Loading a trimmed checkpoint (``load_from``, ``--resume``)
    reports those keys as missing and keeps the pretrained values. Buffers are kept.

    With mmengine's ``EMAHook`` the checkpoint holds a second copy, ``ema_state_dict`` (keys
    ``module.<name>``; the averaged weights are swapped into ``state_dict``): it is trimmed
    the same way, so resuming finds the same keys in both copies (``EMAHook`` swaps them key by
    key) and a frozen weight, never averaged into anything but itself, is not stored twice.
    This hook must therefore see the checkpoint after ``EMAHook`` has added its copy: it runs
    at priority ``LOW``, and a run whose ``EMAHook`` would come later is refused.
    """
    priority = 'LOW'

    def before_run(self, runner) -> None:
        names = [type(hook).__name__ for hook in runner.hooks]
        mine = runner.hooks.index(self)
        late = [n for hook, n in zip(runner.hooks[mine + 1:], names[mine + 1:])
                if isinstance(hook, EMAHook)]
        if late:
            raise ValueError(
                f'{late[0]} runs after TrimFrozenWeightsHook (hook order {names}), so its copy '
                "of the weights would keep every frozen one: give the EMAHook a priority above "
                "TrimFrozenWeightsHook's ('LOW'), e.g. priority=49 as the recipes do")

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        frozen = {name for name, p in model.named_parameters() if not p.requires_grad}
        if not frozen:
            return
        state = checkpoint['state_dict']
        for key in [k for k in state if k in frozen]:
            del state[key]
        ema = checkpoint.get('ema_state_dict')
        if ema is not None:  # EMAHook's averaged model, its keys prefixed with 'module.'
            for key in [k for k in ema if k.startswith('module.') and k[7:] in frozen]:
                del ema[key]
        checkpoint.setdefault('meta', {})['trimmed_frozen_parameters'] = len(frozen)
