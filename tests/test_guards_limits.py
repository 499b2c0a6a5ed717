"""Bad-input limits (issue 13): zip bombs in .fcset packs, unpickler denial of service, malformed state
files, atomic LabelMe import. Every refusal is one line, fast, and writes nothing."""

from __future__ import annotations

import json
import struct
import time
import zlib

import pytest

from facecast.errors import FacecastError
from facecast.faceset import pack as pack_mod
from facecast.faceset.pack import unpack
from tests.conftest import run_cli


def _deflated_zeros(n_chunks: int, chunk: int = 1 << 24) -> tuple[bytes, int, int]:
    """Raw deflate of n_chunks*chunk zero bytes without compressing them all: a fully flushed block
    does not refer to earlier data, so one compressed chunk repeated is a valid stream."""
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = c.compress(bytes(chunk)) + c.flush(zlib.Z_FULL_FLUSH)
    tail = zlib.compressobj(9, zlib.DEFLATED, -15).flush(zlib.Z_FINISH)
    crc, zeros = 0, bytes(chunk)
    for _ in range(n_chunks):
        crc = zlib.crc32(zeros, crc)
    return block * n_chunks + tail, crc, n_chunks * chunk


def _zip(members: list[tuple[str, bytes, int, int, int]]) -> bytes:
    """A ZIP from (name, stored bytes, method, crc, uncompressed size): declared exactly as given."""
    out, central = bytearray(), bytearray()
    for name, data, method, crc, usize in members:
        offset = len(out)
        nb = name.encode()
        out += struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, method, 0, 0x21, crc, len(data), usize, len(nb), 0)
        out += nb + data
        central += struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0, method, 0, 0x21, crc, len(data), usize,
                               len(nb), 0, 0, 0, 0, 0, offset) + nb
    eocd = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, len(members), len(members), len(central), len(out), 0)
    return bytes(out + central + eocd)


def _index(names) -> bytes:
    return json.dumps({"schema": pack_mod.PACK_SCHEMA, "count": len(names),
                       "faces": [{"name": n, "bytes": 1, "sha256": "0" * 64, "meta": {}} for n in names]}).encode()


def _stored(name, data):
    return (name, data, 0, zlib.crc32(data), len(data))


def test_one_mb_pack_declaring_one_gib_is_refused_fast(tmp_path):
    bomb, crc, size = _deflated_zeros(64)  # 1 GiB of zeros
    assert len(bomb) < 1_100_000 and size == 1 << 30
    pack_file = tmp_path / "bomb.fcset"
    pack_file.write_bytes(_zip([_stored("faceset.json", _index(["a.jpg"])), ("a.jpg", bomb, 8, crc, size)]))
    t0 = time.perf_counter()
    with pytest.raises(FacecastError, match="declares 1024 MiB uncompressed"):
        unpack(pack_file, tmp_path / "out")
    assert time.perf_counter() - t0 < 1.0
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    code, _out, err = run_cli("faceset", "unpack", str(pack_file), "-o", str(tmp_path / "out2"))
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code != 0 and "Traceback" not in err and len(errors) == 1 and "limit" in errors[0]
    assert not (tmp_path / "out2").exists() or not any((tmp_path / "out2").iterdir())


def test_high_ratio_member_under_the_size_cap_is_refused(tmp_path):
    bomb, crc, size = _deflated_zeros(2)  # 32 MiB inflating from ~32 KB
    pack_file = tmp_path / "ratio.fcset"
    pack_file.write_bytes(_zip([_stored("faceset.json", _index(["a.jpg"])), ("a.jpg", bomb, 8, crc, size)]))
    with pytest.raises(FacecastError, match="zip bomb"):
        unpack(pack_file, tmp_path / "out")
    with pytest.raises(FacecastError, match="zip bomb"):
        pack_mod.read_index(pack_file)


def test_member_lying_about_its_size_fails_its_check(tmp_path, monkeypatch):
    """A member that inflates beyond what it declares is cut at the declared size and fails the CRC."""
    bomb, crc, size = _deflated_zeros(1, 1 << 20)
    pack_file = tmp_path / "liar.fcset"
    pack_file.write_bytes(_zip([_stored("faceset.json", _index(["a.jpg"])), ("a.jpg", bomb, 8, crc, 4096)]))
    with pytest.raises(FacecastError, match="corrupt|damaged"):
        unpack(pack_file, tmp_path / "out")


