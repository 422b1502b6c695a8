"""Synthesized, real-world-like video for tests, benchmarks and the demo data set.

:func:`scene_video` writes "footage": shots of a slowly panning and zooming camera over random
photo-like still images (smooth colour gradients, 1/f texture, dozens of shaded and textured
shapes), with a few textured sprites moving over them and hard cuts between shots. It is not a
test pattern: different seeds give visually unrelated content, and an image-copy-detection CNN
sees structure in every frame. :data:`VIDEO_EDITS` / :func:`edit_video` apply the usual copy
transformations with ffmpeg, and :func:`copy_query` builds a query that holds an edited segment of
a reference between unrelated scenes, with its ground truth.

Everything is deterministic for a seed: numpy's RNG draws the content and x264 runs
single-threaded, so a seed gives the same bytes on every run of one ffmpeg build.

>>> scene_video("ref.mp4", 40.0, seed=3)                          # doctest: +SKIP
>>> q, truth = copy_query("tmp", "ref.mp4", "hflip", seed=1)      # doctest: +SKIP
"""
from __future__ import annotations

import json
import struct
import subprocess
import tempfile
import zlib
from pathlib import Path
from typing import Optional, Sequence, Tuple, Union

import numpy as np
from scipy.ndimage import gaussian_filter

from fingerprint.synth import write_wav

PathLike = Union[str, Path]

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"

#: x264 settings of every file written here. x264's frame threads make its output vary from run
#: to run, so it runs single-threaded, in a second ffmpeg process fed raw frames by the one that
#: decodes and filters (see :func:`_pipe_encode`): the two use two cores, and a seed gives the same
#: bytes on every run of one ffmpeg build.
_X264 = ["-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-threads", "1"]
#: Lossless, fast x264 for intermediate files that only this module reads back.
_X264_LOSSLESS = ["-c:v", "libx264", "-preset", "ultrafast", "-qp", "0", "-pix_fmt", "yuv420p", "-threads", "1"]


def _pipe_encode(src_args: Sequence[str], size: Tuple[int, int], fps: float, dst: PathLike,
                 enc_args: Sequence[str] = (), rate: Sequence[str] = ("-crf", "20"),
                 codec: Sequence[str] = _X264) -> Path:
    """Run ``ffmpeg src_args`` (inputs, filters, ``-map``; its video output must be ``size``
    (width, height) pixels) as constant-``fps`` raw yuv420p into a second ffmpeg that encodes it
    with ``codec`` and ``rate`` to ``dst``. ``enc_args`` go to the second ffmpeg between its raw
    video input (input 0) and the encoder options: more inputs (audio) and maps. Raises
    RuntimeError with ffmpeg's message if either fails."""
    dst = Path(dst)
    w, h = int(size[0]), int(size[1])
    with tempfile.TemporaryFile() as err1:
        # One filter thread: the other core is the encoder's.
        dec = subprocess.Popen(["ffmpeg", "-nostdin", "-v", "error", "-filter_complex_threads", "1",
                                "-filter_threads", "1", *src_args, "-f", "rawvideo", "-pix_fmt", "yuv420p",
                                "-fps_mode", "cfr", "-r", str(fps), "-"], stdout=subprocess.PIPE, stderr=err1)
        enc = subprocess.Popen(["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "yuv420p",
                                "-s", f"{w}x{h}", "-r", str(fps), "-i", "-", *enc_args, "-map", "0:v", *codec,
                                *rate, str(dst)], stdin=dec.stdout, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        dec.stdout.close()
        err2 = enc.communicate()[1]
        dec.wait()
        err1.seek(0)
        msg1 = err1.read().decode(errors="replace").strip()
    if dec.returncode != 0 or enc.returncode != 0:
        raise RuntimeError("ffmpeg " + " ".join(map(str, src_args)) + ": "
                           + (msg1 if dec.returncode != 0 else err2.decode(errors="replace").strip()))
    return dst


# ---------------------------------------------------------------------------------------------
# still images
# ---------------------------------------------------------------------------------------------

def _write_png(path: Path, img: np.ndarray) -> Path:
    """Write uint8 ``(h, w, 3)`` RGB or ``(h, w, 4)`` RGBA as PNG (stored, unfiltered: fast to write and read)."""
    h, w, c = img.shape
    rows = np.concatenate([np.zeros((h, 1), np.uint8), np.ascontiguousarray(img, np.uint8).reshape(h, w * c)], axis=1)

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2 if c == 3 else 6, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(rows.tobytes(), 0))
                     + chunk(b"IEND", b""))
    return path


