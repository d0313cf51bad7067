"""Train the category classifier that tools/evaluate_generated.py scores category fidelity with.

    python tools/train_category_classifier.py --ann data/synthetic/annotations/train_cocoformat.json \
        --img-prefix data/synthetic/train/ --out work_dirs/category_classifier.pth

It learns the categories of a real dataset from the crops under its boxes (mmtrackgen/evaluation/
category.py) and prints its accuracy on a held-out real split when ``--val-ann`` is given.
"""
import argparse

from mmtrackgen.datasets.tracklets import TrackletAnnotationError
from mmtrackgen.evaluation.category import category_accuracy, train_category_classifier
from mmtrackgen.evaluation.dataset_report import iter_videos
from mmtrackgen.datasets.tracklets import load_cocovid
from mmtrackgen.utils import exit_with_error


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--ann', required=True, help='CocoVID file of real clips to learn from')
    parser.add_argument('--img-prefix', required=True, help='folder of its frames')
    parser.add_argument('--val-ann', help='CocoVID file of held-out real clips')
    parser.add_argument('--val-img-prefix', help='folder of their frames')
    parser.add_argument('--iterations', type=int, default=600)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--out', required=True, help='where to save the classifier (.pth)')
    args = parser.parse_args(argv)
    if bool(args.val_ann) != bool(args.val_img_prefix):
        parser.error('--val-ann and --val-img-prefix go together')
    if args.iterations < 1:
        parser.error(f'--iterations must be >= 1, got {args.iterations}')
    return args


def run(args):
    classes = [c['name'] for c in sorted(load_cocovid(args.ann)['categories'],
                                         key=lambda c: c['id'])]
    videos = list(iter_videos(args.ann, args.img_prefix))
    val = list(iter_videos(args.val_ann, args.val_img_prefix)) if args.val_ann else None
    classifier = train_category_classifier(videos, classes, iterations=args.iterations, seed=args.seed)
    classifier.save(args.out)
    print(f'saved {args.out} (classes: {", ".join(classes)})')
    if val is not None:
        print(f"held-out accuracy on {args.val_ann}: {category_accuracy(val, classifier)['accuracy']:.4f}")
    return classifier


def main(argv=None):
    args = parse_args(argv)
    try:
        return run(args)
    except (FileNotFoundError, TrackletAnnotationError, ValueError) as e:
        exit_with_error(e)


if __name__ == '__main__':
    main()
