"""Hough voting on synthetic hit sets with known lines."""
import numpy as np
import pytest

from fingerprint.types import Hits
from fusion import AUDIO_VOTE, VoteParams, find_segments


def line_hits(q0, q1, r0, slope, per_s=20.0, jitter_s=0.01, seed=0):
    """Hits on ``r = r0 + slope * (q - q0)`` for q in [q0, q1], ``per_s`` per query second."""
    rng = np.random.default_rng(seed)
    q = np.sort(rng.uniform(q0, q1, int((q1 - q0) * per_s)))
    r = r0 + slope * (q - q0) + rng.normal(0, jitter_s, q.size)
    return q, r


def noise_hits(n, q_max=60.0, r_max=60.0, seed=1):
    rng = np.random.default_rng(seed)
    return rng.uniform(0, q_max, n), rng.uniform(0, r_max, n)


def make(*parts):
    q = np.concatenate([p[0] for p in parts])
    r = np.concatenate([p[1] for p in parts])
    return Hits(q, r, np.ones(q.size), np.zeros(q.size), "audio")


@pytest.mark.parametrize("slope", [0.5, 0.8, 1.0, 1.25, 2.0])
def test_one_line_at_any_speed(slope):
    segs = find_segments(make(line_hits(10.0, 20.0, 5.0, slope), noise_hits(300)), VoteParams())
    assert len(segs) == 1
    s = segs[0]
    assert s.slope == pytest.approx(slope, rel=0.005)
    assert s.query_start == pytest.approx(10.0, abs=0.1)
    assert s.query_end == pytest.approx(20.0, abs=0.1)
    assert s.ref_start == pytest.approx(5.0, abs=0.1)
    assert s.ref_end == pytest.approx(5.0 + 10.0 * slope, abs=0.1)
    assert 190 <= s.n_hits <= 205  # the 200 line hits, plus at most a few chance ones


def test_audio_slopes_cover_every_speed_hypothesis_of_the_audio_index():
    from audio import AudioParams

    p = AudioParams()
    speeds = p.tempo_speeds + p.resample_speeds
    assert AUDIO_VOTE.min_slope <= min(speeds) * 0.95 and AUDIO_VOTE.max_slope >= max(speeds) * 1.05
    # ...and no further: a line at 2x (no audio hypothesis meets it) is not voted for.
    assert find_segments(make(line_hits(10.0, 20.0, 5.0, 2.0)), AUDIO_VOTE) == []
    assert len(find_segments(make(line_hits(10.0, 20.0, 5.0, 2.0)), VoteParams())) == 1


def test_two_segments_in_one_pair():
    segs = find_segments(make(line_hits(2, 10, 30, 1.0, seed=2), line_hits(20, 32, 3, 1.0, seed=3),
                              noise_hits(200)), AUDIO_VOTE)
    got = sorted((round(s.query_start), round(s.query_end), round(s.ref_start)) for s in segs)
    assert got == [(2, 10, 30), (20, 32, 3)]


def test_gap_splits_a_line_into_two_segments():
    segs = find_segments(make(line_hits(0, 6, 10, 1.0, seed=4), line_hits(16, 22, 26, 1.0, seed=5)), AUDIO_VOTE)
    assert sorted(round(s.query_start) for s in segs) == [0, 16]


def test_noise_alone_gives_nothing():
    assert find_segments(make(noise_hits(3000, seed=7)), AUDIO_VOTE) == []


def test_too_few_hits_give_nothing():
    q, r = line_hits(0, 10, 0, 1.0, per_s=1.0)
    assert find_segments(make((q, r)), AUDIO_VOTE) == []


def test_lone_chance_hit_does_not_stretch_a_segment():
    q, r = line_hits(10, 20, 10, 1.0)
    stray = (np.array([13.0 - 9.0, 27.5]), np.array([4.0, 27.5]))  # on the line, far from the copy
    s = find_segments(make((q, r), stray), AUDIO_VOTE)[0]
    assert (round(s.query_start, 1), round(s.query_end, 1)) == (10.0, 20.0)


