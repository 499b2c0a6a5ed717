"""Model options: DeepFaceLab SAEHD's option set and defaults, as one JSON-serialisable dataclass.

Why split "architecture" from "training" options: the architecture ones decide the shapes of the
weights, so changing them on resume would silently load nothing (DeepFaceLab's "X layers into a model
with Y layers"). They are fixed when a model is created; `options.json` keeps them and a resume that
asks for a different value is refused with one line. Everything else may change between runs.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from facecast.errors import FacecastError
from facecast.faces.facetype import ALIASES, FACE_TYPES

SCHEMA = "facecast.model-options/1"

# Decided once, at creation: they set weight shapes or what the weights mean.
ARCH_FIXED = ("arch", "resolution", "face_type", "ae_dims", "e_dims", "d_dims", "d_mask_dims")

CT_MODES = ("none", "rct", "lct", "mkl", "idt", "sot")
OPTIMIZERS = ("rmsprop", "adabelief", "adamw")


@dataclass
class ModelOptions:
    """SAEHD options with DeepFaceLab's defaults (its `Model_SAEHD` option prompts)."""

    # -- architecture (fixed at creation) -----------------------------------------------------------
    arch: str = "liae-ud"
    resolution: int = 128
    face_type: str = "whole_face"
    ae_dims: int = 256
    e_dims: int = 64
    d_dims: int = 64
    d_mask_dims: int = 22
    # -- training (changeable on resume) ------------------------------------------------------------
    batch_size: int = 8
    masked_training: bool = True
    eyes_mouth_priority: bool = False
    uniform_yaw: bool = False
    blur_out_mask: bool = False
    random_warp: bool = True
    random_hsv_power: float = 0.0
    random_src_flip: bool = False
    random_dst_flip: bool = True
    true_face_power: float = 0.0
    face_style_power: float = 0.0
    bg_style_power: float = 0.0
    ct_mode: str = "none"
    clip_grad: bool = False
    lr_dropout: float = 0.0  # DFL's "lr_dropout": fraction of weight updates dropped each step
    optimizer: str = "adabelief"
    lr: float = 5e-5
    lr_warmup_iters: int = 0  # the learning rate ramps linearly up to lr over this many iterations (0 = off)
    gan_power: float = 0.0
    gan_patch_size: int = 16  # DFL default resolution // 8
    gan_dims: int = 16
    pretrain: bool = False
    target_iter: int = 0  # 0 = train until stopped
    autobackup_minutes: int = 0  # 0 = off
    backup_keep: int = 5
    save_minutes: int = 25  # DFL saves every 25 minutes
    preview_every: int = 200
    write_preview_history: bool = False
    eval_every: int = 500
    seed: int = 0
    num_workers: int = 1

    # -- validation / (de)serialisation -------------------------------------------------------------
    def validate(self) -> "ModelOptions":
        """Check every value once, at the edge; returns self (normalised face type)."""
        from facecast.train.archs.registry import parse_arch

        spec = parse_arch(self.arch)
        ft = ALIASES.get(self.face_type.lower(), self.face_type.lower())
        if ft not in FACE_TYPES:
            raise FacecastError(f"option face_type={self.face_type!r}: choose one of {', '.join(FACE_TYPES)}")
        self.face_type = ft
        mult = spec.resolution_multiple
        if self.resolution < mult or self.resolution % mult:
            raise FacecastError(
                f"option resolution={self.resolution} does not fit arch {self.arch!r}: "
                f"it needs a multiple of {mult} (e.g. {max(mult, round(self.resolution / mult) * mult)})"
            )
        for name in ("ae_dims", "e_dims", "d_dims", "d_mask_dims", "batch_size", "gan_dims"):
            if getattr(self, name) < 1:
                raise FacecastError(f"option {name}={getattr(self, name)} must be at least 1")
        if self.ct_mode not in CT_MODES:
            raise FacecastError(f"option ct_mode={self.ct_mode!r}: choose one of {', '.join(CT_MODES)}")
        self.optimizer = self.optimizer.lower()
        if self.optimizer not in OPTIMIZERS:
            raise FacecastError(f"option optimizer={self.optimizer!r}: choose one of {', '.join(OPTIMIZERS)}")
        if not 0.0 <= self.lr_dropout < 1.0:
            raise FacecastError(f"option lr_dropout={self.lr_dropout} must be in [0, 1)")
        if self.lr <= 0:
            raise FacecastError(f"option lr={self.lr} must be positive")
        if self.lr_warmup_iters < 0:
            raise FacecastError(f"option lr_warmup_iters={self.lr_warmup_iters} must be >= 0")
        if self.gan_power > 0 and not 3 <= self.gan_patch_size <= self.resolution:
            raise FacecastError(f"option gan_patch_size={self.gan_patch_size} must be in [3, resolution]")
        for name in ("random_hsv_power", "true_face_power", "face_style_power", "bg_style_power", "gan_power"):
            if getattr(self, name) < 0:
                raise FacecastError(f"option {name}={getattr(self, name)} must be >= 0")
        return self

    def to_json(self) -> str:
        return json.dumps({"schema": SCHEMA, **asdict(self)}, indent=2)

    @classmethod
    def from_dict(cls, data: dict[str, Any], name: str = "options") -> "ModelOptions":
        if not isinstance(data, dict):
            raise FacecastError(f"{name}: not an options file (a JSON object); restore it from backups/ or recreate the model")
        if data.get("schema") not in (None, SCHEMA):
            raise FacecastError(f"{name}: schema {data.get('schema')!r} is not {SCHEMA}; it was written by another version")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known - {"schema"})
        if unknown:
            raise FacecastError(f"{name}: unknown option(s) {', '.join(unknown)}")
        defaults = cls()
        for key, value in data.items():
            if key in known and not _same_kind(value, getattr(defaults, key)):
                raise FacecastError(f"{name}: option {key}={value!r} should be {type(getattr(defaults, key)).__name__}; "
                                    "fix the file or restore it from backups/")
        try:
            opts = cls(**{k: v for k, v in data.items() if k in known})
        except TypeError as err:
            raise FacecastError(f"{name}: {err}") from None
        return opts.validate()

    @classmethod
    def load(cls, path: Path) -> "ModelOptions":
        try:
            data = json.loads(Path(path).read_text())
        except FileNotFoundError:
            raise FacecastError(f"{path}: not found; is this a facecast model folder?") from None
        except json.JSONDecodeError as err:
            raise FacecastError(f"{path}: corrupt options file ({err.msg})") from None
        return cls.from_dict(data, str(path))

    def with_overrides(self, overrides: dict[str, Any]) -> "ModelOptions":
        """A copy with `overrides` applied (values coerced to each field's type), validated."""
        known = {f.name: f for f in fields(self)}
        clean: dict[str, Any] = {}
        for key, value in overrides.items():
            if value is None:
                continue
            if key not in known:
                raise FacecastError(f"unknown option {key!r}; known: {', '.join(known)}")
            clean[key] = _coerce(key, value, getattr(self, key))
        return replace(self, **clean).validate()


