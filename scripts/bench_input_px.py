"""µAP of the visual matcher at another model input size, on the matching benchmark (seed 2).

    python scripts/bench_input_px.py 160 [224 ...]

The input size is part of an index (``VisualParams.index_key``), and the score normalization's
noise set is made at 224 px (``model_assets/visual_noise_*.npz``), so for each size this builds
its own noise set the way ``scripts/make_visual_noise.py`` does (kept in memory, not written),
indexes the benchmark's references at that size under a temporary directory, matches every query,
and prints the visual-only and fused µAP. At 224 px it reproduces ``make bench-matching``'s
figures, which checks the procedure. The calibration is the shipped one, fitted at 224 px.
"""
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import make_visual_noise  # noqa: E402
import visual.matcher  # noqa: E402
from fingerprint.evaluate import evaluate_files  # noqa: E402
from fingerprint.pipeline import Library, QueryMatcher, list_media, write_matches  # noqa: E402
from visual import VisualIndex, VisualParams  # noqa: E402
from visual.matcher import sample_frames  # noqa: E402
from visual.model import Descriptor  # noqa: E402

BENCH = Path(__file__).resolve().parents[1] / "bench_data" / "test_seed2"


def main():
    sizes = [int(x) for x in sys.argv[1:]] or [160]
    if not (BENCH / "ground_truth.csv").is_file():
        raise SystemExit(f"{BENCH}: run `make bench-matching` first (it generates the benchmark)")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        videos = make_visual_noise.noise_videos(tmp)
        for px in sizes:
            p = VisualParams(input_px=px)
            noise = Descriptor(p.model, px)(np.concatenate([sample_frames(v, 1.0, p).frames for v in videos]))
            noise = noise.astype(np.float16).astype(np.float32)  # stored as float16, like the shipped sets
            visual.matcher.noise_descriptors = lambda model, noise=noise: noise
            lib = Library.create(tmp / f"index{px}")
            lib.visual = VisualIndex(p)
            lib.add_files(list_media(BENCH / "reference"))
            matcher = QueryMatcher(lib)
            rows = {"visual": [], "both": []}
            t0 = time.perf_counter()
            for q in list_media(BENCH / "query"):
                qid, per_ref = matcher.pair_segments(q)
                rows["visual"] += matcher.finish(matcher.merge(qid, {r: ([], v) for r, (_, v) in per_ref.items()}))
                rows["both"] += matcher.finish(matcher.merge(qid, per_ref))
            t = time.perf_counter() - t0
            res = {}
            for k, segs in rows.items():
                write_matches(segs, tmp / f"{k}{px}.csv")
                res[k] = evaluate_files(BENCH / "ground_truth.csv", tmp / f"{k}{px}.csv").uap
            print(f"{px} px: visual µAP {res['visual']:.3f}, fused µAP {res['both']:.3f}, matching {t:.0f} s",
                  flush=True)


if __name__ == "__main__":
    main()
