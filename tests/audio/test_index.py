"""The inverted index: lookups, the per-hash cap, saving and loading."""
import numpy as np
import pytest

from audio import AudioIndex, AudioParams, extract_landmarks
from audio.landmarks import Landmarks
from fingerprint.errors import IndexFormatError
from fingerprint.synth import music
from fingerprint.types import AudioSignal

P = AudioParams()


def lms(seed, dur=20.0, start_s=0.0):
    return extract_landmarks(AudioSignal(music(dur, P.sr_hz, seed=seed), P.sr_hz, start_s))


def test_query_finds_the_right_reference_at_the_right_offset():
    ix = AudioIndex()
    for i in range(5):
        ix.add(f"R{i}", lms(10 + i))
    q = extract_landmarks(AudioSignal(music(20.0, P.sr_hz, seed=12)[5 * P.sr_hz:], P.sr_hz, 0.0))
    hits = ix.query(q)
    best = max(hits, key=lambda k: hits[k].score.sum())
    assert best == "R2"
    offsets = hits["R2"].ref_t - hits["R2"].query_t
    assert np.median(offsets) == pytest.approx(5.0, abs=0.02)


def test_each_meeting_counts_once_whatever_hypotheses_find_it():
    ix = AudioIndex()
    lm = lms(1)
    ix.add("R", lm)
    once = ix.query(lm, speeds=[(1.0, 1.0)])["R"]
    twice = ix.query(lm, speeds=[(1.0, 1.0), (1.0, 1.0)])["R"]
    assert len(once) == len(twice) > len(lm) // 2
    np.testing.assert_array_equal(once.query_t, twice.query_t)


def test_common_hashes_are_capped():
    # 300 identical landmarks: one hash with 300 entries.
    same = Landmarks(t_s=np.arange(300) * 0.1, f1=np.full(300, 50.0), f2=np.full(300, 60.0),
                     dt=np.full(300, 10), hop_s=P.hop_s)
    q = Landmarks(np.array([1.0]), np.array([50.0]), np.array([60.0]), np.array([10]), P.hop_s)
    for cap, expect in ((200, 0), (400, 300)):
        ix = AudioIndex(AudioParams(max_hits_per_hash=cap))
        ix.add("R", same)
        got = ix.query(q, speeds=[(1.0, 1.0)])
        assert sum(len(h) for h in got.values()) == expect


def test_duplicate_reference_id_is_refused():
    ix = AudioIndex()
    ix.add("R", lms(1, 5.0))
    with pytest.raises(ValueError):
        ix.add("R", lms(2, 5.0))


def test_save_load_round_trip_gives_identical_hits(tmp_path):
    ix = AudioIndex()
    ix.add("A", lms(1))
    ix.add("B", lms(2))
    path = tmp_path / "audio.npz"
    ix.save(path)
    back = AudioIndex.load(path)
    assert back.ref_ids == ["A", "B"] and len(back) == len(ix)
    q = lms(2)
    a, b = ix.query(q), back.query(q)
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k].query_t, b[k].query_t)
        np.testing.assert_allclose(a[k].ref_t, b[k].ref_t)
    # References can be added to a loaded index and it saves again.
    back.add("C", lms(3))
    back.save(path)
    assert AudioIndex.load(path).ref_ids == ["A", "B", "C"]


def test_index_built_with_other_parameters_is_refused(tmp_path):
    ix = AudioIndex()
    ix.add("A", lms(1, 5.0))
    ix.save(tmp_path / "a.npz")
    with pytest.raises(IndexFormatError, match="other audio parameters"):
        AudioIndex.load(tmp_path / "a.npz", AudioParams(hop=256))
    # Query-only knobs may differ.
    assert AudioIndex.load(tmp_path / "a.npz", AudioParams(max_hits_per_hash=10)).ref_ids == ["A"]


def test_damaged_index_fails_clearly(tmp_path):
    ix = AudioIndex()
    ix.add("A", lms(1, 5.0))
    path = tmp_path / "a.npz"
    ix.save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(IndexFormatError) as err:
        AudioIndex.load(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)
