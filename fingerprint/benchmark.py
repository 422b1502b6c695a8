"""Generate a VSC-like matching benchmark from synthesized media, with its ground truth.

Layout written under ``out_dir`` (the challenge's):

- ``reference/R2xxxxx.mp4``, ``query/Q1xxxxx.mp4``
- ``reference_metadata.csv``, ``query_metadata.csv``: ``video_id,duration_sec,frames_per_sec,width,height,rn``
- ``query_subset.csv``: ``video_id`` (every query)
- ``ground_truth.csv``: ``query_id,ref_id,query_start,query_end,ref_start,ref_end``
- ``query_edits.csv`` (side file): one row per copied segment (and one per query without a copy,
  ``ref_id`` empty): the times, ``speed``, ``video_edits`` (``+``-joined), ``audio_policy``, ``audio_edit``.

Statistics follow the public VSC training ground truth (see ``DATA_STATS``): about 23% of queries
hold a copy; 75% of those hold one segment, the rest two or three, from one or several references;
copied lengths have a median of ~10 s (2 s at least); 43% of copies keep the speed and the rest
spread over 0.5x-2x; query and reference durations have medians of ~31 s and ~27 s.

Pictures are synthesized scenes, or windows cut from the videos of ``source_dir`` when one is given
(references and unrelated content from disjoint source files). Every copied segment gets one to three :data:`fingerprint.synth_video.VIDEO_EDITS` (ffmpeg
filters) and the query's audio follows one policy (:data:`AUDIO_POLICIES`). Everything is
deterministic for a seed.

>>> stats = make_benchmark("bench", n_queries=40, n_refs=20, seed=0)   # doctest: +SKIP
"""
from __future__ import annotations

import csv
import json
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from .synth import _ffmpeg_filter, music, signal_edit, speech, write_wav
from .synth_video import OTHER_VIDEOS, VIDEO_EDITS, _pipe_encode, _video_size, _X264_LOSSLESS, edit_video, scene_video

PathLike = Union[str, Path]
FPS = 30
QUERY_SIZE = (320, 240)
AUDIO_SR = 16000

#: Quantiles measured on ../shared/vsc (train split), used to draw durations and lengths.
DATA_STATS = {
    "segment_s": ([0, 5, 25, 50, 75, 95, 100], [2.2, 4.7, 6.8, 9.8, 14.7, 28.0, 85.0]),
    "query_s": ([0, 5, 25, 50, 75, 95, 100], [5.0, 8.1, 17.8, 31.4, 53.1, 66.7, 120.0]),
    "reference_s": ([0, 5, 25, 50, 75, 95, 100], [5.0, 7.4, 15.3, 26.9, 47.3, 60.0, 120.0]),
}
#: Segments per query that holds a copy: probabilities of 1, 2, 3 (VSC train: 75%, 15%, 10%).
SEGMENTS_P = (0.75, 0.15, 0.10)
#: Share of copies at unchanged speed; the others draw ``speed`` log-uniformly in 0.6-1.6,
#: with 10% of them at the extremes 0.5 or 2.0.
SAME_SPEED_P = 0.43

#: How the query's audio relates to its copied segments, with probabilities.
AUDIO_POLICIES = {
    "kept": (0.35, "the copied segments keep their reference audio (re-encoded AAC)"),
    "edited": (0.20, "copied audio kept under one edit: volume -12 dB, noise at 10 dB SNR, 4 kHz "
                     "low-pass or unrelated music mixed in at 0 dB"),
    "replaced": (0.20, "the copied segments carry unrelated music or speech instead"),
    "absent": (0.25, "the query has no audio track at all"),
}
AUDIO_SIGNAL_EDITS = ["volume-12db", "noise-snr10", "lowpass4k", "mix-0db"]
#: Edits drawn for a copied segment (speed is drawn separately).
BENCH_EDITS = [e for e in VIDEO_EDITS if not e.startswith("speed") and e != "none"]
#: Share of references with music, speech or no audio track (VSC's sample videos have none).
REF_AUDIO_P = {"music": 0.5, "speech": 0.25, "none": 0.25}

#: Words of synthesized speech. Text-to-speech of one word by one voice is the same audio wherever
#: it occurs, so references and query fillers speak disjoint vocabularies (else "unrelated" audio
#: would share real copies), and each utterance gets its own voice variant and pitch.
_WORDS_REF = ("river market window yellow quickly thunder garden silver morning engine paper forest "
              "station orange letter simple harbor winter machine pocket candle bridge number story "
              "travel button island kitchen mirror planet shadow velvet basket copper lantern meadow").split()
