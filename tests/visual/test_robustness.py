"""A 10 s copy of a reference video inside a 40 s query is found under each edit of issue P2."""
import pytest

from fingerprint.synth_video import VIDEO_EDITS, copy_query, scene_video
from fusion import VISUAL_VOTE, find_segments
from visual import VisualIndex, VisualMatcher


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    d = tmp_path_factory.mktemp("visual")
    matcher = VisualMatcher()
    ref = scene_video(d / "ref.mp4", 30.0, seed=3)
    index = VisualIndex(matcher.params)
    index.add("R", *matcher.describe_reference(ref))
    return d, matcher, ref, index


def segments(matcher, index, query):
    hits = matcher.query(query, index).get("R")
    return [] if hits is None else find_segments(hits, VISUAL_VOTE)


@pytest.mark.parametrize("edit", list(VIDEO_EDITS))
def test_copy_found_within_one_second(setup, edit):
    d, matcher, ref, index = setup
    query, truth = copy_query(d, ref, edit, seed=3)
    segs = segments(matcher, index, query)
    assert segs, f"no segment under {edit}"
    best = segs[0]
    got = (best.query_start, best.query_end, best.ref_start, best.ref_end)
    for name, g, t in zip(("query_start", "query_end", "ref_start", "ref_end"), got, truth):
        assert abs(g - t) <= 1.0, f"{edit}: {name} {g:.2f} vs truth {t:.2f}"
    assert best.slope == pytest.approx(VIDEO_EDITS[edit][0], rel=0.1)
    assert all(s.score < best.score / 2 for s in segs[1:])


@pytest.mark.parametrize("seed", [70, 71, 72])
def test_unrelated_video_gives_no_segment(setup, seed):
    d, matcher, _, index = setup
    assert segments(matcher, index, scene_video(d / f"u{seed}.mp4", 40.0, seed=seed)) == []
