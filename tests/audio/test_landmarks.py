"""Landmark extraction: density, invariances, hash packing."""
import numpy as np
import pytest

from audio import AudioParams, extract_landmarks
from audio.landmarks import DF_BITS, DT_BITS, HASH_MAX, Landmarks, log_spectrogram
from fingerprint.synth import music
from fingerprint.types import AudioSignal
from tests.helpers import voice

P = AudioParams()


def sig(x, start_s=0.0):
    return AudioSignal(np.asarray(x, np.float32), P.sr_hz, start_s)


@pytest.mark.parametrize("kind", ["music", "speech"])
def test_density_is_30_to_60_hashes_per_second(kind):
    x = music(30.0, P.sr_hz, seed=3) if kind == "music" else voice(30.0, P.sr_hz)
    lm = extract_landmarks(sig(x))
    assert 30 <= len(lm) / 30.0 <= 60


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


def test_hash_packs_f1_df_dt_with_dt_in_the_low_bits():
    lm = Landmarks(t_s=np.zeros(2), f1=np.array([100.0, 100.0]), f2=np.array([90.0, 130.0]),
                   dt=np.array([10, 20]), hop_s=P.hop_s)
    h = lm.hashes()
    assert h[0] == (100 << (DF_BITS + DT_BITS)) | ((90 - 100 + 64) << DT_BITS) | 10
    assert h[1] & ((1 << DT_BITS) - 1) == 20
    # Speed 1.25 stretches dt (query hops -> reference hops); pitch 1.1 divides frequencies.
    h2 = lm.hashes(speed=1.25, pitch=1.1)
    assert h2[1] & ((1 << DT_BITS) - 1) == 25
    assert h2[1] >> (DF_BITS + DT_BITS) == round(100 / 1.1)
    # Fields out of range are marked, not wrapped into another hash.
    far = Landmarks(np.zeros(1), np.array([10.0]), np.array([200.0]), np.array([10]), P.hop_s)
    assert far.hashes()[0] == HASH_MAX


def test_resampled_query_rehashes_to_the_reference_hashes():
    from fingerprint.synth import speed_edit

    x = music(20.0, P.sr_hz, seed=6)
    ref = set(extract_landmarks(sig(x)).hashes().tolist())
    y = speed_edit(x, P.sr_hz, "asetrate1.1")
    lm = extract_landmarks(sig(y))
    plain = np.isin(lm.hashes(), list(ref)).mean()
    undone = np.isin(lm.hashes(speed=1.1, pitch=1.1), list(ref)).mean()
    assert undone > 0.1 and undone > 3 * plain
