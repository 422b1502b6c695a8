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


@pytest.mark.parametrize("backend", ["openvino", "onnxruntime"])
def test_short_batches_are_padded_to_a_few_shapes_only(backend):
    """A short last batch runs padded to a multiple of 8 crops, not to the full batch (~14% less
    model work on the benchmark's queries), and padding changes no descriptor."""
    if backend == "openvino":
        pytest.importorskip("openvino")
    d = Descriptor("sscd-distilled", 224, backend=backend)
    x = np.random.default_rng(3).integers(0, 256, (45, 60, 80, 3), dtype=np.uint8)
    shapes, infer = [], d._infer
    d._infer = lambda b: (shapes.append(len(b)), infer(b))[1]
    e = d(x)
    assert shapes == [32, 16]  # 32 + 13 crops; the 13 run as 16, not as 32
    shapes.clear()
    assert len(d(x[:3])) == 3 and shapes == [8]
    one = np.concatenate([d(x[i:i + 1], batch=1) for i in range(len(x))])  # no padding at all
    np.testing.assert_allclose(e, one, atol=1e-5)


def test_backend_choice(monkeypatch):
    from fingerprint.errors import FingerprintError
    from visual.model import cpu_backend

    pytest.importorskip("openvino")  # a dependency (setup.cfg): installed wherever the tests run
    monkeypatch.delenv("FINGERPRINT_MODEL_BACKEND", raising=False)
    assert cpu_backend("sscd-distilled") == "openvino"
    assert cpu_backend("sscd") == "onnxruntime"  # int8 graph: the runtimes round differently
    assert cpu_backend("sscd-distilled", "onnxruntime") == "onnxruntime"
    monkeypatch.setenv("FINGERPRINT_MODEL_BACKEND", "onnxruntime")
    assert cpu_backend("sscd-distilled") == "onnxruntime"
    assert Descriptor("sscd-distilled", 224).backend == "onnxruntime"
    monkeypatch.setenv("FINGERPRINT_MODEL_BACKEND", "tensorrt")
    with pytest.raises(FingerprintError, match="FINGERPRINT_MODEL_BACKEND='tensorrt'"):
        cpu_backend("sscd-distilled")


def test_openvino_gives_onnxruntime_descriptors(clips):
    """An index built with one runtime is searched with the other's queries: the descriptors of
    real frames and of their views must be the same numbers."""
    pytest.importorskip("openvino")
    frames = sample_frames(clips[0], 2.0, VisualParams()).frames[:9]
    jobs = [(np.arange(9), None), (np.arange(0, 9, 2), _half_view(frames))]
    ov = Descriptor("sscd-distilled", 224, backend="openvino")
    ort = Descriptor("sscd-distilled", 224, backend="onnxruntime")
    assert (ov.backend, ort.backend) == ("openvino", "onnxruntime")
    a, b = ov.embed_views(frames, jobs, batch=4), ort.embed_views(frames, jobs, batch=4)
    assert a.shape == b.shape == (14, 512)
    assert np.sum(a * b, axis=1).min() > 0.99999
    assert np.abs(a - b).max() < 1e-4


def _half_view(frames):
    from visual.views import View

    h, w = frames.shape[1:3]
    return View("left", 0, h, 0, w // 2, flip=True)
