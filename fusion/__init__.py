"""Fusion stage: hits (from ``audio/`` and ``visual/``) -> aligned, scored segments."""
from .params import AUDIO_VOTE, VISUAL_VOTE, VoteParams
from .voting import find_segments

__all__ = ["AUDIO_VOTE", "VISUAL_VOTE", "VoteParams", "find_segments"]
