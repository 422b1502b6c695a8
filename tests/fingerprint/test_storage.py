"""Tests for fingerprint.storage: save_arrays / load_arrays round trips and every way a file can be bad."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from fingerprint import storage
from fingerprint.errors import IndexFormatError
from fingerprint.storage import load_arrays, save_arrays

KIND, VERSION = "test-kind", 3


# ---------------------------------------------------------------------------------------------
# helpers that build inputs
# ---------------------------------------------------------------------------------------------

def sample_arrays() -> dict:
    rng = np.random.default_rng(42)
    return {
        "hashes": rng.integers(0, 2 ** 32, 1000, dtype=np.uint64).astype(np.uint32),
        "times": rng.standard_normal((50, 3)).astype(np.float32),
        "names": np.array(["alpha", "béta", "", "日本語", "z" * 40]),
        "empty": np.zeros(0, dtype=np.int64),
        "flags": np.array([True, False, True]),
    }


def sample_meta() -> dict:
    return {"hop_s": 0.016, "sr_hz": 8000, "refs": ["a.mp4", "b.mp4"], "nested": {"k": [1, 2.5, None]},
            "label": "ünïcode"}


def write_index(path: Path, arrays=None, meta=None, kind=KIND, version=VERSION) -> Path:
    save_arrays(path, kind, version, sample_arrays() if arrays is None else arrays,
                sample_meta() if meta is None else meta)
    return path


def npz_members(path: Path) -> dict:
    """All members of an .npz as arrays (no pickle), including ``__meta__``."""
    with np.load(str(path), allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def rewrite_npz(path: Path, members: dict) -> None:
    with open(path, "wb") as f:
        np.savez(f, **members)


def assert_index_error(path: Path, *words: str, kind=KIND, version=VERSION) -> IndexFormatError:
    with pytest.raises(IndexFormatError) as exc_info:
        load_arrays(path, kind, version)
    err = exc_info.value
    msg = str(err)
    assert "\n" not in msg and "\r" not in msg, msg
    assert str(path) in msg, msg
    assert err.path == str(path)
    for w in words:
        assert w.lower() in msg.lower(), msg
    return err


def dir_listing(d: Path) -> list:
    return sorted(p.name for p in d.iterdir())


# ---------------------------------------------------------------------------------------------
# round trip
# ---------------------------------------------------------------------------------------------

def test_round_trip_arrays_and_meta(tmp_path):
    arrays, meta = sample_arrays(), sample_meta()
    path = write_index(tmp_path / "ix.npz", arrays, meta)
    got, got_meta = load_arrays(path, KIND, VERSION)
    assert sorted(got) == sorted(arrays)
    for name, a in arrays.items():
        assert got[name].dtype == a.dtype, name
        assert got[name].shape == a.shape, name
        np.testing.assert_array_equal(got[name], a)
    assert got["hashes"].dtype == np.uint32
    assert got["times"].dtype == np.float32
    assert got["names"].dtype.kind == "U"
    assert list(got["names"]) == ["alpha", "béta", "", "日本語", "z" * 40]
    assert got_meta == meta
    assert dir_listing(tmp_path) == ["ix.npz"]  # no temp file left behind


def test_round_trip_accepts_str_path_and_creates_parent(tmp_path):
    path = tmp_path / "sub" / "dir" / "ix.npz"
    save_arrays(str(path), KIND, VERSION, {"x": np.arange(5, dtype=np.uint32)}, {})
    got, meta = load_arrays(str(path), KIND, VERSION)
    np.testing.assert_array_equal(got["x"], np.arange(5, dtype=np.uint32))
    assert meta == {}


def test_file_layout(tmp_path):
    path = write_index(tmp_path / "ix.npz")
    members = npz_members(path)
    assert "__meta__" in members
    header = json.loads(str(members["__meta__"]))
    assert header["format"] == storage.FORMAT_NAME == "fingerprint-index"
    assert header["kind"] == KIND
    assert header["version"] == VERSION
    assert len(header["sha256"]) == 64
    assert header["meta"] == sample_meta()


def test_overwrite_replaces_previous_content(tmp_path):
    path = write_index(tmp_path / "ix.npz")
    save_arrays(path, KIND, VERSION, {"x": np.array([7, 8, 9], np.uint32)}, {"second": True})
    got, meta = load_arrays(path, KIND, VERSION)
    assert list(got) == ["x"]
    np.testing.assert_array_equal(got["x"], [7, 8, 9])
    assert meta == {"second": True}
    assert dir_listing(tmp_path) == ["ix.npz"]


# ---------------------------------------------------------------------------------------------
# bad files -> IndexFormatError
# ---------------------------------------------------------------------------------------------

def test_missing_file(tmp_path):
    assert_index_error(tmp_path / "nope.npz", "no such")


def test_directory_instead_of_file(tmp_path):
    d = tmp_path / "ix.npz"
    d.mkdir()
    assert_index_error(d)


def test_truncated_file(tmp_path):
    path = write_index(tmp_path / "ix.npz")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    assert_index_error(path, "damaged")


def test_random_bytes(tmp_path):
    path = tmp_path / "ix.npz"
    path.write_bytes(np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    assert_index_error(path, "damaged")


def test_empty_file(tmp_path):
    path = tmp_path / "ix.npz"
    path.write_bytes(b"")
    assert_index_error(path)


def test_text_file(tmp_path):
    path = tmp_path / "ix.npz"
    path.write_text("hello\nworld\n")
    assert_index_error(path)


def test_foreign_npz_without_metadata(tmp_path):
    path = tmp_path / "ix.npz"
    np.savez(path, x=np.arange(3), y=np.ones(2))
    assert_index_error(path, "no metadata")


def test_foreign_npz_with_other_meta(tmp_path):
    path = tmp_path / "ix.npz"
    rewrite_npz(path, {"x": np.arange(3), "__meta__": np.array(json.dumps({"format": "something-else"}))})
    assert_index_error(path, "foreign")


def test_meta_not_json(tmp_path):
    path = tmp_path / "ix.npz"
    rewrite_npz(path, {"x": np.arange(3), "__meta__": np.array("{not json")})
    assert_index_error(path, "damaged")


def test_wrong_kind(tmp_path):
    path = write_index(tmp_path / "ix.npz", kind="audio-landmarks")
    err = assert_index_error(path, "audio-landmarks", KIND, kind=KIND)
    assert "expected" in err.reason


def test_wrong_version(tmp_path):
    path = write_index(tmp_path / "ix.npz", version=VERSION + 1)
    assert_index_error(path, f"version {VERSION + 1}", "rebuild")
    # and the right version still loads
    arrays, _ = load_arrays(path, KIND, VERSION + 1)
    assert arrays["hashes"].size == 1000


def test_tampered_array_checksum_mismatch(tmp_path):
    path = write_index(tmp_path / "ix.npz")
    members = npz_members(path)
    members["hashes"] = members["hashes"].copy()
    members["hashes"][123] ^= 1  # one bit of one value; old __meta__ kept
    rewrite_npz(path, members)
    assert_index_error(path, "checksum")


def test_tampered_array_dropped(tmp_path):
    path = write_index(tmp_path / "ix.npz")
    members = npz_members(path)
    del members["times"]
    rewrite_npz(path, members)
    assert_index_error(path, "checksum")


def test_tampered_dtype_checksum_mismatch(tmp_path):
    path = write_index(tmp_path / "ix.npz", arrays={"x": np.arange(10, dtype=np.uint32)})
    members = npz_members(path)
    members["x"] = members["x"].astype(np.int32)  # same bytes, other dtype
    rewrite_npz(path, members)
    assert_index_error(path, "checksum")


def test_byte_flip_inside_zip_is_caught(tmp_path):
    path = write_index(tmp_path / "ix.npz", arrays={"x": np.zeros(4096, dtype=np.uint32)})
    data = bytearray(path.read_bytes())
    # flip a byte in the middle of x's stored data (the zip CRC or our checksum must catch it)
    pos = bytes(data).index(b"\x93NUMPY") + 128 + 8000
    assert data[pos] == 0
    data[pos] ^= 0xFF
    path.write_bytes(bytes(data))
    assert_index_error(path)


def test_npy_file_is_foreign(tmp_path):
    path = tmp_path / "ix.npz"
    with open(path, "wb") as f:
        np.save(f, np.arange(10))
    assert_index_error(path)


# ---------------------------------------------------------------------------------------------
# save_arrays refusals and atomicity
# ---------------------------------------------------------------------------------------------

def test_object_array_refused(tmp_path):
    with pytest.raises(ValueError, match="obj"):
        save_arrays(tmp_path / "ix.npz", KIND, VERSION,
                    {"ok": np.arange(3), "obj": np.array([{"a": 1}, None], dtype=object)}, {})
    assert dir_listing(tmp_path) == []


def test_reserved_name_refused(tmp_path):
    with pytest.raises(ValueError):
        save_arrays(tmp_path / "ix.npz", KIND, VERSION, {"__meta__": np.arange(3)}, {})
    assert dir_listing(tmp_path) == []


def test_object_array_refused_keeps_previous_file(tmp_path):
    path = write_index(tmp_path / "ix.npz")
    before = path.read_bytes()
    with pytest.raises(ValueError):
        save_arrays(path, KIND, VERSION, {"obj": np.array([1, "a"], dtype=object)}, {})
    assert path.read_bytes() == before
    assert dir_listing(tmp_path) == ["ix.npz"]


def test_failed_write_keeps_previous_file_and_leaves_no_temp(tmp_path, monkeypatch):
    path = write_index(tmp_path / "ix.npz")
    before = path.read_bytes()
    real_savez = np.savez

    def savez_that_dies(file, *args, **kwds):
        file.write(b"PK\x03\x04 partial garbage " * 100)  # some bytes reach the temp file first
        file.flush()
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(np, "savez", savez_that_dies)
    with pytest.raises(OSError, match="disk full"):
        save_arrays(path, KIND, VERSION, {"x": np.arange(100)}, {"new": True})
    monkeypatch.setattr(np, "savez", real_savez)

    assert path.read_bytes() == before
    assert dir_listing(tmp_path) == ["ix.npz"]
    arrays, meta = load_arrays(path, KIND, VERSION)
    assert meta == sample_meta()
    np.testing.assert_array_equal(arrays["hashes"], sample_arrays()["hashes"])


def test_interrupted_write_leaves_no_temp(tmp_path, monkeypatch):
    """KeyboardInterrupt (a BaseException) midway through the write cleans up as well."""
    path = write_index(tmp_path / "ix.npz")
    before = path.read_bytes()

    def savez_interrupted(file, *args, **kwds):
        file.write(b"\0" * 1000)
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", savez_interrupted)
    with pytest.raises(KeyboardInterrupt):
        save_arrays(path, KIND, VERSION, {"x": np.arange(100)}, {})
    assert path.read_bytes() == before
    assert dir_listing(tmp_path) == ["ix.npz"]


def test_failed_first_write_creates_nothing(tmp_path, monkeypatch):
    def savez_fails(file, *args, **kwds):
        raise RuntimeError("boom")

    monkeypatch.setattr(np, "savez", savez_fails)
    with pytest.raises(RuntimeError):
        save_arrays(tmp_path / "ix.npz", KIND, VERSION, {"x": np.arange(3)}, {})
    assert dir_listing(tmp_path) == []
    assert not os.path.exists(tmp_path / "ix.npz")


def test_array_named_like_a_savez_keyword(tmp_path):
    path = tmp_path / "ix.npz"
    x = np.arange(4, dtype=np.uint32)
    try:
        save_arrays(path, KIND, VERSION, {"allow_pickle": x}, {})
    except ValueError:  # refusing the name up front would be fine too
        return
    got, _ = load_arrays(path, KIND, VERSION)
    np.testing.assert_array_equal(got["allow_pickle"], x)
