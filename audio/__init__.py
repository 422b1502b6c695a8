"""Audio stage: spectrogram-peak landmark fingerprints and their inverted index.

media (``fingerprint.media.load_audio``) -> :func:`extract_landmarks` -> :class:`AudioIndex`
-> per-reference :class:`fingerprint.types.Hits` (aligned into segments by ``fusion/``).
"""
from pathlib import Path
from typing import Optional, Union

from fingerprint.media import load_audio
from fingerprint.types import MediaInfo

from .index import AudioIndex
from .landmarks import Landmarks, extract_landmarks
from .params import AudioParams

__all__ = ["AudioIndex", "AudioParams", "Landmarks", "extract_landmarks", "fingerprint_file"]


def fingerprint_file(path: Union[str, Path], params: AudioParams = AudioParams(),
                     info: Optional[MediaInfo] = None) -> Landmarks:
    """Decode the audio track of ``path`` and return its landmarks (empty when it has no audio)."""
    return extract_landmarks(load_audio(path, params.sr_hz, info=info), params)
