"""Media decoding: PyAV in-process when installed; else ffprobe for facts, ffmpeg for audio, decord
(ffmpeg pipe as fallback) for frames.

PyAV decodes inside this process, so a file costs no ``ffprobe``/``ffmpeg`` process start-up (~85 ms
each with Debian's shared-library build, 0.1-0.2 s of a short query on 2 cores), and it skips the
video frames no other frame refers to (``SKIP_NONREF``): with x264's B-frames that is ~45% of them,
which the 2 fps sampling never needed. Any file PyAV cannot open or probe fully goes the ffprobe
way, so errors read as before; ``FINGERPRINT_DECODER=ffmpeg`` forces that way for every file.

Everything returns exact timestamps in seconds. A file without an audio track gives an empty
:class:`AudioSignal`; one without a video track gives no frames. Neither is an error. What cannot be
read at all raises :class:`~fingerprint.errors.MediaError` naming the file and the reason.

Example
-------
>>> info = probe("clip.mp4")                       # doctest: +SKIP
>>> sig = load_audio("clip.mp4", sr_hz=8000)        # doctest: +SKIP
>>> for batch in iter_frames("clip.mp4", fps=1.0, size=(224, 224)):   # doctest: +SKIP
...     print(batch.frames.shape, batch.times_s)
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Iterator, Optional, Sequence, Tuple, Union

import numpy as np

from .errors import MediaError
from .types import AudioSignal, Frames, MediaInfo

PathLike = Union[str, Path]

#: Audio is read from ffmpeg in blocks of this many seconds so memory stays bounded on long files.
AUDIO_BLOCK_S = 60.0
#: Frames are decoded and handed on in batches of this many.
FRAME_BATCH = 32
#: Environment variable choosing the decoder: ``auto`` (PyAV when installed), ``pyav`` or ``ffmpeg``.
DECODER_ENV = "FINGERPRINT_DECODER"
#: With PyAV, skip decoding video frames that no other frame refers to (H.264's non-reference
#: B-frames). What is decoded is bit-identical to a full decode; a sample time then gets the last
#: decoded frame at or before it, earlier than with a full decode by at most a run of skipped
#: frames (one or two with x264's defaults; 0.16 s with 8 B-frames in a row at 25 fps), its time
#: reported exactly. Decoding takes ~25% less time on x264 files.
SKIP_NONREF = True


def _require_tool(name: str) -> str:
    exe = shutil.which(name)
    if exe is None:
        raise MediaError(name, f"{name} not found on PATH; install it (Debian: apt-get install -y ffmpeg)")
    return exe


def _check_file(path: PathLike) -> str:
    p = Path(path)
    if not p.exists():
        raise MediaError(path, "no such file")
    if p.is_dir():
        raise MediaError(path, "is a directory, not a media file")
    if p.stat().st_size == 0:
        raise MediaError(path, "empty file (0 bytes)")
    return str(p)


def _ffmpeg_reason(stderr: bytes, default: str, path: str = "") -> str:
    """The last line ffmpeg wrote to stderr, without the file name it starts with."""
    lines = [ln.strip() for ln in stderr.decode("utf-8", "replace").splitlines() if ln.strip()]
    if not lines:
        return default
    last = lines[-1]
    if path and last.startswith(path + ": "):
        last = last[len(path) + 2:]
    return last if len(last) <= 200 else last[:197] + "..."


def _pyav():
    """The ``av`` module when it is to be used (``FINGERPRINT_DECODER``), else None."""
    choice = os.environ.get(DECODER_ENV, "auto").strip().lower() or "auto"
    if choice not in ("auto", "pyav", "ffmpeg"):
        raise MediaError(DECODER_ENV, f"must be auto, pyav or ffmpeg, not {choice!r}")
    if choice == "ffmpeg":
        return None
    try:
        import av
    except ImportError:
        if choice == "pyav":
            raise MediaError(DECODER_ENV, "is pyav but PyAV is not installed (pip install av)") from None
        return None
    return av


@contextlib.contextmanager
def use_decoder(name: str) -> Iterator[None]:
    """Within the block, decode with ``name`` (``auto``, ``pyav`` or ``ffmpeg``; see
    ``DECODER_ENV``); the setting before it comes back afterwards. Files probed inside decode
    that way wherever they are read later (:class:`MediaInfo` says which decoder).

    >>> with use_decoder("ffmpeg"):          # doctest: +SKIP
    ...     info = probe("clip.mp4")         # ffprobe, then ffmpeg and decord for this file
    """
    old = os.environ.get(DECODER_ENV)
    os.environ[DECODER_ENV] = name
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(DECODER_ENV, None)
        else:
            os.environ[DECODER_ENV] = old


def _video_streams(av, container) -> list:
    """Video streams that are not a cover picture (an mp3's or m4a's album art)."""
    attached = av.stream.Disposition.attached_pic
    return [s for s in container.streams.video if not (s.disposition & attached)]


def _probe_pyav(av, path: PathLike, fpath: str) -> Optional[MediaInfo]:
    """:func:`probe`'s facts from PyAV, or None when PyAV cannot give all of them (the caller then
    asks ffprobe, which also words the error of a file that is not readable)."""
    try:
        container = av.open(fpath, metadata_errors="ignore")
    except Exception:
        return None
    try:
        video, audio = _video_streams(av, container), list(container.streams.audio)
        if not video and not audio:
            return None

        def secs(stream, value) -> float:
            return float(value * stream.time_base) if value is not None and stream.time_base else 0.0

        durations = [container.duration / 1e6 if container.duration else 0.0]
        durations += [secs(s, s.duration) for s in video + audio]
        fps, width, height, rotation = 0.0, 0, 0, 0
        if video:
            v = video[0]
            rate = v.average_rate or v.base_rate
            fps = float(rate) if rate else 0.0
            width, height = int(v.codec_context.width or 0), int(v.codec_context.height or 0)
            # the display matrix reaches PyAV on the decoded frames only: decode the first one
            v.codec_context.thread_count = 1
            frame = next(container.decode(v), None)
            if frame is None:
                return None
            rotation = int(round(float(frame.rotation))) % 360
            if rotation in (90, 270):  # a phone video stored landscape, shown portrait
                width, height = height, width
        return MediaInfo(path=str(path), duration_s=max(durations), has_video=bool(video),
                         has_audio=bool(audio), fps=fps, width=width, height=height,
                         video_start_s=max(0.0, secs(video[0], video[0].start_time)) if video else 0.0,
                         audio_start_s=max(0.0, secs(audio[0], audio[0].start_time)) if audio else 0.0,
                         rotation_deg=rotation,
                         video_duration_s=secs(video[0], video[0].duration) if video else 0.0,
                         audio_duration_s=secs(audio[0], audio[0].duration) if audio else 0.0,
                         decoder="pyav")
    except Exception:  # an attribute an old PyAV lacks, a first frame that does not decode, ...
        return None
    finally:
        container.close()


def probe(path: PathLike) -> MediaInfo:
    """Facts about a media file from PyAV (see the module's note) or ``ffprobe``.

    Parameters
    ----------
    path : file to inspect.

    Returns
    -------
    MediaInfo with ``duration_s`` (seconds, the longest stream if the container says nothing),
    ``has_video``/``has_audio``, and the first video stream's ``fps``, ``width``, ``height``.

    Raises
    ------
    MediaError if the file is missing, empty, or not something ffprobe can read (a file PyAV
    cannot read fully is asked of ffprobe, whose reason the error gives).
    """
    fpath = _check_file(path)
    av = _pyav()
    info = _probe_pyav(av, path, fpath) if av is not None else None
    return info if info is not None else _probe_ffprobe(path, fpath)


def _probe_ffprobe(path: PathLike, fpath: str) -> MediaInfo:
    cmd = [_require_tool("ffprobe"), "-v", "error", "-print_format", "json",
           "-show_format", "-show_streams", fpath]
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        reason = _ffmpeg_reason(proc.stderr, "ffprobe failed", fpath)
        raise MediaError(path, f"not a readable media file ({reason})")
    try:
        meta = json.loads(proc.stdout.decode("utf-8", "replace") or "{}")
    except json.JSONDecodeError:
        raise MediaError(path, "ffprobe gave unreadable output") from None
    streams = meta.get("streams", [])
    video = [s for s in streams if s.get("codec_type") == "video"
             and not s.get("disposition", {}).get("attached_pic")]
    audio = [s for s in streams if s.get("codec_type") == "audio"]
    if not video and not audio:
        raise MediaError(path, "no audio or video stream")

    def _f(x, default=0.0):
        try:
            return float(x)
        except (TypeError, ValueError):
            return default

    durations = [_f(meta.get("format", {}).get("duration"))] + [_f(s.get("duration")) for s in video + audio]
    duration = max(durations) if durations else 0.0
    fps = 0.0
    width = height = 0
    if video:
        v = video[0]
        for key in ("avg_frame_rate", "r_frame_rate"):
            num, _, den = str(v.get(key, "0/1")).partition("/")
            if _f(den, 1.0) > 0 and _f(num) > 0:
                fps = _f(num) / _f(den, 1.0)
                break
        width, height = int(v.get("width") or 0), int(v.get("height") or 0)
    video_start = max(0.0, _f(video[0].get("start_time"))) if video else 0.0
    audio_start = max(0.0, _f(audio[0].get("start_time"))) if audio else 0.0
    rotation = 0
    if video:
        rot = _f(video[0].get("tags", {}).get("rotate"))
        for sd in video[0].get("side_data_list", []) or []:
            if "rotation" in sd:
                rot = _f(sd.get("rotation"))
        rotation = int(round(rot)) % 360
        if rotation in (90, 270):  # a phone video stored landscape, shown portrait
            width, height = height, width
    return MediaInfo(path=str(path), duration_s=duration, has_video=bool(video), has_audio=bool(audio),
                     fps=fps, width=width, height=height, video_start_s=video_start,
                     audio_start_s=audio_start, rotation_deg=rotation,
                     video_duration_s=_f(video[0].get("duration")) if video else 0.0,
                     audio_duration_s=_f(audio[0].get("duration")) if audio else 0.0)


def probe_ahead(paths: Sequence[PathLike]) -> Iterator[Tuple[PathLike, Optional[MediaInfo]]]:
    """Each of ``paths`` with its :func:`probe`, the next file being probed in a thread while the
    caller works on this one: an ``ffprobe`` process mostly waits on its own start-up (~75 ms of
    ~85 ms with Debian's shared-library ffmpeg), which would otherwise leave the cores idle between
    files (PyAV's probe takes 5-10 ms; the look-ahead then matters little). A file whose probe
    failed comes with None: the caller probes it again in its turn and meets the error where it
    would have without the look-ahead.

    >>> for path, info in probe_ahead(files):      # doctest: +SKIP
    ...     match(path, info=info)
    """
    from concurrent.futures import ThreadPoolExecutor

    paths = list(paths)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="probe") as ex:
        ahead = ex.submit(probe, paths[0]) if paths else None
        for i, path in enumerate(paths):
            this, ahead = ahead, (ex.submit(probe, paths[i + 1]) if i + 1 < len(paths) else None)
            try:
                info = this.result()
            except Exception:  # reported by the caller's own probe, in order
                info = None
            yield path, info


def _check_complete(path, what: str, decoded_s: float, expected_s: float, slack_s: float = 0.0) -> None:
    """MediaError when a stream decoded to clearly less than its container says: a file cut
    mid-stream whose index (moov atom) sits at the front still probes as the full length.
    ``slack_s``: how far before the end the decoding may legitimately stop (a sampling interval)."""
    if expected_s > 0 and decoded_s < expected_s - max(1.0, 0.05 * expected_s, slack_s):
        raise MediaError(path, f"truncated or damaged: {what} stops at {decoded_s:.1f} s of {expected_s:.1f} s")


def _ffmpeg_chunks(cmd, chunk_bytes: int, path: str, what: str) -> Iterator[bytes]:
    """Run an ffmpeg command that writes raw data to stdout and yield it ``chunk_bytes`` at a time;
    raise :class:`MediaError` naming ``path`` if ffmpeg fails."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    try:
        while True:
            buf = proc.stdout.read(chunk_bytes)
            if not buf:
                break
            yield buf
    finally:
        proc.stdout.close()
        stderr = proc.stderr.read()
        proc.stderr.close()
        rc = proc.wait()
    if rc != 0:
        raise MediaError(path, f"cannot decode {what} (" + _ffmpeg_reason(stderr, f"ffmpeg exit code {rc}", path) + ")")


def _av_reason(exc: BaseException) -> str:
    """PyAV's reason for an error, without the file name it may end with."""
    reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return reason if len(reason) <= 200 else reason[:197] + "..."


def _decoded(av, container, stream, path, what: str) -> Iterator:
    """Decoded frames of ``stream``. A packet the decoder refuses is skipped, as the ffmpeg
    command does; a container that breaks off (a file cut short) ends the stream, and
    :func:`_check_complete` then says so. Nothing decoded and some packets refused: MediaError."""
    errors, last = 0, None
    n = 0
    packets = container.demux(stream)
    while True:
        try:
            packet = next(packets)
        except StopIteration:
            break
        except av.error.FFmpegError:
            packet = None  # flush what the decoder holds, then stop
        try:
            frames = stream.codec_context.decode(packet) if packet is None else packet.decode()
        except av.error.FFmpegError as exc:
            errors, last = errors + 1, exc
            frames = []
        for frame in frames:
            n += 1
            yield frame
        if packet is None:
            break
    if n == 0 and errors:
        raise MediaError(path, f"cannot decode {what} ({_av_reason(last)})")


def _iter_audio_pyav(av, path: PathLike, sr_hz: int, block_s: float, start_s: float) -> Iterator[AudioSignal]:
    block = max(int(block_s * sr_hz), 1)
    n_done = 0
    try:
        container = av.open(str(path), metadata_errors="ignore")
    except av.error.FFmpegError as exc:
        raise MediaError(path, f"cannot decode audio ({_av_reason(exc)})") from None
    try:
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="flt", layout="mono", rate=int(sr_hz))
        parts, held = [], 0       # resampled samples not handed on yet
        pending, kind = [], None  # decoded samples not resampled yet, and their (format, layout, rate)

        def resample(frame):
            nonlocal held
            try:
                outs = resampler.resample(frame)
            except (av.error.FFmpegError, ValueError) as exc:
                raise MediaError(path, f"cannot decode audio ({_av_reason(exc)})") from None
            for out in outs:
                x = out.to_ndarray().reshape(-1)
                parts.append(x)
                held += x.size

        def resample_pending():
            # One resampler call per second of audio, not per codec frame (~1,000 samples): the
            # per-call cost was half of decoding; the samples are the same (a test checks).
            if pending:
                frame = av.AudioFrame.from_ndarray(np.concatenate(pending, axis=1), format=kind[0], layout=kind[1])
                frame.sample_rate = kind[2]
                pending.clear()
                resample(frame)

        def hand_on(final: bool) -> Iterator[AudioSignal]:
            nonlocal parts, held, n_done
            while held >= block or (final and held):
                buf = np.concatenate(parts)
                k = min(block, buf.size)
                yield AudioSignal(np.ascontiguousarray(buf[:k], dtype=np.float32), int(sr_hz),
                                  start_s + n_done / float(sr_hz))
                n_done += k
                parts, held = [buf[k:]], buf.size - k

        n_pending = 0
        for frame in _decoded(av, container, stream, path, "audio"):
            this = (frame.format.name, frame.layout.name, frame.sample_rate)
            if this != kind:
                resample_pending()
                kind, n_pending = this, 0
            pending.append(frame.to_ndarray())  # (channels, n) planar, (1, n * channels) packed
            n_pending += frame.samples
            if n_pending >= kind[2]:
                resample_pending()
                n_pending = 0
                yield from hand_on(False)
        resample_pending()
        resample(None)  # what the resampler still holds
        yield from hand_on(True)
    finally:
        container.close()


def iter_audio(path: PathLike, sr_hz: int, block_s: float = AUDIO_BLOCK_S,
               info: Optional[MediaInfo] = None) -> Iterator[AudioSignal]:
    """Decode the first audio track as mono float32 at ``sr_hz``, in blocks of ``block_s`` seconds.

    Each yielded :class:`AudioSignal` carries its own ``start_s``; blocks are contiguous. Yields
    nothing for a file without audio. Raises :class:`MediaError` if ffmpeg fails.
    """
    info = info or probe(path)
    if not info.has_audio:
        return
    fpath = str(path)
    start = info.audio_start_s
    n_done = 0
    av = _pyav() if info.decoder == "pyav" else None
    if av is not None:
        blocks = _iter_audio_pyav(av, path, sr_hz, block_s, start)
    else:
        blocks = _iter_audio_ffmpeg(fpath, sr_hz, block_s, start)
    for sig in blocks:
        yield sig
        n_done += sig.samples.size
    _check_complete(path, "audio", n_done / float(sr_hz), info.audio_duration_s)


def _iter_audio_ffmpeg(fpath: str, sr_hz: int, block_s: float, start_s: float) -> Iterator[AudioSignal]:
    cmd = [_require_tool("ffmpeg"), "-nostdin", "-v", "error", "-i", fpath, "-map", "0:a:0",
           "-ac", "1", "-ar", str(int(sr_hz)), "-f", "f32le", "-"]
    n_done = 0
    for buf in _ffmpeg_chunks(cmd, int(block_s * sr_hz) * 4, fpath, "audio"):
        samples = np.frombuffer(buf[:len(buf) - len(buf) % 4], dtype="<f4").astype(np.float32)
        yield AudioSignal(samples, int(sr_hz), start_s + n_done / float(sr_hz))
        n_done += samples.size


def load_audio(path: PathLike, sr_hz: int, info: Optional[MediaInfo] = None) -> AudioSignal:
    """The whole first audio track as one mono float32 :class:`AudioSignal` at ``sr_hz``.

    A file with no audio track gives ``AudioSignal(np.zeros(0), sr_hz)``.

    >>> sig = load_audio("clip.mp4", 8000)   # doctest: +SKIP
    >>> sig.samples.shape, sig.start_s       # doctest: +SKIP
    ((80000,), 0.0)
    """
    blocks = list(iter_audio(path, sr_hz, info=info))
    if not blocks:
        return AudioSignal(np.zeros(0, dtype=np.float32), int(sr_hz), 0.0)
    return AudioSignal(np.concatenate([b.samples for b in blocks]), int(sr_hz), blocks[0].start_s)


def _sample_times(duration_s: float, start_s: float, fps: float) -> np.ndarray:
    n = max(int(np.floor(duration_s * fps + 1e-6)), 1)
    return start_s + np.arange(n) / float(fps)


def _iter_frames_decord(path: str, fps: float, size: Optional[Tuple[int, int]],
                        batch: int, start_s: float = 0.0) -> Iterator[Frames]:
    import decord  # imported lazily: importing decord costs ~0.2 s and is only needed for frames

    kw = {"num_threads": 1}
    if size is not None:
        kw.update(width=int(size[0]), height=int(size[1]))
    vr = decord.VideoReader(path, **kw)
    n = len(vr)
    if n == 0:
        return
    spans = vr.get_frame_timestamp(np.arange(n)).astype(np.float64)
    stamps = spans[:, 0]
    # Frame shown at time t is the last one whose timestamp is <= t; the clip lasts until the
    # last frame's end, so sampling runs that far.
    want = _sample_times(spans[-1, 1] - stamps[0], stamps[0], fps)
    idx = np.clip(np.searchsorted(stamps, want + 1e-6, side="right") - 1, 0, n - 1)
    idx = np.unique(idx)
    for i in range(0, idx.size, batch):
        sel = idx[i:i + batch]
        frames = vr.get_batch(sel.tolist()).asnumpy()
        # decord's decoder thread goes on decoding frames nobody asked for, into memory, while
        # the caller works on this batch (dmlc/decord#208: a 10-minute query held 1.4 GB more). A
        # seek back to the start parks it until the next get_batch, which then seeks to its
        # frames from their keyframe (at most a GOP more decoding per batch; the frames are
        # identical, a test checks). Seeking anywhere else returns wrong frames.
        vr.seek(0)
        yield Frames(frames, start_s + stamps[sel])


def _iter_frames_pyav(av, path: str, fps: float, size: Optional[Tuple[int, int]], batch: int,
                      start_s: float) -> Iterator[Frames]:
    """Frames sampled as :func:`_iter_frames_decord` samples them, decoded by PyAV in this
    thread: each sample time gets the last decoded frame at or before it, each frame at most once."""
    container = av.open(path, metadata_errors="ignore")
    try:
        stream = _video_streams(av, container)[0]
        stream.codec_context.thread_count = 1  # as decord: the model has the cores
        if SKIP_NONREF:
            stream.codec_context.skip_frame = "NONREF"
        tb = float(stream.time_base)
        base = float(stream.start_time) * tb if stream.start_time is not None else None
        rate = float(stream.average_rate or stream.base_rate or 0) or fps
        step = 1.0 / fps
        first = None  # time of the first frame: sample k is at first + k * step
        k = 0
        prev, prev_t = None, 0.0
        held = None  # the last frame taken, and its first sample: kept back until the end is known
        out, times = [], []

        def hand_on(frame, t):
            w, h = (int(size[0]), int(size[1])) if size is not None else (frame.width, frame.height)
            out.append(frame.to_ndarray(format="rgb24", width=w, height=h))
            times.append(start_s + t - base)

        for frame in _decoded(av, container, stream, path, "video frames"):
            if frame.pts is None:
                continue
            t = frame.pts * tb
            if first is None:
                first = t
                base = t if base is None else base
            elif t <= prev_t:  # out of order: decord sorts them; such streams are rare, keep the first
                continue
            if prev is not None and first + k * step < t - 1e-6:
                if held is not None:
                    hand_on(*held[:2])
                held = (prev, prev_t, k)  # samples k... before t are shown as prev
                while first + k * step < t - 1e-6:
                    k += 1
                if len(out) == batch:
                    yield Frames(np.stack(out), np.asarray(times, dtype=np.float64))
                    out, times = [], []
            prev, prev_t = frame, t
        if prev is not None:
            # samples are whole 1/fps intervals up to the last frame's end (as decord's sampling)
            end = prev_t + (prev.duration * tb if getattr(prev, "duration", None) else 1.0 / rate)
            n = max(int(np.floor((end - first) * fps + 1e-6)), 1)
            for frame, t, k_first in ([held] if held is not None else []) + [(prev, prev_t, k)]:
                if k_first < n:
                    hand_on(frame, t)
        if out:
            for i in range(0, len(out), batch):
                yield Frames(np.stack(out[i:i + batch]), np.asarray(times[i:i + batch], dtype=np.float64))
    finally:
        container.close()


def _iter_frames_ffmpeg(path: str, fps: float, size: Optional[Tuple[int, int]], info: MediaInfo,
                        batch: int) -> Iterator[Frames]:
    w, h = (int(size[0]), int(size[1])) if size is not None else (info.width, info.height)
    if w <= 0 or h <= 0:
        raise MediaError(path, "video stream has no size")
    cmd = [_require_tool("ffmpeg"), "-nostdin", "-v", "error", "-i", path, "-map", "0:v:0",
           "-vf", f"fps={fps},scale={w}:{h}", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"]
    frame_bytes = w * h * 3
    k = 0
    for buf in _ffmpeg_chunks(cmd, frame_bytes * batch, path, "video"):
        nf = len(buf) // frame_bytes
        if nf == 0:
            break
        frames = np.frombuffer(buf[:nf * frame_bytes], dtype=np.uint8).reshape(nf, h, w, 3)
        yield Frames(frames, info.video_start_s + (k + np.arange(nf)) / float(fps))
        k += nf


def iter_frames(path: PathLike, fps: float, size: Optional[Tuple[int, int]] = None,
                batch: int = FRAME_BATCH, info: Optional[MediaInfo] = None) -> Iterator[Frames]:
    """Decode RGB frames sampled at ``fps`` frames per second, resized to ``size=(width, height)``.

    Yields :class:`Frames` batches of at most ``batch`` frames, ``frames`` uint8 ``(n, h, w, 3)``
    and ``times_s`` ``(n,)`` the exact presentation time of each decoded frame. Sample ``k`` is
    the frame shown at ``first + k / fps`` (the last one at or before it; with PyAV and
    ``SKIP_NONREF``, the last decoded one), each frame at most once. Uses PyAV when ``info`` came
    from it, else decord; when neither can open the file, or it is rotated, an ffmpeg pipe
    (``fps`` filter, which applies the rotation) does the same job. Yields nothing
    for a file without video.
    """
    if fps <= 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    info = info or probe(path)
    if not info.has_video:
        return
    fpath = str(path)
    last_t = [info.video_start_s]

    def track(gen):
        for b in gen:
            if len(b.times_s):
                last_t[0] = float(b.times_s[-1]) + 1.0 / fps
            yield b

    gen, first = None, None
    readers = []
    if info.rotation_deg == 0:  # PyAV and decord ignore the display matrix; ffmpeg applies it
        av = _pyav() if info.decoder == "pyav" else None
        if av is not None:
            readers.append(lambda: _iter_frames_pyav(av, fpath, fps, size, batch, info.video_start_s))
        # decord counts from the video stream's own start; the container timeline adds its start_time.
        readers.append(lambda: _iter_frames_decord(fpath, fps, size, batch, info.video_start_s))
    for reader in readers:
        try:
            gen = reader()
            first = next(gen, None)
        except Exception:  # decord raises its own error types (and sometimes RuntimeError) on odd files
            gen, first = None, None
        if first is not None:
            break
    if first is not None:
        yield from track([first])
        try:
            yield from track(gen)
        except Exception as exc:  # a file that opens but breaks mid-stream (truncated, corrupt)
            raise MediaError(path, f"cannot decode video frames ({type(exc).__name__}: {exc})") from None
    else:
        yield from track(_iter_frames_ffmpeg(fpath, fps, size, info, batch))
    # samples are whole 1/fps intervals: at 0.25 fps the last one of a 15.8 s clip ends at 12 s
    _check_complete(path, "video", last_t[0] - info.video_start_s + 1.0 / fps, info.video_duration_s, 1.0 / fps)


def prefetch(batches: Iterator, depth: int = 2) -> Iterator:
    """Run ``batches`` (e.g. :func:`iter_frames`) ahead in a thread, up to ``depth`` items, so
    decoding overlaps with what the caller does with each item. PyAV, decord and ffmpeg release the
    GIL while decoding, as onnxruntime and torch do while computing. Items come in the same
    order; an exception in the producer is raised in the caller, and a caller that stops early
    stops the producer (closing its ffmpeg pipe).

    >>> for b in prefetch(iter_frames("clip.mp4", fps=2.0)):   # doctest: +SKIP
    ...     describe(b.frames)
    """
    import queue
    import threading

    q: "queue.Queue" = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()
    done = object()

    def produce():
        try:
            for item in batches:
                while not stop.is_set():
                    try:
                        q.put((True, item), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    break
        except BaseException as exc:  # handed to the consumer, raised there
            q.put((False, exc))
            return
        finally:
            if stop.is_set() and hasattr(batches, "close"):
                batches.close()
        q.put((True, done))

    t = threading.Thread(target=produce, name="prefetch", daemon=True)
    t.start()
    try:
        while True:
            ok, item = q.get()
            if not ok:
                raise item
            if item is done:
                break
            yield item
    finally:
        stop.set()
        while t.is_alive():  # unblock a producer waiting on a full queue
            try:
                q.get(timeout=0.05)
            except queue.Empty:
                pass
        t.join()


def load_frames(path: PathLike, fps: float, size: Optional[Tuple[int, int]] = None,
                info: Optional[MediaInfo] = None) -> Frames:
    """All sampled frames of ``path`` at once (see :func:`iter_frames`)."""
    batches = list(iter_frames(path, fps, size, info=info))
    if not batches:
        h, w = (size[1], size[0]) if size else (0, 0)
        return Frames(np.zeros((0, h, w, 3), np.uint8), np.zeros(0))
    return Frames(np.concatenate([b.frames for b in batches]), np.concatenate([b.times_s for b in batches]))
