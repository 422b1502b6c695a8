"""Nearest-neighbour index of reference frame descriptors.

Descriptors are kept as float16 rows with a side table row -> (reference, time). Search is an
exact matrix product up to ``exact_max_frames`` rows and an annoy (angular) forest above; the
annoy file is saved next to the ``.npz`` and its sha256 is recorded in the ``.npz`` metadata.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

import numpy as np

from fingerprint.errors import IndexFormatError
from fingerprint.storage import load_arrays, save_arrays
from fingerprint.types import Hits

from .params import VisualParams

INDEX_KIND = "visual-frames"
#: Exact search compares at most this many query rows at a time (a 64 MB similarity block).
QUERY_CHUNK = 256
INDEX_VERSION = 1


class VisualIndex:
    """Reference frames: ``add(ref_id, times_s, descriptors)``, then ``search``/``query``.

    >>> ix = VisualIndex()
    >>> ix.add("R000001", times, desc)            # doctest: +SKIP   (desc: (n, 512) unit rows)
    >>> sims, rows = ix.search(query_desc, k=10)  # doctest: +SKIP
    """

    def __init__(self, params: VisualParams = VisualParams()):
        self.params = params
        self.ref_ids: List[str] = []
        self._pos: Dict[str, int] = {}
        self._desc = np.zeros((0, 0), np.float16)
        self._ref = np.zeros(0, np.uint32)
        self._t = np.zeros(0, np.float32)
        self._pending: List[tuple] = []
        self._annoy = None

    def __len__(self) -> int:
        return self._ref.size + sum(p[1].size for p in self._pending)

    def __contains__(self, ref_id: str) -> bool:
        return ref_id in self._pos

    def add(self, ref_id: str, times_s: np.ndarray, descriptors: np.ndarray) -> None:
        if ref_id in self._pos:
            raise ValueError(f"reference {ref_id!r} is already in the index")
        if len(times_s) != len(descriptors):
            raise ValueError("times_s and descriptors differ in length")
        self._pos[ref_id] = len(self.ref_ids)
        self.ref_ids.append(ref_id)
        n = len(times_s)
        if n == 0:  # a reference without video: known, but nothing to search
            return
        self._pending.append((np.asarray(descriptors, np.float16).reshape(n, -1),
                              np.full(n, self._pos[ref_id], np.uint32), np.asarray(times_s, np.float32)))
        self._annoy = None

    def _finalize(self) -> None:
        if not self._pending:
            return
        parts = ([self._desc] if self._ref.size else []) + [p[0] for p in self._pending]
        self._desc = np.concatenate(parts)
        self._ref = np.concatenate([self._ref] + [p[1] for p in self._pending])
        self._t = np.concatenate([self._t] + [p[2] for p in self._pending])
        self._pending = []

    @property
    def uses_annoy(self) -> bool:
        return len(self) > self.params.exact_max_frames

    def _build_annoy(self, n_jobs: int = 1):
        """The annoy forest of the stored descriptors. One thread by default, so that a forest
        does not depend on the machine's core count; ``n_jobs=-1`` (every core) suits benchmarks
        that only time searches, which cost the same either way."""
        from annoy import AnnoyIndex

        self._finalize()
        a = AnnoyIndex(self._desc.shape[1], "angular")
        a.set_seed(0)  # deterministic forests
        for i in range(0, len(self._desc), 200_000):  # float32 copies a block at a time
            for j, row in enumerate(self._desc[i:i + 200_000].astype(np.float32)):
                a.add_item(i + j, row)
        a.build(self.params.annoy_trees, n_jobs=n_jobs)
        return a

    def search(self, desc: np.ndarray, k: int, exact: Optional[bool] = None) -> Tuple[np.ndarray, np.ndarray]:
        """The ``k`` most similar reference rows per query row: ``(sims (m, k), rows (m, k))``,
        best first; rows are -1 (sims -inf) where fewer than ``k`` exist."""
        self._finalize()
        m, n = len(desc), self._ref.size
        sims = np.full((m, k), -np.inf, np.float32)
        rows = np.full((m, k), -1, np.int64)
        if m == 0 or n == 0:
            return sims, rows
        q = np.asarray(desc, np.float32)
        if (exact if exact is not None else not self.uses_annoy) and m > QUERY_CHUNK:
            # bounded memory: a (QUERY_CHUNK x 65536) similarity block at a time
            parts = [self.search(q[i:i + QUERY_CHUNK], k, exact) for i in range(0, m, QUERY_CHUNK)]
            return np.concatenate([a for a, _ in parts]), np.concatenate([b for _, b in parts])
        if exact if exact is not None else not self.uses_annoy:
            kk = min(k, n)
            for i in range(0, n, 65536):
                block = self._desc[i:i + 65536].astype(np.float32)
                s = q @ block.T
                part = np.argpartition(-s, min(kk, s.shape[1]) - 1, axis=1)[:, :kk] if s.shape[1] > kk else \
                    np.broadcast_to(np.arange(s.shape[1]), (m, s.shape[1]))
                cand_s = np.take_along_axis(s, part, axis=1)
                all_s = np.concatenate([sims, cand_s], axis=1)
                all_r = np.concatenate([rows, part + i], axis=1)
                top = np.argsort(-all_s, axis=1, kind="stable")[:, :k]
                sims, rows = np.take_along_axis(all_s, top, axis=1), np.take_along_axis(all_r, top, axis=1)
            return sims, rows
        if self._annoy is None:
            self._annoy = self._build_annoy()
        for j, v in enumerate(q):
            idx, dist = self._annoy.get_nns_by_vector(v, k, search_k=self.params.annoy_search_k,
                                                       include_distances=True)
            d = np.asarray(dist, np.float32)
            sims[j, :len(idx)] = 1.0 - d * d / 2.0  # angular distance = sqrt(2 - 2 cos)
            rows[j, :len(idx)] = idx
        return sims, rows

    def hits(self, query_t: np.ndarray, sims: np.ndarray, rows: np.ndarray, span_s: float,
             floor: float) -> Dict[str, Hits]:
        """Per-reference :class:`Hits` from candidate matches given as parallel arrays: query
        frame time, similarity, reference row. Kept where ``sim > floor``; score = sim - floor."""
        keep = (sims > floor) & (rows >= 0)
        query_t, sims, rows = np.asarray(query_t, np.float64)[keep], sims[keep], rows[keep]
        refs = self._ref[rows]
        order = np.lexsort((query_t, refs))
        query_t, sims, rows, refs = query_t[order], sims[order], rows[order], refs[order]
        out: Dict[str, Hits] = {}
        for sl in np.split(np.arange(refs.size), np.flatnonzero(np.diff(refs)) + 1):
            if sl.size == 0:
                continue
            out[self.ref_ids[int(refs[sl[0]])]] = Hits(
                query_t=query_t[sl], ref_t=self._t[rows[sl]].astype(np.float64),
                score=(sims[sl] - floor).astype(np.float64), span_s=np.full(sl.size, span_s), source="visual")
        return out

    def save(self, path: Union[str, Path]) -> None:
        """Write ``path`` (``.npz``) atomically, plus ``path + '.ann'`` when annoy is used."""
        self._finalize()
        path = Path(path)
        meta = {"params": self.params.index_key(), "ref_ids": self.ref_ids, "annoy": None}
        if self.uses_annoy:
            if self._annoy is None:
                self._annoy = self._build_annoy()
            ann = Path(str(path) + ".ann")
            fd, tmp = tempfile.mkstemp(prefix=ann.name + ".", suffix=".tmp", dir=str(ann.parent))
            os.close(fd)
            self._annoy.save(tmp)
            os.replace(tmp, ann)
            meta["annoy"] = {"file": ann.name, "sha256": _sha256(ann), "trees": self.params.annoy_trees}
        save_arrays(path, INDEX_KIND, INDEX_VERSION, {"desc": self._desc, "ref": self._ref, "t_s": self._t}, meta)

    @classmethod
    def load(cls, path: Union[str, Path], params: Optional[VisualParams] = None) -> "VisualIndex":
        path = Path(path)
        arrays, meta = load_arrays(path, INDEX_KIND, INDEX_VERSION)
        stored = meta.get("params", {})
        if params is None:
            params = VisualParams(**stored)
        elif params.index_key() != stored:
            raise IndexFormatError(path, f"index was built with {stored}, not {params.index_key()}; rebuild it")
        ix = cls(params)
        ix.ref_ids = list(meta.get("ref_ids", []))
        ix._pos = {r: i for i, r in enumerate(ix.ref_ids)}
        ix._desc, ix._ref, ix._t = arrays["desc"].astype(np.float16), arrays["ref"].astype(np.uint32), \
            arrays["t_s"].astype(np.float32)
        if not (len(ix._desc) == ix._ref.size == ix._t.size) or (ix._ref.size and ix._ref.max() >= len(ix.ref_ids)):
            raise IndexFormatError(path, "inconsistent index arrays")
        ann = meta.get("annoy")
        if ann and ix.uses_annoy:
            from annoy import AnnoyIndex

            ann_path = path.parent / ann["file"]
            if not ann_path.is_file() or _sha256(ann_path) != ann["sha256"]:
                raise IndexFormatError(ann_path, "annoy file missing or damaged (checksum mismatch)")
            ix._annoy = AnnoyIndex(ix._desc.shape[1], "angular")
            ix._annoy.load(str(ann_path))
        return ix


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
