"""Every entry point on the corpus of bad and odd inputs (tests/corpus.py, docs/bad_inputs.md)."""
from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from fingerprint.evaluate import read_matches
from fingerprint.synth import music
from fingerprint.synth_video import scene_video
from tests.corpus import make_corpus
from tests.test_cli import assert_one_line_error, run_main

REPO = Path(__file__).resolve().parents[1]
HEADER = "query_start,query_end,ref_start,ref_end,score"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    d = tmp_path_factory.mktemp("corpus")
    cases = make_corpus(d / "files")
    ref = scene_video(d / "ref.mp4", 8.0, seed=779, audio=(music(8.0, 16000, seed=779), 16000))
    return d, cases, ref


def _ids(cases, ok):
    return sorted(c.path.stem for c in cases if c.ok == ok)


def test_compare_each_case_as_query(capsys, corpus):
    d, cases, ref = corpus
    for c in cases:
        rc, out, err = run_main(capsys, "compare", c.path, ref, "--format", "csv")
        if c.ok:
            assert rc == 0, (c.name, err)
            assert "Traceback" not in err
            assert out.splitlines()[0] == HEADER, (c.name, out)
        else:
            assert_one_line_error(rc, out, err, c.path)


def test_compare_each_bad_case_as_reference(capsys, corpus):
    d, cases, ref = corpus
    for c in cases:
        if not c.ok:
            rc, out, err = run_main(capsys, "compare", ref, c.path)
            assert_one_line_error(rc, out, err, c.path)


def test_index_and_match_skip_bad_files_and_go_on(capsys, corpus):
    d, cases, ref = corpus
    rc, out, err = run_main(capsys, "index", d / "files", "-o", d / "index")
    assert rc == 0, err
    assert "Traceback" not in err
    bad = [c for c in cases if not c.ok]
    for c in bad:
        assert f"skipped {c.path}: " in err, (c.name, err)
    assert f"skipped {len(bad)} file(s)" in err
    rows = list(csv.reader(open(d / "index" / "skipped.csv", encoding="utf-8")))
    assert sorted(Path(r[0]).stem for r in rows[1:]) == _ids(cases, False)
    from fingerprint.pipeline import Library

    assert Library.open(d / "index").ref_ids == _ids(cases, True)

    rc, out, err = run_main(capsys, "match", d / "files", "-i", d / "index", "-o", d / "full_matches.csv")
    assert rc == 0, err
    assert "Traceback" not in err and f"skipped {len(bad)} file(s)" in err
    pred = read_matches(d / "full_matches.csv")  # valid full_matches format
    assert set(pred.query_id) <= set(_ids(cases, True))
    rows = list(csv.reader(open(str(d / "full_matches.csv") + ".skipped.csv", encoding="utf-8")))
    assert sorted(Path(r[0]).stem for r in rows[1:]) == _ids(cases, False)
    # the same picture under another name is found: the copies made from one source match
    assert ((pred.query_id == "video_only") & (pred.ref_id == "clip été 日本 (1)")).any()


def test_main_on_the_corpus(corpus):
    d, cases, ref = corpus
    if not (d / "index" / "index.json").exists():
        pytest.skip("needs test_index_and_match_skip_bad_files_and_go_on")
    data = d / "data"
    (data / "query").mkdir(parents=True, exist_ok=True)
    for c in cases:
        dst = data / "query" / (c.path.stem + ".mp4")
        if not dst.exists():
            os.symlink(c.path, dst)
    ids = [c.path.stem for c in cases] + ["../../etc/passwd"]
    pd.DataFrame({"video_id": ids}).to_csv(data / "query_subset.csv", index=False)
    assets = d / "assets"
    assets.mkdir(exist_ok=True)
    if not (assets / "index").exists():
        os.symlink(d / "index", assets / "index")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(VSC_DATA_DIR=str(data), VSC_ROOT_DIR=str(d / "root"), VSC_ASSETS_DIR=str(assets))
    proc = subprocess.run([sys.executable, str(REPO / "main.py")], env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    n_bad = sum(not c.ok for c in cases) + 1
    assert f"{n_bad} queries skipped" in proc.stderr
    read_matches(d / "root" / "submission" / "subset_matches.csv")


@pytest.mark.parametrize("name", ["random_bytes", "zero_bytes", "truncated"])
def test_evaluate_refuses_media_as_csv(capsys, corpus, name, tmp_path):
    d, cases, ref = corpus
    path = next(c.path for c in cases if c.name == name)
    gt = tmp_path / "gt.csv"
    gt.write_text("query_id,ref_id,query_start,query_end,ref_start,ref_end\nQ1,R1,0,5,0,5\n")
    rc, out, err = run_main(capsys, "evaluate", gt, path)
    assert_one_line_error(rc, out, err, path)
