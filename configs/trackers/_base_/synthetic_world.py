# The synthetic world for trackers on CPU, shared by the QDTrack and ByteTrack bases: where the
# real and generated data are, how often the generated part repeats, the classes (the
# generator's, configs/trackdiff/synthetic_tiny.py), the input size, the test data and the
# metrics. The tracker bases inherit mmdet's recipes next to this file, and mmengine forbids a
# key in two sibling bases, so names here differ from mmdet's (no `img_scale`, `data_root`, ...).
real_root = 'data/synthetic/'  # python tools/make_synthetic.py --out data/synthetic
generated_root = 'data/generated/'  # python tools/generate.py ... --out data/generated
generated_ratio = 1  # the generated set is repeated this many times in real+generated runs
classes = ('square', 'circle', 'triangle', 'cross')
num_classes = len(classes)
input_size = (128, 128)  # (w, h): the 64 px frames (32 px generated ones) are upscaled
world_metainfo = dict(classes=classes)
# TrackAP (50, 75) and HOTA, IDF1, MOTA, ... of the tracks against the annotations, class-aware.
# mmdet's MOTChallengeMetric scores only MOT's 'pedestrian' class (category id 1), so it would
# score the squares alone here.
world_evaluator = [dict(type='mmtrackgen.GeneratedTrackMetric', prefix='track')]
# Real splits: train for training, val for the end-of-training validation, test for tools/test.
world_val_data = dict(
    type='MOTChallengeDataset',
    data_root=real_root,
    ann_file='annotations/val_cocoformat.json',
    data_prefix=dict(img_path='val/'),
    metainfo=world_metainfo,
    test_mode=True)
world_test_data = dict(
    world_val_data, ann_file='annotations/test_cocoformat.json', data_prefix=dict(img_path='test/'))
