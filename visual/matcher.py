"""From a video file to per-reference visual hits.

reference: frames at ``ref_fps`` -> descriptors -> :class:`VisualIndex`.
query: frames at ``query_fps`` -> views -> descriptors -> normalized similarities to the index ->
best over views per (query frame, reference frame) -> :class:`fingerprint.types.Hits`.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, Optional, Tuple, Union

import numpy as np

from fingerprint.media import iter_frames, load_frames, prefetch, probe
from fingerprint.types import Frames, Hits, MediaInfo

from .index import VisualIndex
from .model import Descriptor
from .params import VisualParams
from .views import detect_views, gray

PathLike = Union[str, Path]
ASSETS = Path(__file__).resolve().parents[1] / "model_assets"
#: Frames decoded and described at a time (a multiple of ``view_window_frames``): 96 frames of
#: 320x240 RGB are 22 MB, whatever the video's length.
STREAM_BATCH = 96


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
    """What a query's frames become before any index is searched.

    ``times_s`` ``(n,)``: time of each sampled frame; ``frame`` ``(k,)``: the frame each
    descriptor describes (a frame has one descriptor per view); ``desc`` ``(k, 512)`` centred
    unit descriptors; ``bias`` ``(k,)``: the score-normalization term of each; ``span_s``: the
    time one query frame stands for (1 / query_fps).
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

    def describe_query(self, path: PathLike, info: Optional[MediaInfo] = None) -> QueryDescriptors:
        """The query's descriptors over all views (see :class:`QueryDescriptors`), computed once
        and searchable in any number of indexes (shards) with :meth:`search`. Frames stream
        through in batches of ``STREAM_BATCH``; the next batch decodes (in a thread) while this
        one is described."""
        p = self.params
        info = info or probe(path)
        return self.describe_frames(prefetch(iter_frames(path, p.query_fps, _work_size(info, p.work_width_px),
                                                         batch=STREAM_BATCH, info=info)))

    def describe_frames(self, batches: Iterable[Frames]) -> QueryDescriptors:
        """:meth:`describe_query` of frames already decoded (batches of :class:`Frames` sampled
        at ``query_fps``, ``work_width_px`` wide)."""
        times, frame, desc = [np.zeros(0)], [np.zeros(0, np.int64)], [np.zeros((0, self.descriptor.dim), np.float32)]
        bias = [np.zeros(0, np.float32)]
        offset = 0
        for b in batches:
            f, d = self.describe_batch(b.frames)
            frame.append(f + offset)
            desc.append(d)
            bias.append(self._bias(d))  # per batch: the similarity matrix to the noise set stays small
            times.append(b.times_s)
            offset += len(b.times_s)
        return QueryDescriptors(np.concatenate(times), np.concatenate(frame), np.concatenate(desc),
                                np.concatenate(bias).astype(np.float32), 1.0 / self.params.query_fps)

    def search(self, qd: QueryDescriptors, index: VisualIndex) -> Dict[str, Hits]:
        """Per-reference hits of described query frames: each frame's ``top_k`` reference frames
        over all views, similarity normalized by the noise set, kept above ``sim_floor``."""
        p = self.params
        if len(index) == 0 or len(qd.desc) == 0:
            return {}
        s, r = index.search(qd.desc, p.top_k)
        fi = np.repeat(qd.frame, s.shape[1])
        sims = (s - qd.bias[:, None]).ravel()
        rows = r.ravel()
        ok = rows >= 0
        fi, sims, rows = fi[ok], sims[ok], rows[ok]
        # Best view per (query frame, reference frame).
        key = fi * (len(index) + 1) + rows
        order = np.lexsort((-sims, key))
        first = order[np.r_[True, key[order][1:] != key[order][:-1]]]
        fi, sims, rows = fi[first], sims[first], rows[first]
        return index.hits(qd.times_s[fi], sims, rows, qd.span_s, p.sim_floor)

    def query(self, path: PathLike, index: VisualIndex, info: Optional[MediaInfo] = None) -> Dict[str, Hits]:
        """:meth:`search` of :meth:`describe_query`: per-reference hits of a query file."""
        if len(index) == 0:
            return {}
        return self.search(self.describe_query(path, info), index)

    def describe_batch(self, frames: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """``(frame index (k,), centred descriptors (k, 512))`` of every view of a batch of query
        frames ``(m, h, w, 3)``."""
        p = self.params
        m = len(frames)
        # (frame indices, view) jobs: the full frame and its mirror everywhere; layout views
        # (bars, stacked cells, picture-in-picture) where a window of frames shows them, since a
        # copy with such a layout usually fills only part of the query.
        jobs = [(np.arange(m), v) for v in detect_views(frames[:0], flip=p.views)]
        if p.views:
            w = p.view_window_frames
            g = gray(frames)  # once per batch, shared by the overlapping windows
            layout = {}  # crop box -> frames it applies to: overlapping windows that find the
            for start in range(0, max(m - w // 2, 1), w // 2):  # same box describe a frame once
                idx = np.arange(start, min(start + w, m))
                for v in detect_views(g[idx], flip=False):
                    if v.name != "full":
                        layout.setdefault(v, set()).update(idx.tolist())
            jobs += [(np.array(sorted(ix)), v) for v, ix in layout.items()]
        return np.concatenate([idx for idx, _ in jobs]), self.embed_views(frames, jobs)
