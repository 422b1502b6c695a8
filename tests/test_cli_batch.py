"""``fingerprint index`` / ``match`` / ``evaluate`` on a small audio library (fast: no video)."""
from __future__ import annotations

import csv
import json

import numpy as np
import pandas as pd
import pytest

from fingerprint.pipeline import MANIFEST, Library
from fingerprint.synth import music, write_wav
from tests.test_cli import assert_one_line_error, run_main

SR = 16000
FULL = "query_id,ref_id,query_start,query_end,ref_start,ref_end,score"


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    """refs: R1, R2, R3 (30 s of music each) and a broken file; queries: Q1 holds R2[5:15] at
    8-18 s, Q2 holds R3[12:22] at 0-10 s and R1[0:8] at 20-28 s, Q3 holds nothing."""
    d = tmp_path_factory.mktemp("batch")
    refs, qs = d / "refs", d / "queries"
    refs.mkdir()
    qs.mkdir()
    audio = {f"R{i}": music(30.0, SR, seed=100 + i) for i in (1, 2, 3)}
    for rid in ("R1", "R2"):
        write_wav(refs / f"{rid}.wav", audio[rid], SR)
    (refs / "broken.mp4").write_text("this is not a video\n")
    other = lambda seed, s: music(s, SR, seed=seed)  # noqa: E731
    write_wav(qs / "Q1.wav", np.concatenate([other(201, 8.0), audio["R2"][5 * SR:15 * SR], other(202, 8.0)]), SR)
    write_wav(qs / "Q2.wav", np.concatenate([audio["R3"][12 * SR:22 * SR], other(203, 10.0),
                                             audio["R1"][0:8 * SR], other(204, 4.0)]), SR)
    write_wav(qs / "Q3.wav", other(205, 25.0), SR)
    truth = pd.DataFrame([["Q1", "R2", 8, 18, 5, 15], ["Q2", "R3", 0, 10, 12, 22], ["Q2", "R1", 20, 28, 0, 8]],
                         columns=["query_id", "ref_id", "query_start", "query_end", "ref_start", "ref_end"])
    truth.to_csv(d / "gt.csv", index=False)
    return d, audio


def test_index_skips_bad_files_and_extends(capsys, library):
    d, audio = library
    rc, out, err = run_main(capsys, "index", d / "refs", "-o", d / "index")
    assert rc == 0, err
    assert "Traceback" not in err
    assert f"skipped {d / 'refs' / 'broken.mp4'}: " in err and "skipped 1 file(s)" in err
    skipped = list(csv.reader(open(d / "index" / "skipped.csv")))
    assert skipped[0] == ["file", "reason"] and skipped[1][0].endswith("broken.mp4")
    assert Library.open(d / "index").ref_ids == ["R1", "R2"]
    # later: one more reference; the existing ones stay
    more = d / "more"
    more.mkdir()
    write_wav(more / "R3.wav", audio["R3"], SR)
    write_wav(more / "R1.wav", audio["R1"], SR)
    rc, out, err = run_main(capsys, "index", more, "-o", d / "index")
    assert rc == 0, err
    assert "indexed 1 reference(s)" in err and "3 in all" in err and "1 already there" in err
    assert Library.open(d / "index").ref_ids == ["R1", "R2", "R3"]


def test_match_writes_full_matches_and_evaluate_scores_them(capsys, library):
    d, _ = library
    if not (d / "index" / MANIFEST).exists():
        pytest.skip("needs test_index_skips_bad_files_and_extends")
    out_csv = d / "full_matches.csv"
    rc, out, err = run_main(capsys, "match", d / "queries", "-i", d / "index", "-o", out_csv)
    assert rc == 0, err
    assert out_csv.read_text().splitlines()[0] == FULL
    pred = pd.read_csv(out_csv)
    assert set(pred.query_id) <= {"Q1", "Q2"}  # nothing for Q3
    assert ((pred.score > 0) & (pred.score <= 1)).all()
    assert list(pred.score) == sorted(pred.score, reverse=True)
    truth = pd.read_csv(d / "gt.csv")
    for g in truth.itertuples():
        best = pred[(pred.query_id == g.query_id) & (pred.ref_id == g.ref_id)].iloc[0]
        for k in ("query_start", "query_end", "ref_start", "ref_end"):
            assert best[k] == pytest.approx(getattr(g, k), abs=0.5), (g, best)
        assert best.score > 0.5
    rc, out, err = run_main(capsys, "evaluate", d / "gt.csv", out_csv, "--format", "json", "--per-query")
    assert rc == 0, err
    res = json.loads(out)
    assert res["uap"] > 0.9 and res["recall_at_precision_0.9"] > 0.9
    assert [r["query_id"] for r in res["per_query"]] == ["Q1", "Q2"]
    rc, out, err = run_main(capsys, "evaluate", d / "gt.csv", out_csv)
    assert rc == 0 and out.startswith("µAP (VSC matching, segment micro-AP): ")


