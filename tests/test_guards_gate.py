"""The explicit-content gate on every path that reads pixels after extraction (issue 13, bypasses 2-3).

A stand-in gate flags a marker pattern (a frame whose top-left 12x12 block is magenta, JPEG-tolerant) and counts its
calls, so the tests need no explicit material and prove exactly which frames were scored."""

from __future__ import annotations

import numpy as np
import pytest

import facecast.provenance as provenance
from facecast.errors import ContentRefused
from facecast.media.images import read_image, write_image
from facecast.merge.merger import merge
from facecast.merge.settings import MergeSettings
from facecast.merge.testing import FakePredictor, build_dst_workspace
from facecast.provenance.content_gate import ContentGate

MAGENTA = np.array([255, 0, 255], np.uint8)


def mark(image: np.ndarray) -> np.ndarray:
    out = image.copy()
    out[:12, :12] = MAGENTA
    return out


class CountingGate(ContentGate):
    def __init__(self):
        super().__init__(scorer=self._scorer, model_id="stand-in:magenta")
        self.calls = 0

    def _scorer(self, img: np.ndarray) -> float:
        self.calls += 1
        r, g, b = img[2:6, 2:6].reshape(-1, 3).mean(0)
        return 0.99 if r > 200 and b > 200 and g < 70 else 0.01


@pytest.fixture()
def gate(monkeypatch):
    g = CountingGate()
    monkeypatch.setattr(provenance, "content_gate", lambda: g)
    return g


@pytest.fixture()
def dst_ws(workspace):
    names = build_dst_workspace(workspace, n_frames=4, blank_frames=(2,))
    return workspace, names


def test_frame_swapped_in_after_extract_is_refused_by_merge(dst_ws, gate):
    ws, names = dst_ws
    path = ws.data("dst") / names[1]
    write_image(path, mark(read_image(path)))  # swapped in after the faces were extracted
    with pytest.raises(ContentRefused, match=names[1]):
        merge(ws, "m", MergeSettings(), FakePredictor(64), quiet=True)
    assert not (ws.merged / names[1]).exists()


def test_swapped_passthrough_frame_is_refused_too(dst_ws, gate):
    ws, names = dst_ws
    path = ws.data("dst") / names[2]  # no face: copied through, still read
    write_image(path, mark(read_image(path)))
    with pytest.raises(ContentRefused):
        merge(ws, "m", MergeSettings(), FakePredictor(64), quiet=True)


def test_unchanged_frames_are_scored_once(dst_ws, gate):
    ws, names = dst_ws
    merge(ws, "m", MergeSettings(), FakePredictor(64), quiet=True)
    assert gate.calls == len(names)
    for p in ws.merged.iterdir():
        p.unlink()  # force every frame to be read again
    rep = merge(ws, "m", None, FakePredictor(64), quiet=True)
    assert rep.merged == len(names) and gate.calls == len(names)
    # a frame replaced after a merge is merged again and scored: refused if flagged
    path = ws.data("dst") / names[0]
    write_image(path, mark(read_image(path)))
    with pytest.raises(ContentRefused):
        merge(ws, "m", None, FakePredictor(64), quiet=True)
    assert gate.calls == len(names) + 1


def test_edited_cache_entry_is_not_trusted(dst_ws, gate):
    import json

    ws, names = dst_ws
    path = ws.data("dst") / names[1]
    write_image(path, mark(read_image(path)))
    with pytest.raises(ContentRefused):
        merge(ws, "m", MergeSettings(), FakePredictor(64), quiet=True)
    cache = ws.root / ".facecast" / "gate_verdicts.json"
    data = json.loads(cache.read_text())
    for entries in data["models"].values():
        for v in entries.values():
            v[0] = 0.0  # "it was fine" without the workspace key
    cache.write_text(json.dumps(data))
    with pytest.raises(ContentRefused):
        merge(ws, "m", MergeSettings(), FakePredictor(64), quiet=True)


# -- bypass 3: faces entering a workspace are gated; train refuses faces without a verdict ---------------
def _faces(folder, n=3, marked=()):
    """n aligned faces (real photo), written directly without a gate verdict; `marked` get the marker."""
    from facecast.faces.aligned import read_aligned, write_aligned
    from facecast.train.testdata import make_faceset

    paths = make_faceset(folder, "einstein", n, size=48)
    for i, p in enumerate(paths):
        face = read_aligned(p)
        face.meta.content_gate = None
        write_aligned(p, mark(face.image) if i in marked else face.image, face.meta)
    return paths


