"""Inverted index of landmark hashes: sorted numpy arrays, saved as one versioned ``.npz``.

Entries are ``(hash uint32, ref uint32, t_s float32)`` sorted by hash; a lookup is two
``searchsorted`` calls. References can be added at any time; the arrays are re-sorted lazily
before the next query or save.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List, Optional, Union

import numpy as np

from fingerprint.storage import load_arrays, save_arrays
from fingerprint.types import Hits

from .landmarks import HASH_MAX, Landmarks
from .params import AudioParams

INDEX_KIND = "audio-landmarks"
INDEX_VERSION = 1


class AudioIndex:
    """Hash -> (reference, time) index.

    >>> ix = AudioIndex()
    >>> ix.add("R000001", extract_landmarks(load_audio("ref.mp4", 8000)))   # doctest: +SKIP
    >>> hits = ix.query(extract_landmarks(load_audio("query.mp4", 8000)))   # doctest: +SKIP
    >>> hits["R000001"].query_t[:3], hits["R000001"].ref_t[:3]              # doctest: +SKIP
    """

    def __init__(self, params: AudioParams = AudioParams()):
        self.params = params
        self.ref_ids: List[str] = []
        self.ref_durations_s: List[float] = []
        self._pos: Dict[str, int] = {}
        self._hash = np.zeros(0, np.uint32)
        self._ref = np.zeros(0, np.uint32)
        self._t = np.zeros(0, np.float32)
        self._pending: List[tuple] = []

    def __len__(self) -> int:
        """Number of stored hashes."""
        return self._hash.size + sum(p[0].size for p in self._pending)

    def __contains__(self, ref_id: str) -> bool:
        return ref_id in self._pos

    def add(self, ref_id: str, landmarks: Landmarks) -> None:
        """Store the landmarks of one reference. Adding an id that is already there is an error."""
        if ref_id in self._pos:
            raise ValueError(f"reference {ref_id!r} is already in the index")
        h = landmarks.hashes()
        ok = h < HASH_MAX
        self._pos[ref_id] = len(self.ref_ids)
        self.ref_ids.append(ref_id)
        self.ref_durations_s.append(float(landmarks.duration_s))
        n = int(ok.sum())
        self._pending.append((h[ok], np.full(n, self._pos[ref_id], np.uint32),
                              landmarks.t_s[ok].astype(np.float32)))

    def _finalize(self) -> None:
        if not self._pending:
            return
        h = np.concatenate([self._hash] + [p[0] for p in self._pending])
        r = np.concatenate([self._ref] + [p[1] for p in self._pending])
        t = np.concatenate([self._t] + [p[2] for p in self._pending])
        order = np.lexsort((t, r, h))  # deterministic order within a bucket
        self._hash, self._ref, self._t = h[order], r[order], t[order]
        self._pending = []

    def query(self, landmarks: Landmarks, speeds: Optional[List[tuple]] = None) -> Dict[str, Hits]:
        """Hits per reference for a query's landmarks, over all speed hypotheses.

        ``speeds``: ``(speed, pitch)`` hypotheses; by default every ``params.tempo_speeds`` with
        pitch 1 and every ``params.resample_speeds`` with pitch = speed. Each hit is one query
        landmark meeting one stored landmark (counted once whatever hypotheses found it):
        ``query_t``/``ref_t`` are the two anchor times, ``span_s`` the query landmark's length,
        ``score`` ``1 / sqrt(m_q * m_r)`` where a landmark meets ``m`` landmarks on the other side.
        """
        self._finalize()
        p = self.params
        if speeds is None:
            speeds = [(s, 1.0) for s in p.tempo_speeds] + [(s, s) for s in p.resample_speeds if s != 1.0]
        if len(landmarks) == 0 or self._hash.size == 0:
            return {}
        qi_parts, ei_parts = [], []
        lm_idx = np.arange(len(landmarks))
        for speed, pitch in speeds:
            h = landmarks.hashes(speed, pitch).astype(np.int64)
            ok = h < HASH_MAX
            if not ok.any():
                continue
            hq, iq = h[ok], lm_idx[ok]
            lo = np.searchsorted(self._hash, hq - 1, side="left")
            hi = np.searchsorted(self._hash, hq + 1, side="right")
            cnt = hi - lo
            keep = (cnt > 0) & (cnt <= p.max_hits_per_hash)
            lo, cnt, iq = lo[keep], cnt[keep], iq[keep]
            if cnt.size == 0:
                continue
            # Expand each [lo, lo + cnt) range into entry indices without a Python loop.
            rep_q = np.repeat(iq, cnt)
            starts = np.repeat(lo - np.concatenate([[0], np.cumsum(cnt)[:-1]]), cnt)
            entry = starts + np.arange(rep_q.size)
            qi_parts.append(rep_q)
            ei_parts.append(entry)
        if not qi_parts:
            return {}
        qi = np.concatenate(qi_parts)
        ei = np.concatenate(ei_parts)
        key = np.unique(qi.astype(np.int64) * self._hash.size + ei)
        qi, ei = key // self._hash.size, key % self._hash.size
        refs = self._ref[ei]
        out: Dict[str, Hits] = {}
        order = np.argsort(refs, kind="stable")
        refs, qi, ei = refs[order], qi[order], ei[order]
        bounds = np.flatnonzero(np.diff(refs)) + 1
        for sl in np.split(np.arange(refs.size), bounds):
            if sl.size == 0:
                continue
            q, e = qi[sl], ei[sl]
            # A landmark that meets many landmarks on the other side (a repeated note, a loop) is
            # weak evidence for each of those meetings: split its vote among them.
            _, inv_q, cnt_q = np.unique(q, return_inverse=True, return_counts=True)
            _, inv_e, cnt_e = np.unique(e, return_inverse=True, return_counts=True)
            weight = 1.0 / np.sqrt(cnt_q[inv_q] * cnt_e[inv_e])
            out[self.ref_ids[int(refs[sl[0]])]] = Hits(
                query_t=landmarks.t_s[q].astype(np.float64),
                ref_t=self._t[e].astype(np.float64),
                score=weight,
                span_s=landmarks.dt[q].astype(np.float64) * landmarks.hop_s,
                source="audio",
            )
        return out

    def save(self, path: Union[str, Path]) -> None:
        """Write the index atomically to ``path`` (an ``.npz`` file)."""
        self._finalize()
        meta = {"params": self.params.index_key(), "ref_ids": self.ref_ids,
                "ref_durations_s": self.ref_durations_s}
        save_arrays(path, INDEX_KIND, INDEX_VERSION,
                    {"hash": self._hash, "ref": self._ref, "t_s": self._t}, meta)

    @classmethod
    def load(cls, path: Union[str, Path], params: Optional[AudioParams] = None) -> "AudioIndex":
        """Read an index written by :meth:`save`. ``params`` default to those it was built with;
        query-only knobs (speed grids, hit cap) may differ, the rest must match."""
        from fingerprint.errors import IndexFormatError

        arrays, meta = load_arrays(path, INDEX_KIND, INDEX_VERSION)
        stored = meta.get("params", {})
        if params is None:
            try:
                params = AudioParams(**stored)
            except TypeError as exc:
                raise IndexFormatError(path, f"unknown audio parameters in index ({exc})") from None
        elif params.index_key() != json.loads(json.dumps(stored)):
            raise IndexFormatError(path, "index was built with other audio parameters; rebuild it")
        ix = cls(params)
        ix.ref_ids = list(meta.get("ref_ids", []))
        ix.ref_durations_s = [float(x) for x in meta.get("ref_durations_s", [0.0] * len(ix.ref_ids))]
        ix._pos = {r: i for i, r in enumerate(ix.ref_ids)}
        ix._hash = arrays["hash"].astype(np.uint32)
        ix._ref = arrays["ref"].astype(np.uint32)
        ix._t = arrays["t_s"].astype(np.float32)
        if not (ix._hash.size == ix._ref.size == ix._t.size) or (ix._ref.size and ix._ref.max() >= len(ix.ref_ids)):
            raise IndexFormatError(path, "inconsistent index arrays")
        return ix
