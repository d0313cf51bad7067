"""Tracklet augmentation: every composition of policies gives valid layouts, the exact
properties of each policy, and reproducibility by seed."""
import copy

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mmtrackgen.generation import (CategorySwap, Compose, HorizontalFlip, InstanceDrop,
                                   InstanceInsert, Reverse, TemporalResample, TranslateScaleJitter,
                                   augment_layouts, build_augment, check_layout)
from mmtrackgen.registry import TRACKLET_AUGMENTS
from mmtrackgen.structures import TrackletLayout

CLASSES = ('car', 'person', 'bike')
# database=None: no .hypothesis folder in the repository.
SETTINGS = settings(
    max_examples=40, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])


def random_layout(rng: np.random.Generator,
                  name='clip',
                  num_frames=None,
                  num_instances=None,
                  size=None) -> TrackletLayout:
    """A valid layout: random boxes of at least 1 pixel inside the image, ids unique."""
    num_frames = num_frames or int(rng.integers(1, 9))
    num_instances = int(rng.integers(0, 5)) if num_instances is None else num_instances
    height, width = size or (int(rng.integers(8, 65)), int(rng.integers(8, 65)))
    shape = (num_frames, num_instances)
    visible = rng.random(shape) < 0.7  # (F, N)
    wh = rng.uniform(1, [width, height], shape + (2, ))  # (F, N, 2)
    xy = rng.uniform(0, 1, shape + (2, )) * ([width, height] - wh)  # (F, N, 2)
    boxes = np.concatenate([xy, np.minimum(xy + wh, [width, height])], -1).astype(np.float32)
    boxes[~visible] = 0
    layout = TrackletLayout(
        name=name,
        image_size=(height, width),
        boxes=boxes,
        visible=visible,
        instance_ids=rng.choice(1000, num_instances, replace=False).astype(np.int64),
        categories=[CLASSES[i] for i in rng.integers(0, len(CLASSES), num_instances)],
        visibility=np.where(visible, rng.uniform(0, 1, shape), 0).astype(np.float32),
        caption='random')
    check_layout(layout)
    return layout


@st.composite
def layout_lists(draw, min_size=1, max_size=3):
    seed = draw(st.integers(0, 2**32 - 1))
    count = draw(st.integers(min_size, max_size))
    rng = np.random.default_rng(seed)
    return [random_layout(rng, f'clip{i}') for i in range(count)]


def _cfg(type_, **kwargs):
    return dict(type=type_, **kwargs)


probs = st.sampled_from([1.0, 0.5])
policy_cfgs = st.one_of(
    st.builds(lambda lo, r, p: _cfg('TemporalResample', speed=(lo, lo * r), prob=p),
              st.floats(0.2, 2.0), st.floats(1.0, 3.0), probs),
    st.builds(lambda p: _cfg('Reverse', prob=p), probs),
    st.builds(lambda p: _cfg('HorizontalFlip', prob=p), probs),
    st.builds(
        lambda t, s, m, p: _cfg('TranslateScaleJitter', translate=t, scale=s, min_size=m, prob=p),
        st.floats(0, 1), st.floats(0, 2), st.sampled_from([0.0, 1.0, 4.0]), probs),
    st.builds(lambda p: _cfg('CategorySwap', classes=['car', 'truck'], prob=p), probs),
    st.builds(lambda p: _cfg('CategorySwap', mapping={'person': 'rider'}, prob=p), probs),
    st.builds(lambda d, m, p: _cfg('InstanceDrop', drop_prob=d, min_instances=m, prob=p),
              st.floats(0, 1), st.integers(0, 3), probs),
    st.builds(lambda lo, extra, p: _cfg('InstanceInsert', num_instances=(lo, lo + extra), prob=p),
              st.integers(0, 3), st.integers(0, 2), probs),
)


def assert_same(a: TrackletLayout, b: TrackletLayout, atol=0.0):
    assert (a.name, tuple(a.image_size), a.categories, a.caption) == \
        (b.name, tuple(b.image_size), b.categories, b.caption)
    np.testing.assert_array_equal(a.visible, b.visible)
    np.testing.assert_allclose(a.boxes, b.boxes, rtol=0, atol=atol)
    np.testing.assert_array_equal(a.visibility, b.visibility)
    np.testing.assert_array_equal(a.instance_ids, b.instance_ids)
    np.testing.assert_array_equal(a.frame_ids, b.frame_ids)


@SETTINGS
@given(
    layouts=layout_lists(),
    policies=st.lists(policy_cfgs, min_size=1, max_size=5),
    seed=st.integers(0, 2**31),
    num=st.integers(1, 2))
