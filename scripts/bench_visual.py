"""Visual benchmark: descriptor speed per model, recall per edit per model, annoy vs exact.

    python scripts/bench_visual.py [--seeds 2] [--out docs/visual_benchmark.md]

Cases: a 10 s copy of a 30 s synthesized reference, 15 s into a 40 s query of unrelated scenes,
under each edit of ``fingerprint.synth_video.VIDEO_EDITS``; found = the strongest segment's four
ends within 1 s of the truth. Each case is generated once and matched with both models.
"""
import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fingerprint.synth_video import VIDEO_EDITS, copy_query, scene_video  # noqa: E402
from fusion import VISUAL_VOTE, find_segments  # noqa: E402
from visual import VisualIndex, VisualMatcher, VisualParams, sample_frames  # noqa: E402
from visual.model import resize  # noqa: E402

MODELS = ["sscd-distilled", "sscd"]


def speed(matchers, clip):
    rows = []
    p = VisualParams()
    t0 = time.perf_counter()
    fr = sample_frames(clip, 2.0, p)
    t_dec = time.perf_counter() - t0
    n = len(fr.frames)
    for name, m in matchers.items():
        x = resize(fr.frames, p.input_px)
        m.descriptor._infer(x[:8])  # warm-up
        t0 = time.perf_counter()
        for i in range(0, n, 32):
            m.descriptor._infer(x[i:i + 32])
        t_model = time.perf_counter() - t0
        rows.append((name, n / t_dec, n / t_model, n / (t_dec + t_model)))
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=2, help="cases per edit (default 2)")
    ap.add_argument("--out", help="also write the report to this Markdown file")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench_visual_"))
    matchers = {name: VisualMatcher(VisualParams(model=name)) for name in MODELS}
    found = {name: {e: 0 for e in VIDEO_EDITS} for name in MODELS}
    errs = {name: [] for name in MODELS}
    match_s = {name: 0.0 for name in MODELS}
    query_s = 0.0
    qdesc = []
    fp = {name: [] for name in MODELS}
    for seed in range(args.seeds):
        ref = scene_video(tmp / f"ref{seed}.mp4", 30.0, seed=400 + seed)
        indexes = {}
        for name, m in matchers.items():
            indexes[name] = VisualIndex(m.params)
            indexes[name].add("R", *m.describe_reference(ref))
        for edit in VIDEO_EDITS:
            query, truth = copy_query(tmp, ref, edit, seed=400 + seed)
            query_s += truth[0] + 15.0 + (truth[1] - truth[0])
            for name, m in matchers.items():
                t0 = time.perf_counter()
                hits = m.query(query, indexes[name]).get("R")
                segs = find_segments(hits, VISUAL_VOTE) if hits is not None else []
                match_s[name] += time.perf_counter() - t0
                if segs:
                    s = segs[0]
                    err = max(abs(a - b) for a, b in zip((s.query_start, s.query_end, s.ref_start, s.ref_end), truth))
                    errs[name].append(err)
                    found[name][edit] += err <= 1.0
            if seed == 0:
                m = matchers[MODELS[0]]
                qdesc.append(m.embed(sample_frames(query, 2.0, m.params).frames))
        for k in range(3):
            u = scene_video(tmp / f"u{seed}_{k}.mp4", 40.0, seed=800 + 10 * seed + k)
            for name, m in matchers.items():
                hits = m.query(u, indexes[name]).get("R")
                segs = find_segments(hits, VISUAL_VOTE) if hits is not None else []
                fp[name].append(max([s.score for s in segs] + [0.0]))

    lines = ["## Recall per edit (found / cases; ends within 1 s)", "",
             "| edit | what | " + " | ".join(MODELS) + " |", "|---|---|" + "---|" * len(MODELS)]
    for e, (_, what) in VIDEO_EDITS.items():
        lines.append(f"| {e} | {what} | " + " | ".join(f"{found[n][e]}/{args.seeds}" for n in MODELS) + " |")
    n_cases = len(VIDEO_EDITS) * args.seeds
    lines.append("| **all** | | " + " | ".join(f"**{sum(found[n].values())}/{n_cases}**" for n in MODELS) + " |")
    lines += ["", "| model | median end error of found (s) | unrelated queries with a segment | "
                  "matching s per query minute (decode + views + search + vote) |", "|---|---|---|---|"]
    for n in MODELS:
        lines.append(f"| {n} | {np.median(errs[n]):.2f} | {sum(s > 0 for s in fp[n])}/{len(fp[n])} | "
                     f"{match_s[n] / (query_s / 60):.1f} |")

    # Descriptor speed.
    clip = scene_video(tmp / "speed.mp4", 30.0, seed=999)
    lines += ["", "## Descriptor speed (2 threads, 224 px, batches of 32)", "",
              "| model | decode fps (2 fps sampling, 320 px) | model fps | decode + model fps |", "|---|---|---|---|"]
    for name, dec, mod, both in speed(matchers, clip):
        lines.append(f"| {name} | {dec:.0f} | {mod:.0f} | {both:.0f} |")

    # Annoy against exact search on real descriptors: the noise set plus references as the index.
    m = matchers[MODELS[0]]
    lines += ["", "## Annoy against exact search", "",
              f"Index: the {len(m.noise)} frames of the noise set (centred); queries: "
              f"{sum(len(q) for q in qdesc)} query frames of the seed-0 cases.", "",
              "| n_trees | search_k | recall@10 | ms per query frame |", "|---|---|---|---|"]
    q = np.concatenate(qdesc)
    for trees, sk in [(32, -1), (32, 5000), (64, 20000)]:
        ix = VisualIndex(VisualParams(exact_max_frames=0, annoy_trees=trees, annoy_search_k=sk))
        ix.add("noise", np.zeros(len(m.noise)), m.noise)
        _, exact = ix.search(q, 10, method="exact")
        ix.search(q[:1], 10, method="annoy")
        t0 = time.perf_counter()
        _, approx = ix.search(q, 10, method="annoy")
        ms = (time.perf_counter() - t0) * 1000 / len(q)
        rec = np.mean([len(set(a) & set(e)) / 10 for a, e in zip(approx, exact)])
        lines.append(f"| {trees} | {sk} | {rec:.3f} | {ms:.2f} |")
    report = "\n".join(lines)
    print(report)
    if args.out:
        Path(args.out).write_text(
            "# Visual benchmark\n\nMade by `" + " ".join(["python scripts/bench_visual.py"] + sys.argv[1:])
            + "` on a 2-core CPU machine (onnxruntime CPU). Synthesized scenes "
              "(`fingerprint.synth_video`), not real footage: absolute similarities are not those of VSC.\n\n"
            + report + "\n")


if __name__ == "__main__":
    main()
