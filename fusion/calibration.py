"""One score scale for all segments: a logistic model over evidence features.

The VSC metric ranks every row of every query together, so a segment's score must mean the same
thing whichever query and modality it comes from. :func:`segment_features` describes a segment by
its evidence; :class:`Calibration` maps that to P(segment is a real copy) with a logistic model
fitted by ``scripts/fit_calibration.py`` on generated benchmarks and stored as plain numbers in
``model_assets/calibration.npz``.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union

import numpy as np

from fingerprint.errors import IndexFormatError
from fingerprint.storage import load_arrays, save_arrays
from fingerprint.types import Segment

KIND = "score-calibration"
VERSION = 1
DEFAULT_PATH = Path(__file__).resolve().parents[1] / "model_assets" / "calibration.npz"

#: What the model sees of a segment (strength = summed hit weight, see fusion.voting).
FEATURES = [
    "log_audio_strength",   # log(1 + audio strength); 0 without audio evidence
    "log_visual_strength",  # log(1 + visual strength)
    "both",                 # 1 when both modalities found it
    "log_len_s",            # log of the query span in seconds (chance lines are short)
    "abs_log_speed",        # |log speed|: chance lines favour extreme slopes
    "visual_mean_weight",   # visual strength per visual hit: how similar the frames are
]
#: Features whose weight must not be negative: more evidence never lowers the score.
MONOTONE = ["log_audio_strength", "log_visual_strength", "both", "visual_mean_weight"]


def segment_features(segments: Sequence[Segment]) -> np.ndarray:
    """``(n, len(FEATURES))`` float64 features of segments (order of :data:`FEATURES`)."""
    x = np.zeros((len(segments), len(FEATURES)))
    for i, s in enumerate(segments):
        a, v = s.strength.get("audio", 0.0), s.strength.get("visual", 0.0)
        vh = s.evidence.get("visual", 0)
        length = max(s.query_end - s.query_start, 0.5)
        x[i] = [math.log1p(a), math.log1p(v), float(a > 0 and v > 0), math.log(length),
                abs(math.log(max(s.slope, 1e-3))), v / vh if vh else 0.0]
    return x


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = 1.0, nonneg: Sequence[int] = (),
                 iters: int = 50) -> tuple:
    """L2-regularized logistic regression by Newton's method on standardized features.

    ``x`` ``(n, d)``, ``y`` ``(n,)`` in {0, 1}; ``nonneg``: columns whose weight must be >= 0 (a
    column that comes out negative is dropped, weight 0, and the rest refitted). Returns
    ``(mean, scale, weights, bias)`` with p = sigmoid(((x - mean) / scale) @ weights + bias).
    """
    x = np.asarray(x, float)
    y = np.asarray(y, float)
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale < 1e-9] = 1.0
    active = np.ones(x.shape[1], bool)
    while True:
        z = np.hstack([((x - mean) / scale)[:, active], np.ones((len(x), 1))])
        w = np.zeros(z.shape[1])
        reg = np.full(z.shape[1], l2)
        reg[-1] = 0.0  # the bias is not shrunk
        for _ in range(iters):
            p = 1.0 / (1.0 + np.exp(-np.clip(z @ w, -30, 30)))
            grad = z.T @ (p - y) + reg * w
            hess = (z * (p * (1 - p))[:, None]).T @ z + np.diag(reg) + 1e-9 * np.eye(len(w))
            step = np.linalg.solve(hess, grad)
            w -= step
            if np.abs(step).max() < 1e-10:
                break
        full = np.zeros(x.shape[1])
        full[active] = w[:-1]
        bad = [j for j in nonneg if active[j] and full[j] < 0]
        if not bad:
            return mean, scale, full, float(w[-1])
        active[bad] = False


class Calibration:
    """P(copy) for segments. ``Calibration.load()`` reads ``model_assets/calibration.npz``.

    >>> cal = Calibration.load()
    >>> cal.apply(segments)        # doctest: +SKIP   (sets each segment's score in [0, 1])
    """

    def __init__(self, mean: np.ndarray, scale: np.ndarray, weights: np.ndarray, bias: float,
                 info: Optional[Dict] = None):
        self.mean = np.asarray(mean, float)
        self.scale = np.asarray(scale, float)
        self.weights = np.asarray(weights, float)
        self.bias = float(bias)
        self.info = info or {}
        if not (self.mean.shape == self.scale.shape == self.weights.shape == (len(FEATURES),)):
            raise ValueError(f"calibration needs {len(FEATURES)} features")

    def predict(self, segments: Sequence[Segment]) -> np.ndarray:
        """P(copy) per segment, ``(n,)`` float64 in (0, 1)."""
        if not segments:
            return np.zeros(0)
        z = ((segment_features(segments) - self.mean) / self.scale) @ self.weights + self.bias
        return 1.0 / (1.0 + np.exp(-np.clip(z, -30, 30)))

    def apply(self, segments: List[Segment]) -> List[Segment]:
        """Set each segment's ``score`` to its calibrated probability; returns them, best first."""
        for s, p in zip(segments, self.predict(segments)):
            s.score = float(p)
        return sorted(segments, key=lambda s: -s.score)

    def save(self, path: Union[str, Path]) -> None:
        save_arrays(path, KIND, VERSION, {"mean": self.mean, "scale": self.scale, "weights": self.weights,
                                          "bias": np.array([self.bias])},
                    {"features": FEATURES, "info": self.info})

    @classmethod
    def load(cls, path: Union[str, Path, None] = None) -> "Calibration":
        """Read a calibration file (default: the committed one). Raises IndexFormatError when it
        is damaged, foreign, or made for other features."""
        path = Path(path) if path is not None else DEFAULT_PATH
        arrays, meta = load_arrays(path, KIND, VERSION)
        if meta.get("features") != FEATURES:
            raise IndexFormatError(path, "calibration was fitted on other features; refit it "
                                         "(scripts/fit_calibration.py)")
        return cls(arrays["mean"], arrays["scale"], arrays["weights"], float(arrays["bias"][0]), meta.get("info"))