_WORDS_OTHER = ("rocket saddle tunnel violin whisper zebra anchor blossom canyon desert falcon glacier "
                "harvest jungle kettle lemon marble needle ocean pepper quiet rabbit summer timber "
                "album beacon cactus dolphin eagle fabric gravel helmet igloo jacket koala ladder").split()
_VOICES = ["en", "en-us", "en-gb-scotland"]
_VARIANTS = ["m1", "m2", "m3", "m4", "m5", "m7", "f1", "f2", "f3", "f4", "croak", "klatt"]


def _draw(rng: np.random.Generator, key: str, lo: float, hi: float) -> float:
    q, v = DATA_STATS[key]
    return float(np.clip(np.interp(rng.uniform(0, 100), q, v), lo, hi))


@dataclass
class _Copy:
    ref_id: str
    ref_start_s: float
    ref_len_s: float
    speed: float
    edits: List[str]
    seed: int
    audio_edit: str = ""
    query_start_s: float = 0.0
    n_frames: int = 0


@dataclass
class _Query:
    query_id: str
    parts: List[object]  # float (filler seconds) or _Copy
    audio_policy: str
    seed: int
    copies: List[_Copy] = field(default_factory=list)


def _audio(kind: str, dur_s: float, seed: int, words=_WORDS_OTHER) -> Optional[np.ndarray]:
    """Unrelated audio of ``kind`` ("music", "speech", "none") for ``dur_s`` seconds at AUDIO_SR;
    speech draws from ``words``."""
    n = int(round(dur_s * AUDIO_SR))
    if kind == "none":
        return None
    if kind == "speech":
        rng = np.random.default_rng(seed)
        out = np.zeros(0, np.float32)
        while out.size < n:
            text = " ".join(rng.choice(words, int(rng.integers(6, 12))))
            voice = f"{rng.choice(_VOICES)}+{rng.choice(_VARIANTS)}"
            s = speech(text, AUDIO_SR, voice, speed_wpm=int(rng.integers(140, 190)), pitch=int(rng.integers(20, 80)))
            if s is None:  # no espeak-ng: fall back to music
                return music(dur_s, AUDIO_SR, seed)
            out = np.concatenate([out, s, np.zeros(int(rng.uniform(0.1, 0.5) * AUDIO_SR), np.float32)])
        return out[:n]
    return music(dur_s, AUDIO_SR, seed)


class _Footage:
    """Where pictures come from: windows cut from the user's source videos, or synthesized scenes
    (:func:`fingerprint.synth_video.scene_video`) when there are none. Sources are split once:
    the first ``n_refs`` (after a seeded shuffle) become references, the rest are the pool for
    unrelated content, so no query's filler can be a copy of a reference."""

    def __init__(self, source_dir: Optional[PathLike], n_refs: int, seed: int):
        self.ref_src: List[Tuple[Path, float, bool]] = []
        self.fill_src: List[Tuple[Path, float, bool]] = []
        if source_dir is None:
            return
        from .errors import FingerprintError, MediaError
        from .media import probe
        from .pipeline import list_media

        usable = []
        for f in list_media(source_dir):
            try:
                info = probe(f)
            except MediaError:
                continue
            if info.has_video and info.duration_s >= 3.0:
                usable.append((f, info.duration_s, info.has_audio))
        if len(usable) < n_refs + 1:
            raise FingerprintError(f"{source_dir}: {len(usable)} usable videos (with a picture, >= 3 s); "
                                   f"need at least {n_refs + 1} ({n_refs} references + unrelated content)")
        order = np.random.default_rng([seed, 2]).permutation(len(usable))
        usable = [usable[i] for i in order]
        self.ref_src, self.fill_src = usable[:n_refs], usable[n_refs:]

    def _cut(self, src: Tuple[Path, float, bool], dst: Path, dur_s: float, seed: int, size: Tuple[int, int],
             with_audio: bool) -> Path:
        path, total, has_audio = src
        start = float(np.random.default_rng(seed).uniform(0, max(total - dur_s, 0.0)))
        n = int(round(dur_s * FPS))
        W, H = size
        vf = (f"scale={W}:{H}:force_original_aspect_ratio=increase,crop={W}:{H},setsar=1,fps={FPS},"
              f"format=yuv420p,tpad=stop_mode=clone:stop_duration={dur_s:.3f}")
        enc = []
        if with_audio and has_audio:
            enc = ["-ss", f"{start:.6f}", "-i", str(path), "-map", "1:a:0", "-c:a", "aac", "-b:a", "96k",
                   "-af", f"apad,atrim=0:{n / FPS:.6f}"]
        return _pipe_encode(["-ss", f"{start:.6f}", "-i", str(path), "-map", "0:v:0", "-vf", vf,
                             "-frames:v", str(n)], size, FPS, dst, enc)

    def reference(self, i: int, dst: Path, dur_s: float, seed: int, size: Tuple[int, int],
                  audio: Optional[np.ndarray]) -> Path:
        if not self.ref_src:
            return scene_video(dst, dur_s, seed, size=size, audio=None if audio is None else (audio, AUDIO_SR))
        return self._cut(self.ref_src[i], dst, dur_s, seed, size, with_audio=True)

    def other(self, dst: Path, dur_s: float, seed: int, size: Tuple[int, int] = QUERY_SIZE) -> Path:
        if not self.fill_src:
            return scene_video(dst, dur_s, seed, size=size)
        src = self.fill_src[int(np.random.default_rng(seed).integers(0, len(self.fill_src)))]
        return self._cut(src, dst, dur_s, seed + 1, size, with_audio=False)