def test_end_includes_the_span_of_the_last_hit():
    q, r = line_hits(0, 10, 0, 1.0)
    hits = Hits(q, r, np.ones(q.size), np.full(q.size, 0.5), "audio")
    assert find_segments(hits, AUDIO_VOTE)[0].query_end == pytest.approx(q.max() + 0.5)


def test_repeat_at_another_offset_is_suppressed():
    # The same query span matching the reference twice (a refrain): keep only the stronger.
    strong = line_hits(10, 20, 0, 1.0, seed=8)
    weak = line_hits(10, 20, 30, 1.0, per_s=8.0, seed=9)
    segs = find_segments(make(strong, weak), AUDIO_VOTE)
    assert [round(s.ref_start) for s in segs] == [0]


def test_weights_count_not_hits():
    q, r = line_hits(0, 10, 0, 1.0, per_s=4.0)  # 40 hits
    p = VoteParams(min_hits=12)
    light = Hits(q, r, np.full(q.size, 0.25), np.zeros(q.size), "audio")   # total weight 10
    assert find_segments(light, p) == []
    heavy = Hits(q, r, np.full(q.size, 0.5), np.zeros(q.size), "audio")    # total weight 20
    assert find_segments(heavy, p)[0].score == pytest.approx(20.0)


def _best_line_one_slope_at_a_time(q, r, w, p):
    """The plain definition, in numpy: for each slope of the grid in order, an offset histogram
    (as many bins as best_line's table) with neighbouring bins summed; the first strictly best
    cell wins."""
    from fusion.voting import _slope_grid

    grid = _slope_grid(p)
    span = (r.max() - r.min()) + max(abs(grid[0]), abs(grid[-1])) * (q.max() - q.min())
    n_bins = int(span / p.offset_bin_s) + 3
    best = (1.0, 0.0, -1.0)
    for s in grid:
        b = r - s * q
        k = ((b - b.min()) / p.offset_bin_s).astype(np.int64)
        c = np.bincount(k, weights=w, minlength=n_bins)
        c = c[:-1] + c[1:]
        i = int(np.argmax(c))
        if c[i] > best[2]:
            sel = (k == i) | (k == i + 1)
            best = (float(s), float(np.average(b[sel], weights=w[sel])), float(c[i]))
    return best


@pytest.mark.parametrize("seed", range(6))
def test_best_line_is_the_plain_definition(seed):
    """The compiled histograms find the very cell (slope and votes bit for bit) that numpy's do,
    with positive weights and with weights of both signs (where an empty bin can be the best
    cell); the offset, a weighted mean summed in hit order, to the last few bits of numpy's."""
    from fusion import voting

    rng = np.random.default_rng(seed)
    hits = make(line_hits(5.0, 12.0, 30.0, rng.uniform(0.6, 1.8), seed=seed), noise_hits(200, seed=seed))
    w = rng.uniform(0.2, 1.0, hits.query_t.size) if seed < 3 else rng.uniform(-1.0, 0.3, hits.query_t.size)
    for p in (AUDIO_VOTE, VoteParams(slope_step=0.02, offset_bin_s=0.5)):
        want = _best_line_one_slope_at_a_time(hits.query_t, hits.ref_t, w, p)
        got = voting.best_line(hits.query_t, hits.ref_t, w, p)
        assert (got[0], got[2]) == (want[0], want[2])
        assert got[1] == pytest.approx(want[1], rel=1e-12, abs=1e-12)
    assert voting.best_line(np.zeros(0), np.zeros(0), np.zeros(0), AUDIO_VOTE) == (1.0, 0.0, -1.0)


def _sparse_line(q0, q1, r0, slope, n, seed):
    """``n`` hits spread over [q0, q1] on a line, a few hops of jitter: barely enough to vote."""
    rng = np.random.default_rng(seed)
    q = np.sort(rng.uniform(q0, q1, n))
    return q, r0 + slope * (q - q0) + rng.normal(0, 0.01, n)


