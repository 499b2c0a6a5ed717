"""Every architecture/variant builds and trains one step at two resolutions; option validation."""

from __future__ import annotations

import pytest
import torch

from facecast.errors import FacecastError
from facecast.train import losses
from facecast.train.archs.registry import all_archs, build_model, parse_arch
from facecast.train.options import ModelOptions, changed_fixed_options, preset

torch.set_num_threads(2)


def test_all_archs_listed():
    archs = all_archs()
    assert len(archs) == 16 and "df" in archs and "liae-udt" in archs and "df-ud" in archs


@pytest.mark.parametrize("arch", all_archs())
def test_arch_builds_and_steps_at_two_resolutions(arch):
    spec = parse_arch(arch)
    for res in (32, 64):
        opts = preset("tiny").with_overrides(dict(arch=arch, resolution=res, ae_dims=16, e_dims=4, d_dims=4, d_mask_dims=2))
        torch.manual_seed(0)
        model = build_model(opts)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
        x = torch.rand(2, 3, res, res)
        m = torch.ones(2, 1, res, res)
        out = model.forward_train(x, x.flip(0))
        for img in (out.src, out.dst, out.swap):
            assert img.shape == (2, 3, res, res)
            assert float(img.detach().min()) >= 0 and float(img.detach().max()) <= 1
        for mask in (out.src_mask, out.dst_mask, out.swap_mask):
            assert mask.shape == (2, 1, res, res)
        loss = losses.reconstruction_loss(out.src, out.src_mask, x, m, m, res, True, True).mean()
        before = [p.detach().clone() for p in model.parameters()]
        opt.zero_grad()
        loss.backward()
        opt.step()
        changed = sum(not torch.equal(a, p) for a, p in zip(before, model.parameters()))
        assert torch.isfinite(loss)
        # the dst-only branches get no gradient from a src-only loss; the src path must move
        assert changed >= len(before) // 3, f"{arch}@{res}: only {changed}/{len(before)} tensors updated"
        face, fmask, dmask = model.swap(x)
        assert face.shape == (2, 3, res, res) and fmask.shape == dmask.shape == (2, 1, res, res)
    assert spec.resolution_multiple == (32 if spec.d else 16)


def test_variant_flags_change_the_network():
    base = dict(resolution=64, ae_dims=16, e_dims=4, d_dims=4, d_mask_dims=2)
    names = {}
    for arch in ("df", "df-u", "df-d", "df-t"):
        model = build_model(preset("tiny").with_overrides(dict(arch=arch, **base)))
        names[arch] = (sorted(model.state_dict()), sum(p.numel() for p in model.parameters()))
    assert names["df-d"] != names["df"] and names["df-t"] != names["df"]
    # -u changes the computation, not the weights
    assert names["df-u"] == names["df"]
    x = torch.rand(1, 3, 64, 64)
    torch.manual_seed(0)
    a = build_model(preset("tiny").with_overrides(dict(arch="df", **base)))
    b = build_model(preset("tiny").with_overrides(dict(arch="df-u", **base)))
    b.load_state_dict(a.state_dict())
    assert not torch.allclose(a.swap(x)[0], b.swap(x)[0])


@pytest.mark.parametrize("arch,res", [("df", 72), ("df-ud", 48), ("liae-d", 80), ("df", 8)])
def test_resolution_must_fit_the_arch(arch, res):
    with pytest.raises(FacecastError, match="multiple of"):
        preset("tiny").with_overrides(dict(arch=arch, resolution=res))


@pytest.mark.parametrize("bad", ["dfx", "df-q", "liae-uu", "", "df_ud"])
def test_unknown_arch_is_one_line(bad):
    with pytest.raises(FacecastError, match="unknown arch"):
        parse_arch(bad)


def test_options_roundtrip_and_validation():
    opts = preset("quick96")
    again = ModelOptions.from_dict(__import__("json").loads(opts.to_json()))
    assert again == opts
    assert preset("saehd").arch == "liae-ud" and preset("saehd").resolution == 128
    with pytest.raises(FacecastError, match="ct_mode"):
        opts.with_overrides({"ct_mode": "xyz"})
    with pytest.raises(FacecastError, match="unknown option"):
        opts.with_overrides({"no_such": 1})
    with pytest.raises(FacecastError, match="expected bool"):
        opts.with_overrides({"random_warp": "maybe"})
    assert opts.with_overrides({"random_warp": "false"}).random_warp is False
    assert changed_fixed_options(opts, {"resolution": 96, "batch_size": 2}) == []
    bad = changed_fixed_options(opts, {"resolution": 128, "arch": "liae", "lr": 1.0})
    assert len(bad) == 2 and any("resolution" in b for b in bad) and any("arch" in b for b in bad)


def test_tiny_preset_is_cpu_sized():
    model = build_model(preset("tiny"))
    n = sum(p.numel() for p in model.parameters())
    assert 200_000 < n < 2_000_000


def test_cpu_preset_is_the_measured_quick_recipe():
    """The `cpu` preset is what bench/first_swap.py measured: DF at 64 px on the full-face crop, decoders
    wide enough for an identity, no random warp; a training step at batch 8 stays CPU-sized."""
    from torch.utils.flop_counter import FlopCounterMode

    from facecast.faces.facetype import covers

    opts = preset("cpu")
    assert (opts.arch, opts.resolution, opts.face_type, opts.random_warp) == ("df", 64, "full", False)
    assert covers("whole_face", opts.face_type)  # extract's default faceset trains without re-extracting
    model = build_model(opts)
    n = sum(p.numel() for p in model.parameters())
    assert 4_000_000 < n < 20_000_000
    x = torch.rand(1, 3, 64, 64)
    with FlopCounterMode(display=False) as fc:
        model.forward_train(x, x)
    assert fc.get_total_flops() * 3 * opts.batch_size < 300e9  # fwd+bwd per step, GFLOP-sized for 2 cores


def test_learning_rate_warm_up_ramps_then_holds():
    from facecast.train.trainer import warmup_factor

    opts = preset("tiny").with_overrides({"lr_warmup_iters": 4})
    assert [warmup_factor(opts, i) for i in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    assert warmup_factor(preset("tiny"), 0) == 1.0  # off by default: DeepFaceLab's constant rate
    assert preset("cpu").lr_warmup_iters > 0
    with pytest.raises(FacecastError, match="lr_warmup_iters"):
        preset("tiny").with_overrides({"lr_warmup_iters": -1})
