"""Nearest-neighbour index of reference frame descriptors.

Descriptors are kept as float16 rows with a side table row -> (reference, time). Search is an
exact matrix product up to ``exact_max_frames`` rows; above, by default, an integer matrix
product in a PCA projection of the rows (one byte a dimension, onnxruntime) picks a shortlist
that is re-ranked exactly (nothing extra is saved: the projection is made on first use).
``large_search="ivf"`` splits the projected rows into cells (k-means, made on first use; the rows
kept as int8 codes there) and scans a query row's nearest cells only, in a compiled loop (numba).
With ``large_search="annoy"`` an annoy (angular) forest is used instead; its file is saved next
to the ``.npz`` and its sha256 recorded in the metadata. On a torch device
(:meth:`VisualIndex.use_device`, e.g. the GPU the descriptors run on), the search is exact at
every size: the float16 rows are copied there once (3.7 GB per 1,000 h).
"""
from __future__ import annotations

import functools
import hashlib
import os
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

import numpy as np

from fingerprint.errors import IndexFormatError
from fingerprint.jit import njit
from fingerprint.storage import load_arrays, save_arrays
from fingerprint.types import Hits

from .params import VisualParams

INDEX_KIND = "visual-frames"
#: Exact search compares at most this many query rows at a time (a 64 MB similarity block).
QUERY_CHUNK = 256
#: Reference rows compared per matrix product.
BLOCK = 65536
#: Rows sampled (evenly spaced) to find the projected search's basis.
PCA_SAMPLE = 100_000
#: The projected search's codes span -CODE_MAX..CODE_MAX (see VisualIndex._projected_codes).
CODE_MAX = 63
#: The projected search checks a query row's integer scores this many at a time against its
#: shortlist's last place (one vectorized comparison per run; few runs hold a better score).
RUN = 64
#: Inverted-file search: k-means rounds, and rows of the projection it learns from per cell.
IVF_ITERS, IVF_SAMPLE_PER_CELL = 8, 32
#: Reference rows per matrix product on a torch device: a 2 GB float32 block and, for
#: QUERY_CHUNK query rows, a 1 GB similarity block.
DEVICE_BLOCK = 1 << 20
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
        self._f32: Optional[np.ndarray] = None  # float32 copy for exact search (small indexes)
        self._proj: Optional[Tuple[np.ndarray, np.ndarray]] = None  # the projection ivf's cells are made from
        self._pcodes: Optional[tuple] = None  # projected search's basis, scale and int8 codes (_projected_codes)
        self._ivf: Optional[tuple] = None  # inverted-file search's cells (see _cells)
        #: torch device the search runs on (None: numpy on the CPU); see :meth:`use_device`
        self.search_device: Optional[str] = None
        self._dev_rows = None  # the float16 rows on search_device
        self._no_room: Optional[str] = None  # a device that ran out of memory for this index

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
        self._annoy, self._f32, self._proj, self._dev_rows, self._ivf = None, None, None, None, None
        self._pcodes = None

    def _finalize(self) -> None:
        if not self._pending:
            return
        parts = ([self._desc] if self._ref.size else []) + [p[0] for p in self._pending]
        self._desc = np.concatenate(parts)
        self._ref = np.concatenate([self._ref] + [p[1] for p in self._pending])
        self._t = np.concatenate([self._t] + [p[2] for p in self._pending])
        self._pending = []

    @property
    def is_large(self) -> bool:
        """More rows than ``exact_max_frames``: searched with ``params.large_search``."""
        return len(self) > self.params.exact_max_frames

    @property
    def uses_annoy(self) -> bool:
        return self.is_large and self.params.large_search == "annoy"

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

    def use_device(self, device: Optional[str]) -> "VisualIndex":
        """Search on a torch ``device`` ("cuda", "cuda:1"; "cpu" runs the same torch code on the
        CPU), or with numpy (None). On a device the default search is exact at every size, unless
        the parameters ask for annoy (``--visual-search annoy``): a GPU compares a 60 s query with
        1,000 h of frames in milliseconds. Returns the index."""
        if device != self.search_device and device != self._no_room:
            self.search_device, self._dev_rows = device, None
        return self

    def _device_rows(self):
        """The float16 rows on ``search_device``, copied there on first use. If they do not fit,
        a one-line warning and the search goes on with numpy (``search_device`` becomes None)."""
        if self._dev_rows is None and self.search_device is not None:
            import torch

            try:
                self._dev_rows = torch.from_numpy(self._desc).to(self.search_device)
            except torch.cuda.OutOfMemoryError:
                self._leave_device("does not fit on")
        return self._dev_rows

    def _leave_device(self, why: str) -> None:
        """Search with numpy from now on, after one warning line; the device is not tried again."""
        print(f"fingerprint: warning: the visual index ({len(self._desc)} frames, {self._desc.nbytes / 1e9:.1f} GB) "
              f"{why} {self.search_device}; searching it on the CPU", file=sys.stderr)
        self._no_room, self.search_device, self._dev_rows = self.search_device, None, None

    def _on_device(self) -> bool:
        """Whether exact searches run on ``search_device`` (its rows there, copied on first use)."""
        return self.search_device is not None and self._device_rows() is not None

    def _default_method(self) -> str:
        if self.params.large_search != "annoy" and self._on_device():
            return "exact"
        return self.params.large_search if self.is_large else "exact"

    def prepare(self, device: Optional[str] = None) -> "VisualIndex":
        """Make now what searches need, so that the first search does not pay for it: the float32
        rows up to ``exact_max_frames``; above, the projection's codes (``large_search="projected"``,
        ~12 s at 1,000 h on 2 cores), the cells of the inverted-file search (``large_search="ivf"``,
        ~2.8 s at 100 h, ~37 s at 1,000 h), each with its scan compiled, or the annoy forest; with
        ``device`` (see :meth:`use_device`; "cpu" or None: numpy), the rows on that device.
        Returns the index."""
        self._finalize()
        if device is not None:
            self.use_device(None if device == "cpu" else device)
        if self._ref.size == 0:
            return self
        if self._default_method() == "exact" and self._on_device():
            return self  # the rows are on the device now
        if not self.is_large:
            self._keep_float32()
        elif self.params.large_search == "projected":
            self._projected_codes()
            self._search_projected(self._desc[:1].astype(np.float32), 1)  # compiles the scan (or loads it)
        elif self.params.large_search == "ivf":
            self._cells()
            self._search_ivf(self._desc[:1].astype(np.float32), 1)  # compiles the scan (or loads it)
        elif self._annoy is None:
            self._annoy = self._build_annoy()
        return self

    def search(self, desc: np.ndarray, k: int, method: Optional[str] = None) -> Tuple[np.ndarray, np.ndarray]:
        """The ``k`` most similar reference rows per query row ``desc (m, dim)``:
        ``(sims (m, k) float32, rows (m, k) int64)``, best first; rows are -1 (sims -inf) where
        fewer than ``k`` exist. ``method`` is "exact", "projected" or "annoy"; by default exact up
        to ``exact_max_frames`` rows and ``params.large_search`` above (on a device: exact, see
        :meth:`use_device`). The exact search runs on ``search_device`` when one is set."""
        self._finalize()
        if method is None:
            method = self._default_method()
        if method not in ("exact", "projected", "ivf", "annoy"):
            raise ValueError(f"unknown search method {method!r}")
        m, n = len(desc), self._ref.size
        if m == 0 or n == 0:
            return np.full((m, k), -np.inf, np.float32), np.full((m, k), -1, np.int64)
        q = np.asarray(desc, np.float32)
        if method != "annoy" and m > QUERY_CHUNK:
            # bounded memory: a (QUERY_CHUNK x BLOCK) similarity block at a time
            parts = [self.search(q[i:i + QUERY_CHUNK], k, method=method) for i in range(0, m, QUERY_CHUNK)]
            return np.concatenate([a for a, _ in parts]), np.concatenate([b for _, b in parts])
        if method == "exact":
            if self._on_device():
                import torch

                try:
                    return self._search_exact_torch(q, k)
                except torch.cuda.OutOfMemoryError:  # the rows fit, the working blocks did not
                    self._leave_device("has no room to search on")
            return self._search_exact(q, k)
        if method == "projected":
            return self._search_projected(q, k)
        if method == "ivf":
            return self._search_ivf(q, k)
        return self._search_annoy(q, k)

    def _keep_float32(self) -> None:
        """Up to ``exact_max_frames`` rows, keep a float32 copy of them (converting float16 costs
        ~3x the matrix product it feeds); above, none, so as not to double the index's memory."""
        if self._f32 is None and self._ref.size <= self.params.exact_max_frames:
            self._f32 = self._desc.astype(np.float32)

    def _float32_blocks(self):
        """``(start, float32 rows)`` over the stored descriptors: slices of the kept copy, or
        blocks converted as they are used (:meth:`_keep_float32`)."""
        self._keep_float32()
        for i in range(0, len(self._desc), BLOCK):
            yield i, self._f32[i:i + BLOCK] if self._f32 is not None else self._desc[i:i + BLOCK].astype(np.float32)

    def _search_exact(self, q: np.ndarray, k: int) -> Tuple[np.ndarray, np.ndarray]:
        m = len(q)
        sims = np.full((m, k), -np.inf, np.float32)
        rows = np.full((m, k), -1, np.int64)
        kk = min(k, self._ref.size)
        for i, block in self._float32_blocks():
            s = q @ block.T
            part = np.argpartition(-s, min(kk, s.shape[1]) - 1, axis=1)[:, :kk] if s.shape[1] > kk else \
                np.broadcast_to(np.arange(s.shape[1]), (m, s.shape[1]))
            cand_s = np.take_along_axis(s, part, axis=1)
            all_s = np.concatenate([sims, cand_s], axis=1)
            all_r = np.concatenate([rows, part + i], axis=1)
            top = np.argsort(-all_s, axis=1, kind="stable")[:, :k]
            sims, rows = np.take_along_axis(all_s, top, axis=1), np.take_along_axis(all_r, top, axis=1)
        return sims, rows

    def _search_exact_torch(self, q: np.ndarray, k: int) -> Tuple[np.ndarray, np.ndarray]:
        """:meth:`_search_exact` on ``search_device``: float32 products of float16 rows, as on the
        CPU (torch's default leaves TF32 off, so the similarities match numpy's to rounding). Among
        rows of equal similarity (duplicate frames) it may keep others than numpy does."""
        import torch

        stored = self._device_rows()
        m, n = len(q), len(stored)
        kk = min(k, n)
        qt = torch.from_numpy(np.ascontiguousarray(q)).to(stored.device)
        best_s = best_r = None
        with torch.no_grad():
            for i in range(0, n, DEVICE_BLOCK):
                s = qt @ stored[i:i + DEVICE_BLOCK].float().T
                v, j = torch.topk(s, min(kk, s.shape[1]), dim=1)
                j = j + i
                if best_s is not None:
                    v, j = torch.cat([best_s, v], dim=1), torch.cat([best_r, j], dim=1)
                    v, o = torch.topk(v, min(kk, v.shape[1]), dim=1)
                    j = torch.gather(j, 1, o)
                best_s, best_r = v, j
        sims = np.full((m, k), -np.inf, np.float32)
        rows = np.full((m, k), -1, np.int64)
        sims[:, :kk], rows[:, :kk] = best_s.cpu().numpy(), best_r.cpu().numpy()
        return sims, rows

    def _basis(self) -> Tuple[np.ndarray, np.ndarray]:
        """``(basis (dim, coarse_dims), peak (coarse_dims,))``, float32: the leading eigenvectors
        of the uncentred second moment of (up to PCA_SAMPLE evenly spaced) stored rows, and the
        largest magnitude of each projected dimension among those rows. The subspace that keeps
        most of the rows' energy keeps their dot products best, and descriptors are already
        centred on the noise set."""
        n, d = self._ref.size, min(self.params.coarse_dims, self._desc.shape[1])
        picks = np.linspace(0, n - 1, min(n, PCA_SAMPLE)).astype(np.int64)
        gram = np.zeros((self._desc.shape[1],) * 2)
        for i in range(0, picks.size, 16384):  # float64 a slice at a time (100k rows would be 0.4 GB)
            part = self._desc[picks[i:i + 16384]].astype(np.float64)
            gram += part.T @ part
        _, vecs = np.linalg.eigh(gram)
        basis = np.ascontiguousarray(vecs[:, ::-1][:, :d], dtype=np.float32)
        peak = np.zeros(d, np.float32)
        for i in range(0, picks.size, 16384):
            peak = np.maximum(peak, np.abs(self._desc[picks[i:i + 16384]].astype(np.float32) @ basis).max(axis=0))
        return basis, peak

    def _projection(self) -> Tuple[np.ndarray, np.ndarray]:
        """``(basis (dim, coarse_dims), projected rows (n, coarse_dims))``, both float32 (see
        :meth:`_basis`), made on first use; the inverted-file search's cells are made from them."""
        if self._proj is None:
            basis, _ = self._basis()
            proj = np.empty((self._ref.size, basis.shape[1]), np.float32)
            for i, block in self._float32_blocks():
                proj[i:i + len(block)] = block @ basis
            self._proj = (basis, proj)
        return self._proj

    def _projected_codes(self) -> tuple:
        """The projected search's rows, made on first use: ``(basis (dim, d), scale (d,), blocks)``,
        ``blocks`` a list of int8 ``(d, <= BLOCK)`` arrays, the projections of BLOCK stored rows
        each, transposed (the layout the integer product reads), with ``projection ~= code *
        scale``. Codes span -63..63 (the sampled rows' peak, :meth:`_basis`; the rare larger
        values are clipped): x86 CPUs without VNNI add pairs of byte products in 16 bits, which 7
        bits keep from saturating. 128 bytes a row at 128 dims, a quarter of float32's."""
        if self._pcodes is None:
            basis, peak = self._basis()
            scale = (np.maximum(peak, 1e-30) / CODE_MAX).astype(np.float32)
            blocks = []
            for _, block in self._float32_blocks():
                c = np.clip(np.rint((block @ basis) / scale), -CODE_MAX, CODE_MAX)
                blocks.append(np.ascontiguousarray(c.T.astype(np.int8)))
            self._pcodes = (basis, scale, blocks)
        return self._pcodes

    def _search_projected(self, q: np.ndarray, k: int) -> Tuple[np.ndarray, np.ndarray]:
        """Each query row's ``shortlist`` best rows by projected similarity, re-ranked by their
        exact similarity. The projected similarities are integer products of the query row's
        projection, one signed byte a dimension, with the rows' codes (:meth:`_projected_codes`),
        made by onnxruntime's integer matrix product (:func:`_int_products`, ~2.5x a float32 one)
        a block at a time; :func:`_keep_best` keeps each query row's best as the blocks go by, in
        this thread while a helper thread makes the next block's products (7-10% less time on 2
        cores than one after the other, the same heaps: the blocks are kept in order)."""
        basis, scale, blocks = self._projected_codes()
        m, n = len(q), self._ref.size
        size = min(max(k, self.params.shortlist), n)
        qs = (q @ basis) * scale  # so that codes . qs ~= projection . q's projection
        top = np.maximum(np.abs(qs).max(axis=1, keepdims=True), 1e-30)
        qbytes = (np.rint(qs / top * 127) + 128).astype(np.uint8)  # zero point 128
        heap_s = np.full((m, size), np.iinfo(np.int32).min, np.int32)  # below any score
        heap_r = np.full((m, size), -1, np.int64)
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="products") as ahead:
            pending = ahead.submit(_int_products, qbytes, blocks[0]) if blocks else None
            for j in range(len(blocks)):
                scores = pending.result()
                if j + 1 < len(blocks):
                    pending = ahead.submit(_int_products, qbytes, blocks[j + 1])
                _keep_best(scores, j * BLOCK, heap_s, heap_r)
        return _rerank(self._desc, q, heap_r, k)

    def _cells(self) -> tuple:
        """The inverted-file search's cells, made on first use from the projected rows
        (:meth:`_projection`): ``(centroids (c, d) unit rows, start (c + 1,), rows (n,), basis,
        codes (n, d) int8, scale (d,) float32)``, the stored rows of cell ``j`` being
        ``rows[start[j]:start[j + 1]]`` and ``codes`` their projections in that order, one byte a
        dimension (``projection ~= codes * scale``; the float32 projection is then dropped).
        About sqrt(n) cells of sqrt(n) rows: a search scans ``ivf_probe`` cells per query row, so
        its cost grows with the square root of the index, not with the index."""
        if self._ivf is None:
            basis, proj = self._projection()
            n = len(proj)
            c = int(min(max(1, n // 8), 2 ** round(np.log2(max(1.0, np.sqrt(n))))))
            cent = _spherical_kmeans(proj, c, iters=IVF_ITERS, sample=IVF_SAMPLE_PER_CELL * c)
            cell = np.empty(n, np.int32)
            peak = np.zeros(proj.shape[1], np.float32)
            for i in range(0, n, BLOCK):
                cell[i:i + BLOCK] = np.argmax(proj[i:i + BLOCK] @ cent.T, axis=1)
                peak = np.maximum(peak, np.abs(proj[i:i + BLOCK]).max(axis=0))
            order = np.argsort(cell, kind="stable")
            start = np.r_[0, np.cumsum(np.bincount(cell, minlength=c))].astype(np.int64)
            # One byte a dimension, scaled per dimension (the projection's leading dimensions
            # spread wider): a quarter of float32's memory and of what a search reads. It only
            # picks the shortlist, which is re-ranked exactly.
            scale = (np.maximum(peak, 1e-30) / 127).astype(np.float32)
            codes = np.empty(proj.shape, np.int8)
            for i in range(0, n, BLOCK):
                codes[i:i + BLOCK] = np.rint(proj[order[i:i + BLOCK]] / scale)
            self._ivf, self._proj = (cent, start, order, basis, codes, scale), None
        return self._ivf

    def _search_ivf(self, q: np.ndarray, k: int) -> Tuple[np.ndarray, np.ndarray]:
        """Each query row's ``shortlist`` best rows by projected similarity among the rows of its
        ``ivf_probe`` nearest cells, re-ranked by their exact similarity. The projected
        similarities are integer dot products of the rows' int8 codes with the query row's
        int16 ones (:func:`_ivf_scan`); they only rank the rows of one query row."""
        cent, start, order, basis, codes, scale = self._cells()
        m = len(q)
        qp = q @ basis
        probe = min(self.params.ivf_probe, len(cent))
        near = np.argpartition(-(qp @ cent.T), probe - 1, axis=1)[:, :probe] if probe < len(cent) \
            else np.broadcast_to(np.arange(len(cent)), (m, len(cent)))
        size = max(k, self.params.shortlist)
        qs = qp * scale  # so that codes . qs ~= projection . qp
        top = np.maximum(np.abs(qs).max(axis=1, keepdims=True), 1e-30)
        qcodes = np.rint(qs / top * 32767).astype(np.int16)
        flat = near.ravel()
        by = np.argsort(flat, kind="stable")  # cell by cell, the query rows that probe it
        heap_s = np.full((m, size), np.iinfo(np.int32).min, np.int32)  # below any score
        heap_r = np.full((m, size), -1, np.int64)
        _ivf_scan(qcodes, codes, start, flat[by].astype(np.int64), (by // near.shape[1]).astype(np.int64),
                  heap_s, heap_r)
        return _rerank(self._desc, q, np.where(heap_r >= 0, order[heap_r], -1), k)

    def _search_annoy(self, q: np.ndarray, k: int) -> Tuple[np.ndarray, np.ndarray]:
        sims = np.full((len(q), k), -np.inf, np.float32)
        rows = np.full((len(q), k), -1, np.int64)
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
        """Write ``path`` (``.npz``) atomically, plus ``path + '.ann'`` when annoy is used (an
        earlier save's ``.ann`` is removed otherwise)."""
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
        stale = Path(str(path) + ".ann")
        if meta["annoy"] is None and stale.exists():  # a forest of an earlier save, no longer searched
            stale.unlink()

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


def _rerank(desc: np.ndarray, q: np.ndarray, cand: np.ndarray, k: int) -> Tuple[np.ndarray, np.ndarray]:
    """``(sims (m, k), rows (m, k))``: the ``k`` best of each query row's candidate stored rows
    ``cand (m, l)`` (-1: no candidate) by their exact similarity to ``q (m, dim)``, best first
    (:func:`_best_first`); -inf / -1 where fewer than ``k`` candidates exist."""
    m, size = cand.shape
    exact = np.einsum("mld,md->ml", desc[np.maximum(cand, 0).ravel()].astype(np.float32).reshape(m, size, -1), q)
    exact[cand < 0] = -np.inf
    best = _best_first(exact, cand, k)
    sims = np.full((m, k), -np.inf, np.float32)
    rows = np.full((m, k), -1, np.int64)
    kk = best.shape[1]
    sims[:, :kk] = np.take_along_axis(exact, best, axis=1)
    rows[:, :kk] = np.where(np.isfinite(sims[:, :kk]), np.take_along_axis(cand, best, axis=1), -1)
    return sims, rows


def _best_first(sims: np.ndarray, rows: np.ndarray, k: int) -> np.ndarray:
    """Per row of ``sims`` (m, l), the positions of its ``k`` best, best first; equal
    similarities go to the lower stored row, so that the result does not depend on the order
    the candidates were gathered in."""
    o = np.lexsort((rows, -sims), axis=1)
    return o[:, :k]


def _spherical_kmeans(x: np.ndarray, c: int, iters: int, sample: int) -> np.ndarray:
    """``c`` unit centroids of the rows ``x`` (n, d) by spherical k-means on up to ``sample``
    evenly spaced rows (deterministic: evenly spaced starting rows, no random draws). A cell
    left empty keeps its previous centroid."""
    picks = np.linspace(0, len(x) - 1, min(len(x), sample)).astype(np.int64)
    xs = x[picks]
    xs = xs / np.maximum(np.linalg.norm(xs, axis=1, keepdims=True), 1e-12)
    cent = xs[np.linspace(0, len(xs) - 1, c).astype(np.int64)].copy()
    for _ in range(iters):
        a = np.concatenate([np.argmax(xs[i:i + BLOCK] @ cent.T, axis=1) for i in range(0, len(xs), BLOCK)])
        o = np.argsort(a, kind="stable")
        used = np.flatnonzero(np.bincount(a, minlength=c))
        sums = np.zeros_like(cent)
        sums[used] = np.add.reduceat(xs[o], np.searchsorted(a[o], used))
        norm = np.linalg.norm(sums, axis=1, keepdims=True)
        cent = np.where(norm > 0, sums / np.maximum(norm, 1e-12), cent).astype(np.float32)
    return cent


@njit
def _heap_replace(heap_s, heap_r, score, row):
    """In the min-heap ``heap_s, heap_r`` (1-d, the worst kept first), ``score`` of ``row``
    replaces the worst kept, and sinks to its place."""
    size = heap_s.size
    pos = 0
    while True:
        child = 2 * pos + 1
        if child >= size:
            break
        if child + 1 < size and heap_s[child + 1] < heap_s[child]:
            child += 1
        if heap_s[child] >= score:
            break
        heap_s[pos] = heap_s[child]
        heap_r[pos] = heap_r[child]
        pos = child
    heap_s[pos] = score
    heap_r[pos] = row


@njit
def _ivf_scan(qcodes, codes, start, pair_cell, pair_row, heap_s, heap_r):
    """Keeps, per query row ``r``, a min-heap ``heap_s[r], heap_r[r]`` of its best integer scores
    so far and their positions in ``codes``, over the rows of the cells it probes; the heaps come
    filled with places no score can lose to (``heap_r`` -1). The (cell, query row) pairs come
    sorted by cell, so each cell's rows are read once for every query row that probes it. Scores
    are ``qcodes[r] . codes[i]`` in int32 (at most 32767 x 127 x 128 < 2**31)."""
    d = codes.shape[1]
    n_pairs = pair_cell.size
    a = 0
    while a < n_pairs:
        j = pair_cell[a]
        b = a + 1
        while b < n_pairs and pair_cell[b] == j:
            b += 1
        for i in range(start[j], start[j + 1]):
            for p in range(a, b):
                r = pair_row[p]
                acc = np.int32(0)
                for t in range(d):  # int32 arithmetic throughout, so that it vectorizes
                    acc = np.int32(acc + np.int32(qcodes[r, t]) * np.int32(codes[i, t]))
                if acc > heap_s[r, 0]:
                    _heap_replace(heap_s[r], heap_r[r], acc, i)
        a = b


#: ONNX graph ``Y = MatMulInteger(A, B, a_zero_point=128)``, A uint8 (m, d), B int8 (d, w), Y
#: int32 (m, w): what onnx 1.x writes for ``helper.make_model(helper.make_graph([helper.make_node(
#: "MatMulInteger", ["A", "B", "azp"], ["Y"])], "g", [A, B], [Y], initializer=[azp]), opset 10)``
#: with ir_version 5 and dynamic shapes (tests/visual/test_index.py rebuilds it with onnx and
#: compares). Kept as bytes: onnx itself is not a dependency.
_MATMUL_INTEGER_ONNX = bytes.fromhex(
    "08053a620a1d0a01410a01420a03617a70120159220d4d61744d756c496e74656765721201672a0b10022a0280014203617a"
    "705a0f0a0141120a0a08080212040a000a005a0f0a0142120a0a08080312040a000a00620f0a0159120a0a08080612040a00"
    "0a0042040a00100a")


@functools.lru_cache(maxsize=2)
def _int_session(threads: int):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")  # as the model's (visual/model.py)
    return ort.InferenceSession(_MATMUL_INTEGER_ONNX, so, providers=["CPUExecutionProvider"])


def _int_products(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(a - 128) @ b`` exactly, int32 (m, w), for ``a`` uint8 (m, d) and ``b`` int8 (d, w)
    within -CODE_MAX..CODE_MAX, by onnxruntime's integer matrix product (MLAS), on as many threads
    as the model uses (``FINGERPRINT_MODEL_THREADS``, else every usable core)."""
    from .model import usable_cores

    threads = int(os.environ.get("FINGERPRINT_MODEL_THREADS", "0") or 0) or usable_cores()
    return _int_session(threads).run(None, {"A": a, "B": b})[0]


@njit
def _keep_best(scores, offset, heap_s, heap_r):
    """Keeps, per query row ``r``, a min-heap ``heap_s[r], heap_r[r]`` of its best integer scores
    so far and their stored rows, given the scores ``scores (m, w)`` int32 of stored rows
    ``offset .. offset + w - 1``; the heaps come filled with places no score can lose to
    (``heap_r`` -1). An equal score does not displace a kept one, so earlier rows win ties.
    Scores are read RUN at a time: one comparison of the run with the heap's last place, which
    vectorizes, and only the rare run holding a better score is read one by one."""
    m, w = scores.shape
    for r in range(m):
        last = heap_s[r, 0]
        for c in range(0, w, RUN):
            e = min(c + RUN, w)
            better = 0
            for i in range(c, e):
                better |= scores[r, i] > last
            if better == 0:
                continue
            for i in range(c, e):
                if scores[r, i] > last:
                    _heap_replace(heap_s[r], heap_r[r], scores[r, i], offset + i)
                    last = heap_s[r, 0]


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