def test_total_and_free_disk_limits(tmp_path, monkeypatch, takeo):
    from facecast.faceset.pack import pack
    from tests.test_faceset import make_face, write_set

    write_set(tmp_path / "f", {"a": make_face(takeo), "b": make_face(takeo, angle=5)}, ".jpg")
    pack(tmp_path / "f", tmp_path / "f.fcset")
    monkeypatch.setattr(pack_mod, "MAX_TOTAL_BYTES", 1000)
    with pytest.raises(FacecastError, match="uncompressed; refusing"):
        unpack(tmp_path / "f.fcset", tmp_path / "out")
    monkeypatch.undo()

    class Usage:
        total, used, free = 10 << 30, 10 << 30, 1 << 20

    monkeypatch.setattr(pack_mod.shutil, "disk_usage", lambda p: Usage)
    with pytest.raises(FacecastError, match="MiB free"):
        unpack(tmp_path / "f.fcset", tmp_path / "out")
    with pytest.raises(FacecastError, match="MiB free"):
        pack_mod.merge(tmp_path / "f", tmp_path / "f.fcset", tmp_path / "m")
    assert not (tmp_path / "out").exists() and not (tmp_path / "m").exists()


# -- unpickler denial of service ---------------------------------------------------------------------------
from facecast.faceset.safe_pickle import PickleInvalid, safe_loads  # noqa: E402


def _laughs(levels=30, width=10) -> bytes:
    import pickle

    x = "lol"
    for _ in range(levels):
        x = [x] * width
    return pickle.dumps({"face_type": "full_face", "landmarks": x}, 4)


def _timed_refusal(data: bytes, match: str) -> None:
    """Refused in < 1 s of this process's CPU time (wall time on the shared test machine is noise)."""
    t0 = time.process_time()
    with pytest.raises(PickleInvalid, match=match):
        safe_loads(data)
    assert time.process_time() - t0 < 1.0


def test_shared_reference_bomb_fails_fast():
    data = _laughs()
    assert len(data) < 1000  # 10**30 strings once expanded
    _timed_refusal(data, "pickle bomb")


def test_declared_huge_lengths_fail_before_allocating():
    # BINBYTES8 declaring 12 GiB with 3 bytes present: CPython would allocate 12 GiB first
    _timed_refusal(b"\x80\x04\x8e" + (12 << 30).to_bytes(8, "little") + b"abc.", "12884901888")
    # LONG_BINPUT with a memo index of 2**31: the C unpickler would grow its memo array to it
    _timed_refusal(b"\x80\x04N" + b"r" + (1 << 31).to_bytes(4, "little") + b".", "memo index")
    # FRAME declaring more than the data holds
    _timed_refusal(b"\x80\x04\x95" + (1 << 40).to_bytes(8, "little") + b"N.", "frame|bytes")


class _ArrayWithShape:
    """Pickles exactly like a numpy array (same globals and state layout) but with any declared shape."""

    def __init__(self, array, shape):
        self.array, self.shape = array, shape

    def __reduce__(self):
        fn, args, state = self.array.__reduce__()
        state = list(state)
        state[1] = self.shape
        return fn, args, tuple(state)


def test_huge_numpy_array_declaration_fails_before_allocating():
    """A shape of 2**33 x 2**33 floats over 8 bytes of data (an int64 product wraps to 0 and would pass a
    size check), and an honest-looking 40000 x 40000 over too little data."""
    import pickle

    import numpy as np

    _timed_refusal(pickle.dumps(_ArrayWithShape(np.zeros(1), (2**32, 2**32)), 2), "needs")
    _timed_refusal(pickle.dumps(_ArrayWithShape(np.zeros(1), (2**33, 2**33)), 2), "needs")
    _timed_refusal(pickle.dumps(_ArrayWithShape(np.zeros(4, np.float32), (40000, 40000)), 2), "needs")
    _timed_refusal(pickle.dumps(_ArrayWithShape(np.zeros(4, np.float32), (2, 3)), 2), "does not match")
    assert safe_loads(pickle.dumps(_ArrayWithShape(np.arange(6.0), (2, 3)), 2)).shape == (2, 3)


