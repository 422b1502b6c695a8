"""What the visual index finds at scale: edited copies of query frames planted among synthetic
reference frames, searched with annoy at several ``annoy_search_k`` and exactly.

    python scripts/annoy_recall.py [--hours 100 1000] [--search-k 5000 20000 100000]
                                   [--work bench_data --seed 2] [--json out.json]

The reference frames are drawn like the real index's (per-dimension mean and spread of the
descriptors of the generated benchmark's references, seed 2, made by ``make bench-matching`` or
``make bench`` if missing), as in ``scripts/bench_speed.py``; 100 of them are replaced by copies
of query frames at cosine ``--copy-cos`` (0.7: a mid-strength edit). The query is ~60 s of the
benchmark's queries that hold no copy. Reported per size and ``search_k``: the search time of the
query's descriptors and how many planted copies are among the 10 nearest. The forest is built on
every core (the product builds with one thread, so that a forest does not depend on the machine;
a search costs the same either way). 1,000 h takes ~10 minutes and ~14 GB of RAM on 2 cores.
"""
import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fingerprint.benchmark import make_benchmark  # noqa: E402
from fingerprint.media import probe  # noqa: E402
from fingerprint.pipeline import Library, list_media, video_id  # noqa: E402


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


def run(hours: float, lib: Library, qdesc: np.ndarray, search_ks, copy_cos: float, rng) -> dict:
    from visual import VisualIndex

    real = lib.visual._desc.astype(np.float32)
    mu, sd = real.mean(axis=0), real.std(axis=0)
    n = int(hours * 3600 * lib.visual.params.ref_fps)
    plant_q = rng.choice(len(qdesc), 100, replace=len(qdesc) < 100)
    plant_at = np.sort(rng.choice(n, 100, replace=False))
    unit_q = qdesc / np.linalg.norm(qdesc, axis=1, keepdims=True)
    ix = VisualIndex(lib.visual.params)
    for i in range(0, n, 200_000):  # per 200k frames to bound the float32 temporaries
        m = min(200_000, n - i)
        d = rng.normal(size=(m, mu.size)).astype(np.float32) * sd + mu
        d /= np.linalg.norm(d, axis=1, keepdims=True)
        for qi, at in zip(plant_q, plant_at):
            if i <= at < i + m:  # a unit vector at cosine copy_cos to the query frame
                noise = rng.normal(size=mu.size).astype(np.float32)
                noise -= (noise @ unit_q[qi]) * unit_q[qi]
                d[at - i] = copy_cos * unit_q[qi] + np.sqrt(1 - copy_cos ** 2) * noise / np.linalg.norm(noise)
        ix.add(f"S{i}", np.arange(m, dtype=np.float32), d)
    t0 = time.perf_counter()
    ix._annoy = ix._build_annoy(n_jobs=-1)
    row = {"hours": hours, "frames": n, "annoy_build_s": time.perf_counter() - t0}

    def found(rows):
        return int(sum(at in set(rows[qi].tolist()) for qi, at in zip(plant_q, plant_at)))

    t0 = time.perf_counter()
    _, exact = ix.search(qdesc, 10, exact=True)
    row["exact"] = {"search_s": time.perf_counter() - t0, "copies_found": found(exact)}
    base = ix.params
    for k in search_ks:
        ix.params = dataclasses.replace(base, annoy_search_k=int(k))
        t = []
        for _ in range(2):
            t0 = time.perf_counter()
            _, rows = ix.search(qdesc, 10)
            t.append(time.perf_counter() - t0)
        row[f"search_k={k}"] = {"search_s": min(t), "copies_found": found(rows)}
    return row


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hours", type=float, nargs="+", default=[100, 1000])
    ap.add_argument("--search-k", type=int, nargs="+", default=[5000, 20000, 100000])
    ap.add_argument("--copy-cos", type=float, default=0.7)
    ap.add_argument("--work", default="bench_data")
    ap.add_argument("--seed", type=int, default=2)
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    d = Path(a.work) / f"test_seed{a.seed}"
    if not (d / "ground_truth.csv").is_file():
        make_benchmark(d, n_queries=80, n_refs=30, seed=a.seed, positive_rate=0.23)
    if not (d / "index").is_dir():
        lib = Library.create(d / "index")
        lib.add_files(list_media(d / "reference"))
        lib.save()
    lib = Library.open(d / "index")
    qdesc = query_descriptors(d, lib)
    print(f"{len(qdesc)} query descriptors; 100 copies at cosine {a.copy_cos} planted per size", flush=True)
    rng = np.random.default_rng(0)
    rows = []
    print("| reference hours | search | time for the query | copies among the 10 nearest |\n|---|---|---|---|")
    for h in a.hours:
        row = run(h, lib, qdesc, a.search_k, a.copy_cos, rng)
        rows.append(row)
        for k, v in row.items():
            if isinstance(v, dict):
                name = "exact" if k == "exact" else f"annoy, {k}"
                print(f"| {h:g} | {name} | {v['search_s']:.2f} s | {v['copies_found']} / 100 |", flush=True)
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
