"""The whole job over many files: index references, match queries, write full_matches rows.

An index is a directory:

- ``index.json``: what it holds (``kind``, ``version``, modalities, visual model) and which
  files make it up;
- ``audio.<generation>.npz``: :class:`audio.AudioIndex`; ``visual.<generation>.npz`` (+ ``.ann``
  past 200k frames): :class:`visual.VisualIndex`. Each is written atomically and carries a checksum.

A save writes the next generation's files, then replaces the manifest (atomically: temp file,
fsync, rename), then deletes the previous generation. A process killed at any point leaves a
manifest that names complete files of one generation, so audio and visual never disagree.

A video's id is its file name without extension (``/data/query/Q100001.mp4`` -> ``Q100001``).

>>> lib = Library.create("index_dir")                                    # doctest: +SKIP
>>> report = lib.add_files(sorted(Path("refs").glob("*.mp4"))); lib.save()  # doctest: +SKIP
>>> segs = QueryMatcher(Library.open("index_dir")).match_file("q.mp4")   # doctest: +SKIP
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, List, Optional, Sequence, Tuple, Union

from .errors import FingerprintError, IndexFormatError
from .types import MediaInfo, Segment

PathLike = Union[str, Path]
MANIFEST = "index.json"
KIND, VERSION = "fingerprint-index", 2
MEDIA_SUFFIXES = {".mp4", ".mkv", ".webm", ".mov", ".avi", ".m4v", ".flv", ".ts", ".mpg", ".mpeg", ".wmv",
                  ".mp3", ".m4a", ".aac", ".wav", ".flac", ".ogg", ".opus"}
MODALITIES = ("audio", "visual")
#: A plain name: no path separator, no control character, not starting with '.' or '-', <= 200 chars.
_ID_BAD = re.compile(r"[/\\\x00-\x1f\x7f]")


def video_id(path: PathLike) -> str:
    """The id of a video: its file name without extension."""
    return Path(path).stem


def check_id(vid: str, source: str) -> str:
    """``vid`` if it is a plain name (any letters, no path separator or control character, not
    starting with '.' or '-'); else FingerprintError naming ``source``."""
    if not vid or len(vid) > 200 or _ID_BAD.search(vid) or vid[0] in ".-" or vid != vid.strip():
        raise FingerprintError(f"{source}: {vid!r} is not a plain video id (a file name without a path)")
    return vid


def list_media(source: PathLike) -> List[Path]:
    """Media files named by ``source``: a directory (its media files, sorted, not recursive), a
    text file with one path per line (relative paths are relative to the list), or one file."""
    src = Path(source)
    if src.is_dir():
        return sorted(p for p in src.iterdir() if p.is_file() and p.suffix.lower() in MEDIA_SUFFIXES)
    if src.is_file() and src.suffix.lower() in (".txt", ".lst", ".list"):
        lines = [ln.strip() for ln in src.read_text(errors="replace").splitlines()]
        return [(src.parent / ln) if not Path(ln).is_absolute() else Path(ln) for ln in lines
                if ln and not ln.startswith("#")]
    if src.is_file():
        return [src]
    raise FingerprintError(f"{src}: no such file or directory")


def _write_json_atomic(path: Path, obj: dict) -> None:
    from .storage import atomic_file

    with atomic_file(path) as f:
        json.dump(obj, f, indent=2)
        f.write("\n")


@dataclass
class BatchReport:
    """What a batch did: ids done, files skipped with the reason, ids already present."""

    done: List[str] = field(default_factory=list)
    skipped: List[Tuple[str, str]] = field(default_factory=list)
    already: List[str] = field(default_factory=list)


def _available(modalities: Sequence[str]) -> List[str]:
    out = []
    for m in modalities:
        if m == "visual":
            import visual

            if not visual.AVAILABLE:
                continue
        out.append(m)
    return out


class Library:
    """A reference index directory (see the module docstring)."""

    def __init__(self, root: PathLike, modalities: Sequence[str], visual_model: str):
        self.root = Path(root)
        self.modalities = list(modalities)
        self.visual_model = visual_model
        self.audio = None
        self.visual = None
        self._vmatcher = None
        self.generation = 0

    # -- creation and loading --------------------------------------------------------------
    @classmethod
    def create(cls, root: PathLike, modalities: Sequence[str] = MODALITIES,
               visual_model: str = "sscd-distilled") -> "Library":
        """A new, empty library (nothing is written until :meth:`save`)."""
        from audio import AudioIndex

        lib = cls(root, _available(modalities), visual_model)
        if not lib.modalities:
            raise FingerprintError(f"--modality {'/'.join(modalities)}: that matcher is not installed")
        if "audio" in lib.modalities:
            lib.audio = AudioIndex()
        if "visual" in lib.modalities:
            from visual import VisualIndex, VisualParams

            lib.visual = VisualIndex(VisualParams(model=visual_model))
        return lib

    @classmethod
    def open(cls, root: PathLike, visual_search: str = "auto") -> "Library":
        """Load an index directory; IndexFormatError when it is missing, damaged or foreign.
        ``visual_search``: how its visual index is searched (``visual.SEARCH_MODES``; "auto":
        exact up to 200k frames, the projected search above)."""
        root = Path(root)
        man = root / MANIFEST
        if not man.is_file():
            raise IndexFormatError(root, f"not an index directory (no {MANIFEST}); build one with `fingerprint index`")
        try:
            meta = json.loads(man.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise IndexFormatError(man, "damaged manifest (not JSON)") from None
        if not isinstance(meta, dict) or meta.get("kind") != KIND:
            raise IndexFormatError(man, f"not a {KIND} manifest")
        if meta.get("version") != VERSION:
            raise IndexFormatError(man, f"format version {meta.get('version')}, this program reads {VERSION}")
        lib = cls(root, [m for m in meta.get("modalities", []) if m in MODALITIES],
                  meta.get("visual_model", "sscd-distilled"))
        files = meta.get("files", {})
        lib.generation = int(meta.get("generation", 0))
        for m in lib.modalities:
            name = files.get(m)
            if not isinstance(name, str) or "/" in name or "\\" in name or name.startswith("."):
                raise IndexFormatError(man, f"manifest names no valid {m} file")
        if "audio" in lib.modalities:
            from audio import AudioIndex

            lib.audio = AudioIndex.load(root / files["audio"])
        if "visual" in lib.modalities:
            import visual

            if not visual.AVAILABLE:
                raise IndexFormatError(root, "index has visual descriptors but the visual matcher is not installed")
            lib.visual = visual.VisualIndex.load(root / files["visual"])
            lib.visual.params = lib.visual.params.with_search(visual_search)
        return lib

    @classmethod
    def open_or_create(cls, root: PathLike, modalities: Sequence[str] = MODALITIES,
                       visual_model: str = "sscd-distilled") -> "Library":
        return cls.open(root) if (Path(root) / MANIFEST).exists() else cls.create(root, modalities, visual_model)

    def save(self) -> None:
        """Write the next generation of index files, then the manifest, then drop the previous
        generation (see the module docstring)."""
        self.root.mkdir(parents=True, exist_ok=True)
        gen = self.generation + 1
        files = {}
        if self.audio is not None:
            files["audio"] = f"audio.{gen}.npz"
            self.audio.save(self.root / files["audio"])
        if self.visual is not None:
            files["visual"] = f"visual.{gen}.npz"
            self.visual.save(self.root / files["visual"])
        _write_json_atomic(self.root / MANIFEST, {"kind": KIND, "version": VERSION, "generation": gen,
                                                  "files": files, "modalities": self.modalities,
                                                  "visual_model": self.visual_model,
                                                  "references": len(self.ref_ids)})
        self.generation = gen
        keep = set(files.values()) | {f + ".ann" for f in files.values()} | {MANIFEST, "skipped.csv"}
        for f in self.root.iterdir():
            # older generations, and what an interrupted save left (its next-generation files, temp files)
            if f.is_file() and f.name not in keep and re.match(r"^((audio|visual)\.\d+\.npz(\.ann)?|.+\.tmp)$",
                                                                f.name):
                f.unlink()

    # -- contents ------------------------------------------------------------------------------
    @property
    def ref_ids(self) -> List[str]:
        ids = set()
        for ix in (self.audio, self.visual):
            if ix is not None:
                ids.update(ix.ref_ids)
        return sorted(ids)

    def __contains__(self, ref_id: str) -> bool:
        return any(ix is not None and ref_id in ix for ix in (self.audio, self.visual))

    def visual_matcher(self, cheap: bool = False):
        """The visual matcher for this index; ``cheap``: queries sampled at 1 fps without layout
        views (about 4x less work), for a query that must fit a time budget."""
        if self.visual is None:
            return None
        if cheap:
            if getattr(self, "_vcheap", None) is None:
                from dataclasses import replace

                from visual import VisualMatcher

                self._vcheap = VisualMatcher(replace(self.visual.params, views=False, query_fps=1.0))
            return self._vcheap
        if self._vmatcher is None:
            from visual import VisualMatcher

            self._vmatcher = VisualMatcher(self.visual.params)
        return self._vmatcher

    def prepare_search(self, modalities: Sequence[str] = MODALITIES) -> "Library":
        """Make the searches' one-off state (of ``modalities``) now rather than in the first
        query: the visual index's float32 rows, projection or inverted-file cells (~37 s at
        1,000 h), on the GPU the descriptors run on if there is one (see
        :meth:`visual.VisualIndex.prepare`), and the audio index's bucket directory. A model that
        fails to load here fails again, with its reason, in each query. Returns the library."""
        if self.visual is not None and "visual" in modalities:
            try:
                device = self.visual_matcher().descriptor.device
            except Exception:  # noqa: BLE001 - reported per query, where the file is named
                device = None
            self.visual.prepare(device=device)
        if self.audio is not None and "audio" in modalities:
            self.audio.prepare()
        return self

    def add_file(self, path: PathLike, ref_id: Optional[str] = None) -> str:
        """Fingerprint one reference and add it; returns its id. MediaError if unreadable."""
        from .media import probe

        rid = check_id(ref_id or video_id(path), str(path))
        info = probe(path)
        lm = desc = None
        if self.audio is not None:
            from audio import fingerprint_file

            lm = fingerprint_file(path, self.audio.params, info=info)
        if self.visual is not None:
            desc = self.visual_matcher().describe_reference(path, info=info)
        # Add only once every modality has read the file, so a failure leaves no half entry.
        if lm is not None:
            self.audio.add(rid, lm)
        if desc is not None:
            self.visual.add(rid, *desc)
        return rid

    def add_files(self, paths: Iterable[PathLike], progress: Optional[Callable[[str], None]] = None,
                  workers: int = 1, dask_scheduler: Optional[str] = None, dask_local: int = 0) -> BatchReport:
        """Add many references; unreadable files and ids already present are reported, not raised.
        ``workers``/``dask_*`` spread the fingerprinting over processes (see fingerprint.parallel);
        references are added in the given order either way, so the index is the same."""
        from .parallel import describe_jobs, describe_reference, ordered_map

        rep = BatchReport()
        todo, seen = [], set()
        for p in paths:
            rid = video_id(p)
            try:
                check_id(rid, str(p))
            except FingerprintError as exc:
                rep.skipped.append((str(p), getattr(exc, "reason", str(exc)).split(": ", 1)[-1]))
                if progress:
                    progress(rid)
                continue
            if rid in self:
                rep.already.append(rid)
            elif rid in seen:
                rep.skipped.append((str(p), f"another file already has the id {rid!r}"))
            if rid in self or rid in seen:
                if progress:
                    progress(rid)
                continue
            seen.add(rid)
            todo.append(p)
        jobs = describe_jobs(todo, self.modalities, self.visual_model)
        if workers <= 1 and not dask_scheduler and not dask_local:
            from .media import probe_ahead

            def in_this_process():  # the next file is probed while this one is described
                for (path, mods, model), (_, info) in zip(jobs, probe_ahead(todo)):
                    res = describe_reference(path, mods, model, info)
                    if progress:
                        progress(video_id(path))
                    yield res
            results = in_this_process()
        else:
            results = ordered_map(describe_reference, jobs, workers, dask_scheduler, dask_local, progress)
        for path, payload in results:
            if isinstance(payload, str):
                rep.skipped.append((path, payload))
                continue
            rid = video_id(path)
            if "audio" in payload:
                self.audio.add(rid, payload["audio"])
            if "visual" in payload:
                self.visual.add(rid, *payload["visual"])
            rep.done.append(rid)
        return rep


class QueryMatcher:
    """Finds the copied segments of query files in a :class:`Library`, or in several (shards).

    ``library``: one library, or a list of libraries holding disjoint references (shards of one
    collection, built with the same parameters): each query is decoded and described once, then
    searched in every shard, and the rows of all shards are ranked together (scores are per
    segment, so they compare across shards).
    ``modality``: ``"both"`` (what the library has), ``"audio"`` or ``"visual"``.
    ``calibration``: a :class:`fusion.Calibration` (default: the committed one); scores are
    P(copy) and rows under ``fuse.min_score`` are dropped.
    """

    def __init__(self, library: Union[Library, Sequence[Library]], modality: str = "both", calibration=None,
                 fuse=None, audio_vote=None, visual_vote=None):
        from fusion import AUDIO_VOTE, FUSE, VISUAL_VOTE

        self.libs = [library] if isinstance(library, Library) else list(library)
        if not self.libs:
            raise FingerprintError("no index given")
        self.lib = self.libs[0]
        wanted = self.lib.modalities if modality == "both" else [modality]
        for lib in self.libs:
            missing = [m for m in wanted if m not in lib.modalities]
            if missing:
                raise FingerprintError(f"{lib.root}: the index has no {missing[0]} fingerprints "
                                       f"(it has: {', '.join(lib.modalities) or 'nothing'})")
        _check_shards(self.libs, wanted)
        self.modalities = wanted
        self.fuse = fuse or FUSE
        self.audio_vote = audio_vote or AUDIO_VOTE
        self.visual_vote = visual_vote or VISUAL_VOTE
        self._calibration = calibration
        #: the visual search mode worker processes open the libraries with (see Library.open)
        self.visual_search = self.lib.visual.params.search_mode if "visual" in wanted else "auto"

    @property
    def calibration(self):
        if self._calibration is None:
            from fusion import Calibration

            self._calibration = Calibration.load()
        return self._calibration

    def pair_segments(self, path: PathLike, query_id: Optional[str] = None, cheap: bool = False,
                      deadline: Optional[float] = None, info: Optional[MediaInfo] = None):
        """``(query_id, {ref_id: (audio segments, visual segments)})`` of one query, before merging;
        references with no segment in either are left out.

        The audio stage runs in a thread beside the visual one (decoding and the models release
        the GIL), so a query costs about its slower stage, not the sum. ``cheap``: the cheaper
        visual settings (see :meth:`Library.visual_matcher`); ``deadline``: a
        ``time.monotonic()`` value; with one, the stages run one after the other and the visual
        stage (the costly one) is skipped if the audio stage ends past it. ``info``: the file's
        :func:`~fingerprint.media.probe`, if already known."""
        import time
        from concurrent.futures import ThreadPoolExecutor

        from fusion import find_segments_many

        from .media import probe

        qid = check_id(query_id or video_id(path), str(path))
        info = info or probe(path)
        run_audio = "audio" in self.modalities and info.has_audio
        run_visual = "visual" in self.modalities and info.has_video

        def audio_stage():
            from audio import fingerprint_file

            lm = fingerprint_file(path, self.lib.audio.params, info=info)
            out = {}
            for lib in self.libs:  # described once, searched in every shard
                # A reference met fewer times than the voter's minimum (votes weigh <= 1) cannot
                # give a segment: the index leaves it out, which matters in large indexes.
                hits = lib.audio.query_table(lm, min_hits=math.ceil(self.audio_vote.min_hits))
                out.update(find_segments_many(hits, self.audio_vote, every_pair=False))
            return out

        def visual_stage():
            if not any(len(lib.visual) for lib in self.libs):
                return {}
            vm = self.lib.visual_matcher(cheap)
            out = {}  # described once, batch by batch, searched in every shard (SEARCH_ROWS at a time)
            for hits in vm.search_many(vm.describe_batches(path, info=info), [lib.visual for lib in self.libs]):
                out.update(find_segments_many(hits, self.visual_vote, every_pair=False))
            return out

        if deadline is None and run_audio and run_visual:
            with ThreadPoolExecutor(max_workers=1, thread_name_prefix="audio") as ex:
                pending = ex.submit(audio_stage)
                vis = visual_stage()
                aud = pending.result()
        else:
            aud = audio_stage() if run_audio else {}
            vis = visual_stage() if run_visual and (deadline is None or time.monotonic() < deadline) else {}
        per_ref = {}
        for rid, segs in aud.items():
            per_ref.setdefault(rid, ([], []))[0].extend(segs)
        for rid, segs in vis.items():
            per_ref.setdefault(rid, ([], []))[1].extend(segs)
        return qid, per_ref

    def merge(self, qid: str, per_ref) -> List[Segment]:
        """Merged, uncalibrated segments from :meth:`pair_segments`' output."""
        from fusion import merge_modalities

        out: List[Segment] = []
        for rid in sorted(per_ref):
            for s in merge_modalities(*per_ref[rid], self.fuse):
                s.query_id, s.ref_id = qid, rid
                out.append(s)
        return out

    def candidates(self, path: PathLike, query_id: Optional[str] = None,
                   info: Optional[MediaInfo] = None) -> List[Segment]:
        """Merged, not yet calibrated segments of one query, every pair."""
        return self.merge(*self.pair_segments(path, query_id, info=info))

    def finish(self, segments: List[Segment]) -> List[Segment]:
        """Calibrate scores and drop segments under ``fuse.min_score``; best first."""
        return [s for s in self.calibration.apply(segments) if s.score >= self.fuse.min_score]

    def match_file(self, path: PathLike, query_id: Optional[str] = None,
                   info: Optional[MediaInfo] = None) -> List[Segment]:
        """Calibrated segments of one query over all references, best first (``info``: its
        probe, if already known)."""
        return self.finish(self.candidates(path, query_id, info))

    def match_files(self, paths: Iterable[PathLike], progress: Optional[Callable[[str], None]] = None,
                    workers: int = 1, dask_scheduler: Optional[str] = None, dask_local: int = 0
                    ) -> Tuple[List[Segment], BatchReport]:
        """Match many queries; unreadable ones are reported, not raised. With ``workers`` > 1 or
        Dask, worker processes open the library from its directory and return per-pair segments;
        merging and calibration happen here, in query order, so the output is the same."""
        segs: List[Segment] = []
        rep = BatchReport()
        paths = list(paths)
        if workers <= 1 and not dask_scheduler and not dask_local:
            from .media import probe_ahead

            for p, info in probe_ahead(paths):  # the next file is probed while this one is matched
                try:
                    segs += self.match_file(p, info=info)
                    rep.done.append(video_id(p))
                except FingerprintError as exc:
                    rep.skipped.append((str(p), getattr(exc, "reason", str(exc))))
                if progress:
                    progress(video_id(p))
            return segs, rep
        from .parallel import ordered_map, query_segments

        modality = "both" if self.modalities == self.lib.modalities else self.modalities[0]
        roots = tuple(str(lib.root) for lib in self.libs)
        jobs = [(roots, str(p), modality, None, self.visual_search) for p in paths]
        for path, res in ordered_map(query_segments, jobs, workers, dask_scheduler, dask_local, progress):
            if isinstance(res, str):
                rep.skipped.append((path, res))
                continue
            segs += self.finish(self.merge(*res))
            rep.done.append(video_id(path))
        return segs, rep