def test_may_align_never_rules_out_a_pair_the_voter_finds_something_in():
    from fusion import VISUAL_VOTE, may_align

    rng = np.random.default_rng(7)
    pairs = []
    for i in range(300):
        q_max = float(rng.choice([20.0, 60.0, 600.0]))  # the exactness margin grows with the query
        slope = float(np.exp(rng.uniform(np.log(0.75), np.log(1.35))))
        q0 = float(rng.uniform(0, q_max - 10))
        parts = [noise_hits(int(rng.integers(0, 40)), q_max, 300.0, seed=i)]
        if i % 2:  # a line between coarse slopes, with just about min_hits hits
            parts.append(_sparse_line(q0, q0 + float(rng.uniform(2, 10)), float(rng.uniform(0, 200)), slope,
                                      int(rng.integers(10, 16)), seed=1000 + i))
        pairs.append(make(*parts))
    for p in (AUDIO_VOTE, VISUAL_VOTE):
        keep = may_align(pairs, p)
        found = np.array([len(find_segments(h, p)) > 0 for h in pairs])
        assert not (found & ~keep).any()
        assert found.sum() >= 50  # the check above is not vacuous...
        if p is AUDIO_VOTE:  # ...and the filter rules pairs out (visual hits need only 1.5 votes)
            assert (~keep).sum() >= 50


def test_may_align_rules_out_scattered_chance_hits_and_keeps_a_copy():
    from fusion import may_align

    chance = [make(noise_hits(40, 60.0, 120.0, seed=s)) for s in range(20)]
    copy = make(line_hits(10.0, 20.0, 5.0, 1.1), noise_hits(40, 60.0, 120.0))
    keep = may_align(chance + [copy, Hits.empty("audio")], AUDIO_VOTE)
    assert keep.tolist() == [False] * 20 + [True, False]


def test_find_segments_many_is_find_segments_of_each_pair():
    from fusion import find_segments_many

    hits = {"copy": make(line_hits(10.0, 20.0, 5.0, 0.9), noise_hits(100)),
            "chance": make(noise_hits(30)),
            "two": make(line_hits(2, 10, 30, 1.0, seed=2), line_hits(20, 32, 3, 1.0, seed=3))}
    got = find_segments_many(hits, AUDIO_VOTE)
    assert list(got) == list(hits)
    assert got == {rid: find_segments(h, AUDIO_VOTE) for rid, h in hits.items()}
    assert [len(got[k]) for k in hits] == [1, 0, 2]
    assert find_segments_many(hits, AUDIO_VOTE, every_pair=False) == {"copy": got["copy"], "two": got["two"]}


