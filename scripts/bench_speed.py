"""Speed and size against the decoding floor (issue P7), on a generated benchmark.

    python scripts/bench_speed.py [--work bench_data --seed 2 --queries 20] [--out docs/speed.md]

Per query minute, for the first ``--queries`` queries of the benchmark (made by
scripts/bench_matching.py's seed if missing):
- decode floor: decord/ffmpeg decoding the frames the visual stage samples (2 fps, 320 px wide) and
  the audio at 8 kHz, and nothing else;
- audio landmarks (decode included), audio index search + voting, visual (decode + views +
  descriptors + search + voting), and the whole query pipeline (``QueryMatcher.match_file``);
each as seconds per query minute and as a ratio to the floor measured in the same run. Also:
indexing speed (reference seconds per wall second, 1 and 2 worker processes), index bytes per
reference hour (audio, visual), peak RSS, and query latency against synthetic indexes of growing
size (hashes and descriptors drawn at the real rates: ~50 hashes and 1 frame per reference second).
"""
import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fingerprint.benchmark import make_benchmark  # noqa: E402
from fingerprint.media import iter_audio, iter_frames, probe  # noqa: E402
from fingerprint.pipeline import Library, QueryMatcher, list_media  # noqa: E402


def timed(fn, *a, **k):
    t = time.perf_counter()
    out = fn(*a, **k)
    return out, time.perf_counter() - t


def decode_only(path: Path, info) -> None:
    for _ in iter_audio(path, 8000, info=info):
        pass
    if info.has_video:
        h = max(2, int(round(320 * info.height / info.width / 2)) * 2)
        for _ in iter_frames(path, 2.0, (320, h), batch=96, info=info):
            pass


