"""Building blocks of the SAEHD family, as described for DeepFaceLab's `DeepFakeArchi`.

- Downscale: 5x5 stride-2 conv + leaky ReLU(0.1).
- Upscale: 3x3 conv to 4x channels + leaky ReLU(0.1) + pixel shuffle (depth-to-space) x2.
- ResidualBlock: conv3x3 -> lrelu(0.2) -> conv3x3, added to the input, then lrelu(0.2).
- pixel_norm: x / sqrt(mean(x^2) + eps) over features (the `-u` flag's normalised code).
Why pixel shuffle rather than transposed convs: no checkerboard artefacts, and it is what the published
models use, so option meanings (d_dims etc.) carry over.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def pixel_norm(x: torch.Tensor, dim: int = -1, eps: float = 1e-6) -> torch.Tensor:
    return x * torch.rsqrt(torch.mean(x * x, dim=dim, keepdim=True) + eps)


class Downscale(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, kernel: int = 5) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, kernel, stride=2, padding=kernel // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(self.conv(x), 0.1)


class Upscale(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, kernel: int = 3) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch * 4, kernel, padding=kernel // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pixel_shuffle(F.leaky_relu(self.conv(x), 0.1), 2)


class ResidualBlock(nn.Module):
    def __init__(self, ch: int, kernel: int = 3) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(ch, ch, kernel, padding=kernel // 2)
        self.conv2 = nn.Conv2d(ch, ch, kernel, padding=kernel // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv2(F.leaky_relu(self.conv1(x), 0.2))
        return F.leaky_relu(x + y, 0.2)


class Encoder(nn.Module):
    """Stride-2 5x5 stack with channels e, 2e, 4e, 8e (`-t`: a fifth 8e level and residual blocks)."""

    def __init__(self, in_ch: int, e_ch: int, t: bool, u: bool) -> None:
        super().__init__()
        self.u = u
        if t:
            self.body = nn.Sequential(
                Downscale(in_ch, e_ch), ResidualBlock(e_ch), Downscale(e_ch, e_ch * 2),
                Downscale(e_ch * 2, e_ch * 4), Downscale(e_ch * 4, e_ch * 8), Downscale(e_ch * 8, e_ch * 8),
                ResidualBlock(e_ch * 8),
            )
        else:
            chans = [in_ch, e_ch, e_ch * 2, e_ch * 4, e_ch * 8]
            self.body = nn.Sequential(*[Downscale(a, b) for a, b in zip(chans, chans[1:])])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.flatten(self.body(x), 1)
        return pixel_norm(x) if self.u else x


class Inter(nn.Module):
    """dense -> ae_dims -> dense -> (ae_out, lowest, lowest) [-> upscale unless `-t`]."""

    def __init__(self, in_features: int, ae_ch: int, ae_out_ch: int, lowest: int, t: bool) -> None:
        super().__init__()
        self.ae_out_ch, self.lowest = ae_out_ch, lowest
        self.dense1 = nn.Linear(in_features, ae_ch)
        self.dense2 = nn.Linear(ae_ch, lowest * lowest * ae_out_ch)
        self.up = None if t else Upscale(ae_out_ch, ae_out_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.dense2(self.dense1(x)).view(-1, self.ae_out_ch, self.lowest, self.lowest)
        return x if self.up is None else self.up(x)

    @property
    def out_ch(self) -> int:
        return self.ae_out_ch


class Decoder(nn.Module):
    """Upscale blocks (3, or 4 with `-t`) with residual blocks, a 1x1 sigmoid RGB head and a mask branch.

    `-d`: the RGB head predicts 4 images and pixel-shuffles them to twice the resolution (the mask
    branch gets one more upscale), so the decoder runs at half resolution for about the same compute."""

    def __init__(self, in_ch: int, d_ch: int, dm_ch: int, t: bool, d: bool) -> None:
        super().__init__()
        self.d = d
        chans = [in_ch, d_ch * 8, d_ch * 8, d_ch * 4, d_ch * 2] if t else [in_ch, d_ch * 8, d_ch * 4, d_ch * 2]
        mchans = [in_ch, dm_ch * 8, dm_ch * 8, dm_ch * 4, dm_ch * 2] if t else [in_ch, dm_ch * 8, dm_ch * 4, dm_ch * 2]
        layers: list[nn.Module] = []
        for a, b in zip(chans, chans[1:]):
            layers += [Upscale(a, b), ResidualBlock(b)]
        self.body = nn.Sequential(*layers)
        mlayers: list[nn.Module] = [Upscale(a, b) for a, b in zip(mchans, mchans[1:])]
        if d:
            mlayers.append(Upscale(dm_ch * 2, dm_ch))
            self.out = nn.Conv2d(d_ch * 2, 3 * 4, 3, padding=1)
            self.out_m = nn.Conv2d(dm_ch, 1, 1)
        else:
            self.out = nn.Conv2d(d_ch * 2, 3, 1)
            self.out_m = nn.Conv2d(dm_ch * 2, 1, 1)
        self.mask_body = nn.Sequential(*mlayers)

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.out(self.body(z))
        if self.d:
            x = F.pixel_shuffle(x, 2)
        m = self.out_m(self.mask_body(z))
        return torch.sigmoid(x), torch.sigmoid(m)
