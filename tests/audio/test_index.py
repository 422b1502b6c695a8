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


def _random_entries(n, seed=0, n_refs=50):
    from audio.landmarks import HASH_MAX

    rng = np.random.default_rng(seed)
    return (rng.integers(0, HASH_MAX, n).astype(np.uint32), rng.integers(0, n_refs, n).astype(np.uint32),
            rng.uniform(0, 3600, n).astype(np.float32))


def test_directory_lookup_equals_a_brute_force_lookup():
    """Every entry whose hash is within one of a query hash, and nothing else, at speed 1."""
    h, r, t = _random_entries(200_000, seed=1, n_refs=3)
    ix = AudioIndex.from_arrays(h, r, t, ["A", "B", "C"])
    q = lms(3, 5.0)
    got = ix.query(q, speeds=[(1.0, 1.0)])
    qh = q.hashes().astype(np.int64)
    want = {}
    for i, x in enumerate(qh):
        for e in np.flatnonzero(np.abs(h.astype(np.int64) - x) <= 1):
            want.setdefault(["A", "B", "C"][r[e]], set()).add((float(q.t_s[i]), float(t[e])))
    assert want and {k: set(zip(v.query_t.tolist(), v.ref_t.tolist())) for k, v in got.items()} == want


def test_from_arrays_sorts_unless_presorted():
    h, r, t = _random_entries(50_000, seed=2, n_refs=2)
    q = lms(4, 5.0)
    unsorted = AudioIndex.from_arrays(h, r, t, ["A", "B"]).query(q)
    order = np.lexsort((t, r, h))
    presorted = AudioIndex.from_arrays(h[order], r[order], t[order], ["A", "B"], presorted=True).query(q)
    assert unsorted.keys() == presorted.keys() and unsorted
    for k in unsorted:
        np.testing.assert_array_equal(unsorted[k].ref_t, presorted[k].ref_t)


def test_cap_grows_with_the_index_so_a_big_index_still_finds_copies():
    """In a big index every lookup meets many entries by chance; a fixed cap set for small
    indexes would skip them all. Scaled down: 4M random entries (6 per lookup on average) and a
    fixed cap of 5, as 180M entries (1,000 h) meet a cap of 200."""
    h, r, t = _random_entries(4_000_000, seed=3)
    ref = lms(5, 20.0)
    hh = ref.hashes()
    ok = hh < (1 << 21)
    ids = [f"N{i}" for i in range(50)] + ["R"]
    all_h = np.concatenate([h, hh[ok]])
    all_r = np.concatenate([r, np.full(int(ok.sum()), 50, np.uint32)])
    all_t = np.concatenate([t, ref.t_s[ok].astype(np.float32)])
    q = extract_landmarks(AudioSignal(music(20.0, P.sr_hz, seed=5)[5 * P.sr_hz:15 * P.sr_hz], P.sr_hz, 0.0))
    for ratio, found in ((0.0, False), (10.0, True)):
        ix = AudioIndex.from_arrays(all_h, all_r, all_t, ids, AudioParams(max_hits_per_hash=5, common_ratio=ratio))
        hits = ix.query(q, speeds=[(1.0, 1.0)])
        n_true = len(hits["R"]) if "R" in hits else 0
        assert (n_true > 0.3 * len(q)) == found, (ratio, n_true, len(q))
    best = max(hits, key=lambda k: hits[k].score.sum())
    assert best == "R"
    assert np.median(hits["R"].ref_t - hits["R"].query_t) == pytest.approx(5.0, abs=0.02)


def test_expand_union_is_every_entry_of_the_union_of_ranges_once():
    from audio.index import _expand_union

    rng = np.random.default_rng(7)
    q = rng.integers(0, 20, 300)
    lo = rng.integers(0, 500, 300)
    hi = lo + rng.integers(1, 15, 300)
    got_q, got_e = _expand_union(q, lo, hi)
    want = sorted({(int(a), int(e)) for a, start, end in zip(q, lo, hi) for e in range(start, end)})
    assert list(zip(got_q.tolist(), got_e.tolist())) == want


def test_min_hits_leaves_out_references_met_too_rarely():
    ix = AudioIndex()
    ix.add("R", lms(1))
    q = lms(1)
    all_hits = ix.query(q)
    n = len(all_hits["R"])
    assert "R" in ix.query(q, min_hits=n) and ix.query(q, min_hits=n + 1) == {}
