"""main.py follows the code-execution contract on a fake /data tree."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from audio import AudioIndex, fingerprint_file
from fingerprint.synth import ffmpeg, music, write_wav
from tests.helpers import SR

REPO = Path(__file__).resolve().parents[1]


def test_main_writes_subset_matches(tmp_path):
    data, root, assets = tmp_path / "data", tmp_path / "code_execution", tmp_path / "assets"
    (data / "query").mkdir(parents=True)
    ref = music(30.0, SR, seed=41)
    refs = {"R000001": ref, "R000002": music(30.0, SR, seed=42)}
    index = AudioIndex()
    for rid, x in refs.items():
        index.add(rid, fingerprint_file(write_wav(tmp_path / f"{rid}.wav", x, SR)))
    index.save(assets / "audio_index.npz")
    copy = np.concatenate([music(6.0, SR, seed=43), ref[10 * SR:20 * SR], music(6.0, SR, seed=44)])
    for qid, x in {"Q100001": copy, "Q100002": music(20.0, SR, seed=45)}.items():
        wav = write_wav(tmp_path / f"{qid}.wav", x, SR)
        ffmpeg("-i", str(wav), "-c:a", "aac", "-b:a", "96k", str(data / "query" / f"{qid}.mp4"))
    pd.DataFrame({"video_id": ["Q100001", "Q100002"]}).to_csv(data / "query_subset.csv", index=False)
    env = dict(os.environ, VSC_DATA_DIR=str(data), VSC_ROOT_DIR=str(root), VSC_ASSETS_DIR=str(assets))
    subprocess.run([sys.executable, str(REPO / "main.py")], env=env, check=True, capture_output=True)
    out = pd.read_csv(root / "submission" / "subset_matches.csv")
    assert list(out.columns) == ["query_id", "ref_id", "query_start", "query_end", "ref_start", "ref_end", "score"]
    assert len(out) == 1
    row = out.iloc[0]
    assert (row.query_id, row.ref_id) == ("Q100001", "R000001")
    assert abs(row.query_start - 6.0) < 0.5 and abs(row.ref_start - 10.0) < 0.5
    assert abs(row.query_end - 16.0) < 0.5 and abs(row.ref_end - 20.0) < 0.5
