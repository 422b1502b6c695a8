"""Speed and size against the decoding floor (issue P7), on a generated benchmark.

    python scripts/bench_speed.py [--work bench_data --seed 2 --queries 12 --refs 30]
                                  [--device auto] [--hours 1 10 100 1000] [--workers 1 2]
                                  [--json results.json] [--out docs/speed.md --plot docs/speed.png]
                                  [--with other_machine.json ...]

Per query minute, for the first ``--queries`` queries of the benchmark (seed 2 of
scripts/bench_matching.py, made if missing), each stage is timed on its own, in this order:

- decode floor: decord/ffmpeg decoding what the pipeline decodes (frames at 2 fps, 320 px wide;
  audio at 8 kHz) and nothing else; the frames and audio are kept for the next stages;
- audio landmarks, audio index search + voting, visual views + descriptors, visual index
  search + voting, fusion + calibration, each on the previous stage's output;
- the whole query pipeline (``QueryMatcher.match_file``: probe, decode, everything; decoding
  overlaps the descriptors there).

Each is printed as seconds per query minute, as a ratio to the decode floor measured in the same
run, and as a real-time factor. Also: indexing speed with 1 process (model on every core), with
``--workers`` processes of one model thread each; index bytes (on disk and in memory) per
reference hour; peak RSS; and query latency against synthetic indexes of growing size, whose
hashes and descriptors are drawn like the real ones of this run's index (hash fields from their
measured distributions; descriptors from the measured per-dimension mean and spread).

``--json`` writes the raw figures; ``--with`` adds another run's JSON (e.g. from a GPU machine)
as more columns of the markdown and the plot.
"""
import argparse
import json
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fingerprint.benchmark import make_benchmark  # noqa: E402
from fingerprint.media import iter_frames, load_audio, probe  # noqa: E402
from fingerprint.pipeline import Library, QueryMatcher, list_media, video_id  # noqa: E402

STAGES = [
    ("probe", "probe (ffprobe: streams, sizes, start times)"),
    ("floor", "decode floor (frames at 2 fps + audio at 8 kHz, nothing else)"),
    ("floor_frames", "  of which frames"),
    ("floor_audio", "  of which audio"),
    ("audio_landmarks", "audio landmarks"),
    ("audio_search", "audio index search + voting"),
    ("visual_describe", "visual views + descriptors"),
    ("visual_search", "visual index search + voting"),
    ("fusion", "fusion + calibration"),
    ("pipeline", "whole query pipeline (probe, decode, all stages)"),
]


class Clock:
    def __init__(self):
        self.t = {}

    def __call__(self, key, fn, *a, **k):
        t0 = time.perf_counter()
        out = fn(*a, **k)
        self.t[key] = self.t.get(key, 0.0) + time.perf_counter() - t0
        return out


def machine(device: str) -> str:
    cpu = os.cpu_count()
    desc = f"{cpu} CPU cores ({platform.machine()})"
    if device != "cpu":
        import torch

        desc += f", {torch.cuda.get_device_name(0)}"
    return desc


