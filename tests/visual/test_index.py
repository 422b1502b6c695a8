"""Visual index: exact search, annoy against exact, hits, saving and loading."""
import numpy as np
import pytest

from fingerprint.errors import IndexFormatError
from visual import VisualIndex, VisualParams


def unit(n, d=64, seed=0):
    x = np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def filled(params=VisualParams(), n_refs=3, per=50, seed=0):
    ix = VisualIndex(params)
    d = unit(n_refs * per, seed=seed)
    for i in range(n_refs):
        ix.add(f"R{i}", np.arange(per, dtype=float), d[i * per:(i + 1) * per])
    return ix, d


def test_exact_search_returns_the_true_neighbours_best_first():
    ix, d = filled()
    q = d[[3, 77]] + 0.01 * unit(2, seed=9)
    sims, rows = ix.search(q, k=5)
    assert rows[:, 0].tolist() == [3, 77]
    assert np.all(np.diff(sims, axis=1) <= 1e-6)
    brute = q @ d.T
    np.testing.assert_allclose(sims, -np.sort(-brute, axis=1)[:, :5], atol=2e-3)  # float16 storage


def test_annoy_recall_against_exact():
    ix, d = filled(VisualParams(exact_max_frames=10), n_refs=4, per=250)
    q = unit(100, seed=5)
    _, exact = ix.search(q, k=10, exact=True)
    _, approx = ix.search(q, k=10, exact=False)
    recall = np.mean([len(set(a) & set(e)) / 10 for a, e in zip(approx, exact)])
    assert recall > 0.9


def test_hits_group_by_reference_with_times_and_floor():
    ix, d = filled()
    sims, rows = ix.search(d[[10, 60]], k=2)
    qt = np.repeat([100.0, 200.0], 2)
    hits = ix.hits(qt, sims.ravel(), rows.ravel(), span_s=0.5, floor=0.5)
    assert set(hits) == {"R0", "R1"}
    assert hits["R0"].ref_t.tolist() == [10.0] and hits["R0"].query_t.tolist() == [100.0]
    assert hits["R1"].ref_t.tolist() == [10.0] and hits["R1"].query_t.tolist() == [200.0]
    assert hits["R0"].score[0] == pytest.approx(0.5, abs=2e-3)  # sim 1 - floor 0.5


@pytest.mark.parametrize("exact_max", [10_000, 10])
def test_save_load_round_trip(tmp_path, exact_max):
    ix, d = filled(VisualParams(exact_max_frames=exact_max))
    path = tmp_path / "visual.npz"
    ix.save(path)
    assert (tmp_path / "visual.npz.ann").exists() == (exact_max == 10)
    back = VisualIndex.load(path, VisualParams(exact_max_frames=exact_max))
    assert back.ref_ids == ix.ref_ids
    np.testing.assert_array_equal(back.search(d[:5], 3)[1], ix.search(d[:5], 3)[1])


def test_damaged_annoy_file_fails_clearly(tmp_path):
    ix, _ = filled(VisualParams(exact_max_frames=10))
    ix.save(tmp_path / "v.npz")
    ann = tmp_path / "v.npz.ann"
    ann.write_bytes(ann.read_bytes()[:100])
    with pytest.raises(IndexFormatError, match="annoy"):
        VisualIndex.load(tmp_path / "v.npz", VisualParams(exact_max_frames=10))


def test_other_model_index_is_refused(tmp_path):
    ix, _ = filled()
    ix.save(tmp_path / "v.npz")
    with pytest.raises(IndexFormatError, match="rebuild"):
        VisualIndex.load(tmp_path / "v.npz", VisualParams(model="sscd"))
