"""Blending helpers for the merger: mask erode/blur, seamless clone, sharpen, degrades (motion blur: imaging.warp).

All pure functions on numpy arrays. Images are float32 RGB in [0,1] unless named `*_u8`; masks are
float32 HxW in [0,1]. Kernel sizes are pixels of the image they are applied to, so the merger applies
mask and face filters in face space at the model's resolution (DeepFaceLab's units), and frame filters
(denoise, degrade) in frame space.
"""

from __future__ import annotations


import cv2
import numpy as np


def erode_blur(mask: np.ndarray, erode: int, blur: int) -> np.ndarray:
    """Shrink (erode > 0) or grow (erode < 0) a face-space mask, then feather it by `blur` pixels.

    The mask is padded by its own size first so growing is not cut at the image edge, and after the
    erode a band of blur/2 inside the face square is cleared so the feather fades to zero *inside* the
    predicted area (outside it the model predicted nothing)."""
    size = mask.shape[0]
    pad = size
    m = np.pad(mask.astype(np.float32), pad)
    if erode > 0:
        m = cv2.erode(m, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (erode, erode)))
    elif erode < 0:
        m = cv2.dilate(m, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (-erode, -erode)))
    clear = pad + blur // 2
    m[:clear] = 0
    m[-clear:] = 0
    m[:, :clear] = 0
    m[:, -clear:] = 0
    if blur > 0:
        k = blur | 1
        m = cv2.GaussianBlur(m, (k, k), 0)
    return np.clip(m[pad:-pad, pad:-pad], 0.0, 1.0)


def scale_about_center(mat: np.ndarray, size: int, percent: float) -> np.ndarray:
    """A frame->face matrix whose face appears `percent` % larger (positive) in the frame.

    Scaling the face-space coordinates about the square's centre by 1/(1+p) makes the pasted face larger."""
    if percent == 0:
        return mat
    s = 1.0 / (1.0 + percent / 100.0)
    c = size / 2.0
    scale = np.array([[s, 0, c - s * c], [0, s, c - s * c], [0, 0, 1]])
    return (scale @ np.vstack([mat, [0, 0, 1]]))[:2]


def zoom(img: np.ndarray, percent: float, border: int = cv2.BORDER_REPLICATE) -> np.ndarray:
    """Scale an image about its centre by (1 + percent/100), keeping its size."""
    if percent == 0:
        return img
    h, w = img.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2.0, h / 2.0), 0.0, 1.0 + percent / 100.0)
    return cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=border)


def sharpen(img: np.ndarray, mode: str, amount: int, kernel: int = 5) -> np.ndarray:
    """Unsharp mask (amount > 0) or softening (amount < 0) with a box or gaussian blur."""
    if mode == "none" or amount == 0:
        return img
    blurred = cv2.blur(img, (kernel, kernel)) if mode == "box" else cv2.GaussianBlur(img, (kernel, kernel), 0)
    a = amount / 100.0
    if a > 0:
        return np.clip(img + (img - blurred) * (2.0 * a), 0.0, 1.0)
    return img * (1.0 + a) + blurred * (-a)


def denoise(img_u8: np.ndarray, power: int) -> np.ndarray:
    """Median-filter passes: each full 100 of power is one pass, the remainder a partial blend."""
    out = img_u8
    n = power
    while n > 0:
        med = cv2.medianBlur(out, 5)
        if n >= 100:
            out = med
        else:
            a = n / 100.0
            out = cv2.addWeighted(out, 1.0 - a, med, a, 0.0)
        n -= 100
    return out


def bicubic_degrade(img_u8: np.ndarray, power: int) -> np.ndarray:
    """Down- then up-sample by (1 - power/101): softens dst to match a lower-resolution face."""
    if power <= 0:
        return img_u8
    h, w = img_u8.shape[:2]
    p = 1.0 - power / 101.0
    small = cv2.resize(img_u8, (max(1, int(w * p)), max(1, int(h * p))), interpolation=cv2.INTER_CUBIC)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


def color_degrade(img_u8: np.ndarray, power: int) -> np.ndarray:
    """Blend towards a 256-colour (median-cut) version: hides banding differences of the swap."""
    if power <= 0:
        return img_u8
    from PIL import Image

    reduced = np.asarray(Image.fromarray(img_u8).quantize(256).convert("RGB"))
    a = power / 100.0
    return cv2.addWeighted(img_u8, 1.0 - a, reduced, a, 0.0)


def seamless_mask(mask: np.ndarray) -> np.ndarray | None:
    """Binary uint8 mask for Poisson cloning: the smallest level 0.1..0.9 that still has pixels."""
    for i in range(1, 10):
        sel = mask > i / 10.0
        if sel.any():
            return sel.astype(np.uint8) * 255
    return None


def seamless_clone(src_u8: np.ndarray, dst_u8: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """cv2.seamlessClone (normal clone) of src into dst where mask is set; dst unchanged if impossible.

    OpenCV fails when the mask touches the image border, so the mask's outer 1 px ring is cleared and the
    clone is centred on the mask's bounding box (where it keeps the face in place)."""
    m = seamless_mask(mask)
    if m is None:
        return dst_u8
    m[0, :] = m[-1, :] = 0
    m[:, 0] = m[:, -1] = 0
    x, y, w, h = cv2.boundingRect(m)
    if w < 3 or h < 3:
        return dst_u8
    center = (x + w // 2, y + h // 2)
    try:
        return cv2.seamlessClone(src_u8, dst_u8, m, center, cv2.NORMAL_CLONE)
    except cv2.error:
        return dst_u8
