"""Malformed inputs through the command-line tools, in-process.

Every error case runs ``main`` of tools/generate.py, tools/evaluate_generated.py or tools/train.py
and must end in ``SystemExit(2)`` with ONE line on stderr (no traceback) that names the file and,
where it applies, the clip/video, frame and field; nothing in the case's folder may change (no
output folder, no clip folder, no report). The repair cases run to the end and check the
documented repair instead.
"""
# Case table: every case of this file and how the tools handle it. ("-> error": exit 2 and one
# line naming what is in brackets; "-> repair": generation goes on as documented.)
#
# Tracklet file (generate.py --tracklets), any format
#   tracklets_missing            no such file -> error [file]
#   tracklets_is_folder          a folder -> error [file, 'is a folder']
#   tracklets_unreadable         mode 000 (skipped as root) -> error [file, 'cannot be read']
#   tracklets_not_json           '{"clips": [' -> error [file, 'not valid JSON', line/column]
#   tracklets_empty              0 bytes -> error [file, 'not valid JSON']
#   tracklets_not_utf8           binary bytes -> error [file, 'not UTF-8']
#   tracklets_top_level_list     [1, 2] -> error [file, 'JSON object']
#   tracklets_neither_format     {"foo": 1} -> error [file, 'neither']
#   tracklets_both_formats       'clips' and 'videos' -> error [file, 'one or the other']
# mmtrackgen tracklet JSON format (docs/tracklet_format.md)
#   json_missing_clips           no 'clips' -> error [file, field clips]
#   json_no_clips                "clips": [] -> error [file, field clips]
#   json_clips_not_list          "clips": {} -> error [file, field clips]
#   json_missing_num_frames      -> error [file, clip, field clips[0].num_frames]
#   json_missing_boxes           -> error [file, clip, field ...instances[0].boxes]
#   json_missing_instance_id     -> error [file, clip, field ...instances[1].id]
#   json_empty_name              "name": "" -> error [file, field clips[0].name]
#   json_image_size_string       "16x16" -> error [file, clip, field clips[0].image_size]
#   json_num_frames_string       "4" -> error [file, clip, field clips[0].num_frames]
#   json_caption_number          -> error [file, clip, field clips[0].caption]
#   json_box_strings             ["1", ...] -> error [file, clip, frame 2, field ...boxes[2]]
#   json_box_bool                true as x1 -> error [file, clip, frame 1, field ...boxes[1]]
#   json_box_three_numbers       -> error [file, clip, frame 0, field ...boxes[0]]
#   json_box_nan                 NaN -> error [file, clip, frame 1, field, 'non-finite']
#   json_box_infinity            Infinity -> error [file, clip, frame 3, field, 'non-finite']
#   json_box_minus_infinity      -Infinity -> error [file, clip, frame 2, field, 'non-finite']
#   json_box_x2_lt_x1            -> error [file, clip, frame 2, field, 'zero or negative area']
#   json_box_zero_area           y2 == y1 -> error [file, clip, frame 0, field, 'zero or ...']
#   json_box_far_outside         x2 = 40 in 16 px -> error [file, clip, frame 1, field, 'outside']
#   json_box_far_left            x1 = -20 -> error [file, clip, frame 3, field, 'outside']
#   json_box_count_mismatch      3 boxes, 4 frames -> error [file, clip, field ...boxes]
#   json_duplicate_instance_id   -> error [file, clip, field ...instances[1].id]
#   json_duplicate_clip_name     -> error [file, clip, field clips[1].name]
#   json_misspelt_key            'visiblity' -> error [file, clip, field ...visiblity]
#   json_visibility_above_one    1.5 -> error [file, clip, frame 2, field ...visibility[2]]
#   json_visibility_without_box  -> error [file, clip, frame 0, field ...visibility[0]]
#   json_frame_ids_repeat        [0, 1, 1, 2] (frame gap the wrong way) -> error [frame 2]
#   json_category_not_in_file    'sqaure' -> error [file, clip, field ...category]
#   json_category_unknown_model  'zebra' (file lists none) -> error [file, clip, 'category']
#   json_newer_version           version 2 -> error [file, field version]
#   json_wrong_format_name       -> error [file, field format]
#   json_clip_too_short          2 frames, model needs 4 -> error [file, 'no clip of 4 frames']
# CocoVID annotation files
#   coco_missing_annotations     -> error [file, field annotations]
#   coco_videos_not_list         -> error [file, field videos]
#   coco_missing_bbox            -> error [file, field annotations.bbox]
#   coco_bbox_string             -> error [file, video, frame 2, field annotations.bbox]
#   coco_bbox_nan                -> error [file, video, frame 2, field, 'non-finite']
#   coco_bbox_infinity           -> error [file, video, frame 3, field, 'non-finite']
#   coco_bbox_negative_width     (x2 < x1) -> error [file, video, frame 2, field bbox]
#   coco_bbox_zero_height        -> error [file, video, frame 1, field bbox]
#   coco_bbox_entirely_outside   -> error [file, video, frame 2, field bbox, 'outside']
#   coco_duplicate_instance      same instance_id twice in a frame -> error [frame 2, field]
#   coco_duplicate_frame_id      two images with frame_id 2 -> error [video, frame 2, field]
#   coco_frame_id_float          -> error [file, video, field images.frame_id]
#   coco_width_string            -> error [file, video, frame 2, field images.width]
#   coco_size_changes            one frame 64 px wide -> error [file, video, frame 2, field]
#   coco_instance_id_string      -> error [file, video, frame 2, field annotations.instance_id]
#   coco_unknown_category_id     -> error [file, video, frame 2, field annotations.category_id]
#   coco_category_unknown_model  'zebra' -> error [file, video, field category]
#   coco_unknown_video_id        -> error [file, field images.video_id]
#   coco_unknown_image_id        -> error [file, field annotations.image_id]
#   coco_no_videos               all lists empty -> error [file, field videos]
#   coco_video_without_images    -> error [file, video 'empty', 'no images']
# Checkpoint (generate.py CHECKPOINT)
#   checkpoint_missing           -> error [file]
#   checkpoint_other_model       {'state_dict': {'foo': ...}} -> error [file, 'none of the']
#   checkpoint_half_the_weights  -> error [file, 'does not fit', 'lacks']
#   checkpoint_wrong_shape       one weight of another shape -> error [file, weight, shape]
#   checkpoint_not_a_dict        a saved tensor -> error [file, 'not a state dict']
#   checkpoint_truncated         first half of a checkpoint -> error [file, 'cannot be read']
#   checkpoint_text_file         'hello' -> error [file, 'cannot be read']
#   checkpoint_runs_code         pickles posix.getcwd -> error [file, 'Refused', 'posix.getcwd']
# Config (generate.py CONFIG, train.py CONFIG)
#   config_missing               -> error [file, 'does not exist']
#   config_syntax_error          -> error [file, line 2, 'syntax error']
#   config_name_error            -> error [file, 'NameError']
#   config_base_missing          _base_ file missing -> error [file, base file]
#   config_without_classes       -> error [file, 'classes']
#   config_num_frames_zero       --cfg-options num_frames=0 -> error [file, 'num_frames']
#   config_unknown_model_type    --cfg-options model.type=NoSuchModel -> error [file, type]
#   augment_without_policy       --augment 2, no tracklet_augment -> error [file, option]
#   augment_unknown_policy       tracklet_augment of an unknown type -> error [file, type]
#   train_config_missing         tools/train.py -> error [file]
#   train_config_syntax_error    tools/train.py -> error [file, line 2]
#   train_config_name_error      tools/train.py -> error [file, 'NameError']
# Command-line arguments (generate.py)
#   batch_size_zero              --batch-size 0 -> error [option]
#   num_samples_zero             --num-samples 0 -> error [option]
#   steps_negative               --steps -1 -> error [option]
#   steps_zero                   --steps 0 (was silently the config's) -> error [option]
#   clip_stride_zero             --clip-stride 0 -> error [option]
#   augment_negative             --augment -1 -> error [option]
#   seed_negative                --seed -1 -> error [option]
#   guidance_nan                 --guidance nan -> error [option]
#   scheduler_unknown            --scheduler NoSuchScheduler -> error [option, name]
#   scheduler_not_a_scheduler    --scheduler UNet2DModel -> error [option, name]
#   out_dir_unwritable           parent mode 0500 (skipped as root) -> error [folder]
#   out_dir_under_a_file         parent is a file -> error [folder]
#   out_dir_is_a_file            -> error [folder]
# tools/evaluate_generated.py on a generated folder
#   eval_no_annotations          folder without annotations.json -> error [file]
#   eval_annotations_not_json    -> error [file, 'not valid JSON']
#   eval_annotations_nan_box     -> error [file, video, frame 1, field annotations.bbox]
#   eval_no_videos               -> error [file, field videos]
#   eval_frame_missing           -> error [video, frame 1, frame file]
#   eval_frame_truncated         half a JPEG -> error [video, frame 2, frame file, 'decoded']
#   eval_frame_empty             0 bytes -> error [video, frame 0, frame file, 'decoded']
#   eval_frame_not_an_image      text -> error [video, frame 3, frame file, 'decoded']
#   eval_frame_other_size        8x8 frame in a 16x16 video -> error [video, frame 1, file]
#   eval_fvd_weights_missing     -> error [weights file]
#   eval_fvd_weights_truncated   -> error [weights file, 'cannot be read']
#   eval_fvd_weights_run_code    -> error [weights file, 'Refused'] (UnsafeCheckpointError)
#   eval_out_under_a_file        --out FILE/report.json -> error [option, folder]
#   eval_random_and_weights      --random-features with --fvd-weights -> error [options]
#
# Documented repairs (generation succeeds; test_documented_repairs)
#   repair_more_instances_than_slots  6 instances for 4 slots: AssignInstanceSlots keeps the 4
#                                     most visible and logs "dropped 2 by policy 'most_visible'"
#   repair_coco_frame_gap        frame_ids 0,1,2,5: frames kept as they are, clip.json records
#                                frame_ids [0, 1, 2, 5] (docs/tracklet_format.md, CocoVID)
#   repair_coco_box_past_border  a box reaching past the image (MOT full extent) is clipped
#   repair_coco_ignored          annotations with "ignore": true are left out
#   repair_too_short_video       a video shorter than a clip is skipped, named on stderr
#   repair_json_box_within_1px   a box at most 1 px (BOX_TOLERANCE) past the border is clipped
#   repair_json_never_visible    an instance null in every frame is kept in the layout and
#                                left out of the clip (not visible in it)
import contextlib
import copy
import io
import json
import logging
import math
import os
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch
from mmengine.logging import MMLogger
from PIL import Image

