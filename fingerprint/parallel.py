"""Run the per-file work of ``index`` and ``match`` on several processes, locally or on Dask.

The work per file is a pure function of the file and the parameters: fingerprints and descriptors
of a reference (:func:`describe_reference`), the per-pair segments of a query
(:func:`query_segments`). Results come back in input order and are merged by the parent exactly as
the single-process run merges them, so the output is the same. Each worker runs the ONNX model on
one thread: processes, not threads, use the cores.

``workers=1`` and no Dask: a plain loop in this process. ``workers=N``: a pool of N local
processes. ``dask_scheduler="tcp://host:8786"``: tasks on an existing Dask cluster (its workers
need this package and read the same file paths). ``dask_local=N``: a Dask LocalCluster of N
processes. Dask is an optional extra: ``pip install .[dask]``.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Iterable, Iterator, List, Optional, Sequence, Tuple

from .errors import FingerprintError

#: Per worker process: the libraries opened for matching, by index paths.
_LIBRARIES = {}
_MODEL_THREADS_ENV = "FINGERPRINT_MODEL_THREADS"


def describe_reference(path: str, modalities: Sequence[str], visual_model: str,
                       info=None) -> Tuple[str, object]:
    """``(path, payload)``: payload is ``{"audio": Landmarks, "visual": (times, descriptors)}``
    (what the library's modalities need), or the reason (str) the file cannot be read.
    ``info``: the file's probe, if already known."""
    from .media import probe

    try:
        info = info or probe(path)
        out = {}
        if "audio" in modalities:
            from audio import fingerprint_file

            out["audio"] = fingerprint_file(path, info=info)
        if "visual" in modalities:
            out["visual"] = _visual_matcher(visual_model).describe_reference(path, info=info)
        return path, out
    except FingerprintError as exc:
        return path, getattr(exc, "reason", str(exc))


def query_segments(index_roots, path: str, modality: str, query_id: Optional[str] = None,
                   visual_search: str = "auto"):
    """``(path, (query_id, per_ref))`` as :meth:`QueryMatcher.pair_segments` gives, or
    ``(path, reason)`` when the file cannot be read. ``index_roots``: one index directory or
    a tuple of them (shards), opened with ``visual_search`` (:meth:`Library.open`)."""
    from .pipeline import Library, QueryMatcher

    roots = (index_roots,) if isinstance(index_roots, str) else tuple(index_roots)
    try:
        libs = _LIBRARIES.get((roots, visual_search))
        if libs is None:
            libs = _LIBRARIES[roots, visual_search] = [Library.open(r, visual_search) for r in roots]
        return path, QueryMatcher(libs, modality).pair_segments(path, query_id)
    except FingerprintError as exc:
        return path, getattr(exc, "reason", str(exc))


_MATCHERS = {}


def _visual_matcher(model: str):
    if model not in _MATCHERS:
        from visual import VisualMatcher, VisualParams

        _MATCHERS[model] = VisualMatcher(VisualParams(model=model))
    return _MATCHERS[model]


def _init_worker() -> None:
    os.environ[_MODEL_THREADS_ENV] = "1"
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass


def _call(func: Callable, args: tuple):
    _init_worker()
    return func(*args)


def ordered_map(func: Callable, jobs: Sequence[tuple], workers: int = 1, dask_scheduler: Optional[str] = None,
                dask_local: int = 0, progress: Optional[Callable[[str], None]] = None) -> Iterator:
    """``func(*job)`` for every job, yielded in job order, on the chosen executor (see the
    module docstring). ``progress`` gets the job's first argument's file name as each result comes."""
    def tick(job):
        if progress:
            progress(Path(str(job[1] if func is query_segments else job[0])).stem)

    if dask_scheduler or dask_local:
        try:
            from distributed import Client, LocalCluster
        except ImportError:
            raise FingerprintError("Dask is not installed: pip install 'fingerprint[dask]' "
                                   "(or pip install 'dask[distributed]')") from None
        cluster = None
        if dask_scheduler:
            client = Client(dask_scheduler)
        else:
            cluster = LocalCluster(n_workers=int(dask_local), threads_per_worker=1, processes=True,
                                   dashboard_address=None)
            client = Client(cluster)
        try:
            futures = [client.submit(_call, func, tuple(job), pure=False) for job in jobs]
            for job, fut in zip(jobs, futures):
                res = fut.result()
                tick(job)
                yield res
        finally:
            client.close()
            if cluster is not None:
                cluster.close()
        return
    if workers <= 1:
        for job in jobs:
            res = func(*job)
            tick(job)
            yield res
        return
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn"),
                             initializer=_init_worker) as ex:
        futures = [ex.submit(func, *job) for job in jobs]
        for job, fut in zip(jobs, futures):
            res = fut.result()
            tick(job)
            yield res


def describe_jobs(paths: Iterable, modalities: Sequence[str], visual_model: str) -> List[tuple]:
    return [(str(p), list(modalities), visual_model) for p in paths]
