"""Hough-style voting: turn one (query, reference) pair's hits into aligned segments.

Each hit says "query time q matches reference time r". A copy played at speed ``s`` puts its hits
on a line ``r = s * q + b``. We vote over a log-spaced slope grid and an offset histogram, take
the strongest cell, refit the line on its inliers by least squares, split the inliers at gaps in
query time, and repeat on what is left, so one pair can yield several segments.
"""
from __future__ import annotations

import functools
from typing import Dict, List, Sequence, Tuple, Union

import numpy as np

from fingerprint.jit import njit
from fingerprint.types import Hits, HitTable, Segment

from .params import VoteParams


@functools.lru_cache(maxsize=16)
def _slope_grid(p: VoteParams) -> np.ndarray:
    n = int(np.ceil(np.log(p.max_slope / p.min_slope) / np.log1p(p.slope_step))) + 1
    grid = np.geomspace(p.min_slope, p.max_slope, n)
    grid[np.argmin(np.abs(np.log(grid)))] = 1.0  # exact "no speed change"
    grid.flags.writeable = False  # shared by every call
    return grid


def best_line(q: np.ndarray, r: np.ndarray, w: np.ndarray, p: VoteParams) -> Tuple[float, float, float]:
    """The (slope, offset, votes) cell with the most weight; offset in seconds (``r = s*q + b``).

    Every slope of the grid is histogrammed over the pair's hits in bins of ``offset_bin_s`` from
    that slope's smallest offset, and two neighbouring bins make a cell (a line on a bin edge
    counts whole). Ties go to the first slope of the grid and the first bin; each bin sums its
    hits in input order. The offset is the weighted mean of the cell's hits' offsets.
    """
    grid = _slope_grid(p)
    if q.size == 0:
        return (1.0, 0.0, -1.0)
    span = (r.max() - r.min()) + max(abs(grid[0]), abs(grid[-1])) * (q.max() - q.min())
    n_bins = int(span / p.offset_bin_s) + 3  # enough for every slope's offsets, plus a neighbour
    q, r, w = _kernel_array(q), _kernel_array(r), _kernel_array(w)
    j, i, top = _best_cell(q, r, w, _kernel_array(grid), float(p.offset_bin_s), n_bins)
    if j < 0:
        return (1.0, 0.0, -1.0)
    b = r - grid[j] * q
    k = ((b - b.min()) / p.offset_bin_s).astype(np.int64)
    sel = (k == i) | (k == i + 1)
    return (float(grid[j]), float(np.average(b[sel], weights=w[sel])), float(top))


@njit
def _best_cell(q, r, w, grid, bin_s, n_bins):
    """:func:`best_line`'s histograms: ``(slope index, first bin, votes)`` of the heaviest cell
    heavier than -1, or ``(-1, 0, -1.0)``. Compiled: the voter's time is mostly here (0.56 s of
    0.84 s for the 936 pairs that pass :func:`may_align` at 100 h in numpy, which made a table of
    every slope's bins in one ``bincount``; this sums the same weights in the same order, so it
    finds the same cell)."""
    table = np.zeros(n_bins)
    k = np.empty(q.size, np.int64)
    best_j, best_i, best = -1, 0, -1.0
    for j in range(grid.size):
        s = grid[j]
        lo = np.inf
        for t in range(q.size):
            lo = min(lo, r[t] - s * q[t])
        top_k = 0
        for t in range(q.size):
            k[t] = int((r[t] - s * q[t] - lo) / bin_s)
            table[k[t]] += w[t]
            top_k = max(top_k, k[t])
        # bins after top_k are empty: scan them only if no cell up to there is positive
        i_max, c_max = 0, table[0] + table[1]
        for i in range(1, n_bins - 1):
            if i > top_k and c_max > 0:
                break
            c = table[i] + table[i + 1]
            if c > c_max:
                i_max, c_max = i, c
        if c_max > best:
            best_j, best_i, best = j, i_max, c_max
        for t in range(q.size):
            table[k[t]] = 0.0
    return best_j, best_i, best


def _refit(q, r, w, slope, offset, p: VoteParams):
    """Weighted least-squares refit of ``r = s*q + b`` on the inliers, twice; keeps the grid line
    if the fit leaves the allowed slope range or has too few points to trust."""
    for _ in range(2):
        inl = np.abs(r - (slope * q + offset)) <= p.inlier_tol_s
        if inl.sum() < 3 or np.ptp(q[inl]) < 0.5:
            return slope, offset, inl
        A = np.stack([q[inl], np.ones(int(inl.sum()))], axis=1)
        sw = np.sqrt(w[inl])
        (s_new, b_new), *_ = np.linalg.lstsq(A * sw[:, None], r[inl] * sw, rcond=None)
        if not (p.min_slope <= s_new <= p.max_slope):
            break
        slope, offset = float(s_new), float(b_new)
    inl = np.abs(r - (slope * q + offset)) <= p.inlier_tol_s
    return slope, offset, inl