from tests.factories import moving_track, write_cocovid
from tools.evaluate_generated import main as evaluate_main
from tools.generate import main as generate_main
from tools.train import main as train_main

ROOT = Path(__file__).resolve().parents[1]
CONFIG = str(ROOT / 'tests/data/trackdiff_micro.py')
CLASSES = ('square', 'circle', 'triangle', 'cross')  # the micro config's classes

# ----------------------------------------------------------------------------------------------
# Fixtures: a micro checkpoint and a small generated dataset


def good_json() -> dict:
    """A valid file of the mmtrackgen tracklet format: one 4-frame clip 'cross' at 16x16."""
    square = dict(id=1, category='square', boxes=[[1 + t, 2, 7 + t, 8] for t in range(4)])
    circle = dict(
        id=2,
        category='circle',
        boxes=[None, [8, 8, 12, 12], [8, 8, 12, 12], [9, 8, 13, 12]],
        visibility=[None, 0.5, 1.0, 1.0])
    clip = dict(name='cross', image_size=[16, 16], num_frames=4, instances=[square, circle])
    return dict(format='mmtrackgen-tracklets', version=1, categories=list(CLASSES), clips=[clip])


def good_cocovid(folder: Path) -> dict:
    """A valid CocoVID dict: video 'walk', 5 frames of 32x24 (image index t = frame_id t), two
    instances in every frame; annotation 2 * t + k is instance k + 1 in frame t."""
    path = write_cocovid(
        str(folder), [
            dict(
                name='walk',
                num_frames=5,
                tracks={
                    1: moving_track(0, 0, 5, (2, 2), (6, 6), (2, 1)),
                    2: moving_track(1, 0, 5, (20, 10), (5, 8), (-1, 0)),
                })
        ],
        classes=CLASSES,
        write_frames=False)
    return json.loads(Path(path).read_text())


