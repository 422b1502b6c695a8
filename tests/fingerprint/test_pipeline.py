"""Index directories: generations, damaged or foreign manifests, and a writer killed mid-save."""
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fingerprint.errors import IndexFormatError
from fingerprint.pipeline import MANIFEST, Library, check_id, list_media

REPO = Path(__file__).resolve().parents[2]

# A child process that keeps adding references (random landmarks and descriptors, a few MB per
# save) and saving, forever; it prints the number of references after each completed save.
WRITER = r"""
import sys, numpy as np
sys.path.insert(0, sys.argv[2])
from fingerprint.pipeline import Library
from audio.landmarks import Landmarks
lib = Library.open(sys.argv[1])
rng = np.random.default_rng(0)
i = len(lib.ref_ids)
while True:
    n = 20000
    lm = Landmarks(t_s=np.sort(rng.uniform(0, 400, n)).astype(np.float32),
                   f1=rng.uniform(0, 200, n).astype(np.float32), f2=rng.uniform(0, 200, n).astype(np.float32),
                   f3=rng.uniform(0, 200, n).astype(np.float32), dt2=rng.integers(2, 20, n).astype(np.int32),
                   dt3=rng.integers(20, 40, n).astype(np.int32), hop_s=0.016, duration_s=400.0)
    rid = f"R{i:06d}"
    lib.audio.add(rid, lm)
    lib.visual.add(rid, np.arange(3000, dtype=np.float32), rng.normal(size=(3000, 512)).astype(np.float32))
    lib.save()
    i += 1
    print(len(lib.ref_ids), flush=True)
"""



@pytest.fixture
def empty_library(tmp_path):
    lib = Library.create(tmp_path / "ix")
    lib.save()
    return tmp_path / "ix"


def test_generations_replace_old_files(empty_library):
    lib = Library.open(empty_library)
    assert lib.generation == 1
    lib.save()
    lib.save()
    names = sorted(p.name for p in empty_library.iterdir())
    assert names == ["audio.3.npz", MANIFEST, "visual.3.npz"]
    assert Library.open(empty_library).generation == 3