def _find_segments_plain(q, r, w, span, p):
    """The voter's plain definition, in numpy (what find_segments was before it was compiled):
    rounds of best_line, a least-squares refit on the inliers, splits at gaps, trimmed ends;
    then repeats dropped. ``(query_start, query_end, ref_start, ref_end, score, slope, n_hits)``."""
    from fusion.voting import best_line

    alive, raw = np.ones(q.size, bool), []
    for _ in range(4 * p.max_segments):
        if len(raw) >= p.max_segments or alive.sum() < p.min_hits:
            break
        idx = np.flatnonzero(alive)
        slope, offset, votes = best_line(q[idx], r[idx], w[idx], p)
        if votes < p.min_hits:
            break
        for _ in range(2):
            inl = np.abs(r[idx] - (slope * q[idx] + offset)) <= p.inlier_tol_s
            if inl.sum() < 3 or np.ptp(q[idx][inl]) < 0.5:
                break
            sw = np.sqrt(w[idx][inl])
            a = np.stack([q[idx][inl], np.ones(int(inl.sum()))], axis=1) * sw[:, None]
            (s_new, b_new), *_ = np.linalg.lstsq(a, r[idx][inl] * sw, rcond=None)
            if not p.min_slope <= s_new <= p.max_slope:
                break
            slope, offset = float(s_new), float(b_new)
        members = idx[np.abs(r[idx] - (slope * q[idx] + offset)) <= p.inlier_tol_s]
        alive[members] = False
        if members.size == 0:
            break
        members = members[np.argsort(q[members], kind="stable")]
        for grp in np.split(members, np.flatnonzero(np.diff(q[members]) > p.max_gap_s) + 1):
            t = q[grp]
            lo = np.searchsorted(t, t - p.edge_window_s, side="left")
            hi = np.searchsorted(t, t + p.edge_window_s, side="right")
            ok = np.flatnonzero(hi - lo - 1 >= p.edge_support)
            grp = grp[ok[0]:ok[-1] + 1] if ok.size else grp[:0]
            if w[grp].sum() < p.min_hits:
                continue
            qs, qe = float(q[grp].min()), float((q[grp] + span[grp]).max())
            if qe - qs < p.min_len_s or slope * qe + offset <= 0:
                continue
            raw.append((max(qs, 0.0), qe, max(slope * qs + offset, 0.0), slope * qe + offset, float(w[grp].sum()),
                        slope, int(grp.size)))
    kept = []
    for seg in sorted(raw, key=lambda s: -s[4]):
        if all(max(0.0, min(seg[1], k[1]) - max(seg[0], k[0])) <= p.max_query_overlap * (seg[1] - seg[0])
               for k in kept):
            kept.append(seg)
    return kept[:p.max_segments]


@pytest.mark.parametrize("seed", range(8))
def test_the_compiled_voter_is_the_plain_definition(seed):
    """Lines at several speeds, some split by gaps, a repeat, stray hits near their ends and
    noise, with unit and uneven weights, audio's and visual's knobs: the compiled voter gives the
    plain definition's segments (its sums in hit order, numpy's pairwise: equal to ~1e-9)."""
    from fusion import VISUAL_VOTE

    rng = np.random.default_rng(seed)
    parts = [noise_hits(int(rng.integers(50, 400)), 120.0, 300.0, seed=seed)]
    for k in range(int(rng.integers(1, 5))):
        q0 = float(rng.uniform(0, 100))
        parts.append(line_hits(q0, q0 + float(rng.uniform(1.5, 20)), float(rng.uniform(0, 250)),
                               float(np.exp(rng.uniform(np.log(0.6), np.log(1.8)))), per_s=float(rng.uniform(3, 25)),
                               jitter_s=0.01, seed=100 * seed + k))
    hits = make(*parts)
    w = np.ones(len(hits)) if seed % 2 else rng.uniform(0.3, 1.0, len(hits))
    span = rng.uniform(0.0, 0.6, len(hits))
    hits = Hits(hits.query_t, hits.ref_t, w, span, "audio")
    n_found = 0
    for p in (AUDIO_VOTE, VoteParams(), VISUAL_VOTE, VoteParams(min_hits=4.0, max_segments=2)):
        want = _find_segments_plain(hits.query_t, hits.ref_t, w, span, p)
        got = [(s.query_start, s.query_end, s.ref_start, s.ref_end, s.score, s.slope, s.n_hits)
               for s in find_segments(hits, p)]
        assert len(got) == len(want)
        for g, x in zip(got, want):
            assert g[6] == x[6]
            assert g[:6] == pytest.approx(x[:6], rel=1e-9, abs=1e-9)
        n_found += len(got)
    assert n_found >= 5  # not vacuous