def stage_times(lib: Library, queries, clock: Clock) -> float:
    """Time every stage of every query into ``clock``; returns the query seconds."""
    from audio import extract_landmarks
    from fusion import AUDIO_VOTE, VISUAL_VOTE, find_segments
    from visual.matcher import _work_size

    matcher = QueryMatcher(lib)
    vm = lib.visual_matcher()
    ap = lib.audio.params
    q_s = 0.0
    for q in queries:
        info = clock("probe", probe, q)
        q_s += info.duration_s
        frames = clock("floor_frames", lambda: list(iter_frames(q, vm.params.query_fps,
                                                                _work_size(info, vm.params.work_width_px),
                                                                batch=96, info=info)))
        sig = clock("floor_audio", load_audio, q, ap.sr_hz, info)
        per_ref = {}
        if len(sig.samples):
            lm = clock("audio_landmarks", extract_landmarks, sig, ap)

            def audio_search():
                for rid, h in lib.audio.query(lm, None, int(np.ceil(AUDIO_VOTE.min_hits))).items():
                    per_ref.setdefault(rid, ([], []))[0].extend(find_segments(h, AUDIO_VOTE))
            clock("audio_search", audio_search)
        qd = clock("visual_describe", lambda: list(vm.describe_frames(frames)))

        def visual_search():
            for rid, h in vm.search_many(qd, [lib.visual])[0].items():
                per_ref.setdefault(rid, ([], []))[1].extend(find_segments(h, VISUAL_VOTE))
        clock("visual_search", visual_search)
        clock("fusion", lambda: matcher.finish(matcher.merge(video_id(q), per_ref)))
        clock("pipeline", matcher.match_file, q)
    clock.t["floor"] = clock.t["floor_frames"] + clock.t["floor_audio"]
    return q_s


def index_times(refs, workers_list, tmp: Path, model: str):
    """Seconds to index ``refs``: one process with the model on every core ("default"), then
    ``w`` processes with one model thread each, for w in ``workers_list`` (w == 1 runs in this
    process). In-process runs are warmed up first (model loaded); a pool's start-up (spawning,
    imports, model loading in each worker) is timed on its own as ``startup:w``."""
    import torch

    from fingerprint import parallel

    out = {}
    nt = torch.get_num_threads()
    for w in ["default"] + list(workers_list):
        parallel._MATCHERS.clear()  # a model session per thread setting
        if w != "default":
            os.environ["FINGERPRINT_MODEL_THREADS"] = "1"  # read by the descriptor, here and in workers
            torch.set_num_threads(1 if w == 1 else nt)
        try:
            if w in ("default", 1):
                Library.create(tmp / f"warm_{w}", visual_model=model).add_files(refs[:1])
            else:
                t0 = time.perf_counter()
                Library.create(tmp / f"start_{w}", visual_model=model).add_files(refs[:1], None, w)
                out[f"startup:{w}"] = time.perf_counter() - t0
            lib = Library.create(tmp / ("ix_default" if w == "default" else f"ix_w{w}"), visual_model=model)
            t0 = time.perf_counter()
            lib.add_files(refs, None, 1 if w == "default" else w)
            out["default" if w == "default" else f"workers={w}"] = time.perf_counter() - t0
            if w == "default":
                lib.save()
        finally:
            os.environ.pop("FINGERPRINT_MODEL_THREADS", None)
            torch.set_num_threads(nt)
    parallel._MATCHERS.clear()
    return out


def _synthetic_audio(lib: Library, hours: float, rng):
    """An audio index of ``hours`` reference hours whose hashes follow the measured field
    distributions of ``lib``'s (f1, df, dt drawn independently), built presorted: the counts per
    hash are drawn at once, so no sort of hundreds of millions of entries is needed."""
    from audio import AudioIndex
    from audio.landmarks import DF_BITS, DT_BITS, HASH_MAX

    h = lib.audio._hash.astype(np.int64)
    ref_h = sum(lib.audio.ref_durations_s) / 3600
    per_hour = len(lib.audio) / ref_h
    p1 = np.bincount(h >> (DF_BITS + DT_BITS), minlength=1 << 8) + 0.01
    p2 = np.bincount((h >> DT_BITS) & ((1 << DF_BITS) - 1), minlength=1 << DF_BITS) + 0.01
    p3 = np.bincount(h & ((1 << DT_BITS) - 1), minlength=1 << DT_BITS) + 0.01
    p = (p1[:, None, None] / p1.sum()) * (p2[None, :, None] / p2.sum()) * (p3[None, None, :] / p3.sum())
    p = p.ravel()[:HASH_MAX]
    n = int(per_hour * hours)
    counts = rng.multinomial(n, p / p.sum())
    hashes = np.repeat(np.arange(HASH_MAX, dtype=np.uint32), counts)
    n_refs = max(1, int(hours * 3600 / 30))  # VSC references last ~30 s
    ids = [f"S{i}" for i in range(n_refs)]
    return AudioIndex.from_arrays(hashes, rng.integers(0, n_refs, n, dtype=np.uint32),
                                  rng.uniform(0, 30, n).astype(np.float32), ids, lib.audio.params,
                                  presorted=True), per_hour


