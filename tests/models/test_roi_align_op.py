"""The enhancer's RoIAlign kernel: torchvision's when installed (its signature mapped from
mmcv's), else mmcv's, else a clear error. CI has no torchvision, so its module is stood in by
one that forwards to mmcv with torchvision's argument order; the enhancer's output must not
change. (On an H100, torchvision's CPU and CUDA kernels matched mmcv's to 1e-6:
docs/benchmarks.md.)"""
import sys
import types

import pytest
import torch
from mmcv.ops import roi_align as mmcv_roi_align

from mmtrackgen.models.conditioning.instance_enhancer import InstanceEnhancer, roi_align_op
from .test_gated_grounding_attention import (BATCH, CHANNELS, FRAMES, TRACK_DIM, make_tracklets)


def torchvision_like(calls):
    """A ``torchvision.ops`` whose roi_align has torchvision's positional order:
    (input, boxes, output_size, spatial_scale, sampling_ratio, aligned)."""

    def roi_align(input, boxes, output_size, spatial_scale=1.0, sampling_ratio=-1, aligned=False):
        calls.append((output_size, spatial_scale, sampling_ratio, aligned))
        return mmcv_roi_align(input, boxes, output_size, spatial_scale, sampling_ratio, 'avg',
                              aligned)

    ops = types.ModuleType('torchvision.ops')
    ops.roi_align = roi_align
    package = types.ModuleType('torchvision')
    package.ops = ops
    return {'torchvision': package, 'torchvision.ops': ops}


def enhance(enhancer):
    feature_map = torch.randn(
        BATCH * FRAMES, CHANNELS, 8, 8, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        return enhancer(feature_map, make_tracklets())


def test_torchvision_is_preferred_and_called_as_mmcv_would_be(monkeypatch):
    torch.manual_seed(0)
    enhancer = InstanceEnhancer(CHANNELS, TRACK_DIM, 4)
    with torch.no_grad():
        enhancer.alpha_attn.fill_(0.5)
        enhancer.alpha_dense.fill_(0.5)
    calls = []
    for name, module in torchvision_like(calls).items():
        monkeypatch.setitem(sys.modules, name, module)
    enhancer.roi_align = roi_align_op()
    assert enhancer.roi_align.__name__ == 'torchvision_roi_align'
    with_torchvision = enhance(enhancer)
    assert calls == [((1, 1), 1.0, 0, True)]
    enhancer.roi_align = mmcv_roi_align
    torch.testing.assert_close(with_torchvision, enhance(enhancer), rtol=0, atol=0)
    with pytest.raises(ValueError, match='averages'):
        roi_align_op()(torch.zeros(1, 1, 2, 2), torch.zeros(1, 5), (1, 1), 1.0, 0, 'max', True)


def test_without_torchvision_mmcv_is_used(monkeypatch):
    """Whether or not torchvision is installed here: hidden, the enhancer takes mmcv's kernel."""
    monkeypatch.setitem(sys.modules, 'torchvision', None)  # None in sys.modules: ImportError
    monkeypatch.setitem(sys.modules, 'torchvision.ops', None)
    assert roi_align_op() is mmcv_roi_align
    torch.manual_seed(0)
    assert InstanceEnhancer(CHANNELS, TRACK_DIM, 4).roi_align is mmcv_roi_align


def test_neither_kernel_is_a_clear_error_at_build_time(monkeypatch):
    monkeypatch.setitem(sys.modules, 'torchvision', None)  # None in sys.modules: ImportError
    monkeypatch.setitem(sys.modules, 'mmcv.ops', None)
    with pytest.raises(ImportError, match='install torchvision, or mmcv with its compiled ops'):
        InstanceEnhancer(CHANNELS, TRACK_DIM, 4)
