"""The VSC 2022 matching-track metric: micro-average precision over segments (µAP).

Definition (the challenge's, implemented here from it):

- All predictions of all queries are ranked together by score, highest first; predictions with
  equal scores form one group and are added together.
- A ground-truth box of a (query, reference) pair is *credited* once some prediction of the same
  pair overlaps it with positive length in query time and in reference time at once.
- Per pair and per axis (query, reference), predicted intervals are merged (union). After each
  group: precision_axis = |union(predictions) ∩ union(credited truth)| / |union(predictions)| and
  recall_axis = the same intersection / |union(all truth)|, each pooled over all pairs. The axes
  combine by geometric mean: P = sqrt(P_q * P_r), R = sqrt(R_q * R_r).
- µAP = sum over groups of P x (R - R_before).

It agrees with the official ``matching_eval.py`` on what that accepts; where the official code
crashes (empty file, extra or missing column, missing value) this raises :class:`EvaluationInputError`
with the file and the reason. A zero-length prediction is valid here: it covers nothing, and a
group that covers nothing adds nothing (the official code divides by zero when such a prediction
ranks first).

>>> gt = read_matches("ground_truth.csv", kind="ground truth")     # doctest: +SKIP
>>> pred = read_matches("full_matches.csv", kind="predictions")    # doctest: +SKIP
>>> evaluate_matches(gt, pred).uap                                 # doctest: +SKIP
0.8125
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Sequence, Tuple, Union

import numpy as np
import pandas as pd

from .errors import FingerprintError

GT_COLUMNS = ["query_id", "ref_id", "query_start", "query_end", "ref_start", "ref_end"]
PRED_COLUMNS = GT_COLUMNS + ["score"]
TIME_COLUMNS = GT_COLUMNS[2:]


class EvaluationInputError(FingerprintError):
    """A ground-truth or prediction file that cannot be scored; the message names file and reason."""

    def __init__(self, path, reason: str):
        self.path, self.reason = str(path), reason
        super().__init__(f"{path}: {reason}")


def validate_matches(df: pd.DataFrame, source: str, kind: str = "predictions") -> pd.DataFrame:
    """Check a table of matches against the challenge's format and return it with clean dtypes.

    ``kind``: ``"predictions"`` (the seven full_matches columns, in any order) or ``"ground truth"``
    (the six without ``score``; a ``score`` column is allowed and ignored). Times must be numbers
    >= 0 with start <= end; scores finite numbers. ``source`` names the data in error messages.
    Raises :class:`EvaluationInputError`.
    """
    want = PRED_COLUMNS if kind == "predictions" else GT_COLUMNS
    allowed = set(PRED_COLUMNS)
    cols = [str(c) for c in df.columns]
    missing = [c for c in want if c not in cols]
    extra = [c for c in cols if c not in allowed]
    if missing:
        raise EvaluationInputError(source, f"missing column(s) {', '.join(missing)}; "
                                           f"expected {','.join(want)}")
    if extra:
        raise EvaluationInputError(source, f"unexpected column(s) {', '.join(extra)}; "
                                           f"expected exactly {','.join(want)}")
    if len(set(cols)) != len(cols):
        raise EvaluationInputError(source, "a column name appears twice")
    out = pd.DataFrame({"query_id": df["query_id"], "ref_id": df["ref_id"]})
    for c in ("query_id", "ref_id"):
        bad = df[c].isna() | (df[c].astype(str).str.strip() == "")
        if bad.any():
            raise EvaluationInputError(source, f"row {int(np.flatnonzero(bad)[0]) + 2}: {c} is empty")
        out[c] = df[c].astype(str).str.strip()
    numeric = TIME_COLUMNS + (["score"] if kind == "predictions" else [])
    for c in numeric:
        vals = pd.to_numeric(df[c], errors="coerce")
        bad = vals.isna() | ~np.isfinite(vals.to_numpy(dtype=float, na_value=np.nan))
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise EvaluationInputError(source, f"row {i + 2}: {c} is {df[c].iloc[i]!r}, not a finite number")
        out[c] = vals.astype(float)
    for c in TIME_COLUMNS:
        neg = out[c] < 0
        if neg.any():
            i = int(np.flatnonzero(neg.to_numpy())[0])
            raise EvaluationInputError(source, f"row {i + 2}: {c} = {out[c].iloc[i]} is negative")
    for a in ("query", "ref"):
        rev = out[f"{a}_start"] > out[f"{a}_end"]
        if rev.any():
            i = int(np.flatnonzero(rev.to_numpy())[0])
            raise EvaluationInputError(source, f"row {i + 2}: {a}_start {out[f'{a}_start'].iloc[i]} is after "
                                               f"{a}_end {out[f'{a}_end'].iloc[i]}")
    return out.reset_index(drop=True)


def read_matches(path: Union[str, Path], kind: str = "predictions") -> pd.DataFrame:
    """Read and validate a full_matches-format CSV (``kind="predictions"``) or a ground-truth CSV
    (``kind="ground truth"``). A header-only file is valid (no rows); a file with no header at all
    is not. Raises :class:`EvaluationInputError` naming the file and the reason."""
    path = Path(path)
    if not path.is_file():
        raise EvaluationInputError(path, "no such file")
    if path.stat().st_size == 0:
        raise EvaluationInputError(path, "empty file (expected a CSV header line: "
                                         + ",".join(PRED_COLUMNS if kind == "predictions" else GT_COLUMNS) + ")")
    try:
        df = pd.read_csv(path, dtype={"query_id": str, "ref_id": str}, skipinitialspace=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as exc:
        raise EvaluationInputError(path, f"not a readable CSV ({str(exc).splitlines()[0] if str(exc) else exc})")
    return validate_matches(df, str(path), kind)


# ---------------------------------------------------------------------------------------------
# the metric
# ---------------------------------------------------------------------------------------------

def _union_length(intervals: Sequence[Tuple[float, float]]) -> float:
    if not intervals:
        return 0.0
    iv = sorted(intervals)
    total, (cs, ce) = 0.0, iv[0]
    for s, e in iv[1:]:
        if s <= ce:
            ce = max(ce, e)
        else:
            total += ce - cs
            cs, ce = s, e
    return total + (ce - cs)


def _intersection_length(a: Sequence[Tuple[float, float]], b: Sequence[Tuple[float, float]]) -> float:
    """|union(a) ∩ union(b)| = |A| + |B| - |A ∪ B|."""
    if not a or not b:
        return 0.0
    return _union_length(a) + _union_length(b) - _union_length(list(a) + list(b))


def _overlaps(p: Tuple[float, float, float, float], g: Tuple[float, float, float, float]) -> bool:
    dq = min(p[1], g[1]) - max(p[0], g[0])
    dr = min(p[3], g[3]) - max(p[2], g[2])
    return max(dq, 0.0) * max(dr, 0.0) > 0.0


class _Pair:
    """One (query, reference) pair: its truth boxes, the predictions added so far, and the
    intersection/total lengths per axis (0: query, 1: reference) they give now."""

    def __init__(self):
        self.gts: List[Tuple[float, float, float, float]] = []
        self.preds: List[Tuple[float, float, float, float]] = []
        self.credited: List[bool] = []
        self.inter = [0.0, 0.0]
        self.total = [0.0, 0.0]

    def gt_length(self, axis: int) -> float:
        return _union_length([(g[2 * axis], g[2 * axis + 1]) for g in self.gts])

    def add(self, box) -> Tuple[List[float], List[float]]:
        """Add a prediction; returns the change of (intersection, total) per axis."""
        self.preds.append(box)
        for i, g in enumerate(self.gts):
            if not self.credited[i] and _overlaps(box, g):
                self.credited[i] = True
        d_inter, d_total = [0.0, 0.0], [0.0, 0.0]
        for ax in (0, 1):
            p_iv = [(p[2 * ax], p[2 * ax + 1]) for p in self.preds]
            g_iv = [(g[2 * ax], g[2 * ax + 1]) for g, c in zip(self.gts, self.credited) if c]
            inter, total = _intersection_length(p_iv, g_iv), _union_length(p_iv)
            d_inter[ax], d_total[ax] = inter - self.inter[ax], total - self.total[ax]
            self.inter[ax], self.total[ax] = inter, total
        return d_inter, d_total


@dataclass
class MatchingResult:
    """µAP and the precision/recall curve (one point per score group that raised recall)."""

    uap: float
    precisions: np.ndarray
    recalls: np.ndarray
    scores: np.ndarray
    n_predictions: int
    n_ground_truth: int
    per_query: pd.DataFrame = field(default_factory=pd.DataFrame)

    def recall_at_precision(self, min_precision: float = 0.9) -> float:
        """The highest recall reached while precision is at least ``min_precision`` (0 if never)."""
        ok = self.precisions >= min_precision
        return float(self.recalls[ok].max()) if ok.any() else 0.0


def evaluate_matches(gt: pd.DataFrame, pred: pd.DataFrame, gt_source: str = "ground truth") -> MatchingResult:
    """µAP of predictions ``pred`` (full_matches columns) against ground truth ``gt`` (six
    columns), both as returned by :func:`validate_matches` / :func:`read_matches`.

    Returns a :class:`MatchingResult`; ``per_query`` has one row per query in either table:
    ``query_id, n_truth, n_predictions, top_score, precision, recall`` (precision and recall over
    all of that query's predictions, axes combined by geometric mean; NaN where undefined).
    Raises :class:`EvaluationInputError` when the ground truth has no rows (µAP is undefined).

    >>> gt = pd.DataFrame([["Q1", "R1", 0, 10, 0, 10]], columns=GT_COLUMNS)
    >>> pred = pd.DataFrame([["Q1", "R1", 0, 5, 0, 5, 1.0]], columns=PRED_COLUMNS)
    >>> evaluate_matches(gt, pred).uap
    0.5
    """
    if len(gt) == 0:
        raise EvaluationInputError(gt_source, "no rows: with nothing to find, µAP is undefined")
    pairs: Dict[Tuple[str, str], _Pair] = {}
    for row in gt.itertuples(index=False):
        p = pairs.setdefault((row.query_id, row.ref_id), _Pair())
        p.gts.append((row.query_start, row.query_end, row.ref_start, row.ref_end))
        p.credited.append(False)
    gt_total = [sum(p.gt_length(ax) for p in pairs.values()) for ax in (0, 1)]

    # Stable sort by descending score; ties are one group whatever their order.
    order = np.argsort(-pred["score"].to_numpy(float), kind="stable")
    scores = pred["score"].to_numpy(float)[order]
    qids, rids = pred["query_id"].to_numpy()[order], pred["ref_id"].to_numpy()[order]
    boxes = pred[TIME_COLUMNS].to_numpy(float)[order]
    inter, total = [0.0, 0.0], [0.0, 0.0]
    recall, uap = 0.0, 0.0
    curve_p, curve_r, curve_s = [], [], []
    i, n = 0, len(scores)
    while i < n:
        j = i
        while j < n and scores[j] == scores[i]:
            pair = pairs.setdefault((qids[j], rids[j]), _Pair())
            di, dt = pair.add(tuple(boxes[j]))
            for ax in (0, 1):
                inter[ax] += di[ax]
                total[ax] += dt[ax]
            j += 1
        new_recall = math.sqrt((inter[0] / gt_total[0]) * (inter[1] / gt_total[1]))
        precision = math.sqrt((inter[0] / total[0]) * (inter[1] / total[1])) if total[0] > 0 and total[1] > 0 \
            else 0.0
        gain = new_recall - recall
        uap += precision * gain
        recall = new_recall
        if gain > 0:
            curve_p.append(precision)
            curve_r.append(recall)
            curve_s.append(scores[i])
        i = j
    return MatchingResult(uap=uap, precisions=np.asarray(curve_p), recalls=np.asarray(curve_r),
                          scores=np.asarray(curve_s), n_predictions=n, n_ground_truth=len(gt),
                          per_query=_per_query(gt, pred, pairs))


def _per_query(gt: pd.DataFrame, pred: pd.DataFrame, pairs: Dict[Tuple[str, str], _Pair]) -> pd.DataFrame:
    rows = []
    for qid in sorted(set(gt["query_id"]) | set(pred["query_id"])):
        mine = [p for (q, _), p in pairs.items() if q == qid]
        inter = [sum(p.inter[ax] for p in mine) for ax in (0, 1)]
        total = [sum(p.total[ax] for p in mine) for ax in (0, 1)]
        truth = [sum(p.gt_length(ax) for p in mine) for ax in (0, 1)]
        sel = pred["query_id"] == qid
        rows.append({
            "query_id": qid,
            "n_truth": int((gt["query_id"] == qid).sum()),
            "n_predictions": int(sel.sum()),
            "top_score": float(pred.loc[sel, "score"].max()) if sel.any() else float("nan"),
            "precision": math.sqrt(inter[0] / total[0] * inter[1] / total[1]) if min(total) > 0 else float("nan"),
            "recall": math.sqrt(inter[0] / truth[0] * inter[1] / truth[1]) if min(truth) > 0 else float("nan"),
        })
    return pd.DataFrame(rows, columns=["query_id", "n_truth", "n_predictions", "top_score", "precision", "recall"])


def evaluate_files(ground_truth: Union[str, Path], predictions: Union[str, Path]) -> MatchingResult:
    """:func:`evaluate_matches` on two CSV files (validated by :func:`read_matches`)."""
    return evaluate_matches(read_matches(ground_truth, "ground truth"), read_matches(predictions, "predictions"),
                            str(ground_truth))
