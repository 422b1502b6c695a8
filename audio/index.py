"""Inverted index of landmark hashes: sorted numpy arrays, saved as one versioned ``.npz``.

Entries are ``(hash uint32, ref uint32, t_s float32)`` sorted by hash, with a directory of
``HASH_MAX + 1`` offsets (where each hash's entries start), so a lookup costs two array reads
whatever the index's size. References can be added at any time; the arrays are re-sorted lazily
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
        self._dir: Optional[np.ndarray] = None

    @classmethod
    def from_arrays(cls, hashes: np.ndarray, refs: np.ndarray, times_s: np.ndarray, ref_ids: List[str],
                    params: AudioParams = AudioParams(), ref_durations_s: Optional[List[float]] = None,
                    presorted: bool = False) -> "AudioIndex":
        """An index from its entry arrays (``hashes`` uint32 < HASH_MAX, ``refs`` positions in
        ``ref_ids``, ``times_s``); ``presorted``: the entries are already ordered by hash (as a
        saved index or a generator of synthetic indexes gives them), so no sort is needed."""
        ix = cls(params)
        ix.ref_ids = list(ref_ids)
        ix.ref_durations_s = list(ref_durations_s or [0.0] * len(ix.ref_ids))
        ix._pos = {r: i for i, r in enumerate(ix.ref_ids)}
        arrays = (np.asarray(hashes, np.uint32), np.asarray(refs, np.uint32), np.asarray(times_s, np.float32))
        if presorted:
            ix._hash, ix._ref, ix._t = arrays
        else:  # sorted (deterministically) before the first query or save
            ix._pending = [arrays]
        return ix

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
        self._dir = None

    def _directory(self) -> np.ndarray:
        """``dir[h]``: index of the first entry with hash >= h, for h in 0..HASH_MAX."""
        if self._dir is None:
            counts = np.bincount(self._hash, minlength=HASH_MAX)
            dtype = np.uint32 if self._hash.size < 2 ** 32 else np.int64
            self._dir = np.concatenate([[0], np.cumsum(counts)]).astype(dtype)
        return self._dir

    def query(self, landmarks: Landmarks, speeds: Optional[List[tuple]] = None, min_hits: int = 1) -> Dict[str, Hits]:
        """Hits per reference for a query's landmarks, over all speed hypotheses.

        ``speeds``: ``(speed, pitch)`` hypotheses; by default every ``params.tempo_speeds`` with
        pitch 1 and every ``params.resample_speeds`` with pitch = speed. Each hit is one query
        landmark meeting one stored landmark (counted once whatever hypotheses found it):
        ``query_t``/``ref_t`` are the two anchor times, ``span_s`` the query landmark's length,
        ``score`` ``1 / sqrt(m_q * m_r)`` where a landmark meets ``m`` landmarks on the other side.
        ``min_hits``: references met fewer times are left out (a voter that needs ``k`` votes of
        weight <= 1 can pass ``k``: in a large index most references are met a few times by chance).
        """
        self._finalize()
        p = self.params
        if speeds is None:
            speeds = [(s, 1.0) for s in p.tempo_speeds] + [(s, s) for s in p.resample_speeds if s != 1.0]
        if len(landmarks) == 0 or self._hash.size == 0:
            return {}
        directory = self._directory()
        cap = max(p.max_hits_per_hash, p.common_ratio * 3 * self._hash.size / HASH_MAX)
        lm_idx = np.arange(len(landmarks), dtype=np.int64)
        q_parts, lo_parts, hi_parts = [], [], []
        for speed, pitch in speeds:
            h = landmarks.hashes(speed, pitch).astype(np.int64)
            ok = h < HASH_MAX
            # entries with hash in [h - 1, h + 1]: one hop of dt jitter (dt is the low bits)
            lo = directory[np.maximum(h[ok] - 1, 0)].astype(np.int64)
            hi = directory[np.minimum(h[ok] + 2, HASH_MAX)].astype(np.int64)
            keep = (hi > lo) & (hi - lo <= cap)
            q_parts.append(lm_idx[ok][keep])
            lo_parts.append(lo[keep])
            hi_parts.append(hi[keep])
        qi, ei = _expand_union(np.concatenate(q_parts), np.concatenate(lo_parts), np.concatenate(hi_parts))
        if qi.size == 0:
            return {}
        # (qi, ei) come sorted by qi then ei: a stable sort by reference gives (ref, qi, ei) order.
        refs = self._ref[ei]
        order = np.argsort(refs, kind="stable")
        refs, qi, ei = refs[order], qi[order], ei[order]
        # A landmark that meets many landmarks on the other side (a repeated note, a loop) is weak
        # evidence for each of those meetings: split its vote among them. (ref, qi) pairs are
        # runs of the sorted arrays; an entry belongs to one reference, so counting it needs no
        # grouping by reference.
        run = np.flatnonzero(np.r_[True, (refs[1:] != refs[:-1]) | (qi[1:] != qi[:-1])])
        run_len = np.diff(np.r_[run, refs.size])
        cnt_q = np.repeat(run_len, run_len)
        _, inv_e, cnt_e = np.unique(ei, return_inverse=True, return_counts=True)
        weight = 1.0 / np.sqrt(cnt_q * cnt_e[inv_e])
        starts = np.flatnonzero(np.r_[True, refs[1:] != refs[:-1]])
        ends = np.r_[starts[1:], refs.size]
        enough = ends - starts >= min_hits
        out: Dict[str, Hits] = {}
        for a, b in zip(starts[enough], ends[enough]):
            q, e = qi[a:b], ei[a:b]
            out[self.ref_ids[int(refs[a])]] = Hits(
                query_t=landmarks.t_s[q].astype(np.float64),
                ref_t=self._t[e].astype(np.float64),
                score=weight[a:b],
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
        ref_ids = list(meta.get("ref_ids", []))
        h, r, t = arrays["hash"], arrays["ref"], arrays["t_s"]
        if not (h.size == r.size == t.size) or (r.size and r.max() >= len(ref_ids)) \
                or (h.size and (h.max() >= HASH_MAX or np.any(h[1:] < h[:-1]))):
            raise IndexFormatError(path, "inconsistent index arrays")
        return cls.from_arrays(h, r, t, ref_ids, params,
                               [float(x) for x in meta.get("ref_durations_s", [0.0] * len(ref_ids))], presorted=True)


def _expand_union(q: np.ndarray, lo: np.ndarray, hi: np.ndarray):
    """``(query index, entry index)`` of every entry in the union of the ranges ``[lo, hi)``
    of each query index, sorted by query index then entry: ranges of one query landmark that
    overlap (its speed hypotheses mostly land in neighbouring buckets) are merged first, so each
    meeting is expanded once."""
    if q.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    order = np.lexsort((lo, q))
    q, lo, hi = q[order], lo[order], hi[order]
    # Running maximum of hi within each query index: q is sorted, so adding q * 2^40 (more than
    # any entry index) keeps one query's maxima from leaking into the next.
    big = np.int64(1) << 40
    reach = np.maximum.accumulate(hi + q * big)
    first = np.r_[True, q[1:] != q[:-1]]
    new = first | (lo > np.r_[-1, reach[:-1]] - q * big)  # starts past all before it: a new range
    at = np.flatnonzero(new)
    starts, ends = lo[at], np.maximum.reduceat(hi, at)
    cnt = ends - starts
    rep_q = np.repeat(q[at], cnt)
    base = np.repeat(starts - np.concatenate([[0], np.cumsum(cnt)[:-1]]), cnt)
    return rep_q, base + np.arange(rep_q.size)
