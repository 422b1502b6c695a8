"""µAP of audio-only, visual-only and fused matching on a generated VSC-like benchmark.

    python scripts/bench_matching.py [--seed 2 --queries 80 --references 30] [--out docs/matching_benchmark.md]

Generates the benchmark under ``--work`` (kept between runs), indexes its references, matches every
query once (audio and visual segments are computed once and combined three ways), writes
``full_matches_{audio,visual,both}.csv`` next to the data, scores each with the VSC metric, and
prints a markdown report (also written to ``--out``): µAP, recall at precision 0.9, and recall per
video edit and per audio policy for the fused run. Calibration seeds (scripts/fit_calibration.py)
and evaluation seeds must differ.
"""
import argparse
import sys
import time
from collections import defaultdict
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fingerprint.benchmark import make_benchmark  # noqa: E402
from fingerprint.evaluate import evaluate_files  # noqa: E402
from fingerprint.pipeline import Library, QueryMatcher, list_media, write_matches  # noqa: E402


def found(gt_row, pred: pd.DataFrame) -> bool:
    p = pred[(pred.query_id == gt_row.query_id) & (pred.ref_id == gt_row.ref_id)]
    dq = p.query_end.clip(upper=gt_row.query_end) - p.query_start.clip(lower=gt_row.query_start)
    dr = p.ref_end.clip(upper=gt_row.ref_end) - p.ref_start.clip(lower=gt_row.ref_start)
    return bool(((dq > 0) & (dr > 0)).any())


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=2)
    ap.add_argument("--queries", type=int, default=80)
    ap.add_argument("--references", type=int, default=30)
    ap.add_argument("--positive-rate", type=float, default=0.23)
    ap.add_argument("--work", default="bench_data")
    ap.add_argument("--out", default=None, help="markdown file to write the report to")
    a = ap.parse_args()
    d = Path(a.work) / f"test_seed{a.seed}"
    if not (d / "ground_truth.csv").is_file():
        print(f"generating {d}", file=sys.stderr, flush=True)
        make_benchmark(d, n_queries=a.queries, n_refs=a.references, seed=a.seed, positive_rate=a.positive_rate)
    t0 = time.perf_counter()
    ix = d / "index"
    if not (ix / "index.json").is_file():
        lib = Library.create(ix)
        lib.add_files(list_media(d / "reference"))
        lib.save()
    t_index = time.perf_counter() - t0
    lib = Library.open(ix)
    matcher = QueryMatcher(lib)
    rows = {"audio": [], "visual": [], "both": []}
    t0 = time.perf_counter()
    for q in list_media(d / "query"):
        qid, per_ref = matcher.pair_segments(q)
        rows["audio"] += matcher.finish(matcher.merge(qid, {r: (a_, []) for r, (a_, _) in per_ref.items()}))
        rows["visual"] += matcher.finish(matcher.merge(qid, {r: ([], v) for r, (_, v) in per_ref.items()}))
        rows["both"] += matcher.finish(matcher.merge(qid, per_ref))
    t_match = time.perf_counter() - t0
    qmeta = pd.read_csv(d / "query_metadata.csv")
    rmeta = pd.read_csv(d / "reference_metadata.csv")
    gt = pd.read_csv(d / "ground_truth.csv")
    edits = pd.read_csv(d / "query_edits.csv", keep_default_na=False)
    lines = [f"Benchmark: `fingerprint make-benchmark --seed {a.seed} --queries {a.queries} --references "
             f"{a.references} --positive-rate {a.positive_rate}`: {len(qmeta)} queries "
             f"({gt.query_id.nunique()} with a copy, {len(gt)} copied segments), {len(rmeta)} references "
             f"({rmeta.duration_sec.sum() / 60:.1f} min).", "",
             "| evidence | µAP | recall at precision 0.9 | rows | segments found |", "|---|---|---|---|---|"]
    preds = {}
    for mod, segs in rows.items():
        out = d / f"full_matches_{mod}.csv"
        write_matches(segs, out)
        res = evaluate_files(d / "ground_truth.csv", out)
        preds[mod] = pd.read_csv(out)
        n_found = sum(found(g, preds[mod]) for g in gt.itertuples())
        lines.append(f"| {mod} | {res.uap:.3f} | {res.recall_at_precision(0.9):.3f} | {len(segs)} | "
                     f"{n_found}/{len(gt)} |")
    qmin = qmeta.duration_sec.sum() / 60
    lines += ["", f"Indexing {len(rmeta)} references took {t_index:.1f} s; matching took {t_match:.1f} s "
                  f"({t_match / qmin:.2f} s per query minute, both modalities, computed once for the three rows).",
              "", "Segments found (any prediction of the pair overlapping the truth in both axes), by edit "
                  "and by audio policy:", "",
              "| group | segments | audio | visual | both |", "|---|---|---|---|---|"]
    groups = defaultdict(list)
    for g, e in zip(gt.itertuples(), edits[edits.ref_id != ""].itertuples()):
        for name in str(e.video_edits).split("+"):
            groups[f"edit: {name}"].append(g)
        groups[f"audio: {e.audio_policy}"].append(g)
        speed = float(e.speed)
        groups["speed: 1.0" if speed == 1.0 else ("speed: <1" if speed < 1 else "speed: >1")].append(g)
    for name in sorted(groups):
        gs = groups[name]
        cells = [f"{sum(found(g, preds[m]) for g in gs)}/{len(gs)}" for m in ("audio", "visual", "both")]
        lines.append(f"| {name} | {len(gs)} | " + " | ".join(cells) + " |")
    report = "\n".join(lines) + "\n"
    print(report)
    if a.out:
        Path(a.out).write_text(report)


if __name__ == "__main__":
    main()
