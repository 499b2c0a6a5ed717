"""SAEHD's training losses, each switched off when its power is 0.

Weights follow DeepFaceLab's published SAEHD: 10*DSSIM + 10*MSE per image (DSSIM kernel res/11.6; at
>= 256 px a second DSSIM at res/23.2 and the pair halved), 10*MSE on the learned mask, 300*L1 on the
eyes/mouth region when prioritised, masked training (loss only inside the blurred face mask), and the
optional true-face code discriminator, patch GAN and style losses.
"""

from __future__ import annotations

import functools

import torch
from torch import nn
from torch.nn import functional as F


@functools.lru_cache(maxsize=16)
def _gauss(size: int, sigma: float, device: str, dtype: torch.dtype) -> torch.Tensor:
    ax = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(ax**2) / (2 * sigma * sigma))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).to(device=device, dtype=dtype)


def dssim(a: torch.Tensor, b: torch.Tensor, kernel: int, sigma: float = 1.5) -> torch.Tensor:
    """(1 - SSIM)/2 per sample (shape N), Gaussian window `kernel` px, images in [0,1].

    One depthwise conv over the 5 stacked moments (a, b, a^2, b^2, ab) instead of five convs: the
    loss is a measurable part of a CPU step at small resolutions."""
    kernel = max(3, int(kernel))
    n, c, h, w = a.shape
    win = _gauss(kernel, sigma, str(a.device), a.dtype)
    stack = torch.cat([a, b, a * a, b * b, a * b], 1)
    weight = win.expand(5 * c, 1, kernel, kernel)
    mom = F.conv2d(stack, weight, groups=5 * c)
    mu_a, mu_b, aa, bb, ab = mom.split(c, 1)
    c1, c2 = 0.01**2, 0.03**2
    va, vb, cov = aa - mu_a * mu_a, bb - mu_b * mu_b, ab - mu_a * mu_b
    ssim = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a * mu_a + mu_b * mu_b + c1) * (va + vb + c2))
    return ((1 - ssim) / 2).mean(dim=(1, 2, 3))


def image_loss(pred: torch.Tensor, target: torch.Tensor, resolution: int) -> torch.Tensor:
    """10*DSSIM + 10*MSE per sample (two DSSIM scales at >= 256 px)."""
    if resolution >= 256:
        d = 5 * dssim(pred, target, int(resolution / 11.6)) + 5 * dssim(pred, target, int(resolution / 23.2))
    else:
        d = 10 * dssim(pred, target, int(resolution / 11.6))
    return d + 10 * ((pred - target) ** 2).mean(dim=(1, 2, 3))


def blur_mask(mask: torch.Tensor, resolution: int) -> torch.Tensor:
    """Soft mask edge (DFL blurs the target mask with a res/32 gaussian before masking the loss)."""
    k = max(3, (resolution // 32) | 1)
    win = _gauss(k, k / 3.0, str(mask.device), mask.dtype)[None, None]
    return F.conv2d(F.pad(mask, [k // 2] * 4, mode="replicate"), win).clamp(0, 1)


def reconstruction_loss(
    pred: torch.Tensor, pred_mask: torch.Tensor, target: torch.Tensor, target_mask: torch.Tensor,
    em_mask: torch.Tensor | None, resolution: int, masked: bool, eyes_mouth: bool,
) -> torch.Tensor:
    """Per-sample loss of one side: image (masked or not), eyes/mouth priority, learned mask."""
    if masked:
        m = blur_mask(target_mask, resolution)
        loss = image_loss(pred * m, target * m, resolution)
    else:
        loss = image_loss(pred, target, resolution)
    if eyes_mouth and em_mask is not None:
        loss = loss + 300 * (torch.abs(target * em_mask - pred * em_mask)).mean(dim=(1, 2, 3))
    return loss + 10 * ((target_mask - pred_mask) ** 2).mean(dim=(1, 2, 3))


def style_loss(pred: torch.Tensor, target: torch.Tensor, power: float) -> torch.Tensor:
    """Match per-channel mean and std over the image (a gram-free style term, as DFL's `style_loss`)."""
    pm, ps = pred.mean(dim=(2, 3)), pred.std(dim=(2, 3))
    tm, ts = target.mean(dim=(2, 3)), target.std(dim=(2, 3))
    return power * (((pm - tm) ** 2).sum(1) + ((ps - ts) ** 2).sum(1))


def style_losses(swap: torch.Tensor, swap_mask: torch.Tensor, dst: torch.Tensor, dst_mask: torch.Tensor,
                 resolution: int, face_power: float, bg_power: float) -> torch.Tensor:
    """face_style: the swapped face's colours toward dst's face; bg_style: keep dst's background."""
    total = torch.zeros(swap.shape[0], device=swap.device, dtype=swap.dtype)
    m = blur_mask(dst_mask, resolution)
    if face_power > 0:
        total = total + style_loss(swap * m, dst * m, 100 * face_power)
    if bg_power > 0:
        inv = 1 - m
        total = total + bg_power * image_loss(swap * inv, dst * inv, resolution)
    return total


class CodeDiscriminator(nn.Module):
    """True-face power: tells src codes from dst codes, so the encoder makes dst codes look like src's."""

    def __init__(self, in_ch: int, res: int, dims: int = 256) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(in_ch, dims, 3, padding=1), nn.LeakyReLU(0.1),
            nn.Conv2d(dims, dims, 3, padding=1, stride=2 if res >= 4 else 1), nn.LeakyReLU(0.1),
            nn.Conv2d(dims, 1, 1),
        )

    def forward(self, code: torch.Tensor) -> torch.Tensor:
        return self.net(code)


class PatchDiscriminator(nn.Module):
    """Patch GAN: each output logit judges a receptive field of about `patch_size` px."""

    def __init__(self, patch_size: int, dims: int) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(3, dims, 3, padding=1), nn.LeakyReLU(0.1)]
        rf, ch = 3, dims
        while rf * 2 <= patch_size:
            layers += [nn.Conv2d(ch, ch * 2, 4, stride=2, padding=1), nn.LeakyReLU(0.1)]
            ch, rf = ch * 2, rf * 2 + 2
        layers.append(nn.Conv2d(ch, 1, 3, padding=1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def d_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    bce = F.binary_cross_entropy_with_logits
    return 0.5 * (bce(real_logits, torch.ones_like(real_logits)) + bce(fake_logits, torch.zeros_like(fake_logits)))


def g_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))
