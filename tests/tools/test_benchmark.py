"""tools/benchmark.py: every suite runs at --size micro and writes strict JSON with its figures.

No benchmark's timing is asserted: only that each figure is there, with its median and spread.
"""
import json
import time

import pytest
import torch

from mmtrackgen.datasets.synthetic import make_synthetic_dataset
from mmtrackgen.registry import MODELS
from mmtrackgen.utils import load_config
from mmtrackgen.benchmarks.suites import ROOT, Bench, BenchmarkError, main

STATS = {'median', 'p25', 'p75', 'min', 'max', 'n', 'values'}


@pytest.fixture(scope='module')
def world(tmp_path_factory):
    """A one-video-per-split synthetic world and a random micro checkpoint."""
    root = tmp_path_factory.mktemp('world')
    make_synthetic_dataset(
        str(root),
        splits={
            'test': 1,
            'train': 1,
            'val': 1
        },
        novel_videos=0,
        frames_per_video=8,
        image_size=(32, 32),
        seed=0,
        progress=False)
    torch.manual_seed(0)
    model = MODELS.build(load_config(f'{ROOT}/tests/data/trackdiff_micro.py').model)
    checkpoint = root / 'micro.pth'
    torch.save(dict(state_dict=model.state_dict()), checkpoint)
    return root, checkpoint


def strict_json(path):
    """The report, refusing NaN/Infinity (not JSON)."""

    def refuse(name):
        raise ValueError(f'{name} in {path}')

    return json.loads(path.read_text(), parse_constant=refuse)


def run(tmp_path, *suites, extra=()):
    out = tmp_path / 'bench.json'
    argv = ['--size', 'micro', '--out', str(out), *extra]
    for suite in suites:
        argv += ['--suite', suite]
    returned = main(argv)
    report = strict_json(out)
    assert report == returned
    assert {
        'schema_version', 'created', 'command', 'machine', 'versions', 'settings', 'sizes', 'suites'
    } <= set(report)
    assert {'cpu_model', 'cpu_cores', 'torch_threads'} <= set(report['machine'])
    assert {'torch', 'diffusers', 'mmengine', 'mmtrackgen'} <= set(report['versions'])
    assert 'commit' in report['versions']['mmtrackgen']
    assert report['settings']['size'] == 'micro' and report['settings']['repeats'] == 2
    assert report['settings']['clock'] in ('wall', 'process')
    assert list(report['suites']) == list(suites)
    return report


def is_stats(figure, n=2):
    return isinstance(figure, dict) and STATS <= set(figure) and figure['n'] == n


def test_conditioning_with_plot(tmp_path):
    report = run(tmp_path, 'conditioning', extra=['--plots', str(tmp_path / 'plots')])
    result = report['suites']['conditioning']
    assert list(result['variants']) == ['bare', 'grounding', 'full']
    params = [v['parameters'] for v in result['variants'].values()]
    assert params[0] < params[1] < params[2]
    for variant in result['variants'].values():
        for key in ('forward_s', 'backward_s', 'optimizer_s', 'step_s'):
            assert is_stats(variant[key])
        assert variant['step_peak_bytes'] > 0 and variant['total_bytes'] > variant['state_bytes']
    for ratio in ('grounding_over_bare', 'full_over_bare'):
        assert {'forward_s', 'backward_s', 'step_s', 'total_bytes'} <= set(result['ratios'][ratio])
    assert set(result['checks']) == {'full_over_bare_time', 'full_over_bare_memory'}
    assert (tmp_path / 'plots' / 'conditioning.png').stat().st_size > 0
    assert report['plots']['conditioning'].endswith('conditioning.png')


def test_scaling(tmp_path):
    result = run(tmp_path, 'scaling')['suites']['scaling']
    assert [r['num_instances'] for r in result['by_instances']] == [1, 8, 16]
    assert all(is_stats(r['step_s']) for r in result['by_instances'])
    for variant in ('full', 'bare'):
        assert [r['num_frames'] for r in result['by_frames'][variant]] == [2, 3, 4]
        assert len(result['frame_fits'][variant]['time']['coefficients']) == 3
    assert 'slope_s_per_instance' in result['instance_fit']['time']
    assert set(result['checks']) == {
        'time_N16_over_N8', 'memory_N16_over_N8', 'excess_quadratic_share_at_max_F'
    }


