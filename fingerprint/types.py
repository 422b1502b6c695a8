"""Small typed records that cross stage boundaries. Arrays inside, one record per concept.

Times are float seconds from the start of the media (the container's presentation timeline,
so the first frame of a file that starts at 0.2 s is at 0.2 s).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List

import numpy as np


@dataclass(frozen=True)
class MediaInfo:
    """What ``ffprobe`` (or PyAV) says about a file. ``fps``/``width``/``height`` are 0 without video."""

    path: str
    duration_s: float
    has_video: bool
    has_audio: bool
    fps: float = 0.0
    width: int = 0
    height: int = 0
    #: When the first video frame is shown on the container timeline (seconds).
    video_start_s: float = 0.0
    #: When the first audio sample plays on the container timeline (seconds).
    audio_start_s: float = 0.0
    #: Display rotation (0, 90, 180, 270); ``width``/``height`` are as displayed.
    rotation_deg: int = 0
    #: Stream durations the container declares (seconds; 0 when it says nothing).
    video_duration_s: float = 0.0
    audio_duration_s: float = 0.0
    #: Which decoder read the facts, and decodes the file: "pyav" (in-process) or "ffmpeg"
    #: (ffprobe, an ffmpeg process for audio, decord for frames).
    decoder: str = "ffmpeg"


@dataclass
class AudioSignal:
    """Mono float32 samples in [-1, 1] at ``sr_hz``; ``samples[0]`` plays at ``start_s``.

    A file with no audio track gives ``samples.size == 0``: that is normal, not an error.
    """

    samples: np.ndarray
    sr_hz: int
    start_s: float = 0.0

    @property
    def duration_s(self) -> float:
        return self.samples.size / float(self.sr_hz)


@dataclass
class Frames:
    """RGB frames ``(n, height, width, 3)`` uint8 with their exact timestamps ``times_s`` ``(n,)``."""

    frames: np.ndarray
    times_s: np.ndarray


@dataclass
class Hits:
    """Matching evidence between one query and one reference, as parallel arrays of length n.

    ``query_t``/``ref_t``: seconds where the query and the reference agree; ``span_s``: how long
    each piece of evidence lasts after its time (an audio landmark's anchor-to-target distance, a
    sampled frame's interval), so a segment built from hits ends where its evidence ends;
    ``score``: evidence weight of each hit (1 for an audio hash match, a similarity for frames).
    ``source`` names the modality (``"audio"``, ``"visual"``).
    """

    query_t: np.ndarray
    ref_t: np.ndarray
    score: np.ndarray
    span_s: np.ndarray
    source: str

    def __post_init__(self):
        n = len(self.query_t)
        for name in ("ref_t", "score", "span_s"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"Hits.{name} has {len(getattr(self, name))} items, query_t has {n}")

    def __len__(self) -> int:
        return len(self.query_t)

    def take(self, idx) -> "Hits":
        """The hits selected by a boolean mask, an index array or a slice (a slice gives views)."""
        return Hits(self.query_t[idx], self.ref_t[idx], self.score[idx], self.span_s[idx], self.source)

    @staticmethod
    def empty(source: str) -> "Hits":
        z = np.zeros(0, dtype=np.float64)
        return Hits(z, z.copy(), z.copy(), z.copy(), source)


@dataclass
class HitTable:
    """The hits of one query against many references, in one flat :class:`Hits`: reference
    ``ref_ids[i]`` has rows ``starts[i]:starts[i + 1]`` of ``flat`` (the last runs to the end).

    Why: a query against a large index meets tens of thousands of references, nearly all by
    chance; kept flat, they can be ruled out together (``fusion.may_align``) before any
    per-reference object is made.

    >>> table = audio_index.query_table(landmarks)            # doctest: +SKIP
    >>> table.ref_ids[0], len(table.hits(0))                   # doctest: +SKIP
    ('R000001', 412)
    """

    ref_ids: List[str]
    starts: np.ndarray
    flat: Hits

    def __post_init__(self):
        if len(self.starts) != len(self.ref_ids):
            raise ValueError(f"HitTable has {len(self.ref_ids)} references but {len(self.starts)} starts")

    def __len__(self) -> int:
        """Number of references."""
        return len(self.ref_ids)

    @property
    def sizes(self) -> np.ndarray:
        """Hits per reference, ``(len(self),)``."""
        return np.diff(np.r_[self.starts, len(self.flat)]).astype(np.int64)

    def hits(self, i: int) -> Hits:
        """Reference ``i``'s hits (views of the flat arrays)."""
        a = int(self.starts[i])
        b = int(self.starts[i + 1]) if i + 1 < len(self.starts) else len(self.flat)
        return self.flat.take(slice(a, b))

    def to_dict(self) -> Dict[str, Hits]:
        """``{ref_id: Hits}`` of every reference."""
        return {rid: self.hits(i) for i, rid in enumerate(self.ref_ids)}


@dataclass
class Segment:
    """A copied interval: query [query_start, query_end] matches ref [ref_start, ref_end], seconds.

    ``score`` is monotone in the evidence (higher = more confident); ``slope`` is reference seconds
    per query second (2.0: the query plays the reference at double speed); ``n_hits`` counts the
    consistent hits behind it, per source in ``evidence``; ``strength`` sums their weights per
    source and ``lengths`` gives each source's own query span in seconds (what calibration turns
    into ``score``).
    """

    query_start: float
    query_end: float
    ref_start: float
    ref_end: float
    score: float
    slope: float = 1.0
    n_hits: int = 0
    ref_id: str = ""
    query_id: str = ""
    evidence: Dict[str, int] = field(default_factory=dict)
    strength: Dict[str, float] = field(default_factory=dict)
    lengths: Dict[str, float] = field(default_factory=dict)

    def as_row(self) -> dict:
        return {
            "query_id": self.query_id,
            "ref_id": self.ref_id,
            "query_start": round(float(self.query_start), 3),
            "query_end": round(float(self.query_end), 3),
            "ref_start": round(float(self.ref_start), 3),
            "ref_end": round(float(self.ref_end), 3),
            "score": round(float(self.score), 6),
        }
