"""Visual stage: frame descriptors and their nearest-neighbour index (not built yet, see issue P2).

``AVAILABLE`` tells callers whether the visual modality can be used.
"""
AVAILABLE = False
