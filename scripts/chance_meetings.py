"""How often unrelated audio meets the index by chance: the quantity audio search cost follows.

    python scripts/chance_meetings.py [--work bench_data --seed 2]

Indexes the audio of the generated benchmark's references, then looks up the landmarks of every
query with audio over all speed hypotheses, and counts the meetings with references the query
holds no copy of (from ground_truth.csv). Prints the meetings per query minute per reference
hour, and how many unrelated (query, reference) pairs are met at least ``AUDIO_VOTE.min_hits``
times (those go through the Hough voter).
"""
import argparse
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from audio import fingerprint_file  # noqa: E402
from fingerprint.benchmark import make_benchmark  # noqa: E402
from fingerprint.media import probe  # noqa: E402
from fingerprint.pipeline import Library, list_media, video_id  # noqa: E402
from fusion import AUDIO_VOTE  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", default="bench_data")
    ap.add_argument("--seed", type=int, default=2)
    a = ap.parse_args()
    d = Path(a.work) / f"test_seed{a.seed}"
    if not (d / "ground_truth.csv").is_file():
        make_benchmark(d, n_queries=80, n_refs=30, seed=a.seed, positive_rate=0.23)
    gt = pd.read_csv(d / "ground_truth.csv")
    with tempfile.TemporaryDirectory() as tmp:
        lib = Library.create(Path(tmp) / "ix", modalities=("audio",))
        lib.add_files(list_media(d / "reference"))
        ref_h = sum(lib.audio.ref_durations_s) / 3600
        meetings = query_s = search_s = 0.0
        voted = pairs = 0
        for q in list_media(d / "query"):
            info = probe(q)
            if not info.has_audio:
                continue
            lm = fingerprint_file(q, info=info)
            copied = set(gt[gt.query_id == video_id(q)].ref_id)
            t0 = time.perf_counter()
            hits = lib.audio.query(lm)
            search_s += time.perf_counter() - t0
            for rid, h in hits.items():
                if rid not in copied:
                    meetings += len(h)
                    pairs += 1
                    voted += len(h) >= AUDIO_VOTE.min_hits
            query_s += info.duration_s
    print(f"{len(lib.audio) / ref_h:,.0f} index entries per reference hour; {query_s / 60:.1f} query minutes")
    print(f"chance meetings per query minute per reference hour: {meetings / (query_s / 60) / ref_h:,.0f}")
    print(f"unrelated (query, reference) pairs met at all: {pairs}, of them at least {AUDIO_VOTE.min_hits:g} times: {voted}")
    print(f"audio search: {search_s / (query_s / 60):.3f} s per query minute")


if __name__ == "__main__":
    main()
