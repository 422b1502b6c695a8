"""End-to-end query latency against indexes of growing size (issue P7's latency target).

    python scripts/bench_latency.py [--hours 1 100 1000] [--search auto ivf] [--seconds 120] [--passes 3]
                                    [--decoders auto ffmpeg] [--work bench_data --seed 2]
                                    [--json out.json] [--out table.md]

``scripts/bench_speed.py`` times the search and the voting of one 60 s query on their own and adds
them to the pipeline's own cost. This script times what a user waits for instead:
``QueryMatcher.match_file`` (probe, decoding, landmarks, descriptors, both searches, voting,
fusion, calibration; the audio stage in a thread beside the visual one; the visual search once per
batch of 96 query frames) on the benchmark's queries that hold no copy, at least ``--seconds`` of
them, against a library whose audio and visual indexes are replaced by synthetic ones of each
size, built as ``bench_speed.py`` builds them (edited copies of the benchmark's reference
landmarks; frames drawn with the real descriptors' per-dimension mean and spread). Each size and
visual search mode is timed ``--passes`` times (3) after the indexes' one-off set-up
(``VisualIndex.prepare``, ``AudioIndex.prepare`` and ``fusion.warm_up``, as ``main.py`` does) and a
warm-up query, and the fastest pass is kept.
Reported: seconds per query minute, the ratio to the smallest size, the visual set-up time and
the rows reported (chance matches, as no query copies a synthetic
reference). 1,000 h needs ~12 GB of memory and ~6 minutes on 2 cores.
"""
import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_speed import _synthetic_audio, _synthetic_visual  # noqa: E402
from visual_recall import benchmark_library  # noqa: E402

from fingerprint.media import probe, use_decoder  # noqa: E402
from fingerprint.pipeline import Library, QueryMatcher, list_media, video_id  # noqa: E402
from fusion import warm_up  # noqa: E402


def no_copy_queries(d: Path, seconds: float):
    """``[(path, probe)]`` of the benchmark's first queries that hold no copy, ``seconds`` at least."""
    import pandas as pd

    copied = set(pd.read_csv(d / "ground_truth.csv").query_id)
    out, total = [], 0.0
    for q in list_media(d / "query"):
        if video_id(q) in copied:
            continue
        info = probe(q)
        out.append((q, info))
        total += info.duration_s
        if total >= seconds:
            break
    return out


def measure(d: Path, hours_list, modes, queries, rng, n_passes: int = 3, decoders=("auto",)) -> list:
    base = Library.open(d / "index")
    total_s = sum(info.duration_s for _, info in queries)
    rows = []
    for hours in hours_list:
        lib = Library.open(d / "index")
        lib.audio, _ = _synthetic_audio(base, hours, rng)
        lib.visual = _synthetic_visual(base, hours, rng)
        lib.visual._finalize()  # as an index loaded from disk has it
        for mode in modes:
            lib.visual.params = base.visual.params.with_search(mode)
            t0 = time.perf_counter()
            lib.visual.prepare()
            setup = time.perf_counter() - t0
            t0 = time.perf_counter()
            lib.audio.prepare()  # as main.py does; the warm-up query may have no audio
            warm_up()  # the voting kernels, as main.py does
            audio_setup = time.perf_counter() - t0
            matcher = QueryMatcher(lib)
            for decoder in decoders:
                with use_decoder(decoder):
                    qs = [(q, probe(q)) for q, _ in queries]  # the probe says which decoder reads each file
                matcher.match_file(qs[0][0], info=qs[0][1])  # warm-up: the model and its noise set
                passes = []
                for _ in range(n_passes):
                    t0 = time.perf_counter()
                    n_rows = sum(len(matcher.match_file(q, info=info)) for q, info in qs)
                    passes.append(time.perf_counter() - t0)
                row = {"hours": hours, "search": mode, "visual_method": lib.visual._default_method(),
                       "decoder": qs[0][1].decoder,
                       "s_per_query_minute": min(passes) / total_s * 60, "passes_s": passes,
                       "visual_setup_s": setup, "audio_setup_s": audio_setup, "rows": n_rows, "query_s": total_s}
                rows.append(row)
                print(f"  {hours:g} h, --visual-search {mode} ({row['visual_method']}), decoder {row['decoder']}: "
                      f"{row['s_per_query_minute']:.2f} s per query minute (passes "
                      f"{', '.join(f'{p:.2f}' for p in passes)} s), set-up {setup:.1f} s visual, "
                      f"{audio_setup:.1f} s audio, {n_rows} rows", flush=True)
            lib.visual._pcodes = lib.visual._proj = lib.visual._ivf = lib.visual._f32 = None  # memory for the next mode
        del lib
    return rows


def markdown(rows) -> str:
    def key(r):
        return r["search"], r.get("decoder", "")

    first = {key(r): r["s_per_query_minute"] for r in rows if r["hours"] == rows[0]["hours"]}
    lines = ["| reference hours | visual search | decoder | whole query, per query minute | against the smallest "
             "index | visual set-up (once) | chance rows |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['hours']:g} | {r['search']} ({r['visual_method']}) | {r.get('decoder', '-')} | "
                     f"{r['s_per_query_minute']:.2f} s | {r['s_per_query_minute'] / first[key(r)]:.2f}x | "
                     f"{r['visual_setup_s']:.1f} s | {r['rows']} |")
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hours", type=float, nargs="+", default=[1, 100, 1000])
    ap.add_argument("--search", nargs="+", default=["auto", "ivf"], help="visual search modes (--visual-search)")
    ap.add_argument("--seconds", type=float, default=120.0, help="at least this much query, in seconds")
    ap.add_argument("--work", default="bench_data")
    ap.add_argument("--seed", type=int, default=2)
    ap.add_argument("--passes", type=int, default=3,
                    help="timed passes over the queries per size and mode; the fastest is kept (passes of one "
                         "run differ by up to ~25%% on a shared 2-core machine)")
    ap.add_argument("--decoders", nargs="+", default=["auto"], choices=["auto", "pyav", "ffmpeg"],
                    help="media decoders to time (FINGERPRINT_DECODER), each on the same indexes")
    ap.add_argument("--json", default=None)
    ap.add_argument("--out", default=None, help="markdown table to write")
    a = ap.parse_args()
    d, _ = benchmark_library(Path(a.work), a.seed)
    queries = no_copy_queries(d, a.seconds)
    print(f"{len(queries)} queries without a copy, {sum(i.duration_s for _, i in queries):.0f} s", flush=True)
    rows = measure(d, a.hours, a.search, queries, np.random.default_rng(0), a.passes, a.decoders)
    text = markdown(rows)
    print(text)
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=1))
    if a.out:
        Path(a.out).write_text(text)


if __name__ == "__main__":
    main()