@pytest.mark.parametrize("delay_s", [0.7, 1.3, 2.1])
def test_writer_killed_mid_save_leaves_a_consistent_index(empty_library, tmp_path, delay_s):
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    child = subprocess.Popen([sys.executable, str(script), str(empty_library), str(REPO)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(delay_s)
    child.send_signal(signal.SIGKILL)
    out, err = child.communicate(timeout=30)
    assert "Traceback" not in err, err
    saved = [int(x) for x in out.split()]
    lib = Library.open(empty_library)  # loads: never a half-written file
    assert lib.audio.ref_ids == lib.visual.ref_ids  # both files of one generation
    n = len(lib.ref_ids)
    # what is there is the last completed save, or the one that completed as it was killed
    assert n in ({saved[-1], saved[-1] + 1} if saved else {0, 1})
    for p in empty_library.iterdir():
        assert p.name == MANIFEST or p.name.endswith((".npz", ".ann", ".tmp")), p.name
    lib.save()  # the next save clears what the killed one left
    gen = lib.generation
    assert sorted(p.name for p in empty_library.iterdir()) == [f"audio.{gen}.npz", MANIFEST, f"visual.{gen}.npz"]


def test_damaged_and_foreign_manifests(empty_library):
    man = empty_library / MANIFEST
    good = json.loads(man.read_text())
    for bad, reason in [({**good, "kind": "something-else"}, "not a fingerprint-index manifest"),
                        ({**good, "version": 99}, "format version 99"),
                        ({**good, "files": {"audio": "../../etc/passwd", "visual": "visual.1.npz"}},
                         "no valid audio file")]:
        man.write_text(json.dumps(bad))
        with pytest.raises(IndexFormatError, match=reason):
            Library.open(empty_library)
    man.write_text(json.dumps(good))
    data = bytearray((empty_library / "audio.1.npz").read_bytes())
    (empty_library / "audio.1.npz").write_bytes(bytes(data[: len(data) // 2]))
    with pytest.raises(IndexFormatError, match="audio.1.npz"):
        Library.open(empty_library)


def test_list_media_and_ids(tmp_path):
    (tmp_path / "b.mp4").write_bytes(b"x")
    (tmp_path / "a.wav").write_bytes(b"x")
    (tmp_path / "notes.txt").write_text("x")
    assert [p.name for p in list_media(tmp_path)] == ["a.wav", "b.mp4"]
    lst = tmp_path / "list.txt"
    lst.write_text("# queries\nb.mp4\n\n/abs/c.mp4\n")
    assert list_media(lst) == [tmp_path / "b.mp4", Path("/abs/c.mp4")]
    assert check_id("clip été (1)", "x") == "clip été (1)"
    for bad in ("../x", "a/b", ".x", "", "x\n"):
        with pytest.raises(Exception, match="not a plain video id"):
            check_id(bad, "x")


def test_audio_beside_visual_gives_the_sequential_result(tmp_path):
    """pair_segments runs the audio stage in a thread beside the visual one; with a deadline it
    runs them one after the other. Both find the copy in both modalities, with the same numbers.
    A reference that the searches meet but the voter finds nothing in is left out."""
    import shutil

    import fusion
    from fingerprint.pipeline import QueryMatcher
    from fingerprint.synth import music
    from fingerprint.synth_video import scene_video

    ref = scene_video(tmp_path / "R1.mp4", 12.0, seed=5, audio=(music(12.0, 16000, seed=9), 16000))
    other = scene_video(tmp_path / "R2.mp4", 12.0, seed=6, audio=(music(12.0, 16000, seed=10), 16000))
    query = shutil.copy(ref, tmp_path / "Q1.mp4")
    lib = Library.create(tmp_path / "ix")
    lib.add_file(ref)
    lib.add_file(other)
    voted = []
    real = fusion.find_segments_many
    with pytest.MonkeyPatch.context() as mp:
        def recorded(hits, p, **kw):  # which references were met, and what the voter passed on
            voted.append((list(getattr(hits, "ref_ids", hits)), real(hits, p, **kw)))
            return voted[-1][1]

        mp.setattr(fusion, "find_segments_many", recorded)
        m = QueryMatcher(lib)
        qid, beside = m.pair_segments(query)
    assert any("R2" in met and "R2" not in out for met, out in voted)  # met, nothing found...
    _, one_by_one = m.pair_segments(query, deadline=time.monotonic() + 1e6)
    assert qid == "Q1" and set(beside) == set(one_by_one) == {"R1"}  # ...so not passed on
    audio_segs, visual_segs = beside["R1"]
    assert audio_segs and visual_segs
    for a, b in zip(beside["R1"], one_by_one["R1"]):
        assert [(s.query_start, s.query_end, s.ref_start, s.ref_end, s.score) for s in a] == \
            [(s.query_start, s.query_end, s.ref_start, s.ref_end, s.score) for s in b]
    # the copy is the whole clip, at speed 1
    assert abs(audio_segs[0].ref_start - audio_segs[0].query_start) < 0.1


def test_prepare_search_makes_the_searches_state_of_the_modalities_asked(tmp_path):
    import numpy as np

    from audio.landmarks import Landmarks

    lib = Library.create(tmp_path / "ix")
    rng = np.random.default_rng(1)
    n = 500
    lm = Landmarks(t_s=np.sort(rng.uniform(0, 30, n)).astype(np.float32),
                   f1=rng.uniform(0, 200, n).astype(np.float32), f2=rng.uniform(0, 200, n).astype(np.float32),
                   f3=rng.uniform(0, 200, n).astype(np.float32), dt2=rng.integers(2, 20, n).astype(np.int32),
                   dt3=rng.integers(20, 40, n).astype(np.int32), hop_s=0.016, duration_s=30.0)
    lib.audio.add("R1", lm)
    lib.visual.add("R1", np.arange(30, dtype=np.float32), rng.normal(size=(30, 512)).astype(np.float32))
    lib.save()
    lib = Library.open(tmp_path / "ix")
    assert lib.audio._dir is None and lib.visual._f32 is None
    assert lib.prepare_search(["audio"]) is lib
    assert lib.audio._dir is not None and lib.visual._f32 is None  # visual not asked for
    lib.prepare_search()
    assert lib.visual._f32 is not None and lib.visual._f32.shape == (30, 512)


def test_batch_probes_the_next_file_ahead_and_reports_bad_files_as_before(tmp_path, monkeypatch):
    """match_files probes file i+1 while file i is matched: each good file is probed once, before
    the previous query is finished, and gives what match_file gives; a bad file is probed again in
    its turn, so its error reads as without the look-ahead."""
    import shutil

    from fingerprint import media
    from fingerprint.errors import FingerprintError
    from fingerprint.pipeline import QueryMatcher
    from fingerprint.synth import music
    from fingerprint.synth_video import scene_video

    ref = scene_video(tmp_path / "R1.mp4", 8.0, seed=5, audio=(music(8.0, 16000, seed=9), 16000))
    q1 = shutil.copy(ref, tmp_path / "Q1.mp4")
    bad = tmp_path / "Q2.mp4"
    bad.write_bytes(b"not a video at all" * 100)
    q3 = scene_video(tmp_path / "Q3.mp4", 6.0, seed=6, audio=(music(6.0, 16000, seed=10), 16000))
    lib = Library.create(tmp_path / "ix")
    lib.add_file(ref)
    m = QueryMatcher(lib)
    want = [m.match_file(q) for q in (q1, q3)]
    with pytest.raises(FingerprintError) as exc:
        m.match_file(bad)

    log, probe = [], media.probe

    def counted(path):
        log.append(("probe", Path(path).stem))
        return probe(path)

    finish = m.finish

    def finished(segments):
        log.append(("finish", segments[0].query_id if segments else "-"))
        return finish(segments)

    monkeypatch.setattr(media, "probe", counted)
    monkeypatch.setattr(m, "finish", finished)
    segs, rep = m.match_files([q1, bad, q3])
    assert [s.query_id for s in segs] == [s.query_id for s in want[0] + want[1]] and want[0]
    assert [(s.ref_start, s.score) for s in segs] == [(s.ref_start, s.score) for s in want[0] + want[1]]
    assert rep.done == ["Q1", "Q3"] and rep.skipped == [(str(bad), exc.value.reason)]
    probes = [name for kind, name in log if kind == "probe"]
    assert sorted(probes) == ["Q1", "Q2", "Q2", "Q3"]
    assert log.index(("probe", "Q2")) < log.index(("finish", "Q1"))


def test_indexing_probes_the_next_file_ahead_and_gives_the_same_index(tmp_path, monkeypatch):
    """add_files in one process probes file i+1 while file i is described: each good file is
    probed once, a bad one again in its turn (its reason as before), and the index holds what
    add_file gives file by file."""
    import numpy as np

    from fingerprint import media
    from fingerprint.synth import music
    from fingerprint.synth_video import scene_video

    r1 = scene_video(tmp_path / "R1.mp4", 6.0, seed=7, audio=(music(6.0, 16000, seed=11), 16000))
    bad = tmp_path / "R2.mp4"
    bad.write_bytes(b"\x00" * 5000)
    r3 = scene_video(tmp_path / "R3.mp4", 5.0, seed=8, audio=(music(5.0, 16000, seed=12), 16000))
    one_by_one = Library.create(tmp_path / "a")
    for r in (r1, r3):
        one_by_one.add_file(r)
    reason = Library.create(tmp_path / "c").add_files([bad]).skipped[0][1]

    probed, probe = [], media.probe
    monkeypatch.setattr(media, "probe", lambda path: probed.append(Path(path).stem) or probe(path))
    lib = Library.create(tmp_path / "b")
    rep = lib.add_files([r1, bad, r3])
    assert rep.done == ["R1", "R3"] and rep.skipped == [(str(bad), reason)]
    assert sorted(probed) == ["R1", "R2", "R2", "R3"]
    assert lib.ref_ids == one_by_one.ref_ids == ["R1", "R3"]
    for ix in (lib.audio, one_by_one.audio, lib.visual, one_by_one.visual):
        ix._finalize()  # the arrays added so far, concatenated
    np.testing.assert_array_equal(lib.audio._hash, one_by_one.audio._hash)
    np.testing.assert_array_equal(lib.visual._desc, one_by_one.visual._desc)
