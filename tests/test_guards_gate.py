"""The explicit-content gate on every path that reads pixels after extraction (issue 13, bypasses 2-3).

A stand-in gate flags a marker pattern (a frame whose top-left 8x8 block is pure magenta) and counts its
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
    out[:8, :8] = MAGENTA
    return out


class CountingGate(ContentGate):
    def __init__(self):
        super().__init__(scorer=self._scorer, model_id="stand-in:magenta")
        self.calls = 0

    def _scorer(self, img: np.ndarray) -> float:
        self.calls += 1
        return 0.99 if np.all(img[:8, :8] == MAGENTA) else 0.01


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