def _plan(n_queries: int, n_refs: int, seed: int, positive_rate: float, max_duration_s: float,
          ref_durations: Dict[str, float], edit_pool: Sequence[str] = BENCH_EDITS) -> List[_Query]:
    rng = np.random.default_rng([seed, 1])
    ref_ids = list(ref_durations)
    n_pos = int(round(positive_rate * n_queries))
    positive = np.zeros(n_queries, bool)
    positive[rng.permutation(n_queries)[:n_pos]] = True
    policies = list(AUDIO_POLICIES)
    pol_p = np.array([AUDIO_POLICIES[k][0] for k in policies])
    queries = []
    for i in range(n_queries):
        qid = f"Q1{i + 1:05d}"
        qseed = seed * 100_000 + i
        policy = str(rng.choice(policies, p=pol_p / pol_p.sum()))
        dur = _draw(rng, "query_s", 6.0, max_duration_s)
        if not positive[i]:
            queries.append(_Query(qid, [dur], policy, qseed))
            continue
        n_seg = int(rng.choice([1, 2, 3], p=SEGMENTS_P))
        refs = [str(rng.choice(ref_ids))]
        for _ in range(n_seg - 1):  # later segments: from the same reference half the time
            refs.append(refs[0] if rng.random() < 0.5 else str(rng.choice(ref_ids)))
        copies = []
        for k, rid in enumerate(refs):
            rdur = ref_durations[rid]
            length = min(_draw(rng, "segment_s", 2.0, max_duration_s / 2), rdur - 0.5)
            if rng.random() < SAME_SPEED_P:
                speed = 1.0
            elif rng.random() < 0.1:
                speed = float(rng.choice([0.5, 2.0]))
            else:
                speed = float(np.exp(rng.uniform(np.log(0.6), np.log(1.6))))
            length = max(1.0, length)
            start = float(rng.uniform(0, max(rdur - length - 0.1, 0.0)))
            n_ed = int(rng.choice([1, 2, 3], p=[0.5, 0.35, 0.15]))
            edits: List[str] = []
            for e in rng.permutation(list(edit_pool)):
                if len(edits) == n_ed:
                    break
                if e in OTHER_VIDEOS and set(OTHER_VIDEOS) & set(edits):  # one composite layout at most
                    continue
                edits.append(str(e))
            audio_edit = str(rng.choice(AUDIO_SIGNAL_EDITS)) if policy == "edited" else ""
            copies.append(_Copy(rid, round(start, 3), round(length, 3), round(speed, 4), edits,
                                qseed * 10 + k, audio_edit))
        copy_total = sum(c.ref_len_s / c.speed for c in copies)
        dur = max(dur, copy_total + 1.0)
        # Unrelated content around and between the copies; any piece may be empty.
        cuts = np.sort(rng.uniform(0, dur - copy_total, n_seg))
        fill = np.diff(np.r_[0.0, cuts, dur - copy_total])
        parts: List[object] = []
        for k, c in enumerate(copies):
            if fill[k] >= 0.5:
                parts.append(float(fill[k]))
            parts.append(c)
        if fill[-1] >= 0.5:
            parts.append(float(fill[-1]))
        queries.append(_Query(qid, parts, policy, qseed, copies))
    return queries


