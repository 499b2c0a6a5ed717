"""The predictor contract merge codes against, and ONNX export matching PyTorch to 1e-4."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import grant_consent
import torch

from facecast.errors import FacecastError
from facecast.train.export import export_model
from facecast.train.predict import PredictOutput, load_predictor, load_swap_model
from facecast.train.testdata import make_faceset
from facecast.train.trainer import train

torch.set_num_threads(2)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from facecast.workspace import Workspace

    ws = Workspace.open(tmp_path_factory.mktemp("exp") / "ws", create=True)
    grant_consent(ws)
    make_faceset(ws.aligned("src"), "einstein", 4, size=48)
    make_faceset(ws.aligned("dst"), "takeo", 4, size=48, seed=1)
    for name, arch in (("df", "df"), ("liae", "liae-udt")):
        train(ws, name, "tiny", overrides=dict(arch=arch, resolution=32, preview_every=0), max_iters=2,
              quiet=True, precision="fp32")
    return ws


def test_predictor_contract(trained):
    pred = load_predictor(trained.model("liae"), device="cpu")
    assert (pred.name, pred.resolution, pred.face_type, pred.arch) == ("liae", 32, "whole_face", "liae-udt")
    faces = np.random.default_rng(0).integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)
    out = pred.predict(faces)
    assert isinstance(out, PredictOutput)
    assert out.face.shape == (5, 32, 32, 3) and out.src_mask.shape == out.dst_mask.shape == (5, 32, 32)
    for arr in (out.face, out.src_mask, out.dst_mask):
        assert arr.dtype == np.float32 and arr.min() >= 0 and arr.max() <= 1
    # batched == one by one (batching must not mix samples)
    single = pred.predict(faces[2:3])
    assert np.abs(single.face[0] - out.face[2]).max() < 2e-2
    with pytest.raises(FacecastError, match="takes N x 32 x 32 x 3"):
        pred.predict(np.zeros((1, 64, 64, 3), np.uint8))
    with pytest.raises(FacecastError, match="uint8"):
        pred.predict(np.zeros((1, 32, 32, 3), np.float32))
    assert pred.predict(np.zeros((0, 32, 32, 3), np.uint8)).face.shape == (0, 32, 32, 3)


def test_missing_model_is_one_line(tmp_path):
    with pytest.raises(FacecastError, match="not found"):
        load_predictor(tmp_path / "nope")


@pytest.mark.parametrize("name", ["df", "liae"])
def test_onnx_export_matches_pytorch(trained, name):
    import onnxruntime as ort

    res = export_model(trained.model(name), "onnx")
    assert res.max_abs_diff <= 1e-4 and res.size_bytes > 10_000
    # independent check on another batch size (the batch axis is dynamic)
    model, _, _ = load_swap_model(trained.model(name))
    x = torch.rand(5, 3, 32, 32, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        ref = [t.numpy() for t in model.swap(x)]
    sess = ort.InferenceSession(res.path, providers=["CPUExecutionProvider"])
    got = sess.run(None, {"dst": x.numpy()})
    assert [g.shape for g in got] == [(5, 3, 32, 32), (5, 1, 32, 32), (5, 1, 32, 32)]
    assert max(float(np.abs(a - b).max()) for a, b in zip(ref, got)) <= 1e-4


def test_unknown_export_format(trained):
    with pytest.raises(FacecastError, match="unknown export format"):
        export_model(trained.model("df"), "tflite")