def _check_shards(libs: Sequence[Library], modalities: Sequence[str]) -> None:
    """FingerprintError unless the libraries can be searched with one query description: the
    same audio and visual parameters, and no reference in two of them."""
    if len(libs) < 2:
        return
    first = libs[0]
    for lib in libs[1:]:
        if "audio" in modalities and lib.audio.params.index_key() != first.audio.params.index_key():
            raise FingerprintError(f"{lib.root}: built with other audio parameters than {first.root}; "
                                   "shards must share them")
        if "visual" in modalities and lib.visual.params.index_key() != first.visual.params.index_key():
            raise FingerprintError(f"{lib.root}: built with another visual model or settings than {first.root} "
                                   f"({lib.visual.params.index_key()} vs {first.visual.params.index_key()})")
    seen = {}
    for lib in libs:
        for rid in lib.ref_ids:
            if rid in seen:
                raise FingerprintError(f"reference {rid!r} is in two shards: {seen[rid]} and {lib.root}")
            seen[rid] = lib.root


FULL_MATCHES_COLUMNS = ["query_id", "ref_id", "query_start", "query_end", "ref_start", "ref_end", "score"]


def write_matches(segments: Sequence[Segment], path: PathLike) -> None:
    """Write segments as full_matches CSV (header always), best score first, atomically."""
    import csv

    from .storage import atomic_file

    with atomic_file(path, newline="") as f:
        w = csv.DictWriter(f, fieldnames=FULL_MATCHES_COLUMNS, lineterminator="\n")
        w.writeheader()
        for s in sorted(segments, key=lambda s: (-s.score, s.query_id, s.ref_id, s.query_start)):
            w.writerow(s.as_row())


def write_skipped(report: BatchReport, path: PathLike) -> None:
    """The skipped files of a batch as CSV ``file,reason``."""
    import csv

    with open(path, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["file", "reason"])
        w.writerows(report.skipped)
