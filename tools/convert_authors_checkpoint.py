"""Convert the authors' published TrackDiffusion weights into a checkpoint of this project.

    python tools/convert_authors_checkpoint.py SRC OUT [--config CONFIG] [--cfg-options K=V ...]

SRC is their downloaded folder (``TrackDiffusion_Pretrain``, holding ``unet/``) or its ``unet/``;
OUT the ``.pth`` to write, which ``tools/generate.py CONFIG OUT`` and ``load_from=OUT`` read.
CONFIG (default ``configs/trackdiff/ytvis_authors_t2v.py``) must describe their architecture;
its Stable Diffusion 1.5 folder gives the VAE, text encoder and class embeddings. Every mapped
key is printed; an unmapped key, a shape or an architecture field that does not fit stops the
conversion with a message naming it (docs/pretrained.md#the-authors-released-weights).
"""
import argparse
import os.path as osp
import sys

from mmengine.config import DictAction

sys.path.insert(0, osp.abspath(osp.join(osp.dirname(__file__), '..')))

from mmtrackgen.models.generators.authors_checkpoint import \
    convert_authors_checkpoint  # noqa: E402
from mmtrackgen.registry import MODELS  # noqa: E402
from mmtrackgen.utils import ConfigError, exit_with_error, load_config  # noqa: E402

DEFAULT_CONFIG = 'configs/trackdiff/ytvis_authors_t2v.py'


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('src', help="the authors' folder (TrackDiffusion_Pretrain) or its unet/")
    parser.add_argument('out', help='the checkpoint to write (.pth)')
    parser.add_argument(
        '--config', default=DEFAULT_CONFIG, help=f'our config of their model ({DEFAULT_CONFIG})')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='config overrides, e.g. pretrained folders')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    try:
        cfg = load_config(args.config, args.cfg_options)
        convert_authors_checkpoint(args.src, args.out, cfg, MODELS.build)
    except (FileNotFoundError, ConfigError, ValueError) as e:
        exit_with_error(e)
    print(f'wrote {args.out}; next: python tools/generate.py {args.config} {args.out} ...')


if __name__ == '__main__':
    main()
