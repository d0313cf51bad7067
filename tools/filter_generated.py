"""Keep the generated clips (or instances) that the project's metrics accept; drop the rest.

    python tools/filter_generated.py GEN_DIR --min-iou 0.5 --out DIR [--level instance]
        [--min-category-acc 0.8 --category-classifier work_dirs/category_classifier.pth]

GEN_DIR is a tools/generate.py output folder. DIR gets the accepted clips as a CocoVID dataset
(``DIR/annotations.json``, frames hard-linked) that the tracker configs read like GEN_DIR, and
``DIR/filter_report.json``: the thresholds, counts, and each clip's and instance's scores and
reasons. Category accuracy per instance comes from a classifier trained on real crops by
tools/train_category_classifier.py (mmtrackgen/evaluation/category.py).
"""
import argparse

from mmtrackgen.datasets.tracklets import TrackletAnnotationError
from mmtrackgen.evaluation.category import CategoryClassifier
from mmtrackgen.generation.filtering import LEVELS, filter_generated
from mmtrackgen.utils import exit_with_error


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('gen_dir', help='a tools/generate.py output folder')
    parser.add_argument('--out', required=True, help='folder of the filtered dataset')
    parser.add_argument(
        '--min-iou', type=float, required=True, help='least mean alignment IoU to keep')
    parser.add_argument(
        '--min-category-acc',
        type=float,
        help='least category accuracy to keep (needs --category-classifier)')
    parser.add_argument(
        '--category-classifier',
        metavar='PTH',
        help='a classifier saved by tools/train_category_classifier.py')
    parser.add_argument(
        '--level',
        choices=LEVELS,
        default='clip',
        help='judge whole clips, or each instance (dropping its boxes) and keep clips with any')
    parser.add_argument('--overwrite', action='store_true', help='replace an earlier output')
    args = parser.parse_args(argv)
    if args.min_category_acc is not None and not args.category_classifier:
        parser.error('--min-category-acc needs --category-classifier PTH')
    return args


def main(argv=None):
    args = parse_args(argv)
    try:
        scorer = (CategoryClassifier.load(args.category_classifier).instance_accuracy
                  if args.category_classifier else None)
        report = filter_generated(
            args.gen_dir,
            args.out,
            min_iou=args.min_iou,
            min_category_acc=args.min_category_acc,
            category_scorer=scorer,
            level=args.level,
            overwrite=args.overwrite)
    except (ValueError, FileNotFoundError, FileExistsError, TrackletAnnotationError) as e:
        exit_with_error(e)
    clips, instances = report['clips'], report['instances']
    print(f"kept {clips['kept']}/{clips['total']} clips, {instances['kept']}/"
          f"{instances['total']} instances, {report['boxes']['kept']}/{report['boxes']['total']} "
          f'boxes; report: {args.out}/filter_report.json')


if __name__ == '__main__':
    main()
