"""tools/evaluate_generated.py on real synthetic clips: they score high against their own
tracklets, worse against shifted ones, and FVD against themselves is 0."""
import json

import pytest
import torch

from mmtrackgen.evaluation import load_feature_network
from tools.evaluate_generated import main


def evaluate(ann, prefix, *extra):
    return main(['--ann', str(ann), '--img-prefix', str(prefix), *extra])


def test_real_clips_score_high_and_shifted_tracklets_lower(test_world, tmp_path):
    ann = test_world / 'annotations' / 'test_cocoformat.json'
    report = evaluate(ann, test_world / 'test', '--out', str(tmp_path / 'report.json'))
    assert json.loads((tmp_path / 'report.json').read_text())['videos'] == 3
    assert report['alignment']['iou50'] > 0.7
    assert report['appearance']['appearance_consistency'] > 0.7
    assert report['identity']['IDF1'] > 0.5 and report['track_ap']['TrackAP50'] > 0.3

    shifted = json.loads(ann.read_text())
    for a in shifted['annotations']:
        a['bbox'][0] = max(0.0, a['bbox'][0] - 12)  # a quarter of the frame to the left
    shifted_ann = tmp_path / 'shifted.json'
    shifted_ann.write_text(json.dumps(shifted))
    worse = evaluate(shifted_ann, test_world / 'test')
    assert worse['alignment']['iou50'] < report['alignment']['iou50'] - 0.3
    assert worse['identity']['IDF1'] < report['identity']['IDF1']
    assert worse['track_ap']['TrackAP50'] < report['track_ap']['TrackAP50']


def test_fvd_of_a_dataset_against_itself_is_zero(test_world, tmp_path):
    weights = tmp_path / 'i3d.pt'
    torch.save(load_feature_network('i3d', None, random_init_seed=0).state_dict(), weights)
    ann = test_world / 'annotations' / 'test_cocoformat.json'
    report = evaluate(ann, test_world / 'test', '--reference-ann', str(ann), '--reference-prefix',
                      str(test_world / 'test'), '--fvd-weights', str(weights))
    assert report['fvd']['num_real'] == report['fvd']['num_fake'] == 3
    assert report['fvd']['fvd'] == pytest.approx(0, abs=1e-3)


def test_missing_frames_and_weights_are_named(test_world, tmp_path, capsys):
    ann = test_world / 'annotations' / 'test_cocoformat.json'
    with pytest.raises(SystemExit) as e:
        evaluate(ann, tmp_path)
    assert e.value.code == 2 and 'does not exist' in capsys.readouterr().err
    with pytest.raises(SystemExit):
        evaluate(ann, test_world / 'test', '--reference-ann', str(ann), '--reference-prefix',
                 str(test_world / 'test'), '--fvd-weights', str(tmp_path / 'none.pt'))
    assert 'none.pt' in capsys.readouterr().err
