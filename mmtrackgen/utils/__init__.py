from .checkpoint import (MMENGINE_CHECKPOINT_SAFE_GLOBALS, UnsafeCheckpointError,
                         register_safe_checkpoint_loader, safe_torch_load)
from .config import load_config
from .distributed import prepare_cpu_distributed

__all__ = [
    'MMENGINE_CHECKPOINT_SAFE_GLOBALS', 'UnsafeCheckpointError', 'register_safe_checkpoint_loader',
    'safe_torch_load', 'prepare_cpu_distributed', 'load_config'
]
