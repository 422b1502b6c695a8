"""Visual index: exact search, projected and annoy search against exact, hits, saving and loading."""
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


def planted(n, cos=0.8):
    """``n`` random 64-d unit rows, 50 query rows, and where each query's copy (at cosine ``cos``
    to it) replaces a row: ``(rows, queries, positions)``."""
    d, q = unit(n, seed=4), unit(50, seed=5)
    at = np.random.default_rng(6).choice(len(d), 50, replace=False)
    noise = unit(50, seed=7)
    noise -= np.sum(noise * q, axis=1, keepdims=True) * q
    d[at] = cos * q + np.sqrt(1 - cos ** 2) * noise / np.linalg.norm(noise, axis=1, keepdims=True)
    return d, q, at


def test_exact_search_returns_the_true_neighbours_best_first():
    ix, d = filled()
    q = d[[3, 77]] + 0.01 * unit(2, seed=9)
    sims, rows = ix.search(q, k=5)
    assert rows[:, 0].tolist() == [3, 77]
    assert np.all(np.diff(sims, axis=1) <= 1e-6)
    brute = q @ d.T
    np.testing.assert_allclose(sims, -np.sort(-brute, axis=1)[:, :5], atol=2e-3)  # float16 storage


def test_projected_search_at_full_dimension_is_exact_across_blocks():
    # coarse_dims = the descriptors' dimension makes the projection a rotation, so the shortlist
    # must hold the true nearest rows; 70,000 rows span two blocks, the second with a remainder
    # after its column groups, so the running threshold and the merges are all exercised.
    from visual import index as vindex

    n = vindex.BLOCK + 4464
    assert (n - vindex.BLOCK) % vindex.RUN != 0
    ix = VisualIndex(VisualParams(exact_max_frames=10, coarse_dims=64, shortlist=20))
    d = unit(n, seed=1)
    ix.add("R0", np.arange(n, dtype=float), d)
    q = np.concatenate([d[[5, vindex.BLOCK + 7, n - 1]] + 0.3 * unit(3, seed=2), unit(40, seed=3)])
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    s_exact, r_exact = ix.search(q, k=10, method="exact")
    s_proj, r_proj = ix.search(q, k=10)  # the default above exact_max_frames
    np.testing.assert_array_equal(r_proj, r_exact)
    np.testing.assert_allclose(s_proj, s_exact, atol=1e-5)
    assert r_proj[:3, 0].tolist() == [5, vindex.BLOCK + 7, n - 1]


def test_projected_search_finds_planted_copies_in_fewer_dimensions():
    # 20,000 random 64-d rows; copies at cosine 0.8 of 50 query rows. The copy is found only if
    # its projected similarity puts it in the 50-row shortlist: a 32-d projection finds all 50
    # here, 16-d 41, 8-d 8.
    ix = VisualIndex(VisualParams(exact_max_frames=10, coarse_dims=32, shortlist=50))
    d, q, at = planted(20_000)
    ix.add("R0", np.arange(len(d), dtype=float), d)
    _, rows = ix.search(q, k=10)
    assert np.mean(rows[:, 0] == at) >= 0.96
    ix.params = VisualParams(exact_max_frames=10, coarse_dims=8, shortlist=50)
    ix._pcodes = None
    _, rows = ix.search(q, k=10)  # too few dimensions to tell copies from chance: the test can fail
    assert np.mean(rows[:, 0] == at) < 0.5


def test_integer_products_are_exact_at_the_extremes_a_16_bit_pair_sum_would_saturate_at():
    # x86 without VNNI adds pairs of uint8 x int8 products in 16 bits: 255 x 127 x 2 > 32767, so
    # the codes keep to 7 bits (255 x 63 x 2 = 32130). The first rows are the worst cases.
    from visual.index import CODE_MAX, _int_products

    rng = np.random.default_rng(40)
    a = np.concatenate([np.full((1, 128), 255), np.zeros((1, 128)), rng.integers(0, 256, (5, 128))]).astype(np.uint8)
    b = np.concatenate([np.full((128, 1), CODE_MAX), np.full((128, 1), -CODE_MAX),
                        rng.integers(-CODE_MAX, CODE_MAX + 1, (128, 70))], axis=1).astype(np.int8)
    got = _int_products(a, b)
    want = (a.astype(np.int64) - 128) @ b.astype(np.int64)
    assert got.dtype == np.int32 and got.shape == (7, 72)
    np.testing.assert_array_equal(got, want)
    assert got[0, 0] == 127 * CODE_MAX * 128 and got[1, 0] == -128 * CODE_MAX * 128


