"""Make the visual noise set for score normalization: model_assets/visual_noise_<model>.npz.

    python scripts/make_visual_noise.py [--videos 40] [--seconds 25] [--models sscd-distilled sscd]

Frames of synthesized scenes (``fingerprint.synth_video.scene_video``, seeds 90000+, a range no
test, benchmark or demo uses) and of ffmpeg's generative sources, sampled at 1 fps and described
with each model. At query time a frame's similarity to its nearest noise frames measures how
"generic" it looks; that much is subtracted from its similarities to the references (VSC baseline).
Deterministic: the same command gives the same arrays.
"""
import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fingerprint.storage import save_arrays  # noqa: E402
from fingerprint.synth import ffmpeg  # noqa: E402
from fingerprint.synth_video import scene_video  # noqa: E402
from visual import VisualParams  # noqa: E402
from visual.matcher import ASSETS, sample_frames  # noqa: E402
from visual.model import Descriptor  # noqa: E402

LAVFI = ["mandelbrot=size=320x240:rate=30", "life=size=320x240:rate=30:seed=7:mold=10",
         "cellauto=size=320x240:rate=30:rule=30:seed=3", "gradients=size=320x240:rate=30:seed=5:speed=0.05",
         "testsrc2=size=320x240:rate=30", "smptehdbars=size=320x240:rate=30"]


def noise_videos(tmp: Path, videos: int = 40, seconds: float = 25.0) -> list:
    """The noise set's source videos, written under ``tmp``: ``videos`` synthesized scenes and one
    clip of each of ffmpeg's generative sources (``LAVFI``), ``seconds`` long each."""
    paths = [scene_video(tmp / f"n{i}.mp4", seconds, seed=90000 + i) for i in range(videos)]
    for j, src in enumerate(LAVFI):
        out = tmp / f"l{j}.mp4"
        ffmpeg("-f", "lavfi", "-i", src, "-t", str(seconds), "-pix_fmt", "yuv420p", "-c:v", "libx264",
               "-preset", "veryfast", str(out))
        paths.append(out)
    return paths


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--videos", type=int, default=40)
    ap.add_argument("--seconds", type=float, default=25.0)
    ap.add_argument("--models", nargs="+", default=["sscd-distilled", "sscd"])
    args = ap.parse_args()
    paths = noise_videos(Path(tempfile.mkdtemp(prefix="visual_noise_")), args.videos, args.seconds)
    for model in args.models:
        p = VisualParams(model=model)
        desc = Descriptor(model, p.input_px)
        frames = [sample_frames(path, 1.0, p).frames for path in paths]
        d = desc(np.concatenate(frames))
        out = ASSETS / f"visual_noise_{model}.npz"
        save_arrays(out, "visual-noise", 1, {"desc": d.astype(np.float16)},
                    {"model": model, "frames": int(len(d)), "made_by": "scripts/make_visual_noise.py",
                     "videos": args.videos, "seconds": args.seconds, "lavfi": LAVFI})
        print(f"{out}: {len(d)} frames")


if __name__ == "__main__":
    main()
