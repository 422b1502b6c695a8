"""The VSC µAP: hand-computed values, an independent brute-force oracle, and bad-file errors."""
import math

import numpy as np
import pandas as pd
import pytest

from fingerprint.evaluate import (GT_COLUMNS, PRED_COLUMNS, EvaluationInputError, evaluate_files,
                                  evaluate_matches, read_matches)


def gt(*rows):
    return pd.DataFrame([list(r) for r in rows], columns=GT_COLUMNS)


def pred(*rows):
    return pd.DataFrame([list(r) for r in rows], columns=PRED_COLUMNS)


def uap(g, p):
    return evaluate_matches(g, p).uap


# Two 10 s copies in two pairs; one is always predicted exactly (score 1). The values below are
# the ones ../shared/VSC.md lists as checked with the official code.
TWO = gt(("Q1", "R1", 0, 10, 0, 10), ("Q2", "R2", 5, 15, 20, 30))
EXACT_Q2 = ("Q2", "R2", 5, 15, 20, 30, 1.0)


def test_perfect_is_one():
    assert uap(TWO, pred(("Q1", "R1", 0, 10, 0, 10, 2.0), EXACT_Q2)) == pytest.approx(1.0, abs=1e-12)


def test_one_box_half_covered():
    # first: P 1, R 1/2 -> 0.5; then Q1 half covered: P 1, R 15/20 -> +0.25
    assert uap(TWO, pred(("Q1", "R1", 0, 5, 0, 5, 0.5), EXACT_Q2)) == pytest.approx(0.75, abs=1e-12)


def test_box_twice_as_long_ranked_first():
    # first: P 10/20, R 1/2 -> 0.25; then: P 20/30, R 1 -> +1/3
    assert uap(TWO, pred(("Q1", "R1", 0, 20, 0, 20, 2.0), EXACT_Q2)) == pytest.approx(7 / 12, abs=1e-12)


def test_right_query_span_wrong_reference_span():
    # never credited (no overlap in reference time): first adds 0, then P 10/20, R 1/2
    assert uap(TWO, pred(("Q1", "R1", 0, 10, 40, 50, 2.0), EXACT_Q2)) == pytest.approx(0.25, abs=1e-12)


def test_false_positive_first_and_last():
    fp = ("Q3", "R1", 0, 10, 0, 10)
    exact = ("Q1", "R1", 0, 10, 0, 10)
    assert uap(TWO, pred(fp + (3.0,), exact + (2.0,), EXACT_Q2)) == pytest.approx(7 / 12, abs=1e-12)
    assert uap(TWO, pred(fp + (0.1,), exact + (2.0,), EXACT_Q2)) == pytest.approx(1.0, abs=1e-12)


def test_split_prediction_and_wrong_pairs():
    one = gt(("Q1", "R2", 4, 14, 10, 18))
    assert uap(one, pred(("Q1", "R2", 4, 8, 10, 14, 1.0), ("Q1", "R2", 8, 14, 14, 18, 2.0))) == pytest.approx(1.0)
    # the right boxes in the wrong pairs first: precision 1/3 when the right one comes
    p = pred(("Q2", "R2", 4, 14, 10, 18, 3.0), ("Q1", "R1", 4, 14, 10, 18, 2.0), ("Q1", "R2", 4, 14, 10, 18, 1.0))
    assert uap(one, p) == pytest.approx(1 / 3)


def test_crossed_boxes_get_no_credit():
    # VCSL paper fig. 4(f): each prediction overlaps a truth box on one axis only.
    g = gt(("Q1", "R1", 4, 14, 10, 18), ("Q1", "R1", 20, 28, 21, 29))
    assert uap(g, pred(("Q1", "R1", 4, 14, 21, 29, 1.0), ("Q1", "R1", 20, 28, 10, 18, 1.0))) == 0.0


