"""Category fidelity: a classifier trained on real crops, applied under each conditioning box."""
import numpy as np
import pytest

from mmtrackgen.datasets import make_synthetic_dataset
from mmtrackgen.evaluation.category import (CategoryClassifier, category_accuracy, layout_crops,
                                            train_category_classifier)
from mmtrackgen.evaluation.dataset_report import iter_videos

CLASSES = ('square', 'circle', 'triangle', 'cross')


@pytest.fixture(scope='module')
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp('world')
    make_synthetic_dataset(
        str(root), splits={'train': 48, 'test': 8}, novel_videos=0, frames_per_video=8,
        image_size=(64, 64), seed=5, progress=False)
    train = list(iter_videos(str(root / 'annotations/train_cocoformat.json'), str(root / 'train')))
    test = list(iter_videos(str(root / 'annotations/test_cocoformat.json'), str(root / 'test')))
    return train, test


@pytest.fixture(scope='module')
def classifier(world):
    return train_category_classifier(world[0], CLASSES, iterations=300, seed=0, log=None)


def _scrambled(videos, shift=1):
    """The same frames, each box labelled with another category."""
    return [(layout.copy(categories=[CLASSES[(CLASSES.index(c) + shift) % len(CLASSES)]
                                     for c in layout.categories]), frames)
            for layout, frames in videos]


def test_real_labels_score_high_and_scrambled_labels_low(world, classifier):
    real = category_accuracy(world[1], classifier)
    scrambled = category_accuracy(_scrambled(world[1]), classifier)
    assert real['entries'] == scrambled['entries'] > 30
    assert real['accuracy'] > 0.85
    assert scrambled['accuracy'] < 0.25
    assert set(real['per_class']) <= set(CLASSES)


def test_grey_frames_are_not_recognised(world, classifier):
    """Empty boxes (a generator that draws nothing) do not pass as the right category."""
    blank = [(layout, np.full_like(frames, 128)) for layout, frames in world[1]]
    assert category_accuracy(blank, classifier)['accuracy'] < 0.5


def test_save_and_load_round_trip(world, classifier, tmp_path):
    path = str(tmp_path / 'cls.pth')
    classifier.save(path)
    loaded = CategoryClassifier.load(path)
    assert loaded.classes == CLASSES
    crops, _ = layout_crops(*world[1][0])
    np.testing.assert_array_equal(loaded.predict(crops), classifier.predict(crops))


def test_load_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match='train_category_classifier'):
        CategoryClassifier.load(str(tmp_path / 'missing.pth'))
    bad = tmp_path / 'bad.pth'
    bad.write_bytes(b'not a checkpoint')
    with pytest.raises(ValueError, match='bad.pth'):
        CategoryClassifier.load(str(bad))


def test_unknown_category_names_the_video(world, classifier):
    layout, frames = world[1][0]
    odd = layout.copy(categories=['ring'] * len(layout.categories))
    with pytest.raises(ValueError, match=f"video '{layout.name}'"):
        category_accuracy([(odd, frames)], classifier)


def test_instance_accuracy_flags_the_instance_drawn_as_another_category(world, classifier):
    """The per-instance scorer the filter uses: one relabelled instance scores low, the rest
    keep their score."""
    layout, frames = max(world[1], key=lambda v: v[0].num_instances)
    before = classifier.instance_accuracy(layout, frames)
    assert before.shape == (layout.num_instances, )
    k = int(np.nanargmax(before))
    categories = list(layout.categories)
    categories[k] = CLASSES[(CLASSES.index(categories[k]) + 1) % len(CLASSES)]
    after = classifier.instance_accuracy(layout.copy(categories=categories), frames)
    assert before[k] > 0.8 and after[k] < 0.2
    others = np.arange(layout.num_instances) != k
    np.testing.assert_array_equal(after[others], before[others])
