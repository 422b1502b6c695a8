"""main.py follows the code-execution contract on a fake /data tree, alone and from a submission zip."""
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fingerprint.evaluate import EvaluationInputError, evaluate_matches, read_matches
from fingerprint.pipeline import Library
from fingerprint.submission import build_submission
from fingerprint.synth import ffmpeg, music, write_wav
from tests.helpers import SR

REPO = Path(__file__).resolve().parents[1]
COLUMNS = ["query_id", "ref_id", "query_start", "query_end", "ref_start", "ref_end", "score"]


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    """An index of two music references; a /data tree with three queries: Q100001 holds
    R000001[10:20] at 6-16 s, Q100002 is unrelated, Q100003 is not a video; query_subset.csv also
    lists an id that is a path and one whose file is missing."""
    tmp = tmp_path_factory.mktemp("main")
    data = tmp / "data"
    (data / "query").mkdir(parents=True)
    refs = {"R000001": music(30.0, SR, seed=41), "R000002": music(30.0, SR, seed=42)}
    lib = Library.create(tmp / "index")
    for rid, x in refs.items():
        lib.add_file(write_wav(tmp / f"{rid}.wav", x, SR))
    lib.save()
    copy = np.concatenate([music(6.0, SR, seed=43), refs["R000001"][10 * SR:20 * SR], music(6.0, SR, seed=44)])
    for qid, x in {"Q100001": copy, "Q100002": music(20.0, SR, seed=45)}.items():
        wav = write_wav(tmp / f"{qid}.wav", x, SR)
        ffmpeg("-i", str(wav), "-c:a", "aac", "-b:a", "96k", str(data / "query" / f"{qid}.mp4"))
    # fixed garbage bytes, the same in every run (ffprobe reads ~1% of random 2 KB draws as a
    # subtitle stream; probe() still refuses those, but a test should not depend on a draw)
    (data / "query" / "Q100003.mp4").write_bytes(np.random.default_rng(1103).bytes(2048))
    ids = ["Q100001", "Q100002", "Q100003", "../../etc/passwd", "Q100004"]
    pd.DataFrame({"video_id": ids}).to_csv(data / "query_subset.csv", index=False)
    gt = pd.DataFrame([["Q100001", "R000001", 6.0, 16.0, 10.0, 20.0]], columns=COLUMNS[:6])
    return tmp, data, gt


def run_main(main_py: Path, data: Path, root: Path, cwd: Path, assets: Path = None, **extra):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(VSC_DATA_DIR=str(data), VSC_ROOT_DIR=str(root), **extra)
    if assets is not None:
        env["VSC_ASSETS_DIR"] = str(assets)
    return subprocess.run([sys.executable, str(main_py)], env=env, cwd=str(cwd), capture_output=True, text=True,
                          timeout=300)


def check_output(root: Path, gt: pd.DataFrame, proc) -> pd.DataFrame:
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    out_file = root / "submission" / "subset_matches.csv"
    assert out_file.read_text().splitlines()[0] == ",".join(COLUMNS)
    out = read_matches(out_file)  # the format rules: times >= 0, start <= end, finite scores
    assert list(out.query_id) == ["Q100001"] and list(out.ref_id) == ["R000001"]
    row = out.iloc[0]
    for k, v in zip(COLUMNS[2:6], (6.0, 16.0, 10.0, 20.0)):
        assert abs(row[k] - v) < 0.5, (k, row[k])
    assert evaluate_matches(gt, out).uap > 0.9
    # counts and timings only: no file name or id in the log
    log = proc.stdout + proc.stderr
    assert "Q1000" not in log and "passwd" not in log and "R0000" not in log
    assert "3 queries skipped" in proc.stderr  # random bytes, a path for an id, a missing file
    return out


def test_main_writes_subset_matches(case):
    tmp, data, gt = case
    root = tmp / "code_execution"
    proc = run_main(REPO / "main.py", data, root, cwd=tmp, assets=tmp / "assets")
    assert proc.returncode == 2 and "not an index directory" in proc.stderr  # no index there yet
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    (tmp / "assets").mkdir()
    os.rename(tmp / "index", tmp / "assets" / "index")
    try:
        check_output(root, gt, run_main(REPO / "main.py", data, root, cwd=tmp, assets=tmp / "assets"))
    finally:
        os.rename(tmp / "assets" / "index", tmp / "index")


def test_time_budget_policy(case):
    tmp, data, gt = case
    root = tmp / "code_execution_budget"
    env_assets = tmp / "assets_b"
    env_assets.mkdir(exist_ok=True)
    (env_assets / "index").symlink_to(tmp / "index", target_is_directory=True)
    # no time at all per query: every query runs on the cheaper settings and skips the visual
    # stage; the audio stage still finds the copy
    proc = run_main(REPO / "main.py", data, root, cwd=tmp, assets=env_assets, VSC_QUERY_BUDGET_S="0")
    check_output(root, gt, proc)
    assert "5 on cheaper settings" in proc.stderr
    # the total limit already spent: no query runs, the file is still written (header only)
    proc = run_main(REPO / "main.py", data, root, cwd=tmp, assets=env_assets, VSC_TOTAL_LIMIT_S="0")
    assert proc.returncode == 0, proc.stderr
    assert "5 not run (time limit)" in proc.stderr
    assert (root / "submission" / "subset_matches.csv").read_text() == ",".join(COLUMNS) + "\n"


def test_submission_zip_runs_on_its_own(case):
    tmp, data, gt = case
    fm = tmp / "full_matches.csv"
    pd.DataFrame([["Q100001", "R000001", 6.0, 16.0, 10.0, 20.0, 0.9]], columns=COLUMNS).to_csv(fm, index=False)
    zpath = build_submission(tmp / "index", fm, tmp / "submission.zip")
    names = zipfile.ZipFile(zpath).namelist()
    for must in ("main.py", "full_matches.csv", "model_assets/index/index.json", "model_assets/index/audio.1.npz",
                 "model_assets/calibration.npz", "fingerprint/pipeline.py", "fusion/fuse.py"):
        assert must in names, must
    assert not any(n.startswith("tests/") or "__pycache__" in n or n.endswith(".onnx") for n in names)
    ex = tmp / "extracted"
    zipfile.ZipFile(zpath).extractall(ex)
    (ex / "full_matches.csv").unlink()  # main.py must not need it
    root = tmp / "code_execution_zip"
    check_output(root, gt, run_main(ex / "main.py", data, root, cwd=ex))


@pytest.mark.parametrize("text, reason", [
    ("query_id,ref_id,query_start,query_end,ref_start,ref_end,score\nQ1,R1,5,2,0,1,0.5\n", "after query_end"),
    ("ref_id,query_id,query_start,query_end,ref_start,ref_end,score\nR1,Q1,0,2,0,1,0.5\n", "in this order"),
    ("query_id,ref_id,query_start,query_end,ref_start,ref_end,score\nQ1,R1,-1,2,0,1,0.5\n", "negative"),
])
def test_submission_refuses_bad_full_matches(case, tmp_path, text, reason):
    tmp, _, _ = case
    fm = tmp_path / "full_matches.csv"
    fm.write_text(text)
    with pytest.raises(EvaluationInputError, match=reason):
        build_submission(tmp / "index", fm, tmp_path / "s.zip")
    assert not (tmp_path / "s.zip").exists()
