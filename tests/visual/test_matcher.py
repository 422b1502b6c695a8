"""A query described once and searched in several indexes gives each index's own hits."""
import numpy as np
import pytest

from fingerprint.synth_video import scene_video
from visual import VisualIndex, VisualMatcher


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    d = tmp_path_factory.mktemp("matcher")
    a, b = scene_video(d / "A.mp4", 8.0, seed=21), scene_video(d / "B.mp4", 8.0, seed=22)
    m = VisualMatcher()
    shards = []
    for path in (a, b):
        ix = VisualIndex(m.params)
        ix.add(path.stem, *m.describe_reference(path))
        shards.append(ix)
    return m, a, shards


def same_hits(x, y):
    assert x.keys() == y.keys()
    for k in x:
        for f in ("query_t", "ref_t", "score", "span_s"):
            np.testing.assert_array_equal(getattr(x[k], f), getattr(y[k], f))


def test_search_many_equals_one_index_at_a_time(setup):
    m, query, shards = setup
    both = m.search_many(m.describe_batches(query), shards)
    assert len(both) == 2 and "A" in both[0]
    for got, ix in zip(both, shards):
        same_hits(got, m.query(query, ix))
    # the copy: query frames at time t meet reference frames at time ~t
    h = both[0]["A"]
    best = h.score > np.median(h.score)
    assert np.median(np.abs(h.ref_t[best] - h.query_t[best])) < 0.6


def test_descriptors_kept_whole_search_the_same(setup):
    m, query, shards = setup
    qd = m.describe_query(query)
    assert qd.desc.shape[0] == qd.frame.size == qd.bias.size and qd.frame.max() < qd.times_s.size
    same_hits(m.search(qd, shards[0]), m.query(query, shards[0]))


def test_a_matcher_on_a_device_searches_there_with_the_same_hits(setup, monkeypatch):
    # Descriptors computed on a torch device move the search there too (torch's CPU device
    # stands in for a GPU). Similarities may differ from numpy's in the last bits (summation
    # order), so scores are compared to rounding and the matched frames exactly.
    pytest.importorskip("torch")
    m, query, shards = setup
    qd = m.describe_query(query)
    want = m.search(qd, shards[0])
    assert shards[0].search_device is None
    monkeypatch.setattr(m.descriptor, "device", "cpu:0")
    try:
        got = m.search(qd, shards[0])
        assert shards[0].search_device == "cpu:0" and shards[0]._dev_rows is not None
    finally:
        shards[0].use_device(None)
    assert got.keys() == want.keys()
    for k in got:
        np.testing.assert_array_equal(got[k].ref_t, want[k].ref_t)
        np.testing.assert_array_equal(got[k].query_t, want[k].query_t)
        np.testing.assert_allclose(got[k].score, want[k].score, atol=1e-5)


def test_batches_are_searched_together_up_to_search_rows(setup, monkeypatch):
    # A search costs a fixed part per stored block whatever the rows searched: short batches
    # wait for SEARCH_ROWS rows (or the query's end) and are searched together, same hits.
    from visual import matcher

    m, query, shards = setup
    monkeypatch.setattr(matcher, "STREAM_BATCH", 8)  # 16 frames: two batches
    batches = list(m.describe_batches(query))
    assert len(batches) == 2
    rows_searched = []
    real = shards[0].search
    monkeypatch.setattr(shards[0], "search", lambda desc, k: rows_searched.append(len(desc)) or real(desc, k))
    together = m.search_many(batches, shards[:1])[0]
    assert rows_searched == [sum(len(b.desc) for b in batches)]
    monkeypatch.setattr(matcher, "SEARCH_ROWS", len(batches[0].desc))
    rows_searched.clear()
    apart = m.search_many(batches, shards[:1])[0]
    assert rows_searched == [len(b.desc) for b in batches]
    assert together.keys() == apart.keys() and together
    for k in together:
        np.testing.assert_array_equal(together[k].ref_t, apart[k].ref_t)
        np.testing.assert_array_equal(together[k].query_t, apart[k].query_t)
        np.testing.assert_allclose(together[k].score, apart[k].score, atol=1e-6)