def test_may_align_holds_at_its_worst_case_min_hits_on_one_line_over_the_whole_query():
    """Its bins are as wide as they must be, no narrower: exactly min_hits hits on one line, at
    every slope of the voter's grid (so at every place within the check's slope ranges), spread
    over the whole query, are still kept."""
    from fusion import may_align
    from fusion.voting import _slope_grid, best_line

    rng = np.random.default_rng(3)
    pairs = []
    for q_max in (60.0, 600.0):
        for s in _slope_grid(AUDIO_VOTE):
            for seed in range(2):  # a few stray hits below the line move where the bins start
                q = np.r_[np.linspace(0.0, q_max, int(AUDIO_VOTE.min_hits)), rng.uniform(0, q_max, 3)]
                r = np.r_[30.0 + s * q[:-3], rng.uniform(0, 20, 3)]
                pairs.append(Hits(q, r, np.ones(q.size), np.zeros(q.size), "audio"))
    votes = np.array([best_line(h.query_t, h.ref_t, h.score, AUDIO_VOTE)[2] for h in pairs])
    assert (votes >= AUDIO_VOTE.min_hits).all()
    assert may_align(pairs, AUDIO_VOTE).all()
    # one hit fewer on the line: the voter finds nothing, and the check passes almost no pair
    short = [Hits(h.query_t[1:], h.ref_t[1:], h.score[1:], h.span_s[1:], "audio") for h in pairs]
    votes = np.array([best_line(h.query_t, h.ref_t, h.score, AUDIO_VOTE)[2] for h in short])
    assert (votes < AUDIO_VOTE.min_hits).all()
    assert not may_align(short, AUDIO_VOTE).any()


def test_may_align_checks_many_pairs_at_once_as_the_voters_first_round():
    """Pairs checked together (their bins side by side) keep every pair whose first round of the
    voter passes, and little else: no pair's bins reach into its neighbour's."""
    from fusion import VISUAL_VOTE, may_align
    from fusion.voting import best_line

    rng = np.random.default_rng(11)
    pairs = []
    for i in range(400):
        q_max = float(rng.choice([20.0, 60.0, 300.0]))
        parts = [noise_hits(int(rng.integers(0, 60)), q_max, 100.0, seed=5000 + i)]
        if i % 3 == 0:  # some lines near the threshold, at any audio speed
            slope = float(np.exp(rng.uniform(np.log(0.75), np.log(1.35))))
            q0 = float(rng.uniform(0, q_max - 8))
            parts.append(_sparse_line(q0, q0 + 6, float(rng.uniform(0, 80)), slope, int(rng.integers(10, 24)),
                                      seed=6000 + i))
        h = make(*parts)
        if len(h):
            pairs.append(Hits(h.query_t, h.ref_t, rng.uniform(0.6, 1.0, len(h)), h.span_s, "audio"))
    for p in (AUDIO_VOTE, VISUAL_VOTE):
        want = np.array([best_line(h.query_t, h.ref_t, h.score, p)[2] for h in pairs])
        first_round = (want >= p.min_hits) & (np.array([len(h) for h in pairs]) >= p.min_hits)
        keep = may_align(pairs, p)
        assert keep[first_round].all()
        if p is AUDIO_VOTE:  # (visual votes need 1.5 only: nearly every pair passes)
            assert 20 <= first_round.sum() <= len(pairs) - 100  # both outcomes occur...
            assert (~keep).sum() >= 100  # ...and the check rules pairs out...
            # ...nearly all that the voter's first round rules out (the coarse stage alone kept
            # ~45% of chance pairs on a large index)
            assert keep.sum() <= first_round.sum() * 1.1