def find_segments(hits: Hits, p: VoteParams) -> List[Segment]:
    """Aligned segments of one (query, reference) pair, strongest first.

    Parameters
    ----------
    hits : Hits of the pair (any source).
    p : VoteParams for that kind of evidence (``fusion.params.AUDIO_VOTE``, ...).

    Returns
    -------
    Segments with ``query_start/end`` from the inliers' first time and last time + span,
    ``ref_start/end`` on the fitted line, ``score`` = summed inlier weight, ``slope`` the fitted
    speed, ``n_hits`` the inlier count. ``ref_id``/``query_id`` are left for the caller.

    >>> segs = find_segments(hits["R000001"], AUDIO_VOTE)    # doctest: +SKIP
    >>> segs[0].query_start, segs[0].ref_start, segs[0].slope # doctest: +SKIP
    (15.02, 20.0, 1.0)
    """
    q = np.asarray(hits.query_t, float)
    r = np.asarray(hits.ref_t, float)
    w = np.asarray(hits.score, float)
    span = np.asarray(hits.span_s, float)
    alive = np.ones(q.size, bool)
    segments: List[Segment] = []
    for _ in range(4 * p.max_segments):  # lines with no usable cluster still use up a round
        if len(segments) >= p.max_segments or alive.sum() < p.min_hits:
            break
        idx = np.flatnonzero(alive)
        slope, offset, votes = best_line(q[idx], r[idx], w[idx], p)
        if votes < p.min_hits:
            break
        slope, offset, inl = _refit(q[idx], r[idx], w[idx], slope, offset, p)
        members = idx[inl]
        alive[members] = False
        if members.size == 0:
            break
        members = members[np.argsort(q[members], kind="stable")]
        breaks = np.flatnonzero(np.diff(q[members]) > p.max_gap_s) + 1
        for grp in np.split(members, breaks):
            grp = _trim_edges(grp, q, p)
            if w[grp].sum() < p.min_hits:
                continue
            qs = float(q[grp].min())
            qe = float((q[grp] + span[grp]).max())
            if qe - qs < p.min_len_s:
                continue
            rs, re_ = slope * qs + offset, slope * qe + offset
            if re_ <= 0:
                continue
            segments.append(Segment(query_start=max(qs, 0.0), query_end=qe, ref_start=max(rs, 0.0),
                                    ref_end=re_, score=float(w[grp].sum()), slope=slope,
                                    n_hits=int(grp.size), evidence={hits.source: int(grp.size)},
                                    strength={hits.source: float(w[grp].sum())},
                                    lengths={hits.source: qe - max(qs, 0.0)}))
    segments.sort(key=lambda s: -s.score)
    kept: List[Segment] = []
    for seg in segments:
        length = seg.query_end - seg.query_start
        if all(_overlap(seg, k) <= p.max_query_overlap * length for k in kept):
            kept.append(seg)
    return kept[:p.max_segments]


def _overlap(a: Segment, b: Segment) -> float:
    return max(0.0, min(a.query_end, b.query_end) - max(a.query_start, b.query_start))


def _trim_edges(grp: np.ndarray, q: np.ndarray, p: VoteParams) -> np.ndarray:
    """Drop inliers at either end of a query-sorted group that lack ``edge_support`` neighbours."""
    if p.edge_support <= 0 or grp.size == 0:
        return grp
    t = q[grp]
    lo = np.searchsorted(t, t - p.edge_window_s, side="left")
    hi = np.searchsorted(t, t + p.edge_window_s, side="right")
    ok = np.flatnonzero((hi - lo - 1) >= p.edge_support)
    if ok.size == 0:
        return grp[:0]
    return grp[ok[0]:ok[-1] + 1]


#: Slopes of the coarse grid that :func:`may_align` scans first. More slopes make its offset bins
#: narrower (fewer hits kept for the second stage) and cost one more pass over all hits each.
#: On the 2.27M hits of a 60 s query against a 1,000 h synthetic index (2 cores): 4 slopes 0.33 s,
#: 6 0.27 s, 8 0.24 s, 12 0.23 s, 16 0.25 s; at 100 h all take 0.14-0.15 s.
COARSE_SLOPES = 12


