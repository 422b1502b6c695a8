"""Audio stage: spectrogram-peak landmark fingerprints and their inverted index.

media (``fingerprint.media.load_audio``) -> :func:`extract_landmarks` -> :class:`AudioIndex`
-> per-reference :class:`fingerprint.types.Hits` (aligned into segments by ``fusion/``).
"""
from pathlib import Path
from typing import Optional, Union

import numpy as np

from fingerprint.media import iter_audio, prefetch, probe
from fingerprint.types import AudioSignal, MediaInfo

from .index import AudioIndex
from .landmarks import Landmarks, extract_landmarks
from .params import AudioParams

__all__ = ["AudioIndex", "AudioParams", "Landmarks", "extract_landmarks", "fingerprint_file"]


#: Long audio is fingerprinted in pieces of this many seconds, each read with PAD_S of context on
#: both sides (more than a landmark's reach, 0.64 s, and a peak's neighbourhood), so memory stays
#: bounded: about 25 MB per piece whatever the file's length.
CHUNK_S, PAD_S = 120.0, 2.0


def _concat(parts, hop_s: float, duration_s: float) -> Landmarks:
    if not parts:
        z = np.zeros(0, np.float32)
        return Landmarks(z, z.copy(), z.copy(), z.copy(), np.zeros(0, np.int16), np.zeros(0, np.int16),
                         hop_s, duration_s)
    return Landmarks(*(np.concatenate([getattr(p, k) for p in parts]) for k in Landmarks.FIELDS),
                     hop_s=hop_s, duration_s=duration_s)


def fingerprint_file(path: Union[str, Path], params: AudioParams = AudioParams(),
                     info: Optional[MediaInfo] = None) -> Landmarks:
    """Decode the audio track of ``path`` and return its landmarks (empty when it has no audio).

    Audio streams through in ``CHUNK_S`` pieces; a file shorter than that is one piece, exactly
    :func:`extract_landmarks` of the whole signal."""
    info = info or probe(path)
    sr = params.sr_hz
    chunk, pad = int(CHUNK_S * sr), int(PAD_S * sr)
    buf, buf_start = [], None   # samples from buf_start (seconds) on
    c0 = None                   # start (seconds) of the core not fingerprinted yet
    parts, total = [], 0

    def run(x: np.ndarray, x_start: float, keep_from: float, keep_to: float) -> None:
        lm = extract_landmarks(AudioSignal(x, sr, x_start), params)
        sel = (lm.t_s >= keep_from) & (lm.t_s < keep_to)
        parts.append(lm.select(sel))

    # decoding runs ahead in a thread: with PyAV it is in this process, and would otherwise wait
    # for each piece's landmarks (an ffmpeg process used to decode beside them)
    for block in prefetch(iter_audio(path, sr, info=info), depth=1):
        if buf_start is None:
            buf_start = c0 = block.start_s
        buf.append(block.samples)
        total += block.samples.size
        n = sum(b.size for b in buf)
        core_end_i = int(round((c0 - buf_start) * sr)) + chunk
        if n >= core_end_i + pad:
            x = np.concatenate(buf)
            c1 = buf_start + core_end_i / sr
            run(x[:core_end_i + pad], buf_start, c0, c1)
            drop = max(0, core_end_i - pad)
            buf, buf_start, c0 = [x[drop:]], buf_start + drop / sr, c1
    if buf_start is None:
        return _concat([], params.hop_s, 0.0)
    x = np.concatenate(buf)
    run(x, buf_start, c0, np.inf)
    return _concat(parts, params.hop_s, total / float(sr))
