"""The audio landmark knobs, in one place. Defaults were chosen by measurement with
``scripts/bench_audio.py`` (see ``docs/audio_benchmark.md``); units are in the names.

Signal chain: mono audio at ``sr_hz`` -> STFT (``n_fft``, ``hop``) -> log magnitude -> peaks that
are the maximum of their ``(2*peak_df_bins+1) x (2*peak_dt_frames+1)`` neighbourhood, louder than
``floor_dbfs``, strongest ``peaks_per_s`` kept per second -> each peak (anchor) takes its first
``fan_out`` later peaks inside the target zone (``dt_min_frames..dt_max_frames`` later, within
``df_max_bins``) two at a time -> 34-bit hash ``f1 (8) | df2 (7) | df3 (7) | dt2 (6) | dt3 (6)``.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Tuple


@dataclass(frozen=True)
class AudioParams:
    #: 8 kHz keeps 0-4 kHz, where speech and most musical energy (and a 4 kHz low-pass) live,
    #: and makes the STFT 5.5x cheaper than at 44.1 kHz.
    sr_hz: int = 8000
    #: 64 ms window: 15.6 Hz bins, fine enough to tell notes apart, coarse enough to be stable.
    n_fft: int = 512
    #: 16 ms hop: the time quantum of hashes; dt jitter of one hop is tolerated at lookup.
    hop: int = 128
    #: Local-maximum neighbourhood half-sizes: +-94 Hz and +-80 ms.
    peak_df_bins: int = 6
    peak_dt_frames: int = 5
    #: Ignore bins below this (~62 Hz): hum and DC carry no identity.
    fmin_bin: int = 4
    #: Peaks quieter than this (dB relative to a full-scale sine) are silence/dither.
    floor_dbfs: float = -70.0
    #: Target peak density; hashes/s is about peaks_per_s * fan_out * (fan_out - 1) / 2 (~115/s
    #: measured, as quiet stretches fill less than the budget).
    peaks_per_s: float = 20.0
    #: The per-second peak budget is split evenly over this many log-spaced frequency bands.
    n_bands: int = 4
    #: Targets per anchor; every two of them make a triplet with it (5 -> 10 triplets), so a
    #: landmark of the anchor survives an edit that keeps the anchor and any two targets. 4 (6
    #: triplets) stores 35% less and meets 40% fewer landmarks by chance, but found 55 of 70
    #: edited copies against 59 (docs/audio_benchmark.md).
    fan_out: int = 5
    #: Target zone: 2..40 hops (32-640 ms) after the anchor, within +-63 bins (~1 kHz).
    dt_min_frames: int = 2
    dt_max_frames: int = 40
    df_max_bins: int = 63
    #: Query-side speed hypotheses (reference seconds per query second), tried by re-hashing the
    #: query's peaks: "tempo" keeps pitch (ffmpeg atempo, video speed-ups), "resample" scales pitch
    #: with speed (asetrate, tape/PAL speed-up). Steps are small enough that the +-1 hop lookup
    #: tolerance and frequency rounding still meet between two grid points.
    tempo_speeds: Tuple[float, ...] = field(default_factory=lambda: _geom(0.8, 1.25, 11))
    resample_speeds: Tuple[float, ...] = field(default_factory=lambda: _geom(0.9, 1.1, 13))
    #: Hashes whose lookup returns more entries than this are skipped at query time: very common
    #: hashes (steady tones, silence edges) say little and would dominate the vote. With 34-bit
    #: hashes a query landmark meets ~1.5 unrelated entries per reference hour over all its ~50
    #: lookups (the 21-bit pair hashes of index format 1 met ~40), so at 1,000 h a lookup still
    #: meets ~30 by chance on average, well under a fixed cap.
    max_hits_per_hash: int = 200

    @property
    def hop_s(self) -> float:
        return self.hop / float(self.sr_hz)

    def index_key(self) -> dict:
        """The parameters that must agree between an index and the queries run against it."""
        d = asdict(self)
        for k in ("tempo_speeds", "resample_speeds", "max_hits_per_hash"):
            d.pop(k)
        return d


def _geom(lo: float, hi: float, n: int) -> Tuple[float, ...]:
    """``n`` speeds from ``lo`` to ``hi``, evenly spaced in log on each side of an exact 1.0."""
    import numpy as np

    k = n // 2 + 1
    vals = np.concatenate([np.geomspace(lo, 1.0, k), np.geomspace(1.0, hi, n - k + 1)[1:]])
    return tuple(float(round(v, 5)) for v in vals)
