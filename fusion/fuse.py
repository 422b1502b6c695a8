"""Merge the segments of both modalities for one (query, reference) pair.

Audio and visual voting run separately (their hits differ in density and timing precision, see
``fusion.params``). A segment found by both, at the same speed and offset, is one copy with more
evidence: it becomes one segment whose spans are the union of the two and whose ``evidence`` and
``strength`` hold both sources. Segments that have no partner stay as they are: either modality
alone can find a copy (the audio may be replaced, the picture may be stacked beyond recognition).
"""
from __future__ import annotations

import math
from typing import List, Sequence

from fingerprint.types import Segment

from .params import FUSE, FuseParams


def _offset_at(seg: Segment, q: float) -> float:
    """Reference time of ``seg``'s line at query time ``q``."""
    return seg.ref_start + seg.slope * (q - seg.query_start)


def agree(a: Segment, b: Segment, p: FuseParams = FUSE) -> bool:
    """Whether two segments of one pair describe the same copy (speed, offset and position)."""
    if abs(math.log(max(a.slope, 1e-6) / max(b.slope, 1e-6))) > p.max_slope_diff:
        return False
    lo, hi = max(a.query_start, b.query_start), min(a.query_end, b.query_end)
    if lo - hi > p.max_gap_s:
        return False
    # Both ends of the shared query time (or the two facing ends across a small gap).
    return all(abs(_offset_at(a, q) - _offset_at(b, q)) <= p.max_offset_diff_s for q in (lo, hi))


def merge_modalities(audio: Sequence[Segment], visual: Sequence[Segment], p: FuseParams = FUSE) -> List[Segment]:
    """One pair's segments from both modalities, agreeing ones merged (see the module docstring).

    Each audio segment merges with the strongest agreeing visual segment not taken yet. The
    merged segment spans both segments' query time, and keeps the audio line (audio hits are timed
    to 16 ms, frames to 0.5 s): its reference interval is the audio line over that query span. ``score`` is left as the sum of the
    strengths; :class:`fusion.calibration.Calibration` replaces it.

    >>> merge_modalities(audio_segments, visual_segments)   # doctest: +SKIP
    """
    out: List[Segment] = []
    taken = set()
    vis = sorted(range(len(visual)), key=lambda i: -visual[i].score)
    for a in sorted(audio, key=lambda s: -s.score):
        partner = next((i for i in vis if i not in taken and agree(a, visual[i], p)), None)
        if partner is None:
            out.append(a)
            continue
        taken.add(partner)
        v = visual[partner]
        qs, qe = min(a.query_start, v.query_start), max(a.query_end, v.query_end)
        out.append(Segment(
            query_start=qs, query_end=qe,
            ref_start=max(0.0, _offset_at(a, qs)), ref_end=_offset_at(a, qe),
            score=a.score + v.score, slope=a.slope, n_hits=a.n_hits + v.n_hits,
            ref_id=a.ref_id or v.ref_id, query_id=a.query_id or v.query_id,
            evidence={**v.evidence, **a.evidence}, strength={**v.strength, **a.strength},
            lengths={**v.lengths, **a.lengths}))
    out += [visual[i] for i in vis if i not in taken]
    return sorted(out, key=lambda s: -s.score)
