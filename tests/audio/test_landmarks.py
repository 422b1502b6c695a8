"""Landmark extraction: density, invariances, hash packing."""
import numpy as np
import pytest

from audio import AudioParams, extract_landmarks
from audio.landmarks import DF_BITS, DT_BITS, HASH_MAX, Landmarks, log_spectrogram, triplet_peaks
from fingerprint.synth import music
from fingerprint.types import AudioSignal
from tests.helpers import voice

P = AudioParams()


def sig(x, start_s=0.0):
    return AudioSignal(np.asarray(x, np.float32), P.sr_hz, start_s)


@pytest.mark.parametrize("kind", ["music", "speech"])
def test_density_is_80_to_150_hashes_per_second(kind):
    # ~12-14 anchors/s (20 peaks/s budget, fewer where the sound is sparse) x 10 triplets each
    x = music(30.0, P.sr_hz, seed=3) if kind == "music" else voice(30.0, P.sr_hz)
    lm = extract_landmarks(sig(x))
    assert 80 <= len(lm) / 30.0 <= 150


def test_silence_and_empty_give_no_landmarks():
    assert len(extract_landmarks(sig(np.zeros(5 * P.sr_hz)))) == 0
    assert len(extract_landmarks(sig(np.zeros(0)))) == 0


def test_full_scale_sine_is_0_dbfs_at_its_bin():
    t = np.arange(P.sr_hz) / P.sr_hz
    spec = log_spectrogram(np.sin(2 * np.pi * 1000.0 * t), P)
    k = int(round(1000.0 * P.n_fft / P.sr_hz))
    assert spec[k].mean() == pytest.approx(0.0, abs=0.5)


def test_volume_change_keeps_the_hashes():
    x = music(10.0, P.sr_hz, seed=4)
    a = extract_landmarks(sig(x)).hashes()
    b = extract_landmarks(sig(x * 0.1)).hashes()
    # Peaks are ranked on log magnitude, so only the -70 dBFS floor and float rounding differ.
    assert np.isin(b, a).mean() > 0.95 and abs(len(a) - len(b)) < 0.05 * len(a)


def test_times_follow_the_signal_start():
    x = music(10.0, P.sr_hz, seed=5)
    a, b = extract_landmarks(sig(x)), extract_landmarks(sig(x, start_s=2.5))
    np.testing.assert_allclose(b.t_s, a.t_s + 2.5)


def test_hash_packs_f1_df2_df3_dt2_dt3_with_dt3_in_the_low_bits():
    lm = Landmarks(t_s=np.zeros(2), f1=np.array([100.0, 100.0]), f2=np.array([90.0, 130.0]),
                   f3=np.array([120.0, 70.0]), dt2=np.array([10, 20]), dt3=np.array([15, 32]), hop_s=P.hop_s)
    h = lm.hashes()
    assert h.dtype == np.uint64
    assert int(h[0]) == (((((100 << DF_BITS) | (90 - 100 + 64)) << DF_BITS | (120 - 100 + 64)) << DT_BITS | 10)
                         << DT_BITS) | 15
    assert int(h[1]) & ((1 << DT_BITS) - 1) == 32 and (int(h[1]) >> DT_BITS) & ((1 << DT_BITS) - 1) == 20
    # Speed 1.25 stretches both dts (query hops -> reference hops); pitch 1.1 divides frequencies.
    h2 = int(lm.hashes(speed=1.25, pitch=1.1)[1])
    assert h2 & ((1 << DT_BITS) - 1) == 40 and (h2 >> DT_BITS) & ((1 << DT_BITS) - 1) == 25
    assert h2 >> (2 * DF_BITS + 2 * DT_BITS) == round(100 / 1.1)
    # Jitter probes shift one field by one hop and nothing else.
    assert int(lm.hashes(ddt2=1)[0]) == int(h[0]) + (1 << DT_BITS)
    assert int(lm.hashes(ddt3=-1)[0]) == int(h[0]) - 1
    # Fields out of range are marked, not wrapped into another hash.
    far = Landmarks(np.zeros(1), np.array([10.0]), np.array([20.0]), np.array([200.0]), np.array([10]),
                    np.array([12]), P.hop_s)
    assert far.hashes()[0] == HASH_MAX
    assert lm.hashes(speed=4.0)[1] == HASH_MAX  # dt3 = 128 hops does not fit 6 bits


def test_each_anchor_makes_a_triplet_of_every_two_of_its_first_fan_out_targets():
    from dataclasses import replace
    from itertools import combinations

    p4 = replace(P, fan_out=4)
    t = np.array([0, 1, 3, 5, 8, 9, 12, 60])  # peak 1 is too close to peak 0, peak 7 too far from all
    f = np.full(t.size, 50.0)
    i, j, k = triplet_peaks(t, f, p4)
    first = [(int(b), int(c)) for a, b, c in zip(i, j, k) if a == 0]
    assert first == list(combinations([2, 3, 4, 5], 2))  # the first 4 targets, two at a time: 6
    i5, j5, k5 = triplet_peaks(t, f, replace(P, fan_out=5))
    assert [(int(b), int(c)) for a, b, c in zip(i5, j5, k5) if a == 0] == list(combinations([2, 3, 4, 5, 6], 2))
    assert np.all(t[j] <= t[k]) and np.all(t[j] - t[i] >= P.dt_min_frames)
    assert 7 not in set(j.tolist()) | set(k.tolist())


def test_resampled_query_rehashes_to_the_reference_hashes():
    from fingerprint.synth import speed_edit

    x = music(20.0, P.sr_hz, seed=6)
    ref = set(extract_landmarks(sig(x)).hashes().tolist())
    y = speed_edit(x, P.sr_hz, "asetrate1.1")
    lm = extract_landmarks(sig(y))
    plain = np.isin(lm.hashes(), list(ref)).mean()
    undone = np.zeros(len(lm), bool)
    for a in (-1, 0, 1):       # with the index's one hop of tolerance on each dt
        for b in (-1, 0, 1):
            undone |= np.isin(lm.hashes(speed=1.1, pitch=1.1, ddt2=a, ddt3=b), list(ref))
    assert undone.mean() > 0.07 and undone.mean() > 10 * plain