@pytest.fixture(scope='module')
def generated(checkpoint, tmp_path_factory):
    """A generated dataset (two 4-frame clips 'cross_000000', 'walk_000000' at 16x16)."""
    root = tmp_path_factory.mktemp('generated')
    data = good_json()
    data['clips'].append(dict(good_json()['clips'][0], name='walk'))
    tracklets = root / 'tracklets.json'
    tracklets.write_text(json.dumps(data))
    out = root / 'out'
    assert generate_main([
        CONFIG, checkpoint, '--tracklets',
        str(tracklets), '--out-dir',
        str(out), '--device', 'cpu'
    ]) == 0
    return out


# ----------------------------------------------------------------------------------------------
# Building the cases


@dataclass
class Env:
    """What a case builds its input in: its own folder, the checkpoint, the generated dataset."""
    tmp: Path
    checkpoint: str
    generated: Path

    @property
    def out(self) -> Path:
        return self.tmp / 'out'

    def write(self, name: str, content) -> str:
        path = self.tmp / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        elif isinstance(content, str):
            path.write_text(content)
        else:
            path.write_text(json.dumps(content))  # nan/inf as NaN/Infinity, as Python reads
        return str(path)

    def generate_argv(self, tracklets=None, *extra, config=CONFIG, checkpoint=None):
        tracklets = tracklets or self.write('tracklets.json', good_json())
        return [
            config, checkpoint or self.checkpoint, '--tracklets', tracklets, '--out-dir',
            str(self.out), '--device', 'cpu', *extra
        ]

    def copy_generated(self) -> Path:
        folder = self.tmp / 'dataset'
        shutil.copytree(self.generated, folder)
        return folder


@dataclass
class Case:
    name: str
    tool: str  # 'generate', 'evaluate' or 'train'
    make: Callable[[Env], list]  # the tool's arguments
    expect: tuple  # what the one stderr line must contain
    skip_as_root: bool = False


def _walk(data, keys: str):
    *head, last = [int(k) if k.lstrip('-').isdigit() else k for k in keys.split('/')]
    for key in head:
        data = data[key]
    return data, last


def put(keys: str, value):
    """A mutation: set ``data[k1][k2]...`` (keys joined by '/') to ``value``."""

    def mutate(data):
        parent, last = _walk(data, keys)
        parent[last] = copy.deepcopy(value)

    return mutate


def drop(keys: str):
    """A mutation: delete ``data[k1][k2]...``."""

    def mutate(data):
        parent, last = _walk(data, keys)
        del parent[last]

    return mutate


def json_case(name: str, mutate, *expect) -> Case:
    """A generate.py case on a mutated :func:`good_json` file."""

    def make(env):
        data = good_json()
        mutate(data)
        return env.generate_argv(env.write('tracklets.json', data))

    return Case(name, 'generate', make, ('tracklets.json', ) + expect)


def coco_case(name: str, mutate, *expect) -> Case:
    """A generate.py case on a mutated :func:`good_cocovid` file."""

    def make(env):
        data = good_cocovid(env.tmp / 'source')
        shutil.rmtree(env.tmp / 'source')
        mutate(data)
        return env.generate_argv(env.write('ann.json', data))

    return Case(name, 'generate', make, ('ann.json', ) + expect)


def file_case(name: str, content, *expect, skip_as_root=False, mode=None) -> Case:
    """A generate.py case whose tracklet file holds ``content`` (bytes or text)."""

    def make(env):
        path = env.write('tracklets.json', content)
        if mode is not None:
            os.chmod(path, mode)
        return env.generate_argv(path)

    return Case(name, 'generate', make, ('tracklets.json', ) + expect, skip_as_root)


def args_case(name: str, *args_and_expect) -> Case:
    """A generate.py case with valid files and extra arguments ``args_and_expect[0]``."""
    extra, *expect = args_and_expect
    return Case(name, 'generate', lambda env: env.generate_argv(None, *extra), tuple(expect))


VIDEO = "video 'cross'"
WALK = "video 'walk'"


def field(text: str) -> str:
    return f"field '{text}'"


def frame(t: int) -> str:
    return f'frame {t},'


def inst(j: int, rest: str = '') -> str:
    return field(f'clips[0].instances[{j}]{rest}')


def with_clip(**changes):

    def mutate(data):
        data['clips'][0].update(changes)

    return mutate


def two_clips_named_alike(data):
    data['clips'].append(copy.deepcopy(data['clips'][0]))


def short_clip(data):
    clip = data['clips'][0]
    clip['num_frames'] = 2
    for instance in clip['instances']:
        instance['boxes'] = instance['boxes'][:2]
        if 'visibility' in instance:
            instance['visibility'] = instance['visibility'][:2]


