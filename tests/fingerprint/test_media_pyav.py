"""PyAV (in-process decoding) against ffprobe, the ffmpeg command and decord: the same facts,
the same audio samples and the same frames; with non-reference frames skipped, exact frames
near each sample time.

The media is generated with ffmpeg (helpers shared with test_media.py).
"""
from __future__ import annotations

import numpy as np
import pytest

from fingerprint import media
from fingerprint.synth import write_wav
from fingerprint.types import AudioSignal
from tests.fingerprint.test_media import (ffmpeg, make_audio_m4a, make_av_mp4, make_colour_clip,
                                          make_video_only_mp4, sine)

pytestmark = pytest.mark.skipif(media._pyav() is None, reason="PyAV not installed")



def _both(monkeypatch, fn):
    monkeypatch.setenv(media.DECODER_ENV, "ffmpeg")
    old = fn()
    monkeypatch.setenv(media.DECODER_ENV, "pyav")
    return old, fn()


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict:
    d = tmp_path_factory.mktemp("pyav")
    bframes = d / "bframes.mp4"
    # x264 with its default B-frames (3, the middle one a reference) over a moving pattern, so
    # that skipping the non-reference ones shows
    ffmpeg("-f", "lavfi", "-i", "testsrc2=s=128x96:r=30:d=6", "-c:v", "libx264", "-preset", "medium",
           "-pix_fmt", "yuv420p", bframes)
    stereo = d / "stereo.m4a"  # 44.1 kHz stereo, 5 s: several of the resampler's 1 s pieces
    ffmpeg("-f", "lavfi", "-i", "anoisesrc=c=pink:r=44100:d=5", "-f", "lavfi", "-i", "sine=f=660:r=44100:d=5",
           "-filter_complex", "[0:a][1:a]join=inputs=2:channel_layout=stereo", "-c:a", "aac", stereo)
    return {"av_mp4": make_av_mp4(d / "av.mp4"), "video_only_mp4": make_video_only_mp4(d / "video.mp4"),
            "stereo_m4a": stereo,
            "audio_m4a": make_audio_m4a(d / "tone.m4a"),
            "sine_wav": write_wav(d / "sine.wav", sine(1000.0, 2.0, 16000), 16000),
            "colour_clip": make_colour_clip(d / "colours.mp4"), "bframe_clip": bframes}


@pytest.mark.parametrize("clip", ["av_mp4", "video_only_mp4", "audio_m4a", "sine_wav", "colour_clip", "bframe_clip"])
def test_pyav_probe_gives_ffprobes_facts(clip, clips, monkeypatch):
    path = clips[clip]
    old, new = _both(monkeypatch, lambda: media.probe(path))
    assert (old.decoder, new.decoder) == ("ffmpeg", "pyav")
    for f in ("has_video", "has_audio", "width", "height", "rotation_deg"):
        assert getattr(new, f) == getattr(old, f), f
    for f in ("duration_s", "fps", "video_start_s", "audio_start_s", "video_duration_s", "audio_duration_s"):
        assert getattr(new, f) == pytest.approx(getattr(old, f), abs=2e-3), f


def test_pyav_probe_reads_the_display_rotation(clips, tmp_path, monkeypatch):
    rotated = tmp_path / "rotated.mp4"
    ffmpeg("-i", clips["av_mp4"], "-c", "copy", "-metadata:s:v:0", "rotate=90", rotated)
    old, new = _both(monkeypatch, lambda: media.probe(rotated))
    assert (new.rotation_deg, new.width, new.height) == (old.rotation_deg, old.width, old.height) == (90, 240, 320)


@pytest.mark.parametrize("clip", ["av_mp4", "audio_m4a", "sine_wav", "stereo_m4a"])
@pytest.mark.parametrize("block_s", [media.AUDIO_BLOCK_S, 0.7])
def test_pyav_audio_is_ffmpegs(clip, block_s, clips, monkeypatch):
    path = clips[clip]

    def load():
        blocks = list(media.iter_audio(path, 8000, block_s=block_s))
        return AudioSignal(np.concatenate([b.samples for b in blocks]), 8000, blocks[0].start_s)
    old, new = _both(monkeypatch, load)
    assert new.samples.shape == old.samples.shape and new.start_s == old.start_s
    np.testing.assert_allclose(new.samples, old.samples, atol=1e-5)


def test_pyav_frames_without_skipping_are_decords(clips, monkeypatch):
    monkeypatch.setattr(media, "SKIP_NONREF", False)
    old, new = _both(monkeypatch, lambda: media.load_frames(clips["bframe_clip"], 2.0))
    np.testing.assert_array_equal(new.times_s, old.times_s)
    np.testing.assert_array_equal(new.frames, old.frames)


def test_pyav_skipping_nonreference_frames_gives_exact_frames_near_each_sample(clips, monkeypatch):
    """With B-frames skipped, each sample is the last decoded frame at or before its time: the
    same count as decord's, times at most two frames early, and each frame bit-identical to
    the full decode's frame of the same time."""
    monkeypatch.setattr(media, "SKIP_NONREF", True)
    old, new = _both(monkeypatch, lambda: media.load_frames(clips["bframe_clip"], 2.0))
    assert new.times_s.shape == old.times_s.shape == (12,)
    early = old.times_s - new.times_s
    assert early.min() >= -1e-9 and early.max() <= 2 / 30 + 1e-9, early
    assert (early > 1e-9).any(), "no frame skipped: the clip has no non-reference B-frames"
    monkeypatch.setattr(media, "SKIP_NONREF", False)
    every = media.load_frames(clips["bframe_clip"], 30.0)  # every frame, fully decoded
    for t, frame in zip(new.times_s, new.frames):
        i = int(np.argmin(np.abs(every.times_s - t)))
        assert abs(every.times_s[i] - t) < 1e-6
        np.testing.assert_array_equal(frame, every.frames[i])


def test_pyav_frames_resized_are_close_to_decords(clips, monkeypatch):
    monkeypatch.setattr(media, "SKIP_NONREF", False)
    old, new = _both(monkeypatch, lambda: media.load_frames(clips["bframe_clip"], 2.0, size=(64, 40)))
    assert new.frames.shape == old.frames.shape == (12, 40, 64, 3)
    assert np.abs(new.frames.astype(int) - old.frames).mean() < 4.0
