"""The ``fingerprint`` command line.

    fingerprint compare QUERY REF [--modality audio|visual|both] [--format table|csv|json]

Exit codes: 0 success (also when nothing matches), 2 bad input or usage, 1 unexpected failure.
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import sys
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
    segments: List[Segment] = []
    if "audio" in wanted:
        from audio import AudioIndex, fingerprint_file
        from fusion import AUDIO_VOTE, find_segments

        index = AudioIndex()
        index.add("ref", fingerprint_file(ref, info=rinfo))
        hits = index.query(fingerprint_file(query, info=qinfo)).get("ref")
        if hits is not None:
            segments += find_segments(hits, AUDIO_VOTE)
    if "visual" in wanted:
        from fusion import VISUAL_VOTE, find_segments
        from visual import VisualIndex, VisualMatcher

        from visual import VisualParams

        matcher = VisualMatcher(VisualParams(model=visual_model))
        vindex = VisualIndex(matcher.params)
        vindex.add("ref", *matcher.describe_reference(ref, info=rinfo))
        hits = matcher.query(query, vindex, info=qinfo).get("ref")
        if hits is not None:
            segments += find_segments(hits, VISUAL_VOTE)
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
            row.update(speed=round(s.slope, 4), hits=s.evidence)
        return json.dumps(rows, indent=2) + "\n"
    if not rows:
        return "no matching segment\n"
    head = f"{'query (s)':>17}  {'reference (s)':>17}  {'speed':>6}  {'score':>8}  evidence"
    lines = [head]
    for r, s in zip(rows, segments):
        ev = ", ".join(f"{k} {v}" for k, v in s.evidence.items())
        lines.append(f"{r['query_start']:8.2f}-{r['query_end']:<8.2f}  {r['ref_start']:8.2f}-{r['ref_end']:<8.2f}"
                     f"  {s.slope:5.3f}x  {r['score']:8.1f}  {ev}")
    return "\n".join(lines) + "\n"


def _cmd_compare(args) -> int:
    notes: List[str] = []
    segs = compare_files(args.query, args.ref, args.modality, notes, args.visual_model)
    for n in notes:
        print(f"fingerprint: note: {n}", file=sys.stderr)
    sys.stdout.write(format_segments(segs, args.format))
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="fingerprint",
                description="Find copied (and edited) segments of reference videos inside query videos, "
                            "by audio landmarks and visual frame descriptors.")
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    c = sub.add_parser("compare", help="find the segments of QUERY copied from REF",
                       description="Find the segments of QUERY that were copied from REF, even when edited "
                                   "(re-encoded, noisy, sped up 0.8x-1.25x, ...). Prints one row per segment: "
                                   "query_start, query_end, ref_start, ref_end (seconds) and a score that grows "
                                   "with the evidence (for audio: the number of consistent landmark hashes; "
                                   "a score below ~20 is weak; for video: summed similarity of aligned frames above a floor, "
                                   "below ~3 is weak). No match prints no rows and exits 0.")
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
    c.set_defaults(func=_cmd_compare)
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_BAD_INPUT
    try:
        return args.func(args)
    except FingerprintError as exc:
        print(f"fingerprint: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("fingerprint: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
