"""VSC 2022 matching track: code-execution entry point (see the challenge's code-submission page).

Reads ``$VSC_DATA_DIR`` (default ``/data``): ``query_subset.csv`` (column ``video_id``) and the
videos in ``query/``; loads the reference index from ``$VSC_ASSETS_DIR`` (default ``model_assets/``
beside this file); writes ``$VSC_ROOT_DIR/submission/subset_matches.csv`` (default
``/code_execution``) with ``query_id,ref_id,query_start,query_end,ref_start,ref_end,score``.

Today only the audio index (``audio_index.npz``) exists; visual matching, fusion, calibration and the
per-query time budget come with issues P2-P5. Per the challenge rules nothing about the data files is
printed: only counts and timings.
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

ROOT_DIRECTORY = Path(os.environ.get("VSC_ROOT_DIR", "/code_execution"))
DATA_DIRECTORY = Path(os.environ.get("VSC_DATA_DIR", "/data"))
ASSETS_DIRECTORY = Path(os.environ.get("VSC_ASSETS_DIR", HERE / "model_assets"))
OUTPUT_FILE = ROOT_DIRECTORY / "submission" / "subset_matches.csv"
COLUMNS = ["query_id", "ref_id", "query_start", "query_end", "ref_start", "ref_end", "score"]


def generate_matches(query_video_ids) -> pd.DataFrame:
    from audio import AudioIndex, fingerprint_file
    from fingerprint.errors import FingerprintError
    from fusion import AUDIO_VOTE, find_segments

    index = AudioIndex.load(ASSETS_DIRECTORY / "audio_index.npz")
    rows, skipped = [], 0
    for qid in query_video_ids:
        try:
            hits = index.query(fingerprint_file(DATA_DIRECTORY / "query" / f"{qid}.mp4"))
        except FingerprintError:
            skipped += 1
            continue
        for ref_id, h in hits.items():
            for seg in find_segments(h, AUDIO_VOTE):
                seg.query_id, seg.ref_id = str(qid), ref_id
                rows.append(seg.as_row())
    if skipped:
        print(f"skipped {skipped} unreadable queries", file=sys.stderr)
    return pd.DataFrame(rows, columns=COLUMNS)


def main():
    t0 = time.time()
    query_subset = pd.read_csv(DATA_DIRECTORY / "query_subset.csv")
    query_subset_video_ids = query_subset.video_id.values
    matches = generate_matches(query_subset_video_ids)
    OUTPUT_FILE.parent.mkdir(parents=True, exist_ok=True)
    matches.to_csv(OUTPUT_FILE, index=False)
    n = max(len(query_subset_video_ids), 1)
    print(f"{len(query_subset_video_ids)} queries, {len(matches)} rows, {(time.time() - t0) / n:.2f} s per query")


if __name__ == "__main__":
    main()
