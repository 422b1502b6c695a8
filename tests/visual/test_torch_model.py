"""The torch backend (for GPUs) gives onnxruntime's descriptors; device choice fails clearly."""
import numpy as np
import pytest

from fingerprint.errors import FingerprintError
from visual.model import Descriptor, model_path, resize, resolve_device
from visual.views import View

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")  # in the test extra: this file must run in CI

from visual.torch_model import TorchGraph  # noqa: E402


def scenes(n, h=240, w=320, seed=0):
    """Smooth colour blobs with a few sharp edges: content SSCD responds to, unlike pure noise."""
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(seed)
    x = gaussian_filter(rng.uniform(0, 255, (n, h, w, 3)), sigma=(0, 6, 6, 0))
    x = (x - x.min()) / (np.ptp(x) + 1e-9) * 255
    x[:, h // 3:h // 3 + 20, w // 4:w // 2] = 255 * (np.arange(n) % 2)[:, None, None, None]
    return x.astype(np.uint8)


def cosines(a, b):
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return (a * b).sum(axis=1)


@pytest.mark.parametrize("model,n,min_cos", [("sscd-distilled", 6, 0.9999), ("sscd", 2, 0.99)])
def test_graph_matches_onnxruntime(model, n, min_cos):
    x = resize(scenes(n, seed=1), 224)
    want = Descriptor(model, 224, device="cpu", backend="onnxruntime")._infer(x)
    got = TorchGraph(model_path(model), "cpu")(torch.from_numpy(x)).numpy()
    assert got.shape == want.shape == (n, 512)
    # the distilled graph is float: the same numbers; the full one is int8 (fake-quantized in torch)
    assert cosines(got, want).min() > min_cos


def test_torch_path_of_descriptor_gives_the_same_views():
    """Crops, mirrors and resizing done by the GPU code path (run here on the CPU) agree with
    the onnxruntime path, view by view and in job order."""
    frames = scenes(5, seed=2)
    jobs = [(np.arange(5), View("full", 0, 240, 0, 320)), (np.arange(5), View("flip", 0, 240, 0, 320, flip=True)),
            (np.array([1, 3]), View("cell01", 0, 120, 160, 320)), (np.arange(5), None)]
    d = Descriptor("sscd-distilled", 224, device="cpu")
    want = d.embed_views(frames, jobs)
    d._graph, d.device = TorchGraph(model_path("sscd-distilled"), "cpu"), "cpu"
    got = d.embed_views(frames, jobs)
    assert got.shape == want.shape == (17, 512)
    # resizing in float on the GPU vs torch's uint8 kernel: at most a grey level apart, which
    # moves a descriptor by ~0.001 (a re-encoded copy moves it by ~0.1)
    assert cosines(got, want).min() > 0.995
    # the flip view is the mirrored frame's descriptor, not the frame's
    assert cosines(want[5:10], want[:5]).max() < 0.99


def test_flip_view_reuses_the_resize_exactly_enough():
    """A mirrored view's descriptor equals that of the mirrored frames resized on their own."""
    frames = scenes(3, seed=3)
    d = Descriptor("sscd-distilled", 224, device="cpu")
    flip = d.embed_views(frames, [(np.arange(3), View("flip", 0, 240, 0, 320, flip=True))])
    direct = d(np.ascontiguousarray(frames[:, :, ::-1]))
    assert cosines(flip, direct).min() > 0.9999


def test_resolve_device(monkeypatch):
    assert resolve_device("cpu") == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == "cpu"
    monkeypatch.setenv("FINGERPRINT_DEVICE", "cpu")
    assert resolve_device(None) == "cpu"
    with pytest.raises(FingerprintError, match="no CUDA GPU"):
        resolve_device("cuda")
    with pytest.raises(FingerprintError, match="choose auto, cpu or cuda"):
        resolve_device("tpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == "cuda"  # onnx is installed, so the torch backend can run


def test_unsupported_graph_is_refused(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    node = helper.make_node("Softmax", ["image"], ["embedding"])
    g = helper.make_graph([node], "g", [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 4])],
                          [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, [1, 4])])
    path = tmp_path / "other.onnx"
    onnx.save(helper.make_model(g), str(path))
    with pytest.raises(FingerprintError, match="Softmax"):
        TorchGraph(path, "cpu")
