"""Merging audio and visual segments, and the logistic score calibration."""
import numpy as np
import pytest

from fingerprint.errors import IndexFormatError
from fingerprint.types import Hits, Segment
from fusion import (FEATURES, MODALITIES, VISUAL_VOTE, Calibration, agree, find_segments, fit_logistic,
                    merge_modalities, segment_features)


def visual_line(q0, q1, r0, slope, seed=0, query_fps=2.0, ref_fps=1.0):
    """Visual-like hits: query frames at 2 fps matched to the nearest 1 fps reference frame."""
    rng = np.random.default_rng(seed)
    q = np.arange(q0, q1, 1 / query_fps)
    r = np.round((r0 + slope * (q - q0)) * ref_fps) / ref_fps
    w = rng.uniform(0.3, 0.6, q.size)
    return q, r, w


def vhits(*parts):
    q = np.concatenate([p[0] for p in parts])
    r = np.concatenate([p[1] for p in parts])
    w = np.concatenate([p[2] for p in parts])
    return Hits(q, r, w, np.full(q.size, 0.5), "visual")


def seg(qs, qe, rs, slope=1.0, source="audio", strength=30.0, n=100):
    return Segment(qs, qe, rs, rs + slope * (qe - qs), strength, slope, n, evidence={source: n},
                   strength={source: strength}, lengths={source: qe - qs})


@pytest.mark.parametrize("slope", [0.5, 1.0, 2.0])
def test_visual_line_at_speed(slope):
    rng = np.random.default_rng(3)
    noise = (rng.uniform(0, 60, 60), rng.uniform(0, 60, 60).round(), rng.uniform(0.0, 0.1, 60))
    segs = find_segments(vhits(visual_line(10, 22, 5, slope), noise), VISUAL_VOTE)
    assert segs, "copy not found"
    s = segs[0]
    assert s.slope == pytest.approx(slope, rel=0.05)
    assert s.query_start == pytest.approx(10, abs=0.6) and s.query_end == pytest.approx(22, abs=0.6)
    assert s.ref_start == pytest.approx(5, abs=0.75)


def test_two_visual_segments_in_one_pair():
    segs = find_segments(vhits(visual_line(2, 12, 30, 1.0), visual_line(20, 30, 0, 1.0, seed=1)), VISUAL_VOTE)
    got = sorted((round(s.query_start), round(s.ref_start)) for s in segs)
    assert got == [(2, 30), (20, 0)]


def test_agreeing_segments_merge_with_both_evidences():
    a = seg(10.0, 20.0, 5.0, strength=40.0, n=300)
    v = seg(10.4, 20.5, 5.5, source="visual", strength=6.0, n=20)
    out = merge_modalities([a], [v])
    assert len(out) == 1
    m = out[0]
    assert m.evidence == {"audio": 300, "visual": 20} and m.strength == {"audio": 40.0, "visual": 6.0}
    assert (m.query_start, m.query_end) == (10.0, 20.5)
    assert m.slope == 1.0  # the audio line's, over the union of the query spans
    assert (m.ref_start, m.ref_end) == (5.0, 15.5)


@pytest.mark.parametrize("v", [
    seg(10.0, 20.0, 8.0, source="visual"),               # 3 s off in reference time
    seg(10.0, 20.0, 5.0, slope=1.2, source="visual"),    # 20% faster: 2 s apart at the end
    seg(40.0, 50.0, 35.0, source="visual"),              # same line, far away in the query
])
def test_disagreeing_segments_stay_apart(v):
    a = seg(10.0, 20.0, 5.0)
    assert not agree(a, v)
    out = merge_modalities([a], [v])
    assert len(out) == 2 and {tuple(s.evidence) for s in out} == {("audio",), ("visual",)}


def test_visual_slope_error_within_tolerance_still_merges():
    # a 7.5 s visual line fitted 10% steep, within 0.6 s of the audio line over the shared span
    a = seg(10.5, 17.8, 4.9, strength=40.0, n=300)
    v = seg(10.5, 18.0, 4.35, slope=1.1, source="visual", strength=4.0, n=15)
    assert agree(a, v)
    assert len(merge_modalities([a], [v])) == 1


def test_each_visual_segment_merges_once():
    a1, a2 = seg(10, 20, 5, strength=50), seg(10.2, 19, 5.2, strength=20)
    v = seg(10, 20, 5, source="visual", strength=5)
    out = merge_modalities([a1, a2], [v])
    assert [sorted(s.evidence) for s in out] == [["audio", "visual"], ["audio"]]


