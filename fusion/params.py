"""Knobs of the Hough-style aligner, one set per kind of evidence. Units are in the names."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class VoteParams:
    #: Speeds considered (reference seconds per query second): VSC queries go from 0.5x to 2x.
    min_slope: float = 0.5
    max_slope: float = 2.0
    #: Slope grid step (relative). A segment of length L at the nearest grid slope drifts by at
    #: most L * step / 2 seconds, which must stay within about one offset bin.
    slope_step: float = 0.01
    #: Offset histogram bin (seconds); neighbouring bins are summed, so a line on a bin edge counts whole.
    offset_bin_s: float = 0.1
    #: A hit belongs to a line when its reference time is this close to the line.
    inlier_tol_s: float = 0.04
    #: Less consistent evidence (summed hit weight) than this is no match; for audio, chance
    #: alignments of unrelated music reach ~9.
    min_hits: float = 12.0
    #: A gap in query time longer than this splits a line into two segments.
    max_gap_s: float = 3.0
    #: Segment ends are trimmed back to the first/last inlier that has at least ``edge_support``
    #: other inliers within ``edge_window_s``: a lone chance hit near a copy must not stretch it.
    edge_support: int = 2
    edge_window_s: float = 1.0
    #: A weaker segment of the same pair that overlaps a stronger one by more than this fraction of
    #: its own query span is a repeat (refrain, loop), not another copy, and is dropped.
    max_query_overlap: float = 0.5
    #: Segments shorter than this are dropped (VSC's shortest copies are ~2 s).
    min_len_s: float = 1.0
    #: At most this many segments per (query, reference) pair.
    max_segments: int = 8


#: Audio landmark hits: dense (tens per second), timed to one 16 ms hop. The index meets query
#: landmarks only under its speed hypotheses (audio.AudioParams: tempo 0.8-1.25x, resampling
#: 0.9-1.1x, plus a hop of tolerance), so slopes outside 0.75-1.35 can only gather chance hits:
#: voting there would cost 2.4x the time for nothing but false lines.
AUDIO_VOTE = VoteParams(min_slope=0.75, max_slope=1.35)

#: Visual frame hits: a few per second (queries at 2 fps, references at 1 fps, so a hit's
#: reference time is within ~0.5 s of the line), weighted by normalized similarity above the floor.
VISUAL_VOTE = VoteParams(slope_step=0.02, offset_bin_s=0.5, inlier_tol_s=0.75, min_hits=1.5,
                         max_gap_s=3.0, edge_support=1, edge_window_s=1.5, min_len_s=1.0)


@dataclass(frozen=True)
class FuseParams:
    #: An audio and a visual segment of one pair describe the same copy when their speeds differ by
    #: at most this fraction (a visual line is fitted to frames 0.5-1 s apart, so over a 7 s copy
    #: its slope is uncertain by ~10%)...
    max_slope_diff: float = 0.15
    #: ...their lines stay this close in reference time over the query time they share (seconds)...
    max_offset_diff_s: float = 1.0
    #: ...and their query spans overlap or leave at most this gap (seconds).
    max_gap_s: float = 1.0
    #: Calibrated segments scoring below this probability are not reported. µAP ranks every row of
    #: every query together, so a low-probability row costs little but a day-to-day user reads it
    #: as a match; 0.05 keeps the long tail short.
    min_score: float = 0.05


FUSE = FuseParams()
