"""A page to draw tracklets and watch the video they become (Gradio).

    python tools/app.py CONFIG CHECKPOINT [--port 7860] [--host 127.0.0.1] [--device cpu]

Open http://127.0.0.1:7860: draw boxes on keyframes (or load a tracklet JSON / CocoVID file, or
a clip of the config's test split), preview the layout, generate, and download the clip as
MP4/GIF and as a zip in the CocoVID + tracklet JSON form of tools/generate.py. The page's logic
lives in mmtrackgen/app/.
"""
import argparse

import torch

from mmtrackgen.generation.runner import GenerationInputError
from mmtrackgen.utils import ConfigError, UnsafeCheckpointError, exit_with_error


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', help='the model config')
    parser.add_argument('checkpoint', help='the trained model checkpoint')
    parser.add_argument('--port', type=int, default=7860, help='port to serve the page on')
    parser.add_argument(
        '--host', default='127.0.0.1', help='address to listen on (0.0.0.0: all interfaces)')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from mmtrackgen.app.editor import PageInputError
    from mmtrackgen.app.page import launch
    try:
        launch(args.config, args.checkpoint, port=args.port, host=args.host, device=args.device)
    except (FileNotFoundError, GenerationInputError, PageInputError, ConfigError,
            UnsafeCheckpointError) as e:
        exit_with_error(e)  # one line naming what to fix, exit code 2


if __name__ == '__main__':
    main()