def test_ties_form_one_group_whatever_the_order():
    g = gt(("Q1", "R1", 0, 10, 0, 10), ("Q2", "R1", 0, 10, 0, 10))
    rows = [("Q1", "R1", 0, 10, 0, 10, 1.0), ("Q3", "R1", 0, 10, 0, 10, 1.0), ("Q2", "R1", 0, 10, 0, 10, 0.5)]
    values = {uap(g, pred(*[rows[i] for i in perm])) for perm in ([0, 1, 2], [1, 0, 2], [2, 1, 0])}
    assert len(values) == 1
    # group 1: P 10/20, R 1/2 -> 0.25; group 2: P 20/30, R 1 -> +1/3
    assert values.pop() == pytest.approx(7 / 12)


def test_recall_at_precision_and_per_query():
    fp = ("Q3", "R1", 0, 10, 0, 10, 3.0)
    res = evaluate_matches(TWO, pred(fp, ("Q1", "R1", 0, 10, 0, 10, 2.0), EXACT_Q2))
    assert res.recall_at_precision(0.9) == 0.0
    assert res.recall_at_precision(0.6) == pytest.approx(1.0)
    pq = res.per_query.set_index("query_id")
    assert list(pq.index) == ["Q1", "Q2", "Q3"]
    assert pq.loc["Q3", "precision"] == 0.0 and math.isnan(pq.loc["Q3", "recall"])
    assert pq.loc["Q1", "recall"] == pytest.approx(1.0) and pq.loc["Q1", "top_score"] == 2.0


def test_zero_length_prediction_ranked_first_covers_nothing():
    assert uap(TWO, pred(("Q1", "R1", 3, 3, 3, 3, 9.0), ("Q1", "R1", 0, 10, 0, 10, 2.0), EXACT_Q2)) \
        == pytest.approx(1.0)


def test_no_predictions_is_zero():
    assert uap(TWO, pred()) == 0.0


# ---------------------------------------------------------------------------------------------
# an independent oracle: integer boxes, lengths counted cell by cell
# ---------------------------------------------------------------------------------------------

def _brute_uap(g: pd.DataFrame, p: pd.DataFrame, horizon: int = 60) -> float:
    def cells(rows, axis):
        m = np.zeros(horizon, bool)
        for r in rows:
            m[int(r[f"{axis}_start"]):int(r[f"{axis}_end"])] = True
        return m

    def overlaps(a, b):
        return (min(a["query_end"], b["query_end"]) > max(a["query_start"], b["query_start"])
                and min(a["ref_end"], b["ref_end"]) > max(a["ref_start"], b["ref_start"]))

    pairs = sorted(set(zip(g.query_id, g.ref_id)) | set(zip(p.query_id, p.ref_id)))
    gts = {k: [r for _, r in g.iterrows() if (r.query_id, r.ref_id) == k] for k in pairs}
    gt_len = {a: sum(cells(gts[k], a).sum() for k in pairs) for a in ("query", "ref")}
    total, recall = 0.0, 0.0
    for s in sorted(set(p.score), reverse=True):
        seen = p[p.score >= s]
        inter, tot = {}, {}
        for a in ("query", "ref"):
            inter[a] = tot[a] = 0
            for k in pairs:
                pk = [r for _, r in seen.iterrows() if (r.query_id, r.ref_id) == k]
                credited = [x for x in gts[k] if any(overlaps(x, y) for y in pk)]
                pm = cells(pk, a)
                inter[a] += (pm & cells(credited, a)).sum()
                tot[a] += pm.sum()
        r = math.sqrt(inter["query"] / gt_len["query"] * inter["ref"] / gt_len["ref"])
        prec = math.sqrt(inter["query"] / tot["query"] * inter["ref"] / tot["ref"]) if min(tot.values()) else 0.0
        total += prec * (r - recall)
        recall = r
    return total


