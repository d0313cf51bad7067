"""tools/analysis/reconstruct_clips.py: real clips through an exported autoencoder become a
generated dataset with the clips' own tracklets, which tools/evaluate_generated.py scores."""
import json
import math

import numpy as np
import pytest
import torch

from mmtrackgen.models import FrameAutoencoder
from tests.models.test_frame_autoencoder import TINY_VAE
from tools.analysis.reconstruct_clips import box_mask, main, psnr
from tools.evaluate_generated import main as evaluate


def test_psnr_and_box_mask():
    a = np.zeros((2, 4, 4, 3), np.uint8)
    assert psnr(a, a) == math.inf
    assert psnr(a, a + 255) == pytest.approx(0.0)
    assert psnr(a, a + 1) == pytest.approx(20 * math.log10(255))
    boxes = np.array([[[1.0, 0.0, 2.5, 2.0]], [[0.0, 0.0, 4.0, 4.0]]], np.float32)  # (F, N, 4)
    mask = box_mask(boxes, np.array([[True], [False]]), 4, 4)
    assert mask[0].sum() == 4 and mask[0, 0, 1:3].all() and not mask[1].any()


def test_reconstructions_keep_the_tracklets_and_are_scored(test_world, tmp_path):
    torch.manual_seed(0)
    FrameAutoencoder(TINY_VAE).export_pretrained(str(tmp_path / 'ae' / 'vae'), latent_std=1.0)
    ann = test_world / 'annotations' / 'test_cocoformat.json'
    out = tmp_path / 'reconstructed'
    result = main([
        str(tmp_path / 'ae'), '--ann', str(ann), '--img-prefix', str(test_world / 'test'),
        '--out-dir', str(out), '--out', str(tmp_path / 'psnr.json')
    ])
    assert result['videos'] == 3 and json.loads((tmp_path / 'psnr.json').read_text()) == result
    # an untrained autoencoder: finite, low PSNR (a copy would be inf)
    assert 0 < result['psnr']['mean'] < 30 and result['psnr_in_boxes']['n'] == 3
    real, made = json.loads(ann.read_text()), json.loads((out / 'annotations.json').read_text())
    assert len(made['images']) == len(real['images'])
    assert sorted(round(a['bbox'][0]) for a in made['annotations']) == sorted(
        round(a['bbox'][0]) for a in real['annotations'])
    report = evaluate([str(out)])
    assert report['videos'] == 3 and 0 <= report['alignment']['iou50'] <= 1


def test_a_folder_without_an_autoencoder_is_named(test_world, tmp_path, capsys):
    with pytest.raises(SystemExit):
        main([str(tmp_path), '--ann', str(test_world / 'annotations' / 'test_cocoformat.json'),
              '--img-prefix', str(test_world / 'test'), '--out-dir', str(tmp_path / 'out')])
    err = capsys.readouterr().err
    assert str(tmp_path) in err and 'vae/config.json' in err
