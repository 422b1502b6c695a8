"""Small builders for test inputs: synthesized audio cases with known ground truth."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fingerprint.synth import AUDIO_EDITS, encode_audio, music, signal_edit, speech, speed_edit, write_wav

SR = 16000
VOICE_TEXT = ("Good evening. Here is the news. Markets were calm today, the weather turns cold "
              "tomorrow, and the home team won again after a long and difficult season. ")


@dataclass
class AudioCase:
    query: Path
    ref: Path
    truth: tuple  # (query_start, query_end, ref_start, ref_end) seconds


def voice(duration_s: float, sr: int = SR) -> np.ndarray:
    """espeak-ng speech, repeated to ``duration_s``."""
    sp = speech(VOICE_TEXT, sr)
    assert sp is not None, "espeak-ng is required by the tests (make test installs it)"
    reps = int(np.ceil(duration_s * sr / sp.size))
    return np.tile(sp, reps)[:int(duration_s * sr)]


def copy_case(tmp: Path, edit: str, seed: int = 0, ref_start_s: float = 8.0, seg_s: float = 10.0,
              before_s: float = 15.0, query_s: float = 40.0) -> AudioCase:
    """A 30 s music reference and a ``query_s`` query holding ``ref[ref_start_s : +seg_s]`` at
    ``before_s``, inside unrelated music, under one :data:`fingerprint.synth.AUDIO_EDITS` edit
    (``"voice-0db"``: a voice-over at equal loudness over the whole query)."""
    ref = music(30.0, SR, seed=100 + seed)
    seg = speed_edit(ref[int(ref_start_s * SR):int((ref_start_s + seg_s) * SR)], SR, edit)
    after_s = query_s - before_s - seg.size / SR
    q = np.concatenate([music(before_s, SR, seed=200 + seed), seg, music(after_s, SR, seed=300 + seed)])
    if edit == "voice-0db":
        v = voice(q.size / SR)
        q = q + v[:q.size] * np.sqrt(np.mean(q ** 2) / np.mean(v ** 2))
        q = q / np.abs(q).max()
    else:
        q = signal_edit(q, SR, edit, seed)
    speed = AUDIO_EDITS.get(edit, (1.0, ""))[0]
    ref_path = write_wav(tmp / f"ref{seed}.wav", ref, SR)
    q_path = encode_audio(tmp / f"query_{edit}_{seed}", q, SR, edit)
    return AudioCase(q_path, ref_path, (before_s, before_s + seg_s / speed, ref_start_s, ref_start_s + seg_s))
