"""The XSeg-style segmenter: a small U-Net that says, per pixel of an aligned face, "this is face".

Why this shape: masks are smooth, so the network drops to half resolution in its first layer (a stride-2
stem) and predicts logits at half resolution, upsampled bilinearly at the end. That keeps the 256 px
default at a few hundred MFLOPs per face, which is what lets `xseg apply` run at tens of faces per
second on two CPU cores, while skip connections keep the edges of hands and hair where they are.
The model knows the face type and resolution it was trained for (`XSegOptions`), and refuses others.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from facecast.errors import FacecastError
from facecast.faces.facetype import get_face_type

OPTIONS_SCHEMA = "facecast.xseg/1"


@dataclass
class XSegOptions:
    """Architecture options, stored as options.json next to the weights."""

    preset: str = "default"
    resolution: int = 256
    face_type: str = "whole_face"
    base_channels: int = 16
    depth: int = 4  # encoder levels below the stride-2 stem
    max_channels: int = 128
    schema: str = OPTIONS_SCHEMA
    extra: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> "XSegOptions":
        self.face_type = get_face_type(self.face_type).name
        if self.depth < 1 or self.depth > 6:
            raise FacecastError(f"xseg depth must be 1..6, not {self.depth}")
        step = 2 ** (self.depth + 1)
        if self.resolution < 32 or self.resolution % step:
            raise FacecastError(
                f"xseg resolution {self.resolution} must be >= 32 and a multiple of {step} for depth {self.depth}"
            )
        if self.base_channels < 4:
            raise FacecastError("xseg base_channels must be >= 4")
        return self

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], name: str = "options.json") -> "XSegOptions":
        if data.get("schema") != OPTIONS_SCHEMA:
            raise FacecastError(f"{name}: not an xseg model (schema {data.get('schema')!r}, expected {OPTIONS_SCHEMA})")
        known = set(cls.__dataclass_fields__)
        try:
            return cls(**{k: v for k, v in data.items() if k in known}).validate()
        except TypeError as err:
            raise FacecastError(f"{name}: malformed xseg options ({err})") from None


PRESETS: dict[str, XSegOptions] = {
    # For tests and quick CPU tries: 64 px, ~40 k parameters.
    "tiny": XSegOptions(preset="tiny", resolution=64, base_channels=8, depth=3, max_channels=32),
    # The real thing: 256 px, ~0.6 M parameters.
    "default": XSegOptions(preset="default", resolution=256, base_channels=16, depth=4, max_channels=128),
}


def preset_options(preset: str, resolution: int | None = None, face_type: str | None = None) -> XSegOptions:
    if preset not in PRESETS:
        raise FacecastError(f"unknown xseg preset {preset!r}: choose one of {', '.join(PRESETS)}")
    base = PRESETS[preset]
    opts = XSegOptions(**{**base.to_dict(), "extra": {}})
    if resolution:
        opts.resolution = int(resolution)
    if face_type:
        opts.face_type = face_type
    return opts.validate()


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class XSegNet(nn.Module):
    """U-Net: stride-2 stem, `depth` down levels (stride-2 conv + conv), mirrored up path with skips."""

    def __init__(self, opts: XSegOptions) -> None:
        super().__init__()
        self.opts = opts
        ch = [min(opts.base_channels * 2**i, opts.max_channels) for i in range(opts.depth + 1)]
        self.stem = nn.Sequential(_conv(3, ch[0], 2), _conv(ch[0], ch[0]))
        self.down = nn.ModuleList(
            nn.Sequential(_conv(ch[i], ch[i + 1], 2), _conv(ch[i + 1], ch[i + 1])) for i in range(opts.depth)
        )
        self.up = nn.ModuleList(_conv(ch[i + 1] + ch[i], ch[i]) for i in reversed(range(opts.depth)))
        self.head = nn.Conv2d(ch[0], 1, 1)
        # A learned per-pixel logit bias: aligned faces share one layout, so the mean face shape is a
        # strong prior the network can store directly instead of rediscovering it from every image.
        self.prior = nn.Parameter(torch.zeros(1, 1, opts.resolution // 2, opts.resolution // 2))
        self.register_buffer("mean", torch.tensor([0.5, 0.5, 0.5]).view(1, 3, 1, 1) * 255.0, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: N x 3 x R x R float in 0..255 (RGB). Returns logits N x 1 x R x R."""
        size = x.shape[-2:]
        h = self.stem((x - self.mean) / 127.5)
        skips = [h]
        for block in self.down:
            h = block(h)
            skips.append(h)
        skips.pop()
        for block in self.up:
            skip = skips.pop()
            h = F.interpolate(h, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            h = block(torch.cat([h, skip], 1))
        logits = self.head(h)
        prior = self.prior if self.prior.shape[-2:] == logits.shape[-2:] else F.interpolate(
            self.prior, size=logits.shape[-2:], mode="bilinear", align_corners=False)
        return F.interpolate(logits + prior, size=size, mode="bilinear", align_corners=False)


def init_prior(model: XSegNet, mean_mask: torch.Tensor | "np.ndarray", limit: float = 4.0) -> None:
    """Start the prior at the logit of the training faces' mean mask: a new model then begins at "the
    average face", and training only has to learn where a face differs from it (occluders, pose)."""
    m = torch.as_tensor(mean_mask, dtype=torch.float32)[None, None]
    m = F.interpolate(m, size=model.prior.shape[-2:], mode="area").clamp(1e-3, 1 - 1e-3)
    with torch.no_grad():
        model.prior.copy_(torch.logit(m).clamp(-limit, limit).to(model.prior.device))


def build_model(opts: XSegOptions) -> XSegNet:
    return XSegNet(opts.validate())


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
