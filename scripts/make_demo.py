"""Make the small demo data set: a reference video and a query video that holds an edited copy.

    python scripts/make_demo.py OUT_DIR

The reference is 30 s of moving test pattern with synthesized music; the query is 40 s: 15 s of
unrelated content, then reference 8-18 s played 10% faster (audio re-encoded as AAC 64 kbit/s, with
noise), then unrelated content again. ``truth.txt`` holds the ground truth.
"""
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fingerprint.synth import ffmpeg, music, signal_edit, speed_edit, write_wav  # noqa: E402

SR = 16000


def main(out: str) -> None:
    d = Path(out)
    d.mkdir(parents=True, exist_ok=True)
    ref = music(30.0, SR, seed=11)
    seg = speed_edit(ref[8 * SR:18 * SR], SR, "atempo1.1")
    query = np.concatenate([music(15.0, SR, seed=12), seg, music(40.0 - 15.0 - seg.size / SR, SR, seed=13)])
    query = signal_edit(query, SR, "noise-snr10", seed=1)
    write_wav(d / "reference.wav", ref, SR)
    write_wav(d / "query.wav", query, SR)
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25:duration=30", "-i", str(d / "reference.wav"),
           "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "128k",
           "-shortest", str(d / "reference.mp4"))
    ffmpeg("-f", "lavfi", "-i", f"mandelbrot=size=320x240:rate=25", "-i", str(d / "query.wav"), "-t", "40",
           "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "64k",
           "-shortest", str(d / "query.mp4"))
    for f in ("reference.wav", "query.wav"):
        (d / f).unlink()
    qe = 15.0 + seg.size / SR
    (d / "truth.txt").write_text(f"query {15.0:.2f}-{qe:.2f} s = reference 8.00-18.00 s (speed 1.1x)\n")
    print(f"demo data in {d}/: reference.mp4 (30 s), query.mp4 (40 s)")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "demo_data")
