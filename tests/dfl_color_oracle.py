"""DeepFaceLab's colour transfers, transcribed in plain numpy: the oracle for facecast's own ones.

What this is: a small, deliberately literal transcription of the algorithms in DeepFaceLab's
`core/imagelib/color_transfer.py` (iperov/DeepFaceLab master) and of how its merger
(`merger/MergeMasked.py`) calls them. It is used two ways, and only outside the package:
- as the ORACLE: tests/test_color_dfl.py requires facecast's transfers (facecast.imaging.color) to
  stay >= 40 dB PSNR from these on the same inputs and the same seed;
- as the SPEED BASELINE: bench/color.py times these and facecast's side by side in one run.
It is not optimised on purpose: it does what DeepFaceLab's numpy code does, step for step.

The facts it keeps (each one changes the output measurably):
- rct: statistics in OpenCV's float L*a*b*; the result is scaled by std_ref/std_img ("not as in the
  paper") and clipped to L 0..100, a/b -127..127. Masks: pixels with mask < 0.5 are set to ZERO and
  still count in the mean/std (DeepFaceLab does not drop them).
- lct: symmetric square roots (mode 'pca') of covariances with eps 1e-5 on the diagonal.
- mkl: np.cov (N-1) covariances; eigenvalues clipped at float eps.
- idt: 20 random rotations (scipy special_ortho_group), 256 bins over the joint range of the two
  projections, and each iteration moves only relaxation = 1/n_rot of the way (the output reaches
  about 1 - (1 - 1/20)^20 ~ 0.64 of the full match); values in the lowest bin map to 0 (np.interp
  left=0), a quirk kept here.
- sot: 10 steps of `batch_size` random directions (5 for ct_mode, 30 in the merger's sot-m); each pixel
  moves by sorted(target) - sorted(source) at its rank; the total shift is then smoothed with
  cv2.bilateralFilter(shift, 0, sigmaColor=5, sigmaSpace=16).
- mix: on uint8 L*a*b*: lightness by lct on L alone; chroma by sot on the image with L set to 100
  (uint8 scale), in 0..255 units (so the bilateral filter's sigmaColor=5 really preserves edges there).
- masked merge modes (mkl-m, idt-m, sot-m, mix-m) multiply BOTH images by the mask and run the
  unmasked transfer, so masked-out pixels take part as black.
- hist-match: per channel quantile mapping over unique values, source quantiles scaled by
  threshold/255.

Inputs are float32 images in [0,1], BGR order where colour space matters (rct, mix) exactly as in
DeepFaceLab; the random draws come from a numpy Generator instead of the global state so a run is
reproducible (`rng`).
"""

from __future__ import annotations

import cv2
import numpy as np
from scipy.stats import special_ortho_group


def reinhard_color_transfer(target, source, target_mask=None, source_mask=None, mask_cutoff=0.5):
    """rct: `target` (float32 BGR) takes the L*a*b* mean/std of `source`."""
    source = cv2.cvtColor(source, cv2.COLOR_BGR2LAB)
    target = cv2.cvtColor(target, cv2.COLOR_BGR2LAB)
    source_input = source
    if source_mask is not None:
        source_input = source_input.copy()
        source_input[source_mask[..., 0] < mask_cutoff] = [0, 0, 0]
    target_input = target
    if target_mask is not None:
        target_input = target_input.copy()
        target_input[target_mask[..., 0] < mask_cutoff] = [0, 0, 0]
    out = []
    for c, (lo, hi) in enumerate([(0, 100), (-127, 127), (-127, 127)]):
        t_mean, t_std = target_input[..., c].mean(), target_input[..., c].std()
        s_mean, s_std = source_input[..., c].mean(), source_input[..., c].std()
        ch = (target[..., c] - t_mean) * s_std / t_std + s_mean
        out.append(np.clip(ch, lo, hi))
    return cv2.cvtColor(np.stack(out, -1).astype(np.float32), cv2.COLOR_LAB2BGR)


def linear_color_transfer(target_img, source_img, eps=1e-5):
    """lct ('pca' mode): x -> Cs^1/2 Ct^-1/2 (x - mu_t) + mu_s."""
    mu_t = target_img.mean(0).mean(0)
    t = target_img - mu_t
    t = t.transpose(2, 0, 1).reshape(t.shape[-1], -1)
    ct = t.dot(t.T) / t.shape[1] + eps * np.eye(t.shape[0])
    mu_s = source_img.mean(0).mean(0)
    s = source_img - mu_s
    s = s.transpose(2, 0, 1).reshape(s.shape[-1], -1)
    cs = s.dot(s.T) / s.shape[1] + eps * np.eye(s.shape[0])
    eva_t, eve_t = np.linalg.eigh(ct)
    qt = eve_t.dot(np.sqrt(np.diag(eva_t))).dot(eve_t.T)
    eva_s, eve_s = np.linalg.eigh(cs)
    qs = eve_s.dot(np.sqrt(np.diag(eva_s))).dot(eve_s.T)
    ts = qs.dot(np.linalg.inv(qt)).dot(t)
    matched = ts.reshape(*target_img.transpose(2, 0, 1).shape).transpose(1, 2, 0)
    matched += mu_s
    return np.clip(matched.astype(source_img.dtype), 0, 1)


