"""The VSC-like benchmark generator: layout, formats, and ground truth consistent with the files."""
import numpy as np
import pandas as pd
import pytest

from fingerprint.benchmark import make_benchmark
from fingerprint.evaluate import read_matches
from fingerprint.media import load_frames, probe

META = ["video_id", "duration_sec", "frames_per_sec", "width", "height", "rn"]


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    d = tmp_path_factory.mktemp("bench")
    stats = make_benchmark(d, n_queries=4, n_refs=3, seed=5, positive_rate=0.5, max_duration_s=20.0)
    return d, stats


def test_layout_and_formats(bench):
    d, stats = bench
    qm, rm = pd.read_csv(d / "query_metadata.csv"), pd.read_csv(d / "reference_metadata.csv")
    assert list(qm.columns) == META and list(rm.columns) == META
    assert list(pd.read_csv(d / "query_subset.csv").columns) == ["video_id"]
    assert sorted(p.stem for p in (d / "query").glob("*.mp4")) == sorted(qm.video_id)
    assert sorted(p.stem for p in (d / "reference").glob("*.mp4")) == sorted(rm.video_id)
    assert all(v.startswith("Q") and len(v) == 7 for v in qm.video_id)
    assert all(v.startswith("R") and len(v) == 7 for v in rm.video_id)
    gt = read_matches(d / "ground_truth.csv", "ground truth")  # the evaluator's format checks
    assert list(pd.read_csv(d / "ground_truth.csv").columns) == ["query_id", "ref_id", "query_start", "query_end",
                                                                 "ref_start", "ref_end"]
    assert gt.query_id.nunique() == 2 and stats["positive_query_share"] == 0.5
    assert set(gt.ref_id) <= set(rm.video_id)


def test_ground_truth_fits_inside_the_videos(bench):
    d, _ = bench
    gt = pd.read_csv(d / "ground_truth.csv")
    qm = pd.read_csv(d / "query_metadata.csv").set_index("video_id")
    rm = pd.read_csv(d / "reference_metadata.csv").set_index("video_id")
    for g in gt.itertuples():
        q_dur = probe(d / "query" / f"{g.query_id}.mp4").duration_s
        assert q_dur == pytest.approx(qm.loc[g.query_id, "duration_sec"], abs=0.1)
        assert 0 <= g.query_start < g.query_end <= q_dur + 0.05
        assert 0 <= g.ref_start < g.ref_end <= rm.loc[g.ref_id, "duration_sec"] + 0.05
        assert g.query_end - g.query_start >= 1.0


def test_side_file_lists_edits_and_audio_policy(bench):
    d, _ = bench
    ed = pd.read_csv(d / "query_edits.csv", keep_default_na=False)
    assert set(ed.query_id) == set(pd.read_csv(d / "query_metadata.csv").video_id)
    assert set(ed.audio_policy) <= {"kept", "edited", "replaced", "absent"}
    copies = ed[ed.ref_id != ""]
    assert (copies.video_edits != "").all()
    for row in ed.itertuples():
        has_audio = probe(d / "query" / f"{row.query_id}.mp4").has_audio
        assert has_audio == (row.audio_policy != "absent"), row


def test_deterministic_for_a_seed(tmp_path):
    a = make_benchmark(tmp_path / "a", n_queries=2, n_refs=1, seed=9, positive_rate=0.5, max_duration_s=10.0)
    b = make_benchmark(tmp_path / "b", n_queries=2, n_refs=1, seed=9, positive_rate=0.5, max_duration_s=10.0)
    assert a == b
    for f in ("ground_truth.csv", "query_edits.csv", "query_metadata.csv"):
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes()
    for q in (tmp_path / "a" / "query").glob("*.mp4"):
        assert q.read_bytes() == (tmp_path / "b" / "query" / q.name).read_bytes()


