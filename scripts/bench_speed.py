"""Speed and size against the decoding floor (issue P7), on a generated benchmark.

    python scripts/bench_speed.py [--work bench_data --seed 2 --queries 12 --refs 30]
                                  [--device auto] [--hours 1 10 100 1000] [--workers 1 2]
                                  [--json results.json] [--out docs/speed.md --plot docs/speed.png]
                                  [--with other_machine.json ...]

Per query minute, for the first ``--queries`` queries of the benchmark (seed 2 of
scripts/bench_matching.py, made if missing), each stage is timed on its own, in this order:

- decode floor: the pipeline's decoder (PyAV in-process; ffprobe, ffmpeg and decord without it)
  decoding what the pipeline decodes (frames at 2 fps, 320 px wide; audio at 8 kHz) and nothing
  else; the frames and audio are kept for the next stages. For comparison, probe + decode with
  ffprobe, ffmpeg and decord (``FINGERPRINT_DECODER=ffmpeg``, the decoder before PyAV);
- audio landmarks, audio index search + voting, visual views + descriptors, visual index
  search + voting, fusion + calibration, each on the previous stage's output;
- the whole query pipeline (``QueryMatcher.match_file``: probe, decode, everything; decoding
  overlaps the descriptors there), and again with the cheaper visual settings that ``main.py``
  falls back to under time pressure (queries at 1 fps, no mirror or layout views).

Each is printed as seconds per query minute, as a ratio to the decode floor measured in the same
run, and as a real-time factor. Also: indexing speed with 1 process (model on every core), with
``--workers`` processes of one model thread each; index bytes (on disk and in memory) per
reference hour; peak RSS; and query latency against synthetic indexes of growing size, whose
hashes and descriptors are drawn like the real ones of this run's index (hash fields from their
measured distributions; descriptors from the measured per-dimension mean and spread).

On the CPU the model runs in OpenVINO where it is installed (a column's name says which runtime);
``FINGERPRINT_MODEL_BACKEND=onnxruntime`` times onnxruntime instead. ``--json`` writes the raw
figures; ``--with`` adds another run's JSON (e.g. from a GPU machine) as more columns of the
markdown and the plot.
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
from fingerprint.media import iter_frames, load_audio, probe, use_decoder  # noqa: E402
from fingerprint.pipeline import Library, QueryMatcher, list_media, video_id  # noqa: E402
from fusion import warm_up  # noqa: E402

STAGES = [
    ("probe", "probe (streams, sizes, start times)"),
    ("floor", "decode floor (frames at 2 fps + audio at 8 kHz, nothing else)"),
    ("floor_frames", "  of which frames"),
    ("floor_audio", "  of which audio"),
    ("floor_ffmpeg", "  probe + decode with ffprobe, ffmpeg and decord (the decoder before PyAV)"),
    ("audio_landmarks", "audio landmarks"),
    ("audio_search", "audio index search + voting"),
    ("visual_describe", "visual views + descriptors"),
    ("visual_search", "visual index search + voting"),
    ("fusion", "fusion + calibration"),
    ("pipeline", "whole query pipeline (probe, decode, all stages)"),
    ("pipeline_batch", "whole pipeline over the batch (match_files: next file probed ahead)"),
    ("pipeline_cheap", "whole query pipeline, cheaper visual settings (1 fps, no views)"),
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


def _decode_with_ffmpeg(q, vparams, sr_hz: int) -> None:
    """Probe and decode ``q`` as the floor does, with ffprobe, ffmpeg and decord."""
    from visual.matcher import _work_size

    with use_decoder("ffmpeg"):
        info = probe(q)
        list(iter_frames(q, vparams.query_fps, _work_size(info, vparams.work_width_px), batch=96, info=info))
        load_audio(q, sr_hz, info)


def stage_times(lib: Library, queries, clock: Clock) -> float:
    """Time every stage of every query into ``clock``; returns the query seconds."""
    from audio import extract_landmarks
    from fusion import AUDIO_VOTE, VISUAL_VOTE, find_segments, find_segments_many
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
        if info.decoder != "ffmpeg":
            clock("floor_ffmpeg", _decode_with_ffmpeg, q, vm.params, ap.sr_hz)
        per_ref = {}
        if len(sig.samples):
            lm = clock("audio_landmarks", extract_landmarks, sig, ap)

            def audio_search():  # as the pipeline does it
                table = lib.audio.query_table(lm, None, int(np.ceil(AUDIO_VOTE.min_hits)))
                for rid, segs in find_segments_many(table, AUDIO_VOTE).items():
                    per_ref.setdefault(rid, ([], []))[0].extend(segs)
            clock("audio_search", audio_search)
        qd = clock("visual_describe", lambda: list(vm.describe_frames(frames)))

        def visual_search():
            for rid, h in vm.search_many(qd, [lib.visual])[0].items():
                per_ref.setdefault(rid, ([], []))[1].extend(find_segments(h, VISUAL_VOTE))
        clock("visual_search", visual_search)
        clock("fusion", lambda: matcher.finish(matcher.merge(video_id(q), per_ref)))
        clock("pipeline", matcher.match_file, q)
        clock("pipeline_cheap", lambda: matcher.finish(matcher.merge(*matcher.pair_segments(q, cheap=True))))
    # what `fingerprint match` runs: the whole batch, each file probed while the previous is matched
    clock("pipeline_batch", matcher.match_files, queries)
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
    """An audio index of ``hours`` reference hours made of edited copies of ``lib``'s references:
    each copy transposed by a random whole number of semitones (within +-``TRANSPOSE_SEMITONES``:
    frequencies and intervals times 2**(n/12)) and played at a random tempo (0.8-1.25x), i.e.
    other music of the same kind, with new ids; copy 0 is the original. Why not draw hashes at
    random: field by field they met a real query ~700x less often than real unrelated audio does
    (music shares notes, intervals and beats), and the latency would be far too optimistic. Why
    not exact copies: every hash would be repeated once per copy and the per-hash cap would drop
    them all past ~50 h. ``run`` records the chance meetings of the latency query per reference
    hour in the real index beside those in a synthetic one."""
    from audio import AudioIndex
    from audio.index import bucket_bits, bucket_of
    from audio.landmarks import HASH_BITS, HASH_MAX, pack_hashes, unpack_hashes

    base = lib.audio
    base._finalize()
    ref_h = sum(base.ref_durations_s) / 3600
    per_hour = len(base) / ref_h
    k = max(1, int(round(hours / ref_h)))           # copies of the whole reference set
    pitches = 2.0 ** (np.r_[0, rng.integers(-TRANSPOSE_SEMITONES, TRANSPOSE_SEMITONES + 1, k - 1)] / 12.0)
    tempos = np.r_[1.0, np.exp(rng.uniform(np.log(0.8), np.log(1.25), k - 1))]
    f1, d2, d3, t2, t3 = unpack_hashes(base._hash)

    def block(c0, c1):
        """Hashes, refs, times of copies c0..c1-1 (copy-major)."""
        pi, te = pitches[c0:c1, None], tempos[c0:c1, None]
        h = pack_hashes(np.rint(f1[None, :] * pi), np.rint(d2[None, :] * pi), np.rint(d3[None, :] * pi),
                        np.rint(t2[None, :] * te), np.rint(t3[None, :] * te))
        ok = h < HASH_MAX
        r = base._ref[None, :].astype(np.int64) * k + np.arange(c0, c1)[:, None]
        t = base._t[None, :] * te
        return h[ok], r[ok].astype(np.uint32), t[ok].astype(np.float32)

    # A counting sort into bucket order in two passes over the copies, so that only the output
    # arrays and one block's temporaries are in memory (1,000 h is ~400M entries); then each
    # bucket is sorted by hash, as AudioIndex stores it (a lookup binary-searches its bucket).
    step = max(1, int(1e7 // max(1, len(base))))
    blocks = [(c, min(k, c + step)) for c in range(0, k, step)]
    n = sum(int(block(*c)[0].size) for c in blocks)
    bits = bucket_bits(n)
    cursor = np.zeros((1 << bits) + 1, np.int64)
    for c in blocks:
        cursor[1:] += np.bincount(bucket_of(block(*c)[0], bits), minlength=1 << bits)
    cursor = np.cumsum(cursor)[:-1]
    bucket_start = cursor.copy()
    out_h, out_r, out_t = np.empty(n, np.uint64), np.empty(n, np.uint32), np.empty(n, np.float32)
    for c in blocks:
        h, r, t = block(*c)
        b = bucket_of(h, bits)
        order = np.argsort(b, kind="stable")
        b = b[order]
        first = np.r_[0, np.flatnonzero(b[1:] != b[:-1]) + 1]
        rank = np.arange(b.size) - np.repeat(first, np.diff(np.r_[first, b.size]))
        pos = cursor[b] + rank
        out_h[pos], out_r[pos], out_t[pos] = h[order], r[order], t[order]
        np.add.at(cursor, b[first], np.diff(np.r_[first, b.size]))
        del h, r, t, b, order, rank, pos
    step = max(1, (1 << bits) * (1 << 24) // max(1, n))  # buckets per chunk, ~16M entries
    for b0 in range(0, 1 << bits, step):
        p0, p1 = bucket_start[b0], (bucket_start[b0 + step] if b0 + step < (1 << bits) else n)
        part = out_h[p0:p1]
        order = np.argsort((bucket_of(part, bits).astype(np.uint64) << np.uint64(HASH_BITS)) | part, kind="stable")
        out_h[p0:p1], out_r[p0:p1], out_t[p0:p1] = part[order], out_r[p0:p1][order], out_t[p0:p1][order]
    ids = [f"S{i}_{c}" for i in range(len(base.ref_ids)) for c in range(k)]
    return AudioIndex.from_arrays(out_h, out_r, out_t, ids, base.params,
                                  ref_durations_s=[d for d in base.ref_durations_s for _ in range(k)],
                                  presorted=True), per_hour


#: Transposition range of the synthetic references, in semitones.
TRANSPOSE_SEMITONES = 4


def _frame_draw(real: np.ndarray, draw: str = "independent"):
    """``(mean (d,), mix)`` such that ``_mixed(normal(size=(m, d)), mean, mix)`` draws synthetic
    descriptors like the rows of ``real`` (n, d), before normalization: "independent" draws each dimension on its own
    with their mean and spread (frames evenly spread around the mean, no preferred directions: the
    worst case for an inverted file's cells); "covariance" with their full covariance, shrunk 10%
    towards its diagonal so that it has full rank when rows are fewer than dimensions (the
    benchmark's 30 references give 710), so that frames crowd into the directions real
    descriptors share."""
    mu = real.mean(axis=0)
    if draw == "covariance":
        cov = np.cov(real.T)
        cov = 0.9 * cov + 0.1 * np.diag(np.diag(cov))
        return mu, np.linalg.cholesky(cov).T.astype(np.float32)  # (d, d)
    if draw == "independent":
        return mu, real.std(axis=0)  # (d,): the matrix product took 1,000 h from 79 s to 123 s
    raise ValueError(f"unknown draw {draw!r}")


def _mixed(z, mu, mix):
    """Standard normal draws ``z`` (m, d), numpy or torch, shaped by :func:`_frame_draw`."""
    return (z @ mix if mix.ndim == 2 else z * mix) + mu


def _synthetic_visual(lib: Library, hours: float, rng, into=None, device: str = "cpu", draw: str = "independent"):
    """``hours`` of synthetic reference frames drawn like ``lib``'s real descriptors
    (:func:`_frame_draw`; "independent": each dimension with their mean and spread), in a new
    VisualIndex (or added to ``into``) as references S0, ...
    With a CUDA ``device`` the rows are drawn there (torch's generator, seeded from ``rng``):
    numpy would take minutes for the 36M rows of 10,000 h."""
    from visual import VisualIndex

    lib.visual._finalize()
    real = lib.visual._desc.astype(np.float32)
    mu, mix = _frame_draw(real, draw)
    n = int(hours * 3600 * lib.visual.params.ref_fps)
    ix = VisualIndex(lib.visual.params) if into is None else into
    if device != "cpu":
        import torch

        g = torch.Generator(device=device).manual_seed(int(rng.integers(1 << 62)))
        mu_t, mix_t = torch.from_numpy(mu).to(device), torch.from_numpy(mix).to(device)
    for i in range(0, n, 200_000):  # per 200k frames to bound the float32 temporaries
        m = min(200_000, n - i)
        if device != "cpu":
            d = _mixed(torch.randn((m, real.shape[1]), generator=g, device=device), mu_t, mix_t)
            d = torch.nn.functional.normalize(d, dim=1).half().cpu().numpy()
        else:
            d = _mixed(rng.normal(size=(m, real.shape[1])).astype(np.float32), mu, mix)
            d /= np.linalg.norm(d, axis=1, keepdims=True)
        ix.add(f"S{i}", np.arange(m, dtype=np.float32), d)
    return ix


def scaling(lib: Library, query_lm, query_desc, hours_list, visual_max_h: float, query_s: float,
            audio_max_h: float = float("inf"), device: str = "cpu"):
    """Search latency (s) of ``query_lm`` / ``query_desc`` (``query_s`` seconds of real query)
    against synthetic indexes of each size; also the entries one query meets per lookup. With a
    CUDA ``device`` the visual search runs there (exact at every size, as the pipeline does)."""
    rng = np.random.default_rng(0)
    rows = []
    for hours in hours_list:
        row = {"hours": hours}
        if hours > audio_max_h:
            _visual_latency(lib, hours, rng, query_desc, device, row)
            rows.append(row)
            print(f"  {hours:g} h: visual {row['visual_s']:.3f} s (no audio index at this size)", flush=True)
            continue
        t0 = time.perf_counter()
        ix, per_hour = _synthetic_audio(lib, hours, rng)
        build = time.perf_counter() - t0
        from fusion import AUDIO_VOTE

        mh = int(np.ceil(AUDIO_VOTE.min_hits))  # as the pipeline asks
        ix.query_table(query_lm, None, mh)  # the directory is built on first use
        ta = min(_timed(ix.query_table, query_lm, None, mh) for _ in range(2))
        # voting as the pipeline does it (fusion.find_segments_many): every reference met
        # min_hits times goes through the check fusion.may_align, and those it keeps through the
        # Hough voter
        from fusion import find_segments_many, may_align

        table = ix.query_table(query_lm, None, mh)
        meetings = len(ix.query_table(query_lm).flat)  # all, before min_hits
        t0 = time.perf_counter()
        kept = int(may_align(table, AUDIO_VOTE).sum())
        t_check = time.perf_counter() - t0
        tv = min(_timed(find_segments_many, table, AUDIO_VOTE) for _ in range(2))
        n_segs = sum(len(v) for v in find_segments_many(table, AUDIO_VOTE).values())
        row.update({"audio_s": ta, "audio_entries": len(ix), "audio_build_s": build,
                    "audio_hashes_per_hour": per_hour, "audio_refs_voted": len(table), "audio_vote_s": tv,
                    "audio_check_s": t_check, "audio_refs_kept": kept, "audio_chance_segments": n_segs,
                    "audio_meetings": meetings})
        del table
        del ix
        if hours <= visual_max_h:
            _visual_latency(lib, hours, rng, query_desc, device, row)
        rows.append(row)
        print(f"  {hours:g} h: audio search {ta:.3f} s ({meetings} meetings), voting {tv:.2f} s over "
              f"{row['audio_refs_voted']} references ({kept} past the check, {t_check:.2f} s)"
              + (f", visual {row['visual_s']:.3f} s" if "visual_s" in row else ""), flush=True)
    return rows


def latency_query(d: Path, vm=None, seconds: float = 60.0):
    """A real query of about ``seconds`` for the latency curve: ``(landmarks, view descriptors,
    seconds)`` of the benchmark ``d``'s queries with no copy, laid end to end (the curve is about
    chance meetings; copies of the real references would meet only the synthetic index's first
    copy of them). Without ``vm`` (a VisualMatcher) the descriptors are empty."""
    import pandas as pd

    from audio import fingerprint_file
    from audio.landmarks import Landmarks

    parts, descs, ta, tv = [], [], 0.0, 0.0 if vm is not None else float("inf")
    copied = set(pd.read_csv(d / "ground_truth.csv").query_id)
    for q in [q for q in list_media(d / "query") if video_id(q) not in copied]:
        info = probe(q)
        if ta < seconds and info.has_audio:
            lm = fingerprint_file(q, info=info)
            lm.t_s = lm.t_s + ta
            parts.append(lm)
            ta += info.duration_s
        if tv < seconds:
            qd = vm.describe_query(q, info=info)
            descs.append(qd.desc[qd.times_s[qd.frame] + tv < seconds])
            tv += info.duration_s
        if min(ta, tv) >= seconds:
            break
    # the last file makes the total pass 60 s: the query is cut there (before this fix the
    # audio part ran to 107 s while the table said 60 s)
    t = min(ta, tv, seconds)
    qlm = Landmarks(*(np.concatenate([getattr(p, k) for p in parts]) for k in Landmarks.FIELDS),
                    hop_s=parts[0].hop_s, duration_s=ta)
    qlm = qlm.select(qlm.t_s < t)
    qdesc = np.concatenate(descs) if descs else np.zeros((0, 512), np.float32)
    return qlm, qdesc, t


def _visual_latency(lib: Library, hours: float, rng, query_desc, device: str, row: dict) -> None:
    """The visual columns of a latency ``row``: search time of ``query_desc`` in ``hours`` of
    synthetic frames, the one-off set-up before it and the method used."""
    vx = _synthetic_visual(lib, hours, rng, device=device)
    vx._finalize()  # a loaded index has its rows joined already (the committed runs timed this too)
    t0 = time.perf_counter()
    if vx.uses_annoy:
        # every core: a search costs the same, and one thread takes most of an hour at 1,000 h
        vx._annoy = vx._build_annoy(n_jobs=-1)
    vx.prepare(device=device)  # one-off set-up: the float32 copy, the projection or the GPU copy
    row["visual_setup_s"] = time.perf_counter() - t0
    row["visual_s"] = min(_timed(vx.search, query_desc, 10) for _ in range(3))
    row["visual_frames"] = len(vx)
    # how much of the planted copies each method finds: scripts/visual_recall.py
    row["visual_method"] = vx._default_method() + (f" on {vx.search_device}" if vx.search_device else "")
    del vx


def _timed(fn, *a):
    t0 = time.perf_counter()
    fn(*a)
    return time.perf_counter() - t0


def run(a) -> dict:
    from visual.model import cpu_backend, resolve_device

    device = resolve_device(a.device)
    os.environ["FINGERPRINT_DEVICE"] = device
    d = Path(a.work) / f"test_seed{a.seed}"
    if not (d / "ground_truth.csv").is_file():
        make_benchmark(d, n_queries=80, n_refs=30, seed=a.seed, positive_rate=0.23)
    refs = list_media(d / "reference")[:a.refs]
    queries = list_media(d / "query")[:a.queries]
    ref_s = sum(probe(r).duration_s for r in refs)
    from audio.index import INDEX_VERSION

    res = {"machine": machine(device), "device": device, "model": a.visual_model, "benchmark": str(d),
           "decoder": probe(refs[0]).decoder,
           "model_backend": cpu_backend(a.visual_model) if device == "cpu" else "torch",
           "audio_index_version": INDEX_VERSION,
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
        warm_up()  # the compiled voting, as main.py does before its clock (the query above may not vote)
        clock = Clock()
        print(f"timing the stages on {len(queries)} queries ...", flush=True)
        q_s = stage_times(lib, queries, clock)
        res["query_s"] = q_s
        res["stages_s"] = clock.t
        qlm, qdesc, t = latency_query(d, lib.visual_matcher())
        print(f"latency against synthetic indexes ({t:.0f} s of query: {len(qlm)} landmarks, {len(qdesc)} "
              f"descriptors) ...", flush=True)
        res["latency_query"] = {"seconds": t, "landmarks": len(qlm), "descriptors": int(len(qdesc))}
        # the synthetic references must meet the query about as often as real unrelated ones do
        real = sum(len(h) for h in lib.audio.query(qlm).values()) / hours
        syn, _ = _synthetic_audio(lib, 1.0, np.random.default_rng(0))
        res["audio_meetings_per_ref_hour"] = {
            "real": real,
            "synthetic": sum(len(h) for h in syn.query(qlm).values()) / (len(syn) / (len(lib.audio) / hours))}
        print(f"chance meetings per reference hour: real {real:.0f}, synthetic "
              f"{res['audio_meetings_per_ref_hour']['synthetic']:.0f}", flush=True)
        del syn
        if a.json:  # what a run cut short by a time limit still leaves
            Path(a.json + ".partial").write_text(json.dumps(res, indent=1))
        res["latency"] = scaling(lib, qlm, qdesc, a.hours, a.visual_max_hours, t, a.audio_max_hours, device)
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
    backend = f" ({r['model_backend']})" if r.get("model_backend") else ""  # runs before round 13: onnxruntime
    return f"{cores}, {r.get('model', 'sscd-distilled')}{backend}"


def _audio_current(r: dict) -> bool:
    """Whether run ``r`` measured the audio index of this version (runs from before index format 2
    measured 21-bit pair hashes, against synthetic hashes drawn field by field)."""
    from audio.index import INDEX_VERSION

    return r.get("audio_index_version") == INDEX_VERSION


def _latency_current(r: dict) -> bool:
    """Whether run ``r``'s latency rows come from this round's audio search and voting."""
    return bool(r["latency"]) and "audio_chance_segments" in r["latency"][0]


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
        out.append(f"| {label} | " + " | ".join(f"{rw[key][0]:.3f} ({rw[key][1]:.2f}x)" if key in r["stages_s"]
                                                  else "-" for rw, r in zip(rows, runs)) + " |")
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
    if "audio_meetings_per_ref_hour" in base:
        m = base["audio_meetings_per_ref_hour"]
        out += ["", f"Chance meetings of the latency query per reference hour: {m['real']:,.0f} in the real index, "
                    f"{m['synthetic']:,.0f} in a synthetic one (edited copies of the real references)."]
    out += ["", f"Latency of one {lq['seconds']:.0f} s query ({lq['landmarks']} landmarks, {lq['descriptors']} view "
                "descriptors) against synthetic indexes drawn like the real one, in seconds. Audio search: lookups "
                "and hits per reference; audio voting: every reference met at least 12 times goes through "
                "fusion.may_align, and those it keeps through the Hough voter; visual: search of the descriptors "
                "(exact up to 200k frames; above, the method in brackets: what each finds is measured by "
                "scripts/visual_recall.py).", "",
            "| reference hours | " + " | ".join(
                f"{n}: audio search | audio voting (references met / voted) | visual search" for n in names) + " |",
            "|---|" + "---|---|---|" * len(runs)]
    older = [_name(r) for r in runs if r["latency"] and "audio_refs_kept" in r["latency"][0]
             and not _latency_current(r)]
    if older:
        out[-2:-2] = ["Runs marked * (" + "; ".join(older) + ") measured the audio columns before binary-searched "
                      "buckets, flat hit tables and the two-stage fusion.may_align (docs/speed.md), with the voter "
                      "timed on a sample of the references.", ""]
    old = [_name(r) for r in runs if r["latency"] and "audio_refs_kept" not in r["latency"][0]]
    if old:
        out[-2:-2] = ["Runs marked \"/ all\" (" + "; ".join(old) + ") predate fusion.may_align: every reference "
                      "met 12 times went through the voter, and their audio query, though labelled 60 s, ran to 107 s "
                      "(the last file was not cut), so their audio columns count ~1.7x the landmarks of the others.",
                      ""]
    hours = sorted({row["hours"] for r in runs for row in r["latency"]})
    for h in hours:
        cells = []
        for r in runs:
            row = next((x for x in r["latency"] if x["hours"] == h), None)
            if row is None:
                cells += ["-", "-", "-"]
                continue
            if "audio_s" not in row:  # a size measured for the visual search alone
                cells += ["-", "-"]
            elif _audio_current(r):
                star = "" if _latency_current(r) or "audio_refs_kept" not in row else "*"
                cells.append(f"{row['audio_s']:.3f}{star}")
                kept = f" / {row['audio_refs_kept']:,}" if "audio_refs_kept" in row else " / all"
                cells.append(f"{row['audio_vote_s']:.2f} ({row['audio_refs_voted']:,}{kept})"
                             if "audio_vote_s" in row else "-")
            else:
                cells += ["(pair hashes)", "(pair hashes)"]
            method = row.get("visual_method") or ("annoy" if row.get("visual_annoy") else "exact")
            note = "" if method == "exact" else (
                f" ({method}, recall@10 {row['visual_recall_at_10']:.2f})" if "visual_recall_at_10" in row
                else f" ({method})")
            cells.append(f"{row['visual_s']:.3f}{note}" if "visual_s" in row else "-")
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
        if len(lat) < 2 or where in seen or not _audio_current(r):
            continue
        seen.add(where)
        if not _latency_current(r):
            where = "H100 machine, older code" if "GPU" in where else where + ", older code"
        aud = [x for x in lat if "audio_s" in x]
        where_a = f"{where}, copies of {r['refs']} references"  # few references saturate sooner (docs/speed.md)
        ax2.loglog([x["hours"] for x in aud], [x["audio_s"] for x in aud], "o-", label=f"audio search, {where_a}")
        av = [x for x in lat if "audio_vote_s" in x]
        if av:
            ax2.loglog([x["hours"] for x in av], [x["audio_vote_s"] for x in av], "^:",
                       label=f"audio voting, {where_a}")
        v = [x for x in lat if "visual_s" in x]
        if v:
            methods = [x.get("visual_method") or ("annoy" if x.get("visual_annoy") else "exact") for x in v]
            how = methods[0] if len(set(methods)) == 1 else "exact" + "".join(
                f"; {m} above 55 h" for m in sorted(set(methods) - {"exact"}))
            ax2.loglog([x["hours"] for x in v], [x["visual_s"] for x in v], "s--",
                       label=f"visual search, {where} ({how})")
    ax2.set_xlabel("reference hours in the index")
    ax2.set_ylabel(f"seconds for one {runs[0]['latency_query']['seconds']:.0f} s query")
    ax2.grid(True, which="both", alpha=0.3)
    lo, hi = ax2.get_ylim()
    ax2.set_ylim(lo, hi * 40)  # room above the curves for the legend
    ax2.legend(fontsize=6, loc="upper left")
    if any(r["latency"] and "audio_refs_kept" not in r["latency"][0] for r in runs):
        ax2.set_title("\"older run\": its query had 107 s of audio, and every pair met 12 times was voted",
                      fontsize=7)
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
    ap.add_argument("--visual-max-hours", type=float, default=1000,
                    help="largest synthetic visual index (annoy build time grows with it)")
    ap.add_argument("--audio-max-hours", type=float, default=float("inf"),
                    help="largest synthetic audio index (building 1,000 h takes ~4 min); larger --hours "
                         "measure the visual search alone")
    ap.add_argument("--json", default=None, help="write the raw figures here")
    ap.add_argument("--with", dest="others", nargs="*", default=[], help="other runs' JSON to show beside this one")
    ap.add_argument("--from-json", default=None, help="render this run's JSON instead of measuring")
    ap.add_argument("--out", default=None, help="markdown table to write")
    ap.add_argument("--plot", default=None, help="PNG to write")
    a = ap.parse_args()
    res = json.loads(Path(a.from_json).read_text()) if a.from_json else run(a)
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=1))
        Path(a.json + ".partial").unlink(missing_ok=True)  # the run was not cut short
    runs = [res] + [json.loads(Path(p).read_text()) for p in a.others]
    text = markdown(runs)
    print(text)
    if a.out:
        Path(a.out).write_text(text)
    if a.plot:
        plot(runs, Path(a.plot))


if __name__ == "__main__":
    main()