def _pink_noise(rng: np.random.Generator, h: int, w: int, beta: float = 2.0) -> np.ndarray:
    """``(h, w)`` float32 noise with a 1/f^beta power spectrum (natural-image-like), std 1."""
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    f = np.sqrt(fx ** 2 + fy ** 2)
    f[0, 0] = 1.0
    spec = (rng.standard_normal(f.shape) + 1j * rng.standard_normal(f.shape)) / f ** (beta / 2)
    spec[0, 0] = 0.0
    x = np.fft.irfft2(spec, s=(h, w))
    return (x / (x.std() or 1.0)).astype(np.float32)


def _gradient(rng: np.random.Generator, h: int, w: int, colours: np.ndarray) -> np.ndarray:
    """``(h, w, 3)`` float32 bilinear blend of a random 2x2 to 4x4 grid of palette colours."""
    gh, gw = int(rng.integers(2, 5)), int(rng.integers(2, 5))
    grid = (colours[rng.integers(0, len(colours), (gh, gw))] + rng.normal(0, 20, (gh, gw, 3))).astype(np.float32)

    def weights(n: int, g: int) -> np.ndarray:  # (n, g) linear-interpolation weights
        pos = np.linspace(0, g - 1, n)
        return np.maximum(0.0, 1.0 - np.abs(pos[:, None] - np.arange(g)[None, :])).astype(np.float32)

    rows = (weights(h, gh) @ grid.reshape(gh, gw * 3)).reshape(h, gw, 3)
    return np.einsum("hjc,wj->hwc", rows, weights(w, gw), optimize=True).astype(np.float32)


def _palette(rng: np.random.Generator) -> np.ndarray:
    """5-8 RGB colours (0-255 float) around one or two random hues, like a scene's palette."""
    n = int(rng.integers(5, 9))
    hues = rng.uniform(0, 1, 2)
    h = (hues[rng.integers(0, 2, n)] + rng.normal(0, 0.08, n)) % 1.0
    s = rng.uniform(0.15, 0.9, n)
    v = rng.uniform(0.25, 1.0, n)
    k = (np.array([5.0, 3.0, 1.0])[None, :] + h[:, None] * 6) % 6
    rgb = v[:, None] - v[:, None] * s[:, None] * np.clip(np.minimum(k, 4 - k), 0, 1)
    return (rgb * 255).astype(np.float32)


def _shape_mask(rng: np.random.Generator, kind: str, hh: int, ww: int) -> np.ndarray:
    """Boolean ``(hh, ww)`` mask of one shape filling its bounding box."""
    yy, xx = np.mgrid[0:hh, 0:ww].astype(np.float32)
    cy, cx = (hh - 1) / 2, (ww - 1) / 2
    if kind == "ellipse":
        return ((yy - cy) / max(hh / 2, 1)) ** 2 + ((xx - cx) / max(ww / 2, 1)) ** 2 <= 1.0
    if kind == "rect":
        return np.ones((hh, ww), bool)
    # Star-shaped polygon: 3-10 vertices at sorted angles, random radii (rotated boxes too).
    nv = int(rng.integers(3, 11))
    ang = np.sort(rng.uniform(0, 2 * np.pi, nv))
    rad = rng.uniform(0.45, 1.0, nv)
    py = cy + rad * np.sin(ang) * hh / 2
    px = cx + rad * np.cos(ang) * ww / 2
    qy, qx = np.roll(py, -1), np.roll(px, -1)
    Y, X = yy[..., None], xx[..., None]
    with np.errstate(divide="ignore", invalid="ignore"):
        cross = ((py > Y) != (qy > Y)) & (X < (qx - px) * (Y - py) / (qy - py) + px)
    return (cross.sum(-1) % 2) == 1


