"""Tests for the ``fingerprint`` command line (fingerprint.cli.main and ``python -m fingerprint``)."""
from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fingerprint import cli
from fingerprint.synth import music, write_wav

SR = 16000
REPO = Path(__file__).resolve().parents[1]
HEADER = "query_start,query_end,ref_start,ref_end,score"
KEYS = ["query_start", "query_end", "ref_start", "ref_end", "score"]
# Ground truth of the copy case: query[12 s : 22 s] == ref[8 s : 18 s].
TRUTH = {"query_start": 12.0, "query_end": 22.0, "ref_start": 8.0, "ref_end": 18.0}


# ---------------------------------------------------------------------------------------------
# helpers that build inputs and run the CLI
# ---------------------------------------------------------------------------------------------

def make_copy_case(d: Path):
    """ref = 30 s of music; query = 12 s other music + ref[8 s:18 s] + 12 s other music."""
    ref = music(30.0, SR, seed=1)
    query = np.concatenate([music(12.0, SR, seed=2), ref[8 * SR:18 * SR], music(12.0, SR, seed=3)])
    return write_wav(d / "query.wav", query, SR), write_wav(d / "ref.wav", ref, SR)


def make_unrelated(d: Path, seed: int = 2, duration_s: float = 20.0) -> Path:
    return write_wav(d / f"unrelated_{seed}.wav", music(duration_s, SR, seed=seed), SR)


def run_main(capsys, *argv: str):
    """``(exit code, stdout, stderr)`` of ``cli.main(argv)``; SystemExit (argparse) counts as an exit."""
    try:
        rc = cli.main([str(a) for a in argv])
    except SystemExit as exc:
        rc = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    out, err = capsys.readouterr()
    return rc, out, err