def may_align(hits: Union[Sequence[Hits], HitTable], p: VoteParams) -> np.ndarray:
    """Which pairs could give :func:`find_segments` a segment: a necessary condition checked for
    many pairs at once, so that a large index's many chance pairs skip the voter.

    ``hits``: one :class:`Hits` per (query, reference) pair, or a :class:`HitTable` of them.
    Returns a bool array, one per pair; False means ``find_segments(hits[i], p)`` is certainly
    empty.

    Why it is exact: a segment needs a cell of :func:`best_line` with summed weight
    ``>= p.min_hits``: hits ``H`` whose offsets ``r - s*q`` at one voter slope ``s`` lie in two
    adjacent bins of ``offset_bin_s``, counted from the pair's smallest offset at ``s``.

    1. Coarse: at the nearest of ``COARSE_SLOPES`` slopes ``S`` (``|s - S| <= eps``), ``r - S*q``
       spreads ``H`` over less than ``W = 2 * offset_bin_s + eps * R`` (``R``: the pair's
       query-time range), so three adjacent bins of ``W / 2`` hold all of ``H`` and weigh
       ``>= p.min_hits``. Pairs with no such bins are out; in the others, only the hits inside
       such heavy runs of bins are kept for ``S``.
    2. Fine: every slope of the voter's grid is histogrammed on the hits kept for its nearest
       coarse slope, which hold ``H``, in bins of ``offset_bin_s``. They start at the kept hits'
       smallest offset, not the pair's, so the voter's two bins lie within three of these: a
       pair passes if three adjacent bins at some grid slope weigh ``>= p.min_hits``.

    The coarse stage is one pass over a pair's hits per coarse slope, the fine stage sees only
    kept hits, and a pair stops at its first pass; both run compiled
    (:func:`fingerprint.jit.njit`): 0.23 s for the 2.27M hits of a 60 s query against a 1,000 h
    synthetic index, against 0.69 s for the same stages in numpy. Pairs with fewer than
    ``p.min_hits`` hits cannot pass; pairs with a negative weight (which a subset could outweigh)
    always pass. For a 60 s query of unrelated audio on a 100 h synthetic index it passes 9.3% of
    the pairs met 12 times (the voter's first round: 7.2%; the coarse stage alone: 48%), and on a
    1,000 h one 0.5%.

    >>> keep = may_align(list(hits.values()), AUDIO_VOTE)        # doctest: +SKIP
    """
    sizes = hits.sizes if isinstance(hits, HitTable) else np.array([len(h) for h in hits], np.int64)
    if isinstance(hits, HitTable):
        flat = hits.flat
        q, r, w = flat.query_t, flat.ref_t, flat.score
        starts = hits.starts
    else:
        q, r, w = (np.concatenate([np.zeros(0)] + [np.asarray(getattr(h, a), np.float64) for h in hits])
                   for a in ("query_t", "ref_t", "score"))
        starts = np.r_[0, np.cumsum(sizes)[:-1]]
    if len(sizes) == 0:
        return np.zeros(0, bool)
    coarse = np.geomspace(p.min_slope, p.max_slope, COARSE_SLOPES)
    eps = float(np.max(np.diff(coarse))) / 2 if COARSE_SLOPES > 1 else p.max_slope - p.min_slope
    grid = _slope_grid(p)
    nearest = np.abs(grid[:, None] - coarse[None, :]).argmin(axis=1)  # within eps of it
    starts = _kernel_array(starts, np.int64)
    # min_hits - 1e-9: the kernel sums weights in the voter's order, but a margin costs nothing
    return _may_align_kernel(_kernel_array(q), _kernel_array(r), _kernel_array(w), starts,
                             starts + _kernel_array(sizes, np.int64), coarse, eps, _kernel_array(grid),
                             _kernel_array(nearest, np.int64), float(p.offset_bin_s), float(p.min_hits) - 1e-9)


def _kernel_array(a, dtype=np.float64) -> np.ndarray:
    """``a`` as a writeable C-contiguous array of ``dtype``: numba compiles one version of a kernel
    per array type, read-only and strided arrays included, and each costs seconds."""
    return np.require(a, dtype, ["C", "W"])


