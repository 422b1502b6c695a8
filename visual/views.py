"""Query views for the edits that defeat a global descriptor.

A copy shown inside a letterbox, one tile of a 2x2 stack, or a picture-in-picture window sits
behind *persistent straight edges*: rows or columns where the picture jumps in every frame, at
the same place, whatever the content does. We look for them in the query's frames and crop the
cells they bound; we also trim uniform borders and can add a horizontal flip (off by default in
``VisualParams.flip``: SSCD descriptors barely change under mirroring). The matcher takes, for
each query frame, the best similarity over all views.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Tuple

import numpy as np

#: A layout edge must be this many times stronger than the median row/column edge...
EDGE_RATIO = 3.0
#: ...and at least this strong (mean absolute grey-level step, 0-255).
EDGE_MIN = 6.0
#: Cells smaller than this fraction of the frame in either dimension are not views.
MIN_CELL_FRAC = 0.22
#: A border row/column is "uniform" when its grey levels vary less than this over space and time.
BORDER_STD = 6.0
#: At most this many layout lines per axis (2 bound a picture-in-picture window).
MAX_LINES = 2


@dataclass(frozen=True)
class View:
    """A crop ``[y0:y1, x0:x1]`` of the frame, optionally mirrored left-right."""

    name: str
    y0: int
    y1: int
    x0: int
    x1: int
    flip: bool = False

    def apply(self, frames: np.ndarray) -> np.ndarray:
        v = frames[:, self.y0:self.y1, self.x0:self.x1]
        return v[:, :, ::-1] if self.flip else v


def _trim_box(gray: np.ndarray) -> Tuple[int, int, int, int]:
    """Bounding box of the non-uniform area (letterbox/pillarbox bars removed)."""
    _, h, w = gray.shape
    row_std = gray.std(axis=(0, 2))
    col_std = gray.std(axis=(0, 1))
    rows = np.flatnonzero(row_std > BORDER_STD)
    cols = np.flatnonzero(col_std > BORDER_STD)
    if rows.size == 0 or cols.size == 0:
        return 0, h, 0, w
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def _layout_lines(profile: np.ndarray, length: int) -> List[int]:
    """Positions of persistent edges in a per-row (or per-column) edge profile."""
    if profile.size < 8:
        return []
    base = float(np.median(profile)) + 1e-6
    strong = np.flatnonzero((profile > EDGE_RATIO * base) & (profile > EDGE_MIN))
    margin = int(0.15 * length)
    strong = strong[(strong >= margin) & (strong < length - margin)]
    # One line per run of adjacent strong positions, strongest first.
    lines = []
    for run in np.split(strong, np.flatnonzero(np.diff(strong) > 2) + 1):
        if run.size:
            lines.append(int(run[np.argmax(profile[run])]) + 1)
    lines.sort(key=lambda i: -profile[i - 1])
    return sorted(lines[:MAX_LINES])


def gray(frames: np.ndarray) -> np.ndarray:
    """float32 ``(n, h, w)`` mean of the three channels of uint8 ``(n, h, w, 3)`` frames (a
    uint16 sum first: 15x faster than a float mean over the last axis)."""
    s = frames[..., 0].astype(np.uint16)
    s += frames[..., 1]
    s += frames[..., 2]
    return s.astype(np.float32) * np.float32(1.0 / 3.0)


def detect_views(frames: np.ndarray, flip: bool = True) -> List[View]:
    """Views of a query given its frames ``(n, h, w, 3)`` uint8, or their :func:`gray` levels
    ``(n, h, w)`` float32 (a sample of 8-40 frames is plenty).

    Always the full frame (and its mirror when ``flip``); then the trimmed area when bars were
    found; then every cell of the grid drawn by persistent edges (stacked scenes, picture-in-
    picture) that is at least ``MIN_CELL_FRAC`` of the frame on each side.
    """
    n, h, w = frames.shape[:3]
    views = [View("full", 0, h, 0, w)]
    if flip:
        views.append(View("flip", 0, h, 0, w, flip=True))
    if n == 0:
        return views
    gray_ = frames if frames.ndim == 3 else gray(frames)
    y0, y1, x0, x1 = _trim_box(gray_)
    if (y1 - y0) < 0.95 * h or (x1 - x0) < 0.95 * w:
        if (y1 - y0) >= MIN_CELL_FRAC * h and (x1 - x0) >= MIN_CELL_FRAC * w:
            views.append(View("trim", y0, y1, x0, x1))
    g = gray_[:, y0:y1, x0:x1]
    # Median over frames: a layout edge is there in (nearly) every frame, content edges move.
    row_prof = np.median(np.abs(np.diff(g, axis=1)).mean(axis=2), axis=0)
    col_prof = np.median(np.abs(np.diff(g, axis=2)).mean(axis=1), axis=0)
    rows = [y0] + [y0 + r for r in _layout_lines(row_prof, y1 - y0)] + [y1]
    cols = [x0] + [x0 + c for c in _layout_lines(col_prof, x1 - x0)] + [x1]
    if len(rows) > 2 or len(cols) > 2:
        for i in range(len(rows) - 1):
            for j in range(len(cols) - 1):
                cy0, cy1, cx0, cx1 = rows[i], rows[i + 1], cols[j], cols[j + 1]
                if (cy1 - cy0) >= MIN_CELL_FRAC * h and (cx1 - cx0) >= MIN_CELL_FRAC * w:
                    views.append(View(f"cell{i}{j}", cy0, cy1, cx0, cx1))
    return views