def test_the_integer_product_graph_is_what_onnx_writes():
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    from visual.index import _MATMUL_INTEGER_ONNX

    a = helper.make_tensor_value_info("A", TensorProto.UINT8, [None, None])
    b = helper.make_tensor_value_info("B", TensorProto.INT8, [None, None])
    y = helper.make_tensor_value_info("Y", TensorProto.INT32, [None, None])
    azp = helper.make_tensor("azp", TensorProto.UINT8, [], [128])
    graph = helper.make_graph([helper.make_node("MatMulInteger", ["A", "B", "azp"], ["Y"])], "g", [a, b], [y],
                              initializer=[azp])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 10)])
    model.ir_version = 5
    onnx.checker.check_model(model)
    assert model.SerializeToString() == _MATMUL_INTEGER_ONNX


def test_keep_best_keeps_each_query_rows_best_scores_across_blocks_earlier_rows_winning_ties():
    from visual.index import RUN, _keep_best

    rng = np.random.default_rng(41)
    size, widths = 30, [RUN * 3 + 5, 1, RUN * 2]  # runs cut short at a block's end, a one-row block
    scores = [rng.integers(-50, 50, (4, w)).astype(np.int32) for w in widths]
    scores[0][3] = 7  # a query row whose scores all tie: the first 30 rows stay
    scores[1][3] = 7
    scores[2][3] = 7
    scores[2][2, :] = -1000  # a block with nothing better for row 2
    heap_s, heap_r = np.full((4, size), np.iinfo(np.int32).min, np.int32), np.full((4, size), -1)
    offset = 0
    for s in scores:
        _keep_best(s, offset, heap_s, heap_r)
        offset += s.shape[1]
    full = np.concatenate(scores, axis=1)
    for r in range(4):
        order = np.lexsort((np.arange(full.shape[1]), -full[r]))[:size]  # best first, earlier rows on ties
        np.testing.assert_array_equal(np.sort(heap_s[r])[::-1], full[r, order])
        np.testing.assert_array_equal(heap_s[r], full[r, heap_r[r]])  # each score is its row's
        assert all(heap_s[r, (i - 1) // 2] <= heap_s[r, i] for i in range(1, size))  # a min-heap
    assert sorted(heap_r[3].tolist()) == list(range(size))


def test_projected_codes_are_7_bit_blocks_of_the_projection():
    from visual import index as vindex

    ix = VisualIndex(VisualParams(exact_max_frames=10, coarse_dims=16))
    d = unit(vindex.BLOCK + 100, seed=42)
    ix.add("R0", np.arange(len(d), dtype=float), d)
    ix._finalize()
    basis, scale, blocks = ix._projected_codes()
    assert [b.shape for b in blocks] == [(16, vindex.BLOCK), (16, 100)] and blocks[0].dtype == np.int8
    codes = np.concatenate(blocks, axis=1).T
    assert np.abs(codes).max() == vindex.CODE_MAX
    proj = ix._desc.astype(np.float32) @ basis
    clipped = np.abs(codes) == vindex.CODE_MAX
    assert clipped.mean() < 0.01  # the peak is the sampled rows' (all of them here): only ties to it
    half_step = np.broadcast_to(scale / 2 + 1e-6, proj.shape)
    np.testing.assert_array_less(np.abs(codes * scale - proj)[~clipped], half_step[~clipped])


def test_ivf_search_probing_every_cell_at_full_dimension_is_exact():
    # Probing every cell with a rotation as the projection scans every row: the same rows as the
    # exact search. 5,000 rows make 64 cells of 59-100 rows: some hold fewer rows than the
    # shortlist of 80, some more.
    params = VisualParams(exact_max_frames=10, large_search="ivf", coarse_dims=64, shortlist=80, ivf_probe=64)
    ix, d = filled(params, n_refs=5, per=1000, seed=21)
    q = np.concatenate([d[[7, 2500, 4999]] + 0.3 * unit(3, seed=22), unit(40, seed=23)])
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    s_exact, r_exact = ix.search(q, k=10, method="exact")
    s_ivf, r_ivf = ix.search(q, k=10)  # the default above exact_max_frames with large_search="ivf"
    cent, start, order, _, codes, _ = ix._cells()
    assert codes.dtype == np.int8 and codes.shape == (5000, 64)
    assert len(cent) == 64 and start[-1] == 5000 and np.array_equal(np.sort(order), np.arange(5000))
    assert np.diff(start).min() < 80 < np.diff(start).max()
    np.testing.assert_array_equal(r_ivf, r_exact)
    np.testing.assert_allclose(s_ivf, s_exact, atol=1e-6)
    small, d = filled(VisualParams(exact_max_frames=2, large_search="ivf"), n_refs=1, per=4)
    sims, rows = small.search(d[:2], k=6)  # fewer rows than k: the rest is -1 / -inf, no repeats
    assert rows[:, 0].tolist() == [0, 1] and (rows[:, 4:] == -1).all() and np.isneginf(sims[:, 4:]).all()
    assert sorted(rows[0, :4].tolist()) == [0, 1, 2, 3]


def test_ivf_scan_keeps_each_query_rows_best_integer_scores_of_its_cells():
    from visual.index import _ivf_scan

    rng = np.random.default_rng(30)
    codes = rng.integers(-127, 128, (300, 16)).astype(np.int8)
    start = np.array([0, 40, 40, 170, 300])  # four cells, one of them empty
    qcodes = rng.integers(-32767, 32768, (3, 16)).astype(np.int16)
    probes = {0: [0, 2], 1: [1], 2: [3, 0, 2]}  # query row 1 probes only the empty cell
    pairs = sorted((c, r) for r, cells in probes.items() for c in cells)
    size = 50
    heap_s, heap_r = np.full((3, size), np.iinfo(np.int32).min, np.int32), np.full((3, size), -1)
    _ivf_scan(qcodes, codes, start, np.array([c for c, _ in pairs]), np.array([r for _, r in pairs]),
              heap_s, heap_r)
    full = qcodes.astype(np.int64) @ codes.T.astype(np.int64)
    assert (heap_r >= 0).sum(axis=1).tolist() == [50, 0, 50]
    for r, cells in probes.items():
        seen = np.concatenate([np.arange(start[c], start[c + 1]) for c in cells])
        if seen.size == 0:
            assert (heap_s[r] == np.iinfo(np.int32).min).all()
            continue
        best = np.sort(full[r, seen])[::-1][:size]
        np.testing.assert_array_equal(np.sort(heap_s[r])[::-1], best)  # the scores, exactly
        assert set(heap_r[r]) <= set(seen.tolist()) and len(set(heap_r[r])) == size
        np.testing.assert_array_equal(heap_s[r], full[r, heap_r[r]])  # each score is its row's
        assert all(heap_s[r, (i - 1) // 2] <= heap_s[r, i] for i in range(1, size))  # a min-heap


def test_ivf_search_finds_planted_copies_in_the_probed_cells():
    # 40,000 random rows (256 cells of ~156), copies at cosine 0.8 of 50 query rows. Evenly
    # spread rows are the worst case for cells: 64 probed cells (a quarter of the rows) find 49
    # copies, the projected search all 50; 32 cells 48, 16 cells 44, one cell 11, so the test can fail.
    params = VisualParams(exact_max_frames=10, large_search="ivf", coarse_dims=32, shortlist=50, ivf_probe=64)
    ix = VisualIndex(params)
    d, q, at = planted(40_000)
    ix.add("R0", np.arange(len(d), dtype=float), d)
    sims, rows = ix.search(q, k=10)
    assert len(ix._cells()[0]) == 256
    assert np.mean(rows[:, 0] == at) >= 0.96 and np.all(np.diff(sims, axis=1) <= 0)
    again = VisualIndex(params)  # the cells do not depend on anything but the rows
    again.add("R0", np.arange(len(d), dtype=float), d)
    np.testing.assert_array_equal(again.search(q, k=10)[1], rows)
    ix.params = VisualParams(exact_max_frames=10, large_search="ivf", coarse_dims=32, shortlist=50, ivf_probe=1)
    _, rows = ix.search(q, k=10)
    assert np.mean(rows[:, 0] == at) < 0.5


def test_search_sees_references_added_after_a_search():
    for params, device in ((VisualParams(), None), (VisualParams(exact_max_frames=10, coarse_dims=8), None),
                           (VisualParams(exact_max_frames=10, large_search="ivf"), None),
                           (VisualParams(), "cpu")):  # "cpu": the torch device path
        ix, d = filled(params)
        ix.use_device(device)
        ix.search(d[:2], k=1)  # builds the float32 copy / the projection / the device's rows
        extra = unit(5, seed=11)
        ix.add("R9", np.arange(5, dtype=float), extra)
        sims, rows = ix.search(extra, k=1)
        assert rows[:, 0].tolist() == list(range(150, 155)) and np.all(sims[:, 0] > 0.99)


def test_prepare_makes_the_search_state_and_changes_no_result():
    for params, made in ((VisualParams(), "_f32"), (VisualParams(exact_max_frames=10), "_pcodes"),
                         (VisualParams(exact_max_frames=10, large_search="ivf"), "_ivf"),
                         (VisualParams(exact_max_frames=10, large_search="annoy"), "_annoy")):
        ix, d = filled(params)
        cold = ix.search(d[:4], k=3)
        ix, d = filled(params)
        assert ix.prepare() is ix and getattr(ix, made) is not None
        warm = ix.search(d[:4], k=3)
        np.testing.assert_array_equal(warm[1], cold[1])
        np.testing.assert_array_equal(warm[0], cold[0])


def test_device_search_equals_numpy_exact_search_across_blocks(monkeypatch):
    # The torch path on torch's CPU device: the same code a GPU runs. 2,500 rows in blocks of
    # 1,000 exercise the merge of each block's top k, the last block shorter than the others.
    pytest.importorskip("torch")
    from visual import index as vindex

    monkeypatch.setattr(vindex, "DEVICE_BLOCK", 1000)
    ix, d = filled(n_refs=5, per=500, seed=12)
    q = np.concatenate([d[[4, 1499, 2499]] + 0.2 * unit(3, seed=13), unit(30, seed=14)])
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    s_np, r_np = ix.search(q, k=10)
    assert ix.use_device("cpu") is ix
    s_dev, r_dev = ix.search(q, k=10)
    np.testing.assert_array_equal(r_dev, r_np)
    np.testing.assert_allclose(s_dev, s_np, atol=1e-6)
    assert r_dev[:3, 0].tolist() == [4, 1499, 2499]
    small, _ = filled(n_refs=1, per=4)  # fewer rows than k: the rest is -1 / -inf, as with numpy
    want = small.search(q[:2], k=6)
    got = small.use_device("cpu").search(q[:2], k=6)
    np.testing.assert_array_equal(got[1], want[1])
    assert np.isneginf(got[0][:, 4:]).all()


def test_device_search_is_exact_above_exact_max_frames_unless_annoy_is_asked_for():
    # 8 projected dimensions miss most planted copies (see the test above); on a device the
    # default search is exact at any size, so it finds them all.
    pytest.importorskip("torch")
    ix = VisualIndex(VisualParams(exact_max_frames=10, coarse_dims=8, shortlist=50))
    d = unit(20_000, seed=4)
    q = unit(50, seed=5)
    at = np.random.default_rng(6).choice(len(d), 50, replace=False)
    d[at] = 0.8 * q + 0.6 * unit(50, seed=7)
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    ix.add("R0", np.arange(len(d), dtype=float), d)
    _, rows = ix.search(q, k=10)
    assert np.mean(rows[:, 0] == at) < 0.5
    assert ix.prepare(device="cpu") is ix and ix.search_device is None  # "cpu" there means numpy
    ix.prepare(device="cpu:0")
    assert ix._dev_rows is not None
    _, rows = ix.search(q, k=10)
    assert np.mean(rows[:, 0] == at) == 1.0
    ix.params = ix.params.with_search("annoy")
    assert ix._default_method() == "annoy"
    annoy_ix = VisualIndex(ix.params)  # asked for annoy: the rows are not copied to the device for nothing
    annoy_ix.add("R0", np.arange(len(d), dtype=float), d)
    annoy_ix.prepare(device="cpu:0")
    annoy_ix.search(q[:2], k=10)
    assert annoy_ix._dev_rows is None and annoy_ix._annoy is not None


def test_index_too_large_for_the_device_warns_once_and_searches_with_numpy(monkeypatch, capsys):
    torch = pytest.importorskip("torch")
    ix, d = filled()
    want = ix.search(d[:3], k=4)

    def no_room(*a, **k):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr(torch.Tensor, "to", no_room)
    ix.use_device("cuda:7")
    got = ix.search(d[:3], k=4)
    np.testing.assert_array_equal(got[1], want[1])
    assert ix.search_device is None
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "does not fit on cuda:7" in err and "150 frames" in err
    ix.use_device("cuda:7")  # a matcher asks again before every batch: no second try, no warning
    ix.search(d[:3], k=4)
    assert ix.search_device is None and capsys.readouterr().err == ""


def test_running_out_of_device_memory_while_searching_falls_back_to_numpy(monkeypatch, capsys):
    # the rows fit, the working blocks do not: the query is still answered, and later ones too
    torch = pytest.importorskip("torch")
    ix, d = filled()
    want = ix.search(d[:3], k=4)
    ix.use_device("cpu")

    def no_room(*a, **k):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr(VisualIndex, "_search_exact_torch", no_room)
    got = ix.search(d[:3], k=4)
    np.testing.assert_array_equal(got[1], want[1])
    assert ix.search_device is None and ix._dev_rows is None
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "has no room to search on cpu" in err
    ix.use_device("cpu")
    ix.search(d[:3], k=4)
    assert ix.search_device is None and capsys.readouterr().err == ""


def test_unknown_search_method_is_refused():
    ix, d = filled()
    with pytest.raises(ValueError, match="unknown search method"):
        ix.search(d[:1], k=1, method="faiss")


def test_annoy_recall_against_exact():
    ix, d = filled(VisualParams(exact_max_frames=10, large_search="annoy"), n_refs=4, per=250)
    q = unit(100, seed=5)
    _, exact = ix.search(q, k=10, method="exact")
    _, approx = ix.search(q, k=10)
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


@pytest.mark.parametrize("exact_max,large", [(10_000, "annoy"), (10, "projected"), (10, "ivf"), (10, "annoy")])
def test_save_load_round_trip(tmp_path, exact_max, large):
    params = VisualParams(exact_max_frames=exact_max, large_search=large)
    ix, d = filled(params)
    path = tmp_path / "visual.npz"
    ix.save(path)
    assert (tmp_path / "visual.npz.ann").exists() == (exact_max == 10 and large == "annoy")
    back = VisualIndex.load(path, params)
    assert back.ref_ids == ix.ref_ids
    np.testing.assert_array_equal(back.search(d[:5], 3)[1], ix.search(d[:5], 3)[1])


def test_saving_without_annoy_removes_an_earlier_forest(tmp_path):
    ix, d = filled(VisualParams(exact_max_frames=10, large_search="annoy"))
    ix.save(tmp_path / "v.npz")
    assert (tmp_path / "v.npz.ann").exists()
    back = VisualIndex.load(tmp_path / "v.npz", VisualParams(exact_max_frames=10))  # projected
    back.save(tmp_path / "v.npz")
    assert not (tmp_path / "v.npz.ann").exists()
    np.testing.assert_array_equal(VisualIndex.load(tmp_path / "v.npz").search(d[:3], 1)[1][:, 0], [0, 1, 2])


def test_damaged_annoy_file_fails_clearly(tmp_path):
    ix, _ = filled(VisualParams(exact_max_frames=10, large_search="annoy"))
    ix.save(tmp_path / "v.npz")
    ann = tmp_path / "v.npz.ann"
    ann.write_bytes(ann.read_bytes()[:100])
    with pytest.raises(IndexFormatError, match="annoy"):
        VisualIndex.load(tmp_path / "v.npz", VisualParams(exact_max_frames=10, large_search="annoy"))


def test_other_model_index_is_refused(tmp_path):
    ix, _ = filled()
    ix.save(tmp_path / "v.npz")
    with pytest.raises(IndexFormatError, match="rebuild"):
        VisualIndex.load(tmp_path / "v.npz", VisualParams(model="sscd"))
