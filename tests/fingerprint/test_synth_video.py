"""Tests for fingerprint.synth_video: scene videos, the video edits and copy queries' ground truth.

Frames are decoded one at a time with ffmpeg (``-ss T -frames:v 1``) and compared as RGB arrays.
"""
from __future__ import annotations

import json
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from fingerprint.synth import music
from fingerprint.synth_video import VIDEO_EDITS, copy_query, edit_video, scene_video

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None or shutil.which("ffprobe") is None,
                                reason="ffmpeg/ffprobe not installed")


def probe(path: Path) -> dict:
    """ffprobe's format duration and streams, as ``{"duration": s, "video": {...}, "audio": {...}|None}``."""
    out = subprocess.run(["ffprobe", "-v", "error", "-show_entries",
                          "format=duration:stream=codec_type,codec_name,width,height,r_frame_rate,nb_frames",
                          "-of", "json", str(path)], stdout=subprocess.PIPE, check=True).stdout
    info = json.loads(out)
    streams = {s["codec_type"]: s for s in info["streams"]}
    return {"duration": float(info["format"]["duration"]), "video": streams.get("video"),
            "audio": streams.get("audio")}


def frame(path: Path, t: float, size=(320, 240)) -> np.ndarray:
    """The RGB frame shown at ``t`` seconds, float32 ``(h, w, 3)``."""
    raw = subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-ss", f"{t:.3f}", "-i", str(path), "-frames:v", "1",
                          "-f", "rawvideo", "-pix_fmt", "rgb24", "-"], stdout=subprocess.PIPE, check=True).stdout
    w, h = size
    assert len(raw) == w * h * 3, f"no frame at {t} s in {path}"
    return np.frombuffer(raw, np.uint8).reshape(h, w, 3).astype(np.float32)


def mad(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).mean())


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """A 10 s scene (seed 11) and three 3 s scenes of other seeds (for pip / stack2x2)."""
    d = tmp_path_factory.mktemp("synth_video")
    src = scene_video(d / "src.mp4", 10.0, seed=11)
    others = [scene_video(d / f"other{k}.mp4", 3.0, seed=21 + k) for k in range(3)]
    return d, src, others


# ---------------------------------------------------------------------------------------------
# scene_video
# ---------------------------------------------------------------------------------------------

def test_scene_video_duration_size_and_audio(tmp_path, clips):
    _, src, _ = clips
    p = probe(src)
    assert p["video"]["codec_name"] == "h264" and (p["video"]["width"], p["video"]["height"]) == (320, 240)
    assert p["video"]["r_frame_rate"] == "30/1" and int(p["video"]["nb_frames"]) == 300
    assert abs(p["duration"] - 10.0) <= 0.1
    assert p["audio"] is None

    out = scene_video(tmp_path / "a.mp4", 4.5, seed=5, size=(192, 144), audio=(music(5.0, 16000, seed=1), 16000))
    p = probe(out)
    assert (p["video"]["width"], p["video"]["height"]) == (192, 144)
    assert abs(p["duration"] - 4.5) <= 0.1
    assert p["audio"] is not None and p["audio"]["codec_name"] == "aac"


def test_scene_video_is_deterministic(tmp_path, clips):
    _, _, others = clips
    again = scene_video(tmp_path / "again.mp4", 3.0, seed=21)
    assert again.read_bytes() == others[0].read_bytes()


def test_seeds_give_different_content(clips):
    _, src, others = clips
    for t in (0.5, 1.5, 2.5):
        frames = [frame(p, t) for p in (src, *others)]
        for i in range(len(frames)):
            for j in range(i + 1, len(frames)):
                assert mad(frames[i], frames[j]) > 20, (t, i, j)


def test_frames_change_over_time(clips):
    _, src, _ = clips
    frames = [frame(src, t) for t in np.arange(0.5, 10.0, 1.0)]
    diffs = [mad(a, b) for a, b in zip(frames, frames[1:])]
    assert min(diffs) > 2.0, diffs      # never a still: pans, zooms and sprites move
    assert max(diffs) > 20.0, diffs     # and there are cuts between shots
    assert all(f.std() > 20 for f in frames)  # structured content, not flat colour


# ---------------------------------------------------------------------------------------------
# edits
# ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def edited(clips):
    """Every edit of the 10 s scene, made two at a time (each is a decode and an x264 process):
    edit name -> output path, or the exception it raised."""
    d, src, others = clips

    def run(edit):
        try:
            return edit_video(src, d / f"edit_{edit}.mp4", edit, seed=2, others=others)
        except Exception as e:  # reported by the edit's own test
            return e

    with ThreadPoolExecutor(2) as pool:
        return dict(zip(VIDEO_EDITS, pool.map(run, VIDEO_EDITS)))


@pytest.mark.parametrize("edit", list(VIDEO_EDITS))
def test_edit_video(clips, edited, edit):
    _, src, _ = clips
    speed = VIDEO_EDITS[edit][0]
    out = edited[edit]
    if isinstance(out, Exception):
        raise out
    p = probe(out)
    assert p["audio"] is None
    assert abs(p["duration"] - 10.0 / speed) <= 0.3, p["duration"]
    size = (160, 120) if edit == "half-size" else (320, 240)
    assert (p["video"]["width"], p["video"]["height"]) == size
    assert p["video"]["r_frame_rate"] == ("15/1" if edit == "fps15" else "30/1")
    assert int(p["video"]["nb_frames"]) == round(p["duration"] * (15 if edit == "fps15" else 30))
    mid = frame(out, 0.5 * p["duration"], size)  # playable: a frame decodes in the middle
    assert mid.std() > 5
    if edit in ("none", "speed0.5", "speed2"):  # query second t shows reference second t * speed
        for t in (1.2 / speed, 4.5 / speed):
            assert mad(frame(out, t), frame(src, t * speed)) < 12, t


def test_edit_video_rejects_unknown_edit_and_missing_others(clips):
    d, src, others = clips
    with pytest.raises(ValueError):
        edit_video(src, d / "x.mp4", "sepia")
    with pytest.raises(ValueError):
        edit_video(src, d / "x.mp4", "stack2x2", others=others[:1])


# ---------------------------------------------------------------------------------------------
# copy_query
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("edit", ["none"])
def test_copy_query_ground_truth(clips, tmp_path, edit):
    _, ref, _ = clips
    before_s, seg_s, after_s = 3.0, 6.0, 2.0
    speed = VIDEO_EDITS[edit][0]
    q, truth = copy_query(tmp_path, ref, edit, seed=4, ref_start_s=2.0, seg_s=seg_s, before_s=before_s,
                          after_s=after_s)
    assert truth == pytest.approx((before_s, before_s + seg_s / speed, 2.0, 2.0 + seg_s))
    p = probe(q)
    assert abs(p["duration"] - (before_s + seg_s / speed + after_s)) <= 0.2
    assert (p["video"]["width"], p["video"]["height"]) == (320, 240) and p["audio"] is None
    # Looking: 2 s of reference into the copy, the query shows the reference's frame ...
    assert mad(frame(q, truth[0] + 2.0 / speed), frame(ref, truth[2] + 2.0)) < 12
    # ... while just outside the copy it shows unrelated scenes.
    assert mad(frame(q, truth[0] - 0.5), frame(ref, truth[2] - 0.5)) > 20
    assert mad(frame(q, truth[1] + 0.5), frame(ref, truth[3])) > 20
