"""From a video file to per-reference visual hits.

reference: frames at ``ref_fps`` -> descriptors -> :class:`VisualIndex`.
query: frames at ``query_fps`` -> views -> descriptors -> normalized similarities to the index ->
best over views per (query frame, reference frame) -> :class:`fingerprint.types.Hits`.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np

from fingerprint.media import iter_frames, load_frames, prefetch, probe
from fingerprint.types import Frames, Hits, MediaInfo

from .index import VisualIndex
from .model import Descriptor
from .params import VisualParams
from .views import detect_views, layout_views

PathLike = Union[str, Path]
ASSETS = Path(__file__).resolve().parents[1] / "model_assets"
#: Frames decoded and described at a time (a multiple of ``view_window_frames``): 96 frames of
#: 320x240 RGB are 22 MB, whatever the video's length.
STREAM_BATCH = 96
#: Query descriptors are searched at least this many at a time (or all of a shorter query at
#: once): against a large index the integer products cost a fixed ~1.5-2 ms per 65,536 stored
#: rows per search, whatever the rows searched, and less per row as more come (2 cores: 83-105 us
#: per row at 96 rows, 62-69 us at 256). 256 rows of 512 float32 are 0.5 MB.
SEARCH_ROWS = 256


def _work_size(info: MediaInfo, width: int) -> Optional[Tuple[int, int]]:
    if info.width <= 0 or info.height <= 0:
        return None
    h = max(2, int(round(width * info.height / info.width / 2)) * 2)
    return width, h


def sample_frames(path: PathLike, fps: float, params: VisualParams, info: Optional[MediaInfo] = None) -> Frames:
    """Frames of ``path`` at ``fps``, ``work_width_px`` wide (aspect kept), with exact times."""
    info = info or probe(path)
    return load_frames(path, fps, _work_size(info, params.work_width_px), info=info)


def noise_descriptors(model: str) -> Optional[np.ndarray]:
    """The noise set for score normalization (``model_assets/visual_noise_<model>.npz``), or None."""
    from fingerprint.storage import load_arrays

    path = ASSETS / f"visual_noise_{model}.npz"
    if not path.is_file():
        return None
    arrays, _ = load_arrays(path, "visual-noise", 1)
    return arrays["desc"].astype(np.float32)


@dataclass
class QueryDescriptors:
    """What a query's frames (or one batch of them) become before any index is searched.

    ``times_s`` ``(n,)``: time of each sampled frame; ``frame`` ``(k,)``: the frame each
    descriptor describes, counted from the query's first frame (a frame has one descriptor per
    view); ``desc`` ``(k, 512)`` centred unit descriptors; ``bias`` ``(k,)``: the
    score-normalization term of each; ``span_s``: the time one query frame stands for
    (1 / query_fps).
    """

    times_s: np.ndarray
    frame: np.ndarray
    desc: np.ndarray
    bias: np.ndarray
    span_s: float


class VisualMatcher:
    """Describes references and queries with one model and one set of parameters.

    >>> m = VisualMatcher()
    >>> ix = VisualIndex(m.params)
    >>> ix.add("R1", *m.describe_reference("ref.mp4"))     # doctest: +SKIP
    >>> hits = m.query("query.mp4", ix)                   # doctest: +SKIP
    """

    def __init__(self, params: VisualParams = VisualParams()):
        self.params = params
        self.descriptor = Descriptor(params.model, params.input_px)
        noise = noise_descriptors(params.model)
        if noise is None or len(noise) < params.noise_k:
            self.mean, self.noise = None, None
        else:
            # Unrelated frames share a common component in SSCD space (cosine ~0.3 between
            # unrelated synthetic scenes); removing the noise set's mean takes it to ~0.
            self.mean = noise.mean(axis=0) if params.center else None
            self.noise = self._center(noise)

    def _center(self, desc: np.ndarray) -> np.ndarray:
        if self.mean is None:
            return desc
        d = desc - self.mean
        return (d / np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-12)).astype(np.float32)

    def embed(self, frames: np.ndarray) -> np.ndarray:
        """Descriptors ``(n, 512)`` of frames, centred on the noise set's mean and L2-normalized."""
        return self._center(self.descriptor(frames))

    def embed_views(self, frames: np.ndarray, jobs) -> np.ndarray:
        """Centred descriptors of views of frames (see :meth:`Descriptor.embed_views`)."""
        return self._center(self.descriptor.embed_views(frames, jobs))

    def describe_reference(self, path: PathLike, info: Optional[MediaInfo] = None) -> Tuple[np.ndarray, np.ndarray]:
        """``(times_s (n,), descriptors (n, 512))`` of a reference sampled at ``ref_fps``. Frames
        stream through in batches: memory holds descriptors (2 KB per frame), not pictures."""
        info = info or probe(path)
        times, desc = [np.zeros(0)], [np.zeros((0, self.descriptor.dim), np.float32)]
        for b in prefetch(iter_frames(path, self.params.ref_fps, _work_size(info, self.params.work_width_px),
                                      batch=STREAM_BATCH, info=info)):
            times.append(b.times_s)
            desc.append(self.embed(b.frames))
        return np.concatenate(times), np.concatenate(desc)

    def _bias(self, desc: np.ndarray) -> np.ndarray:
        """beta x mean similarity to the ``noise_k`` nearest noise frames, per row."""
        if self.noise is None or len(desc) == 0:
            return np.zeros(len(desc), np.float32)
        s = desc @ self.noise.T
        k = self.params.noise_k
        top = -np.partition(-s, k - 1, axis=1)[:, :k]
        return self.params.beta * top.mean(axis=1)

    def describe_batches(self, path: PathLike, info: Optional[MediaInfo] = None) -> Iterator[QueryDescriptors]:
        """The query's descriptors over all views, one :class:`QueryDescriptors` per batch of
        ``STREAM_BATCH`` frames (frame numbers count from the query's first frame). The next
        batch decodes in a thread while this one is described."""
        p = self.params
        info = info or probe(path)
        return self.describe_frames(prefetch(iter_frames(path, p.query_fps, _work_size(info, p.work_width_px),
                                                         batch=STREAM_BATCH, info=info)))

    def describe_frames(self, batches: Iterable[Frames]) -> Iterator[QueryDescriptors]:
        """:meth:`describe_batches` of frames already decoded (batches of :class:`Frames`
        sampled at ``query_fps``, ``work_width_px`` wide)."""
        offset = 0
        for b in batches:
            f, d = self.describe_batch(b.frames)
            # the noise-set term per batch: the similarity matrix to the noise set stays small
            yield QueryDescriptors(b.times_s, f + offset, d, self._bias(d).astype(np.float32),
                                   1.0 / self.params.query_fps)
            offset += len(b.times_s)

    def describe_query(self, path: PathLike, info: Optional[MediaInfo] = None) -> QueryDescriptors:
        """All of :meth:`describe_batches` in one :class:`QueryDescriptors` (memory grows with the
        query's length: ~2 KB per frame and view)."""
        parts = list(self.describe_batches(path, info))
        if not parts:
            return QueryDescriptors(np.zeros(0), np.zeros(0, np.int64), np.zeros((0, self.descriptor.dim), np.float32),
                                    np.zeros(0, np.float32), 1.0 / self.params.query_fps)
        return QueryDescriptors(*(np.concatenate([getattr(q, k) for q in parts])
                                  for k in ("times_s", "frame", "desc", "bias")), span_s=parts[0].span_s)

    def search_many(self, batches: Iterable[QueryDescriptors], indexes: Sequence[VisualIndex]) -> List[Dict[str, Hits]]:
        """Per-reference hits of a query in each of ``indexes`` (shards), from its descriptors
        given batch by batch in frame order (:meth:`describe_batches`, or one
        :class:`QueryDescriptors` in a list). Batches are searched in every index ``SEARCH_ROWS``
        descriptors or more at a time and then dropped, so memory holds candidate matches, not a
        long query's descriptors. Each query frame keeps its
        ``top_k`` reference frames per view, similarity normalized by the noise set; per
        (query frame, reference frame), the best view counts; hits above ``sim_floor`` stay."""
        p = self.params
        found = [[] for _ in indexes]
        times, span_s = [], 1.0 / p.query_fps
        waiting: List[QueryDescriptors] = []  # batches not searched yet (SEARCH_ROWS)

        def search_waiting():
            frame, desc, bias = (np.concatenate([getattr(w, a) for w in waiting]) for a in ("frame", "desc", "bias"))
            waiting.clear()
            for cands, index in zip(found, indexes):
                if len(index) == 0:
                    continue
                if self.descriptor.device != "cpu":  # the GPU that describes the query searches too
                    index.use_device(self.descriptor.device)
                s, r = index.search(desc, p.top_k)
                fi = np.repeat(frame, s.shape[1])
                sims = (s - bias[:, None]).ravel()
                rows = r.ravel()
                ok = rows >= 0
                cands.append((fi[ok], sims[ok], rows[ok]))

        for qd in batches:
            times.append(qd.times_s)
            span_s = qd.span_s
            if len(qd.desc):
                waiting.append(qd)
            if sum(len(w.desc) for w in waiting) >= SEARCH_ROWS:
                search_waiting()
        if waiting:
            search_waiting()
        times_s = np.concatenate(times) if times else np.zeros(0)
        out = []
        for cands, index in zip(found, indexes):
            if not cands:
                out.append({})
                continue
            fi, sims, rows = (np.concatenate([c[i] for c in cands]) for i in range(3))
            # Best view per (query frame, reference frame).
            key = fi * (len(index) + 1) + rows
            order = np.lexsort((-sims, key))
            first = order[np.r_[True, key[order][1:] != key[order][:-1]]]
            fi, sims, rows = fi[first], sims[first], rows[first]
            out.append(index.hits(times_s[fi], sims, rows, span_s, p.sim_floor))
        return out

    def search(self, qd: QueryDescriptors, index: VisualIndex) -> Dict[str, Hits]:
        """:meth:`search_many` of one :class:`QueryDescriptors` in one index."""
        return self.search_many([qd], [index])[0]

    def query(self, path: PathLike, index: VisualIndex, info: Optional[MediaInfo] = None) -> Dict[str, Hits]:
        """Per-reference hits of a query file (:meth:`search_many` of :meth:`describe_batches`)."""
        if len(index) == 0:
            return {}
        return self.search_many(self.describe_batches(path, info), [index])[0]

    def describe_batch(self, frames: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """``(frame index (k,), centred descriptors (k, 512))`` of every view of a batch of query
        frames ``(m, h, w, 3)``."""
        p = self.params
        m = len(frames)
        # (frame indices, view) jobs: the full frame (and its mirror, if asked) everywhere; layout views
        # (bars, stacked cells, picture-in-picture) where a window of frames shows them, since a
        # copy with such a layout usually fills only part of the query.
        jobs = [(np.arange(m), v) for v in detect_views(frames[:0], flip=p.views and p.flip)]
        if p.views:  # overlapping windows that find the same box describe a frame once
            jobs += [(np.array(ix), v) for v, ix in layout_views(frames, p.view_window_frames).items()]
        return np.concatenate([idx for idx, _ in jobs]), self.embed_views(frames, jobs)