def unknown_model_category(data):
    del data['categories']
    data['clips'][0]['instances'][1]['category'] = 'zebra'


TRACKLET_FILE_CASES = [
    Case('tracklets_missing', 'generate', lambda env: env.generate_argv(str(env.tmp / 'no.json')),
         ('no.json', 'does not exist')),
    Case('tracklets_is_folder', 'generate', lambda env: env.generate_argv(str(env.tmp)),
         ('annotation file', 'is a folder')),
    file_case(
        'tracklets_unreadable',
        json.dumps(good_json()),
        'cannot be read',
        skip_as_root=True,
        mode=0),
    file_case('tracklets_not_json', '{"clips": [', 'not valid JSON', 'line 1'),
    file_case('tracklets_empty', '', 'not valid JSON'),
    file_case('tracklets_not_utf8', b'\xff\xfe\x00\x81binary', 'not UTF-8'),
    file_case('tracklets_top_level_list', '[1, 2]', 'JSON object', 'got list'),
    file_case('tracklets_neither_format', '{"foo": 1}', 'neither'),
    file_case('tracklets_both_formats', '{"clips": [], "videos": []}', 'one or the other'),
]

JSON_CASES = [
    json_case('json_missing_clips', drop('clips'), field('clips'), 'missing'),
    json_case('json_no_clips', put('clips', []), field('clips'), 'no clips'),
    json_case('json_clips_not_list', put('clips', {}), field('clips'), 'expected a list'),
    json_case('json_missing_num_frames', drop('clips/0/num_frames'), VIDEO,
              field('clips[0].num_frames'), "missing 'num_frames'"),
    json_case('json_missing_boxes', drop('clips/0/instances/0/boxes'), VIDEO, inst(0, '.boxes'),
              "missing 'boxes'"),
    json_case('json_missing_instance_id', drop('clips/0/instances/1/id'), VIDEO, inst(1, '.id')),
    json_case('json_empty_name', put('clips/0/name', ''), field('clips[0].name')),
    json_case('json_image_size_string', put('clips/0/image_size', '16x16'), VIDEO,
              field('clips[0].image_size'), '[height, width]'),
    json_case('json_num_frames_string', put('clips/0/num_frames', '4'), VIDEO,
              field('clips[0].num_frames')),
    json_case('json_caption_number', put('clips/0/caption', 7), VIDEO, field('clips[0].caption')),
    json_case('json_box_strings', put('clips/0/instances/0/boxes/2', ['3', '2', '9', '8']), VIDEO,
              frame(2), inst(0, '.boxes[2]'), 'four numbers'),
    json_case('json_box_bool', put('clips/0/instances/1/boxes/1', [True, 8, 12, 12]), VIDEO,
              frame(1), inst(1, '.boxes[1]')),
    json_case('json_box_three_numbers', put('clips/0/instances/0/boxes/0', [1, 2, 7]), VIDEO,
              frame(0), inst(0, '.boxes[0]')),
    json_case('json_box_nan', put('clips/0/instances/0/boxes/1', [2, 2, math.nan, 8]), VIDEO,
              frame(1), inst(0, '.boxes[1]'), 'non-finite'),
    json_case('json_box_infinity', put('clips/0/instances/1/boxes/3', [9, 8, 13, math.inf]), VIDEO,
              frame(3), inst(1, '.boxes[3]'), 'non-finite'),
    json_case('json_box_minus_infinity', put('clips/0/instances/0/boxes/2', [-math.inf, 2, 9, 8]),
              VIDEO, frame(2), inst(0, '.boxes[2]'), 'non-finite'),
    json_case('json_box_x2_lt_x1', put('clips/0/instances/0/boxes/2', [9, 2, 3, 8]), VIDEO,
              frame(2), inst(0, '.boxes[2]'), 'zero or negative area'),
    json_case('json_box_zero_area', put('clips/0/instances/0/boxes/0', [1, 2, 7, 2]), VIDEO,
              frame(0), inst(0, '.boxes[0]'), 'zero or negative area'),
    json_case('json_box_far_outside', put('clips/0/instances/1/boxes/1', [8, 8, 40, 12]), VIDEO,
              frame(1), inst(1, '.boxes[1]'), 'outside the image'),
    json_case('json_box_far_left', put('clips/0/instances/0/boxes/3', [-20, 2, 10, 8]), VIDEO,
              frame(3), inst(0, '.boxes[3]'), 'outside the image'),
    json_case('json_box_count_mismatch', put('clips/0/instances/0/boxes', [[1, 2, 7, 8]] * 3),
              VIDEO, inst(0, '.boxes'), 'got 3 entries'),
    json_case('json_duplicate_instance_id', put('clips/0/instances/1/id', 1), VIDEO, inst(1, '.id'),
              'also used by instances[0]'),
    json_case('json_duplicate_clip_name', two_clips_named_alike, VIDEO, field('clips[1].name'),
              'unique'),
    json_case('json_misspelt_key', put('clips/0/instances/0/visiblity', [1, 1, 1, 1]), VIDEO,
              inst(0, '.visiblity'), 'unknown key'),
    json_case('json_visibility_above_one', put('clips/0/instances/1/visibility/2', 1.5), VIDEO,
              frame(2), inst(1, '.visibility[2]'), '[0, 1]'),
    json_case('json_visibility_without_box', put('clips/0/instances/1/visibility/0', 0.7), VIDEO,
              frame(0), inst(1, '.visibility[0]')),
    json_case('json_frame_ids_repeat', with_clip(frame_ids=[0, 1, 1, 2]), VIDEO, frame(2),
              field('clips[0].frame_ids[2]'), 'must increase'),
    json_case('json_category_not_in_file', put('clips/0/instances/0/category', 'sqaure'), VIDEO,
              inst(0, '.category'), "'sqaure'"),
    json_case('json_category_unknown_model', unknown_model_category, VIDEO, field('category'),
              "'zebra'", "model's classes"),
    json_case('json_newer_version', put('version', 2), field('version'), 'newer'),
    json_case('json_wrong_format_name', put('format', 'tracklets'), field('format')),
    json_case('json_clip_too_short', short_clip, 'no clip of 4 frames'),
]