def _synthetic_visual(lib: Library, hours: float, rng):
    from visual import VisualIndex

    real = lib.visual._desc.astype(np.float32)
    mu, sd = real.mean(axis=0), real.std(axis=0)
    n = int(hours * 3600 * lib.visual.params.ref_fps)
    ix = VisualIndex(lib.visual.params)
    for i in range(0, n, 200_000):  # per 200k frames to bound the float32 temporaries
        m = min(200_000, n - i)
        d = rng.normal(size=(m, real.shape[1])).astype(np.float32) * sd + mu
        d /= np.linalg.norm(d, axis=1, keepdims=True)
        ix.add(f"S{i}", np.arange(m, dtype=np.float32), d)
    return ix


def scaling(lib: Library, query_lm, query_desc, hours_list, visual_max_h: float, query_s: float):
    """Search latency (s) of ``query_lm`` / ``query_desc`` (``query_s`` seconds of real query)
    against synthetic indexes of each size; also the entries one query meets per lookup."""
    rng = np.random.default_rng(0)
    rows = []
    for hours in hours_list:
        t0 = time.perf_counter()
        ix, per_hour = _synthetic_audio(lib, hours, rng)
        build = time.perf_counter() - t0
        from fusion import AUDIO_VOTE

        mh = int(np.ceil(AUDIO_VOTE.min_hits))  # as the pipeline asks
        ix.query(query_lm, None, mh)  # the directory is built on first use
        ta = min(_timed(ix.query, query_lm, None, mh) for _ in range(2))
        # voting: every reference met min_hits times goes through the Hough voter; timed on a
        # sample of them and scaled to all
        from fusion import find_segments

        hits = ix.query(query_lm, None, mh)
        ids = sorted(hits)
        sample = [ids[i] for i in np.random.default_rng(1).permutation(len(ids))[:VOTE_SAMPLE]]
        t0 = time.perf_counter()
        n_segs = sum(len(find_segments(hits[i], AUDIO_VOTE)) for i in sample)
        tv = (time.perf_counter() - t0) * len(ids) / max(1, len(sample))
        row = {"hours": hours, "audio_s": ta, "audio_entries": len(ix), "audio_build_s": build,
               "audio_hashes_per_hour": per_hour, "audio_refs_voted": len(ids), "audio_vote_s": tv,
               "audio_vote_sampled": len(sample), "audio_chance_segments_in_sample": n_segs}
        del hits
        del ix
        if hours <= visual_max_h:
            vx = _synthetic_visual(lib, hours, rng)
            vx.search(query_desc[:2], 10)  # builds annoy above exact_max_frames
            row["visual_s"] = min(_timed(vx.search, query_desc, 10) for _ in range(2))
            row["visual_frames"] = len(vx)
            row["visual_annoy"] = vx.uses_annoy
            del vx
        rows.append(row)
        print(f"  {hours:g} h: audio search {ta:.3f} s, voting {tv:.2f} s over {len(ids)} references"
              + (f", visual {row['visual_s']:.3f} s" if "visual_s" in row else ""), flush=True)
    return rows


#: Audio voting at scale is timed on this many references and scaled to all of them.
VOTE_SAMPLE = 2000


def _timed(fn, *a):
    t0 = time.perf_counter()
    fn(*a)
    return time.perf_counter() - t0


