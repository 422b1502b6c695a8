"""Tests for fingerprint.media: probe, audio decoding, frame sampling and error reporting.

All media is generated here with ffmpeg lavfi sources or numpy + fingerprint.synth.write_wav.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fingerprint import media
from fingerprint.errors import MediaError
from fingerprint.synth import write_wav

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None or shutil.which("ffprobe") is None,
                                reason="ffmpeg/ffprobe not installed")

# Colour of each one-second slice of the colour clip, and the RGB channel that dominates it.
COLOURS = ["red", "green", "blue", "red"]
DOMINANT = {"red": 0, "green": 1, "blue": 2}


# ---------------------------------------------------------------------------------------------
# helpers that build inputs
# ---------------------------------------------------------------------------------------------

def ffmpeg(*args: str) -> None:
    proc = subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *map(str, args)],
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")


def make_av_mp4(path: Path, duration_s: float = 2.0, size: str = "320x240", fps: int = 30,
                faststart: bool = False) -> Path:
    """H.264 test pattern + a 440 Hz AAC tone."""
    ffmpeg("-f", "lavfi", "-i", f"testsrc=s={size}:r={fps}:d={duration_s}",
           "-f", "lavfi", "-i", f"sine=f=440:d={duration_s}:sample_rate=16000",
           "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest",
           *(["-movflags", "+faststart"] if faststart else []), path)
    return path


def make_video_only_mp4(path: Path, duration_s: float = 2.0) -> Path:
    ffmpeg("-f", "lavfi", "-i", f"testsrc=s=160x120:r=25:d={duration_s}",
           "-c:v", "libx264", "-pix_fmt", "yuv420p", path)
    return path


def make_audio_m4a(path: Path, duration_s: float = 2.0) -> Path:
    ffmpeg("-f", "lavfi", "-i", f"sine=f=440:d={duration_s}:sample_rate=16000", "-c:a", "aac", path)
    return path


def sine(freq_hz: float, duration_s: float, sr_hz: int, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(round(duration_s * sr_hz))) / sr_hz
    return (amp * np.sin(2 * np.pi * freq_hz * t)).astype(np.float32)


def make_colour_clip(path: Path, colours=COLOURS, fps: int = 30, size: str = "64x48") -> Path:
    """``len(colours)`` seconds at ``fps``; second k is a flat picture of ``colours[k]``."""
    inputs = []
    for c in colours:
        inputs += ["-f", "lavfi", "-i", f"color=c={c}:s={size}:r={fps}:d=1"]
    labels = "".join(f"[{i}:v]" for i in range(len(colours)))
    ffmpeg(*inputs, "-filter_complex", f"{labels}concat=n={len(colours)}:v=1:a=0[v]", "-map", "[v]",
           "-c:v", "libx264", "-pix_fmt", "yuv420p", path)
    return path


def dominant_channels(frames: np.ndarray) -> np.ndarray:
    """Index (0 R, 1 G, 2 B) of the strongest channel of each frame ``(n, h, w, 3)``."""
    return frames.reshape(frames.shape[0], -1, 3).astype(np.float64).mean(axis=1).argmax(axis=1)


def expected_channels(times_s: np.ndarray, colours=COLOURS) -> np.ndarray:
    sec = np.floor(np.asarray(times_s, np.float64) + 1e-3).astype(int)
    return np.array([DOMINANT[colours[s]] for s in sec])


def dominant_freq_hz(x: np.ndarray, sr_hz: int) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(x.size)))
    return float(np.fft.rfftfreq(x.size, 1.0 / sr_hz)[int(spec.argmax())])


def assert_one_line_naming(err: MediaError, path: Path) -> None:
    msg = str(err)
    assert "\n" not in msg and "\r" not in msg, msg
    assert str(path) in msg, msg
    assert msg.strip() and len(msg) > len(str(path)) + 2, msg  # a reason follows the path


# ---------------------------------------------------------------------------------------------
# fixtures (module scope: each clip is encoded once)
# ---------------------------------------------------------------------------------------------

HAS_PYAV = media._pyav() is not None


@pytest.fixture(autouse=True, params=["pyav", "ffmpeg"])
def decoder(request, monkeypatch):
    """Every test of this module runs with each decoder: PyAV in-process, and ffprobe/ffmpeg/decord."""
    if request.param == "pyav" and not HAS_PYAV:
        pytest.skip("PyAV not installed")
    monkeypatch.setenv(media.DECODER_ENV, request.param)
    return request.param


@pytest.fixture(scope="module")
def media_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="module")
def av_mp4(media_dir) -> Path:
    return make_av_mp4(media_dir / "av.mp4", duration_s=2.0)


@pytest.fixture(scope="module")
def video_only_mp4(media_dir) -> Path:
    return make_video_only_mp4(media_dir / "video_only.mp4", duration_s=2.0)


@pytest.fixture(scope="module")
def audio_m4a(media_dir) -> Path:
    return make_audio_m4a(media_dir / "tone.m4a", duration_s=2.0)


@pytest.fixture(scope="module")
def sine_wav(media_dir) -> Path:
    return write_wav(media_dir / "sine1k.wav", sine(1000.0, 2.0, 16000), 16000)


@pytest.fixture(scope="module")
def colour_clip(media_dir) -> Path:
    return make_colour_clip(media_dir / "colours.mp4")


# ---------------------------------------------------------------------------------------------
# probe
# ---------------------------------------------------------------------------------------------

def test_probe_video_with_audio(av_mp4):
    info = media.probe(av_mp4)
    assert info.duration_s == pytest.approx(2.0, abs=0.1)
    assert info.has_video is True
    assert info.has_audio is True
    assert info.fps == pytest.approx(30.0, abs=0.01)
    assert (info.width, info.height) == (320, 240)
    assert info.path == str(av_mp4)


def test_probe_audio_only_m4a(audio_m4a):
    info = media.probe(audio_m4a)
    assert info.duration_s == pytest.approx(2.0, abs=0.1)
    assert (info.has_video, info.has_audio) == (False, True)
    assert (info.fps, info.width, info.height) == (0.0, 0, 0)


def test_probe_audio_only_wav(sine_wav):
    info = media.probe(sine_wav)
    assert info.duration_s == pytest.approx(2.0, abs=0.1)
    assert (info.has_video, info.has_audio) == (False, True)
    assert (info.fps, info.width, info.height) == (0.0, 0, 0)


def test_probe_video_only_mp4(video_only_mp4):
    info = media.probe(video_only_mp4)
    assert info.duration_s == pytest.approx(2.0, abs=0.1)
    assert (info.has_video, info.has_audio) == (True, False)
    assert info.fps == pytest.approx(25.0, abs=0.01)
    assert (info.width, info.height) == (160, 120)


# ---------------------------------------------------------------------------------------------
# audio
# ---------------------------------------------------------------------------------------------

def test_load_audio_resamples_sine(sine_wav):
    sig = media.load_audio(sine_wav, 8000)
    assert sig.sr_hz == 8000
    assert sig.start_s == 0.0
    assert sig.samples.dtype == np.float32
    assert sig.samples.ndim == 1
    assert sig.samples.size == pytest.approx(2.0 * 8000, rel=0.01)
    assert sig.duration_s == pytest.approx(2.0, rel=0.01)
    assert dominant_freq_hz(sig.samples, 8000) == pytest.approx(1000.0, abs=10.0)
    # amplitude survives decoding (0.5 peak written as 16-bit PCM)
    assert float(np.abs(sig.samples).max()) == pytest.approx(0.5, abs=0.05)


def test_load_audio_of_m4a_is_the_tone(audio_m4a):
    sig = media.load_audio(audio_m4a, 8000)
    assert sig.samples.size == pytest.approx(2.0 * 8000, rel=0.05)
    assert dominant_freq_hz(sig.samples, 8000) == pytest.approx(440.0, abs=10.0)


def test_load_audio_without_audio_track_is_empty(video_only_mp4):
    sig = media.load_audio(video_only_mp4, 8000)
    assert sig.samples.size == 0
    assert sig.sr_hz == 8000
    assert sig.duration_s == 0.0
    assert list(media.iter_audio(video_only_mp4, 8000)) == []


def test_iter_audio_blocks_are_contiguous(sine_wav):
    block_s, sr = 0.25, 8000
    blocks = list(media.iter_audio(sine_wav, sr, block_s=block_s))
    assert len(blocks) >= 8  # 2 s in 0.25 s blocks
    starts = np.array([b.start_s for b in blocks])
    assert starts[0] == 0.0
    np.testing.assert_allclose(np.diff(starts), block_s, rtol=0, atol=1e-9)
    # every block but the last is exactly one block long; the last is not longer
    sizes = [b.samples.size for b in blocks]
    assert all(s == int(block_s * sr) for s in sizes[:-1]), sizes
    assert 0 < sizes[-1] <= int(block_s * sr)
    # the blocks put together are what load_audio gives
    whole = media.load_audio(sine_wav, sr)
    np.testing.assert_array_equal(np.concatenate([b.samples for b in blocks]), whole.samples)
    # each block starts where the previous one ended
    for a, b in zip(blocks, blocks[1:]):
        assert b.start_s == pytest.approx(a.start_s + a.samples.size / sr, abs=1e-9)


# ---------------------------------------------------------------------------------------------
# frames
# ---------------------------------------------------------------------------------------------

def test_colour_clip_probe(colour_clip):
    info = media.probe(colour_clip)
    assert info.duration_s == pytest.approx(len(COLOURS), abs=0.1)
    assert info.fps == pytest.approx(30.0, abs=0.01)
    assert (info.width, info.height, info.has_audio) == (64, 48, False)


def test_frames_at_2fps_times_and_colours(colour_clip):
    fr = media.load_frames(colour_clip, fps=2.0)
    n = fr.frames.shape[0]
    assert n == 2 * len(COLOURS), n
    assert fr.frames.shape == (n, 48, 64, 3)
    assert fr.frames.dtype == np.uint8
    assert fr.times_s.shape == (n,)
    np.testing.assert_allclose(fr.times_s, np.arange(n) * 0.5, atol=1.0 / 30)
    np.testing.assert_array_equal(dominant_channels(fr.frames), expected_channels(np.arange(n) * 0.5))


def test_iter_frames_batches_concatenate_to_load_frames(colour_clip):
    batches = list(media.iter_frames(colour_clip, fps=2.0, batch=3))
    assert [b.frames.shape[0] for b in batches[:-1]] == [3] * (len(batches) - 1)
    assert 1 <= batches[-1].frames.shape[0] <= 3
    whole = media.load_frames(colour_clip, fps=2.0)
    np.testing.assert_array_equal(np.concatenate([b.times_s for b in batches]), whole.times_s)
    np.testing.assert_array_equal(np.concatenate([b.frames for b in batches]), whole.frames)




@pytest.mark.parametrize("fps", [0.25, 0.5])
def test_sparse_sampling_is_not_mistaken_for_a_truncated_file(tmp_path, fps):
    """Sampling takes whole 1/fps intervals: at 0.25 fps a 15.8 s clip gives 0, 4 and 8 s, and
    its end is 3.8 s after the last sample. That is not a file cut short."""
    clip = tmp_path / "clip.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=s=96x64:r=25:d=15.8", "-c:v", "libx264", "-pix_fmt", "yuv420p", clip)
    fr = media.load_frames(clip, fps=fps)
    np.testing.assert_allclose(fr.times_s, np.arange(int(15.8 * fps)) / fps, atol=0.05)

def test_decord_batches_across_keyframes_are_the_frames_of_one_batch(tmp_path):
    """iter_frames parks decord's read-ahead between batches with a seek; the next batch must
    still get exactly its frames, whichever keyframe it starts after (a moving pattern, a
    keyframe every 10 frames)."""
    clip = tmp_path / "moving.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=s=96x64:r=25:d=12", "-c:v", "libx264", "-g", "10",
           "-pix_fmt", "yuv420p", clip)
    info = media.probe(clip)
    batches = list(media._iter_frames_decord(str(clip), 2.0, None, 4, info.video_start_s))
    whole = list(media._iter_frames_decord(str(clip), 2.0, None, 1000, info.video_start_s))
    assert len(batches) == 6 and len(whole) == 1
    np.testing.assert_array_equal(np.concatenate([b.frames for b in batches]), whole[0].frames)
    np.testing.assert_array_equal(np.concatenate([b.times_s for b in batches]), whole[0].times_s)

@pytest.mark.parametrize("fps", [1.0, 2.0])
def test_frames_cover_the_whole_clip(colour_clip, fps):
    fr = media.load_frames(colour_clip, fps=fps)
    n_expected = int(round(len(COLOURS) * fps))
    assert fr.frames.shape[0] == n_expected
    # the last second's content (red) must be represented
    assert dominant_channels(fr.frames[-1:])[0] == DOMINANT[COLOURS[-1]]


def test_frames_size_argument(colour_clip):
    fr = media.load_frames(colour_clip, fps=2.0, size=(40, 20))  # (width, height), not proportional
    assert fr.frames.ndim == 4
    assert fr.frames.shape[1:] == (20, 40, 3)
    assert fr.frames.dtype == np.uint8
    assert fr.frames.shape[0] >= 2 * len(COLOURS) - 1
    np.testing.assert_array_equal(dominant_channels(fr.frames), expected_channels(fr.times_s))


def test_ffmpeg_fallback_matches_decord(colour_clip):
    info = media.probe(colour_clip)
    dec = media.load_frames(colour_clip, fps=2.0)
    batches = list(media._iter_frames_ffmpeg(str(colour_clip), 2.0, None, info, 5))
    assert batches, "ffmpeg fallback gave no frames"
    assert all(b.frames.shape[0] <= 5 for b in batches)
    ff_frames = np.concatenate([b.frames for b in batches])
    ff_times = np.concatenate([b.times_s for b in batches])
    assert ff_frames.shape[1:] == (48, 64, 3) and ff_frames.dtype == np.uint8
    assert abs(ff_frames.shape[0] - dec.frames.shape[0]) <= 1
    np.testing.assert_allclose(ff_times, np.arange(ff_times.size) * 0.5, atol=1.0 / 30)
    np.testing.assert_array_equal(dominant_channels(ff_frames), expected_channels(ff_times))
    k = min(ff_frames.shape[0], dec.frames.shape[0])
    np.testing.assert_array_equal(dominant_channels(ff_frames[:k]), dominant_channels(dec.frames[:k]))
    np.testing.assert_allclose(ff_times[:k], dec.times_s[:k], atol=1.0 / 30)


def test_ffmpeg_fallback_size_argument(colour_clip):
    info = media.probe(colour_clip)
    batches = list(media._iter_frames_ffmpeg(str(colour_clip), 2.0, (40, 20), info, 32))
    frames = np.concatenate([b.frames for b in batches])
    assert frames.shape[1:] == (20, 40, 3)
    assert frames.shape[0] == 2 * len(COLOURS)


def test_audio_only_file_has_no_frames(audio_m4a):
    assert list(media.iter_frames(audio_m4a, fps=2.0)) == []
    fr = media.load_frames(audio_m4a, fps=2.0, size=(32, 24))
    assert fr.frames.shape == (0, 24, 32, 3)
    assert fr.times_s.size == 0


def test_probe_says_which_decoder_reads_the_file(av_mp4, decoder):
    assert media.probe(av_mp4).decoder == decoder


def test_without_pyav_the_ffmpeg_decoder_reads_files(av_mp4, monkeypatch):
    monkeypatch.setitem(sys.modules, "av", None)  # import av now raises ImportError
    monkeypatch.setenv(media.DECODER_ENV, "auto")
    info = media.probe(av_mp4)
    assert info.decoder == "ffmpeg" and info.has_video and info.has_audio
    assert len(media.load_frames(av_mp4, 2.0, info=info).times_s) == 4
    monkeypatch.setenv(media.DECODER_ENV, "pyav")
    with pytest.raises(MediaError, match="PyAV is not installed"):
        media.probe(av_mp4)


def test_unknown_decoder_setting_is_a_one_line_error(av_mp4, monkeypatch):
    monkeypatch.setenv(media.DECODER_ENV, "gstreamer")
    with pytest.raises(MediaError, match="auto, pyav or ffmpeg"):
        media.probe(av_mp4)


def test_iter_frames_rejects_bad_fps(colour_clip):
    with pytest.raises(ValueError):
        list(media.iter_frames(colour_clip, fps=0))


# ---------------------------------------------------------------------------------------------
# errors
# ---------------------------------------------------------------------------------------------

def _bad_file(kind: str, d: Path, av_mp4: Path) -> Path:
    if kind == "missing":
        return d / "does_not_exist.mp4"
    p = d / f"{kind}.mp4"
    if kind == "empty":
        p.write_bytes(b"")
    elif kind == "text":
        p.write_text("this is not a video\njust some text\n")
    elif kind == "random":
        p.write_bytes(np.random.default_rng(0).integers(0, 256, 20000, dtype=np.uint8).tobytes())
    elif kind == "truncated":
        data = av_mp4.read_bytes()
        p.write_bytes(data[: int(len(data) * 0.3)])
    return p


BAD_KINDS = ["missing", "empty", "text", "random", "truncated"]
READERS = {
    "probe": lambda p: media.probe(p),
    "load_audio": lambda p: media.load_audio(p, 8000),
    "load_frames": lambda p: media.load_frames(p, 2.0),
}


@pytest.mark.parametrize("reader", sorted(READERS))
@pytest.mark.parametrize("kind", BAD_KINDS)
def test_unreadable_files_raise_media_error(kind, reader, tmp_path, av_mp4):
    p = _bad_file(kind, tmp_path, av_mp4)
    with pytest.raises(MediaError) as exc_info:
        READERS[reader](p)
    assert_one_line_naming(exc_info.value, p)
    assert exc_info.value.path == str(p)


def test_directory_raises_media_error(tmp_path):
    with pytest.raises(MediaError) as exc_info:
        media.probe(tmp_path)
    assert_one_line_naming(exc_info.value, tmp_path)


@pytest.mark.parametrize("reader", ["load_audio", "load_frames"])
def test_truncated_faststart_mp4_raises(reader, tmp_path):
    good = make_av_mp4(tmp_path / "good.mp4", duration_s=3.0, faststart=True)
    p = tmp_path / "cut.mp4"
    data = good.read_bytes()
    p.write_bytes(data[: int(len(data) * 0.3)])
    with pytest.raises(MediaError, match="truncated or damaged") as exc_info:
        READERS[reader](p)
    assert_one_line_naming(exc_info.value, p)


@pytest.mark.parametrize("path_kind", ["decord", "ffmpeg"])
def test_frame_times_follow_stream_start(colour_clip, tmp_path, path_kind):
    shifted = tmp_path / "shifted.mp4"
    ffmpeg("-i", colour_clip, "-c", "copy", "-output_ts_offset", "1.0", shifted)
    if path_kind == "decord":
        times = media.load_frames(shifted, fps=2.0).times_s
    else:
        info = media.probe(shifted)
        times = np.concatenate([b.times_s for b in media._iter_frames_ffmpeg(str(shifted), 2.0, None, info, 32)])
    assert times[0] == pytest.approx(1.0, abs=1.0 / 30)


# ---------------------------------------------------------------------------------------------
# prefetch: decoding ahead in a thread
# ---------------------------------------------------------------------------------------------

def test_prefetch_gives_the_same_batches_in_order(colour_clip):
    plain = list(media.iter_frames(colour_clip, 4.0, batch=3))
    ahead = list(media.prefetch(media.iter_frames(colour_clip, 4.0, batch=3), depth=2))
    assert len(ahead) == len(plain) == 6
    for a, b in zip(ahead, plain):
        np.testing.assert_array_equal(a.frames, b.frames)
        np.testing.assert_array_equal(a.times_s, b.times_s)


def test_prefetch_raises_the_producers_error_in_the_caller(tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video at all" * 100)
    with pytest.raises(MediaError) as err:
        list(media.prefetch(media.iter_frames(bad, 1.0)))
    assert_one_line_naming(err.value, bad)


def test_prefetch_stopped_early_closes_the_producer():
    closed = []

    def numbers():
        try:
            for i in range(1000):
                yield i
        finally:
            closed.append(True)

    got = []
    for x in media.prefetch(numbers(), depth=2):
        got.append(x)
        if x == 4:
            break
    assert got == [0, 1, 2, 3, 4] and closed == [True]