def test_too_many_opcodes(monkeypatch):
    import pickle

    from facecast.faceset import safe_pickle

    monkeypatch.setattr(safe_pickle, "MAX_OPCODES", 1000)
    _timed_refusal(pickle.dumps(list(range(2000)), 4), "opcodes")


def test_import_dfl_cli_with_pickle_bomb_is_one_line_and_fast(tmp_path, einstein):
    from facecast.faces.align import align_face

    from tests.test_dfl_import import dfl_jpeg

    face, _mat, _lm = align_face(*einstein, "full", 64)
    src = tmp_path / "dfl"
    src.mkdir()
    (src / "bomb.jpg").write_bytes(dfl_jpeg(face, _laughs()))
    t0 = time.perf_counter()
    code, _out, err = run_cli("faceset", "import-dfl", str(src), "-o", str(tmp_path / "out"))
    elapsed = time.perf_counter() - t0
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code != 0 and "Traceback" not in err and len(errors) == 1 and "bomb" in errors[0]
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    assert elapsed < 30  # process start-up included; the refusal itself is timed above


def test_dfl_image_declaring_huge_dimensions_is_refused(tmp_path, einstein):
    """An image header declaring 100k x 100k pixels is refused from the header, before decoding."""
    import pickle

    from facecast.faceset.dfl_import import import_dfl
    from tests.test_dfl_import import dfl_face, dfl_png

    face, d = dfl_face(einstein, with_masks=False)
    data = bytearray(dfl_png(face, pickle.dumps(d, 3)))
    data[16:24] = struct.pack(">II", 100_000, 100_000)  # IHDR width, height
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])) & 0xFFFFFFFF)
    src = tmp_path / "dfl"
    src.mkdir()
    (src / "huge.png").write_bytes(bytes(data))
    t0 = time.perf_counter()
    with pytest.raises(FacecastError, match="100000x100000"):
        import_dfl(src, tmp_path / "out")
    assert time.perf_counter() - t0 < 1.0


# -- malformed state files: one line through the CLI, never a traceback -----------------------------------
def _cli_error(*args) -> str:
    code, _out, err = run_cli(*args)
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code != 0 and "Traceback" not in err and len(errors) == 1, err[-2000:]
    return errors[0]


SESSIONS = ['[1, 2]', '{"schema": "facecast.merge_session/1", "frames": {"00000.png": 5}}',
            '{"schema": "facecast.merge_session/1", "overrides": {"00000.png": 5}}',
            '{"schema": "facecast.merge_session/1", "no_face": 5}', '{"schema": "facecast.merge_session/1", "settings": 5}',
            '\xff\xfe garbage']


def test_malformed_merge_sessions_are_one_line(workspace):
    from facecast.merge.session import Session

    folder = workspace.model("m")
    folder.mkdir(parents=True)
    for text in SESSIONS:
        (folder / "merge_session.json").write_bytes(text.encode("latin-1"))
        with pytest.raises(FacecastError, match="unreadable merge session"):
            Session.load(folder, "m")
    line = _cli_error("merge", "-w", str(workspace.root), "--model", "m")
    assert "merge_session.json" in line and "delete it" in line


@pytest.fixture()
def train_ws(workspace):
    from facecast.train.testdata import make_faceset

    make_faceset(workspace.aligned("src"), "einstein", 3, size=48)
    make_faceset(workspace.aligned("dst"), "takeo", 3, size=48, seed=1)
    return workspace


