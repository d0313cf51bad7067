"""How generated frames are encoded: 4:4:4 JPEG by default (as the synthetic world), 4:2:0 JPEG
or lossless PNG as options, recorded in the CocoVID output."""
import json

import numpy as np
import pytest
from PIL import Image, JpegImagePlugin

from mmtrackgen.generation.writer import GeneratedDatasetWriter, OutputFolderError, frame_name
from mmtrackgen.structures import TrackletLayout


def _layout(name='clip_a', frames=2):
    return TrackletLayout(
        name=name,
        image_size=(16, 16),
        boxes=np.tile(np.array([2, 2, 10, 10], np.float32), (frames, 1, 1)),
        visible=np.ones((frames, 1), bool),
        instance_ids=np.array([1]),
        categories=['square'])


def _frames(frames=2):
    """Alternating red and blue one-pixel columns: chroma subsampling turns them purple."""
    clip = np.zeros((frames, 16, 16, 3), np.uint8)
    clip[:, :, 0::2, 0] = 255
    clip[:, :, 1::2, 2] = 255
    return clip


def _write(tmp_path, image_format=None, name='clip_a'):
    kwargs = {} if image_format is None else dict(image_format=image_format)
    writer = GeneratedDatasetWriter(str(tmp_path), **kwargs)
    writer.submit(_layout(name), _frames())
    writer.close()
    writer.merge([name], ['square'], dict(description='test'))
    return writer


def _chroma_error(path, original):
    decoded = np.asarray(Image.open(path).convert('RGB')).astype(int)
    return np.abs(decoded - original.astype(int)).mean()


def test_default_is_jpeg_without_chroma_subsampling(tmp_path):
    _write(tmp_path)
    path = tmp_path / 'clip_a/img1/000001.jpg'
    with Image.open(path) as im:
        assert isinstance(im, JpegImagePlugin.JpegImageFile)
        assert JpegImagePlugin.get_sampling(im) == 0  # 4:4:4
    assert _chroma_error(path, _frames()[0]) < 20
    ann = json.loads((tmp_path / 'annotations.json').read_text())
    assert ann['info']['image_format'] == 'jpeg444'
    assert ann['images'][0]['file_name'] == 'clip_a/img1/000001.jpg'


def test_jpeg420_smears_colour_and_is_recorded(tmp_path):
    _write(tmp_path, 'jpeg420')
    path = tmp_path / 'clip_a/img1/000001.jpg'
    with Image.open(path) as im:
        assert JpegImagePlugin.get_sampling(im) == 2  # 4:2:0
    assert _chroma_error(path, _frames()[0]) > 40
    assert json.loads((tmp_path / 'annotations.json').read_text())['info']['image_format'] == \
        'jpeg420'


def test_png_is_lossless(tmp_path):
    _write(tmp_path, 'png')
    assert frame_name(1, 'png') == '000001.png'
    decoded = np.asarray(Image.open(tmp_path / 'clip_a/img1/000001.png'))
    np.testing.assert_array_equal(decoded, _frames()[0])
    ann = json.loads((tmp_path / 'annotations.json').read_text())
    assert ann['images'][0]['file_name'] == 'clip_a/img1/000001.png'


def test_unknown_format_is_refused(tmp_path):
    with pytest.raises(ValueError, match='image_format must be one of'):
        GeneratedDatasetWriter(str(tmp_path), image_format='webp')


def test_resuming_a_folder_in_another_format_names_the_clip(tmp_path):
    _write(tmp_path, 'png')
    writer = GeneratedDatasetWriter(str(tmp_path), image_format='jpeg444')
    writer.close()
    with pytest.raises(OutputFolderError, match="clip 'clip_a'.*written as png"):
        writer.merge(['clip_a'], ['square'], {})