def coco_bbox(index: int, value):
    return put(f'annotations/{index}/bbox', value)


def add_empty_video(data):
    data['videos'].append(dict(id=2, name='empty', width=32, height=24))


def empty_cocovid(data):
    for key in ('videos', 'images', 'annotations'):
        data[key] = []


def zebra(data):
    data['categories'][1]['name'] = 'zebra'


COCO_CASES = [
    coco_case('coco_missing_annotations', drop('annotations'), field('annotations'), 'missing'),
    coco_case('coco_videos_not_list', put('videos', {}), field('videos'), 'expected a list'),
    coco_case('coco_missing_bbox', drop('annotations/4/bbox'), field('annotations.bbox'),
              "no 'bbox'"),
    coco_case('coco_bbox_string', coco_bbox(4, '6,4,6,6'), WALK, frame(2),
              field('annotations.bbox'), 'four numbers'),
    coco_case('coco_bbox_nan', coco_bbox(4, [6, 4, math.nan, 6]), WALK, frame(2),
              field('annotations.bbox'), 'non-finite'),
    coco_case('coco_bbox_infinity', coco_bbox(7, [17, 10, 5, math.inf]), WALK, frame(3),
              field('annotations.bbox'), 'non-finite'),
    coco_case('coco_bbox_negative_width', coco_bbox(4, [6, 4, -3, 6]), WALK, frame(2),
              field('annotations.bbox'), 'non-positive width'),
    coco_case('coco_bbox_zero_height', coco_bbox(2, [4, 3, 6, 0]), WALK, frame(1),
              field('annotations.bbox'), 'non-positive'),
    coco_case('coco_bbox_entirely_outside', coco_bbox(4, [100, 4, 6, 6]), WALK, frame(2),
              field('annotations.bbox'), 'entirely outside'),
    coco_case('coco_duplicate_instance', put('annotations/5/instance_id', 1), WALK, frame(2),
              field('annotations.instance_id'), 'same frame'),
    coco_case('coco_duplicate_frame_id', put('images/3/frame_id', 2), WALK, frame(2),
              field('images.frame_id'), 'same frame_id'),
    coco_case('coco_frame_id_float', put('images/2/frame_id', 2.0), WALK, field('images.frame_id'),
              'integer'),
    coco_case('coco_width_string', put('images/2/width', '32'), WALK, frame(2),
              field('images.width')),
    coco_case('coco_size_changes', put('images/2/width', 64), WALK, frame(2), field('images.width'),
              'one image size'),
    coco_case('coco_instance_id_string', put('annotations/4/instance_id', '1'), WALK, frame(2),
              field('annotations.instance_id'), 'integer'),
    coco_case('coco_unknown_category_id', put('annotations/4/category_id', 99), WALK, frame(2),
              field('annotations.category_id'), 'unknown category_id 99'),
    coco_case('coco_category_unknown_model', zebra, WALK, field('category'), "'zebra'"),
    coco_case('coco_unknown_video_id', put('images/2/video_id', 9), field('images.video_id')),
    coco_case('coco_unknown_image_id', put('annotations/4/image_id', 99),
              field('annotations.image_id')),
    coco_case('coco_no_videos', empty_cocovid, field('videos'), 'no videos'),
    coco_case('coco_video_without_images', add_empty_video, "video 'empty'", 'no images'),
]


class _RunsCode:
    """Pickles as a call of ``os.getcwd``: harmless, but a loader that allowed it would run it."""

    def __reduce__(self):
        return os.getcwd, ()


def checkpoint_case(name: str, write: Callable[[Path, str], None], *expect) -> Case:
    """A generate.py case whose checkpoint ``write(path, good_checkpoint)`` made."""

    def make(env):
        path = env.tmp / 'bad.pth'
        write(path, env.checkpoint)
        return env.generate_argv(None, checkpoint=str(path))

    return Case(name, 'generate', make, ('bad.pth', ) + expect)


def state_dict_of(path: str) -> dict:
    return torch.load(path, map_location='cpu', weights_only=True)['state_dict']


def half_the_weights(path, good):
    state = state_dict_of(good)
    torch.save({'state_dict': dict(list(state.items())[::2]), 'meta': {}}, path)


def one_wrong_shape(path, good):
    state = state_dict_of(good)
    key = next(k for k, v in state.items() if v.ndim == 2)
    state[key] = torch.zeros(3, 3)
    torch.save({'state_dict': state, 'meta': {}}, path)


