"""What the per-hash cap of the audio search (``AudioParams.max_hits_per_hash``, a query-time
knob) does to chance meetings, voting time and the copies found, as the index grows.

    python scripts/audio_cap_scaling.py [--hours 100 1000] [--caps 200 100 50 25]

For each size, a synthetic audio index made like ``bench_speed``'s (edited copies of the generated
benchmark's references; copy 0 of each is the reference itself), and for each cap:
- the 60 s latency query of ``bench_speed`` (queries with no copy): its meetings, the references
  met ``AUDIO_VOTE.min_hits`` times, search and voting seconds (best of 2), chance segments;
- every benchmark query with audio and a copy: how many ground-truth rows get an audio segment
  with the reference's copy 0 that overlaps the copied query interval, and the median of their
  calibrated scores (P(copy), as `fingerprint match` reports them); and how many segments of the
  latency query (all chance) keep a calibrated score of at least ``FUSE.min_score``, and the best.

Caveat: the synthetic copies repeat each real landmark ~50 times per transposition and tempo at
1,000 h, so the copied reference's own hashes are crowded there too, and a low cap removes them
more readily than in a real collection.
"""
import argparse
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_speed import _synthetic_audio, latency_query  # noqa: E402
from audio import fingerprint_file  # noqa: E402
from fingerprint.benchmark import make_benchmark  # noqa: E402
from fingerprint.media import probe  # noqa: E402
from fingerprint.pipeline import Library, list_media  # noqa: E402
from fusion import AUDIO_VOTE, FUSE, Calibration, find_segments_many, merge_modalities  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", default="bench_data")
    ap.add_argument("--seed", type=int, default=2)
    ap.add_argument("--hours", type=float, nargs="+", default=[100, 1000])
    ap.add_argument("--caps", type=int, nargs="+", default=[200, 100, 50, 25])
    a = ap.parse_args()
    d = Path(a.work) / f"test_seed{a.seed}"
    if not (d / "ground_truth.csv").is_file():
        make_benchmark(d, n_queries=80, n_refs=30, seed=a.seed, positive_rate=0.23)
    lib = Library.create(Path(tempfile.mkdtemp()), modalities=("audio",))  # in memory only, never saved
    lib.add_files(list_media(d / "reference"))
    gt = pd.read_csv(d / "ground_truth.csv")
    copied = {}
    for qid in sorted(set(gt.query_id)):
        info = probe(d / "query" / f"{qid}.mp4")
        if info.has_audio:
            copied[qid] = fingerprint_file(d / "query" / f"{qid}.mp4", info=info)
    rows = gt[gt.query_id.isin(copied)]
    qlm, _, t = latency_query(d)
    print(f"latency query: {t:.0f} s, {len(qlm)} landmarks; {len(rows)} copied rows in {len(copied)} queries "
          "with audio", flush=True)
    mh = int(np.ceil(AUDIO_VOTE.min_hits))
    cal = Calibration.load()

    def calibrated(segs_by_ref):
        """{ref: [P(copy) per segment]} of audio-only segments, as the pipeline scores them."""
        return {rid: [x.score for x in cal.apply(merge_modalities(segs, [], FUSE))]
                for rid, segs in segs_by_ref.items()}

    print("| hours | cap | meetings | references met 12 times | search (s) | voting (s) "
          "| chance segments (P >= min_score; best P) | copied rows found | their median P(copy) |\n"
          "|---|---|---|---|---|---|---|---|---|")
    for hours in a.hours:
        ix, _ = _synthetic_audio(lib, hours, np.random.default_rng(0))
        base = ix.params
        for cap in a.caps:
            ix.params = replace(base, max_hits_per_hash=cap)
            meetings = len(ix.query_table(qlm).flat)
            times_s, times_v = [], []
            for _ in range(2):
                t0 = time.perf_counter()
                table = ix.query_table(qlm, None, mh)
                t1 = time.perf_counter()
                segs = find_segments_many(table, AUDIO_VOTE)
                times_s.append(t1 - t0)
                times_v.append(time.perf_counter() - t1)
            found, scores = 0, []
            for qid, lm in copied.items():
                got = find_segments_many(ix.query_table(lm, None, mh), AUDIO_VOTE)
                for _, g in rows[rows.query_id == qid].iterrows():
                    rid = f"S{lib.audio.ref_ids.index(g.ref_id)}_0"  # copy 0: the reference itself
                    ok = [x for x in got.get(rid, []) if x.query_end > g.query_start and x.query_start < g.query_end]
                    found += bool(ok)
                    if ok:
                        scores.append(max(calibrated({rid: ok})[rid]))
            chance = [p for ps in calibrated(segs).values() for p in ps]
            kept = sum(p >= FUSE.min_score for p in chance)
            print(f"| {hours:g} | {cap} | {meetings:,} | {len(table):,} | {min(times_s):.3f} | {min(times_v):.3f} | "
                  f"{len(chance)} ({kept}; best {max(chance, default=0):.2f}) | {found} / {len(rows)} | "
                  f"{np.median(scores) if scores else 0:.2f} |", flush=True)
        del ix


if __name__ == "__main__":
    main()
