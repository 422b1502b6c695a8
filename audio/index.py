"""Inverted index of landmark hashes: sorted numpy arrays, saved as one versioned ``.npz``.

Entries are ``(hash uint64, ref uint32, t_s float32)``. A 34-bit hash space is too big for a
directory with one slot per hash, so entries are grouped in ``2**bits`` buckets, ``bits`` growing
with the index (about 4 entries per bucket): an entry's bucket is a multiplicative hash of its
hash *without* the dt3 field, so the three hashes one hop of dt3 jitter can reach share a
bucket. Entries are sorted by (bucket, hash, ref, time) and a directory of bucket offsets makes a
lookup two array reads plus two binary searches in the bucket (crowded where common hashes pile
up), whatever the index's size. References can be added at any time; the arrays are re-sorted
lazily before the next query or save.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List, Optional, Union

import numpy as np

from fingerprint.storage import load_arrays, save_arrays
from fingerprint.types import Hits, HitTable

from .landmarks import DT_BITS, HASH_BITS, HASH_MAX, Landmarks
from .params import AudioParams

INDEX_KIND = "audio-landmarks"
INDEX_VERSION = 2   # 2: three-peak 34-bit hashes in bucket order (1: 21-bit pair hashes)

_MIX = np.uint64(0x9E3779B97F4A7C15)   # Fibonacci hashing: spreads the skewed hash fields evenly
_DT_MASK = (1 << DT_BITS) - 1


def bucket_bits(n_entries: int) -> int:
    """Directory size (log2) for an index of ``n_entries``: about 4 entries per bucket."""
    return int(min(30, max(4, int(n_entries).bit_length() - 2)))


def bucket_of(hashes: np.ndarray, bits: int) -> np.ndarray:
    """Bucket (int64) of each hash: the top ``bits`` of (hash without dt3) x a 64-bit odd constant."""
    return _bucket_of_key(np.asarray(hashes, np.uint64) >> np.uint64(DT_BITS), bits)


def _bucket_of_key(keys: np.ndarray, bits: int) -> np.ndarray:
    return ((np.asarray(keys).astype(np.uint64) * _MIX) >> np.uint64(64 - bits)).astype(np.int64)


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
        self._hash = np.zeros(0, np.uint64)
        self._ref = np.zeros(0, np.uint32)
        self._t = np.zeros(0, np.float32)
        self._pending: List[tuple] = []
        self._dir: Optional[np.ndarray] = None

    @classmethod
    def from_arrays(cls, hashes: np.ndarray, refs: np.ndarray, times_s: np.ndarray, ref_ids: List[str],
                    params: AudioParams = AudioParams(), ref_durations_s: Optional[List[float]] = None,
                    presorted: bool = False) -> "AudioIndex":
        """An index from its entry arrays (``hashes`` uint64 < HASH_MAX, ``refs`` positions in
        ``ref_ids``, ``times_s``); ``presorted``: the entries are already in bucket order
        (:func:`bucket_of` with :func:`bucket_bits` of their number, then hash; as a saved index
        or a generator of synthetic indexes gives them), so no sort is needed."""
        ix = cls(params)
        ix.ref_ids = list(ref_ids)
        ix.ref_durations_s = list(ref_durations_s or [0.0] * len(ix.ref_ids))
        ix._pos = {r: i for i, r in enumerate(ix.ref_ids)}
        arrays = (np.asarray(hashes, np.uint64), np.asarray(refs, np.uint32), np.asarray(times_s, np.float32))
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
        order = np.lexsort((t, r, h, bucket_of(h, bucket_bits(h.size))))  # deterministic within a bucket
        self._hash, self._ref, self._t = h[order], r[order], t[order]
        self._pending = []
        self._dir = None

    def prepare(self) -> "AudioIndex":
        """Make now what the first query would otherwise make: the sorted arrays and the bucket
        directory (4-5 s for 1,000 h of references on 2 cores, more the first time the arrays
        are read). ``main.py`` calls it before the first query's clock starts. Returns the index."""
        self._finalize()
        self._directory()
        return self

    def _directory(self) -> np.ndarray:
        """``dir[b]``: index of the first entry of bucket b, for b in 0..2**bits."""
        if self._dir is None:
            bits = bucket_bits(self._hash.size)
            counts = np.zeros(1 << bits, np.int64)
            for i in range(0, self._hash.size, _CHUNK):  # in pieces: a 1,000 h index has 380M entries
                counts += np.bincount(bucket_of(self._hash[i:i + _CHUNK], bits), minlength=1 << bits)
            dtype = np.uint32 if self._hash.size < 2 ** 32 else np.int64
            self._dir = np.concatenate([[0], np.cumsum(counts)]).astype(dtype)
        return self._dir

    def _lookup(self, keys: np.ndarray, dt3: np.ndarray):
        """``(first, end)``: the entries ``first[row]:end[row]`` are those whose hash without dt3
        is ``keys[row]`` and whose dt3 is within one hop of ``dt3[row]``.

        Within a bucket entries are sorted by hash, and the hashes a row accepts are one run of
        values (dt3 is the lowest field), so two binary searches in the bucket find them: the
        work grows with the log of a bucket's size, not with the size (a large collection has
        crowded buckets where common hashes pile up)."""
        directory = self._directory()
        b = _bucket_of_key(keys, bucket_bits(self._hash.size))
        lo = directory[b].astype(np.int64)
        hi = directory[b + 1].astype(np.int64)
        base = keys.astype(np.uint64) << np.uint64(DT_BITS)
        first = _lower_bound(self._hash, lo, hi, base | np.maximum(dt3 - 1, 0).astype(np.uint64))
        end = _lower_bound(self._hash, first, hi, base | (np.minimum(dt3 + 1, _DT_MASK) + 1).astype(np.uint64))
        return first, end

    def _meetings(self, landmarks: Landmarks, speeds, first: int):
        """``(query landmark + first, entry)`` of every meeting of ``landmarks``, each once
        whatever hypotheses found it, sorted by landmark then entry."""
        # Lookup rows: (query landmark, hash without dt3, dt3) over every hypothesis and one hop of
        # dt2 jitter (dt3 jitter is in the lookup); hypotheses that map a landmark to the same row
        # are looked up once.
        lm_idx = np.arange(len(landmarks), dtype=np.int64)
        rows = []
        for speed, pitch in speeds:
            for ddt2 in (-1, 0, 1):
                h = landmarks.hashes(speed, pitch, ddt2=ddt2).astype(np.int64)
                ok = h < HASH_MAX
                rows.append((lm_idx[ok] << HASH_BITS) | h[ok])
        rows = _sorted_unique(np.concatenate(rows))
        q_of_row, h_of_row = rows >> HASH_BITS, rows & (HASH_MAX - 1)
        lo, hi = self._lookup(h_of_row >> DT_BITS, h_of_row & _DT_MASK)
        # Very common hashes (steady tones, silence edges) say little and would dominate the vote.
        cnt = hi - lo
        use = np.flatnonzero((cnt > 0) & (cnt <= self.params.max_hits_per_hash))
        cnt = cnt[use]
        row = np.repeat(use, cnt)
        ent = np.repeat(lo[use] - (np.cumsum(cnt) - cnt), cnt) + np.arange(row.size)
        pair = _sorted_unique(q_of_row[row] * self._hash.size + ent)
        return pair // self._hash.size + first, pair % self._hash.size

    def query(self, landmarks: Landmarks, speeds: Optional[List[tuple]] = None, min_hits: int = 1) -> Dict[str, Hits]:
        """Hits per reference for a query's landmarks, over all speed hypotheses.

        ``speeds``: ``(speed, pitch)`` hypotheses; by default every ``params.tempo_speeds`` with
        pitch 1 and every ``params.resample_speeds`` with pitch = speed. Each hit is one query
        landmark meeting one stored landmark (counted once whatever hypotheses found it):
        ``query_t``/``ref_t`` are the two anchor times, ``span_s`` the query landmark's length,
        ``score`` ``1 / sqrt(m_q * m_r)`` where a landmark meets ``m`` landmarks on the other side.
        ``min_hits``: references met fewer times are left out (a voter that needs ``k`` votes of
        weight <= 1 can pass ``k``: in a large index most references are met a few times by chance).
        :meth:`query_table` gives the same hits in flat arrays, which is cheaper when most
        references will be ruled out.
        """
        return self.query_table(landmarks, speeds, min_hits).to_dict()

    def query_table(self, landmarks: Landmarks, speeds: Optional[List[tuple]] = None,
                    min_hits: int = 1) -> HitTable:
        """:meth:`query`'s hits as one :class:`~fingerprint.types.HitTable`, references in
        index order."""
        self._finalize()
        p = self.params
        if speeds is None:
            speeds = [(s, 1.0) for s in p.tempo_speeds] + [(s, s) for s in p.resample_speeds if s != 1.0]
        if len(landmarks) == 0 or self._hash.size == 0:
            return _empty_table()
        # Landmarks are looked up a chunk at a time: every landmark makes ~50 lookup rows, which
        # for an hour of query audio would be tens of millions at once.
        parts = [self._meetings(landmarks.select(slice(c, c + QUERY_CHUNK)), speeds, c)
                 for c in range(0, len(landmarks), QUERY_CHUNK)]
        qi = np.concatenate([q for q, _ in parts])
        ei = np.concatenate([e for _, e in parts])
        if qi.size == 0:
            return _empty_table()
        # (qi, ei) come sorted by qi then ei: a stable sort by reference gives (ref, qi, ei) order.
        refs = self._ref[ei]
        order = _stable_order(refs, len(self.ref_ids))
        refs, qi, ei = refs[order], qi[order], ei[order]
        # A landmark that meets many landmarks on the other side (a repeated note, a loop) is weak
        # evidence for each of those meetings: split its vote among them. (ref, qi) pairs are
        # runs of the sorted arrays; an entry belongs to one reference, so counting it needs no
        # grouping by reference.
        run = np.flatnonzero(np.r_[True, (refs[1:] != refs[:-1]) | (qi[1:] != qi[:-1])])
        run_len = np.diff(np.r_[run, refs.size])
        cnt_q = np.repeat(run_len, run_len)
        by_e = _stable_order(ei, self._hash.size)
        e_sorted = ei[by_e]
        group = np.cumsum(np.r_[True, e_sorted[1:] != e_sorted[:-1]]) - 1
        cnt_e = np.empty(ei.size, np.int64)
        cnt_e[by_e] = np.bincount(group)[group]
        weight = 1.0 / np.sqrt(cnt_q * cnt_e)
        starts = np.flatnonzero(np.r_[True, refs[1:] != refs[:-1]])
        ends = np.r_[starts[1:], refs.size]
        enough = ends - starts >= min_hits
        sel = np.repeat(enough, ends - starts)
        qi, ei = qi[sel], ei[sel]
        lens = (ends - starts)[enough]
        return HitTable(ref_ids=[self.ref_ids[i] for i in refs[starts[enough]].tolist()],
                        starts=np.cumsum(lens) - lens,
                        flat=Hits(query_t=landmarks.t_s[qi].astype(np.float64),
                                  ref_t=self._t[ei].astype(np.float64),
                                  score=weight[sel],
                                  span_s=landmarks.span_s[qi],
                                  source="audio"))

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
        if h.dtype != np.uint64 or not (h.size == r.size == t.size) or (r.size and r.max() >= len(ref_ids)) \
                or (h.size and (h.max() >= HASH_MAX or not _in_bucket_order(h))):
            raise IndexFormatError(path, "inconsistent index arrays")
        return cls.from_arrays(h, r, t, ref_ids, params,
                               [float(x) for x in meta.get("ref_durations_s", [0.0] * len(ref_ids))], presorted=True)


