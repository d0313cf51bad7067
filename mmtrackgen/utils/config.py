"""Loading a config the way every mmtrackgen tool does."""
from typing import Optional

from mmengine.config import Config
from mmengine.registry import init_default_scope


def load_config(path: str, cfg_options: Optional[dict] = None) -> Config:
    """Read ``path``, apply ``--cfg-options`` overrides, and make the config's default scope
    (``mmtrackgen``) current so its ``type=`` names resolve."""
    cfg = Config.fromfile(path)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmtrackgen'))
    return cfg
