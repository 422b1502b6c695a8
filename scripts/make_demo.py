"""Make the small demo data set: a reference video and a query video that holds an edited copy.

    python scripts/make_demo.py OUT_DIR

The reference is 30 s of synthesized footage with synthesized music. The query is 40 s: 15 s of
unrelated footage, then reference 8-18 s mirrored left-right with its audio re-encoded at 64 kbit/s
under noise (SNR 10 dB), then unrelated footage again. ``truth.txt`` holds the ground truth.
"""
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fingerprint.synth import ffmpeg, music, signal_edit, write_wav  # noqa: E402
from fingerprint.synth_video import copy_query, scene_video  # noqa: E402

SR = 16000


def main(out: str) -> None:
    d = Path(out)
    d.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="demo_"))
    ref_audio = music(30.0, SR, seed=11)
    ref = scene_video(d / "reference.mp4", 30.0, seed=11, audio=(ref_audio, SR))
    silent_query, truth = copy_query(tmp, ref, "hflip", seed=11)
    q_audio = np.concatenate([music(15.0, SR, seed=12), ref_audio[8 * SR:18 * SR], music(15.0, SR, seed=13)])
    wav = write_wav(tmp / "query.wav", signal_edit(q_audio, SR, "noise-snr10", seed=1), SR)
    ffmpeg("-i", str(silent_query), "-i", str(wav), "-map", "0:v", "-map", "1:a", "-c:v", "copy",
           "-c:a", "aac", "-b:a", "64k", "-shortest", str(d / "query.mp4"))
    qs, qe, rs, re_ = truth
    (d / "truth.txt").write_text(f"query {qs:.2f}-{qe:.2f} s = reference {rs:.2f}-{re_:.2f} s "
                                 "(video mirrored, audio noisy)\n")
    print(f"demo data in {d}/: reference.mp4 (30 s), query.mp4 (40 s)")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "demo_data")
