"""View detection on frames with known layouts."""
import numpy as np

from visual.views import detect_views


def textured(n, h, w, seed):
    """Moving, structured content: smooth random blobs drifting diagonally 3 px per frame."""
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(seed)
    big = rng.uniform(0, 255, (h + 3 * n, w + 3 * n, 3))
    big = gaussian_filter(big, sigma=(4, 4, 0))
    big = (big - big.min()) / (np.ptp(big) + 1e-9) * 255
    return np.stack([big[3 * i:3 * i + h, 3 * i:3 * i + w] for i in range(n)]).astype(np.uint8)


def names(views):
    return sorted(v.name for v in views)


def boxes(views):
    return sorted((v.y0, v.y1, v.x0, v.x1) for v in views if v.name.startswith(("cell", "trim")))


def test_plain_content_gets_full_and_flip_only():
    assert names(detect_views(textured(12, 240, 320, 0))) == ["flip", "full"]


def test_letterbox_is_trimmed():
    f = np.zeros((12, 240, 320, 3), np.uint8)
    f[:, 30:210] = textured(12, 180, 320, 1)
    v = detect_views(f)
    trim = [x for x in v if x.name == "trim"][0]
    assert (trim.y0, trim.y1, trim.x0, trim.x1) == (30, 210, 0, 320)


def test_2x2_stack_gives_four_cells():
    f = np.zeros((12, 240, 320, 3), np.uint8)
    for k, (y, x) in enumerate([(0, 0), (0, 160), (120, 0), (120, 160)]):
        f[:, y:y + 120, x:x + 160] = textured(12, 120, 160, 10 + k) // (k + 1) + 40 * k
    cells = [b for b in boxes(detect_views(f))]
    for want in [(0, 120, 0, 160), (0, 120, 160, 320), (120, 240, 0, 160), (120, 240, 160, 320)]:
        assert any(all(abs(a - b) <= 2 for a, b in zip(c, want)) for c in cells), (want, cells)


def test_picture_in_picture_window_is_a_view():
    f = textured(12, 240, 320, 3) // 2
    f[:, 40:160, 100:260] = 255 - textured(12, 120, 160, 4)
    cells = boxes(detect_views(f))
    assert any(all(abs(a - b) <= 2 for a, b in zip(c, (40, 160, 100, 260))) for c in cells), cells


def test_flip_view_mirrors():
    f = textured(2, 24, 32, 5)
    flip = [v for v in detect_views(f) if v.name == "flip"][0]
    np.testing.assert_array_equal(flip.apply(f), f[:, :, ::-1])


def _numpy_trim_box(g, std):
    """The border box by numpy's own std over frames and one axis (the reference)."""
    rows = np.flatnonzero(g.std(axis=(0, 2)) > std)
    cols = np.flatnonzero(g.std(axis=(0, 1)) > std)
    if rows.size == 0 or cols.size == 0:
        return 0, g.shape[1], 0, g.shape[2]
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def _reference_layout(g):
    """Trim and cell boxes of one window, computed directly from its grey levels (the
    straightforward per-window computation that the shared per-frame sums replace)."""
    from visual.views import MIN_CELL_FRAC, BORDER_STD, _layout_lines

    _, h, w = g.shape
    y0, y1, x0, x1 = _numpy_trim_box(g, BORDER_STD)
    out = []
    if ((y1 - y0) < 0.95 * h or (x1 - x0) < 0.95 * w) and (y1 - y0) >= MIN_CELL_FRAC * h \
            and (x1 - x0) >= MIN_CELL_FRAC * w:
        out.append(("trim", y0, y1, x0, x1))
    c = g[:, y0:y1, x0:x1]
    rows = [y0] + [y0 + r for r in _layout_lines(np.median(np.abs(np.diff(c, axis=1)).mean(axis=2), axis=0),
                                               y1 - y0)] + [y1]
    cols = [x0] + [x0 + r for r in _layout_lines(np.median(np.abs(np.diff(c, axis=2)).mean(axis=1), axis=0),
                                               x1 - x0)] + [x1]
    if len(rows) > 2 or len(cols) > 2:
        for i in range(len(rows) - 1):
            for j in range(len(cols) - 1):
                if rows[i + 1] - rows[i] >= MIN_CELL_FRAC * h and cols[j + 1] - cols[j] >= MIN_CELL_FRAC * w:
                    out.append((f"cell{i}{j}", rows[i], rows[i + 1], cols[j], cols[j + 1]))
    return out


def _bar(value, dev, k, n, h, w, x0):
    """uint8 rows ``(n, h, w, 3)`` at ``value`` with ``k`` pixels of each row (from column ``x0``)
    at ``value + dev``: their grey-level std over frames and columns is dev*sqrt(p(1-p)), p = k/w."""
    bar = np.full((n, h, w, 3), value, np.uint8)
    bar[:, :, x0:x0 + k] = value + dev
    return bar


def test_border_test_from_sums_agrees_with_numpy_std():
    from visual.views import BORDER_STD, _FrameStats, gray

    f = textured(8, 120, 160, 8)
    # top bar: std 12 * sqrt(.35 * .65) = 5.72 (uniform); bottom bar: 13 * sqrt(.45 * .55) = 6.47
    # (content); both within 8% of the threshold; a pillar bar at their base level on the left
    f[:, :20] = _bar(60, 12, 56, 8, 20, 160, 15)
    f[:, -20:] = _bar(60, 13, 72, 8, 20, 160, 15)
    f[:, :, :15] = 60
    g = gray(f)
    assert abs(g[:, :20].std() / BORDER_STD - 0.954) < 0.01 and abs(g[:, -20:].std() / BORDER_STD - 1.078) < 0.01
    box = _FrameStats(f).trim_box(np.arange(8))
    assert box == _numpy_trim_box(g, BORDER_STD) == (20, 120, 15, 160)


def test_layout_views_equal_the_direct_computation_in_every_window():
    """Per-frame sums shared by overlapping windows give each window what a direct computation on
    that window's frames finds: plain frames, then a letterbox (the trimmed path), then a 2x2
    stack."""
    from visual.views import gray, layout_views

    f = textured(36, 240, 320, 20)
    f[12:24] = 0
    f[12:24, 30:210] = textured(12, 180, 320, 21)
    for k, (y, x) in enumerate([(0, 0), (0, 160), (120, 0), (120, 160)]):
        f[24:, y:y + 120, x:x + 160] = textured(12, 120, 160, 22 + k) // (k + 1) + 40 * k
    g = gray(f)
    want = {}
    for start in range(0, 36 - 4, 4):
        idx = np.arange(start, min(start + 8, 36))
        for box in _reference_layout(g[idx]):
            want.setdefault(box, set()).update(idx.tolist())
    got = {(v.name, v.y0, v.y1, v.x0, v.x1): ix for v, ix in layout_views(f, 8).items()}
    assert got == {b: sorted(ix) for b, ix in want.items()}
    assert {b[0] for b in got} >= {"trim", "cell00", "cell11"}
    assert {tuple(ix) for b, ix in got.items() if b[0] == "trim"} == {tuple(range(12, 24))}
