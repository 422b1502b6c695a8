"""Audio benchmark: recall per edit and compute cost per minute of query audio.

    python scripts/bench_audio.py [--seeds 5] [--out docs/audio_benchmark.md]

For each edit of ``fingerprint.synth.AUDIO_EDITS`` (plus a 0 dB voice-over) and each seed, a
10 s copy of a 30 s synthesized-music reference is put 15 s into a 40 s query of unrelated music
and edited. A copy counts as found when the strongest segment has all four ends within 0.5 s of
the truth (1 s for speed edits). Unrelated queries measure false positives. Timings: decoding
(ffmpeg to 8 kHz mono), landmark extraction, index lookup and voting, each in seconds per minute
of query audio; decode is the floor the rest is compared with.
"""
import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from audio import AudioIndex, AudioParams, extract_landmarks  # noqa: E402
from fingerprint.media import load_audio  # noqa: E402
from fingerprint.synth import AUDIO_EDITS, music, write_wav  # noqa: E402
from fusion import AUDIO_VOTE, find_segments, warm_up  # noqa: E402
from tests.helpers import SR, copy_case  # noqa: E402


def run(seeds: int):
    p = AudioParams()
    edits = list(AUDIO_EDITS) + ["voice-0db"]
    rows = {}
    t = {"decode": 0.0, "landmarks": 0.0, "lookup": 0.0, "voting": 0.0}
    query_s = 0.0
    n_hashes = 0
    tmp = Path(tempfile.mkdtemp(prefix="bench_audio_"))
    warm_up()  # the compiled voting, so that the first case's clock does not include numba's start-up
    for edit in edits:
        found, errs, scores = 0, [], []
        for seed in range(seeds):
            case = copy_case(tmp, edit, seed=seed)
            ix = AudioIndex(p)
            ix.add("R", extract_landmarks(load_audio(case.ref, p.sr_hz), p))
            t0 = time.perf_counter()
            sig = load_audio(case.query, p.sr_hz)
            t1 = time.perf_counter()
            lm = extract_landmarks(sig, p)
            t2 = time.perf_counter()
            hits = ix.query(lm).get("R")
            t3 = time.perf_counter()
            segs = find_segments(hits, AUDIO_VOTE) if hits is not None else []
            t4 = time.perf_counter()
            for k, dt in zip(t, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
                t[k] += dt
            query_s += sig.duration_s
            n_hashes += len(lm)
            tol = 1.0 if AUDIO_EDITS.get(edit, (1.0,))[0] != 1.0 else 0.5
            if segs:
                s = segs[0]
                err = max(abs(a - b) for a, b in zip((s.query_start, s.query_end, s.ref_start, s.ref_end), case.truth))
                errs.append(err)
                scores.append(s.score)
                found += err <= tol
            else:
                errs.append(float("nan"))
        rows[edit] = (found, seeds, np.nanmedian(errs) if np.isfinite(errs).any() else float("nan"),
                      np.median(scores) if scores else 0.0)
    fp_scores = []
    for seed in range(seeds * 4):
        ix = AudioIndex(p)
        ix.add("R", extract_landmarks(load_audio(write_wav(tmp / "u_ref.wav", music(30.0, SR, seed=5000 + seed), SR), p.sr_hz), p))
        q = write_wav(tmp / "u_q.wav", music(40.0, SR, seed=6000 + seed), SR)
        hits = ix.query(extract_landmarks(load_audio(q, p.sr_hz), p)).get("R")
        segs = find_segments(hits, AUDIO_VOTE) if hits is not None else []
        fp_scores.append(max([s.score for s in segs] + [0.0]))
    return rows, t, query_s, n_hashes, fp_scores


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=5, help="cases per edit (default 5)")
    ap.add_argument("--out", help="also write the report to this Markdown file")
    args = ap.parse_args()
    rows, t, query_s, n_hashes, fp = run(args.seeds)
    per_min = {k: v / (query_s / 60.0) for k, v in t.items()}
    lines = ["| edit | what | found | median end error (s) | median score |", "|---|---|---|---|---|"]
    for edit, (found, n, err, score) in rows.items():
        what = AUDIO_EDITS.get(edit, (1.0, "espeak-ng voice-over at equal loudness"))[1]
        lines.append(f"| {edit} | {what} | {found}/{n} | {err:.2f} | {score:.0f} |")
    total = sum(r[0] for r in rows.values())
    lines.append(f"| **all** | | **{total}/{sum(r[1] for r in rows.values())}** | | |")
    lines += ["", f"Unrelated query/reference pairs: {sum(s > 0 for s in fp)}/{len(fp)} gave a segment "
                  f"(highest score {max(fp):.1f}; the threshold is {AUDIO_VOTE.min_hits}).",
              f"Landmark density on queries: {n_hashes / query_s:.1f} hashes/s.", "",
              "| stage | s per minute of query audio | x decode |", "|---|---|---|"]
    for k, v in per_min.items():
        lines.append(f"| {k} | {v:.4f} | {v / per_min['decode']:.2f} |")
    lines.append(f"| **total** | {sum(per_min.values()):.4f} | {sum(per_min.values()) / per_min['decode']:.2f} |")
    report = "\n".join(lines)
    print(report)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(
            "# Audio landmark benchmark\n\nMade by `" + " ".join(["python scripts/bench_audio.py"] + sys.argv[1:])
            + "` (2-core machine, CPU). Each case: a 10 s copy of a 30 s synthesized-music reference, 15 s into a "
              "40 s query of unrelated music; found = strongest segment's four ends within 0.5 s of the truth "
              "(1 s for speed edits). Index lookup runs every speed hypothesis (11 tempo, 12 resample).\n\n"
            + report + "\n")


if __name__ == "__main__":
    main()
