"""What the visual index finds at scale: edited copies of query frames planted among synthetic
reference frames, searched exactly, with the projected search and with annoy.

    python scripts/visual_recall.py [--hours 100 1000] [--methods exact projected:64 projected:128 annoy:5000]
                                    [--copy-cos real] [--draw independent] [--work bench_data --seed 2]
                                    [--json out.json]

The reference frames are drawn like the real index's, from the descriptors of the generated
benchmark's references (seed 2, made by ``make bench-matching`` or ``make bench`` if missing):
``--draw independent`` (the default, as in ``scripts/bench_speed.py``) draws each dimension on its
own with their per-dimension mean and spread, so the frames are evenly spread around the mean, with
no preferred directions (the worst case for an inverted file's cells); ``--draw covariance`` draws
them with their full covariance, so the frames crowd into the directions real descriptors share
(``bench_speed._frame_draw``). 200 of them are replaced by copies of
query frames at a cosine drawn from the benchmark's own copies (``--copy-cos real``: for each query
frame inside a ground-truth segment, its best view's similarity to the nearest frame of the copied
reference interval) or at a fixed cosine (``--copy-cos 0.7``). The query is ~60 s of the
benchmark's queries that hold no copy. Reported per size and method: the search time of the
query's descriptors (best of two) and how many planted copies are among the 10 nearest, overall
and for the weaker half of the copies. Methods: ``exact``, ``projected:DIMS[:SHORTLIST]``,
``ivf:PROBES[:SHORTLIST[:DIMS]]`` (the inverted-file search, ``ivf_probe`` cells per query row),
``annoy:SEARCH_K`` (its forest is built on every core, a benchmark shortcut: the product builds
with one thread, so that a forest does not depend on the machine; a search costs the same either
way). 1,000 h takes ~15 minutes and ~14 GB of RAM on 2 cores with annoy, less without.
"""
import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench_speed import _frame_draw, _mixed  # noqa: E402
from fingerprint.benchmark import make_benchmark  # noqa: E402
from fingerprint.media import probe  # noqa: E402
from fingerprint.pipeline import Library, list_media, video_id  # noqa: E402


def benchmark_library(work: Path, seed: int):
    """``(directory, Library)`` of the generated matching benchmark of ``seed`` under ``work``
    (as ``scripts/bench_matching.py`` makes it), generated and indexed first if missing."""
    d = work / f"test_seed{seed}"
    if not (d / "ground_truth.csv").is_file():
        make_benchmark(d, n_queries=80, n_refs=30, seed=seed, positive_rate=0.23)
    if not (d / "index").is_dir():
        lib = Library.create(d / "index")
        lib.add_files(list_media(d / "reference"))
        lib.save()
    return d, Library.open(d / "index")


def query_descriptors(d: Path, lib: Library, seconds: float = 60.0) -> np.ndarray:
    """Descriptors of ~``seconds`` of the benchmark's queries that hold no copy."""
    import pandas as pd

    vm = lib.visual_matcher()
    copied = set(pd.read_csv(d / "ground_truth.csv").query_id)
    descs, t = [], 0.0
    for q in [q for q in list_media(d / "query") if video_id(q) not in copied]:
        info = probe(q)
        qd = vm.describe_query(q, info=info)
        descs.append(qd.desc[qd.times_s[qd.frame] + t < seconds])
        t += info.duration_s
        if t >= seconds:
            break
    return np.concatenate(descs).astype(np.float32)


def copy_cosines(d: Path, lib: Library) -> np.ndarray:
    """Similarity of each copied query frame (best view) to the nearest frame of the reference
    interval it was copied from (1 s of slack each side), over the benchmark's ground truth."""
    import pandas as pd

    vm = lib.visual_matcher()
    vx = lib.visual
    vx._finalize()
    out = []
    gt = pd.read_csv(d / "ground_truth.csv")
    for qid, rows in gt.groupby("query_id"):
        q = next(p for p in list_media(d / "query") if video_id(p) == qid)
        qd = vm.describe_query(q)
        t = qd.times_s[qd.frame]
        for r in rows.itertuples():
            ref = vx._ref == vx._pos[r.ref_id]
            near = ref & (vx._t >= r.ref_start - 1) & (vx._t <= r.ref_end + 1)
            inside = (t >= r.query_start) & (t <= r.query_end)
            if not near.any() or not inside.any():
                continue
            sims = (qd.desc[inside] @ vx._desc[near].astype(np.float32).T).max(axis=1)
            frames = qd.frame[inside]
            out += [sims[frames == f].max() for f in np.unique(frames)]
    return np.asarray(out, np.float32)


