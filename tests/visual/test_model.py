"""The descriptor: a frame and its re-encoded copy are near, unrelated frames far."""
import numpy as np
import pytest

from fingerprint.synth import ffmpeg
from fingerprint.synth_video import edit_video, scene_video
from visual import VisualMatcher, VisualParams, sample_frames
from visual.model import Descriptor, resize


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    d = tmp_path_factory.mktemp("model")
    a = scene_video(d / "a.mp4", 6.0, seed=11)
    b = scene_video(d / "b.mp4", 6.0, seed=12)
    ffmpeg("-f", "lavfi", "-i", "mandelbrot=size=320x240:rate=30", "-t", "6", "-pix_fmt", "yuv420p", str(d / "m.mp4"))
    return a, edit_video(a, d / "a_low.mp4", "lowbitrate"), b, d / "m.mp4"


@pytest.mark.parametrize("model", ["sscd-distilled", "sscd"])
def test_copy_near_unrelated_far(clips, model):
    a, a_low, b, m = clips
    matcher = VisualMatcher(VisualParams(model=model))
    p = matcher.params
    ea, elow, eb, em = (matcher.embed(sample_frames(x, 1.0, p).frames) for x in (a, a_low, b, m))
    n = min(len(ea), len(elow))
    assert np.sum(ea[:n] * elow[:n], axis=1).min() > 0.8
    for other in (eb, em):
        assert (ea @ other.T).max() < 0.3


def test_descriptor_shape_norm_and_resize():
    d = Descriptor("sscd-distilled", 224)
    x = np.random.default_rng(0).integers(0, 256, (3, 90, 160, 3), dtype=np.uint8)
    e = d(x)
    assert e.shape == (3, d.dim) and d.dim == 512
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)
    assert resize(x, 224).shape == (3, 224, 224, 3)
    assert len(d(x[:0])) == 0