@pytest.mark.parametrize("seed", range(12))
def test_agrees_with_brute_force_on_random_boxes(seed):
    rng = np.random.default_rng(seed)

    def box():
        qs, rs = rng.integers(0, 40, 2)
        return [int(qs), int(qs + rng.integers(1, 15)), int(rs), int(rs + rng.integers(1, 15))]

    qs_, rs_ = ["Q1", "Q2", "Q3"], ["R1", "R2"]
    g = gt(*[[qs_[rng.integers(0, 3)], rs_[rng.integers(0, 2)]] + box() for _ in range(rng.integers(1, 5))])
    p_rows = []
    for _ in range(rng.integers(1, 10)):
        if rng.random() < 0.5:  # near a truth box
            t = g.iloc[int(rng.integers(0, len(g)))]
            b = [max(0, int(t[c]) + int(rng.integers(-3, 4))) for c in GT_COLUMNS[2:]]
            b[1], b[3] = max(b[1], b[0]), max(b[3], b[2])
            p_rows.append([t.query_id, t.ref_id] + b + [float(rng.integers(0, 4))])
        else:
            p_rows.append([qs_[rng.integers(0, 3)], rs_[rng.integers(0, 2)]] + box() + [float(rng.integers(0, 4))])
    p = pred(*p_rows)
    assert uap(g, p) == pytest.approx(_brute_uap(g, p), abs=1e-9)


# ---------------------------------------------------------------------------------------------
# files
# ---------------------------------------------------------------------------------------------

def _write(tmp_path, name, text):
    f = tmp_path / name
    f.write_text(text)
    return f


GT_TEXT = "query_id,ref_id,query_start,query_end,ref_start,ref_end\nQ1,R1,0,10,0,10\n"


def test_files_in_any_column_order(tmp_path):
    g = _write(tmp_path, "gt.csv", "query_start,query_end,ref_start,ref_end,query_id,ref_id\n0,10,0,10,Q1,R1\n")
    p = _write(tmp_path, "p.csv", "score,query_id,ref_id,query_start,query_end,ref_start,ref_end\n1,Q1,R1,0,5,0,5\n")
    assert evaluate_files(g, p).uap == pytest.approx(0.5)


def test_header_only_predictions_score_zero(tmp_path):
    g = _write(tmp_path, "gt.csv", GT_TEXT)
    p = _write(tmp_path, "p.csv", ",".join(PRED_COLUMNS) + "\n")
    assert evaluate_files(g, p).uap == 0.0


@pytest.mark.parametrize("text, reason", [
    ("", "empty file"),
    ("query_id,ref_id,query_start,query_end,ref_start,ref_end\nQ1,R1,0,5,0,5\n", "missing column(s) score"),
    ("query_id,ref_id,query_start,query_end,ref_start,ref_end,score,extra\nQ1,R1,0,5,0,5,1,x\n",
     "unexpected column(s) extra"),
    ("query_id,ref_id,query_start,query_end,ref_start,ref_end,score\nQ1,R1,0,5,0,5,\n", "row 2: score is"),
    ("query_id,ref_id,query_start,query_end,ref_start,ref_end,score\nQ1,R1,-1,5,0,5,1\n",
     "row 2: query_start = -1.0 is negative"),
    ("query_id,ref_id,query_start,query_end,ref_start,ref_end,score\nQ1,R1,0,5,0,5,1\nQ1,R1,0,5,9,5,1\n",
     "row 3: ref_start 9.0 is after ref_end 5.0"),
    ("query_id,ref_id,query_start,query_end,ref_start,ref_end,score\nQ1,R1,0,five,0,5,1\n",
     "row 2: query_end is 'five', not a finite number"),
    ("query_id,ref_id,query_start,query_end,ref_start,ref_end,score\nQ1,R1,0,5,0,5,inf\n", "score is"),
])
def test_bad_prediction_files_fail_clearly(tmp_path, text, reason):
    g = _write(tmp_path, "gt.csv", GT_TEXT)
    p = _write(tmp_path, "p.csv", text)
    with pytest.raises(EvaluationInputError) as e:
        evaluate_files(g, p)
    assert str(e.value).startswith(str(p) + ": ") and reason in str(e.value)


def test_ground_truth_without_rows_or_file(tmp_path):
    p = _write(tmp_path, "p.csv", ",".join(PRED_COLUMNS) + "\n")
    g = _write(tmp_path, "gt.csv", ",".join(GT_COLUMNS) + "\n")
    with pytest.raises(EvaluationInputError, match="gt.csv: no rows"):
        evaluate_files(g, p)
    with pytest.raises(EvaluationInputError, match="no such file"):
        read_matches(tmp_path / "missing.csv")