def color_transfer_mkl(x0, x1):
    """mkl: the Monge-Kantorovich linear map between the two colour Gaussians."""
    eps = np.finfo(float).eps
    h, w, c = x0.shape
    h1, w1, c1 = x1.shape
    x0 = x0.reshape((h * w, c))
    x1 = x1.reshape((h1 * w1, c1))
    a = np.cov(x0.T)
    b = np.cov(x1.T)
    da2, ua = np.linalg.eig(a)
    da = np.diag(np.sqrt(da2.clip(eps, None)))
    cc = da @ ua.T @ b @ ua @ da
    dc2, uc = np.linalg.eig(cc)
    dc = np.diag(np.sqrt(dc2.clip(eps, None)))
    da_inv = np.diag(1.0 / np.diag(da))
    t = ua @ da_inv @ uc @ dc @ uc.T @ da_inv @ ua.T
    result = np.dot(x0 - x0.mean(0), t) + x1.mean(0)
    return np.clip(result.reshape((h, w, c)).astype(x0.dtype), 0, 1)


def color_transfer_idt(i0, i1, rng, bins=256, n_rot=20):
    """idt: relaxed iterative distribution transfer (Pitie et al. 2005)."""
    relaxation = 1 / n_rot
    h, w, c = i0.shape
    d0 = i0.reshape((h * w, c)).T
    d1 = i1.reshape((-1, i1.shape[-1])).T
    for _ in range(n_rot):
        r = special_ortho_group.rvs(c, random_state=rng).astype(np.float32)
        d0r = np.dot(r, d0)
        d1r = np.dot(r, d1)
        d_r = np.empty_like(d0)
        for j in range(c):
            lo = min(d0r[j].min(), d1r[j].min())
            hi = max(d0r[j].max(), d1r[j].max())
            p0r, edges = np.histogram(d0r[j], bins=bins, range=[lo, hi])
            p1r, _ = np.histogram(d1r[j], bins=bins, range=[lo, hi])
            cp0r = p0r.cumsum().astype(np.float32)
            cp0r /= cp0r[-1]
            cp1r = p1r.cumsum().astype(np.float32)
            cp1r /= cp1r[-1]
            f = np.interp(cp0r, cp1r, edges[1:])
            d_r[j] = np.interp(d0r[j], edges[1:], f, left=0, right=bins)
        d0 = relaxation * np.linalg.solve(r, (d_r - d0r)) + d0
    return np.clip(d0.T.reshape((h, w, c)).astype(i0.dtype), 0, 1)


def color_transfer_sot(src, trg, rng, steps=10, batch_size=5, reg_sigma_xy=16.0, reg_sigma_v=5.0):
    """sot: sliced optimal transport, then the shift smoothed by a bilateral filter. Not clipped."""
    h, w, c = src.shape
    new_src = src.copy()
    advect = np.empty((h * w, c), dtype=src.dtype)
    for _ in range(steps):
        advect.fill(0)
        for _ in range(batch_size):
            d = rng.normal(size=c).astype(src.dtype)
            d /= np.linalg.norm(d)
            projsource = np.sum(new_src * d, axis=-1).reshape(h * w)
            projtarget = np.sum(trg * d, axis=-1).reshape(h * w)
            id_source = np.argsort(projsource)
            id_target = np.argsort(projtarget)
            a = projtarget[id_target] - projsource[id_source]
            for i_c in range(c):
                advect[id_source, i_c] += a * d[i_c]
        new_src += advect.reshape((h, w, c)) / batch_size
    if reg_sigma_xy != 0.0:
        diff_filt = cv2.bilateralFilter(new_src - src, 0, reg_sigma_v, reg_sigma_xy)
        if diff_filt.ndim == 2:
            diff_filt = diff_filt[..., None]
        new_src = src + diff_filt
    return new_src


def channel_hist_match(source, template, hist_match_threshold=255):
    source_shape = source.shape
    s_values, bin_idx, s_counts = np.unique(source.ravel(), return_inverse=True, return_counts=True)
    t_values, t_counts = np.unique(template.ravel(), return_counts=True)
    s_quantiles = np.cumsum(s_counts).astype(np.float64)
    s_quantiles = hist_match_threshold * s_quantiles / s_quantiles[-1]
    t_quantiles = np.cumsum(t_counts).astype(np.float64)
    t_quantiles = 255 * t_quantiles / t_quantiles[-1]
    return np.interp(s_quantiles, t_quantiles, t_values)[bin_idx].reshape(source_shape)


def color_hist_match(src_im, tar_im, hist_match_threshold=255):
    chans = [channel_hist_match(src_im[..., i], tar_im[..., i], hist_match_threshold) for i in range(3)]
    return np.stack(chans, -1).astype(src_im.dtype)


