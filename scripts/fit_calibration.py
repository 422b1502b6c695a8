"""Fit the score calibration (model_assets/calibration.npz) on generated benchmarks.

    python scripts/fit_calibration.py [--seeds 1 --queries 70 --references 30] [--out model_assets/calibration.npz]

For each seed, a benchmark is generated under ``--work`` (kept between runs; positive rate 0.5 so
that both classes are well represented), its references indexed, and every candidate segment of
every query collected with its evidence features. Candidates are collected with the voting
thresholds halved (``FIT_AUDIO_VOTE``, ``FIT_VISUAL_VOTE``) so the model sees the chance
alignments just under the detection thresholds, not only the few above them. A candidate is a
positive when it overlaps a ground-truth segment of the same pair in query and in reference time
(what the VSC metric credits). One logistic model per modality (fusion.calibration.fit_logistic,
weights of the evidence features kept >= 0) is fitted on that modality's own segments, before
merging; the models combine by noisy-OR at match time. Seeds used for evaluation
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
from fusion import (AUDIO_VOTE, FEATURES, MODALITIES, MONOTONE, VISUAL_VOTE, Calibration,  # noqa: E402
                    fit_logistic, segment_features)
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
    """Per modality: the segments of every query (unmerged) and their labels."""
    lib = ensure_index(d)
    m = QueryMatcher(lib, audio_vote=FIT_AUDIO_VOTE, visual_vote=FIT_VISUAL_VOTE)
    gt = pd.read_csv(d / "ground_truth.csv")
    segs = {mod: [] for mod in MODALITIES}
    for q in list_media(d / "query"):
        qid, per_ref = m.pair_segments(q)
        for rid, pair in per_ref.items():
            for mod, lst in zip(MODALITIES, pair):
                for s in lst:
                    s.query_id, s.ref_id = qid, rid
                    segs[mod].append(s)
    return {mod: (segs[mod], label(segs[mod], gt)) for mod in MODALITIES}


def pseudo_negatives(mod: str) -> np.ndarray:
    """Feature rows of segments at the (default) detection threshold: 1-3 s long, any speed."""
    vote = AUDIO_VOTE if mod == "audio" else VISUAL_VOTE
    rows = []
    for length in (1.0, 2.0, 3.0):
        for speed in (1.0, 0.8, 1.25, 0.6, 1.6):
            f = {"log_strength": np.log1p(vote.min_hits), "log_len_s": np.log(length),
                 "abs_log_speed": abs(np.log(speed)),
                 "mean_weight": vote.min_hits / max(length * 2.0, 1.0)}  # 2 query frames per second
            rows.append([f[k] for k in FEATURES[mod]])
    return np.asarray(rows)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[1])
    ap.add_argument("--queries", type=int, default=70)
    ap.add_argument("--references", type=int, default=30)
    ap.add_argument("--work", default="bench_data")
    ap.add_argument("--l2", type=float, default=1.0)
    ap.add_argument("--recollect", action="store_true", help="match the training queries again (else cached)")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "model_assets" / "calibration.npz"))
    a = ap.parse_args()
    xs = {mod: [] for mod in MODALITIES}
    ys = {mod: [] for mod in MODALITIES}
    for seed in a.seeds:
        d = ensure_benchmark(Path(a.work) / f"train_seed{seed}", seed, a.queries, a.references, 0.5)
        cache = d / "calibration_candidates.npz"  # features and labels (plain arrays) of the last collection
        if cache.is_file() and not a.recollect:
            with np.load(cache, allow_pickle=False) as z:
                got = {mod: (z[f"{mod}_x"], z[f"{mod}_y"]) for mod in MODALITIES}
        else:
            got = {mod: (segment_features(segs, mod), y) for mod, (segs, y) in collect(d).items()}
            np.savez(cache, **{f"{mod}_{k}": v for mod, (x, y) in got.items() for k, v in (("x", x), ("y", y))})
        for mod, (x, y) in got.items():
            xs[mod].append(x)
            ys[mod].append(y)
            print(f"seed {seed} {mod}: {len(y)} candidates, {int(y.sum())} positive", flush=True)
    models, report = {}, {}
    for mod in MODALITIES:
        # Pseudo-negatives pin the decision boundary at the detection threshold: a candidate with
        # just the minimum evidence, short, is taken as no better than chance. Synthesized
        # benchmarks give the visual matcher almost no chance alignments to learn from; at
        # VSC scale (40k references) there are many.
        xs[mod].append(pseudo_negatives(mod))
        ys[mod].append(np.zeros(len(xs[mod][-1])))
        x, y = np.vstack(xs[mod]), np.concatenate(ys[mod])
        if y.min() == y.max():
            sys.exit(f"{mod}: need both positive and negative candidates to fit")
        nonneg = [FEATURES[mod].index(f) for f in MONOTONE if f in FEATURES[mod]]
        mean, scale, w, b = fit_logistic(x, y, a.l2, nonneg=nonneg)
        models[mod] = (mean, scale, w, b)
        p = 1 / (1 + np.exp(-(((x - mean) / scale) @ w + b)))
        report[mod] = {"candidates": int(len(y)), "positives": int(y.sum()),
                       "weights": dict(zip(FEATURES[mod], np.round(w, 3).tolist())), "bias": round(b, 3),
                       "train_accuracy": round(float(((p > 0.5) == y).mean()), 3)}
    info = {"seeds": a.seeds, "l2": a.l2, "script": "scripts/fit_calibration.py",
            **{f"{m}_candidates": report[m]["candidates"] for m in MODALITIES},
            **{f"{m}_positives": report[m]["positives"] for m in MODALITIES}, "pseudo_negatives": 15}
    Calibration(models, info).save(a.out)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