def truncated(path, good):
    data = Path(good).read_bytes()
    path.write_bytes(data[:len(data) // 2])


CHECKPOINT_CASES = [
    Case('checkpoint_missing', 'generate',
         lambda env: env.generate_argv(None, checkpoint=str(env.tmp / 'none.pth')),
         ('none.pth', 'does not exist')),
    checkpoint_case('checkpoint_other_model',
                    lambda p, _: torch.save({'state_dict': {
                        'foo': torch.zeros(1)
                    }}, p), 'none of the', "'foo'", 'not a checkpoint of this model'),
    checkpoint_case('checkpoint_half_the_weights', half_the_weights, 'does not fit', 'lacks'),
    checkpoint_case('checkpoint_wrong_shape', one_wrong_shape, 'weight', 'shape (3, 3)'),
    checkpoint_case('checkpoint_not_a_dict', lambda p, _: torch.save(torch.zeros(3), p),
                    'Tensor, not a state dict'),
    checkpoint_case('checkpoint_truncated', truncated, 'cannot be read'),
    checkpoint_case('checkpoint_text_file', lambda p, _: p.write_text('hello\n'), 'cannot be read'),
    checkpoint_case('checkpoint_runs_code',
                    lambda p, _: torch.save({
                        'state_dict': {},
                        'meta': _RunsCode()
                    }, p), 'Refused to load checkpoint', 'getcwd'),
]

BASE = f"_base_ = ['{CONFIG}']\n"


def config_case(name: str, text: str, *expect, extra=(), tool='generate') -> Case:
    """A case whose config file holds ``text``; generate.py or train.py."""

    def make(env):
        path = env.write('bad_config.py', text)
        if tool == 'train':
            return [path, '--work-dir', str(env.out)]
        return env.generate_argv(None, *extra, config=path)

    return Case(name, tool, make, ('bad_config.py', ) + expect)


CONFIG_CASES = [
    Case('config_missing', 'generate',
         lambda env: env.generate_argv(None, config=str(env.tmp / 'none.py')),
         ('none.py', 'does not exist')),
    config_case('config_syntax_error', BASE + 'num_frames = (4,\n', 'line 2', 'syntax error'),
    config_case('config_name_error', BASE + 'num_frames = frames_per_clip\n', 'NameError',
                'frames_per_clip'),
    config_case('config_base_missing', "_base_ = ['./no_such_base.py']\n", 'no_such_base.py',
                'does not exist'),
    config_case(
        'config_without_classes',  # neither the config nor its training dataset names them
        BASE + 'classes = None\ntrain_dataloader = dict(dataset=dict(metainfo=None))\n',
        'classes'),
    config_case(
        'config_num_frames_zero', BASE, 'num_frames', extra=('--cfg-options', 'num_frames=0')),
    config_case(
        'config_unknown_model_type',
        BASE,
        'NoSuchModel',
        'cannot be built',
        extra=('--cfg-options', 'model.type=NoSuchModel')),
    config_case(
        'augment_without_policy',
        BASE + 'tracklet_augment = None\n',
        '--augment',
        'tracklet_augment',
        extra=('--augment', '2')),
    config_case(
        'augment_unknown_policy',
        BASE + "tracklet_augment = [dict(type='NoSuchAugment')]\n",
        'tracklet_augment',
        'NoSuchAugment',
        extra=('--augment', '2')),
    Case('train_config_missing', 'train',
         lambda env: [str(env.tmp / 'none.py'), '--work-dir',
                      str(env.out)], ('none.py', 'does not exist')),
    config_case(
        'train_config_syntax_error', BASE + 'x = [1,\n', 'line 2', 'syntax error', tool='train'),
    config_case('train_config_name_error', BASE + 'x = y\n', 'NameError', tool='train'),
]


def unwritable_parent(env):
    parent = env.tmp / 'locked'
    parent.mkdir()
    os.chmod(parent, 0o500)
    return env.generate_argv(None)[:5] + [str(parent / 'out'), '--device', 'cpu']


def under_a_file(env):
    env.write('a_file', 'x')
    return env.generate_argv(None)[:5] + [str(env.tmp / 'a_file' / 'out'), '--device', 'cpu']


def out_is_a_file(env):
    path = env.write('out_file', 'x')
    return env.generate_argv(None)[:5] + [path, '--device', 'cpu']


ARGS_CASES = [
    args_case('batch_size_zero', ['--batch-size', '0'], '--batch-size must be >= 1, got 0'),
    args_case('num_samples_zero', ['--num-samples', '0'], '--num-samples must be >= 1, got 0'),
    args_case('steps_negative', ['--steps', '-1'], '--steps must be >= 1, got -1'),
    args_case('steps_zero', ['--steps', '0'], '--steps must be >= 1, got 0'),
    args_case('clip_stride_zero', ['--clip-stride', '0'], '--clip-stride must be >= 1'),
    args_case('augment_negative', ['--augment', '-1'], '--augment must be >= 0'),
    args_case('seed_negative', ['--seed', '-1'], '--seed must be >= 0'),
    args_case('guidance_nan', ['--guidance', 'nan'], '--guidance must be a finite number'),
    args_case('scheduler_unknown', ['--scheduler', 'NoSuchScheduler'], '--scheduler',
              "'NoSuchScheduler'", 'not a diffusers scheduler'),
    args_case('scheduler_not_a_scheduler', ['--scheduler', 'UNet2DModel'], "'UNet2DModel'",
              'not a diffusers scheduler'),
    Case(
        'out_dir_unwritable',
        'generate',
        unwritable_parent, ('locked', 'out', 'cannot be written'),
        skip_as_root=True),
    Case('out_dir_under_a_file', 'generate', under_a_file, ('a_file', 'cannot be written')),
    Case('out_dir_is_a_file', 'generate', out_is_a_file, ('out_file', 'cannot be written')),
]


def eval_case(name: str, change: Callable[[Path], list], *expect) -> Case:
    """An evaluate_generated.py case on a copy of the generated dataset that ``change`` broke;
    ``change`` returns extra arguments."""

    def make(env):
        folder = env.copy_generated()
        extra = change(folder)
        return [str(folder), '--out', str(env.tmp / 'report.json'), *extra]

    return Case(name, 'evaluate', make, expect)


def edit_annotations(edit):

    def change(folder):
        path = folder / 'annotations.json'
        data = json.loads(path.read_text())
        edit(data)
        path.write_text(json.dumps(data))
        return []

    return change


def frame_file(folder: Path, t: int) -> Path:
    return folder / 'walk_000000' / 'img1' / f'{t + 1:06d}.jpg'


def remove_frame(folder):
    frame_file(folder, 1).unlink()
    return []


def truncate_frame(folder):
    path = frame_file(folder, 2)
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])
    return []


