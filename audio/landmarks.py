"""Spectrogram-peak landmarks (audfprint/Panako style) and their 34-bit hashes.

A landmark is a triplet of spectrogram peaks: an anchor at (``t_s``, ``f1``) and two later
targets, ``dt2`` and ``dt3`` hops after it, at ``f2`` and ``f3``. Its hash packs
``f1 (8 bits) | f2 - f1 (7) | f3 - f1 (7) | dt2 (6) | dt3 (6)`` with dt3 in the low bits.

Why three peaks, not two: a pair hash has ~21 bits, so in a large index every lookup meets
hundreds of unrelated landmarks by chance (at 1,000 reference hours a 60 s query met millions),
and the search and the voting that follows grow with the index. The third peak adds ~13 bits:
chance meetings become rare at any size we index, at the cost of needing three peaks to survive
an edit instead of two (compensated by making several triplets per anchor).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import maximum_filter

from fingerprint.types import AudioSignal

from .params import AudioParams

F1_BITS, DF_BITS, DT_BITS = 8, 7, 6
_DF_OFFSET = 1 << (DF_BITS - 1)          # df is stored as df + 64, so -63..63 fit in 7 bits
HASH_BITS = F1_BITS + 2 * DF_BITS + 2 * DT_BITS
#: Marks a landmark with no valid hash (a field out of range); never stored in an index.
HASH_MAX = 1 << HASH_BITS


@dataclass
class Landmarks:
    """Peak triplets of one audio signal, as parallel arrays of length n (sorted by ``t_s``).

    ``t_s``: anchor time in seconds; ``f1``/``f2``/``f3``: anchor/target frequencies in
    (fractional) STFT bins; ``dt2`` < or = ``dt3``: target times after the anchor in hops (int).
    ``hop_s``: seconds per hop.
    """

    t_s: np.ndarray
    f1: np.ndarray
    f2: np.ndarray
    f3: np.ndarray
    dt2: np.ndarray
    dt3: np.ndarray
    hop_s: float
    duration_s: float = 0.0

    FIELDS = ("t_s", "f1", "f2", "f3", "dt2", "dt3")

    def __len__(self) -> int:
        return len(self.t_s)

    def select(self, mask) -> "Landmarks":
        """The landmarks where ``mask`` (bool or index array) holds, same ``hop_s``/``duration_s``."""
        return Landmarks(*(getattr(self, k)[mask] for k in self.FIELDS), hop_s=self.hop_s,
                         duration_s=self.duration_s)

    @property
    def span_s(self) -> np.ndarray:
        """Seconds from the anchor to the last target, ``(n,)``."""
        return self.dt3.astype(np.float64) * self.hop_s

    def hashes(self, speed: float = 1.0, pitch: float = 1.0, ddt2: int = 0, ddt3: int = 0) -> np.ndarray:
        """uint64 hashes ``(n,)`` as the *reference* would have produced them, if this audio is the
        reference played ``speed`` times faster (reference seconds per query second) with its
        frequencies multiplied by ``pitch``; ``ddt2``/``ddt3`` (hops) are added to the mapped
        target times, to probe one hop of timing jitter. Landmarks whose mapped fields fall
        outside the hash ranges get ``HASH_MAX`` (never stored in an index).

        >>> lm.hashes()                          # doctest: +SKIP   (speed 1: the stored hashes)
        >>> lm.hashes(speed=1.1, pitch=1.1)      # doctest: +SKIP   (query was asetrate x1.1)
        """
        return pack_hashes(np.rint(self.f1 / pitch), np.rint((self.f2 - self.f1) / pitch),
                           np.rint((self.f3 - self.f1) / pitch), np.rint(self.dt2 * speed) + ddt2,
                           np.rint(self.dt3 * speed) + ddt3)


def pack_hashes(f1, df2, df3, dt2, dt3) -> np.ndarray:
    """uint64 hashes of whole-numbered fields (arrays of one shape): ``f1`` in bins, ``df2``/``df3``
    target minus anchor in bins (signed), ``dt2``/``dt3`` in hops. ``HASH_MAX`` where a field is
    out of range. :func:`unpack_hashes` is the inverse."""
    f1, d2, d3, t2, t3 = (np.asarray(x).astype(np.int64) for x in (f1, df2, df3, dt2, dt3))
    d2, d3 = d2 + _DF_OFFSET, d3 + _DF_OFFSET
    ok = (f1 >= 0) & (f1 < (1 << F1_BITS)) & (d2 > 0) & (d2 < (1 << DF_BITS)) \
        & (d3 > 0) & (d3 < (1 << DF_BITS)) & (t2 > 0) & (t2 < (1 << DT_BITS)) \
        & (t3 > 0) & (t3 < (1 << DT_BITS))
    h = (((((f1 << DF_BITS) | d2) << DF_BITS | d3) << DT_BITS | t2) << DT_BITS) | t3
    return np.where(ok, h, HASH_MAX).astype(np.uint64)


def unpack_hashes(h: np.ndarray):
    """``(f1, df2, df3, dt2, dt3)`` int64 arrays of stored hashes (df signed): the inverse of
    :func:`pack_hashes`."""
    h = np.asarray(h).astype(np.int64)
    dt_mask, df_mask = (1 << DT_BITS) - 1, (1 << DF_BITS) - 1
    return (h >> (2 * DF_BITS + 2 * DT_BITS), ((h >> (DF_BITS + 2 * DT_BITS)) & df_mask) - _DF_OFFSET,
            ((h >> (2 * DT_BITS)) & df_mask) - _DF_OFFSET, (h >> DT_BITS) & dt_mask, h & dt_mask)


def log_spectrogram(samples: np.ndarray, params: AudioParams) -> np.ndarray:
    """Log-magnitude STFT ``(n_fft // 2 + 1, n_frames)`` in dB relative to a full-scale sine.

    Frame ``j`` covers samples ``[j*hop, j*hop + n_fft)``; frames are not centred, so frame ``j``
    starts at ``j * hop_s`` seconds.
    """
    x = np.asarray(samples, dtype=np.float32)
    n_fft, hop = params.n_fft, params.hop
    if x.size < n_fft:
        return np.full((n_fft // 2 + 1, 0), -np.inf, dtype=np.float32)
    n_frames = 1 + (x.size - n_fft) // hop
    frames = np.lib.stride_tricks.as_strided(x, shape=(n_frames, n_fft),
                                             strides=(x.strides[0] * hop, x.strides[0]), writeable=False)
    win = np.hanning(n_fft).astype(np.float32)
    spec = np.abs(np.fft.rfft(frames * win, axis=1)).T
    # A full-scale sine peaks at sum(win) / 2 in its bin: that is 0 dB.
    ref = win.sum() / 2.0
    with np.errstate(divide="ignore"):
        return (20.0 * np.log10(spec / ref + 1e-12)).astype(np.float32)


def find_peaks(logspec: np.ndarray, params: AudioParams):
    """Spectrogram peaks ``(t_frames int (m,), f_bins float (m,))``, sorted by time then frequency.

    A peak is the maximum of its neighbourhood and louder than ``floor_dbfs``; in each one-second
    window only the ``peaks_per_s`` loudest are kept, which fixes the density whatever the
    loudness or genre. ``f_bins`` is refined to a fraction of a bin by a parabola through the
    log magnitudes, so that pitch-shifted hypotheses can be re-quantized accurately.
    """
    n_bins, n_frames = logspec.shape
    if n_frames == 0:
        return np.zeros(0, np.int64), np.zeros(0)
    size = (2 * params.peak_df_bins + 1, 2 * params.peak_dt_frames + 1)
    local_max = maximum_filter(logspec, size=size, mode="constant", cval=-np.inf)
    is_peak = (logspec == local_max) & (logspec > params.floor_dbfs)
    is_peak[:params.fmin_bin, :] = False
    is_peak[-1, :] = False
    f, t = np.nonzero(is_peak)
    if f.size == 0:
        return np.zeros(0, np.int64), np.zeros(0)
    mag = logspec[f, t]
    # Keep the loudest peaks_per_s in each one-second window.
    frames_per_s = params.sr_hz / float(params.hop)
    window = (t / frames_per_s).astype(np.int64)
    # Each one-second window shares its budget among log-spaced bands, so a loud source in one
    # band (a voice over music) cannot take every peak.
    edges = np.geomspace(params.fmin_bin, n_bins, params.n_bands + 1)[1:-1]
    cell = window * params.n_bands + np.searchsorted(edges, f, side="right")
    order = np.lexsort((-mag, cell))
    c_sorted = cell[order]
    first = np.searchsorted(c_sorted, c_sorted, side="left")
    rank = np.arange(order.size) - first
    keep = order[rank < params.peaks_per_s / params.n_bands]
    f, t = f[keep], t[keep]
    # Sub-bin frequency by parabolic interpolation on the log magnitude.
    a = logspec[np.maximum(f - 1, 0), t]
    b = logspec[f, t]
    c = logspec[np.minimum(f + 1, n_bins - 1), t]
    denom = a - 2 * b + c
    with np.errstate(invalid="ignore", divide="ignore"):
        delta = np.where(np.abs(denom) > 1e-9, 0.5 * (a - c) / denom, 0.0)
    ff = f + np.clip(np.nan_to_num(delta), -0.5, 0.5)
    order = np.lexsort((ff, t))
    return t[order].astype(np.int64), ff[order]


def triplet_peaks(t: np.ndarray, f: np.ndarray, params: AudioParams):
    """Anchor/target/target index triplets ``(i, j, k)``: each anchor's first ``fan_out`` peaks in
    its target zone, taken two at a time (``j`` before ``k``): ``fan_out * (fan_out - 1) / 2``
    triplets per anchor, so a triplet survives an edit that keeps any two of the targets."""
    n = t.size
    z = np.zeros(0, np.int64)
    if n < 3:
        return z, z.copy(), z.copy()
    # Upper bound on how many peaks can follow an anchor within dt_max (density is capped per second).
    max_ahead = int(np.ceil(params.peaks_per_s * (params.dt_max_frames * params.hop_s + 1.0))) * 2 + 1
    max_ahead = min(max_ahead, n - 1)
    i = np.arange(n)[:, None]
    j = i + np.arange(1, max_ahead + 1)[None, :]
    valid = j < n
    jj = np.minimum(j, n - 1)
    dt = t[jj] - t[i]
    df = f[jj] - f[i]
    valid &= (dt >= params.dt_min_frames) & (dt <= params.dt_max_frames) & (np.abs(df) <= params.df_max_bins)
    rank = np.cumsum(valid, axis=1)
    valid &= rank <= params.fan_out
    # targets[a, r]: the anchor's r-th target (peaks are time-ordered, so r < s means not later)
    targets = np.full((n, params.fan_out), -1, np.int64)
    ai, c = np.nonzero(valid)
    targets[ai, rank[ai, c] - 1] = jj[ai, c]
    ii, jx, kx = [], [], []
    for r in range(params.fan_out):
        for s_ in range(r + 1, params.fan_out):
            ok = targets[:, s_] >= 0
            a = np.flatnonzero(ok)
            ii.append(a)
            jx.append(targets[a, r])
            kx.append(targets[a, s_])
    ii, jx, kx = np.concatenate(ii), np.concatenate(jx), np.concatenate(kx)
    order = np.lexsort((kx, jx, ii))
    return ii[order], jx[order], kx[order]


def extract_landmarks(signal: AudioSignal, params: AudioParams = AudioParams()) -> Landmarks:
    """Landmarks of a mono signal.

    Parameters
    ----------
    signal : AudioSignal at ``params.sr_hz`` (``fingerprint.media.load_audio(path, params.sr_hz)``).
    params : AudioParams.

    Returns
    -------
    Landmarks, about ``peaks_per_s * fan_out * (fan_out - 1) / 2`` per second of sound (none for silence or an
    empty signal).

    >>> from fingerprint.media import load_audio
    >>> lm = extract_landmarks(load_audio("song.m4a", 8000))   # doctest: +SKIP
    >>> len(lm) / lm.duration_s                                 # doctest: +SKIP
    45.2
    """
    if signal.sr_hz != params.sr_hz:
        raise ValueError(f"signal is at {signal.sr_hz} Hz, params expect {params.sr_hz} Hz")
    logspec = log_spectrogram(signal.samples, params)
    t, f = find_peaks(logspec, params)
    ai, bi, ci = triplet_peaks(t, f, params)
    return Landmarks(
        t_s=signal.start_s + t[ai] * params.hop_s,
        f1=f[ai].astype(np.float32),
        f2=f[bi].astype(np.float32),
        f3=f[ci].astype(np.float32),
        dt2=(t[bi] - t[ai]).astype(np.int16),
        dt3=(t[ci] - t[ai]).astype(np.int16),
        hop_s=params.hop_s,
        duration_s=signal.duration_s,
    )