def test_any_composition_gives_valid_layouts_and_leaves_inputs_alone(layouts, policies, seed, num):
    before = copy.deepcopy(layouts)
    out = augment_layouts(layouts, policies, num, seed)
    assert len(out) == num * len(layouts)
    assert [o.name for o in out] == [f'{x.name}_aug{k:03d}' for x in layouts for k in range(num)]
    frames = {x.name: x.num_frames for x in layouts}
    for layout in out:
        check_layout(layout)  # boxes in the image with area, zeros elsewhere, ids unique
        assert len(set(layout.instance_ids.tolist())) == layout.num_instances
        assert layout.visible.any(axis=0).all()  # never-visible instances dropped
        assert layout.num_frames == frames[layout.name[:-len('_aug000')]]
    for a, b in zip(before, layouts):
        assert_same(a, b)
    # Each output is reproducible alone: same seed, name and index, same pool.
    last = augment_layouts(layouts[-1:], policies, num, seed, pool=layouts)
    for a, b in zip(out[-num:], last):
        assert_same(a, b)


@SETTINGS
@given(layouts=layout_lists(1, 1), seed=st.integers(0, 2**31))
def test_flip_twice_and_reverse_twice_are_identity(layouts, seed):
    (layout, ) = layouts
    rng = np.random.default_rng(seed)
    flip, reverse = HorizontalFlip(), Reverse()
    assert_same(reverse(reverse(layout, rng), rng), layout)
    assert_same(flip(flip(layout, rng), rng), layout, atol=1e-4)
    flipped = flip(layout, rng)
    width = layout.image_size[1]
    shown = layout.visible
    np.testing.assert_allclose(
        flipped.boxes[shown][:, 0], width - layout.boxes[shown][:, 2], atol=1e-5)


@SETTINGS
@given(layouts=layout_lists(1, 1), seed=st.integers(0, 2**31))
def test_each_policy_keeps_frames_and_shapes(layouts, seed):
    (layout, ) = layouts
    rng = np.random.default_rng(seed)
    for policy in (TemporalResample(), Reverse(), HorizontalFlip(), TranslateScaleJitter(),
                   CategorySwap(classes=CLASSES), InstanceDrop(0.5)):
        out = policy(layout, rng)
        check_layout(out)
        assert out.num_frames == layout.num_frames and out.image_size == layout.image_size
        assert out.boxes is not layout.boxes and out.categories is not layout.categories


def line_layout(num_frames=9):
    """One instance moving right by 2 px per frame, another standing still."""
    t = np.arange(num_frames, dtype=np.float32)
    boxes = np.zeros((num_frames, 2, 4), np.float32)
    boxes[:, 0] = np.stack([2 * t, 10 + 0 * t, 2 * t + 4, 14 + 0 * t], axis=1)
    boxes[:, 1] = [30, 30, 40, 44]
    return TrackletLayout(
        name='line',
        image_size=(48, 64),
        boxes=boxes,
        visible=np.ones((num_frames, 2), bool),
        instance_ids=np.array([5, 9]),
        categories=['car', 'person'])


def test_temporal_resample_interpolates_and_empties_past_the_end():
    layout = line_layout()
    rng = np.random.default_rng(0)
    same = TemporalResample(speed=(1, 1))(layout, rng)
    assert_same(same, layout)
    slow = TemporalResample(speed=(0.5, 0.5))(layout, rng)
    steps = np.diff(slow.boxes[:, 0, 0])  # half speed: 1 px per frame, on the line
    np.testing.assert_allclose(steps, 1.0, atol=1e-5)
    assert slow.visible.all()
    fast = TemporalResample(speed=(2, 2))(layout, rng)
    np.testing.assert_allclose(fast.boxes[:5, 0, 0], [0, 4, 8, 12, 16])
    assert fast.visible[:5].all() and not fast.visible[5:].any()  # source time past the end
    # a gap in the source: interpolated frames need both neighbours
    gap = layout.copy()
    gap.visible[4, 0] = False
    gap.boxes[4, 0] = 0
    gap.visibility[4, 0] = 0
    half = TemporalResample(speed=(0.5, 0.5))(gap, np.random.default_rng(1))
    check_layout(half)
    assert 2 <= (~half.visible[:, 0]).sum() <= 4 and half.visible[:, 1].all()


def test_translate_scale_jitter_is_smooth_and_clipped():
    layout = line_layout(12)
    out = TranslateScaleJitter(
        translate=0.05, scale=0.1, min_size=1)(layout, np.random.default_rng(3))
    centre = (out.boxes[:, 1, :2] + out.boxes[:, 1, 2:]) / 2  # static box: linear path
    np.testing.assert_allclose(np.diff(centre, 2, axis=0), 0, atol=1e-4)
    assert not np.allclose(out.boxes[:, 1], layout.boxes[:, 1])
    # pushed far out of the image: invisible; partly out: clipped, visibility reduced
    far = TranslateScaleJitter(translate=3.0, scale=0.0)(layout, np.random.default_rng(4))
    check_layout(far)
    assert (far.visibility <= layout.visibility + 1e-6).all()
    tiny = TranslateScaleJitter(
        translate=0.0, scale=0.0, min_size=5)(layout, np.random.default_rng(0))
    assert not tiny.visible[:, 0].any() and tiny.visible[:, 1].all()  # 4 px box < 5