def _same_kind(value: Any, default: Any) -> bool:
    """A value read from a file has its field's JSON type (ints for floats allowed; None only where the
    default is None)."""
    if default is None:
        return True
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, int):
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(default, str):
        return isinstance(value, str)
    return isinstance(value, type(default))


def _coerce(key: str, value: Any, current: Any) -> Any:
    try:
        if isinstance(current, bool):
            if isinstance(value, str):
                if value.lower() in ("1", "true", "yes", "y", "on"):
                    return True
                if value.lower() in ("0", "false", "no", "n", "off"):
                    return False
                raise ValueError(value)
            return bool(value)
        if isinstance(current, int):
            return int(value)
        if isinstance(current, float):
            return float(value)
        return str(value)
    except (TypeError, ValueError):
        raise FacecastError(f"option {key}={value!r}: expected {type(current).__name__}") from None


def preset(name: str) -> ModelOptions:
    """Named starting points: `saehd` (DFL defaults), `quick96` (DFL's Quick96), `cpu` (a first likeness in
    minutes on a CPU), `tiny` (tests and the demo)."""
    name = name.lower()
    if name == "saehd":
        return ModelOptions().validate()
    if name == "quick96":
        # DeepFaceLab's Quick96: DF-UD at 96 px, full face, ae 128 / e 64 / d 64 / mask 16, batch 4.
        return ModelOptions(arch="df-ud", resolution=96, face_type="full", ae_dims=128, e_dims=64,
                            d_dims=64, d_mask_dims=16, batch_size=4, optimizer="rmsprop", lr=5e-5,
                            gan_patch_size=12).validate()
    if name == "tiny":
        # CPU-sized: ~1 M parameters at 64 px, ~3 GFLOP per training step at batch 4.
        return ModelOptions(arch="df", resolution=64, face_type="whole_face", ae_dims=64, e_dims=8,
                            d_dims=6, d_mask_dims=4, batch_size=4, optimizer="adamw", lr=5e-4,
                            gan_patch_size=8, gan_dims=8, preview_every=100, eval_every=100,
                            save_minutes=5, num_workers=0).validate()
    if name == "cpu":
        # A first recognisable swap within minutes on a CPU (issue 17; bench/first_swap.py measures it):
        # DF at 64 px on the full-face crop (identity needs the pixels a whole_face crop spends on
        # forehead and hair), decoders wide enough to hold an identity (tiny's d_dims 6 gave a blob),
        # no random warp (it teaches generalisation but delays the first likeness several-fold), AdamW at
        # 5e-4 with gradient clipping (without it the src decoder collapsed to a flat grey face when the
        # loss left its first plateau, ~270 iterations in; 1e-3 collapsed it even with clipping, 2e-4
        # stayed on the plateau twice as long), batch 4 (1.8x the iterations per minute of batch 8 for
        # nearly the same progress per iteration), and a 200-iteration warm-up of the rate (without it the
        # dst decoder of a bright, white-haired dst face saturated to all-white in the first ~40 steps).
        return ModelOptions(arch="df", resolution=64, face_type="full", ae_dims=128, e_dims=32, d_dims=32,
                            d_mask_dims=8, batch_size=4, random_warp=False, clip_grad=True, optimizer="adamw",
                            lr=5e-4, lr_warmup_iters=200, gan_patch_size=8, gan_dims=8, preview_every=200, eval_every=200,
                            save_minutes=5, num_workers=1).validate()
    raise FacecastError(f"unknown preset {name!r}: choose {', '.join(PRESETS)}")


PRESETS = ("saehd", "quick96", "cpu", "tiny")


def changed_fixed_options(saved: ModelOptions, requested: dict[str, Any]) -> list[str]:
    """Names of architecture options in `requested` whose value differs from the saved model's."""
    out = []
    for key in ARCH_FIXED:
        if key in requested and requested[key] is not None:
            want = _coerce(key, requested[key], getattr(saved, key))
            if key == "face_type":
                want = ALIASES.get(str(want).lower(), str(want).lower())
            if want != getattr(saved, key):
                out.append(f"{key} (model has {getattr(saved, key)!r}, asked {want!r})")
    return out


def option_help() -> dict[str, str]:
    """Which options are fixed at creation and which may change on resume (for the CLI's help)."""
    return {f.name: ("fixed at creation" if f.name in ARCH_FIXED else "changeable on resume") for f in fields(ModelOptions)}