@pytest.mark.slow
def test_malformed_options_state_and_history(train_ws):
    from facecast.train.checkpoint import read_state
    from facecast.train.options import ModelOptions
    from facecast.train.previews import plot_losses
    from facecast.train.trainer import train

    train(train_ws, "m", preset_name="tiny", max_iters=1, quiet=True)
    folder = train_ws.model("m")
    good = (folder / "options.json").read_text()
    for text, expect in (("[1]", "not an options file"), ('{"resolution": "abc"}', "should be int"),
                         ('{"lr": true}', "should be float"), ("{nope", "corrupt options")):
        (folder / "options.json").write_text(text)
        with pytest.raises(FacecastError, match=expect):
            ModelOptions.load(folder / "options.json")
    assert "corrupt options" in _cli_error("train", "-w", str(train_ws.root), "--model", "m", "--max-iters", "1")
    (folder / "options.json").write_text(good)
    good = (folder / "state.json").read_text()
    for text in ("[1]", '{"iteration": "x"}', "5", '{"iteration": -3}'):
        (folder / "state.json").write_text(text)
        with pytest.raises(FacecastError, match="malformed state file"):
            read_state(folder)
    assert "state.json" in _cli_error("train", "-w", str(train_ws.root), "--model", "m", "--max-iters", "1")
    (folder / "state.json").write_text(good)
    history = folder / "history.jsonl"
    history.write_text('[1]\n"src_loss"\n{"iter": "x", "src_loss": 1, "dst_loss": 2}\n{"src_loss": 1}\n'
                       '{"iter": 1, "src_loss": 0.5, "dst_loss": 0.4}\nnot json\n')
    plot_losses(history, folder / "loss.png")  # the malformed lines are skipped
    assert (folder / "loss.png").exists()
    res = train(train_ws, "m", max_iters=1, quiet=True)  # resumes: trims the history without tripping on it
    assert res.iteration == 2
    rows = [json.loads(line) for line in history.read_text().splitlines()]
    assert all(isinstance(r, dict) and isinstance(r.get("iter", 0), int) for r in rows)


# -- LabelMe import: all faces or none --------------------------------------------------------------------
@pytest.fixture()
def labelme_export(workspace, tmp_path):
    from facecast.faces.aligned import list_aligned
    from facecast.masks.labels import labels_export
    from facecast.masks.synthfaces import write_faceset

    write_faceset(workspace.aligned("dst"), 4, size=64, seed=5, labelled=0)
    out = tmp_path / "lm"
    labels_export(workspace, "dst", "labelme", out)
    names = sorted(p.name for p in list_aligned(workspace.aligned("dst")))
    for n in names:  # the user labels every face
        doc = json.loads((out / n.replace(".jpg", ".json")).read_text())
        doc["shapes"] = [{"label": "face", "points": [[5, 5], [60, 5], [60, 60]], "shape_type": "polygon"}]
        (out / n.replace(".jpg", ".json")).write_text(json.dumps(doc))
    return workspace, out


def _faces_bytes(ws):
    from facecast.faces.aligned import list_aligned

    return {p.name: p.read_bytes() for p in list_aligned(ws.aligned("dst"))}


def test_labelme_import_fails_midway_changes_nothing(labelme_export, monkeypatch):
    import os

    from facecast.masks import labels as labels_mod

    ws, out = labelme_export
    before = _faces_bytes(ws)
    real, calls = os.replace, []

    def flaky(a, b):
        calls.append(b)
        if len(calls) == 3:
            raise OSError(28, "No space left on device")
        return real(a, b)

    monkeypatch.setattr(labels_mod.os, "replace", flaky)
    with pytest.raises(FacecastError, match="no face was changed"):
        labels_mod.labels_import(ws, "dst", "labelme", out)
    assert _faces_bytes(ws) == before and len(calls) >= 3  # (the undo renames too)
    assert not [p for p in ws.aligned("dst").iterdir() if p.name.endswith(".labels-tmp")]
    monkeypatch.undo()
    res = labels_mod.labels_import(ws, "dst", "labelme", out)  # and it works once the disk is fine
    assert res["changed"] == 4 and _faces_bytes(ws) != before


def test_labelme_import_with_one_bad_file_changes_nothing(labelme_export):
    ws, out = labelme_export
    before = _faces_bytes(ws)
    last = sorted(out.glob("*.json"))[-1]
    doc = json.loads(last.read_text())
    doc["imageWidth"] = float("inf")
    last.write_text(json.dumps(doc))  # Python writes Infinity: valid for its own JSON reader
    line = _cli_error("xseg", "labels", "import", "-w", str(ws.root), "dst", "--from", str(out))
    assert "imageWidth" in line and _faces_bytes(ws) == before
    doc["imageWidth"] = 64
    doc["shapes"][0]["points"] = [[5, 5], ["x", 5], [60, 60]]
    last.write_text(json.dumps(doc))
    _cli_error("xseg", "labels", "import", "-w", str(ws.root), "dst", "--from", str(out))
    assert _faces_bytes(ws) == before