def test_may_align_keeps_a_cell_that_straddles_its_own_bins():
    """The check's bins do not start where the voter's do (the pair's smallest offset), so a
    voter cell of two bins can straddle three of the check's; it must still pass, wherever it
    falls against them."""
    from fusion import may_align
    from fusion.voting import best_line

    n = int(AUDIO_VOTE.min_hits)
    pairs = []
    for shift in np.arange(0.0, 0.1, 0.01):
        q_cell = 5.0 + 0.001 * np.arange(n)  # within 11 ms: no other slope narrows the cell
        q = np.r_[40.0, q_cell]              # a stray hit, then the cell
        # offsets at slope 1: the stray's (where the voter's bins start), then half the cell
        # 10.0 above it and half 10.195 above: the voter's bins 10.0-10.1 and 10.1-10.2
        r = np.r_[40.0 + shift, q_cell + shift + 10.0 + np.repeat([0.0, 0.195], [n // 2, n - n // 2])]
        pairs.append(Hits(q, r, np.ones(q.size), np.zeros(q.size), "audio"))
    assert all(best_line(h.query_t, h.ref_t, h.score, AUDIO_VOTE)[2] >= n for h in pairs)
    assert may_align(pairs, AUDIO_VOTE).all()


def test_a_hit_table_gives_what_its_pairs_give_one_by_one():
    """find_segments_many of a flat HitTable (what a large audio index returns) equals that of
    the same pairs as Hits, pairs with fewer than min_hits hits and empty ones included."""
    from fingerprint.types import HitTable
    from fusion import find_segments_many

    pairs = {"copy": make(line_hits(10.0, 20.0, 5.0, 0.9), noise_hits(100)),
             "few": make(line_hits(2.0, 2.5, 30.0, 1.0)),
             "chance": make(noise_hits(30)),
             "two": make(line_hits(2, 10, 30, 1.0, seed=2), line_hits(20, 32, 3, 1.0, seed=3))}
    sizes = [len(h) for h in pairs.values()]
    assert sizes[1] < AUDIO_VOTE.min_hits
    fields = ("query_t", "ref_t", "score", "span_s")
    flat = Hits(*(np.concatenate([getattr(h, k) for h in pairs.values()]) for k in fields), "audio")
    table = HitTable(list(pairs), np.r_[0, np.cumsum(sizes)[:-1]], flat)
    assert table.sizes.tolist() == sizes
    got = find_segments_many(table, AUDIO_VOTE)
    assert list(got) == list(pairs)
    assert got == find_segments_many(pairs, AUDIO_VOTE)
    assert [len(got[k]) for k in pairs] == [1, 0, 0, 2]
    with pytest.raises(ValueError, match="starts"):
        HitTable(["a"], np.zeros(2, np.int64), flat)
    with pytest.raises(ValueError, match=r"Hits.span_s has 1 items, query_t has 2"):
        Hits(np.zeros(2), np.zeros(2), np.zeros(2), np.zeros(1), "audio")


def test_a_pairs_cell_does_not_spill_into_the_pair_before_it():
    """Pairs are binned side by side: a cell in the first bins of one pair must not make the pair
    before it pass. The pair before is one the coarse stage keeps and the fine one rules out
    (its offsets zigzag over 0.34 s, wider than a cell at any slope)."""
    from fusion import may_align

    n = int(AUDIO_VOTE.min_hits)
    q = np.linspace(0.0, 60.0, n)
    near = Hits(q, q + 20.0 + np.where(np.arange(n) % 2, 0.34, 0.0), np.ones(n), np.zeros(n), "audio")
    cell = Hits(np.full(n, 5.0), np.full(n, 20.0), np.ones(n), np.zeros(n), "audio")  # all one offset
    assert may_align([near], AUDIO_VOTE).tolist() == [False]
    assert may_align([near, cell], AUDIO_VOTE).tolist() == [False, True]
    chance = [make(noise_hits(3 * n, 60.0, 120.0, seed=s)) for s in range(10)]
    assert may_align([h for c in chance for h in (c, cell)], AUDIO_VOTE).tolist() == [False, True] * len(chance)


def test_many_pairs_with_many_segments_come_back_whole():
    # The compiled voter's output grows as segments come (it starts with room for 16).
    from fusion import find_segments_many

    pairs = {f"R{i}": make(line_hits(2, 10, 30, 1.0, seed=2 * i), line_hits(20, 32, 3, 1.0, seed=2 * i + 1))
             for i in range(30)}
    got = find_segments_many(pairs, AUDIO_VOTE)
    assert [len(v) for v in got.values()] == [2] * 30
    assert got == {rid: find_segments(h, AUDIO_VOTE) for rid, h in pairs.items()}
