"""On-disk storage of index arrays: one ``.npz`` file, written atomically, versioned, checksummed.

Layout: the named numpy arrays plus ``__meta__``, a JSON string with ``format`` (always
``"fingerprint-index"``), ``kind`` (e.g. ``"audio-landmarks"``), ``version`` (an int the writer's
module owns), ``sha256`` over the arrays, and the writer's ``meta`` dict. Nothing is pickled:
loading uses ``allow_pickle=False`` so object arrays are refused.

>>> save_arrays("ix.npz", "demo", 1, {"x": np.arange(3)}, {"hop_s": 0.016})   # doctest: +SKIP
>>> arrays, meta = load_arrays("ix.npz", "demo", 1)                           # doctest: +SKIP
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Dict, Tuple, Union

import numpy as np

from .errors import IndexFormatError

FORMAT_NAME = "fingerprint-index"
_META_KEY = "__meta__"


def _digest(arrays: Dict[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(name.encode())
        h.update(a.dtype.str.encode())
        h.update(repr(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()


@contextlib.contextmanager
def atomic_file(path: Union[str, Path], mode: str = "w", **open_kw):
    """Write ``path`` through a temp file in the same directory: fsync, then rename over ``path``.
    On an error (or a kill) before the rename, ``path`` keeps its previous content.

    >>> with atomic_file("out.csv", newline="") as f:   # doctest: +SKIP
    ...     f.write("a,b\n")
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=str(path.parent))
    try:
        with os.fdopen(fd, mode, **open_kw) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def save_arrays(path: Union[str, Path], kind: str, version: int, arrays: Dict[str, np.ndarray],
                meta: dict) -> None:
    """Write ``arrays`` and ``meta`` to ``path`` atomically (temp file, fsync, rename).

    A process killed mid-write leaves any previous file at ``path`` intact.
    """
    path = Path(path)
    for name, a in arrays.items():
        # np.savez takes these as its own keywords; "__" names are ours.
        if name in ("file", "allow_pickle", "args", "kwds") or name.startswith("__"):
            raise ValueError(f"array name {name!r} is reserved")
        if np.asarray(a).dtype == object:
            raise ValueError(f"array {name!r} has object dtype, which cannot be stored without pickle")
    header = {"format": FORMAT_NAME, "kind": kind, "version": int(version),
              "sha256": _digest(arrays), "meta": meta}
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=str(path.parent))
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays, **{_META_KEY: np.array(json.dumps(header, sort_keys=True))})
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; an index is an ordinary file
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    try:  # make the rename itself durable
        dfd = os.open(str(path.parent), os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


def load_arrays(path: Union[str, Path], kind: str, version: int) -> Tuple[Dict[str, np.ndarray], dict]:
    """Read a file written by :func:`save_arrays`; returns ``(arrays, meta)``.

    Raises :class:`IndexFormatError` (one line, naming the file) if the file is missing, damaged,
    truncated, not one of ours, of another ``kind``, or of another format ``version``.
    """
    path = Path(path)
    if not path.is_file():
        raise IndexFormatError(path, "no such index file")
    try:
        with np.load(str(path), allow_pickle=False) as z:
            if not isinstance(z, np.lib.npyio.NpzFile):
                raise IndexFormatError(path, "not a fingerprint index (a plain numpy array file)")
            if _META_KEY not in z.files:
                raise IndexFormatError(path, "not a fingerprint index (no metadata)")
            header = json.loads(str(z[_META_KEY]))
            arrays = {name: z[name] for name in z.files if name != _META_KEY}
    except IndexFormatError:
        raise
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError, TypeError, json.JSONDecodeError) as exc:
        raise IndexFormatError(path, f"damaged or not an index file ({type(exc).__name__}: {exc})") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT_NAME:
        raise IndexFormatError(path, "not a fingerprint index (foreign file)")
    if header.get("kind") != kind:
        raise IndexFormatError(path, f"index holds {header.get('kind')!r}, expected {kind!r}")
    if header.get("version") != version:
        raise IndexFormatError(path, f"index format version {header.get('version')} is not supported "
                                     f"(this program reads version {version}); rebuild the index")
    if header.get("sha256") != _digest(arrays):
        raise IndexFormatError(path, "checksum mismatch: the index file is damaged")
    return arrays, header.get("meta", {})
