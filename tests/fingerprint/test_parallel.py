"""index/match over worker processes and a Dask LocalCluster give the single-process output."""
from pathlib import Path

import numpy as np
import pytest

from fingerprint.pipeline import Library, QueryMatcher, list_media, write_matches
from fingerprint.synth import music
from fingerprint.synth_video import copy_query, scene_video


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    d = tmp_path_factory.mktemp("par")
    (d / "refs").mkdir()
    (d / "queries").mkdir()
    refs = [scene_video(d / "refs" / f"R{i}.mp4", 12.0, seed=600 + i, audio=(music(12.0, 16000, seed=600 + i), 16000))
            for i in range(3)]
    (d / "refs" / "broken.mp4").write_text("not a video")
    q, _ = copy_query(d / "tmp", refs[1], "hflip", seed=61, ref_start_s=2.0, seg_s=6.0, before_s=4.0, after_s=4.0)
    q.rename(d / "queries" / "Q1.mp4")
    scene_video(d / "queries" / "Q2.mp4", 10.0, seed=650)
    return d


def _build(d: Path, name: str, **kw):
    lib = Library.create(d / name)
    rep = lib.add_files(list_media(d / "refs"), **kw)
    lib.save()
    segs, mrep = QueryMatcher(Library.open(d / name)).match_files(list_media(d / "queries"), **kw)
    write_matches(segs, d / f"{name}.csv")
    return Library.open(d / name), rep, mrep


def test_workers_and_dask_give_the_same_output(media):
    pytest.importorskip("distributed")
    base, rep, mrep = _build(media, "single")
    assert rep.done == ["R0", "R1", "R2"] and [Path(p).name for p, _ in rep.skipped] == ["broken.mp4"]
    assert mrep.done == ["Q1", "Q2"]
    found = (media / "single.csv").read_text().splitlines()
    assert len(found) >= 2 and found[1].startswith("Q1,R1,")  # the copy is found
    for name, kw in (("pool", {"workers": 2}), ("dask", {"dask_local": 2})):
        lib, rep2, mrep2 = _build(media, name, **kw)
        assert (rep2.done, rep2.skipped, mrep2.done) == (rep.done, rep.skipped, mrep.done), name
        assert lib.ref_ids == base.ref_ids
        np.testing.assert_array_equal(lib.audio._hash, base.audio._hash)
        np.testing.assert_array_equal(lib.audio._t, base.audio._t)
        np.testing.assert_array_equal(lib.visual._desc, base.visual._desc)
        assert (media / f"{name}.csv").read_text() == (media / "single.csv").read_text(), name


def test_the_visual_search_mode_reaches_worker_processes(media, monkeypatch):
    from fingerprint import cli, parallel
    from visual import SEARCH_MODES

    if not (media / "single" / "index.json").exists():
        _build(media, "single")
    root = str(media / "single")
    q = str(media / "queries" / "Q1.mp4")
    per_mode = {}
    monkeypatch.setattr(parallel, "_LIBRARIES", {})
    for mode in SEARCH_MODES:
        matcher = QueryMatcher(Library.open(root, mode))
        assert matcher.visual_search == mode  # what match_files hands to its workers
        path, (qid, per_ref) = parallel.query_segments((root,), q, "visual", None, mode)
        params = parallel._LIBRARIES[(root,), mode][0].visual.params
        assert (params.large_search, params.exact_max_frames >= 2 ** 62) == \
            {"auto": ("projected", False), "exact": ("projected", True), "ivf": ("ivf", False),
             "annoy": ("annoy", False)}[mode]
        per_mode[mode] = {r: [s.query_start for s in segs[1]] for r, segs in per_ref.items()}
    assert per_mode["auto"].get("R1")  # the copy
    assert per_mode["auto"] == per_mode["exact"] == per_mode["ivf"] == per_mode["annoy"]  # 36 frames: exact in every mode
    match = next(a for a in cli.build_parser()._subparsers._group_actions[0].choices["match"]._actions
                 if a.dest == "visual_search")
    assert tuple(match.choices) == SEARCH_MODES