def _paint_shapes(rng: np.random.Generator, img: np.ndarray, n: int, palette: np.ndarray, texture: np.ndarray,
                  max_frac: float) -> None:
    """Paint ``n`` random shapes onto float ``img`` (in place), biggest first. Each is an ellipse,
    box, polygon or striped region of a palette colour with lighting, optionally noise-textured;
    its size (longest side) is log-uniform between 2% and ``max_frac`` of the image's short side;
    ``texture`` is a noise field of the image's size that textured shapes take windows of."""
    H, W = img.shape[:2]
    sizes = np.sort(np.exp(rng.uniform(np.log(0.02), np.log(max_frac), n)))[::-1] * min(H, W)
    for size in sizes:
        aspect = float(np.exp(rng.uniform(-1.0, 1.0)))
        hh, ww = (size / aspect, size) if aspect >= 1 else (size, size * aspect)
        hh, ww = min(max(3, int(hh)), H), min(max(3, int(ww)), W)
        y0, x0 = int(rng.integers(-hh // 3, H - 2 * hh // 3)), int(rng.integers(-ww // 3, W - 2 * ww // 3))
        kind = str(rng.choice(["ellipse", "rect", "poly", "poly", "stripes"]))
        mask = _shape_mask(rng, "rect" if kind == "stripes" and rng.random() < 0.5 else
                           ("ellipse" if kind == "stripes" else kind), hh, ww)
        colour = palette[rng.integers(0, len(palette))] + rng.normal(0, 25, 3)
        yy, xx = np.mgrid[0:hh, 0:ww].astype(np.float32)
        a = rng.uniform(0, 2 * np.pi)
        ramp = (np.cos(a) * (xx / ww - 0.5) + np.sin(a) * (yy / hh - 0.5))  # lighting, [-0.7, 0.7]
        fill = colour[None, None, :] * (1.0 + rng.uniform(0.2, 0.7) * ramp)[..., None]
        if kind == "stripes":
            period = rng.uniform(4, 24)
            b = rng.uniform(0, np.pi)
            on = np.sin(2 * np.pi * (np.cos(b) * xx + np.sin(b) * yy) / period) > 0
            other = palette[rng.integers(0, len(palette))]
            fill = np.where(on[..., None], fill, other[None, None, :])
        if rng.random() < 0.6:  # texture: a random window of the shared noise field
            ty, tx = int(rng.integers(0, texture.shape[0] - hh + 1)), int(rng.integers(0, texture.shape[1] - ww + 1))
            fill = fill * (1.0 + rng.uniform(0.05, 0.3) * texture[ty:ty + hh, tx:tx + ww, None])
        # Clip the box to the image.
        sy0, sx0 = max(0, -y0), max(0, -x0)
        sy1, sx1 = min(hh, H - y0), min(ww, W - x0)
        if sy1 <= sy0 or sx1 <= sx0:
            continue
        m = mask[sy0:sy1, sx0:sx1]
        dst = img[y0 + sy0:y0 + sy1, x0 + sx0:x0 + sx1]
        dst[m] = fill[sy0:sy1, sx0:sx1][m]


def _background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A random photo-like ``(h, w, 3)`` uint8 still: gradient, 1/f texture, 30-80 shapes."""
    palette = _palette(rng)
    img = _gradient(rng, h, w, palette)
    texture = _pink_noise(rng, h, w, beta=rng.uniform(1.6, 2.4))
    img *= (1.0 + 0.15 * texture)[..., None]
    if rng.random() < 0.5:  # a "horizon": the lower part is ground of another colour
        yh = int(rng.uniform(0.35, 0.75) * h)
        ground = _gradient(rng, h - yh, w, palette) * (1.0 + 0.3 * texture[yh:, :, None])
        img[yh:] = ground
    _paint_shapes(rng, img, int(rng.integers(30, 81)), palette, texture, max_frac=0.45)
    img = gaussian_filter(img, sigma=(rng.uniform(0.6, 1.3), rng.uniform(0.6, 1.3), 0))
    img += 3.0 * rng.standard_normal(img.shape, dtype=np.float32)  # sensor grain
    return np.clip(img, 0, 255).astype(np.uint8)


def _sprite(rng: np.random.Generator, side: int) -> np.ndarray:
    """A random textured RGBA ``(side, side, 4)`` uint8 object with a soft-edged outline."""
    palette = _palette(rng)
    img = np.zeros((side, side, 3), np.float32)
    alpha = np.zeros((side, side), np.float32)
    texture = _pink_noise(rng, side, side)
    # Body: one big polygon or ellipse, then details on it.
    body = _shape_mask(rng, str(rng.choice(["ellipse", "poly", "poly"])), side, side)
    img[body] = palette[rng.integers(0, len(palette))] * (1.0 + 0.25 * texture[body, None])
    alpha[body] = 1.0
    _paint_shapes(rng, img, int(rng.integers(4, 12)), palette, texture, max_frac=0.5)
    img *= (alpha > 0)[..., None]
    alpha = gaussian_filter(alpha, 1.0)
    img = gaussian_filter(img, sigma=(0.7, 0.7, 0))
    return np.concatenate([np.clip(img, 0, 255), alpha[..., None] * 255], axis=2).astype(np.uint8)


# ---------------------------------------------------------------------------------------------
# scene video
# ---------------------------------------------------------------------------------------------

def _scene_graph(tmp: Path, duration_s: float, seed: int, size: Tuple[int, int], fps: int, first_input: int = 0,
                 tag: str = "") -> Tuple[list, list, str, int]:
    """Build one scene of :func:`scene_video` as part of an ffmpeg filter graph: writes its stills
    into ``tmp`` and returns ``(input_args, filter_chains, output_label, n_frames)``. Its inputs are
    numbered from ``first_input`` and its labels start with ``tag``, so several scenes can share a
    graph; the output is ``n_frames`` yuv420p frames at ``fps`` of ``size`` with pts from 0."""
    rng = np.random.default_rng(seed)
    W, H = int(size[0]), int(size[1])
    n_frames = max(1, int(round(duration_s * fps)))
    n_bg = int(rng.integers(2, 5))
    bgs = [_write_png(tmp / f"{tag}bg{i}.png", _background(rng, 2 * H, 2 * W)) for i in range(n_bg)]
    n_sp = int(rng.integers(1, 4))
    sp_sides = [int(rng.uniform(0.25, 0.5) * H) for _ in range(n_sp)]
    sprites = [_write_png(tmp / f"{tag}sp{j}.png", _sprite(rng, s)) for j, s in enumerate(sp_sides)]

    # Shot list: (background, frames, zoom start/end, pan start/end as fractions of the slack).
    shots, done, prev = [], 0, -1
    while done < n_frames:
        n = min(n_frames - done, int(rng.uniform(2.0, 5.0) * fps))
        if 0 < n_frames - done - n < fps:  # no sub-second tail shot
            n = n_frames - done
        b = int(rng.integers(0, n_bg)) if prev < 0 else (prev + int(rng.integers(1, n_bg))) % n_bg
        z0, fx0, fy0 = rng.uniform(1.1, 2.2), rng.uniform(0, 1), rng.uniform(0, 1)
        z1 = float(np.clip(z0 * np.exp(rng.uniform(-0.3, 0.3)), 1.1, 2.2))
        fx1, fy1 = np.clip([fx0 + rng.uniform(-0.5, 0.5), fy0 + rng.uniform(-0.5, 0.5)], 0, 1)
        shots.append((b, n, (z0, z1), (fx0, fx1), (fy0, fy1)))
        done, prev = done + n, b

    inputs, chains = [], []
    for k, (b, n, z, fx, fy) in enumerate(shots):
        inputs += ["-i", str(bgs[b])]
        prog = f"(on/{max(n - 1, 1)})"
        chains.append(
            f"[{first_input + k}:v]format=yuv420p,loop=loop={n - 1}:size=1:start=0,setpts=N/({fps}*TB),"
            f"zoompan=z='{z[0]:.4f}+{z[1] - z[0]:.4f}*{prog}'"
            f":x='(iw-iw/zoom)*({fx[0]:.4f}+{fx[1] - fx[0]:.4f}*{prog})'"
            f":y='(ih-ih/zoom)*({fy[0]:.4f}+{fy[1] - fy[0]:.4f}*{prog})'"
            f":d=1:s={W}x{H}:fps={fps},setsar=1[{tag}s{k}]")
    chains.append("".join(f"[{tag}s{k}]" for k in range(len(shots)))
                  + f"concat=n={len(shots)}:v=1:a=0[{tag}v0]")
    for j, (sp, side) in enumerate(zip(sprites, sp_sides)):
        inputs += ["-i", str(sp)]
        chains.append(f"[{first_input + len(shots) + j}:v]format=yuva420p,loop=loop=-1:size=1:start=0,"
                      f"setpts=N/({fps}*TB)[{tag}p{j}]")
        if rng.random() < 0.6:  # Lissajous path inside the frame
            px, py = rng.uniform(4, 14, 2)
            ax, ay = rng.uniform(0, 2 * np.pi, 2)
            xe = f"(W-w)*(0.5+0.5*sin(2*PI*t/{px:.3f}+{ax:.3f}))"
            ye = f"(H-h)*(0.5+0.5*sin(2*PI*t/{py:.3f}+{ay:.3f}))"
        else:  # drift across the frame and wrap around
            vx, vy = rng.choice([-1, 1], 2) * rng.uniform(15, 60, 2)
            x0, y0 = rng.uniform(0, W + side), rng.uniform(0, H + side)
            xe = f"mod({x0:.2f}+({vx:.3f})*t+100000*(W+w),W+w)-w"
            ye = f"mod({y0:.2f}+({vy:.3f})*t+100000*(H+h),H+h)-h"
        chains.append(f"[{tag}v{j}][{tag}p{j}]overlay=x='{xe}':y='{ye}':eval=frame:shortest=1[{tag}v{j + 1}]")
    chains.append(f"[{tag}v{n_sp}]format=yuv420p,trim=end_frame={n_frames}[{tag}out]")
    return inputs, chains, f"{tag}out", n_frames


def scene_video(path: PathLike, duration_s: float, seed: int, size: Tuple[int, int] = (320, 240), fps: int = 30,
                audio: Optional[Tuple[np.ndarray, int]] = None) -> Path:
    """Write ``duration_s`` seconds of synthesized "footage" as H.264 mp4 (yuv420p, CRF 20) at
    ``size`` (width, height) pixels and ``fps`` frames/s: exactly ``round(duration_s * fps)`` frames.

    Two to four random photo-like stills (twice the frame size) are the sets; the clip is a series
    of 2-5 s shots (hard cuts), each a slow pan (up to half the still's slack) and zoom (x0.74 to
    x1.35, within 1.1-2.2, i.e. showing 45-90% of the still's width) over one still, and one to
    three textured sprites (a quarter to half the frame's height) move over all shots along
    Lissajous or drifting paths. ``audio``: optional ``(samples float32, sr_hz)`` muxed as AAC
    96 kbit/s (padded or cut to the video's length); None writes no audio track. Returns
    ``Path(path)``.
    """
    path = Path(path)
    with tempfile.TemporaryDirectory(prefix="scene_") as tmp:
        tmp = Path(tmp)
        inputs, chains, out, n_frames = _scene_graph(tmp, duration_s, seed, size, fps)
        audio_args = []
        if audio is not None:
            samples, sr = audio
            wav = write_wav(tmp / "audio.wav", np.asarray(samples, np.float32), int(sr))
            audio_args = ["-i", str(wav), "-map", "1:a", "-af", f"apad,atrim=0:{n_frames / fps:.6f}",
                          "-c:a", "aac", "-b:a", "96k"]
        script = tmp / "graph.txt"
        script.write_text(";\n".join(chains))
        _pipe_encode([*inputs, "-filter_complex_script", str(script), "-map", f"[{out}]", "-frames:v", str(n_frames)],
                     size, fps, path, audio_args)
    return path


# ---------------------------------------------------------------------------------------------
# edits
# ---------------------------------------------------------------------------------------------

#: Video edits, by name: (speed factor the edit applies, what it does). Speed is reference seconds
#: per query second (2.0: the copy plays twice as fast and lasts half as long).
VIDEO_EDITS = {
    "none": (1.0, "re-encoded H.264 CRF 20"),
    "lowbitrate": (1.0, "re-encoded H.264 at 100 kbit/s"),
    "half-size": (1.0, "scaled to half width and height (output 160x120 for a 320x240 clip)"),
    "crop20": (1.0, "central 80% of width and height cropped, scaled back to full size"),
    "letterbox": (1.0, "squeezed to 3/4 height (320x180) between black bars top and bottom"),
    "pillarbox": (1.0, "squeezed to 3/4 width (240x240) between black bars left and right"),
    "hflip": (1.0, "mirrored left-right"),
    "color": (1.0, "brightness +0.1, contrast x1.4, saturation x1.8, gamma 0.8 (eq)"),
    "grayscale": (1.0, "colour removed"),
    "blur": (1.0, "Gaussian blur, sigma 3 px"),
    "noise": (1.0, "temporal noise, strength 25 (noise alls=25:allf=t)"),
    "text": (1.0, "large white caption in a dark box over about a quarter of the frame"),
    "rotate10": (1.0, "rotated 10 degrees, black corners"),
    "pip": (1.0, "scaled to 50% and overlaid on another video (picture in picture)"),
    "stack2x2": (1.0, "one cell of a 2x2 grid of four videos, each at half size"),
    "hstack2": (1.0, "left or right half of two videos side by side, each squeezed to half width"),
    "vstack2": (1.0, "top or bottom half of two videos stacked, each squeezed to half height"),
    "blend": (1.0, "blended 65/35 with another video (semi-transparent overlay of a whole scene)"),
    "overlay": (1.0, "an opaque image (a textured object, like a sticker or emoji) over ~12% of the frame"),
    "speed0.5": (0.5, "played at half speed (setpts=2*PTS), 30 fps"),
    "speed2": (2.0, "played at double speed (setpts=0.5*PTS), 30 fps"),
    "fps15": (1.0, "frame rate reduced to 15 fps"),
}

#: How many other videos an edit needs (``others`` of :func:`edit_video`).
OTHER_VIDEOS = {"pip": 1, "stack2x2": 3, "hstack2": 1, "vstack2": 1, "blend": 1}

_CAPTIONS = ["LIVE NOW", "MUST SEE", "EXCLUSIVE", "BREAKING", "WATCH NOW", "TOP CLIPS", "REPLAY"]


def _video_size(path: PathLike) -> Tuple[int, int]:
    """(width, height) of the first video stream, by ffprobe."""
    out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
                          "stream=width,height", "-of", "json", str(path)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=True).stdout
    s = json.loads(out)["streams"][0]
    return int(s["width"]), int(s["height"])


def _even(x: float) -> int:
    return max(2, int(round(x / 2)) * 2)


def edit_video(src: PathLike, dst: PathLike, edit: str, seed: int = 0, others: Sequence[PathLike] = ()) -> Path:
    """Apply one :data:`VIDEO_EDITS` edit to the whole of ``src`` with ffmpeg and write H.264 mp4
    ``dst`` without audio. The output keeps ``src``'s size and 30 fps, except ``half-size`` (half
    the size) and ``fps15`` (15 fps); its duration is ``src``'s divided by the edit's speed.
    ``seed`` picks the caption of ``text``, the sticker of ``overlay`` and the position of
    composite layouts; ``others`` are the other videos that ``pip``, ``hstack2``, ``vstack2``,
    ``blend`` (one) and ``stack2x2`` (three) need (:data:`OTHER_VIDEOS`), looped if shorter than
    ``src``. Returns ``Path(dst)``."""
    if edit not in VIDEO_EDITS:
        raise ValueError(f"unknown video edit {edit!r}; known: {', '.join(VIDEO_EDITS)}")
    dst = Path(dst)
    rng = np.random.default_rng(seed + 7919)
    W, H = _video_size(src)
    inputs = ["-i", str(src)]
    crf = ["-crf", "20"]
    vf = {
        "none": "null",
        "lowbitrate": "null",
        "half-size": f"scale={_even(W / 2)}:{_even(H / 2)}",
        "crop20": f"crop={_even(0.8 * W)}:{_even(0.8 * H)},scale={W}:{H}",
        "letterbox": f"scale={W}:{_even(0.75 * H)},pad={W}:{H}:0:(oh-ih)/2:black",
        "pillarbox": f"scale={_even(0.75 * W)}:{H},pad={W}:{H}:(ow-iw)/2:0:black",
        "hflip": "hflip",
        "color": "eq=brightness=0.1:contrast=1.4:saturation=1.8:gamma=0.8",
        "grayscale": "hue=s=0",
        "blur": "gblur=sigma=3",
        "noise": "noise=alls=25:allf=t",
        "rotate10": "rotate=10*PI/180:fillcolor=black",
        "speed0.5": "setpts=2*PTS,fps=30",
        "speed2": "setpts=0.5*PTS,fps=30",
        "fps15": "fps=15",
    }.get(edit)
    if edit == "text":
        caption = _CAPTIONS[int(rng.integers(0, len(_CAPTIONS)))]
        fs = int(round(0.17 * H))
        vf = (f"drawtext=fontfile={FONT}:text='{caption}':fontsize={fs}:fontcolor=white"
              f":box=1:boxcolor=black@0.6:boxborderw={int(0.1 * H)}"
              f":x=(w-text_w)/2:y={int(0.66 * H)}")
    if edit == "lowbitrate":
        crf = ["-b:v", "100k", "-maxrate", "100k", "-bufsize", "200k"]
    if edit == "overlay":
        side = _even(0.35 * H)
        png = _write_png(Path(str(dst) + ".sticker.png"), _sprite(rng, side))
        x, y = int(rng.integers(0, W - side + 1)), int(rng.integers(0, H - side + 1))
        try:
            return _pipe_encode(["-i", str(src), "-i", str(png), "-filter_complex",
                                 f"[0:v][1:v]overlay={x}:{y},format=yuv420p[v]", "-map", "[v]"], (W, H), 30, dst,
                                rate=crf)
        finally:
            png.unlink()
    if edit in OTHER_VIDEOS:
        need = OTHER_VIDEOS[edit]
        if len(others) < need:
            raise ValueError(f"edit {edit!r} needs {need} other video(s), got {len(others)}")
        for o in others[:need]:
            inputs += ["-stream_loop", "-1", "-i", str(o)]
        if edit in ("hstack2", "vstack2"):
            cw, ch = (_even(W / 2), H) if edit == "hstack2" else (W, _even(H / 2))
            first = int(rng.integers(0, 2))  # the clip's side
            order = [0, 1] if first == 0 else [1, 0]
            stack = "hstack" if edit == "hstack2" else "vstack"
            graph = "".join(f"[{i}:v]scale={cw}:{ch},setsar=1,fps=30[c{k}];" for k, i in enumerate(order))
            graph += f"[c0][c1]{stack}=inputs=2:shortest=1,scale={W}:{H},format=yuv420p[v]"
        elif edit == "blend":
            graph = (f"[1:v]scale={W}:{H},setsar=1,fps=30,format=yuv420p[b];[0:v]setsar=1,fps=30,format=yuv420p[a];"
                     "[a][b]blend=all_expr='A*0.65+B*0.35':shortest=1,format=yuv420p[v]")
        elif edit == "pip":
            pw, ph = _even(W / 2), _even(H / 2)
            x, y = int(rng.integers(0, W - pw + 1)), int(rng.integers(0, H - ph + 1))
            graph = (f"[1:v]scale={W}:{H},setsar=1,fps=30[bg];[0:v]scale={pw}:{ph},setsar=1,fps=30[fg];"
                     f"[bg][fg]overlay={x}:{y}:eof_action=endall:shortest=1,format=yuv420p[v]")
        else:
            cw, ch = _even(W / 2), _even(H / 2)
            cell = int(rng.integers(0, 4))
            order = [1, 2, 3]
            order.insert(cell, 0)  # the clip's input sits at grid cell ``cell`` (row-major)
            graph = "".join(f"[{i}:v]scale={cw}:{ch},setsar=1,fps=30[c{k}];" for k, i in enumerate(order))
            graph += ("[c0][c1][c2][c3]xstack=inputs=4:layout=0_0|w0_0|0_h0|w0_h0:shortest=1,"
                      f"scale={W}:{H},format=yuv420p[v]")
        # The looped others never end: stop at the clip's last frame.
        n = _frame_count(src)
        return _pipe_encode([*inputs, "-filter_complex", graph, "-map", "[v]", "-frames:v", str(n)],
                            (W, H), 30, dst, rate=crf)
    size = (_even(W / 2), _even(H / 2)) if edit == "half-size" else (W, H)
    return _pipe_encode([*inputs, "-map", "0:v", "-vf", vf + ",format=yuv420p"], size,
                        15 if edit == "fps15" else 30, dst, rate=crf)


def _frame_count(path: PathLike) -> int:
    """Number of video frames, from the container (``nb_frames``), counted by decoding if absent."""
    out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
                          "stream=nb_frames", "-of", "json", str(path)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=True).stdout
    n = json.loads(out)["streams"][0].get("nb_frames")
    if n and str(n).isdigit():
        return int(n)
    out = subprocess.run(["ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0", "-show_entries",
                          "stream=nb_read_frames", "-of", "json", str(path)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=True).stdout
    return int(json.loads(out)["streams"][0]["nb_read_frames"])


# ---------------------------------------------------------------------------------------------
# queries with ground truth
# ---------------------------------------------------------------------------------------------

#: Seeds of the unrelated scenes of :func:`copy_query` are ``FILL_SEED_BASE + 8 * seed + k``:
#: keep reference seeds below this so that no query contains its reference's content by chance.
FILL_SEED_BASE = 1_000_000


def copy_query(tmp_dir: PathLike, ref_path: PathLike, edit: str, seed: int, ref_start_s: float = 8.0,
               seg_s: float = 10.0, before_s: float = 15.0, after_s: float = 15.0) -> Tuple[Path, tuple]:
    """A 320x240, 30 fps H.264 query mp4 (no audio) in ``tmp_dir`` holding ``ref_path[ref_start_s :
    ref_start_s + seg_s]`` under one :data:`VIDEO_EDITS` edit, between ``before_s`` and
    ``after_s`` seconds of unrelated scenes (:func:`scene_video` content of seeds
    ``FILL_SEED_BASE + 8 * seed`` and ``+ 1``; ``pip``/``stack2x2`` use ``+ 2`` to ``+ 4``). The
    segment is cut frame-accurately (decoded and re-encoded losslessly), edited with
    :func:`edit_video`, then scaled to fit 320x240 and padded (``half-size`` is scaled back up).
    Returns ``(query_path, truth)`` with truth ``(query_start, query_end, ref_start, ref_end)`` in
    seconds: ``(before_s, before_s + seg_s / speed, ref_start_s, ref_start_s + seg_s)``."""
    if edit not in VIDEO_EDITS:
        raise ValueError(f"unknown video edit {edit!r}; known: {', '.join(VIDEO_EDITS)}")
    tmp = Path(tmp_dir)
    tmp.mkdir(parents=True, exist_ok=True)
    speed = VIDEO_EDITS[edit][0]
    tag = f"{Path(ref_path).stem}_{edit}_{seed}"
    fill = FILL_SEED_BASE + 8 * seed
    query = tmp / f"{tag}_query.mp4"
    with tempfile.TemporaryDirectory(prefix="query_", dir=tmp) as work:
        work = Path(work)
        seg = _pipe_encode(["-ss", f"{ref_start_s:.6f}", "-i", str(ref_path), "-t", f"{seg_s:.6f}", "-map", "0:v"],
                           _video_size(ref_path), 30, work / "seg.mp4", rate=(), codec=_X264_LOSSLESS)
        n_others = OTHER_VIDEOS.get(edit, 0)
        others = [scene_video(work / f"other{k}.mp4", seg_s + 0.5, fill + 2 + k) for k in range(n_others)]
        edited = edit_video(seg, work / "edited.mp4", edit, seed=seed, others=others)
        # The filler scenes are rendered straight into the query's one encode.
        b_in, b_chains, b_out, n_b = _scene_graph(work, before_s, fill, (320, 240), 30, 0, "b")
        mid = len(b_in) // 2
        a_in, a_chains, a_out, n_a = _scene_graph(work, after_s, fill + 1, (320, 240), 30, mid + 1, "a")
        norm = ("scale=320:240:force_original_aspect_ratio=decrease,pad=320:240:(ow-iw)/2:(oh-ih)/2:black,"
                "setsar=1,fps=30,format=yuv420p,setpts=PTS-STARTPTS")
        chains = [*b_chains, *a_chains, f"[{mid}:v]{norm}[mid]", f"[{b_out}][mid][{a_out}]concat=n=3:v=1:a=0[q]"]
        script = work / "graph.txt"
        script.write_text(";\n".join(chains))
        n_mid = int(round(seg_s / speed * 30))
        _pipe_encode([*b_in, "-i", str(edited), *a_in, "-filter_complex_script", str(script), "-map", "[q]",
                      "-frames:v", str(n_b + n_mid + n_a)], (320, 240), 30, query)
    truth = (before_s, before_s + seg_s / speed, ref_start_s, ref_start_s + seg_s)
    return query, truth
