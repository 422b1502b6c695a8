"""µAP of audio-only, visual-only and fused matching on a generated VSC-like benchmark.

    python scripts/bench_matching.py [--seed 2 --queries 80 --references 30] [--out docs/matching_benchmark.md]
                                     [--distractor-hours 100 [--draw covariance]] [--visual large_search=annoy]

Generates the benchmark under ``--work`` (kept between runs), indexes its references, matches every
query once (audio and visual segments are computed once and combined three ways), writes
``full_matches_{audio,visual,both}.csv`` next to the data, scores each with the VSC metric, and
prints a markdown report (also written to ``--out``): µAP, recall at precision 0.9, and recall per
video edit and per audio policy for the fused run. Calibration seeds (scripts/fit_calibration.py)
and evaluation seeds must differ. ``--distractor-hours`` adds that many hours of synthetic
reference frames to the visual index (drawn like the real ones, as in scripts/bench_speed.py; no
query copies them), so that the visual search works at the scale of a large index; ``--draw
covariance`` draws them with the real descriptors' covariance instead of dimension by dimension.
"""
import argparse
import shutil
import sys
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fingerprint.benchmark import make_benchmark  # noqa: E402
from fingerprint.pipeline import Library, QueryMatcher, list_media, write_matches  # noqa: E402
from fingerprint.report import write_report  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=2)
    ap.add_argument("--queries", type=int, default=80)
    ap.add_argument("--references", type=int, default=30)
    ap.add_argument("--positive-rate", type=float, default=0.23)
    ap.add_argument("--work", default="bench_data")
    ap.add_argument("--out", default=None, help="markdown file to write the report to")
    ap.add_argument("--cheap", action="store_true",
                    help="match with the cheaper visual settings (queries at 1 fps, no views; main.py's "
                         "fallback under time pressure); CSVs are written as full_matches_*_cheap.csv")
    ap.add_argument("--visual", nargs="+", default=[], metavar="KEY=VALUE",
                    help="query-side visual settings to try (visual.VisualParams fields, e.g. query_fps=1 "
                         "flip=false); CSVs are written as full_matches_*_KEY-VALUE.csv")
    ap.add_argument("--distractor-hours", type=float, default=0,
                    help="hours of synthetic reference frames added to the visual index (none copied); "
                         "CSVs are written as full_matches_*_distractors-Nh.csv")
    ap.add_argument("--draw", choices=["independent", "covariance"], default="independent",
                    help="how the distractor frames are drawn: each dimension on its own (default) or with "
                         "the real descriptors' covariance (scripts/bench_speed.py's _frame_draw)")
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
    tag = ""
    if a.visual:
        from dataclasses import fields, replace

        from visual import VisualMatcher

        kinds = {f.name: f.type for f in fields(lib.visual.params)}
        over = {}
        for kv in a.visual:
            k, _, v = kv.partition("=")
            if k not in kinds or k in lib.visual.params.index_key():
                raise SystemExit(f"--visual {kv}: not a query-side VisualParams field")
            over[k] = v.lower() in ("1", "true", "yes") if kinds[k] in (bool, "bool") else type(
                getattr(lib.visual.params, k))(v)
        lib._vmatcher = VisualMatcher(replace(lib.visual.params, **over))
        lib.visual.params = replace(lib.visual.params, **over)  # search settings (large_search, ...) live there
        tag = "_" + "_".join(f"{k}-{v}" for k, v in over.items())
    if a.distractor_hours:
        import numpy as np
        from bench_speed import _synthetic_visual

        _synthetic_visual(lib, a.distractor_hours, np.random.default_rng(0), into=lib.visual, draw=a.draw)
        tag += f"_distractors-{a.distractor_hours:g}h" + ("_covariance" if a.draw == "covariance" else "")
    matcher = QueryMatcher(lib)
    rows = {"audio": [], "visual": [], "both": []}
    t0 = time.perf_counter()
    for q in list_media(d / "query"):
        qid, per_ref = matcher.pair_segments(q, cheap=a.cheap)
        rows["audio"] += matcher.finish(matcher.merge(qid, {r: (a_, []) for r, (a_, _) in per_ref.items()}))
        rows["visual"] += matcher.finish(matcher.merge(qid, {r: ([], v) for r, (_, v) in per_ref.items()}))
        rows["both"] += matcher.finish(matcher.merge(qid, per_ref))
    t_match = time.perf_counter() - t0
    qmeta = pd.read_csv(d / "query_metadata.csv")
    rmeta = pd.read_csv(d / "reference_metadata.csv")
    gt = pd.read_csv(d / "ground_truth.csv")
    paths = {}
    for mod, segs in rows.items():
        paths[mod] = d / f"full_matches_{mod}{'_cheap' if a.cheap else ''}{tag}.csv"
        write_matches(segs, paths[mod])
    out_dir = Path(a.out).parent if a.out else d / "report"
    write_report(d, paths, d / "report", title=f"Generated benchmark, seed {a.seed}")
    body = (d / "report" / "report.md").read_text().split("\n", 2)[2]  # drop the title line
    qmin = qmeta.duration_sec.sum() / 60
    report = (f"Benchmark: `fingerprint make-benchmark --seed {a.seed} --queries {a.queries} --references "
              f"{a.references} --positive-rate {a.positive_rate}`: {len(qmeta)} queries "
              f"({gt.query_id.nunique()} with a copy), {len(rmeta)} references "
              f"({rmeta.duration_sec.sum() / 60:.1f} min).\n\n" + body
              + f"\nIndexing {len(rmeta)} references took {t_index:.1f} s; matching took {t_match:.1f} s "
              f"({t_match / qmin:.2f} s per query minute, both modalities, computed once for the three rows)"
              + (", with the cheaper visual settings (1 fps, no views)" if a.cheap else "")
              + (f", with visual settings {' '.join(a.visual)}" if a.visual else "")
              + (f", with {a.distractor_hours:g} h of synthetic reference frames in the visual index"
                 + (" (drawn with the real descriptors' covariance)" if a.draw == "covariance" else "")
                 if a.distractor_hours else "") + ".\n\n"
              "![recall per group](matching_benchmark.png)\n")
    print(report)
    if a.out:
        Path(a.out).write_text(report)
        shutil.copyfile(d / "report" / "report.png", out_dir / "matching_benchmark.png")


if __name__ == "__main__":
    main()