def test_fit_logistic_recovers_known_weights():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4000, 3)) * [1.0, 2.0, 0.5] + [0, 1, 0]
    true_w, true_b = np.array([1.5, -0.5, 2.0]), 0.3
    p = 1 / (1 + np.exp(-(x @ true_w + true_b)))
    y = (rng.random(4000) < p).astype(float)
    mean, scale, w, b = fit_logistic(x, y, l2=1e-6)
    # back to raw units: z = (x - mean) / scale @ w + b
    raw_w = w / scale
    raw_b = b - (mean / scale) @ w
    np.testing.assert_allclose(raw_w, true_w, atol=0.15)
    assert raw_b == pytest.approx(true_b, abs=0.15)


def _toy_calibration():
    return Calibration({m: (np.zeros(len(FEATURES[m])), np.ones(len(FEATURES[m])),
                            np.linspace(0.1, 0.7, len(FEATURES[m])), -2.0) for m in MODALITIES}, {"note": "test"})


def test_calibration_round_trip_and_damage(tmp_path):
    cal = _toy_calibration()
    path = tmp_path / "cal.npz"
    cal.save(path)
    back = Calibration.load(path)
    segs = [seg(0, 10, 0), seg(0, 3, 0, source="visual", strength=2.0, n=6)]
    np.testing.assert_allclose(back.predict(segs), cal.predict(segs))
    assert back.info == {"note": "test"}
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(IndexFormatError):
        Calibration.load(path)


def test_noisy_or_of_the_modalities():
    cal = _toy_calibration()
    a, v = seg(0, 10, 0, strength=20.0), seg(0, 10, 0, source="visual", strength=3.0, n=20)
    both = merge_modalities([seg(0, 10, 0, strength=20.0)], [seg(0, 10, 0, source="visual", strength=3.0, n=20)])[0]
    pa, pv = cal.predict([a])[0], cal.predict([v])[0]
    assert cal.predict_modality([a], "visual")[0] == 0.0 and cal.predict_modality([v], "audio")[0] == 0.0
    assert cal.predict([both])[0] == pytest.approx(1 - (1 - pa) * (1 - pv))


def test_committed_calibration_orders_evidence_sensibly():
    cal = Calibration.load()
    weak_a, strong_a = seg(0, 10, 0, strength=12.0, n=40), seg(0, 10, 0, strength=80.0, n=300)
    weak_v, strong_v = (seg(0, 10, 0, source="visual", strength=1.5, n=8),
                        seg(0, 10, 0, source="visual", strength=8.0, n=20))
    both = merge_modalities([seg(0, 10, 0, strength=12.0, n=40)], [seg(0, 10, 0, source="visual", strength=1.5, n=8)])
    p = cal.predict([weak_a, strong_a, weak_v, strong_v, both[0]])
    assert p[1] > p[0] and p[3] > p[2]
    assert p[4] > max(p[0], p[2])  # two weak agreeing modalities beat either alone
    assert p[1] > 0.9 and p[3] > 0.9  # a clean 10 s copy is a confident match by either modality
    assert np.all((p > 0) & (p < 1))


def test_features_of_a_merged_segment():
    m = merge_modalities([seg(0, 10, 0, strength=20.0, n=100)], [seg(2, 8, 2, source="visual", strength=4.0, n=16)])
    fa = dict(zip(FEATURES["audio"], segment_features(m, "audio")[0]))
    fv = dict(zip(FEATURES["visual"], segment_features(m, "visual")[0]))
    assert fa["log_strength"] == pytest.approx(np.log1p(20.0)) and fa["log_len_s"] == pytest.approx(np.log(10.0))
    assert fv["mean_weight"] == pytest.approx(0.25) and fv["log_len_s"] == pytest.approx(np.log(6.0))
    assert segment_features([seg(0, 10, 0)], "visual").tolist() == [[0.0] * len(FEATURES["visual"])]


def test_fit_logistic_keeps_monotone_weights_non_negative():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(3000, 2))
    y = (rng.random(3000) < 1 / (1 + np.exp(-(2.0 * x[:, 0] - 1.0 * x[:, 1])))).astype(float)
    _, _, w_free, _ = fit_logistic(x, y, l2=1e-6)
    assert w_free[1] < -0.5
    _, _, w, _ = fit_logistic(x, y, l2=1e-6, nonneg=[1])
    assert w[1] == 0.0 and w[0] > 1.0