def merger_hist_match(prd, dst, mask=None, threshold=255):
    """The merger's hist-match mode: outside the mask both images are painted white first."""
    hist_mask = np.ones(prd.shape[:2] + (1,), np.float32)
    if mask is not None:
        hist_mask *= mask
    white = (1.0 - hist_mask) * np.ones(prd.shape[:2] + (1,), np.float32)
    h1 = np.minimum(prd * hist_mask + white, 1.0)
    h2 = dst * hist_mask + white
    return color_hist_match(h1, h2, threshold).astype(np.float32)


def color_transfer_mix(img_src, img_trg, rng):
    """mix: lct on uint8 L, sot on the chroma-only image (L = 100 on the uint8 scale)."""
    img_src = np.clip(img_src * 255.0, 0, 255).astype(np.uint8)
    img_trg = np.clip(img_trg * 255.0, 0, 255).astype(np.uint8)
    src_lab = cv2.cvtColor(img_src, cv2.COLOR_BGR2LAB)
    trg_lab = cv2.cvtColor(img_trg, cv2.COLOR_BGR2LAB)
    light = linear_color_transfer(src_lab[..., 0:1].astype(np.float32) / 255.0, trg_lab[..., 0:1].astype(np.float32) / 255.0)
    rct_light = np.clip(light[..., 0] * 255.0, 0, 255).astype(np.uint8)
    src_lab[..., 0] = 100
    src_bgr = cv2.cvtColor(src_lab, cv2.COLOR_LAB2BGR)
    trg_lab[..., 0] = 100
    trg_bgr = cv2.cvtColor(trg_lab, cv2.COLOR_LAB2BGR)
    out = color_transfer_sot(src_bgr.astype(np.float32), trg_bgr.astype(np.float32), rng)
    out = np.clip(out, 0, 255).astype(np.uint8)
    out = cv2.cvtColor(out, cv2.COLOR_BGR2LAB)
    out[..., 0] = rct_light
    return (cv2.cvtColor(out, cv2.COLOR_LAB2BGR) / 255.0).astype(np.float32)


def _bgr(fn, img, ref, *args):
    """Run a BGR function on RGB inputs (and return RGB)."""
    return np.ascontiguousarray(fn(np.ascontiguousarray(img[..., ::-1]), np.ascontiguousarray(ref[..., ::-1]), *args)[..., ::-1])


def transfer(mode: str, img, ref, mask=None, seed: int = 0):
    """One mode as DeepFaceLab runs it: training's ct_mode names and the merger's colour modes.

    img, ref: float32 RGB [0,1] (facecast's order: rct and mix, whose colour conversions assume BGR,
    get the channels flipped; the other algorithms treat channels alike and get them as they are);
    mask: (h, w, 1) float32 or None (the merger's face mask, used by the masked modes and by rct
    exactly as MergeMasked.py does). Outputs are clipped to [0,1] as the merger's next step does."""
    rng = np.random.default_rng(seed)
    m = mask if mask is not None else np.ones(img.shape[:2] + (1,), np.float32)
    if mode == "rct":
        out = _bgr(lambda a, b: reinhard_color_transfer(a, b, target_mask=mask, source_mask=mask), img, ref)
        return np.clip(out, 0, 1)
    if mode == "lct":
        return linear_color_transfer(img, ref)
    if mode == "mkl":
        return color_transfer_mkl(img, ref)
    if mode == "mkl-m":
        return color_transfer_mkl(img * m, ref * m)
    if mode == "idt":
        return color_transfer_idt(img, ref, rng)
    if mode == "idt-m":
        return color_transfer_idt(img * m, ref * m, rng)
    if mode == "sot":
        return np.clip(color_transfer_sot(img, ref, rng), 0, 1)
    if mode == "sot-m":
        return np.clip(color_transfer_sot(img * m, ref * m, rng, steps=10, batch_size=30), 0, 1)
    if mode == "mix-m":
        return _bgr(lambda a, b: color_transfer_mix(a, b, rng), img * m, ref * m)
    raise ValueError(mode)


# -- inputs shared by tests/test_color_dfl.py and bench/color.py ---------------------------------------
def face_pairs(size: int = 256):
    """Real colour faces from the bundled photos, float32 RGB [0,1] at `size` px, with the face's hull mask.

    Returns [(name, img, ref, mask)]: breakingbad's annotated face (aligned as a whole face from its
    ground-truth landmarks) recoloured toward the astronaut's face (a fixed crop), and the reverse."""
    from facecast.faces.align import align_face
    from facecast.imaging.hull import hull_mask
    from facecast.media.synth import sample_photo

    b_img, b_lm = sample_photo("breakingbad")
    face, _, lm = align_face(b_img, b_lm, "whole_face", size)
    astro = sample_photo("astronaut")[0]
    other = cv2.resize(astro[60:210, 160:290], (size, size), interpolation=cv2.INTER_CUBIC)
    a, b = face.astype(np.float32) / 255.0, other.astype(np.float32) / 255.0
    mask = hull_mask(lm, size)
    return [("breakingbad->astronaut", a, b, mask), ("astronaut->breakingbad", b, a, mask)]


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of two [0,1] images (inf when identical)."""
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(1.0 / mse)