def run(hours: float, lib: Library, qdesc: np.ndarray, methods, cosines: np.ndarray, rng,
        draw: str = "independent") -> dict:
    from visual import VisualIndex

    mu, mix = _frame_draw(lib.visual._desc.astype(np.float32), draw)
    n = int(hours * 3600 * lib.visual.params.ref_fps)
    n_plant = 200
    plant_q = rng.choice(len(qdesc), n_plant, replace=len(qdesc) < n_plant)
    plant_at = np.sort(rng.choice(n, n_plant, replace=False))
    plant_cos = rng.choice(cosines, n_plant)
    weak = plant_cos <= np.median(plant_cos)
    unit_q = qdesc / np.linalg.norm(qdesc, axis=1, keepdims=True)
    ix = VisualIndex(lib.visual.params)
    for i in range(0, n, 200_000):  # per 200k frames to bound the float32 temporaries
        m = min(200_000, n - i)
        d = _mixed(rng.normal(size=(m, mu.size)).astype(np.float32), mu, mix)
        d /= np.linalg.norm(d, axis=1, keepdims=True)
        for qi, at, c in zip(plant_q, plant_at, plant_cos):
            if i <= at < i + m:  # a unit vector at cosine c to the query frame
                noise = rng.normal(size=mu.size).astype(np.float32)
                noise -= (noise @ unit_q[qi]) * unit_q[qi]
                d[at - i] = c * unit_q[qi] + np.sqrt(1 - c ** 2) * noise / np.linalg.norm(noise)
        ix.add(f"S{i}", np.arange(m, dtype=np.float32), d)
    ix._finalize()
    row = {"hours": hours, "frames": n, "draw": draw, "copy_cos_median": float(np.median(plant_cos))}

    def found(rows):
        hit = np.array([at in set(rows[qi].tolist()) for qi, at in zip(plant_q, plant_at)])
        return {"copies_found": int(hit.sum()), "weak_found": int(hit[weak].sum()), "weak": int(weak.sum())}

    base = ix.params
    for spec in methods:
        name, *args = spec.split(":")
        if name == "annoy":
            ix.params = dataclasses.replace(base, large_search="annoy", annoy_search_k=int(args[0]))
            if ix._annoy is None:
                t0 = time.perf_counter()
                ix._annoy = ix._build_annoy(n_jobs=-1)
                row["annoy_build_s"] = time.perf_counter() - t0
        elif name == "projected":
            ix.params = dataclasses.replace(base, coarse_dims=int(args[0]),
                                            shortlist=int(args[1]) if len(args) > 1 else base.shortlist)
            ix._pcodes = None
            t0 = time.perf_counter()
            ix._projected_codes()
            row[f"{spec} setup_s"] = time.perf_counter() - t0
        elif name == "ivf":
            dims = int(args[2]) if len(args) > 2 else base.coarse_dims
            if ix._ivf is not None and ix.params.coarse_dims != dims:
                ix._ivf = None  # cells of another projection
            ix.params = dataclasses.replace(base, ivf_probe=int(args[0]), coarse_dims=dims,
                                            shortlist=int(args[1]) if len(args) > 1 else base.shortlist)
            if ix._ivf is None:
                t0 = time.perf_counter()
                ix._cells()
                row["ivf setup_s"] = time.perf_counter() - t0
        else:
            ix.params = base
        t = []
        for _ in range(2):
            t0 = time.perf_counter()
            _, rows = ix.search(qdesc, 10, method=name)
            t.append(time.perf_counter() - t0)
        row[spec] = {"search_s": min(t), **found(rows)}
        if name != "ivf":  # ivf keeps its cells for the next probe count
            ix._pcodes, ix._proj, ix._ivf = None, None, None  # memory for the next method
    return row


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hours", type=float, nargs="+", default=[100, 1000])
    ap.add_argument("--methods", nargs="+", default=["exact", "projected:64", "projected:128", "annoy:5000"])
    ap.add_argument("--copy-cos", default="real", help="'real' (the benchmark's copies) or a fixed cosine")
    ap.add_argument("--draw", choices=["independent", "covariance"], default="independent",
                    help="how the synthetic reference frames are drawn (see above)")
    ap.add_argument("--work", default="bench_data")
    ap.add_argument("--seed", type=int, default=2)
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    d, lib = benchmark_library(Path(a.work), a.seed)
    qdesc = query_descriptors(d, lib)
    cosines = copy_cosines(d, lib) if a.copy_cos == "real" else np.array([float(a.copy_cos)])
    print(f"{len(qdesc)} query descriptors; 200 copies planted per size, cosine: "
          + ", ".join(f"{p}th percentile {np.percentile(cosines, p):.2f}" for p in (10, 25, 50, 75, 90))
          + f" (of {len(cosines)})", flush=True)
    rng = np.random.default_rng(0)
    rows = []
    print("| reference hours | search | time for the query | copies among the 10 nearest | weaker half |\n"
          "|---|---|---|---|---|")
    for h in a.hours:
        row = run(h, lib, qdesc, a.methods, cosines, rng, a.draw)
        rows.append(row)
        for k, v in row.items():
            if isinstance(v, dict):
                print(f"| {h:g} | {k} | {v['search_s']:.2f} s | {v['copies_found']} / 200 | "
                      f"{v['weak_found']} / {v['weak']} |", flush=True)
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
