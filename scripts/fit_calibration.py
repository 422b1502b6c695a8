"""Fit the score calibration (model_assets/calibration.npz) on generated benchmarks.

    python scripts/fit_calibration.py [--seeds 1 --queries 70 --references 30] [--out model_assets/calibration.npz]

For each seed, a benchmark is generated under ``--work`` (kept between runs; positive rate 0.5 so
that both classes are well represented), its references indexed, and every candidate segment of
every query collected with its evidence features. Candidates are collected with the voting
thresholds halved (``FIT_AUDIO_VOTE``, ``FIT_VISUAL_VOTE``) so the model sees the chance
alignments just under the detection thresholds, not only the few above them. A candidate is a
positive when it overlaps a ground-truth segment of the same pair in query and in reference time
(what the VSC metric credits). A logistic model (fusion.calibration.fit_logistic, weights of the
evidence features kept >= 0) is fitted and saved. Seeds used for evaluation
(scripts/bench_matching.py: seed 2 and up) must not be used here.
"""
import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fingerprint.benchmark import make_benchmark  # noqa: E402
from fingerprint.pipeline import Library, QueryMatcher, list_media  # noqa: E402
from fusion import AUDIO_VOTE, FEATURES, MONOTONE, VISUAL_VOTE, Calibration, fit_logistic, segment_features  # noqa: E402
from dataclasses import replace  # noqa: E402

FIT_AUDIO_VOTE = replace(AUDIO_VOTE, min_hits=AUDIO_VOTE.min_hits / 2)
FIT_VISUAL_VOTE = replace(VISUAL_VOTE, min_hits=VISUAL_VOTE.min_hits / 2)


def ensure_benchmark(d: Path, seed: int, n_q: int, n_r: int, rate: float) -> Path:
    if not (d / "ground_truth.csv").is_file():
        print(f"generating {d} (seed {seed})", flush=True)
        make_benchmark(d, n_queries=n_q, n_refs=n_r, seed=seed, positive_rate=rate)
    return d


def ensure_index(d: Path) -> Library:
    ix = d / "index"
    if not (ix / "index.json").is_file():
        lib = Library.create(ix)
        lib.add_files(list_media(d / "reference"))
        lib.save()
    return Library.open(ix)


def label(segs, gt: pd.DataFrame) -> np.ndarray:
    y = np.zeros(len(segs))
    for i, s in enumerate(segs):
        g = gt[(gt.query_id == s.query_id) & (gt.ref_id == s.ref_id)]
        dq = np.minimum(g.query_end, s.query_end) - np.maximum(g.query_start, s.query_start)
        dr = np.minimum(g.ref_end, s.ref_end) - np.maximum(g.ref_start, s.ref_start)
        y[i] = float(((dq > 0) & (dr > 0)).any())
    return y


def collect(d: Path):
    lib = ensure_index(d)
    m = QueryMatcher(lib, audio_vote=FIT_AUDIO_VOTE, visual_vote=FIT_VISUAL_VOTE)
    gt = pd.read_csv(d / "ground_truth.csv")
    segs = []
    for q in list_media(d / "query"):
        segs += m.candidates(q)
    return segs, label(segs, gt)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[1])
    ap.add_argument("--queries", type=int, default=70)
    ap.add_argument("--references", type=int, default=30)
    ap.add_argument("--work", default="bench_data")
    ap.add_argument("--l2", type=float, default=1.0)
    ap.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "model_assets" / "calibration.npz"))
    a = ap.parse_args()
    xs, ys = [], []
    for seed in a.seeds:
        d = ensure_benchmark(Path(a.work) / f"train_seed{seed}", seed, a.queries, a.references, 0.5)
        segs, y = collect(d)
        xs.append(segment_features(segs))
        ys.append(y)
        print(f"seed {seed}: {len(segs)} candidates, {int(y.sum())} positive", flush=True)
    x, y = np.vstack(xs), np.concatenate(ys)
    if y.min() == y.max():
        sys.exit("need both positive and negative candidates to fit")
    mean, scale, w, b = fit_logistic(x, y, a.l2, nonneg=[FEATURES.index(f) for f in MONOTONE])
    info = {"seeds": a.seeds, "candidates": int(len(y)), "positives": int(y.sum()), "l2": a.l2,
            "script": "scripts/fit_calibration.py"}
    cal = Calibration(mean, scale, w, b, info)
    cal.save(a.out)
    p = 1 / (1 + np.exp(-(((x - mean) / scale) @ w + b)))
    print(json.dumps({**info, "weights": dict(zip(FEATURES, np.round(w, 3).tolist())), "bias": round(b, 3),
                      "train_accuracy": round(float(((p > 0.5) == y).mean()), 3)}, indent=2))


if __name__ == "__main__":
    main()
