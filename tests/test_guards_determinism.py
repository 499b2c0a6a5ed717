"""Reproducible merges (issue 13): a resumed merge writes exactly the bytes an uninterrupted one does, in
this process or another, and a face's prediction does not depend on what shares its batch."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from facecast.merge.merger import merge
from facecast.merge.settings import MergeSettings
from facecast.merge.testing import build_dst_workspace
from facecast.train.predict import load_predictor
from tests.conftest import run_cli

N = 7


def _model(ws, name="tiny"):
    """A real DF model (trained weights are not needed for determinism: random ones exercise every op)."""
    import torch

    from facecast.train import checkpoint
    from facecast.train.archs.registry import build_model
    from facecast.train.options import ModelOptions

    torch.manual_seed(0)
    opts = ModelOptions(arch="df", resolution=32, face_type="full", e_dims=8, ae_dims=16, d_dims=8, d_mask_dims=8).validate()
    model = build_model(opts)
    weights = {"model." + k: v for k, v in model.state_dict().items()}
    checkpoint.save_checkpoint(ws.model(name), weights, {}, {}, {"iteration": 0}, opts.to_json())


def _merged(ws):
    return {p.name: p.read_bytes() for p in sorted(ws.merged.iterdir())}


def _reset(ws, name="tiny"):
    shutil.rmtree(ws.merged)
    shutil.rmtree(ws.merged_mask)
    (ws.model(name) / "merge_session.json").unlink()


class _Stop(Exception):
    pass


def test_prediction_does_not_depend_on_batch_composition(workspace):
    _model(workspace)
    pred = load_predictor(workspace.model("tiny"), device="cpu")
    assert pred.precision == "float32"
    rng = np.random.default_rng(1)
    faces = (rng.random((11, 32, 32, 3)) * 255).astype(np.uint8)
    whole = pred.predict(faces)
    for start, stop in ((0, 1), (3, 4), (2, 9), (5, 11)):
        part = pred.predict(faces[start:stop])
        assert np.array_equal(part.face, whole.face[start:stop])
        assert np.array_equal(part.src_mask, whole.src_mask[start:stop])
    shuffled = pred.predict(faces[::-1])
    assert np.array_equal(shuffled.face[::-1], whole.face)


def test_resumed_merge_is_byte_identical_to_uninterrupted(workspace, monkeypatch):
    import facecast.merge.merger as merger_mod

    ws = workspace
    build_dst_workspace(ws, n_frames=N, blank_frames=(2,))
    _model(ws)
    settings = MergeSettings(mask_mode="learned-prd*learned-dst", color_transfer="rct", temporal_window=3)
    merge(ws, "tiny", settings, load_predictor(ws.model("tiny"), device="cpu"), batch_frames=3, quiet=True)
    uninterrupted = _merged(ws)
    assert len(uninterrupted) == N

    # interrupted after the first chunk, resumed with another chunking in a fresh predictor
    _reset(ws)
    real_finish, written = merger_mod._finish, []

    def stopping(task):
        if len(written) == 4:
            raise _Stop()
        written.append(task.name)
        return real_finish(task)

    monkeypatch.setattr(merger_mod, "_finish", stopping)
    with pytest.raises(_Stop):
        merge(ws, "tiny", settings, load_predictor(ws.model("tiny"), device="cpu"), batch_frames=3, quiet=True)
    monkeypatch.undo()
    assert 0 < len(list(ws.merged.iterdir())) < N
    rep = merge(ws, "tiny", None, load_predictor(ws.model("tiny"), device="cpu"), batch_frames=2, quiet=True)
    assert rep.skipped > 0 and rep.merged + rep.skipped == N
    assert _merged(ws) == uninterrupted

    # a separate process (its own thread pool and precision probe), through the CLI
    _reset(ws)
    code, out, err = run_cli("merge", "-w", str(ws.root), "--model", "tiny", "--device", "cpu", "--workers", "1",
                             "--mask-mode", "learned-prd*learned-dst", "--color-transfer", "rct",
                             "--temporal-window", "3", "--json")
    assert code == 0, err
    assert json.loads(out)["merged"] == N
    assert _merged(ws) == uninterrupted
