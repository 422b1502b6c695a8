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
                     f3=np.full(300, 40.0), dt2=np.full(300, 10), dt3=np.full(300, 15), hop_s=P.hop_s)
    q = same.select(np.array([0]))
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
    return (rng.integers(0, HASH_MAX, n).astype(np.uint64), rng.integers(0, n_refs, n).astype(np.uint32),
            rng.uniform(0, 3600, n).astype(np.float32))


def _near(h, x):
    """Whether stored hashes ``h`` are within one hop of dt2 and of dt3 of hash ``x``."""
    from audio.landmarks import DT_BITS

    m = (1 << DT_BITS) - 1
    h, x = h.astype(np.int64), int(x)
    return ((h >> 2 * DT_BITS) == x >> 2 * DT_BITS) & (np.abs(((h >> DT_BITS) & m) - ((x >> DT_BITS) & m)) <= 1) \
        & (np.abs((h & m) - (x & m)) <= 1)


def test_directory_lookup_equals_a_brute_force_lookup():
    """Every entry whose hash is the query hash up to one hop of dt2 and of dt3, and nothing
    else, at speed 1. Random hashes rarely meet a real one, so a third of the entries are a
    query's hashes with each field jittered by -2..2 (the +-2 ones must not be found)."""
    h, r, t = _random_entries(200_000, seed=1, n_refs=3)
    q = lms(3, 5.0)
    qh = q.hashes()
    qh = qh[qh < (1 << 34)]
    rng = np.random.default_rng(4)
    pick = qh[rng.integers(0, qh.size, 100_000)].astype(np.int64)
    pick += rng.integers(-2, 3, pick.size) + (rng.integers(-2, 3, pick.size) << 6)
    h[:pick.size] = pick.astype(np.uint64)
    ix = AudioIndex.from_arrays(h, r, t, ["A", "B", "C"])
    got = ix.query(q, speeds=[(1.0, 1.0)])
    want = {}
    for i, x in enumerate(q.hashes()):
        if x >= (1 << 34):
            continue
        for e in np.flatnonzero(_near(h, x)):
            want.setdefault(["A", "B", "C"][r[e]], set()).add((float(q.t_s[i]), float(t[e])))
    assert want and {k: set(zip(v.query_t.tolist(), v.ref_t.tolist())) for k, v in got.items()} == want


def test_prepare_sorts_and_builds_the_directory_without_changing_a_hit():
    h, r, t = _random_entries(50_000, seed=5, n_refs=2)
    q = lms(6, 5.0)
    h[:40_000] = np.resize(q.hashes()[q.hashes() < (1 << 34)], 40_000)
    cold = AudioIndex.from_arrays(h, r, t, ["A", "B"])
    warm = AudioIndex.from_arrays(h, r, t, ["A", "B"])
    assert warm._dir is None and warm._pending
    assert warm.prepare() is warm and warm._dir is not None and not warm._pending
    want, got = cold.query(q), warm.query(q)
    assert want.keys() == got.keys() and want
    for k in want:
        np.testing.assert_array_equal(got[k].ref_t, want[k].ref_t)
        np.testing.assert_array_equal(got[k].score, want[k].score)


def test_from_arrays_sorts_unless_presorted():
    h, r, t = _random_entries(50_000, seed=2, n_refs=2)
    q = lms(4, 5.0)
    h[:40_000] = np.resize(q.hashes()[q.hashes() < (1 << 34)], 40_000)  # so that queries meet some
    unsorted = AudioIndex.from_arrays(h, r, t, ["A", "B"]).query(q)
    from audio.index import bucket_bits, bucket_of

    order = np.lexsort((t, r, h, bucket_of(h, bucket_bits(h.size))))
    presorted = AudioIndex.from_arrays(h[order], r[order], t[order], ["A", "B"], presorted=True).query(q)
    assert unsorted.keys() == presorted.keys() and unsorted
    for k in unsorted:
        np.testing.assert_array_equal(unsorted[k].ref_t, presorted[k].ref_t)


def test_unrelated_music_meets_few_landmarks_and_the_copy_stands_out():
    """Three-peak hashes: an unrelated 20 s query meets few of 40 unrelated references'
    landmarks: 0.05 meetings per query landmark per 10,000 stored ones over every speed
    hypothesis (the 21-bit pair hashes of index format 1 met 3.3 on the same music); and a 10 s
    copy stands out."""
    ix = AudioIndex()
    for i in range(40):
        ix.add(f"N{i}", lms(100 + i))
    ix.add("R", lms(5))
    n_ref = len(ix)
    unrelated = lms(300)
    chance = sum(len(h) for h in ix.query(unrelated).values())
    assert chance < 0.2 * len(unrelated) * n_ref / 1e4, (chance, len(unrelated), n_ref)
    q = extract_landmarks(AudioSignal(music(20.0, P.sr_hz, seed=5)[5 * P.sr_hz:15 * P.sr_hz], P.sr_hz, 0.0))
    hits = ix.query(q)
    best = max(hits, key=lambda k: hits[k].score.sum())
    assert best == "R"
    assert np.median(hits["R"].ref_t - hits["R"].query_t) == pytest.approx(5.0, abs=0.02)