def test_sampling_needs_a_checkpoint(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(['--suite', 'sampling', '--size', 'micro', '--out', str(tmp_path / 'x.json')])
    assert e.value.code == 2 and '--checkpoint' in capsys.readouterr().err
    assert not (tmp_path / 'x.json').exists()


def test_sampling(world, tmp_path):
    root, checkpoint = world
    result = run(
        tmp_path, 'sampling', extra=['--checkpoint',
                                     str(checkpoint), '--data-root',
                                     str(root)])['suites']['sampling']
    assert list(result['solvers']) == ['ddim:6', 'dpmpp:2', 'euler:2']
    assert result['reference'] == 'ddim:6' and result['clips'] == 2
    for solver in result['solvers'].values():
        assert is_stats(solver['time_per_clip_s'])
        assert {'mean_iou', 'iou50', 'entries', 'clip_mean_iou_se'} <= set(solver['alignment'])
        assert solver['alignment']['entries'] > 0
        assert {'speedup', 'mean_iou_delta', 'within_noise'} <= set(solver['vs_reference'])
    assert result['real_frames']['entries'] > 0
    assert 'fast_solver_within_noise_at_2.5x' in result['checks']


def test_pipeline(world, tmp_path):
    root, _ = world
    result = run(tmp_path, 'pipeline', extra=['--data-root', str(root)])['suites']['pipeline']
    for key in ('load_s', 'step_s', 'load_share'):
        assert is_stats(result['training'][key])
    for key in ('wall_s', 'submit_s', 'final_wait_s', 'writer_share', 'write_alone_s'):
        assert is_stats(result['generation'][key])
    assert result['generation']['clips'] == 2
    assert set(result['checks']) == {'load_share', 'writer_share'}


def test_efficiency(tmp_path):
    report = run(tmp_path, 'efficiency', extra=['--clock', 'process'])
    assert report['settings']['clock'] == 'process'
    result = report['suites']['efficiency']
    assert result['peak_flops_per_s'] > 0
    for name in ('stock', 'full'):
        model = result['models'][name]
        assert model['flops']['forward'] > 0 and model['flops']['backward'] > 0
        assert is_stats(model['forward_backward_s']) and model['fraction_of_peak'] > 0
    assert result['models']['full']['flops']['total'] > result['models']['stock']['flops']['total']


def test_cuda_is_refused_without_a_gpu(tmp_path, capsys):
    if torch.cuda.is_available():
        pytest.skip('a GPU is present')
    with pytest.raises(SystemExit) as e:
        main(['--suite', 'conditioning', '--device', 'cuda', '--out', str(tmp_path / 'x.json')])
    assert e.value.code == 2 and 'CUDA' in capsys.readouterr().err


def test_process_clock_counts_cpu_time_only_and_is_cpu_only():
    process, wall = Bench('cpu', 'fp32', 1, 0, clock='process'), Bench('cpu', 'fp32', 1, 0)
    start = process.now(), wall.now()
    time.sleep(0.3)  # waiting: wall time passes, CPU time hardly
    slept = process.now() - start[0], wall.now() - start[1]
    assert slept[1] >= 0.3 and slept[0] < 0.1
    start = process.now()
    deadline = time.perf_counter() + 10  # a busy loop: CPU time passes too (on a loaded host,
    while process.now() - start < 0.05 and time.perf_counter() < deadline:  # slower than wall)
        pass
    assert process.now() - start >= 0.05
    with pytest.raises(BenchmarkError, match='--device cpu'):
        Bench('cuda', 'fp32', 1, 0, clock='process')


def test_recipe(tmp_path):
    """The config's own step: its trainable parameters, the memory model beside the measured
    peak, FLOPs over time, and sampling per solver."""
    report = run(tmp_path, 'recipe', extra=['--plots', str(tmp_path / 'plots')])
    result = report['suites']['recipe']
    micro = load_config(f'{ROOT}/tests/data/trackdiff_micro.py')
    model = MODELS.build(micro.model)
    assert result['parameters']['trainable'] == sum(p.numel() for p in model.parameters()
                                                    if p.requires_grad)
    assert result['clip']['batch_size'] == 2
    for key in ('forward_s', 'backward_s', 'optimizer_s', 'step_s'):
        assert is_stats(result['training'][key])
    memory = result['memory']
    assert memory['peak_allocated_bytes'] > memory['state_bytes'] > 0
    from mmtrackgen.benchmarks.suites import memory_model
    estimate = memory_model().estimate(micro, 2)['bytes']
    assert memory['estimate_bytes'] == estimate['total_plain'] - estimate['ema']
    assert memory['measured_over_estimate'] == pytest.approx(memory['peak_allocated_bytes'] /
                                                             memory['estimate_bytes'])
    efficiency = result['efficiency']
    assert efficiency['flops']['forward'] > 0 and 0 < efficiency['fraction_of_peak']
    assert list(result['sampling']) == ['ddim:6', 'dpmpp:2', 'euler:2']  # no VAE in micro
    assert all(is_stats(s['denoising_s_per_clip']) for s in result['sampling'].values())
    assert (tmp_path / 'plots' / 'recipe.png').stat().st_size > 0


def test_full_size_is_the_published_unet_on_any_machine():
    """--size full needs no pretrained folder: the ModelScope architecture stands in."""
    from mmtrackgen.models.generators.tracklet_unet3d import TrackletUNet3D
    from mmtrackgen.benchmarks.suites import SIZES, model_configs
    _, generator, encoder = model_configs(SIZES['full'])
    assert generator['block_out_channels'] == (320, 640, 1280, 1280)
    assert generator['sample_size'] == (40, 60)
    assert encoder['category_embedding'] == dict(
        type='CategoryTable', num_classes=40, embed_dim=1024)
    with torch.device('meta'):
        unet = TrackletUNet3D(**generator)
    assert 1.8e9 < sum(p.numel() for p in unet.parameters()) < 1.9e9


def test_conditioning_of_another_config(tmp_path):
    """--config measures that config's generator at the size's workload: grounding in fewer
    blocks is fewer parameters than the micro config's own."""
    leaf = tmp_path / 'micro_grounding_in_up_blocks.py'
    leaf.write_text(f"_base_ = ['{ROOT}/tests/data/trackdiff_micro.py']\n"
                    "model = dict(generator=dict(grounding_blocks=['up_blocks.1']))\n")
    ours = run(tmp_path, 'conditioning')['suites']['conditioning']['variants']
    other = run(tmp_path, 'conditioning', extra=['--config', str(leaf)])
    variants = other['suites']['conditioning']['variants']
    assert variants['bare']['parameters'] == ours['bare']['parameters']
    assert variants['full']['parameters'] < ours['full']['parameters']
