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
