"""Fusion stage: hits (from ``audio/`` and ``visual/``) -> aligned segments per modality ->
merged across modalities -> one calibrated score."""
from .calibration import FEATURES, MODALITIES, MONOTONE, Calibration, fit_logistic, segment_features
from .fuse import agree, merge_modalities
from .params import AUDIO_VOTE, FUSE, VISUAL_VOTE, FuseParams, VoteParams
from .voting import find_segments, find_segments_many, may_align, warm_up

__all__ = ["AUDIO_VOTE", "FEATURES", "FUSE", "MODALITIES", "MONOTONE", "VISUAL_VOTE", "Calibration", "FuseParams",
           "VoteParams", "agree", "find_segments", "find_segments_many", "fit_logistic", "may_align",
           "merge_modalities", "segment_features", "warm_up"]