def run_module(*argv: str, timeout: float = 60):
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run([sys.executable, "-m", "fingerprint", *map(str, argv)], cwd=str(REPO), env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
    return proc.returncode, proc.stdout.decode(), proc.stderr.decode()


def parse_csv(text: str):
    lines = text.splitlines()
    assert lines and lines[0] == HEADER, text
    rows = list(csv.DictReader(io.StringIO(text)))
    return [{k: float(v) for k, v in r.items()} for r in rows]


def assert_copy_found(rows) -> dict:
    assert rows, "no segment found"
    best = max(rows, key=lambda r: r["score"])
    for k, v in TRUTH.items():
        assert best[k] == pytest.approx(v, abs=0.5), (k, best)
    assert best["score"] >= 0.8, best  # a clean 10 s copy is a confident match (score = P(copy))
    # no other segment is taken for a copy
    for r in rows:
        if r is not best:
            assert r["score"] < 0.5, rows
    return best


def assert_one_line_error(rc: int, out: str, err: str, *words: str) -> None:
    assert rc == 2, (rc, out, err)
    assert "Traceback" not in err and "Traceback" not in out, err
    lines = err.splitlines()
    assert len(lines) == 1, err
    for w in words:
        assert str(w) in lines[0], (w, err)


# ---------------------------------------------------------------------------------------------
# fixtures
# ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def wav_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cli")


@pytest.fixture(scope="module")
def copy_case(wav_dir):
    return make_copy_case(wav_dir)


@pytest.fixture(scope="module")
def unrelated(wav_dir) -> Path:
    return make_unrelated(wav_dir, seed=2)


# ---------------------------------------------------------------------------------------------
# output formats
# ---------------------------------------------------------------------------------------------

def test_compare_csv_finds_copy(capsys, copy_case):
    query, ref = copy_case
    rc, out, err = run_main(capsys, "compare", query, ref, "--format", "csv")
    assert rc == 0, err
    assert err == ""
    assert out.splitlines()[0] == HEADER
    best = assert_copy_found(parse_csv(out))
    assert best["query_end"] - best["query_start"] == pytest.approx(10.0, abs=0.5)


def test_compare_json_finds_copy(capsys, copy_case):
    query, ref = copy_case
    rc, out, err = run_main(capsys, "compare", query, ref, "--format", "json", "--modality", "audio")
    assert rc == 0, err
    data = json.loads(out)
    assert isinstance(data, list) and data
    for obj in data:
        assert isinstance(obj, dict)
        assert set(KEYS) <= set(obj), obj
        assert all(isinstance(obj[k], (int, float)) for k in KEYS), obj
    assert_copy_found([{k: float(o[k]) for k in KEYS} for o in data])
    obj = max(data, key=lambda o: o["score"])
    assert obj["speed"] == pytest.approx(1.0, abs=0.02)
    assert obj["hits"].get("audio", 0) >= 100  # ~50 hashes/s, most of them survive in a clean copy
    assert obj["strength"]["audio"] >= 20 and "visual" not in obj["hits"]


def test_compare_table_is_default(capsys, copy_case):
    query, ref = copy_case
    rc, out, err = run_main(capsys, "compare", query, ref)
    assert rc == 0, err
    lines = out.splitlines()
    assert len(lines) >= 2 and "query" in lines[0]
    first = lines[1].split()
    q0, q1 = (float(x) for x in first[0].split("-"))
    r0, r1 = (float(x) for x in first[1].split("-"))
    assert (q0, r0) == (pytest.approx(12.0, abs=0.5), pytest.approx(8.0, abs=0.5))
    assert (q1, r1) == (pytest.approx(22.0, abs=0.5), pytest.approx(18.0, abs=0.5))


def test_unrelated_audio_gives_only_header(capsys, unrelated, copy_case):
    _, ref = copy_case
    rc, out, err = run_main(capsys, "compare", unrelated, ref, "--format", "csv")
    assert rc == 0, err
    assert out == HEADER + "\n"
    rc, out, err = run_main(capsys, "compare", unrelated, ref, "--format", "json")
    assert rc == 0, err
    assert json.loads(out) == []


@pytest.mark.parametrize("seed", [4, 6, 16])
def test_other_unrelated_audio_gives_only_header(capsys, wav_dir, copy_case, seed):
    """Seeds that gave a spurious segment of strength 12 (== VoteParams.min_hits) at commit 0f5a5d1."""
    _, ref = copy_case
    rc, out, err = run_main(capsys, "compare", make_unrelated(wav_dir, seed=seed), ref, "--format", "csv")
    assert rc == 0, err
    assert out == HEADER + "\n"


# ---------------------------------------------------------------------------------------------
# bad input and usage
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("which", ["query", "ref"])
def test_missing_file_exits_2(capsys, tmp_path, copy_case, which):
    query, ref = copy_case
    missing = tmp_path / "missing.mp4"
    args = (missing, ref) if which == "query" else (query, missing)
    rc, out, err = run_main(capsys, "compare", *args, "--format", "csv")
    assert_one_line_error(rc, out, err, missing)
    assert out == ""


@pytest.mark.parametrize("which", ["query", "ref"])
def test_text_file_exits_2(capsys, tmp_path, copy_case, which):
    query, ref = copy_case
    text = tmp_path / "notes.mp4"
    text.write_text("this is not media\nat all\n")
    args = (text, ref) if which == "query" else (query, text)
    rc, out, err = run_main(capsys, "compare", *args)
    assert_one_line_error(rc, out, err, text)
    assert out == ""


def test_modality_visual_on_audio_only_files_notes_it(capsys, copy_case):
    query, ref = copy_case
    rc, out, err = run_main(capsys, "compare", query, ref, "--modality", "visual", "--format", "csv")
    assert rc == 0
    assert out.strip() == HEADER
    assert err.count("\n") == 2 and "no visual track" in err and "Traceback" not in err


def test_modality_visual_without_the_model_exits_2(capsys, copy_case, monkeypatch):
    import visual

    monkeypatch.setattr(visual, "AVAILABLE", False)
    query, ref = copy_case
    rc, out, err = run_main(capsys, "compare", query, ref, "--modality", "visual")
    assert_one_line_error(rc, out, err, "visual", "not available")
    assert out == ""


def test_compare_help(capsys):
    rc, out, err = run_main(capsys, "compare", "--help")
    assert rc == 0
    assert "csv" in out
    assert "--modality" in out and "--format" in out
    assert HEADER in " ".join(out.split())  # help wraps lines; the header is named verbatim


def test_no_command_exits_2(capsys):
    rc, out, err = run_main(capsys)
    assert rc == 2
    assert "compare" in out + err  # the help names the available command


@pytest.mark.parametrize("argv", [["compare"], ["compare", "a.wav"], ["frobnicate"],
                                  ["compare", "a.wav", "b.wav", "--format", "xml"]])
def test_usage_errors_exit_2(capsys, argv):
    rc, out, err = run_main(capsys, *argv)
    assert rc == 2
    assert "usage:" in err and "error:" in err
    assert "Traceback" not in err


# ---------------------------------------------------------------------------------------------
# the real entry point, in a subprocess
# ---------------------------------------------------------------------------------------------

def test_python_m_fingerprint_compare_csv(copy_case):
    query, ref = copy_case
    rc, out, err = run_module("compare", query, ref, "--format", "csv")
    assert rc == 0, err
    assert out.splitlines()[0] == HEADER
    assert_copy_found(parse_csv(out))


def test_python_m_fingerprint_bad_input(tmp_path):
    missing = tmp_path / "nope.wav"
    rc, out, err = run_module("compare", missing, missing)
    assert_one_line_error(rc, out, err, missing)
    rc, out, err = run_module()
    assert rc == 2


def test_compare_visual_csv_on_videos(capsys, tmp_path):
    from fingerprint.synth_video import copy_query, scene_video

    ref = scene_video(tmp_path / "ref.mp4", 30.0, seed=21)
    query, truth = copy_query(tmp_path, ref, "hflip", seed=21)
    rc, out, err = run_main(capsys, "compare", query, ref, "--modality", "visual", "--format", "csv")
    assert rc == 0, err
    rows = parse_csv(out)
    assert out.splitlines()[0] == HEADER and rows
    best = max(rows, key=lambda r: r["score"])
    for key, t in zip(KEYS[:4], truth):
        assert abs(best[key] - t) <= 1.0, (key, best[key], t)