def _thumbs(frames: np.ndarray, k: int) -> np.ndarray:
    """Grayscale k x k block means: (n, h//k, w//k) float."""
    g = frames.astype(np.float32).mean(axis=3)
    n, h, w = g.shape
    return g[:, :h // k * k, :w // k * k].reshape(n, h // k, k, w // k, k).mean(axis=(2, 4))


def test_ground_truth_times_point_at_the_same_picture(tmp_path):
    """Copies that are only re-encoded (and maybe sped up): a query frame inside a copy looks most
    like the reference frame the ground truth maps it to, among reference frames within +-1 s."""
    d = tmp_path / "b"
    make_benchmark(d, n_queries=3, n_refs=2, seed=11, positive_rate=1.0, max_duration_s=20.0, edit_pool=["none"])
    gt = pd.read_csv(d / "ground_truth.csv")
    assert len(gt) >= 3
    checked = 0
    for g in gt.itertuples():
        speed = (g.ref_end - g.ref_start) / (g.query_end - g.query_start)
        rinfo = probe(d / "reference" / f"{g.ref_id}.mp4")
        # where the reference picture sits inside the 320x240 query frame
        s = min(320 / rinfo.width, 240 / rinfo.height)
        cw, ch = int(round(rinfo.width * s / 2)) * 2, int(round(rinfo.height * s / 2)) * 2
        x0, y0 = (320 - cw) // 2, (240 - ch) // 2
        qf = load_frames(d / "query" / f"{g.query_id}.mp4", 10.0)
        rf = load_frames(d / "reference" / f"{g.ref_id}.mp4", 10.0, (cw, ch))
        q_th = _thumbs(qf.frames[:, y0 + 4:y0 + ch - 4, x0 + 4:x0 + cw - 4], 8)
        r_th = _thumbs(rf.frames[:, 4:ch - 4, 4:cw - 4], 8)
        for frac in (0.25, 0.5, 0.75):
            tq = g.query_start + frac * (g.query_end - g.query_start)
            tr = g.ref_start + (tq - g.query_start) * speed
            qi = int(np.argmin(np.abs(qf.times_s - tq)))
            near = np.flatnonzero(np.abs(rf.times_s - tr) <= 1.0)
            err = ((r_th[near] - q_th[qi]) ** 2).mean(axis=(1, 2))
            best_t = rf.times_s[near[int(np.argmin(err))]]
            assert abs(best_t - (g.ref_start + (qf.times_s[qi] - g.query_start) * speed)) <= 0.15 + 0.05 * speed, \
                (g, frac, best_t, tr)
            checked += 1
    assert checked >= 9


def test_from_a_source_directory(tmp_path):
    from fingerprint.errors import FingerprintError
    from fingerprint.synth import music
    from fingerprint.synth_video import scene_video

    src = tmp_path / "src"
    src.mkdir()
    scene_video(src / "a.mp4", 12.0, seed=501, audio=(music(12.0, 16000, seed=501), 16000))
    scene_video(src / "b.mp4", 12.0, seed=502, size=(384, 216))
    (src / "notes.txt").write_text("not a video")
    with pytest.raises(FingerprintError, match="need at least 3"):
        make_benchmark(tmp_path / "x", n_queries=1, n_refs=2, seed=1, source_dir=src)
    scene_video(src / "c.mp4", 10.0, seed=503)
    d = tmp_path / "b"
    make_benchmark(d, n_queries=2, n_refs=2, seed=1, positive_rate=1.0, max_duration_s=15.0, source_dir=src)
    rm = pd.read_csv(d / "reference_metadata.csv")
    assert (rm.duration_sec <= 12.0).all()
    refs = sorted((d / "reference").glob("*.mp4"))
    assert len(refs) == 2
    # one reference comes from a.mp4 (with music), the other from b.mp4 or c.mp4 (silent)
    assert sorted(probe(r).has_audio for r in refs) in ([False, True], [False, False])
    gt = read_matches(d / "ground_truth.csv", "ground truth")
    assert len(gt) >= 2 and set(gt.ref_id) <= set(rm.video_id)
