"""Export a trained model as a diffusers-style folder plus our config.

    python tools/export_model.py CONFIG CHECKPOINT OUT_DIR

Text-to-video (TrackletUNet3D) and image-to-video (TrackletUNetSpatioTemporal) models alike:
OUT_DIR gets generator/ (``save_pretrained``), tracklet_encoder/ (weights + config.json),
trackdiffusion.safetensors, scheduler/ (and vae/, text_encoder/, tokenizer/, image_encoder/,
feature_extractor/, category_text_encoder/ when the model has them) and config.py;
``mmtrackgen.models.generators.pretrained.load_exported(OUT_DIR)`` builds the model back. The
checkpoint's ``state_dict`` is what is exported: with the recipe's EMAHook, mmengine stores the
averaged weights there.
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.abspath(osp.join(osp.dirname(__file__), '..')))

from mmtrackgen.generation.runner import GenerationInputError, load_model_weights  # noqa: E402
from mmtrackgen.models.generators.pretrained import export_trackdiffusion  # noqa: E402
from mmtrackgen.registry import MODELS  # noqa: E402
from mmtrackgen.utils import ConfigError, UnsafeCheckpointError  # noqa: E402
from mmtrackgen.utils import exit_with_error, load_config  # noqa: E402


def parse_args():
    parser = argparse.ArgumentParser(description='Export a trained model')
    parser.add_argument('config', help='the config the model was trained with')
    parser.add_argument('checkpoint', help='its checkpoint (.pth)')
    parser.add_argument('out_dir', help='folder to write')
    return parser.parse_args()


def main():
    args = parse_args()
    try:
        cfg = load_config(args.config)
        model = MODELS.build(cfg.model)
        load_model_weights(model, args.checkpoint, f"config '{args.config}'")
        export_trackdiffusion(model.eval(), cfg, args.out_dir)
    except (FileNotFoundError, ConfigError, UnsafeCheckpointError, GenerationInputError,
            ValueError) as e:
        exit_with_error(e)
    print(f'exported to {args.out_dir}')


if __name__ == '__main__':
    main()
