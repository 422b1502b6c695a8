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

from fingerprint.jit import njit
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
        """Make now what the first query would otherwise make: the sorted arrays, the bucket
        directory and the lookup's compiled kernels (4-5 s for 1,000 h of references on 2 cores,
        more the first time the arrays are read). ``main.py`` calls it before the first query's
        clock starts. Returns the index."""
        self._finalize()
        self._directory()
        _warm_up(self)
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
        """``(query landmark + first, entry, its reference, its time)`` of every meeting of
        ``landmarks`` (int64, int64, int64, float32 arrays), each once whatever hypotheses found
        it, sorted by landmark then entry."""
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
        return _meetings_kernel(np.ascontiguousarray(q_of_row), lo, hi, int(self.params.max_hits_per_hash), first,
                                self._ref, self._t)

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
        qi, ei, ri, ti = (np.concatenate([part[f] for part in parts]) for f in range(4))
        if qi.size == 0:
            return _empty_table()
        # A landmark that meets many landmarks on the other side (a repeated note, a loop) is weak
        # evidence for each of those meetings: its vote is split among them (_table_kernel).
        qi, ti, weight, kept, starts = _table_kernel(ri, qi, ei, ti, len(self.ref_ids), int(min_hits))
        return HitTable(ref_ids=[self.ref_ids[i] for i in kept.tolist()], starts=starts,
                        flat=Hits(query_t=landmarks.t_s[qi].astype(np.float64), ref_t=ti.astype(np.float64),
                                  score=weight, span_s=landmarks.span_s[qi], source="audio"))

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


@njit
def _lower_bound(values, lo, hi, target):
    """Per row, the first index ``i`` in ``lo[row]:hi[row]`` with ``values[i] >= target[row]``
    (``hi[row]`` if none); ``values`` must be sorted within each such range. Compiled, one binary
    search per row (numpy's vectorized one made a pass over the rows per halving step)."""
    out = np.empty(lo.size, np.int64)
    for j in range(lo.size):
        a, b = lo[j], hi[j]
        x = target[j]
        while a < b:
            mid = (a + b) >> 1
            if values[mid] < x:
                a = mid + 1
            else:
                b = mid
        out[j] = a
    return out


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


def _warm_up(ix: "AudioIndex") -> None:
    """Compile (or load from the on-disk cache) the lookup's kernels now, for the arrays of
    ``ix`` (numba compiles a version per array type), not in the first query."""
    none = np.zeros(1, np.int64)
    _lower_bound(ix._hash, none, none, np.zeros(1, np.uint64))  # a target of the type a lookup makes
    q, e, r, t = _meetings_kernel(none, none, none, 1, 0, ix._ref, ix._t)
    _table_kernel(r, q, e, t, 1, 1)


@njit
def _run_end(keys, i, end):
    """The first index after ``i`` (``end`` at most) whose key differs from ``keys[i]``."""
    j = i + 1
    while j < end and keys[j] == keys[i]:
        j += 1
    return j


#: Bits of the reference number sorted on per pass of :func:`_table_kernel`'s radix sort: 2**11
#: output streams stay in the caches, where one stream per reference (tens of thousands met by a
#: query minute against 1,000 h) would miss on nearly every write.
_RADIX_BITS = 11


@njit
def _meetings_kernel(q_of_row, lo, hi, cap, first, ref, t):
    """:meth:`AudioIndex._meetings`' pairs from its lookup rows: row ``j`` (query landmark
    ``q_of_row[j]``, rows sorted by landmark) meets the entries ``lo[j]:hi[j]``; rows meeting
    more than ``cap`` entries are skipped. Returns ``(landmark + first, entry, ref[entry],
    t[entry])``, each pair once, sorted by landmark then entry.

    A landmark's ~50 rows (hypotheses, jitter) reach overlapping runs of entries: their union,
    made by sorting the landmark's runs by start and sweeping, gives each entry once and in
    order, where numpy wrote every pair out and sorted the millions of a query minute against
    1,000 h. An entry's reference and time are read here, run by run, where the binary search
    has just been: gathered later they would each cost a cache miss."""
    n_rows = q_of_row.size
    total = 0
    for j in range(n_rows):
        c = hi[j] - lo[j]
        if 0 < c <= cap:
            total += c
    out_q = np.empty(total, np.int64)
    out_e = np.empty(total, np.int64)
    out_r = np.empty(total, np.int64)
    out_t = np.empty(total, np.float32)
    n = 0
    a = 0
    while a < n_rows:
        b = _run_end(q_of_row, a, n_rows)
        starts = np.empty(b - a, np.int64)
        ends = np.empty(b - a, np.int64)
        m = 0
        for j in range(a, b):
            c = hi[j] - lo[j]
            if 0 < c <= cap:
                starts[m] = lo[j]
                ends[m] = hi[j]
                m += 1
        by = np.argsort(starts[:m])
        done = -1  # entries below it are out already
        for k in range(m):
            for x in range(max(starts[by[k]], done), ends[by[k]]):
                out_q[n] = q_of_row[a] + first
                out_e[n] = x
                out_r[n] = ref[x]
                out_t[n] = t[x]
                n += 1
            done = max(done, ends[by[k]])
        a = b
    return out_q[:n], out_e[:n], out_r[:n], out_t[:n]


