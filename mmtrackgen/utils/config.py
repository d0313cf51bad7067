"""Loading a config the way every mmtrackgen tool does."""
import os.path as osp
from typing import Optional

from mmengine.config import Config
from mmengine.registry import init_default_scope


class ConfigError(ValueError):
    """A config file that cannot be read: a syntax error, or an error while it runs."""


def read_config(path: str) -> Config:
    """``Config.fromfile(path)``, with a missing file, a syntax error or an exception raised while
    the config runs turned into a one-line error naming the file (and the line, when known).

    Raises:
        FileNotFoundError: ``path`` (or one of its ``_base_`` files) does not exist.
        ConfigError: anything else that stops the config from being read.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f"config file '{path}' does not exist")
    try:
        return Config.fromfile(path)
    except FileNotFoundError as e:  # a _base_ file
        missing = f"file '{e.filename}' does not exist" if e.filename else str(e)
        raise FileNotFoundError(f"config '{path}': {missing}") from e
    except SyntaxError as e:
        try:  # mmengine's error says neither which file nor where: find out from the file itself
            with open(path, encoding='utf-8') as f:
                compile(f.read(), path, 'exec')
        except SyntaxError as own:
            raise ConfigError(f"config '{path}', line {own.lineno}: syntax error: {own.msg}") from e
        raise ConfigError(f"config '{path}': syntax error in one of its _base_ files: {e}") from e
    except Exception as e:  # the config's code itself failed (NameError, ImportError, ...)
        raise ConfigError(f"config '{path}' cannot be read: {type(e).__name__}: {e}") from e


def load_config(path: str, cfg_options: Optional[dict] = None) -> Config:
    """Read ``path`` (:func:`read_config`), apply ``--cfg-options`` overrides, and make the
    config's default scope (``mmtrackgen``) current so its ``type=`` names resolve."""
    cfg = read_config(path)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmtrackgen'))
    return cfg


def runner_config(path: str,
                  cfg_options: Optional[dict] = None,
                  work_dir: Optional[str] = None,
                  launcher: str = 'none') -> Config:
    """The config of a Runner job (tools/train.py, tools/test.py), as mmdet's tools set it up:
    ``--cfg-options`` merged, the launcher recorded, and ``work_dir`` from the flag, else the
    config, else ``work_dirs/<config name>``. A config with a ``strategy`` (FSDP, DeepSpeed)
    runs on mmengine's ``FlexibleRunner`` unless it names its ``runner_type``."""
    cfg = read_config(path)
    cfg.launcher = launcher
    if cfg_options is not None:
        cfg.merge_from_dict(cfg_options)
    if cfg.get('strategy') is not None and 'runner_type' not in cfg:
        cfg.runner_type = 'FlexibleRunner'
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('work_dirs', osp.splitext(osp.basename(path))[0])
    return cfg
