"""Score a video dataset against its own tracklets: alignment, category, identity, TrackAP, FVD.

    python tools/evaluate_generated.py OUT_DIR [--reference-ann FILE --reference-prefix DIR]
        [--fvd-weights i3d.pt] [--fid-weights inception.pth] [--random-features SEED]
        [--category-classifier FILE] [--out report.json]
    python tools/evaluate_generated.py --ann data/synthetic/annotations/test_cocoformat.json \
        --img-prefix data/synthetic/test/      # the same figures on real clips: the reference

OUT_DIR is a folder written by tools/generate.py (``OUT_DIR/annotations.json``). Identity and
TrackAP use the synthetic world's training-free tracker. FVD (I3D) and FID (Inception) need a
reference dataset and feature weights from local files (nothing is downloaded);
``--random-features SEED`` uses randomly initialised networks instead, whose figures compare only
with figures made with the same seed. See README.md#evaluating-generated-data for each figure.
"""
import argparse
import json
import math
import os
import os.path as osp

from mmtrackgen.datasets.tracklets import TrackletAnnotationError
from mmtrackgen.utils import UnsafeCheckpointError, exit_with_error
from mmtrackgen.evaluation import load_category_classifier, load_feature_network
from mmtrackgen.evaluation.dataset_report import (iter_videos, tracking_report,
                                                  video_quality_report)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('dataset', nargs='?', help='a tools/generate.py output folder')
    parser.add_argument('--ann', help='a CocoVID file (default: DATASET/annotations.json)')
    parser.add_argument('--img-prefix', help='folder of its frames (default: DATASET)')
    parser.add_argument('--reference-ann', help='CocoVID file of real clips, for FVD/FID')
    parser.add_argument('--reference-prefix', help='folder of the reference frames')
    parser.add_argument('--fvd-weights', help='I3D weights file (Kinetics-400 rgb)')
    parser.add_argument('--fid-weights', help='FID Inception weights file')
    parser.add_argument(
        '--random-features',
        type=int,
        metavar='SEED',
        help='randomly initialised feature networks (figures comparable only with themselves)')
    parser.add_argument(
        '--category-classifier',
        metavar='FILE',
        help='category accuracy with this classifier (tools/train_category_classifier.py)')
    parser.add_argument('--min-area', type=int, default=4, help='tracker: smallest object')
    parser.add_argument('--out', help='write the report as JSON here')
    args = parser.parse_args(argv)
    if args.dataset:
        args.ann = args.ann or osp.join(args.dataset, 'annotations.json')
        args.img_prefix = args.img_prefix or args.dataset
    if not args.ann or args.img_prefix is None:
        parser.error('give a generated DATASET folder, or --ann and --img-prefix')
    if bool(args.reference_ann) != bool(args.reference_prefix):
        parser.error('--reference-ann and --reference-prefix go together')
    return args


def feature_networks(args):
    """(I3D, Inception) as asked for; None where not asked."""
    if args.random_features is not None:
        if args.fvd_weights or args.fid_weights:
            raise ValueError('--random-features replaces --fvd-weights/--fid-weights; give one')
        return (load_feature_network('i3d', None, random_init_seed=args.random_features),
                load_feature_network('inception', None, random_init_seed=args.random_features))
    fvd = load_feature_network('i3d', args.fvd_weights) if args.fvd_weights else None
    fid = load_feature_network('inception', args.fid_weights) if args.fid_weights else None
    return fvd, fid


def print_table(report: dict) -> None:
    rows = []
    for group in ('alignment', 'appearance', 'category', 'identity', 'track_ap', 'fvd', 'fid'):
        for key, value in (report.get(group) or {}).items():
            if isinstance(value, dict):  # per-class figures: in the JSON only
                continue
            if isinstance(value, float):
                value = 'nan' if math.isnan(value) else f'{value:.4f}'
            rows.append((f'{group}.{key}', str(value)))
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f'{name:<{width}}  {value}')


def run(args) -> dict:
    # Every input (options, weights, annotations, frames) is read before any figure is computed,
    # so a bad one stops the run at once.
    if args.out:
        folder = osp.dirname(osp.abspath(args.out))
        if not osp.isdir(folder) or not os.access(folder, os.W_OK):
            raise ValueError(f"--out '{args.out}': the folder '{folder}' does not exist or is not "
                             'writable')
    if args.reference_ann:
        fvd_network, fid_network = feature_networks(args)
        if fvd_network is None and fid_network is None:
            raise ValueError('a reference dataset needs --fvd-weights/--fid-weights or '
                             '--random-features')
    classifier = load_category_classifier(args.category_classifier)
    videos = list(iter_videos(args.ann, args.img_prefix))
    if not videos:
        raise ValueError(f"'{args.ann}' holds no videos")
    if args.reference_ann:
        reference = list(iter_videos(args.reference_ann, args.reference_prefix))
    report = dict(dataset=args.ann, videos=len(videos))
    report.update(tracking_report(videos, args.min_area, classifier))
    if args.reference_ann:
        report['reference'] = args.reference_ann
        report['feature_weights'] = (f'random (seed {args.random_features})'
                                     if args.random_features is not None else dict(
                                         i3d=args.fvd_weights, inception=args.fid_weights))
        report.update(video_quality_report(videos, reference, fvd_network, fid_network))
    print()
    print_table(report)
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(report, f, indent=2)
    return report


def main(argv=None):
    args = parse_args(argv)
    try:
        return run(args)
    except (FileNotFoundError, TrackletAnnotationError, ValueError, UnsafeCheckpointError) as e:
        exit_with_error(e)  # one line, exit code 2


if __name__ == '__main__':
    main()
