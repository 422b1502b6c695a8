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
from typing import Dict, List, Tuple

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
    return views + _FrameStats(frames).layout(np.arange(n))


def layout_views(frames: np.ndarray, window: int) -> Dict[View, List[int]]:
    """Layout views (trim, cells; not the full frame) of frames ``(n, h, w, 3)`` uint8, or of
    their :func:`gray` levels ``(n, h, w)``, detected in windows of ``window`` frames that overlap
    by half: ``{view: [frame indices of the windows that show it]}``, in order of discovery. A
    copy with such a layout usually fills only part of a query, so a view applies to its windows
    only.

    Equal to :func:`detect_views` run on every window, at about half the cost: the per-frame
    sums behind the border test and the edge profiles are computed once per frame, not once per
    window that holds it (results are the same; tests/visual/test_views.py checks).

    >>> layout_views(frames, 8)                # doctest: +SKIP
    {View(name='trim', y0=30, y1=210, x0=0, x1=320, flip=False): [0, 1, ..., 11]}
    """
    n = len(frames)
    stats = _FrameStats(frames)
    found: Dict[View, set] = {}
    for start in range(0, max(n - window // 2, 1), window // 2):
        idx = np.arange(start, min(start + window, n))
        for v in stats.layout(idx):
            found.setdefault(v, set()).update(idx.tolist())
    return {v: sorted(ix) for v, ix in found.items()}


#: Frames per pass of :class:`_FrameStats` (four 320x240 frames fit in a core's cache).
_CHUNK = 4


class _FrameStats:
    """Per-frame sums of grey levels ``g`` ``(n, h, w)`` from which any window of frames gets its
    border box and, when it has no border, its edge profiles without touching the pixels again."""

    def __init__(self, frames: np.ndarray):
        """``frames``: uint8 RGB ``(n, h, w, 3)``, or their :func:`gray` levels ``(n, h, w)``."""
        n, self.h, self.w = frames.shape[:3]
        self.g = frames if frames.ndim == 3 else np.empty((n, self.h, self.w), np.float32)
        self.row_s1, self.row_s2 = np.empty((n, self.h)), np.empty((n, self.h))
        self.col_s1, self.col_s2 = np.empty((n, self.w)), np.empty((n, self.w))
        self.row_edge = np.empty((n, self.h - 1), np.float32)
        self.col_edge = np.empty((n, self.w - 1), np.float32)
        # a few frames at a time, grey levels included: whole-batch passes stream the pictures
        # through memory once per statistic, and ran 1.6x slower than the per-window code they
        # replace
        for a in range(0, n, _CHUNK):
            c = frames[a:a + _CHUNK]
            if c.ndim == 4:
                c = self.g[a:a + _CHUNK] = gray(c)
            sq = c * c
            self.row_s1[a:a + _CHUNK], self.row_s2[a:a + _CHUNK] = c.sum(axis=2), sq.sum(axis=2)
            self.col_s1[a:a + _CHUNK], self.col_s2[a:a + _CHUNK] = c.sum(axis=1), sq.sum(axis=1)
            self.row_edge[a:a + _CHUNK], self.col_edge[a:a + _CHUNK] = _edge_profiles(c)

    def trim_box(self, idx: np.ndarray) -> Tuple[int, int, int, int]:
        """Bounding box of the window's non-uniform area (letterbox/pillarbox bars removed)."""
        row_std = _std(self.row_s1[idx], self.row_s2[idx], len(idx) * self.w)
        col_std = _std(self.col_s1[idx], self.col_s2[idx], len(idx) * self.h)
        rows = np.flatnonzero(row_std > BORDER_STD)
        cols = np.flatnonzero(col_std > BORDER_STD)
        if rows.size == 0 or cols.size == 0:
            return 0, self.h, 0, self.w
        return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1

    def layout(self, idx: np.ndarray) -> List[View]:
        """The trim and cell views of frames ``idx`` (see :func:`detect_views`)."""
        h, w = self.h, self.w
        views = []
        y0, y1, x0, x1 = self.trim_box(idx)
        if (y1 - y0) < 0.95 * h or (x1 - x0) < 0.95 * w:
            if (y1 - y0) >= MIN_CELL_FRAC * h and (x1 - x0) >= MIN_CELL_FRAC * w:
                views.append(View("trim", y0, y1, x0, x1))
        if (y0, y1, x0, x1) == (0, h, 0, w):
            row_edge, col_edge = self.row_edge[idx], self.col_edge[idx]
        else:  # bars: the profiles of the area inside them
            row_edge, col_edge = _edge_profiles(self.g[idx, y0:y1, x0:x1])
        # Median over frames: a layout edge is there in (nearly) every frame, content edges move.
        row_prof = np.median(row_edge, axis=0)
        col_prof = np.median(col_edge, axis=0)
        rows = [y0] + [y0 + r for r in _layout_lines(row_prof, y1 - y0)] + [y1]
        cols = [x0] + [x0 + c for c in _layout_lines(col_prof, x1 - x0)] + [x1]
        if len(rows) > 2 or len(cols) > 2:
            for i in range(len(rows) - 1):
                for j in range(len(cols) - 1):
                    cy0, cy1, cx0, cx1 = rows[i], rows[i + 1], cols[j], cols[j + 1]
                    if (cy1 - cy0) >= MIN_CELL_FRAC * h and (cx1 - cx0) >= MIN_CELL_FRAC * w:
                        views.append(View(f"cell{i}{j}", cy0, cy1, cx0, cx1))
        return views


def _std(s1: np.ndarray, s2: np.ndarray, count: int) -> np.ndarray:
    """Standard deviation over frames and one image axis from per-frame sums ``(k, m)``."""
    mean = s1.sum(axis=0) / count
    return np.sqrt(np.maximum(s2.sum(axis=0) / count - mean * mean, 0.0))


def _edge_profiles(g: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Per frame, the mean absolute grey-level step between neighbouring rows ``(n, h-1)`` and
    between neighbouring columns ``(n, w-1)``."""
    d = np.subtract(g[:, 1:], g[:, :-1])
    row = np.abs(d, out=d).mean(axis=2)
    d = np.subtract(g[:, :, 1:], g[:, :, :-1])
    col = np.abs(d, out=d).mean(axis=1)
    return row, col
