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