def test_match_prepares_the_searches_before_the_first_query(capsys, library, tmp_path, monkeypatch):
    from fingerprint.pipeline import QueryMatcher

    d, _ = library
    if not (d / "index" / MANIFEST).exists():
        pytest.skip("needs test_index_skips_bad_files_and_extends")
    calls = []
    prepare, match_files = Library.prepare_search, QueryMatcher.match_files
    monkeypatch.setattr(Library, "prepare_search", lambda lib, modalities=("audio", "visual"): (
        calls.append(("prepare", tuple(modalities), lib.audio._dir is None)), prepare(lib, modalities))[1])
    monkeypatch.setattr(QueryMatcher, "match_files", lambda m, *a, **k: (
        calls.append(("match", m.lib.audio._dir is not None)), match_files(m, *a, **k))[1])
    for modality, expect in (("both", ("audio", "visual")), ("audio", ("audio",))):
        calls.clear()
        rc, out, err = run_main(capsys, "match", d / "queries", "-i", d / "index", "-o", tmp_path / "m.csv",
                                "--modality", modality)
        assert rc == 0, err
        # each index's search is ready before the queries start (the bucket directory made there)
        assert calls == [("prepare", expect, True), ("match", True)]


def test_match_audio_only_against_missing_index(capsys, library, tmp_path):
    d, _ = library
    rc, out, err = run_main(capsys, "match", d / "queries", "-i", tmp_path / "nothing", "-o", tmp_path / "x.csv")
    assert_one_line_error(rc, out, err, tmp_path / "nothing", "not an index directory")
    assert not (tmp_path / "x.csv").exists()


def test_damaged_manifest_fails_clearly(capsys, library, tmp_path):
    d, _ = library
    ix = tmp_path / "ix"
    ix.mkdir()
    (ix / MANIFEST).write_text("{not json")
    rc, out, err = run_main(capsys, "match", d / "queries", "-i", ix, "-o", tmp_path / "x.csv")
    assert_one_line_error(rc, out, err, MANIFEST, "damaged manifest")


def test_evaluate_bad_file_is_one_line(capsys, library, tmp_path):
    d, _ = library
    bad = tmp_path / "bad.csv"
    bad.write_text(FULL + ",extra\nQ1,R2,0,1,0,1,0.5,x\n")
    rc, out, err = run_main(capsys, "evaluate", d / "gt.csv", bad)
    assert_one_line_error(rc, out, err, bad, "unexpected column(s) extra")


def test_match_over_shards_gives_the_single_index_rows(capsys, library, tmp_path):
    """References split over two shards (-i A -i B) give exactly the rows of one index holding
    them all; a reference in two shards is refused with one line."""
    d, audio = library
    refs = tmp_path / "refs"
    refs.mkdir()
    for rid in ("R1", "R2", "R3"):
        write_wav(refs / f"{rid}.wav", audio[rid], SR)
    (tmp_path / "a.txt").write_text("refs/R1.wav\nrefs/R3.wav\n")
    (tmp_path / "b.txt").write_text("refs/R2.wav\n")
    for name, src in (("all", refs), ("A", tmp_path / "a.txt"), ("B", tmp_path / "b.txt")):
        rc, _, err = run_main(capsys, "index", src, "-o", tmp_path / name, "--modality", "audio")
        assert rc == 0, err
    one, two = tmp_path / "one.csv", tmp_path / "two.csv"
    assert run_main(capsys, "match", d / "queries", "-i", tmp_path / "all", "-o", one)[0] == 0
    assert run_main(capsys, "match", d / "queries", "-i", tmp_path / "A", "-i", tmp_path / "B", "-o", two)[0] == 0
    rows = one.read_text()
    assert rows == two.read_text() and {"R1", "R2", "R3"} <= set(pd.read_csv(one).ref_id)
    rc, out, err = run_main(capsys, "match", d / "queries", "-i", tmp_path / "A", "-i", tmp_path / "all",
                            "-o", tmp_path / "x.csv")
    assert_one_line_error(rc, out, err, "R1", "is in two shards")


def test_match_without_numba_stops_at_once_in_one_line(library, tmp_path):
    """In a fresh process (this one may have compiled the kernels already), with numba hidden."""
    import subprocess
    import sys

    from tests.test_cli import REPO

    d, _ = library
    hide = "import sys; sys.modules['numba'] = None; from fingerprint.cli import main; sys.exit(main(sys.argv[1:]))"
    proc = subprocess.run([sys.executable, "-c", hide, "match", str(d / "queries"), "-i", str(d / "index"),
                           "-o", str(tmp_path / "out.csv")], cwd=str(REPO), capture_output=True, text=True,
                          timeout=120)
    assert_one_line_error(proc.returncode, proc.stdout, proc.stderr, "numba is not installed", "pip install numba")
    assert not (tmp_path / "out.csv").exists()
