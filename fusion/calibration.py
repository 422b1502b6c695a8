"""One score scale for all segments: per-modality logistic models combined by noisy-OR.

The VSC metric ranks every row of every query together, so a segment's score must mean the same
thing whichever query and modality it comes from. Each modality's evidence for a segment (its
strength, its length, its speed) gives P_m(copy) through a logistic model of that modality, and a
segment found by both is a copy unless both are wrong: P = 1 - (1 - P_audio)(1 - P_visual). So
strong audio alone is a confident match even where a video has no usable picture (and the other
way round), and agreement raises the score. The models are fitted by
``scripts/fit_calibration.py`` on generated benchmarks and stored as plain numbers in
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
VERSION = 2
DEFAULT_PATH = Path(__file__).resolve().parents[1] / "model_assets" / "calibration.npz"
MODALITIES = ("audio", "visual")

#: What each modality's model sees of a segment (strength = summed hit weight, see fusion.voting).
FEATURES = {
    "audio": ["log_strength",     # log(1 + summed landmark-hit weight)
              "log_len_s",        # log of this modality's query span (chance lines are short)
              "abs_log_speed"],   # |log speed|: chance lines favour extreme slopes
    "visual": ["log_strength",    # log(1 + summed normalized frame similarity above the floor)
               "mean_weight",     # strength per matched frame: how similar the frames are
               "log_len_s",
               "abs_log_speed"],
}
#: Features whose weight must not be negative: more evidence never lowers the score.
MONOTONE = ["log_strength", "mean_weight"]


def segment_features(segments: Sequence[Segment], modality: str) -> np.ndarray:
    """``(n, len(FEATURES[modality]))`` features of each segment's ``modality`` evidence (rows
    of segments without that evidence are zeros; :meth:`Calibration.predict` gives them P = 0)."""
    x = np.zeros((len(segments), len(FEATURES[modality])))
    for i, s in enumerate(segments):
        st = s.strength.get(modality, 0.0)
        if st <= 0:
            continue
        n = max(s.evidence.get(modality, 1), 1)
        length = max(s.lengths.get(modality, s.query_end - s.query_start), 0.5)
        speed = abs(math.log(max(s.slope, 1e-3)))
        row = {"log_strength": math.log1p(st), "mean_weight": st / n, "log_len_s": math.log(length),
               "abs_log_speed": speed}
        x[i] = [row[f] for f in FEATURES[modality]]
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

    ``models``: per modality ``(mean, scale, weights, bias)`` as returned by :func:`fit_logistic`.

    >>> cal = Calibration.load()
    >>> cal.apply(segments)        # doctest: +SKIP   (sets each segment's score in [0, 1])
    """

    def __init__(self, models: Dict[str, tuple], info: Optional[Dict] = None):
        self.models = {}
        for m in MODALITIES:
            mean, scale, w, b = models[m]
            mean, scale, w = (np.asarray(a, float) for a in (mean, scale, w))
            if not (mean.shape == scale.shape == w.shape == (len(FEATURES[m]),)):
                raise ValueError(f"the {m} model needs {len(FEATURES[m])} features")
            self.models[m] = (mean, scale, w, float(b))
        self.info = info or {}

    def predict_modality(self, segments: Sequence[Segment], modality: str) -> np.ndarray:
        """P(copy) from one modality's evidence alone, ``(n,)``; 0 where it has none."""
        if not segments:
            return np.zeros(0)
        mean, scale, w, b = self.models[modality]
        z = ((segment_features(segments, modality) - mean) / scale) @ w + b
        p = 1.0 / (1.0 + np.exp(-np.clip(z, -30, 30)))
        has = np.array([s.strength.get(modality, 0.0) > 0 for s in segments])
        return np.where(has, p, 0.0)

    def predict(self, segments: Sequence[Segment]) -> np.ndarray:
        """P(copy) per segment, ``(n,)``: noisy-OR of the modalities' probabilities."""
        miss = np.ones(len(segments))
        for m in MODALITIES:
            miss *= 1.0 - self.predict_modality(segments, m)
        return 1.0 - miss

    def apply(self, segments: List[Segment]) -> List[Segment]:
        """Set each segment's ``score`` to its calibrated probability; returns them, best first."""
        for s, p in zip(segments, self.predict(segments)):
            s.score = float(p)
        return sorted(segments, key=lambda s: -s.score)

    def save(self, path: Union[str, Path]) -> None:
        arrays = {}
        for m, (mean, scale, w, b) in self.models.items():
            arrays.update({f"{m}_mean": mean, f"{m}_scale": scale, f"{m}_weights": w, f"{m}_bias": np.array([b])})
        save_arrays(path, KIND, VERSION, arrays, {"features": FEATURES, "info": self.info})

    @classmethod
    def load(cls, path: Union[str, Path, None] = None) -> "Calibration":
        """Read a calibration file (default: the committed one). Raises IndexFormatError when it
        is damaged, foreign, or made for other features."""
        path = Path(path) if path is not None else DEFAULT_PATH
        arrays, meta = load_arrays(path, KIND, VERSION)
        if meta.get("features") != FEATURES:
            raise IndexFormatError(path, "calibration was fitted on other features; refit it "
                                         "(scripts/fit_calibration.py)")
        return cls({m: (arrays[f"{m}_mean"], arrays[f"{m}_scale"], arrays[f"{m}_weights"],
                        float(arrays[f"{m}_bias"][0])) for m in MODALITIES}, meta.get("info"))