@njit
def _table_kernel(ref, q, e, t, n_refs, min_hits):
    """:meth:`AudioIndex.query_table`'s grouping of meetings (landmark ``q``, entry ``e`` of
    reference ``ref`` at time ``t``; sorted by landmark, then entry) by reference:
    ``(q, t, weight, kept, starts)``. References met fewer than ``min_hits`` times (or never)
    are left out; the others' meetings come reference by reference in index order, each
    reference's in input order; ``kept[g]`` is group ``g``'s reference and ``starts[g]`` its
    first row. ``weight`` is ``1 / sqrt(c_q * c_e)``, ``c_q`` the entries of that reference its
    landmark meets and ``c_e`` the landmarks its entry meets (an entry belongs to one reference,
    so both are counted within the group). A stable radix sort by reference
    (:data:`_RADIX_BITS`), where numpy needed three global sorts."""
    count = np.zeros(n_refs, np.int64)
    for i in range(ref.size):
        count[ref[i]] += 1
    n = 0
    for i in range(ref.size):
        if count[ref[i]] >= max(min_hits, 1):
            n += 1
    r1, q1, e1, t1 = (np.empty(n, np.int64), np.empty(n, np.int64), np.empty(n, np.int64),
                      np.empty(n, np.float32))
    k = 0
    for i in range(ref.size):
        if count[ref[i]] >= max(min_hits, 1):
            r1[k], q1[k], e1[k], t1[k] = ref[i], q[i], e[i], t[i]
            k += 1
    r2, q2, e2, t2 = np.empty_like(r1), np.empty_like(q1), np.empty_like(e1), np.empty_like(t1)
    mask = (1 << _RADIX_BITS) - 1
    shift = 0
    while (n_refs - 1) >> shift > 0:  # least significant digit first: each pass is stable
        pos = np.zeros(mask + 2, np.int64)
        for i in range(n):
            pos[((r1[i] >> shift) & mask) + 1] += 1
        for d in range(mask + 1):
            pos[d + 1] += pos[d]
        for i in range(n):
            d = (r1[i] >> shift) & mask
            j = pos[d]
            pos[d] += 1
            r2[j], q2[j], e2[j], t2[j] = r1[i], q1[i], e1[i], t1[i]
        r1, r2, q1, q2, e1, e2, t1, t2 = r2, r1, q2, q1, e2, e1, t2, t1
        shift += _RADIX_BITS
    n_groups = 0
    for i in range(n):
        if i == 0 or r1[i] != r1[i - 1]:
            n_groups += 1
    kept = np.empty(n_groups, np.int64)
    starts = np.empty(n_groups, np.int64)
    weight = np.empty(n)
    g = 0
    a = 0
    while a < n:
        b = _run_end(r1, a, n)
        kept[g], starts[g] = r1[a], a
        g += 1
        i = a  # c_q: runs of one landmark (landmarks ascend within a reference)
        while i < b:
            j = _run_end(q1, i, b)
            for x in range(i, j):
                weight[x] = j - i
            i = j
        by = np.argsort(e1[a:b]) + a  # c_e: runs of one entry among the reference's meetings
        i = 0
        while i < b - a:
            j = i
            while j < b - a and e1[by[j]] == e1[by[i]]:
                j += 1
            for x in range(i, j):
                weight[by[x]] = 1.0 / np.sqrt(weight[by[x]] * (j - i))
            i = j
        a = b
    return q1, t1, weight, kept, starts
