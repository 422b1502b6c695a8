"""A corpus of bad and odd inputs, generated with ffmpeg: what users upload.

:func:`make_corpus` writes each case into a directory and returns :class:`Case` records saying
whether the file should be read (``ok``) or refused with a one-line error (``not ok``). The table
in docs/bad_inputs.md lists the same cases and what each command does with them.
"""
from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import List

import numpy as np

from fingerprint.synth import music, write_wav
from fingerprint.synth_video import scene_video


@dataclass
class Case:
    name: str
    path: Path
    ok: bool
    what: str


def _ff(*args) -> None:
    proc = subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *map(str, args)],
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")


def _lavfi_video(path: Path, size: str, duration_s: float, fps: int = 30, extra=()) -> Path:
    _ff("-f", "lavfi", "-i", f"testsrc2=s={size}:r={fps}:d={duration_s}", "-c:v", "libx264", "-preset",
        "ultrafast", "-pix_fmt", "yuv420p", *extra, path)
    return path


def make_corpus(d: Path) -> List[Case]:
    """Write the corpus into ``d`` (created) and return its cases, bad ones first."""
    d.mkdir(parents=True, exist_ok=True)
    cases: List[Case] = []
    good = scene_video(d / "_source.mp4", 6.0, seed=777, audio=(music(6.0, 16000, seed=777), 16000))
    data = good.read_bytes()

    p = d / "zero_bytes.mp4"
    p.write_bytes(b"")
    cases.append(Case("zero_bytes", p, False, "zero-byte file"))
    p = d / "truncated.mp4"
    p.write_bytes(data[: len(data) // 2])  # index (moov) at the end: cut off
    cases.append(Case("truncated", p, False, "mp4 cut mid-stream (index at the end, lost)"))
    fs = d / "_faststart.mp4"
    _ff("-i", good, "-c", "copy", "-movflags", "+faststart", fs)
    p = d / "truncated_faststart.mp4"
    p.write_bytes(fs.read_bytes()[: int(fs.stat().st_size * 0.4)])
    fs.unlink()
    cases.append(Case("truncated_faststart", p, False, "mp4 cut mid-stream (index at the front, intact)"))
    p = d / "random_bytes.mp4"
    p.write_bytes(np.random.default_rng(0).integers(0, 256, 50_000, dtype=np.uint8).tobytes())
    cases.append(Case("random_bytes", p, False, "random bytes named .mp4"))
    p = d / "notes.mp4"
    p.write_text("this is a text file\nnot a video\n")
    cases.append(Case("text_file", p, False, "a text file named .mp4"))

    p = d / "audio_only.m4a"
    _ff("-i", write_wav(d / "_a.wav", music(8.0, 16000, seed=778), 16000), "-c:a", "aac", p)
    (d / "_a.wav").unlink()
    cases.append(Case("audio_only", p, True, "audio only (m4a)"))
    p = d / "video_only.mp4"
    _ff("-i", good, "-map", "0:v", "-c", "copy", p)
    cases.append(Case("video_only", p, True, "video only, no audio track"))
    cases.append(Case("one_frame", _lavfi_video(d / "one_frame.mp4", "320x240", 1 / 30), True, "a 1-frame video"))
    cases.append(Case("half_second", _lavfi_video(d / "half_second.mp4", "320x240", 0.5), True, "a 0.5 s video"))
    p = d / "vfr.mp4"
    # frames at uneven times: keep 1, drop 1, keep 3, ... then mux with variable frame timing
    _ff("-f", "lavfi", "-i", "testsrc2=s=320x240:r=30:d=4", "-vf", "select='not(eq(mod(n,5),1))'",
        "-fps_mode", "vfr", "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", p)
    cases.append(Case("variable_frame_rate", p, True, "variable frame rate"))
    p = d / "rotated.mp4"
    _ff("-i", good, "-c", "copy", "-metadata:s:v:0", "rotate=90", p)
    cases.append(Case("rotated", p, True, "rotated 90 degrees by the display matrix (phone video)"))
    cases.append(Case("4k", _lavfi_video(d / "4k.mp4", "3840x2160", 1.0, fps=10), True, "4K (3840x2160)"))
    cases.append(Case("thin", _lavfi_video(d / "thin.mp4", "64x2000", 2.0), True, "very thin (64x2000)"))
    p = d / "silent_audio.mp4"
    _ff("-i", good, "-f", "lavfi", "-i", "anullsrc=r=16000:cl=mono", "-map", "0:v", "-map", "1:a", "-c:v", "copy",
        "-c:a", "aac", "-shortest", p)
    cases.append(Case("silent_audio", p, True, "a silent audio track"))
    p = d / "clip été 日本 (1).mp4"
    _ff("-i", good, "-c", "copy", p)
    cases.append(Case("unicode_name", p, True, "a file name with spaces, accents, CJK and brackets"))
    good.unlink()
    return cases
