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

from fingerprint.types import Hits, HitTable, Segment

from .params import VoteParams


@functools.lru_cache(maxsize=16)
def _slope_grid(p: VoteParams) -> np.ndarray:
    n = int(np.ceil(np.log(p.max_slope / p.min_slope) / np.log1p(p.slope_step))) + 1
    grid = np.geomspace(p.min_slope, p.max_slope, n)
    grid[np.argmin(np.abs(np.log(grid)))] = 1.0  # exact "no speed change"
    grid.flags.writeable = False  # shared by every call
    return grid


#: best_line evaluates this many (slope, offset bin) cells at a time at most (~32 MB of float64).
_MAX_CELLS = 4_000_000


def best_line(q: np.ndarray, r: np.ndarray, w: np.ndarray, p: VoteParams) -> Tuple[float, float, float]:
    """The (slope, offset, votes) cell with the most weight; offset in seconds (``r = s*q + b``).

    Every slope of the grid is histogrammed in one ``bincount`` (slopes in chunks that keep the
    table under ``_MAX_CELLS``); ties go to the first slope of the grid and the first bin, and
    each bin sums its hits in input order, so the result does not depend on the chunking."""
    grid = _slope_grid(p)
    best = (1.0, 0.0, -1.0)
    if q.size == 0:
        return best
    span = (r.max() - r.min()) + max(abs(grid[0]), abs(grid[-1])) * (q.max() - q.min())
    n_bins = int(span / p.offset_bin_s) + 3  # enough for every slope's offsets, plus a neighbour
    step = max(1, min(grid.size, _MAX_CELLS // max(n_bins, q.size)))
    for s0 in range(0, grid.size, step):
        sl = grid[s0:s0 + step]
        b = r[None, :] - sl[:, None] * q[None, :]
        b0 = b.min(axis=1, keepdims=True)
        k = ((b - b0) / p.offset_bin_s).astype(np.int64)
        rows = np.arange(sl.size)[:, None]
        c = np.bincount((rows * n_bins + k).ravel(), weights=np.broadcast_to(w, k.shape).ravel(),
                        minlength=sl.size * n_bins).reshape(sl.size, n_bins)
        c = c[:, :-1] + c[:, 1:]  # a line on a bin edge counts whole
        i = np.argmax(c, axis=1)
        top = c[np.arange(sl.size), i]
        j = int(np.argmax(top))
        if top[j] > best[2]:
            sel = (k[j] == i[j]) | (k[j] == i[j] + 1)
            best = (float(sl[j]), float(np.average(b[j][sel], weights=w[sel])), float(top[j]))
    return best


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
#: narrower (fewer hits kept for the second stage) and cost one more pass over all hits each;
#: 8 and 12 measured within 15% of each other on 100 h and 1,000 h synthetic indexes; 24 was
#: up to 2x slower at 1,000 h.
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

    The coarse stage is one pass over all hits per coarse slope; the fine stage sees only kept
    hits. Pairs with fewer than ``p.min_hits`` hits cannot pass; pairs with a negative weight
    (which a subset could outweigh) always pass. For a 60 s query of unrelated audio on a 100 h
    synthetic index it passes 9.3% of the pairs met 12 times (the voter's first round: 7.2%; the
    coarse stage alone: 48%), and on a 1,000 h one 0.5%.

    >>> keep = may_align(list(hits.values()), AUDIO_VOTE)        # doctest: +SKIP
    """
    n = len(hits)
    out = np.zeros(n, bool)
    sizes = hits.sizes if isinstance(hits, HitTable) else np.array([len(h) for h in hits], np.int64)
    cand = np.flatnonzero(sizes >= max(1, p.min_hits))  # the voter stops below min_hits hits
    if cand.size == 0:
        return out
    if isinstance(hits, HitTable):
        use = np.repeat(sizes >= max(1, p.min_hits), sizes)
        flat = hits.flat
        q, r, w = (np.asarray(a, float)[use] for a in (flat.query_t, flat.ref_t, flat.score))
    else:
        q = np.concatenate([np.asarray(hits[i].query_t, float) for i in cand])
        r = np.concatenate([np.asarray(hits[i].ref_t, float) for i in cand])
        w = np.concatenate([np.asarray(hits[i].score, float) for i in cand])
    starts = np.r_[0, np.cumsum(sizes[cand])[:-1]]
    out[cand] = _two_stage(q, r, w, starts, p) | (np.minimum.reduceat(w, starts) < 0)
    return out


def _two_stage(q, r, w, starts, p: VoteParams) -> np.ndarray:
    """:func:`may_align`'s two stages over flat hit arrays (pair ``i``: hits ``starts[i]:starts[i+1]``)."""
    passed = np.zeros(starts.size, bool)
    coarse = np.geomspace(p.min_slope, p.max_slope, COARSE_SLOPES)
    eps = float(np.max(np.diff(coarse))) / 2 if COARSE_SLOPES > 1 else p.max_slope - p.min_slope
    grid = _slope_grid(p)
    nearest = np.abs(grid[:, None] - coarse[None, :]).argmin(axis=1)  # within eps of it
    mh = p.min_hits - 1e-9  # (bincount sums in another order than the voter)
    pair = np.repeat(np.arange(starts.size), np.diff(np.r_[starts, q.size]))
    q_range = np.maximum.reduceat(q, starts) - np.minimum.reduceat(q, starts)
    # bins of half the spread bound; the margin keeps rounding from splitting a cell
    inv_width = (2.0 / (2 * p.offset_bin_s + eps * q_range + 1e-6))[pair]
    for j, s in enumerate(coarse):
        fine = grid[nearest == j]
        if fine.size == 0:
            continue
        cell, base, heavy = _heavy_runs(q, r, w, starts, pair, s, inv_width, mh)
        if not heavy.any():
            continue
        covered = heavy.copy()  # bins inside a heavy run of three (runs never span two pairs)
        covered[1:] |= heavy[:-1]
        covered[2:] |= heavy[:-2]
        kept = np.flatnonzero(covered[cell])
        kp = pair[kept]  # the kept hits, as flat arrays of their own
        k_starts = np.flatnonzero(np.r_[True, kp[1:] != kp[:-1]])
        k_pair = np.repeat(np.arange(k_starts.size), np.diff(np.r_[k_starts, kept.size]))
        kq, kr, kw = q[kept], r[kept], w[kept]
        hit = np.zeros(k_starts.size, bool)
        for sf in fine:
            _, k_base, k_heavy = _heavy_runs(kq, kr, kw, k_starts, k_pair, sf, 1.0 / p.offset_bin_s, mh)
            hit |= np.logical_or.reduceat(k_heavy, k_base)
        passed[kp[k_starts[hit]]] = True
    return passed


def _heavy_runs(q, r, w, starts, pair, slope: float, inv_width, mh: float):
    """Offsets ``r - slope*q`` of many pairs (pair ``i``: hits ``starts[i]:starts[i+1]``;
    ``pair``: each hit's pair) in bins of ``1 / inv_width`` seconds (one for all, or per hit)
    from the pair's smallest offset, the pairs' bins side by side with two empty bins after each.
    Returns ``(cell, base, heavy)``: each hit's bin, where each pair's bins begin, and whether
    the run of three bins that starts at each bin weighs ``>= mh`` (runs that would reach into
    the next pair are not heavy)."""
    b = r - slope * q
    cell = ((b - np.minimum.reduceat(b, starts)[pair]) * inv_width).astype(np.int64)
    n_bins = np.maximum.reduceat(cell, starts) + 3
    base = np.r_[0, np.cumsum(n_bins)[:-1]]
    cell += base[pair]
    table = np.bincount(cell, weights=w, minlength=int(n_bins.sum()))
    runs = table.copy()
    runs[:-1] += table[1:]
    runs[:-2] += table[2:]
    runs[base[1:] - 1] = 0.0  # runs that start in a pair's two empty bins reach the next pair
    runs[base[1:] - 2] = 0.0
    return cell, base, runs >= mh


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