def _render_copy(ref: Path, c: _Copy, work: Path, footage: _Footage) -> Path:
    """The copied clip: the reference cut frame-accurately, sped up or down, then edited."""
    seg = _pipe_encode(["-ss", f"{c.ref_start_s:.6f}", "-i", str(ref), "-t", f"{c.ref_len_s:.6f}", "-map", "0:v"],
                       _video_size(ref), FPS, work / "cut.mp4", rate=(), codec=_X264_LOSSLESS)
    if c.speed != 1.0:
        seg = _pipe_encode(["-i", str(seg), "-vf", f"setpts={1.0 / c.speed:.6f}*PTS,fps={FPS}"],
                           _video_size(seg), FPS, work / "speed.mp4", rate=(), codec=_X264_LOSSLESS)
    for k, e in enumerate(c.edits):
        n_others = OTHER_VIDEOS.get(e, 0)
        others = [footage.other(work / f"other{k}_{j}.mp4", c.ref_len_s / c.speed + 0.5, 4_000_000 + c.seed * 4 + j,
                                size=_video_size(seg))
                  for j in range(n_others)]
        seg = edit_video(seg, work / f"edit{k}.mp4", e, seed=c.seed, others=others)
    return seg


def _copy_audio(ref_audio: Optional[np.ndarray], c: _Copy, n: int, rng: np.random.Generator) -> np.ndarray:
    if ref_audio is None:
        return np.zeros(n, np.float32)
    i0 = int(round(c.ref_start_s * AUDIO_SR))
    x = ref_audio[i0:i0 + int(round(c.ref_len_s * AUDIO_SR))]
    if c.speed != 1.0 and x.size:
        if rng.random() < 0.7:  # tempo change, pitch kept (atempo takes 0.5-2 per stage)
            x = _ffmpeg_filter(x, AUDIO_SR, f"atempo={c.speed:.6f}")
        else:
            x = _ffmpeg_filter(x, AUDIO_SR, f"asetrate={int(round(AUDIO_SR * c.speed))},aresample={AUDIO_SR}")
    if c.audio_edit:
        x = signal_edit(x, AUDIO_SR, c.audio_edit, seed=c.seed)
    out = np.zeros(n, np.float32)
    out[:min(n, x.size)] = x[:n]
    return out


def _render_query(q: _Query, refs: Dict[str, Path], ref_audio: Dict[str, Optional[np.ndarray]], dst: Path,
                  work: Path, footage: _Footage) -> None:
    rng = np.random.default_rng([q.seed, 7])
    inputs, chains, labels, t, audio = [], [], [], 0, []
    kinds = ["music", "speech"]
    for k, part in enumerate(q.parts):
        if isinstance(part, _Copy):
            src = _render_copy(refs[part.ref_id], part, work / f"c{k}", footage)
            n = int(round(part.ref_len_s / part.speed * FPS))
            part.query_start_s, part.n_frames = t / FPS, n
            if q.audio_policy in ("kept", "edited"):
                audio.append(_copy_audio(ref_audio.get(part.ref_id), part, int(round(n / FPS * AUDIO_SR)), rng))
            else:
                audio.append(_audio(kinds[int(rng.integers(0, 2))], n / FPS, 5_000_000 + q.seed * 8 + k))
        else:
            n = max(1, int(round(part * FPS)))
            src = footage.other(work / f"f{k}.mp4", n / FPS, 3_000_000 + q.seed * 8 + k)
            audio.append(_audio(kinds[int(rng.integers(0, 2))], n / FPS, 6_000_000 + q.seed * 8 + k))
        inputs += ["-i", str(src)]
        W, H = QUERY_SIZE
        chains.append(f"[{k}:v]scale={W}:{H}:force_original_aspect_ratio=decrease,pad={W}:{H}:(ow-iw)/2:(oh-ih)/2"
                      f":black,setsar=1,fps={FPS},format=yuv420p,setpts=PTS-STARTPTS,"
                      f"tpad=stop_mode=clone:stop_duration=2,trim=end_frame={n}[p{k}]")
        labels.append(f"[p{k}]")
        t += n
    chains.append("".join(labels) + f"concat=n={len(labels)}:v=1:a=0[q]")
    script = work / "graph.txt"
    script.write_text(";\n".join(chains))
    enc = []
    if q.audio_policy != "absent":
        # A part without audio (a silent reference kept as is) is silence.
        full = np.zeros(int(round(t / FPS * AUDIO_SR)), np.float32)
        pos = 0
        for a, part in zip(audio, q.parts):
            n_s = int(round((part.n_frames / FPS if isinstance(part, _Copy) else max(1, int(round(part * FPS))) / FPS)
                            * AUDIO_SR))
            if a is not None:
                m = max(0, min(n_s, a.size, full.size - pos))  # sample rounding can overrun by one
                full[pos:pos + m] = a[:m]
            pos += n_s
        wav = write_wav(work / "audio.wav", full, AUDIO_SR)
        enc = ["-i", str(wav), "-map", "1:a", "-c:a", "aac", "-b:a", "96k", "-af", f"apad,atrim=0:{t / FPS:.6f}"]
    _pipe_encode([*inputs, "-filter_complex_script", str(script), "-map", "[q]", "-frames:v", str(t)],
                 QUERY_SIZE, FPS, dst, enc)


