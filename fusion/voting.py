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
    if np.size(q) == 0:
        return (1.0, 0.0, -1.0)
    grid = _slope_grid(p)
    j, offset, votes = _line_kernel(_kernel_array(q), _kernel_array(r), _kernel_array(w), _kernel_array(grid),
                                    float(p.offset_bin_s))
    return (1.0, 0.0, -1.0) if j < 0 else (float(grid[j]), float(offset), float(votes))


@njit
def _line_kernel(q, r, w, grid, bin_s):
    """:func:`best_line` of ``q.size >= 1`` hits: ``(slope index or -1, offset, votes)``. The
    weighted mean sums in hit order."""
    span = (r.max() - r.min()) + max(abs(grid[0]), abs(grid[-1])) * (q.max() - q.min())
    n_bins = int(span / bin_s) + 3  # enough for every slope's offsets, plus a neighbour
    j, i, top = _best_cell(q, r, w, grid, bin_s, n_bins)
    if j < 0:
        return -1, 0.0, -1.0
    s = grid[j]
    lo = np.inf
    for t in range(q.size):
        lo = min(lo, r[t] - s * q[t])
    num, den = 0.0, 0.0
    for t in range(q.size):
        b = r[t] - s * q[t]
        k = int((b - lo) / bin_s)
        if k == i or k == i + 1:
            num += b * w[t]
            den += w[t]
    return j, num / den, top


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

    How: up to ``4 * max_segments`` rounds (a line with no usable cluster still uses one up), each
    on the hits no earlier line took: the :func:`best_line` cell (a round with fewer than
    ``min_hits`` votes ends the pair), a weighted least-squares refit of ``r = s*q + b`` on the hits
    within ``inlier_tol_s`` of it (twice; the grid line stays if the fit leaves the slope range or
    has under 3 hits spanning 0.5 s), its inliers split at query gaps over ``max_gap_s``, each part's
    ends trimmed to hits with ``edge_support`` others within ``edge_window_s``, and parts weighing
    ``min_hits`` over ``min_len_s`` kept. Then the strongest first, dropping those that overlap a
    stronger one by more than ``max_query_overlap`` of their own span. Compiled
    (:func:`_vote_kernel`, shared with :func:`find_segments_many`).

    >>> segs = find_segments(hits["R000001"], AUDIO_VOTE)    # doctest: +SKIP
    >>> segs[0].query_start, segs[0].ref_start, segs[0].slope # doctest: +SKIP
    (15.02, 20.0, 1.0)
    """
    n = len(hits.query_t)
    return _vote(hits.query_t, hits.ref_t, hits.score, hits.span_s, np.zeros(1, np.int64),
                 np.full(1, n, np.int64), p, hits.source)[0]


def _vote(q, r, w, span, starts, ends, p: VoteParams, source: str) -> List[List[Segment]]:
    """:func:`find_segments` of pairs ``starts[i]:ends[i]`` of the flat hit arrays, one list each."""
    q, r, w, span = _kernel_array(q), _kernel_array(r), _kernel_array(w), _kernel_array(span)
    knobs = np.array([p.offset_bin_s, p.inlier_tol_s, p.min_hits, p.max_gap_s, p.edge_window_s, p.min_len_s,
                      p.min_slope, p.max_slope], np.float64)
    pair, vals, n_hits = _vote_kernel(q, r, w, span, _kernel_array(starts, np.int64),
                                      _kernel_array(ends, np.int64), _kernel_array(_slope_grid(p)), knobs,
                                      int(p.max_segments), int(p.edge_support))
    found: List[List[Segment]] = [[] for _ in range(len(starts))]
    for i, (qs, qe, rs, re_, score, slope), n in zip(pair.tolist(), vals.tolist(), n_hits.tolist()):
        found[i].append(Segment(query_start=qs, query_end=qe, ref_start=rs, ref_end=re_, score=score, slope=slope,
                                n_hits=n, evidence={source: n}, strength={source: score},
                                lengths={source: qe - qs}))
    return [_apart(segs, p) if segs else segs for segs in found]


def _apart(segments: List[Segment], p: VoteParams) -> List[Segment]:
    """The strongest first, without those overlapping a stronger one by more than
    ``max_query_overlap`` of their own query span (repeats), at most ``max_segments``."""
    segments.sort(key=lambda s: -s.score)
    kept: List[Segment] = []
    for seg in segments:
        length = seg.query_end - seg.query_start
        if all(_overlap(seg, k) <= p.max_query_overlap * length for k in kept):
            kept.append(seg)
    return kept[:p.max_segments]


def _overlap(a: Segment, b: Segment) -> float:
    return max(0.0, min(a.query_end, b.query_end) - max(a.query_start, b.query_start))


@njit
def _vote_kernel(q, r, w, span, starts, ends, grid, knobs, max_segments, edge_support):
    """:func:`find_segments`' rounds for pairs ``starts[i]:ends[i]`` of the hit arrays, before
    repeats are dropped: ``(pair (n,), values (n, 6), inliers (n,))``, one row a segment, values
    ``query_start, query_end, ref_start, ref_end, score, slope`` (starts clipped at 0).
    ``knobs``: ``offset_bin_s, inlier_tol_s, min_hits, max_gap_s, edge_window_s, min_len_s,
    min_slope, max_slope``. Weights are summed in hit order (inliers in query-time order), where
    numpy summed pairwise: sums can differ in the last bits. Compiled: the voter meets hundreds of
    chance pairs per query minute against a large index, each ~0.5 ms in numpy."""
    bin_s, tol, min_hits, max_gap, window, min_len, min_slope, max_slope = (
        knobs[0], knobs[1], knobs[2], knobs[3], knobs[4], knobs[5], knobs[6], knobs[7])
    most = 0
    for i in range(starts.size):
        most = max(most, ends[i] - starts[i])
    alive = np.empty(most, np.bool_)
    idx = np.empty(most, np.int64)
    qq, rr, ww = np.empty(most), np.empty(most), np.empty(most)
    inl = np.empty(most, np.bool_)
    mem = np.empty(most, np.int64)
    qm = np.empty(most)
    cap = 16
    out_pair = np.empty(cap, np.int64)
    out_vals = np.empty((cap, 6))
    out_n = np.empty(cap, np.int64)
    n_out = 0
    for i in range(starts.size):
        a, m = starts[i], ends[i] - starts[i]
        alive[:m] = True
        n_alive, n_segs = m, 0
        for _ in range(4 * max_segments):
            if n_segs >= max_segments or n_alive < min_hits:
                break
            c = 0
            for t in range(m):
                if alive[t]:
                    idx[c], qq[c], rr[c], ww[c] = t, q[a + t], r[a + t], w[a + t]
                    c += 1
            slope, offset, votes = 1.0, 0.0, -1.0
            if c > 0:
                j, off, top = _line_kernel(qq[:c], rr[:c], ww[:c], grid, bin_s)
                if j >= 0:
                    slope, offset, votes = grid[j], off, top
            if votes < min_hits:
                break
            slope, offset = _refit(qq[:c], rr[:c], ww[:c], slope, offset, tol, min_slope, max_slope, inl)
            nm = 0
            for t in range(c):
                if inl[t]:
                    mem[nm] = idx[t]
                    qm[nm] = q[a + idx[t]]
                    nm += 1
            if nm == 0:
                break
            for t in range(nm):
                alive[mem[t]] = False
            n_alive -= nm
            members = mem[:nm][np.argsort(qm[:nm], kind="mergesort")]  # by query time, ties in hit order
            g0 = 0
            for g in range(1, nm + 1):  # parts split at query-time gaps
                if g < nm and q[a + members[g]] - q[a + members[g - 1]] <= max_gap:
                    continue
                lo, hi = _trim(q, a, members, g0, g, window, edge_support)
                g0 = g
                score = 0.0
                for t in range(lo, hi):
                    score += w[a + members[t]]
                if hi <= lo or score < min_hits:
                    continue
                qs = q[a + members[lo]]
                qe = -np.inf
                for t in range(lo, hi):
                    qe = max(qe, q[a + members[t]] + span[a + members[t]])
                if qe - qs < min_len:
                    continue
                rs, re_ = slope * qs + offset, slope * qe + offset
                if re_ <= 0:
                    continue
                if n_out == cap:
                    cap *= 2
                    out_pair, out_vals, out_n = _grown(out_pair, cap), _grown(out_vals, cap), _grown(out_n, cap)
                out_pair[n_out], out_n[n_out] = i, hi - lo
                out_vals[n_out, 0], out_vals[n_out, 1] = max(qs, 0.0), qe
                out_vals[n_out, 2], out_vals[n_out, 3] = max(rs, 0.0), re_
                out_vals[n_out, 4], out_vals[n_out, 5] = score, slope
                n_out += 1
                n_segs += 1
    return out_pair[:n_out], out_vals[:n_out], out_n[:n_out]


@njit
def _grown(a, size):
    b = np.empty((size,) + a.shape[1:], a.dtype)
    b[:a.shape[0]] = a
    return b


@njit
def _refit(q, r, w, slope, offset, tol, min_slope, max_slope, inl):
    """Weighted least-squares refit of ``r = s*q + b`` on the inliers (``inl``, filled), twice;
    keeps the grid line if the fit leaves the allowed slope range or has too few points (3, over
    0.5 s) to trust. Returns ``(slope, offset)``."""
    for _ in range(2):
        n_in, q_lo, q_hi = 0, np.inf, -np.inf
        for t in range(q.size):
            inl[t] = abs(r[t] - (slope * q[t] + offset)) <= tol
            if inl[t]:
                n_in += 1
                q_lo, q_hi = min(q_lo, q[t]), max(q_hi, q[t])
        if n_in < 3 or q_hi - q_lo < 0.5:
            return slope, offset
        sw, sq, sr, negative = 0.0, 0.0, 0.0, False
        for t in range(q.size):
            if inl[t]:
                sw += w[t]
                sq += w[t] * q[t]
                sr += w[t] * r[t]
                negative = negative or w[t] < 0
        if negative or sw <= 0:  # no weighted fit (numpy's took square roots of the weights)
            break
        q_mean, r_mean = sq / sw, sr / sw
        sqq, sqr = 0.0, 0.0
        for t in range(q.size):  # centred sums: well conditioned however late in the query
            if inl[t]:
                dq = q[t] - q_mean
                sqq += w[t] * dq * dq
                sqr += w[t] * dq * (r[t] - r_mean)
        if sqq <= 0:
            break
        s_new = sqr / sqq
        if not (min_slope <= s_new <= max_slope):
            break
        slope, offset = s_new, r_mean - s_new * q_mean
    for t in range(q.size):
        inl[t] = abs(r[t] - (slope * q[t] + offset)) <= tol
    return slope, offset


@njit
def _trim(q, a, members, g0, g1, window, support):
    """``(lo, hi)``: the part ``members[g0:g1]`` (query-time order) without the hits at either end
    that have fewer than ``support`` others within ``window`` seconds: a lone chance hit near a copy
    must not stretch it. ``hi <= lo`` if none has."""
    if support <= 0:
        return g0, g1
    lo = hi = g0
    first, last = -1, -1
    for t in range(g0, g1):
        x = q[a + members[t]]
        while lo < g1 and q[a + members[lo]] < x - window:
            lo += 1
        while hi < g1 and q[a + members[hi]] <= x + window:
            hi += 1
        if hi - lo - 1 >= support:
            if first < 0:
                first = t
            last = t
    if first < 0:
        return g0, g0
    return first, last + 1


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
       coarse slope, which hold ``H``, in bins of ``offset_bin_s``. The voter's two bins, whatever
       their origin, lie within three of these: a pair passes if three adjacent bins at some grid
       slope weigh ``>= p.min_hits``.

    Neither stage's bins need the voter's origin, so both start at a bound of the pair's offsets
    at the slope (``min r - s * max q``) and bin in one pass.

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
    cell = np.empty(most, np.int64)
    kept = np.empty(most, np.int64)
    table = np.zeros(64)
    for i in range(n):
        a = starts[i]
        m = ends[i] - a
        if m < max(1.0, mh):  # the voter stops below min_hits hits
            continue
        q_lo, q_hi, r_lo, r_hi = q[a], q[a], r[a], r[a]
        negative = False
        for k in range(a, a + m):
            q_lo, q_hi = min(q_lo, q[k]), max(q_hi, q[k])
            r_lo, r_hi = min(r_lo, r[k]), max(r_hi, r[k])
            negative = negative or w[k] < 0
        if negative:  # a subset could outweigh the whole: the voter must see the pair
            out[i] = True
            continue
        # coarse bins of half the spread bound; the margin keeps rounding from splitting a cell
        inv = 2.0 / (2 * bin_s + eps * (q_hi - q_lo) + 1e-6)
        for j in range(coarse.size):
            s = coarse[j]
            # Bins start at a bound of the offsets (three bins of any origin hold a run shorter
            # than two), so that binning is one pass; the last bits' rounding can put an offset
            # just under it, in bin 0 all the same (int() rounds towards 0).
            lo = r_lo - s * q_hi
            top = int((r_hi - s * q_lo - lo) * inv) + 1
            if table.size < top + 3:
                table = np.zeros(2 * (top + 3))
            for k in range(m):
                c = int((r[a + k] - s * q[a + k] - lo) * inv)
                cell[k] = c
                table[c] += w[a + k]
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
                lo = r_lo - s * q_hi
                top = int((r_hi - s * q_lo - lo) * inv_fine) + 1
                if table.size < top + 3:
                    table = np.zeros(2 * (top + 3))
                for t in range(n_kept):
                    c = int((r[kept[t]] - s * q[kept[t]] - lo) * inv_fine)
                    cell[t] = c
                    table[c] += w[kept[t]]
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


def find_segments_many(hits: Union[Dict[str, Hits], HitTable], p: VoteParams,
                       every_pair: bool = True) -> Dict[str, List[Segment]]:
    """:func:`find_segments` of every pair in ``hits`` (``{ref_id: Hits}``, or a
    :class:`HitTable`), in one call of the compiled voter; pairs that :func:`may_align` rules out
    get ``[]`` without being voted on (and, from a table, without a :class:`Hits` being made).
    ``every_pair=False``: only the pairs with a segment, what a caller that merges segments needs
    (a large index meets tens of thousands of references per query by chance, and a dict of their
    empty lists cost ~0.1 s per query minute at 1,000 h)."""
    if not isinstance(hits, HitTable):
        ids = list(hits)
        parts = [hits[i] for i in ids]
        sizes = np.array([len(h.query_t) for h in parts], np.int64)
        flat = Hits(*(np.concatenate([np.zeros(0)] + [np.asarray(getattr(h, a), np.float64) for h in parts])
                      for a in ("query_t", "ref_t", "score", "span_s")), parts[0].source if parts else "")
        hits = HitTable(ids, np.cumsum(sizes) - sizes, flat)
    keep = np.flatnonzero(may_align(hits, p))
    starts = np.asarray(hits.starts, np.int64)
    f = hits.flat
    found = _vote(f.query_t, f.ref_t, f.score, f.span_s, starts[keep], (starts + hits.sizes)[keep], p, f.source)
    out: Dict[str, List[Segment]] = {rid: [] for rid in hits.ref_ids} if every_pair else {}
    for i, segs in zip(keep.tolist(), found):
        if segs or every_pair:
            out[hits.ref_ids[i]] = segs
    return out
