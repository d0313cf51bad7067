"""Convert a GOT-10k split to a CocoVID annotation file that TrackletClipDataset reads.

    python tools/dataset_converters/got10k_to_cocovid.py data/got10k --split train

GOT-10k keeps one folder per sequence: frames ``00000001.jpg``..., ``groundtruth.txt`` (one
``x,y,w,h`` box per frame), ``absence.label`` (1 where the object is out of view), ``cover.label``
(visible fraction in ninths: 0 hidden .. 8 fully visible) and ``meta_info.ini`` (``object_class``).
Each sequence becomes a video with one instance; absent frames get no box, which is how the
tracklet format expresses disappearance.
"""
import argparse
import os
import os.path as osp
import sys

from mmengine.utils import ProgressBar
from PIL import Image

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
from mmtrackgen.utils.files import write_json_atomic  # noqa: E402


def read_lines(path):
    with open(path) as f:
        return [line.strip() for line in f if line.strip()]


def object_class(seq_dir):
    meta = osp.join(seq_dir, 'meta_info.ini')
    if osp.isfile(meta):
        for line in read_lines(meta):
            key, _, value = line.partition(':')
            if key.strip() == 'object_class' and value.strip():
                return value.strip()
    return 'object'


def convert(root, split):
    split_dir = osp.join(root, split)
    if not osp.isdir(split_dir):
        raise FileNotFoundError(f"GOT-10k split folder '{split_dir}' not found")
    list_file = osp.join(split_dir, 'list.txt')
    seqs = read_lines(list_file) if osp.isfile(list_file) else sorted(
        d for d in os.listdir(split_dir) if osp.isdir(osp.join(split_dir, d)))
    ann = dict(
        info=dict(source='GOT-10k', split=split),
        categories=[],
        videos=[],
        images=[],
        annotations=[])
    cat_ids, skipped = {}, 0
    bar = ProgressBar(len(seqs))
    for vid, seq in enumerate(seqs, 1):
        seq_dir = osp.join(split_dir, seq)
        frames = sorted(f for f in os.listdir(seq_dir) if f.endswith('.jpg'))
        boxes = read_lines(osp.join(seq_dir, 'groundtruth.txt'))
        n = len(frames)
        absent = (
            read_lines(osp.join(seq_dir, 'absence.label')) if osp.isfile(
                osp.join(seq_dir, 'absence.label')) else ['0'] * n)
        cover = (
            read_lines(osp.join(seq_dir, 'cover.label')) if osp.isfile(
                osp.join(seq_dir, 'cover.label')) else ['8'] * n)
        if not (len(boxes) == len(absent) == len(cover) == n):
            raise ValueError(f"sequence '{seq_dir}': {n} frames but {len(boxes)} boxes, "
                             f'{len(absent)} absence and {len(cover)} cover labels')
        with Image.open(osp.join(seq_dir, frames[0])) as im:
            width, height = im.size
        name = object_class(seq_dir)
        cat = cat_ids.setdefault(name, len(cat_ids) + 1)
        ann['videos'].append(dict(id=vid, name=seq, width=width, height=height))
        for t, frame in enumerate(frames):
            img_id = len(ann['images']) + 1
            ann['images'].append(
                dict(
                    id=img_id,
                    video_id=vid,
                    frame_id=t,
                    file_name=f'{seq}/{frame}',
                    width=width,
                    height=height))
            x, y, w, h = (float(v) for v in boxes[t].replace(' ', ',').split(',')[:4])
            inside = x < width and y < height and x + w > 0 and y + h > 0
            if absent[t] == '1' or w <= 0 or h <= 0 or not inside:
                skipped += absent[t] != '1'
                continue
            ann['annotations'].append(
                dict(
                    id=len(ann['annotations']) + 1,
                    image_id=img_id,
                    video_id=vid,
                    category_id=cat,
                    instance_id=vid,
                    bbox=[x, y, w, h],
                    area=w * h,
                    iscrowd=0,
                    visibility=min(1.0,
                                   int(cover[t]) / 8),
                    mot_conf=1.0))
        bar.update()
    ann['categories'] = [dict(id=i, name=n) for n, i in cat_ids.items()]
    out = osp.join(root, 'annotations', f'got10k_{split}_cocoformat.json')
    os.makedirs(osp.dirname(out), exist_ok=True)
    write_json_atomic(out, ann)  # never leave a half-written annotation file
    print(f'\nwrote {out}: {len(seqs)} videos, {len(ann["annotations"])} boxes, '
          f'{len(cat_ids)} classes; {skipped} empty or out-of-image boxes left out')
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('root', help='GOT-10k folder holding train/ and val/')
    parser.add_argument('--split', default='train', choices=['train', 'val', 'test'])
    args = parser.parse_args()
    convert(args.root, args.split)


if __name__ == '__main__':
    main()