def test_an_index_out_of_bucket_order_is_refused(tmp_path):
    from fingerprint.storage import load_arrays, save_arrays
    from audio.index import INDEX_KIND, INDEX_VERSION

    ix = AudioIndex()
    ix.add("A", lms(1))
    path = tmp_path / "a.npz"
    ix.save(path)
    arrays, meta = load_arrays(path, INDEX_KIND, INDEX_VERSION)
    order = np.argsort(arrays["hash"], kind="stable")  # plain hash order (as format 1 had)
    save_arrays(path, INDEX_KIND, INDEX_VERSION, {k: v[order] for k, v in arrays.items()}, meta)
    with pytest.raises(IndexFormatError, match="inconsistent"):
        AudioIndex.load(path)


def test_min_hits_leaves_out_references_met_too_rarely():
    ix = AudioIndex()
    ix.add("R", lms(1))
    q = lms(1)
    all_hits = ix.query(q)
    n = len(all_hits["R"])
    assert "R" in ix.query(q, min_hits=n) and ix.query(q, min_hits=n + 1) == {}


def test_looking_up_in_chunks_gives_the_same_hits(monkeypatch):
    import audio.index as index_mod

    ix = AudioIndex()
    for i in range(3):
        ix.add(f"R{i}", lms(20 + i))
    q = extract_landmarks(AudioSignal(music(20.0, P.sr_hz, seed=21)[2 * P.sr_hz:], P.sr_hz, 0.0))
    whole = ix.query(q)
    monkeypatch.setattr(index_mod, "QUERY_CHUNK", 97)  # many chunks, boundaries mid-anchor
    chunked = ix.query(q)
    assert whole.keys() == chunked.keys() and len(whole["R1"]) > 100
    for k in whole:
        for f in ("query_t", "ref_t", "score", "span_s"):
            np.testing.assert_array_equal(getattr(whole[k], f), getattr(chunked[k], f))


def test_lower_bound_searches_each_range_as_searchsorted_would():
    """The compiled binary search of a lookup, against np.searchsorted range by range: ranges
    empty, of one entry and of thousands, targets below, inside, equal to and above their values."""
    from audio.index import _lower_bound

    rng = np.random.default_rng(7)
    sizes = np.r_[0, 1, 2, 3000, rng.integers(0, 40, 500)]
    values = np.concatenate([np.sort(rng.integers(0, 50, n)) for n in sizes]).astype(np.uint64)
    lo = np.r_[0, np.cumsum(sizes)[:-1]].astype(np.int64)
    hi = lo + sizes
    for target in (rng.integers(-1, 52, sizes.size), np.full(sizes.size, 0), np.full(sizes.size, 60)):
        target = np.maximum(target, 0).astype(np.uint64)
        got = _lower_bound(values, lo, hi, target)
        want = [a + np.searchsorted(values[a:b], x, side="left") for a, b, x in zip(lo, hi, target)]
        np.testing.assert_array_equal(got, want)


def test_meetings_kernel_gives_each_landmark_entry_pair_once_in_order():
    """The union of a landmark's overlapping entry runs, against a set built pair by pair: runs
    nested, overlapping, touching, repeated, empty and over the cap, landmarks with none."""
    from audio.index import _meetings_kernel

    rng = np.random.default_rng(9)
    n_rows = 2000
    q_of_row = np.sort(rng.integers(0, 300, n_rows))
    lo = rng.integers(0, 5000, n_rows)
    hi = lo + rng.choice([0, 1, 3, 20, 80], n_rows)
    ref = rng.integers(0, 40, 5100).astype(np.uint32)
    t = rng.random(5100).astype(np.float32)
    cap, first = 50, 1000
    q, e, r, tt = _meetings_kernel(q_of_row, lo, hi, cap, first, ref, t)
    want = sorted({(int(a) + first, x) for a, b, c in zip(q_of_row, lo, hi) if 0 < c - b <= cap
                   for x in range(b, c)})
    assert len(want) > 5000
    assert list(zip(q.tolist(), e.tolist())) == want
    np.testing.assert_array_equal(r, ref[e])
    np.testing.assert_array_equal(tt, t[e])


def test_table_kernel_groups_by_reference_and_splits_votes():
    """Grouping and weights against a plain numpy statement of them: per reference (index order)
    its meetings in input order, weight 1 / sqrt(c_q * c_e), references under min_hits left out."""
    from audio.index import _table_kernel

    rng = np.random.default_rng(10)
    n, n_refs = 8000, 1000
    pairs = np.unique(np.c_[rng.integers(0, 300, n), rng.integers(0, 10_000, n)], axis=0)  # by (q, e)
    q, e = pairs[:, 0], pairs[:, 1]
    ref = e % n_refs  # an entry belongs to one reference
    t = (e * 0.01).astype(np.float32)
    for min_hits in (0, 1, 7, 10**9):
        gq, gt, weight, kept, starts = _table_kernel(ref, q, e, t, n_refs, min_hits)
        count = np.bincount(ref, minlength=n_refs)
        want_refs = np.flatnonzero((count > 0) & (count >= min_hits))
        np.testing.assert_array_equal(kept, want_refs)
        order = np.concatenate([np.flatnonzero(ref == r) for r in want_refs] + [np.zeros(0, np.int64)])
        np.testing.assert_array_equal(gq, q[order])
        np.testing.assert_array_equal(gt, t[order])
        np.testing.assert_array_equal(starts, np.r_[0, np.cumsum(count[want_refs])[:-1]][:len(want_refs)])
        c_q = np.array([np.sum((ref == ref[i]) & (q == q[i])) for i in order])
        c_e = np.array([np.sum(e == e[i]) for i in order])
        np.testing.assert_array_equal(weight, 1.0 / np.sqrt(c_q * c_e))
    assert len(_table_kernel(ref, q, e, t, n_refs, 7)[3]) > 100  # the case above was not empty