def test_category_swap_instance_drop_and_insert():
    layout = line_layout()
    rng = np.random.default_rng(0)
    assert CategorySwap(mapping={'car': 'truck'})(layout, rng).categories == ['truck', 'person']
    swapped = CategorySwap(classes=['car', 'bus'])(layout, rng).categories
    assert swapped[0] == 'bus' and swapped[1] in ('car', 'bus')
    for seed in range(10):
        dropped = InstanceDrop(drop_prob=1.0, min_instances=1)(layout, np.random.default_rng(seed))
        assert dropped.num_instances == 1
    assert InstanceDrop(drop_prob=1.0, min_instances=0)(layout, rng).num_instances == 0
    assert InstanceDrop(drop_prob=0.0)(layout, rng).num_instances == 2

    other = random_layout(
        np.random.default_rng(5), 'other', num_frames=4, num_instances=3, size=(24, 32))
    other.visible[:, :] = False
    other.visible[1, 2] = True
    other.boxes[1, 2] = [8, 6, 16, 12]
    other.boxes[~other.visible] = 0
    other.visibility[~other.visible] = 0
    inserted = InstanceInsert(num_instances=(1, 1))(layout, rng, pool=[layout, other])
    check_layout(inserted)
    assert inserted.instance_ids.tolist() == [5, 9, 10]  # fresh id: max + 1
    assert inserted.categories[2] == other.categories[2]
    row = inserted.visible[:, 2]
    assert row.sum() == 1  # the 4-frame tracklet placed somewhere in the 9 frames
    np.testing.assert_allclose(inserted.boxes[row, 2], [[16, 12, 32, 24]])  # x2 and y2 scale
    capped = InstanceInsert(num_instances=(3, 3), max_instances=2)(layout, rng, pool=[other])
    assert capped.num_instances == 2
    # nothing else in the pool: unchanged; no pool: a clear error
    assert InstanceInsert()(layout, rng, pool=[layout]).num_instances == 2
    with pytest.raises(ValueError, match='needs a pool'):
        InstanceInsert()(layout, rng)


def test_compose_registry_and_prob():
    layout = line_layout()
    rng = np.random.default_rng(0)
    assert {
        'TemporalResample', 'Reverse', 'HorizontalFlip', 'TranslateScaleJitter', 'CategorySwap',
        'InstanceDrop', 'InstanceInsert', 'Compose'
    } <= set(TRACKLET_AUGMENTS.module_dict)
    policy = build_augment([dict(type='Reverse'), HorizontalFlip(), [dict(type='Reverse')]])
    assert isinstance(policy, Compose) and len(policy.policies) == 3
    out = policy(layout, rng)
    assert_same(out, HorizontalFlip()(layout, rng), atol=1e-5)
    never = Compose([dict(type='HorizontalFlip', prob=0.0), dict(type='Reverse', prob=0)])
    assert_same(never(layout, rng), layout)
    with pytest.raises(ValueError, match='needs `type`'):
        build_augment(dict(speed=(1, 2)))
    with pytest.raises(ValueError, match='prob'):
        HorizontalFlip(prob=1.5)
    with pytest.raises(ValueError, match='speed'):
        TemporalResample(speed=(2, 1))
    with pytest.raises(ValueError, match='exactly one'):
        CategorySwap()


def test_augment_layouts_seeds_names_and_errors():
    rng = np.random.default_rng(0)
    layouts = [random_layout(rng, 'a', 6, 3), random_layout(rng, 'b', 6, 3)]
    policy = [dict(type='TranslateScaleJitter'), dict(type='TemporalResample')]
    policy.append(dict(type='InstanceInsert', prob=0.5))
    first = augment_layouts(layouts, policy, 3, seed=1)
    again = augment_layouts(layouts[::-1], policy, 3, seed=1)
    for a, b in zip(first, again[3:] + again[:3]):  # order of the inputs does not matter
        assert_same(a, b)
    other_seed = augment_layouts(layouts, policy, 3, seed=2)
    assert not np.array_equal(first[0].boxes, other_seed[0].boxes)
    assert not np.array_equal(first[0].boxes, first[1].boxes)  # k differs
    assert augment_layouts(layouts, policy, 0, seed=1) == []
    with pytest.raises(ValueError, match="'a' is used twice"):
        augment_layouts([layouts[0], layouts[0]], policy, 1)
    clash = layouts[0].copy(name='a_aug000')
    with pytest.raises(ValueError, match="'a_aug000' repeats or is also an input"):
        augment_layouts([layouts[0], clash], policy, 1)
    with pytest.raises(ValueError, match='num_per_layout'):
        augment_layouts(layouts, policy, -1)