def empty_frame(folder):
    frame_file(folder, 0).write_bytes(b'')
    return []


def text_frame(folder):
    frame_file(folder, 3).write_text('not a picture')
    return []


def small_frame(folder):
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(frame_file(folder, 1))
    return []


def remove_annotations(folder):
    (folder / 'annotations.json').unlink()
    return []


def garbage_annotations(folder):
    (folder / 'annotations.json').write_text('{"videos": [}')
    return []


def nan_box_in_walk(data):
    walk = next(v['id'] for v in data['videos'] if v['name'] == 'walk_000000')
    image = next(im['id'] for im in data['images']
                 if im['video_id'] == walk and im['frame_id'] == 1)
    next(a for a in data['annotations'] if a['image_id'] == image)['bbox'][2] = math.nan


def reference_args(*weights_args):

    def change(folder):
        ann = str(folder / 'annotations.json')
        return ['--reference-ann', ann, '--reference-prefix', str(folder), *weights_args]

    return change


def truncated_weights(folder):
    path = folder.parent / 'i3d.pt'
    torch.save({'conv.weight': torch.zeros(64, 64)}, path)
    path.write_bytes(path.read_bytes()[:300])
    return reference_args('--fvd-weights', str(path))(folder)


def unsafe_weights(folder):
    path = folder.parent / 'i3d.pt'
    torch.save({'weights': _RunsCode()}, path)
    return reference_args('--fvd-weights', str(path))(folder)


EVALUATE_CASES = [
    eval_case('eval_no_annotations', remove_annotations, 'annotations.json', 'does not exist'),
    eval_case('eval_annotations_not_json', garbage_annotations, 'annotations.json',
              'not valid JSON'),
    eval_case('eval_annotations_nan_box', edit_annotations(nan_box_in_walk), 'annotations.json',
              "video 'walk_000000'", frame(1), field('annotations.bbox'), 'non-finite'),
    eval_case('eval_no_videos', edit_annotations(empty_cocovid), 'annotations.json',
              field('videos'), 'no videos'),
    eval_case('eval_frame_missing', remove_frame, "video 'walk_000000', frame 1", '000002.jpg',
              'does not exist'),
    eval_case('eval_frame_truncated', truncate_frame, "video 'walk_000000', frame 2", '000003.jpg',
              'cannot be decoded'),
    eval_case('eval_frame_empty', empty_frame, "video 'walk_000000', frame 0", '000001.jpg',
              'cannot be decoded'),
    eval_case('eval_frame_not_an_image', text_frame, "video 'walk_000000', frame 3", '000004.jpg',
              'cannot be decoded'),
    eval_case('eval_frame_other_size', small_frame, "video 'walk_000000', frame 1", '000002.jpg',
              'is 8x8', '16x16'),
    eval_case('eval_fvd_weights_missing',
              lambda folder: reference_args('--fvd-weights', str(folder / 'none.pt'))(folder),
              'none.pt', 'not found'),
    eval_case('eval_fvd_weights_truncated', truncated_weights, 'i3d.pt', 'cannot be read'),
    eval_case('eval_fvd_weights_run_code', unsafe_weights, 'i3d.pt', 'Refused to load'),
    eval_case(
        'eval_out_under_a_file',  # the last --out counts
        lambda folder: ['--out', str(folder / 'annotations.json' / 'report.json')],
        '--out',
        'annotations.json',
        'not writable'),
    eval_case('eval_random_and_weights',
              reference_args('--random-features', '0', '--fvd-weights', 'i3d.pt'),
              '--random-features', '--fvd-weights'),
]

CASES = (
    TRACKLET_FILE_CASES + JSON_CASES + COCO_CASES + CHECKPOINT_CASES + CONFIG_CASES + ARGS_CASES +
    EVALUATE_CASES)

# ----------------------------------------------------------------------------------------------
# Running them


def snapshot(folder: Path) -> dict:
    """Every path under ``folder`` with its size and modification time."""
    state = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            stat = os.lstat(path)
            state[os.path.relpath(path, folder)] = (stat.st_size, stat.st_mtime_ns)
    return state


def run_tool(tool: str, argv: list, monkeypatch):
    if tool == 'generate':
        return generate_main(argv)
    if tool == 'evaluate':
        return evaluate_main(argv)
    monkeypatch.setattr(sys, 'argv', ['tools/train.py', *argv])
    return train_main()


@pytest.mark.parametrize('case', CASES, ids=[case.name for case in CASES])
def test_malformed_input_is_refused(case, checkpoint, generated, tmp_path, capsys, monkeypatch):
    env = Env(tmp_path, checkpoint, generated)
    try:
        argv = case.make(env)
        if case.skip_as_root and os.geteuid() == 0:
            pytest.skip('file modes do not restrict root')
        before = snapshot(tmp_path)
        capsys.readouterr()
        with pytest.raises(SystemExit) as exc:
            run_tool(case.tool, [str(a) for a in argv], monkeypatch)
        err = capsys.readouterr().err
    finally:
        for dirpath, dirnames, filenames in os.walk(tmp_path):  # let pytest clean up
            for name in dirnames + filenames:
                os.chmod(os.path.join(dirpath, name), 0o700)
    assert exc.value.code == 2, err
    assert 'Traceback' not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith('error: ')
    for text in case.expect:
        assert text in lines[0], f'{text!r} not in {lines[0]!r}'
    assert snapshot(tmp_path) == before  # no output folder, no clip, no report
    assert not env.out.exists()


def test_case_table_lists_every_case():
    """The comment table at the top of this file names exactly the cases it runs."""
    source = Path(__file__).read_text()
    table = re.findall(r'^#   ([a-z0-9_]+) ', source, re.M)
    names = [case.name for case in CASES] + REPAIRS
    assert sorted(table) == sorted(names)
    assert len(set(names)) == len(names) and len(CASES) >= 30


