"""VSC 2022 matching track: the code-execution entry point (see the challenge's code-submission page).

Reads ``$VSC_DATA_DIR`` (default ``/data``): ``query_subset.csv`` (column ``video_id``) and the
videos in ``query/``. Loads the reference index from ``$VSC_ASSETS_DIR`` (default
``model_assets/`` beside this file): ``index/`` (made by ``fingerprint index``) and
``calibration.npz``. Writes ``$VSC_ROOT_DIR/submission/subset_matches.csv`` (default root
``/code_execution``) with ``query_id,ref_id,query_start,query_end,ref_start,ref_end,score``.

Time budget (``$VSC_QUERY_BUDGET_S``, default 10 s per query; ``$VSC_TOTAL_LIMIT_S``, default
140 min for the whole run):

- the run keeps a schedule of budget x queries done. A query that starts behind it uses the cheaper
  visual settings (1 fps, no layout views) until the run is back on schedule;
- within a query, the visual stage is skipped if the audio stage alone used up that query's budget;
- once the total limit is 5 minutes away, the remaining queries get no rows, and the file is still
  written;
- a query that cannot be read (or whose id is not a plain name) is skipped. It is counted, never
  named.

Per the challenge rules nothing about the data files is printed: only counts and timings. The
submitted full_matches.csv is never read.
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
QUERY_BUDGET_S = float(os.environ.get("VSC_QUERY_BUDGET_S", "10"))
TOTAL_LIMIT_S = float(os.environ.get("VSC_TOTAL_LIMIT_S", str(140 * 60)))
COLUMNS = ["query_id", "ref_id", "query_start", "query_end", "ref_start", "ref_end", "score"]


def _find_query(qid: str) -> Path:
    """The query file of an id: ``query/<id>.mp4``, or another extension if that is what exists."""
    p = DATA_DIRECTORY / "query" / f"{qid}.mp4"
    if p.is_file():
        return p
    others = sorted((DATA_DIRECTORY / "query").glob(f"{qid}.*"))
    return others[0] if others else p


def generate_matches(query_video_ids) -> pd.DataFrame:
    from fingerprint.errors import FingerprintError
    from fingerprint.pipeline import Library, QueryMatcher, check_id
    from fusion import Calibration, warm_up

    t_process = time.monotonic()
    # the searches' one-off set-up, before the first query's clock starts (on the GPU the
    # descriptors run on, if any, the visual rows are copied there)
    lib = Library.open(ASSETS_DIRECTORY / "index").prepare_search()
    warm_up()  # the voting kernels: compiled once (~2.5 s), then loaded from numba's cache (~0.6 s)
    cal_path = ASSETS_DIRECTORY / "calibration.npz"
    matcher = QueryMatcher(lib, calibration=Calibration.load(cal_path if cal_path.is_file() else None))
    t_start = time.monotonic()  # the schedule starts once the index and models are loaded
    rows, skipped, cheap_n, not_run = [], 0, 0, 0
    for n_done, qid in enumerate(query_video_ids):
        now = time.monotonic()
        if now - t_process > TOTAL_LIMIT_S - 300:
            not_run = len(query_video_ids) - n_done
            break
        cheap = (now - t_start) > n_done * QUERY_BUDGET_S
        cheap_n += cheap
        try:
            qid = check_id(str(qid), "query_subset.csv")
            qid_, per_ref = matcher.pair_segments(_find_query(qid), qid, cheap=cheap,
                                                  deadline=now + QUERY_BUDGET_S)
            rows += [s.as_row() for s in matcher.finish(matcher.merge(qid_, per_ref))]
        except FingerprintError:
            skipped += 1
        except Exception:  # noqa: BLE001 - one bad query must not cost the whole run
            skipped += 1
    print(f"{skipped} queries skipped, {cheap_n} on cheaper settings, {not_run} not run (time limit)",
          file=sys.stderr)
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
    from fingerprint.errors import FingerprintError

    try:
        main()
    except FingerprintError as exc:  # a missing or damaged index: one line, not a traceback
        print(f"main.py: error: {exc}", file=sys.stderr)
        sys.exit(2)