def _empty_table() -> HitTable:
    return HitTable([], np.zeros(0, np.int64), Hits.empty("audio"))


def _lower_bound(values: np.ndarray, lo: np.ndarray, hi: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Per row, the first index ``i`` in ``lo[row]:hi[row]`` with ``values[i] >= target[row]``
    (``hi[row]`` if none); ``values`` must be sorted within each such range. Vectorized over rows:
    one gather per halving step, for the rows still searching."""
    lo, hi = lo.copy(), hi.copy()
    act = np.flatnonzero(lo < hi)
    while act.size:
        mid = (lo[act] + hi[act]) >> 1
        right = values[mid] < target[act]
        lo[act[right]] = mid[right] + 1
        hi[act[~right]] = mid[~right]
        act = act[lo[act] < hi[act]]
    return lo


def _stable_order(keys: np.ndarray, key_max: int) -> np.ndarray:
    """``np.argsort(keys, kind="stable")`` of non-negative ints below ``key_max``, by sorting
    (key, position) packed in one uint64 where both fit: ~7x faster on millions of meetings,
    as numpy's plain sort of 64-bit ints is much faster than its stable argsort."""
    n = keys.size
    pos_bits = max(1, int(n).bit_length())
    if int(key_max).bit_length() + pos_bits > 64:
        return np.argsort(keys, kind="stable")
    packed = np.sort((keys.astype(np.uint64) << np.uint64(pos_bits)) | np.arange(n, dtype=np.uint64))
    return (packed & np.uint64((1 << pos_bits) - 1)).astype(np.int64)


def _sorted_unique(a: np.ndarray) -> np.ndarray:
    """``np.unique`` of an int array by sorting (numpy's hash-based unique is ~6x slower here)."""
    a = np.sort(a)
    return a[np.r_[True, a[1:] != a[:-1]]] if a.size else a


#: Query landmarks looked up at once (~3 minutes of audio; ~70 MB of lookup rows).
QUERY_CHUNK = 20_000

#: Entries processed at once when a whole index is scanned (bounds the temporaries).
_CHUNK = 1 << 24


def _in_bucket_order(h: np.ndarray) -> bool:
    """Whether hashes ``h`` are sorted by (bucket, hash), as :meth:`AudioIndex.save` writes them."""
    bits = bucket_bits(h.size)
    prev = None
    for i in range(0, h.size, _CHUNK):
        part = h[i:i + _CHUNK]
        key = (bucket_of(part, bits).astype(np.uint64) << np.uint64(HASH_BITS)) | part  # <= 30 + 34 bits
        if np.any(key[1:] < key[:-1]) or (prev is not None and key[0] < prev):
            return False
        prev = key[-1]
    return True
