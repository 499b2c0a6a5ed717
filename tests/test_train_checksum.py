"""A damaged weight file is caught by its recorded sha256: one clear error naming the last good backup,
a non-zero exit from the CLI, and no frame rendered with garbage weights."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from facecast import modelstore
from facecast.merge.testing import build_dst_workspace
from facecast.train import checkpoint
from facecast.train.archs.registry import build_model
from facecast.train.options import ModelOptions
from facecast.train.predict import load_predictor
from facecast.train.testdata import make_faceset
from facecast.train.trainer import train
from tests.conftest import run_cli

torch.set_num_threads(2)


def _save(model_dir, iteration: int, seed: int) -> None:
    torch.manual_seed(seed)
    opts = ModelOptions(arch="df", resolution=32, face_type="full", e_dims=8, ae_dims=16, d_dims=8,
                        d_mask_dims=8).validate()
    weights = {"model." + k: v for k, v in build_model(opts).state_dict().items()}
    checkpoint.save_checkpoint(model_dir, weights, {}, {}, {"iteration": iteration}, opts.to_json())


def _damage(path, seed: int = 0) -> None:
    """4 KiB of random bytes written inside the tensor data (the header stays valid: it still parses)."""
    data = bytearray(path.read_bytes())
    at = len(data) // 2
    data[at : at + 4096] = np.random.default_rng(seed).integers(0, 256, 4096, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))
    load_file(str(path))  # proof that without the checksum nothing would notice


def test_every_save_records_a_checksum_per_weight_file(tmp_path):
    d = tmp_path / "m"
    _save(d, 1, 0)
    sums = json.loads((d / modelstore.CHECKSUMS).read_text())["sha256"]
    assert sorted(sums) == ["model.safetensors", "optimizer.safetensors"]
    assert sums["model.safetensors"] == modelstore.sha256((d / "model.safetensors").read_bytes())


def test_corrupt_weights_name_the_last_good_backup_and_restore_works(workspace):
    build_dst_workspace(workspace, n_frames=3)
    d = workspace.model("m")
    _save(d, 4, 0)
    good = load_file(str(d / "model.safetensors"))
    checkpoint.backup(d, 4, keep=3)
    _save(d, 9, 1)
    _damage(d / "model.safetensors")
    with pytest.raises(modelstore.CorruptModelError) as err:
        load_predictor(d, device="cpu")
    msg = str(err.value)
    assert "model.safetensors" in msg and "backups/00000004" in msg and "restore-backup" in msg
    code, out, err_text = run_cli("merge", "-w", str(workspace.root), "--model", "m", "--device", "cpu", "--workers", "1")
    assert code != 0 and "Traceback" not in err_text
    assert "model.safetensors is damaged" in err_text and "00000004" in err_text
    assert not workspace.merged.exists() or not any(workspace.merged.iterdir())  # no grey render
    code, out, err_text = run_cli("restore-backup", "-w", str(workspace.root), "--model", "m", "--json")
    assert code == 0, err_text
    assert json.loads(out)["iteration"] == 4
    restored = load_file(str(d / "model.safetensors"))
    assert sorted(restored) == sorted(good) and all(torch.equal(restored[k], good[k]) for k in good)
    assert load_predictor(d, device="cpu").resolution == 32


def test_damaged_backups_are_skipped_and_no_backup_is_said(tmp_path):
    d = tmp_path / "m"
    _save(d, 2, 0)
    checkpoint.backup(d, 2, keep=5)
    _save(d, 3, 1)
    checkpoint.backup(d, 3, keep=5)
    _damage(d / "backups" / "00000003" / "model.safetensors")
    assert modelstore.last_good_backup(d).name == "00000002"
    _damage(d / "model.safetensors", seed=1)
    with pytest.raises(modelstore.CorruptModelError, match="00000002"):
        checkpoint.load_tensors(d / "model.safetensors")
    e = tmp_path / "n"
    _save(e, 1, 0)
    _damage(e / "model.safetensors")
    with pytest.raises(modelstore.CorruptModelError, match="no good backup"):
        checkpoint.load_tensors(e / "model.safetensors")


def test_resume_of_a_damaged_model_stops_before_training(workspace):
    make_faceset(workspace.aligned("src"), "einstein", 4, size=48)
    make_faceset(workspace.aligned("dst"), "takeo", 4, size=48, seed=1)
    opts = dict(resolution=32, preview_every=0, eval_every=0)
    train(workspace, "t", "tiny", overrides=opts, max_iters=1, quiet=True, precision="fp32")
    d = workspace.model("t")
    _damage(d / "optimizer.safetensors")
    with pytest.raises(modelstore.CorruptModelError, match="optimizer.safetensors is damaged"):
        train(workspace, "t", max_iters=1, quiet=True, precision="fp32")
    assert checkpoint.read_state(d)["iteration"] == 1


def test_folders_saved_before_checksums_still_load(tmp_path):
    d = tmp_path / "m"
    _save(d, 1, 0)
    (d / modelstore.CHECKSUMS).unlink()
    assert sorted(checkpoint.load_tensors(d / "model.safetensors"))
    _save(d, 2, 1)  # the next save adds them
    assert (d / modelstore.CHECKSUMS).is_file()


def test_xseg_models_share_the_store_and_its_checksums(tmp_path):
    from facecast.masks.xseg import store
    from facecast.masks.xseg.model import build_model as build_xseg
    from facecast.masks.xseg.model import preset_options

    d = tmp_path / "xseg"
    opts = preset_options("tiny", None, "whole_face")
    store.save_checkpoint(d, build_xseg(opts), opts, store.XSegState())
    checkpoint.backup(d, 0, keep=2)
    assert "model.safetensors" in json.loads((d / modelstore.CHECKSUMS).read_text())["sha256"]
    store.load_model(d)
    _damage(d / "model.safetensors")
    with pytest.raises(modelstore.CorruptModelError, match="backups/00000000"):
        store.load_model(d)
    modelstore.restore(d)
    assert store.load_model(d)[1].resolution == opts.resolution
