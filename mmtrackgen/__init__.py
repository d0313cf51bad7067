"""mmtrackgen: tracklet-conditioned video generation (TrackDiffusion) for OpenMMLab."""
from .utils.checkpoint import register_safe_checkpoint_loader

__version__ = '0.1.0'

# mmengine 0.10.x calls torch.load without weights_only; under torch>=2.6 that cannot open its own
# checkpoints. Importing mmtrackgen (which every config with default_scope='mmtrackgen' does)
# installs a loader that opens them with weights_only=True and an explicit allow-list.
register_safe_checkpoint_loader()
