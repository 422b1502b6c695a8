"""Benchmark reports: µAP overall, and recall broken down by edit, audio policy and speed.

Reads a benchmark directory made by :mod:`fingerprint.benchmark` (its ``ground_truth.csv`` and
``query_edits.csv``) and one or more prediction CSVs; writes ``report.md`` and ``report.png``.

>>> write_report("bench", {"fused": "full_matches.csv"}, "bench/report")   # doctest: +SKIP
"""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Dict, List, Mapping, Tuple, Union

import numpy as np
import pandas as pd

from .evaluate import MatchingResult, evaluate_matches, read_matches

PathLike = Union[str, Path]


def found_mask(gt: pd.DataFrame, pred: pd.DataFrame) -> np.ndarray:
    """Per ground-truth row: whether a prediction of the same pair overlaps it in query and in
    reference time (what the VSC metric credits)."""
    out = np.zeros(len(gt), bool)
    by_pair = {k: v for k, v in pred.groupby(["query_id", "ref_id"])} if len(pred) else {}
    for i, g in enumerate(gt.itertuples()):
        p = by_pair.get((g.query_id, g.ref_id))
        if p is None:
            continue
        dq = np.minimum(p.query_end, g.query_end) - np.maximum(p.query_start, g.query_start)
        dr = np.minimum(p.ref_end, g.ref_end) - np.maximum(p.ref_start, g.ref_start)
        out[i] = bool(((dq > 0) & (dr > 0)).any())
    return out


def groups(bench_dir: PathLike) -> Tuple[pd.DataFrame, Dict[str, List[int]]]:
    """The ground truth and, per group name (``edit: blur``, ``audio: kept``, ``speed: <1``), the
    indices of its ground-truth rows. A segment with several edits counts in each."""
    d = Path(bench_dir)
    gt = read_matches(d / "ground_truth.csv", "ground truth")
    edits = pd.read_csv(d / "query_edits.csv", keep_default_na=False)
    edits = edits[edits.ref_id != ""].reset_index(drop=True)
    out: Dict[str, List[int]] = defaultdict(list)
    for i, e in enumerate(edits.itertuples()):
        for name in str(e.video_edits).split("+"):
            out[f"edit: {name}"].append(i)
        out[f"audio: {e.audio_policy}"].append(i)
        speed = float(e.speed)
        out["speed: 1.0" if speed == 1.0 else ("speed: <1" if speed < 1 else "speed: >1")].append(i)
    return gt, dict(sorted(out.items()))


def write_report(bench_dir: PathLike, predictions: Mapping[str, PathLike], out_dir: PathLike,
                 title: str = "") -> Dict[str, MatchingResult]:
    """Score each prediction file (label -> path) against the benchmark and write
    ``out_dir/report.md`` (tables) and ``out_dir/report.png`` (recall per group, one bar per label).
    Returns the :class:`MatchingResult` per label."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    gt, grp = groups(bench_dir)
    results, found = {}, {}
    for label, path in predictions.items():
        pred = read_matches(path, "predictions")
        results[label] = evaluate_matches(gt, pred)
        found[label] = found_mask(gt, pred)
    lines = [f"# {title or 'Benchmark report'}", "",
             f"{gt.query_id.nunique()} queries with a copy, {len(gt)} copied segments.", "",
             "| predictions | µAP | recall at precision 0.9 | rows | segments found |", "|---|---|---|---|---|"]
    for label, r in results.items():
        lines.append(f"| {label} | {r.uap:.3f} | {r.recall_at_precision(0.9):.3f} | {r.n_predictions} | "
                     f"{int(found[label].sum())}/{len(gt)} |")
    labels = list(predictions)
    lines += ["", "Segments found (a prediction of the pair overlaps the truth in both axes), by group:", "",
              "| group | segments | " + " | ".join(labels) + " |", "|---|---|" + "---|" * len(labels)]
    for name, idx in grp.items():
        lines.append(f"| {name} | {len(idx)} | " + " | ".join(f"{int(found[lab][idx].sum())}/{len(idx)}"
                                                              for lab in labels) + " |")
    (out / "report.md").write_text("\n".join(lines) + "\n")

    names = list(grp)
    fig, ax = plt.subplots(figsize=(7, 0.28 * len(names) + 1.6))
    h = 0.8 / max(len(labels), 1)
    ypos = np.arange(len(names))
    for k, lab in enumerate(labels):
        rec = [found[lab][grp[n]].mean() for n in names]
        ax.barh(ypos + k * h, rec, height=h, label=f"{lab} (µAP {results[lab].uap:.3f})")
    ax.set_yticks(ypos + h * (len(labels) - 1) / 2)
    ax.set_yticklabels([f"{n} ({len(grp[n])})" for n in names], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("share of copied segments found")
    ax.set_title(title or "Recall per edit, audio policy and speed", fontsize=10)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(out / "report.png", dpi=110)
    plt.close(fig)
    return results