def scaling(hours_list, query_s: float = 60.0):
    """Query latency (s) of the audio and visual indexes at each size, for a ``query_s`` query."""
    from audio import AudioIndex
    from audio.landmarks import Landmarks
    from visual import VisualIndex

    rng = np.random.default_rng(0)
    rows = []
    nq = int(query_s * 50)
    qlm = Landmarks(t_s=np.sort(rng.uniform(0, query_s, nq)).astype(np.float32),
                    f1=rng.uniform(5, 200, nq).astype(np.float32), f2=rng.uniform(5, 200, nq).astype(np.float32),
                    dt=rng.integers(2, 40, nq).astype(np.int16), hop_s=0.016, duration_s=query_s)
    qdesc = rng.normal(size=(int(query_s * 2 * 3), 512)).astype(np.float32)  # 2 fps, ~3 views per frame
    qdesc /= np.linalg.norm(qdesc, axis=1, keepdims=True)
    for hours in hours_list:
        n_h = int(hours * 3600 * 50)
        ix = AudioIndex()
        per = 3600 * 50  # one reference per hour of hashes keeps the id table small
        for r in range(int(np.ceil(n_h / per))):
            n = min(per, n_h - r * per)
            ix.add(f"R{r}", Landmarks(t_s=rng.uniform(0, 3600, n).astype(np.float32),
                                       f1=rng.uniform(5, 200, n).astype(np.float32),
                                       f2=rng.uniform(5, 200, n).astype(np.float32),
                                       dt=rng.integers(2, 40, n).astype(np.int16), hop_s=0.016, duration_s=3600.0))
        ix._finalize()
        _, ta = timed(ix.query, qlm)
        tv = float("nan")
        n_f = int(hours * 3600)
        if n_f <= 400_000:
            vx = VisualIndex()
            d = rng.normal(size=(n_f, 512)).astype(np.float32)
            d /= np.linalg.norm(d, axis=1, keepdims=True)
            vx.add("R", np.arange(n_f, dtype=np.float32), d)
            del d
            vx.search(qdesc[:4], 10)  # build (annoy above exact_max_frames)
            _, tv = timed(vx.search, qdesc, 10)
        rows.append((hours, ta, tv))
        del ix
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", default="bench_data")
    ap.add_argument("--seed", type=int, default=2)
    ap.add_argument("--queries", type=int, default=20)
    ap.add_argument("--hours", type=float, nargs="+", default=[1, 10, 100, 1000])
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    d = Path(a.work) / f"test_seed{a.seed}"
    if not (d / "ground_truth.csv").is_file():
        make_benchmark(d, n_queries=80, n_refs=30, seed=a.seed, positive_rate=0.23)
    refs = list_media(d / "reference")
    ref_s = sum(probe(r).duration_s for r in refs)
    lines = []
    with tempfile.TemporaryDirectory() as tmp:
        # indexing, 1 and 2 worker processes
        t_idx = {}
        for w in (1, 2):
            lib = Library.create(Path(tmp) / f"ix{w}")
            _, t_idx[w] = timed(lib.add_files, refs, None, w)
            lib.save()
        files = {m: sum(f.stat().st_size for f in (Path(tmp) / "ix1").glob(f"{m}.*.npz*")) for m in ("audio", "visual")}
        lib = Library.open(Path(tmp) / "ix1")
        matcher = QueryMatcher(lib)
        matcher.match_file(list_media(d / "query")[0])  # load models
        queries = list_media(d / "query")[:a.queries]
        tot = {k: 0.0 for k in ("floor", "audio_fp", "audio_search", "visual", "pipeline")}
        q_s = 0.0
        from audio import fingerprint_file
        from fusion import AUDIO_VOTE, find_segments
        for q in queries:
            info = probe(q)
            q_s += info.duration_s
            tot["floor"] += timed(decode_only, q, info)[1]
            lm, t = timed(fingerprint_file, q, info=info)
            tot["audio_fp"] += t
            tot["audio_search"] += timed(lambda: [find_segments(h, AUDIO_VOTE)
                                                  for h in lib.audio.query(lm).values()])[1]
            tot["visual"] += timed(lib.visual_matcher().query, q, lib.visual, info=info)[1]
            tot["pipeline"] += timed(matcher.match_file, q)[1]
    qmin = q_s / 60
    floor = tot["floor"] / qmin
    lines += [f"Queries: the first {len(queries)} of `{d}` ({qmin:.1f} query minutes). 2 CPU cores.", "",
              "| stage (per query minute) | seconds | x decode floor |", "|---|---|---|"]
    names = {"floor": "decode floor (frames at 2 fps + audio at 8 kHz, nothing else)",
             "audio_fp": "audio landmarks (decode included)", "audio_search": "audio index search + voting",
             "visual": "visual: decode + views + SSCD + search + voting", "pipeline": "whole query pipeline"}
    for k, name in names.items():
        lines.append(f"| {name} | {tot[k] / qmin:.2f} | {tot[k] / qmin / floor:.2f} |")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    hours = ref_s / 3600
    lines += ["", f"Indexing {len(refs)} references ({ref_s / 60:.1f} min): {t_idx[1]:.1f} s with 1 process "
                  f"({ref_s / t_idx[1]:.0f}x real time), {t_idx[2]:.1f} s with 2 worker processes "
                  f"({ref_s / t_idx[2]:.0f}x real time, speed-up {t_idx[1] / t_idx[2]:.2f}).",
              f"Index size per reference hour: audio {files['audio'] / hours / 1e6:.1f} MB, visual "
              f"{files['visual'] / hours / 1e6:.1f} MB.", f"Peak RSS of this benchmark process: {rss:.0f} MB.", ""]
    rows = scaling(a.hours)
    lines += ["Query latency for a 60 s query against synthetic indexes (random hashes at 50/s; random unit "
              "descriptors at 1 fps, exact search up to 200k frames, annoy above; visual above 400k frames "
              "not built here):", "", "| reference hours | audio search (s) | visual search, 360 query "
              "descriptors (s) |", "|---|---|---|"]
    for h, ta, tv in rows:
        lines.append(f"| {h:g} | {ta:.3f} | {'-' if np.isnan(tv) else f'{tv:.3f}'} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if a.out:
        Path(a.out).write_text(text)


if __name__ == "__main__":
    main()
