"""tools/export_model.py: a trained tiny model, text-to-video or image-to-video (SVD), exported as
a diffusers-style folder loads back with identical weights and outputs."""
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

from mmtrackgen.models.generators.pretrained import export_trackdiffusion, load_exported
from mmtrackgen.registry import MODELS
from tests.factories import write_tiny_clip
from tests.models import test_trackdiffusion, test_trackdiffusion_i2v

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = {
    'TrackletUNet3D': ('tests/data/trackdiff_micro.py', test_trackdiffusion.batch),
    'TrackletUNetSpatioTemporal': ('tests/data/svd_micro.py', test_trackdiffusion_i2v.batch),
}


def same_outputs(model, reloaded, batch):
    model.eval()
    reloaded.eval()
    data = batch(model, seeds=(0, 1))
    outputs = []
    for m in (model, reloaded):
        torch.manual_seed(1)
        with torch.no_grad():
            outputs.append(m(**data, mode='tensor'))
    return torch.equal(outputs[0], outputs[1])


@pytest.mark.parametrize('generator', list(CONFIGS))
def test_export_then_load_gives_the_same_model(tmp_path, generator):
    config, batch = CONFIGS[generator]
    config = str(ROOT / config)
    init_default_scope('mmtrackgen')
    torch.manual_seed(0)
    model = MODELS.build(Config.fromfile(config).model)
    with torch.no_grad():  # "trained": every weight moved, gates open
        for param in model.parameters():
            param.add_(0.05 * torch.randn_like(param))
    checkpoint = tmp_path / 'iter_4.pth'
    torch.save(dict(state_dict=model.state_dict(), meta=dict()), checkpoint)

    out = tmp_path / 'exported'
    result = subprocess.run(
        [sys.executable, 'tools/export_model.py', config,
         str(checkpoint),
         str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    for name in ('config.py', 'generator/config.json',
                 'generator/diffusion_pytorch_model.safetensors',
                 'tracklet_encoder/model.safetensors', 'tracklet_encoder/config.json',
                 'trackdiffusion.safetensors', 'scheduler/scheduler_config.json'):
        assert (out / name).is_file(), name

    reloaded = load_exported(str(out))
    assert type(reloaded) is type(model) and type(reloaded.generator).__name__ == generator
    report = reloaded.generator.load_report
    assert report.new == [] and report.ignored == {}
    assert set(reloaded.state_dict()) == set(model.state_dict())
    for key, value in model.state_dict().items():
        assert torch.equal(reloaded.state_dict()[key], value), key
    assert same_outputs(model, reloaded, batch)


def test_svd_ytvis_exports_its_image_encoder_and_category_text_encoder(tmp_path):
    """The full image-to-video layout (VAE, CLIP image encoder and its feature extractor, and a
    CLIP category embedding from a folder of its own) on tiny folders."""
    folder = tmp_path / 'stable-video-diffusion-img2vid'
    test_trackdiffusion_i2v.write_tiny_svd_folder(folder)
    write_tiny_clip(tmp_path / 'clip')
    cfg = Config.fromfile(str(ROOT / 'configs/trackdiff/svd_ytvis.py'))
    for part in (cfg.model.data_preprocessor.vae, cfg.model.data_preprocessor.image_encoder,
                 cfg.model.generator):
        part.pretrained = str(folder)
    cfg.model.noise_scheduler.from_pretrained = str(folder)
    cfg.model.tracklet_encoder.category_embedding.pretrained = str(tmp_path / 'clip')
    init_default_scope('mmtrackgen')
    torch.manual_seed(0)
    model = MODELS.build(cfg.model).eval()

    out = tmp_path / 'exported'
    export_trackdiffusion(model, cfg, str(out))
    for name in ('vae/config.json', 'image_encoder/config.json',
                 'feature_extractor/preprocessor_config.json',
                 'category_text_encoder/text_encoder/config.json',
                 'category_text_encoder/tokenizer/vocab.json'):
        assert (out / name).is_file(), name
    reloaded = load_exported(str(out))
    assert set(reloaded.state_dict()) == set(model.state_dict())
    for key, value in model.state_dict().items():
        assert torch.equal(reloaded.state_dict()[key], value), key


def test_missing_export_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match='config.py'):
        load_exported(str(tmp_path))