# ----------------------------------------------------------------------------------------------
# Documented repairs: generation goes on


class _Records(logging.Handler):

    def __init__(self):
        super().__init__()
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def repair_cocovid(folder: Path) -> str:
    """Videos for the CocoVID repairs (32x24 frames)."""
    crowd = {i: moving_track(0, 0, 4, (5 * (i - 1), 2), (4, 4), (0, 1)) for i in range(1, 5)}
    crowd[5] = moving_track(1, 0, 4, (2, 16), (1, 1), (1, 0))  # the least visible
    crowd[6] = moving_track(2, 0, 4, (10, 16), (2, 2), (1, 0))
    path = write_cocovid(
        str(folder), [
            dict(name='crowd', num_frames=4, tracks=crowd),
            dict(
                name='gappy',
                num_frames=4,
                tracks={1: moving_track(0, 0, 4, (2, 2), (6, 6), (1, 1))}),
            dict(
                name='border',
                num_frames=4,
                tracks={1: moving_track(0, 0, 4, (-10, -5), (20, 15), (1, 0))}),
            dict(
                name='ignored',
                num_frames=4,
                tracks={
                    1: moving_track(0, 0, 4, (2, 2), (6, 6), (1, 0)),
                    3: moving_track(1, 0, 4, (12, 8), (6, 6), (1, 0)),
                }),
            dict(
                name='short',
                num_frames=2,
                tracks={1: moving_track(0, 0, 2, (2, 2), (6, 6), (1, 0))}),
        ],
        classes=CLASSES,
        write_frames=False)
    data = json.loads(Path(path).read_text())
    video_id = {v['name']: v['id'] for v in data['videos']}
    gappy = [im for im in data['images'] if im['video_id'] == video_id['gappy']]
    for image, frame_id in zip(gappy, (0, 1, 2, 5)):
        image['frame_id'] = frame_id
    ignored = {im['id'] for im in data['images'] if im['video_id'] == video_id['ignored']}
    for a in data['annotations']:
        if a['image_id'] in ignored and a['instance_id'] == 3:
            a['ignore'] = True
    Path(path).write_text(json.dumps(data))
    return path


def repair_json(folder: Path) -> str:
    data = good_json()
    edge = data['clips'][0]
    edge['name'] = 'edge'
    edge['instances'][0]['boxes'][0] = [-0.5, 2, 16.8, 8]  # within 1 px of the 16 px image
    ghost = copy.deepcopy(good_json()['clips'][0])
    ghost['name'] = 'ghost'
    ghost['instances'].append(dict(id=3, category='cross', boxes=[None] * 4))
    data['clips'].append(ghost)
    path = folder / 'repairs.json'
    path.write_text(json.dumps(data))
    return str(path)


@pytest.fixture(scope='module')
def repaired(checkpoint, tmp_path_factory):
    """Generation from the repair inputs: ({clip name: clip.json}, stderr, log messages)."""
    root = tmp_path_factory.mktemp('repairs')
    records = _Records()
    logger = MMLogger.get_current_instance()  # where AssignInstanceSlots logs
    logger.addHandler(records)
    stderr = io.StringIO()
    clips = {}
    try:
        with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
            for n, tracklets in enumerate((repair_cocovid(root / 'coco'), repair_json(root))):
                out = root / f'out{n}'
                assert generate_main([
                    CONFIG, checkpoint, '--tracklets', tracklets, '--out-dir',
                    str(out), '--device', 'cpu'
                ]) == 0
                for record in out.glob('*/clip.json'):
                    clips[record.parent.name] = json.loads(record.read_text())
    finally:
        logger.removeHandler(records)
    return clips, stderr.getvalue(), records.messages


def check_more_instances_than_slots(clips, stderr, log):
    assert clips['crowd_000000']['instance_ids'] == [1, 2, 3, 4]  # 5 and 6 are the least visible
    assert any("video 'crowd_000000': clip has 6 instances for 4 slots; dropped 2 by policy "
               "'most_visible'" in message for message in log), log


def check_coco_frame_gap(clips, stderr, log):
    assert clips['gappy_000000']['frame_ids'] == [0, 1, 2, 5]


def check_coco_box_past_border(clips, stderr, log):
    # Input box (-10, -5, 20 x 15) at 32x24: clipped to (0, 0, 10, 10), output 16x16 pixels.
    np.testing.assert_allclose(
        clips['border_000000']['boxes'][0][0], [0, 0, 5, 10 / 1.5], atol=1e-3)


def check_coco_ignored(clips, stderr, log):
    assert clips['ignored_000000']['instance_ids'] == [1]


def check_too_short_video(clips, stderr, log):
    assert 'short_000000' not in clips
    assert "1 layouts are shorter than 4 frames and were skipped: ['short']" in stderr


def check_json_box_within_1px(clips, stderr, log):
    np.testing.assert_allclose(clips['edge_000000']['boxes'][0][0], [0, 2, 16, 8], atol=1e-3)


def check_json_never_visible(clips, stderr, log):
    assert clips['ghost_000000']['instance_ids'] == [1, 2]


REPAIR_CHECKS = {
    'repair_more_instances_than_slots': check_more_instances_than_slots,
    'repair_coco_frame_gap': check_coco_frame_gap,
    'repair_coco_box_past_border': check_coco_box_past_border,
    'repair_coco_ignored': check_coco_ignored,
    'repair_too_short_video': check_too_short_video,
    'repair_json_box_within_1px': check_json_box_within_1px,
    'repair_json_never_visible': check_json_never_visible,
}
REPAIRS = list(REPAIR_CHECKS)


@pytest.mark.parametrize('name', REPAIRS)
def test_documented_repairs(name, repaired):
    REPAIR_CHECKS[name](*repaired)