def run(a) -> dict:
    from visual.model import resolve_device

    device = resolve_device(a.device)
    os.environ["FINGERPRINT_DEVICE"] = device
    d = Path(a.work) / f"test_seed{a.seed}"
    if not (d / "ground_truth.csv").is_file():
        make_benchmark(d, n_queries=80, n_refs=30, seed=a.seed, positive_rate=0.23)
    refs = list_media(d / "reference")[:a.refs]
    queries = list_media(d / "query")[:a.queries]
    ref_s = sum(probe(r).duration_s for r in refs)
    res = {"machine": machine(device), "device": device, "model": a.visual_model, "benchmark": str(d),
           "refs": len(refs), "ref_s": ref_s, "queries": len(queries)}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        print(f"indexing {len(refs)} references ({ref_s / 60:.1f} min) ...", flush=True)
        res["index_s"] = index_times(refs, a.workers, tmp, a.visual_model)
        files = {m: sum(f.stat().st_size for f in (tmp / "ix_default").glob(f"{m}.*.npz*"))
                 for m in ("audio", "visual")}
        lib = Library.open(tmp / "ix_default")
        hours = ref_s / 3600
        res["index_bytes_per_hour"] = {m: files[m] / hours for m in files}
        res["ram_bytes_per_hour"] = {
            "audio": (lib.audio._hash.nbytes + lib.audio._ref.nbytes + lib.audio._t.nbytes) / hours,
            "visual": (lib.visual._desc.nbytes + lib.visual._ref.nbytes + lib.visual._t.nbytes) / hours}
        QueryMatcher(lib).match_file(queries[0])  # load the models, warm caches
        clock = Clock()
        print(f"timing the stages on {len(queries)} queries ...", flush=True)
        q_s = stage_times(lib, queries, clock)
        res["query_s"] = q_s
        res["stages_s"] = clock.t
        # a real query of about 60 s for the latency curve: landmarks and descriptors of queries
        # laid end to end
        from audio import fingerprint_file
        from audio.landmarks import Landmarks

        parts, descs, ta, tv = [], [], 0.0, 0.0
        vm = lib.visual_matcher()
        for q in list_media(d / "query"):
            info = probe(q)
            if ta < 60 and info.has_audio:
                lm = fingerprint_file(q, info=info)
                parts.append(Landmarks(lm.t_s + ta, lm.f1, lm.f2, lm.dt, lm.hop_s))
                ta += info.duration_s
            if tv < 60:
                descs.append(vm.describe_query(q, info=info).desc)
                tv += info.duration_s
            if min(ta, tv) >= 60:
                break
        t = min(ta, tv)
        qlm = Landmarks(*(np.concatenate([getattr(p, k) for p in parts]) for k in ("t_s", "f1", "f2", "dt")),
                        hop_s=parts[0].hop_s, duration_s=ta)
        qdesc = np.concatenate(descs)
        print(f"latency against synthetic indexes ({t:.0f} s of query: {len(qlm)} landmarks, {len(qdesc)} "
              f"descriptors) ...", flush=True)
        res["latency_query"] = {"seconds": t, "landmarks": len(qlm), "descriptors": int(len(qdesc))}
        res["latency"] = scaling(lib, qlm, qdesc, a.hours, a.visual_max_hours, t)
    res["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return res


def _stage_rows(r: dict):
    qmin = r["query_s"] / 60
    floor = r["stages_s"]["floor"] / qmin
    for key, _ in STAGES:
        s = r["stages_s"].get(key, 0.0) / qmin
        yield key, s, s / floor, (60.0 / s if s > 0 else float("inf"))


def _name(r: dict) -> str:
    """A short label: "2 CPU cores, sscd-distilled" or "H100 GPU (16 CPU cores), sscd"."""
    cores = r["machine"].split(" CPU cores")[0] + " CPU cores"
    if ", NVIDIA " in r["machine"]:
        gpu = r["machine"].split(", NVIDIA ")[1].split()[0]
        return f"{gpu} GPU ({cores}), {r.get('model', 'sscd-distilled')}"
    return f"{cores}, {r.get('model', 'sscd-distilled')}"


def markdown(runs) -> str:
    base = runs[0]  # its latency query describes the curve
    names = [_name(r) for r in runs]
    out = ["Runs (the generated benchmark of seed 2; each run's ratios are against its own decode floor):", ""]
    out += [f"- {_name(r)}: the first {r['queries']} queries ({r['query_s'] / 60:.1f} query minutes), "
            f"{r['refs']} references ({r['ref_s'] / 60:.1f} min)." for r in runs]
    out.append("")
    out += ["| stage, per query minute | " + " | ".join(f"{n}: s (x floor)" for n in names) + " |",
            "|---|" + "---|" * len(runs)]
    rows = [dict((k, (s, x)) for k, s, x, _ in _stage_rows(r)) for r in runs]
    for key, label in STAGES:
        out.append(f"| {label} | " + " | ".join(f"{rw[key][0]:.3f} ({rw[key][1]:.2f}x)" for rw in rows) + " |")
    out.append("| whole pipeline, real-time factor | " + " | ".join(
        f"{60.0 / rw['pipeline'][0]:.0f}x" for rw in rows) + " |")
    out += ["", "Indexing (reference seconds per wall second; speed-up against one process of one model thread):", "",
            "| run | " + " | ".join(names) + " |", "|---|" + "---|" * len(runs)]
    keys = list(dict.fromkeys(k for r in runs for k in r["index_s"] if not k.startswith("startup:")))
    for k in keys:
        cells = []
        for r in runs:
            if k not in r["index_s"]:
                cells.append("-")
                continue
            rt = r["ref_s"] / r["index_s"][k]
            one = r["index_s"].get("workers=1")
            start = r["index_s"].get("startup:" + k.split("=")[-1])
            cells.append(f"{rt:.0f}x" + (f" (speed-up {one / r['index_s'][k]:.2f})" if one else "")
                         + (f"; pool start-up + 1 file: {start:.1f} s" if start else ""))
        label = ("1 process, model on every core" if k == "default"
                 else k.replace("workers=", "") + " worker process(es), 1 model thread each")
        out.append(f"| {label} | " + " | ".join(cells) + " |")
    out += ["", "| size per reference hour | " + " | ".join(names) + " |", "|---|" + "---|" * len(runs)]
    for what, key in (("on disk", "index_bytes_per_hour"), ("in memory", "ram_bytes_per_hour")):
        out.append(f"| {what}: audio / visual (MB) | " + " | ".join(
            f"{r[key]['audio'] / 1e6:.1f} / {r[key]['visual'] / 1e6:.1f}" for r in runs) + " |")
    out.append("| peak RSS of the benchmark process (MB) | "
               + " | ".join(f"{r['peak_rss_mb']:.0f}" for r in runs) + " |")
    lq = base["latency_query"]
    out += ["", f"Latency of one {lq['seconds']:.0f} s query ({lq['landmarks']} landmarks, {lq['descriptors']} view "
                "descriptors) against synthetic indexes drawn like the real one, in seconds. Audio search: lookups "
                "and hits per reference; audio voting: the Hough voter on every reference met at least 12 times "
                f"(timed on up to {VOTE_SAMPLE:,} of them, scaled to all); visual: search of the descriptors.", "",
            "| reference hours | " + " | ".join(f"{n}: audio search | audio voting (references) | visual search"
                                              for n in names) + " |",
            "|---|" + "---|---|---|" * len(runs)]
    hours = sorted({row["hours"] for r in runs for row in r["latency"]})
    for h in hours:
        cells = []
        for r in runs:
            row = next((x for x in r["latency"] if x["hours"] == h), None)
            if row is None:
                cells += ["-", "-", "-"]
                continue
            cells.append(f"{row['audio_s']:.3f}")
            cells.append(f"{row['audio_vote_s']:.2f} ({row['audio_refs_voted']:,})" if "audio_vote_s" in row else "-")
            cells.append(f"{row['visual_s']:.3f}" + (" (annoy)" if row.get("visual_annoy") else "")
                         if "visual_s" in row else "-")
        out.append(f"| {h:g} | " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"


def plot(runs, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    keys = [k for k, _ in STAGES if not k.startswith("floor_")]
    labels = [dict(STAGES)[k] for k in keys]
    w = 0.8 / len(runs)
    for i, r in enumerate(runs):
        x = dict((k, xf) for k, _, xf, _ in _stage_rows(r))
        ax1.barh(np.arange(len(keys)) + i * w, [x[k] for k in keys], height=w,
                 label=_name(r))
    ax1.axvline(1.5, color="k", ls="--", lw=1)
    ax1.text(1.55, keys.index("fusion") + w, "P7's target for the whole pipeline: 1.5x", fontsize=8, va="center")
    ax1.set_yticks(np.arange(len(keys)) + w * (len(runs) - 1) / 2)
    ax1.set_yticklabels([lb.split(" (")[0] for lb in labels], fontsize=8)
    ax1.set_ylim(len(keys), -2.2)
    ax1.set_xlabel("time per query minute, x the decode floor of the same run")
    ax1.legend(fontsize=7, loc="upper right")
    seen = set()
    for r in runs:  # search runs on the CPU: one curve per machine is enough
        lat = r["latency"]
        where = _name(r).split(",")[0]
        if len(lat) < 2 or where in seen:
            continue
        seen.add(where)
        ax2.loglog([x["hours"] for x in lat], [x["audio_s"] for x in lat], "o-", label=f"audio search, {where}")
        av = [x for x in lat if "audio_vote_s" in x]
        if av:
            ax2.loglog([x["hours"] for x in av], [x["audio_vote_s"] for x in av], "^:",
                       label=f"audio voting (sampled), {where}")
        v = [x for x in lat if "visual_s" in x]
        if v:
            ax2.loglog([x["hours"] for x in v], [x["visual_s"] for x in v], "s--",
                       label=f"visual search, {where} (exact; annoy above 55 h)")
    ax2.set_xlabel("reference hours in the index")
    ax2.set_ylabel(f"seconds for one {runs[0]['latency_query']['seconds']:.0f} s query")
    ax2.grid(True, which="both", alpha=0.3)
    ax2.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", default="bench_data")
    ap.add_argument("--seed", type=int, default=2)
    ap.add_argument("--queries", type=int, default=12)
    ap.add_argument("--refs", type=int, default=30, help="index the first N references")
    ap.add_argument("--device", default="auto", help="auto, cpu or cuda (descriptors)")
    ap.add_argument("--visual-model", default="sscd-distilled", choices=["sscd-distilled", "sscd"])
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="worker counts for indexing")
    ap.add_argument("--hours", type=float, nargs="+", default=[1, 10, 100, 1000])
    ap.add_argument("--visual-max-hours", type=float, default=100,
                    help="largest synthetic visual index (annoy build time grows with it)")
    ap.add_argument("--json", default=None, help="write the raw figures here")
    ap.add_argument("--with", dest="others", nargs="*", default=[], help="other runs' JSON to show beside this one")
    ap.add_argument("--from-json", default=None, help="render this run's JSON instead of measuring")
    ap.add_argument("--out", default=None, help="markdown table to write")
    ap.add_argument("--plot", default=None, help="PNG to write")
    a = ap.parse_args()
    res = json.loads(Path(a.from_json).read_text()) if a.from_json else run(a)
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=1))
    runs = [res] + [json.loads(Path(p).read_text()) for p in a.others]
    text = markdown(runs)
    print(text)
    if a.out:
        Path(a.out).write_text(text)
    if a.plot:
        plot(runs, Path(a.plot))


if __name__ == "__main__":
    main()