def _verdicts(folder):
    from facecast.faces.aligned import list_aligned, read_meta

    return [read_meta(p).content_gate for p in list_aligned(folder)]


def test_unpack_and_merge_gate_every_face_and_record_the_verdict(tmp_path, gate):
    from facecast.faceset.pack import merge as fs_merge, pack, unpack

    _faces(tmp_path / "a", 3)
    pack(tmp_path / "a", tmp_path / "a.fcset")
    gate.calls = 0
    unpack(tmp_path / "a.fcset", tmp_path / "u")
    assert gate.calls == 3
    assert all(v and v["verdict"] == "ok" and v["model"] == "stand-in:magenta" for v in _verdicts(tmp_path / "u"))
    fs_merge(tmp_path / "a", tmp_path / "a.fcset", tmp_path / "m")
    assert all(v and v["verdict"] == "ok" for v in _verdicts(tmp_path / "m"))

    _faces(tmp_path / "bad", 3, marked=(1,))
    pack(tmp_path / "bad", tmp_path / "bad.fcset")
    with pytest.raises(ContentRefused):
        unpack(tmp_path / "bad.fcset", tmp_path / "u2")
    assert not (tmp_path / "u2" / "einstein_0001.jpg").exists()
    with pytest.raises(ContentRefused):
        fs_merge(tmp_path / "a", tmp_path / "bad", tmp_path / "m2")
    assert not (tmp_path / "m2" / "einstein_0001_1.jpg").exists()


def test_import_dfl_gates_faces(tmp_path, gate, einstein):
    import pickle

    from facecast.faceset.dfl_import import import_dfl
    from tests.test_dfl_import import dfl_face, dfl_jpeg

    face, d = dfl_face(einstein, with_masks=False)
    src = tmp_path / "dfl"
    src.mkdir()
    (src / "ok.jpg").write_bytes(dfl_jpeg(face, pickle.dumps(d, 3)))
    import_dfl(src, tmp_path / "out")
    assert _verdicts(tmp_path / "out")[0]["verdict"] == "ok" and gate.calls == 1
    (src / "zbad.jpg").write_bytes(dfl_jpeg(mark(face), pickle.dumps(d, 3)))
    with pytest.raises(ContentRefused, match="zbad.jpg"):
        import_dfl(src, tmp_path / "out2")
    assert not (tmp_path / "out2" / "zbad.jpg").exists()


def test_train_refuses_faces_without_a_verdict(workspace):
    from facecast.errors import FacecastError
    from facecast.train.testdata import make_faceset
    from facecast.train.trainer import train

    make_faceset(workspace.aligned("src"), "einstein", 4, size=48)
    make_faceset(workspace.aligned("dst"), "takeo", 4, size=48, seed=1)
    from facecast.faces.aligned import list_aligned, read_meta, update_meta

    for p in list_aligned(workspace.aligned("src"))[:2]:  # e.g. copied in by hand from elsewhere
        meta = read_meta(p)
        meta.content_gate = None
        update_meta(p, meta)
    with pytest.raises(FacecastError) as err:
        train(workspace, "m", preset_name="tiny", max_iters=1, quiet=True)
    msg = str(err.value)
    assert "2 face(s)" in msg and "gate verdict" in msg and "re-import" in msg and "\n" not in msg
    assert not (workspace.model("m") / "model.safetensors").exists()


def test_train_cli_refusal_is_one_line(workspace):
    from facecast.faces.aligned import list_aligned, read_meta, update_meta
    from facecast.train.testdata import make_faceset
    from tests.conftest import run_cli

    make_faceset(workspace.aligned("src"), "einstein", 3, size=48)
    make_faceset(workspace.aligned("dst"), "takeo", 3, size=48, seed=1)
    p = list_aligned(workspace.aligned("dst"))[0]
    meta = read_meta(p)
    meta.content_gate = {"model": "x", "score": 0.9, "verdict": "ok"}  # a flagged score edited to "ok"
    update_meta(p, meta)
    code, _out, err = run_cli("train", "-w", str(workspace.root), "--model", "m", "--preset", "tiny", "--max-iters", "1")
    assert code != 0 and "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "dst faceset: 1 face(s)" in errors[0]