@njit
def _may_align_kernel(q, r, w, starts, ends, coarse, eps, grid, nearest, bin_s, mh):
    """:func:`may_align`'s two stages, pair by pair (pair ``i``: hits ``starts[i]:ends[i]``).

    Per pair and coarse slope, the offsets are histogrammed in a small table that stays in the
    cache, and the pair stops at its first pass: one pass over the hits per coarse slope, where
    numpy needed ~10 over every pair's bins. A heavy run of three bins is looked for only where
    it starts at an occupied bin: with no negative weight (pairs with one have passed already), a
    heavy run that starts at an empty bin holds no more than the run that starts at its first
    occupied bin, so the pairs that pass and the hits kept are the same as over every bin.
    Weights are summed in hit order, then three bins left to right."""
    n = starts.size
    out = np.zeros(n, np.bool_)
    inv_fine = 1.0 / bin_s
    most = 0
    for i in range(n):
        most = max(most, ends[i] - starts[i])
    off = np.empty(most)
    cell = np.empty(most, np.int64)
    kept = np.empty(most, np.int64)
    table = np.zeros(64)
    for i in range(n):
        a = starts[i]
        m = ends[i] - a
        if m < max(1.0, mh):  # the voter stops below min_hits hits
            continue
        q_lo = q[a]
        q_hi = q[a]
        negative = False
        for k in range(a, a + m):
            q_lo = min(q_lo, q[k])
            q_hi = max(q_hi, q[k])
            negative = negative or w[k] < 0
        if negative:  # a subset could outweigh the whole: the voter must see the pair
            out[i] = True
            continue
        # coarse bins of half the spread bound; the margin keeps rounding from splitting a cell
        inv = 2.0 / (2 * bin_s + eps * (q_hi - q_lo) + 1e-6)
        for j in range(coarse.size):
            s = coarse[j]
            lo = np.inf
            for k in range(m):
                off[k] = r[a + k] - s * q[a + k]
                lo = min(lo, off[k])
            top = 0
            for k in range(m):
                cell[k] = int((off[k] - lo) * inv)
                top = max(top, cell[k])
            if table.size < top + 3:
                table = np.zeros(2 * (top + 3))
            for k in range(m):
                table[cell[k]] += w[a + k]
            n_kept = 0  # hits in a bin that a heavy run of three covers
            for k in range(m):
                c = cell[k]
                for d in range(3):
                    if c >= d and table[c - d] + table[c - d + 1] + table[c - d + 2] >= mh:
                        kept[n_kept] = a + k
                        n_kept += 1
                        break
            for k in range(m):
                table[cell[k]] = 0.0
            if n_kept == 0:
                continue
            for g in range(grid.size):  # the voter's slopes nearest to this coarse one
                if nearest[g] != j:
                    continue
                s = grid[g]
                lo = np.inf
                for t in range(n_kept):
                    off[t] = r[kept[t]] - s * q[kept[t]]
                    lo = min(lo, off[t])
                top = 0
                for t in range(n_kept):
                    cell[t] = int((off[t] - lo) * inv_fine)
                    top = max(top, cell[t])
                if table.size < top + 3:
                    table = np.zeros(2 * (top + 3))
                for t in range(n_kept):
                    table[cell[t]] += w[kept[t]]
                for t in range(n_kept):
                    c = cell[t]
                    if table[c] + table[c + 1] + table[c + 2] >= mh:
                        out[i] = True
                        break
                for t in range(n_kept):
                    table[cell[t]] = 0.0
                if out[i]:
                    break
            if out[i]:
                break
    return out


def warm_up() -> None:
    """Compile (or load from the on-disk cache) the voting kernels now, not in the first query:
    ~3 s the first time, ~0.6 s (mostly importing numba) from the cache."""
    line = np.arange(12.0)
    hits = Hits(query_t=line, ref_t=line, score=np.ones(12), span_s=np.ones(12), source="audio")
    find_segments_many({"warm-up": hits}, VoteParams())  # both kernels: 12 votes on one line


def find_segments_many(hits: Union[Dict[str, Hits], HitTable], p: VoteParams) -> Dict[str, List[Segment]]:
    """:func:`find_segments` of every pair in ``hits`` (``{ref_id: Hits}``, or a
    :class:`HitTable`); pairs that :func:`may_align` rules out get ``[]`` without running the
    voter (and, from a table, without a :class:`Hits` being made for them)."""
    if isinstance(hits, HitTable):
        keep = may_align(hits, p)
        return {rid: (find_segments(hits.hits(i), p) if k else [])
                for i, (rid, k) in enumerate(zip(hits.ref_ids, keep))}
    ids = list(hits)
    keep = may_align([hits[i] for i in ids], p)
    return {rid: (find_segments(hits[rid], p) if k else []) for rid, k in zip(ids, keep)}
