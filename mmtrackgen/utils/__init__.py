from .checkpoint import (MMENGINE_CHECKPOINT_SAFE_GLOBALS, UnsafeCheckpointError,
                         register_safe_checkpoint_loader, safe_torch_load)
from .cli import exit_with_error, one_line
from .config import ConfigError, load_config, read_config, runner_config
from .distributed import build_runner, prepare_cpu_distributed
from .files import write_json_atomic, write_text_atomic

__all__ = [
    'MMENGINE_CHECKPOINT_SAFE_GLOBALS', 'UnsafeCheckpointError', 'register_safe_checkpoint_loader',
    'safe_torch_load', 'prepare_cpu_distributed', 'load_config', 'read_config', 'ConfigError',
    'exit_with_error', 'one_line', 'runner_config', 'build_runner', 'write_json_atomic',
    'write_text_atomic'
]
