import json

from conftest import run_cli

from facecast.compute import choose_device
from facecast.errors import FacecastError
from facecast.workspace import Workspace


def test_workspace_init_creates_dfl_layout(tmp_path):
    code, out, err = run_cli("workspace", "init", str(tmp_path / "ws"), "--json")
    assert code == 0, err
    ws = Workspace.open(tmp_path / "ws")
    for p in (ws.aligned("src"), ws.aligned("dst"), ws.aligned_debug, ws.merged, ws.merged_mask, ws.models, ws.consent_dir):
        assert p.is_dir()
    assert json.loads(out)["id"] == ws.id


def test_missing_workspace_is_one_line(tmp_path):
    import pytest

    with pytest.raises(FacecastError, match="does not exist"):
        Workspace.open(tmp_path / "nope")


def test_doctor_on_this_cpu_machine(tmp_path):
    code, out, err = run_cli("doctor", "--json", "-w", str(tmp_path))
    assert code == 0, err
    report = json.loads(out)
    assert report["device"] in ("cpu", "cuda:0", "mps")
    assert report["device reason"]
    assert ("--preset saehd" if report["device"].startswith("cuda") else "--preset cpu") in report["training preset"]
    assert report["video encoders"]["libx264"] == "yes"
    assert report["free disk (GB)"] > 0


def test_doctor_fails_for_unusable_device():
    import torch

    if torch.cuda.is_available():
        return
    code, out, err = run_cli("doctor", "--device", "cuda")
    assert code == 1
    assert "CPU build" in out or "no usable GPU" in out


def test_choose_device_rejects_unknown():
    import pytest

    with pytest.raises(FacecastError, match="unknown device"):
        choose_device("tpu")