def _metadata_row(vid: str, dur: float, size: Tuple[int, int], rn: int) -> dict:
    return {"video_id": vid, "duration_sec": round(dur, 3), "frames_per_sec": float(FPS),
            "width": size[0], "height": size[1], "rn": rn}


def _write_csv(path: Path, rows: List[dict], columns: List[str]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=columns, lineterminator="\n")
        w.writeheader()
        w.writerows(rows)


def make_benchmark(out_dir: PathLike, n_queries: int = 40, n_refs: int = 20, seed: int = 0,
                   positive_rate: float = 0.23, max_duration_s: float = 60.0,
                   progress: Optional[Callable[[str], None]] = None,
                   edit_pool: Sequence[str] = BENCH_EDITS, source_dir: Optional[PathLike] = None) -> dict:
    """Write a VSC-layout benchmark to ``out_dir`` (see the module docstring) and return its
    measured statistics (also saved as ``stats.json``).

    ``n_queries``/``n_refs``: how many videos; ``positive_rate``: share of queries that hold a copy
    (VSC: 0.23); ``max_duration_s`` caps every video's duration (seconds), to keep sets small.
    ``progress`` is called with a short label after each video (e.g. a tqdm update);
    ``edit_pool``: the video edits to draw from (default :data:`BENCH_EDITS`; ``["none"]`` gives
    copies that differ from the reference only by re-encoding and speed, for checking timing);
    ``source_dir``: videos to cut references and unrelated content from (a reference keeps its
    source's audio; query fillers get synthesized audio), instead of synthesized scenes. Raises
    FingerprintError when it holds fewer than ``n_refs + 1`` usable videos.
    """
    out = Path(out_dir)
    for sub in ("reference", "query"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    footage = _Footage(source_dir, n_refs, seed)
    rng = np.random.default_rng([seed, 0])
    refs: Dict[str, Path] = {}
    ref_dur: Dict[str, float] = {}
    ref_audio: Dict[str, Optional[np.ndarray]] = {}
    ref_rows, q_rows = [], []
    kinds = list(REF_AUDIO_P)
    kp = np.array(list(REF_AUDIO_P.values()))
    for i in range(n_refs):
        rid = f"R2{i + 1:05d}"
        dur = round(_draw(rng, "reference_s", 6.0, max_duration_s) * FPS) / FPS
        size = (384, 216) if rng.random() < 0.3 else (320, 240)
        kind = str(rng.choice(kinds, p=kp))
        if footage.ref_src:  # a reference is at most its whole source
            dur = min(dur, np.floor(footage.ref_src[i][1] * FPS - 1) / FPS)
        audio = _audio(kind, dur, 2_000_000 + seed * 10_000 + i, words=_WORDS_REF)
        refs[rid] = footage.reference(i, out / "reference" / f"{rid}.mp4", dur, 1_000_000 + seed * 10_000 + i, size,
                                      audio)
        if footage.ref_src:  # the source's own audio (or none)
            from .media import load_audio

            sig = load_audio(refs[rid], AUDIO_SR)
            audio = sig.samples if sig.samples.size else None
        ref_dur[rid], ref_audio[rid] = dur, audio
        ref_rows.append(_metadata_row(rid, dur, size, int(rng.integers(1, 10**6))))
        if progress:
            progress(rid)
    queries = _plan(n_queries, n_refs, seed, positive_rate, max_duration_s, ref_dur, edit_pool)
    gt_rows, edit_rows = [], []
    with tempfile.TemporaryDirectory(prefix="bench_") as tmp:
        for q in queries:
            work = Path(tmp) / q.query_id
            for k, p in enumerate(q.parts):
                (work / f"c{k}").mkdir(parents=True, exist_ok=True)
            _render_query(q, refs, ref_audio, out / "query" / f"{q.query_id}.mp4", work, footage)
            shutil.rmtree(work, ignore_errors=True)
            n_frames = sum(p.n_frames if isinstance(p, _Copy) else max(1, int(round(p * FPS))) for p in q.parts)
            q_rows.append(_metadata_row(q.query_id, n_frames / FPS, QUERY_SIZE, int(rng.integers(1, 10**6))))
            for c in q.copies:
                row = {"query_id": q.query_id, "ref_id": c.ref_id, "query_start": round(c.query_start_s, 4),
                       "query_end": round(c.query_start_s + c.n_frames / FPS, 4),
                       "ref_start": round(c.ref_start_s, 4), "ref_end": round(c.ref_start_s + c.ref_len_s, 4)}
                gt_rows.append(row)
                edit_rows.append({**row, "speed": c.speed, "video_edits": "+".join(c.edits),
                                  "audio_policy": q.audio_policy, "audio_edit": c.audio_edit})
            if not q.copies:
                edit_rows.append({"query_id": q.query_id, "ref_id": "", "query_start": "", "query_end": "",
                                  "ref_start": "", "ref_end": "", "speed": "", "video_edits": "",
                                  "audio_policy": q.audio_policy, "audio_edit": ""})
            if progress:
                progress(q.query_id)
    meta_cols = ["video_id", "duration_sec", "frames_per_sec", "width", "height", "rn"]
    _write_csv(out / "reference_metadata.csv", ref_rows, meta_cols)
    _write_csv(out / "query_metadata.csv", q_rows, meta_cols)
    _write_csv(out / "query_subset.csv", [{"video_id": r["video_id"]} for r in q_rows], ["video_id"])
    gt_cols = ["query_id", "ref_id", "query_start", "query_end", "ref_start", "ref_end"]
    _write_csv(out / "ground_truth.csv", gt_rows, gt_cols)
    _write_csv(out / "query_edits.csv", edit_rows, gt_cols + ["speed", "video_edits", "audio_policy", "audio_edit"])
    stats = benchmark_stats(out)
    (out / "stats.json").write_text(json.dumps(stats, indent=2) + "\n")
    return stats


def benchmark_stats(root: PathLike) -> dict:
    """Measured statistics of a benchmark directory (the numbers to compare with ``DATA_STATS``)."""
    import pandas as pd

    root = Path(root)
    gt = pd.read_csv(root / "ground_truth.csv")
    qm = pd.read_csv(root / "query_metadata.csv")
    rm = pd.read_csv(root / "reference_metadata.csv")
    ql = gt.query_end - gt.query_start
    speed = (gt.ref_end - gt.ref_start) / ql.where(ql > 0)
    per_q = gt.groupby("query_id").size()
    pct = lambda s, p: [round(float(v), 2) for v in np.percentile(s, p)] if len(s) else []  # noqa: E731
    return {
        "queries": int(len(qm)), "references": int(len(rm)), "segments": int(len(gt)),
        "positive_query_share": round(float(per_q.size / max(len(qm), 1)), 3),
        "multi_segment_share_of_positives": round(float((per_q >= 2).mean()) if per_q.size else 0.0, 3),
        "segment_s_min_median_max": pct(ql, [0, 50, 100]),
        "speed_p5_p50_p95": pct(speed.dropna(), [5, 50, 95]),
        "query_s_p5_p50_p95": pct(qm.duration_sec, [5, 50, 95]),
        "reference_s_p5_p50_p95": pct(rm.duration_sec, [5, 50, 95]),
        "reference_hours": round(float(rm.duration_sec.sum() / 3600), 3),
    }
