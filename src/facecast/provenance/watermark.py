"""Invisible keyed watermark that survives H.264 (CRF 28-35), rescaling (0.3-2x), crops, horizontal
mirroring and small rotations (+-5 deg).

Why not a library: `invisible-watermark` (dwtDct) measured 53 % bit accuracy (chance) after CRF 28 and
22 % after a 10 % crop (DESIGN.md). This is the design the throwaway prototype measured there:

Embed (luma only, added equally to R, G, B so chroma is untouched):
  - One tile, repeated over the frame. A crop only shifts the tile's phase; a rescale changes its
    period, a rotation turns its lattice, a mirror flips it. All four are searched for at detection.
  - The tile is built in its own 2-D DFT on a ring of 4-22 cycles/tile (low enough to survive 0.3x
    scaling and H.264's quantiser, high enough to be invisible under texture), one keyed pseudo-random
    phase per bin. 30 % of the bins are a fixed *pilot* (finds geometry and shift, gives the
    confidence); the rest carry the coded payload bits (each bin multiplies its phase by +-1). Each
    coded bit gets bins from low, middle and high bands (keyed interleaving per round), so a downscale
    that erases the upper bands leaves every bit some energy instead of erasing a run of bits.
  - Strength follows a texture x luminance mask (the eye forgives noise in texture, not on flat or
    clipped areas); the gain is set per frame for a luma PSNR of TARGET_PSNR_DB (40 dB), or
    SMALL_PSNR_DB (38.5 dB) for frames under SMALL_PIXELS: a 160x120 frame holds 1/48 of a 1080p
    frame's pixels, and the mark's detectability grows with its total energy. Measured on 160x120 and
    176x144 clips (bench/provenance.py): a half-period (64 px) tile was worse after CRF 28 (H.264
    erases its upper bands) than the 128-px tile at 1.5 dB more strength, so the period stays 128.
  - Compositor patches (`embed_patch`): the *frame's* pattern, warped into the patch's face space with
    the patch's own frame->face matrix. A compositor that pastes the patch back with that matrix (the
    recipe in the patch's JSON) puts the mark onto the frame's tile lattice, at the same place in every
    frame however the face moves, so a video of such composites pools like a merged one. The mark then
    covers only the face, so the patch is marked more strongly, by the share of the frame its square
    covers: the composite frame keeps target_psnr, the patch itself is never under PATCH_PSNR_DB.
Detect:
  - Normalise each frame (remove its smooth part, divide by its contrast) and *sum the frames*: the mark
    sits at the same place in every frame and adds up, picture content and coding noise do not. CRF 28
    loses the mark in B-frames (the encoder predicts it away); pooled over >= 25 frames it comes back.
  - Direct decode first: the two embedding periods and the axis-aligned periods where the flattened
    spectrum's autocorrelation peaks (a plain rescale), each folded into one tile and phase-correlated
    with the pilot, refined on a fine scale grid.
  - Only when that gives no checked payload: the geometric search. The 2-D autocorrelation of the
    flattened spectrum is matched against a square lattice over angle (+-6 deg) and period (34-272 px);
    its few best (angle, period) candidates are folded as they are and mirrored, and the best is
    refined by hill-climbing angle and period.
  - The pilot's correlation peak gives the shift (crop) and a peak-to-noise SNR; THRESHOLD (set from
    bench/watermark_fp.py on >= 1,000 unmarked clips and stills, the whole search included) decides
    "mark present"; a payload passing its CRC-16 counts from LABEL_FLOOR on (two independent pieces of
    evidence: 1e-2 x 1.5e-5). The payload bins, shifted back, give one soft value per coded bit, decoded by soft
    Viterbi + CRC-16 (ecc.py). Three verdicts: labelled (mark present, CRC ok), mark present but payload
    unreadable (never shown), no mark.

The key: the "this is facecast output" mark uses one fixed, public, facecast-wide key, so anyone can
verify a file re-encoded by another tool without the workspace; the payload (8 bytes) is a hash of the
workspace id. Public key means anyone can also *write* the mark, e.g. stamp a real photo so it reads as
synthetic or as another workspace's output: the watermark is a soft binding that says "a facecast mark is
in these pixels", never who made them; the signed C2PA manifest is the authenticated claim (see verify.py).
The key's patterns are derived with SHA-256 (independent of numpy versions) and their fingerprint is
checked against PATTERN_SHA256 at first use: a changed derivation refuses to run instead of silently
writing marks nobody can read.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import asdict, dataclass, field
from functools import lru_cache

import cv2
import numpy as np

from facecast.errors import FacecastError
from facecast.provenance import ecc

TILE = 128
RING = (4.0, 22.0)
PILOT_FRACTION = 0.30
PAYLOAD_BYTES = 8
FACECAST_KEY = b"facecast/watermark/v1"
TARGET_PSNR_DB = 40.0
SMALL_PSNR_DB = 38.5
SMALL_PIXELS = 400 * 300
PATCH_PSNR_DB = 34.0  # floor of a patch's own luma PSNR (embed_patch: the frame stays >= target_psnr)
# pilot SNR at or above which the mark is "present": set by bench/watermark_fp.py on 1,100 unmarked
# clips and stills through the whole search (max 6.24; Gumbel fit: 1e-4 per window at 7.55, 1e-4 per
# video of 4 pooled windows at 8.0)
THRESHOLD = 8.0
# a payload that passes its CRC-16 (1 in 65,536 by chance) is accepted from this pilot SNR on: together
# < 1e-6 per window (Gumbel: P(SNR >= 6) ~ 1e-2 on unmarked content)
LABEL_FLOOR = 6.0
POOL_FRAMES = 25  # frames summed per detection window for video
MAX_ROTATION_DEG = 6.0
PERIOD_RANGE = (34.0, 272.0)
PATTERN_SHA256 = "8ec6d5b25f7c28e7f2ab67e530bf84ab2704c2835257175c20bbd1281bd2c5d9"

VERDICT_LABELLED = "labelled"
VERDICT_UNREADABLE = "mark present, payload unreadable"
VERDICT_NONE = "no mark"


@dataclass
class Detection:
    """Result of looking for the mark. `payload` only when its CRC checked; `bit_accuracy` only when
    the true payload was given (measured on the decoded bits even when the check failed)."""

    found: bool  # a mark is present: pilot SNR >= THRESHOLD, or >= LABEL_FLOOR with a passing CRC-16
    payload: bytes | None
    confidence: float  # pilot peak-to-noise SNR
    crc_ok: bool = False
    period: float = 0.0
    shift: tuple[int, int] = (0, 0)
    frames: int = 0
    bit_accuracy: float | None = None
    rotation: float = 0.0  # degrees (counter-clockwise +) the image was turned by after marking
    mirrored: bool = False
    searched: bool = False  # the geometric search ran (the direct decode gave no checked payload)
    extra: dict = field(default_factory=dict)

    @property
    def verdict(self) -> str:
        if self.found and self.crc_ok:
            return VERDICT_LABELLED
        return VERDICT_UNREADABLE if self.found else VERDICT_NONE

    def to_dict(self) -> dict:
        d = asdict(self)
        d["payload"] = self.payload.hex() if self.payload is not None else None
        d["verdict"] = self.verdict
        return d


def _keystream(key: bytes, label: bytes, n: int) -> np.ndarray:
    """n uint32 values from SHA-256 in counter mode: the same on every platform and numpy version."""
    out = bytearray()
    counter = 0
    while len(out) < 4 * n:
        out += hashlib.sha256(key + b"|" + label + b"|" + counter.to_bytes(8, "big")).digest()
        counter += 1
    return np.frombuffer(bytes(out[: 4 * n]), ">u4").astype(np.uint64)


@dataclass(frozen=True)
class _Layout:
    bins: np.ndarray  # (n, 2) (v, u) indices in the half plane
    phases: np.ndarray  # (n,) keyed phases
    pilot: np.ndarray  # (n,) bool
    bit_of: np.ndarray  # (n,) coded-bit index for payload bins, -1 for pilot
    n_coded: int
    pilot_tile: np.ndarray  # TILE x TILE float32, unit RMS
    pilot_spec: np.ndarray  # complex TILE x TILE: conj pilot phases on pilot bins (+ mirror), else 0


def _freqs(bins: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    f = (np.fft.fftfreq(TILE) * TILE).astype(np.int64)
    return f[bins[:, 0]], f[bins[:, 1]]


@lru_cache(maxsize=4)
def _layout(key: bytes = FACECAST_KEY) -> _Layout:
    f = np.fft.fftfreq(TILE) * TILE
    v, u = np.meshgrid(f, f, indexing="ij")
    r = np.hypot(u, v)
    # one of each Hermitian pair: u > 0, or u == 0 and v > 0
    half = ((u > 0) | ((u == 0) & (v > 0))) & (r >= RING[0]) & (r <= RING[1])
    bins = np.argwhere(half)
    n = len(bins)
    order = np.argsort(_keystream(key, b"order", n), kind="stable")
    bins = bins[order]
    phases = _keystream(key, b"phase", n).astype(np.float64) / 2**32 * 2 * np.pi
    n_pilot = int(round(PILOT_FRACTION * n))
    pilot = np.zeros(n, bool)
    pilot[:n_pilot] = True
    n_coded = ecc.coded_length(ecc.payload_bits(PAYLOAD_BYTES))
    # payload bins by radius, dealt to the coded bits round by round with a keyed permutation per round
    fv, fu = _freqs(bins)
    data_idx = np.arange(n_pilot, n)
    data_idx = data_idx[np.argsort(np.hypot(fv[data_idx], fu[data_idx]), kind="stable")]
    bit_of = np.full(n, -1, np.int64)
    for r0 in range(0, len(data_idx), n_coded):
        chunk = data_idx[r0 : r0 + n_coded]
        perm = np.argsort(_keystream(key, b"deal%d" % (r0 // n_coded), n_coded), kind="stable")
        bit_of[chunk] = perm[: len(chunk)]
    spec = np.zeros((TILE, TILE), np.complex128)
    pv, pu = bins[pilot].T
    spec[pv, pu] = np.exp(1j * phases[pilot])
    spec[(-pv) % TILE, (-pu) % TILE] = np.exp(-1j * phases[pilot])
    pilot_tile = np.real(np.fft.ifft2(spec))
    pilot_tile /= pilot_tile.std()
    return _Layout(bins, phases, pilot, bit_of, n_coded, pilot_tile.astype(np.float32), np.conj(spec))


@lru_cache(maxsize=16)
def _tile(payload: bytes, key: bytes = FACECAST_KEY, period: int = TILE) -> np.ndarray:
    """The spatial tile (period x period, unit RMS) for a payload: the same spectrum at any period."""
    lay = _layout(key)
    coded = ecc.encode_payload(payload).astype(np.float64) * 2 - 1
    signs = np.ones(len(lay.bins))
    data = ~lay.pilot
    signs[data] = coded[lay.bit_of[data]]
    spec = np.zeros((period, period), np.complex128)
    fv, fu = _freqs(lay.bins)
    vals = signs * np.exp(1j * lay.phases)
    spec[fv % period, fu % period] = vals
    spec[(-fv) % period, (-fu) % period] = np.conj(vals)
    tile = np.real(np.fft.ifft2(spec))
    return (tile / tile.std()).astype(np.float32)


def pattern_fingerprint(key: bytes = FACECAST_KEY) -> str:
    lay = _layout(key)
    h = hashlib.sha256()
    h.update(lay.bins.astype(np.int32).tobytes())
    h.update(np.round(lay.phases, 9).tobytes())
    h.update(lay.pilot.tobytes())
    return h.hexdigest()


def check_integrity() -> None:
    """Refuse to run when the key's patterns differ from the recorded ones (see module docstring)."""
    if pattern_fingerprint() != PATTERN_SHA256:
        raise FacecastError(
            "watermark patterns do not match the recorded fingerprint (facecast.provenance.watermark was "
            "altered or its derivation changed); reinstall facecast"
        )


_checked = False


def _ensure_checked(key: bytes) -> None:
    global _checked
    if key == FACECAST_KEY and not _checked:
        check_integrity()
        _checked = True


def target_psnr(h: int, w: int) -> float:
    """Luma PSNR the mark is embedded at in an h x w frame (module docstring: size-adaptive strength)."""
    return SMALL_PSNR_DB if h * w < SMALL_PIXELS else TARGET_PSNR_DB


def _luma(frame: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2GRAY).astype(np.float32)


def _mask(y: np.ndarray) -> np.ndarray:
    """Where the mark may be strong: textured, mid-luminance areas (computed at half size: it is smooth)."""
    h, w = y.shape
    small = cv2.resize(y, (max(1, w // 2), max(1, h // 2)), interpolation=cv2.INTER_AREA)
    mean = cv2.blur(small, (5, 5))
    var = np.maximum(cv2.blur(small * small, (5, 5)) - mean * mean, 0)
    tex = np.clip(np.sqrt(var) * (1 / 8.0), 0.35, 2.0)
    lum = np.clip(np.minimum(small, 255 - small) * (1 / 40.0), 0.15, 1.0)
    return cv2.resize(tex * lum, (w, h), interpolation=cv2.INTER_LINEAR)


def _region(payload: bytes, key: bytes, period: int, x0: int, y0: int, w: int, h: int) -> np.ndarray:
    """The frame's tiled pattern over the box (x0, y0, w, h) of frame coordinates (may lie outside)."""
    t = np.roll(_tile(payload, key, period), (-(y0 % period), -(x0 % period)), axis=(0, 1))
    return np.ascontiguousarray(np.tile(t, (h // period + 1, w // period + 1))[:h, :w])


@lru_cache(maxsize=8)
def _tiled(payload: bytes, h: int, w: int, key: bytes) -> np.ndarray:
    return _region(payload, key, TILE, 0, 0, w, h)


def _gain(delta: np.ndarray, psnr_db: float) -> float:
    rms = float(cv2.norm(delta, cv2.NORM_L2)) / np.sqrt(delta.size) or 1.0
    return (255.0 / 10 ** (psnr_db / 20)) / rms


def _check_payload(payload: bytes) -> None:
    if len(payload) != PAYLOAD_BYTES:
        raise ValueError(f"watermark payload must be {PAYLOAD_BYTES} bytes, got {len(payload)}")


def embed(frame: np.ndarray, payload: bytes, key: bytes = FACECAST_KEY, psnr_db: float | None = None) -> np.ndarray:
    """Return a marked copy of an RGB uint8 frame carrying `payload` (8 bytes); psnr_db defaults to
    target_psnr(frame size)."""
    _check_payload(payload)
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError("embed expects an RGB uint8 frame")
    _ensure_checked(key)
    h, w = frame.shape[:2]
    delta = cv2.multiply(_tiled(payload, h, w, key), _mask(_luma(frame)))
    d16 = np.rint(delta * _gain(delta, psnr_db or target_psnr(h, w))).astype(np.int16)
    # the same luma offset on R, G and B leaves chroma untouched; cv2.add saturates at 0/255
    return cv2.add(np.ascontiguousarray(frame), cv2.merge([d16, d16, d16]), dtype=cv2.CV_8U)


def embed_patch(
    patch: np.ndarray,
    payload: bytes,
    frame_to_patch: np.ndarray,
    frame_size: tuple[int, int],
    key: bytes = FACECAST_KEY,
    psnr_db: float | None = None,
) -> np.ndarray:
    """Mark a compositor patch: RGB float32 in [0,1], uint8 or uint16; returns the same type.

    The mark is the frame's (frame_size = (w, h)) tile lattice seen through the 2x3 frame->patch matrix,
    so pasting the patch back with that matrix lands it on the frame lattice (module docstring)."""
    _check_payload(payload)
    if patch.ndim != 3 or patch.shape[2] != 3 or patch.dtype not in (np.uint8, np.uint16, np.float32, np.float64):
        raise ValueError("embed_patch expects an RGB float, uint8 or uint16 patch")
    _ensure_checked(key)
    ph, pw = patch.shape[:2]
    fw, fh = frame_size
    m = np.asarray(frame_to_patch, np.float64).reshape(2, 3)
    inv = cv2.invertAffineTransform(m)
    corners = np.array([[0, 0], [pw, 0], [0, ph], [pw, ph]], np.float64) @ inv[:, :2].T + inv[:, 2]
    x0, y0 = (np.floor(corners.min(0)) - 4).astype(int)
    x1, y1 = (np.ceil(corners.max(0)) + 4).astype(int)
    pattern = _region(payload, key, TILE, int(x0), int(y0), int(x1 - x0), int(y1 - y0))
    k = math.sqrt(abs(np.linalg.det(inv[:, :2])))  # frame px per patch px
    if k > 1.25:  # the patch cannot hold the pattern's finest bands: drop them instead of aliasing
        pattern = cv2.GaussianBlur(pattern, (0, 0), 0.45 * k)
    local = m.copy()
    local[:, 2] += m[:, :2] @ np.array([x0, y0], np.float64)
    pat = cv2.warpAffine(pattern, local, (pw, ph), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
    scale = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}.get(patch.dtype, 1.0)
    rgb8 = np.clip(patch.astype(np.float32) * (255.0 / scale), 0, 255)
    delta = cv2.multiply(pat, _mask(_luma(rgb8)))
    if psnr_db is None:  # the composite frame keeps target_psnr: the patch covers only part of it
        cover = min(1.0, (pw * ph) / (k * k) / float(fw * fh)) if k > 0 else 1.0
        psnr_db = max(PATCH_PSNR_DB, target_psnr(fh, fw) + 10 * math.log10(max(cover, 1e-6)))
    delta *= _gain(delta, psnr_db) * (scale / 255.0)
    out = patch.astype(np.float64) + delta[..., None]
    if patch.dtype in (np.uint8, np.uint16):
        return np.clip(np.rint(out), 0, scale).astype(patch.dtype)
    return np.clip(out, 0.0, 1.0).astype(patch.dtype)


def _normalise(y: np.ndarray) -> np.ndarray:
    """Remove the smooth picture content and equalise contrast, so every frame counts the same."""
    hp = y - cv2.GaussianBlur(y, (0, 0), 12)
    local = np.sqrt(cv2.GaussianBlur(hp * hp, (0, 0), 16)) + 2.0
    return hp / local


def pool(frames: list[np.ndarray]) -> np.ndarray:
    """Sum of normalised luma over frames of one size (the mark adds up, content and noise do not)."""
    acc = None
    for fr in frames:
        y = _luma(fr) if fr.ndim == 3 else fr.astype(np.float32)
        n = _normalise(y)
        acc = n if acc is None else acc + n
    if acc is None:
        raise ValueError("no frames")
    return acc / np.sqrt(len(frames))


def _fold(img: np.ndarray) -> np.ndarray:
    h, w = img.shape
    ph, pw = -h % TILE, -w % TILE
    img = np.pad(img - img.mean(), ((0, ph), (0, pw)))
    return img.reshape(img.shape[0] // TILE, TILE, img.shape[1] // TILE, TILE).sum((0, 2))


def _canonical(img: np.ndarray, period: float, rotation: float = 0.0) -> np.ndarray:
    """The pooled image turned back by `rotation` degrees and rescaled so the lattice has period TILE."""
    s = TILE / period
    h, w = img.shape
    if rotation == 0.0:
        if abs(period - TILE) < 1e-6:
            return img
        size = (max(TILE, round(w * s)), max(TILE, round(h * s)))
        return cv2.resize(img, size, interpolation=cv2.INTER_LINEAR)
    c, sn = abs(math.cos(math.radians(rotation))), abs(math.sin(math.radians(rotation)))
    ow, oh = max(TILE, round((w * c + h * sn) * s)), max(TILE, round((h * c + w * sn) * s))
    m = cv2.getRotationMatrix2D((w / 2, h / 2), rotation, s)
    m[:, 2] += (ow / 2 - w / 2, oh / 2 - h / 2)
    return cv2.warpAffine(img, m, (ow, oh), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)


@dataclass
class _Cand:
    snr: float
    period: float
    rotation: float = 0.0
    mirrored: bool = False
    shift: tuple[int, int] = (0, 0)
    white: np.ndarray | None = None


def _correlate(fold: np.ndarray) -> tuple[np.ndarray, float, tuple[int, int]]:
    spec = np.fft.fft2(fold)
    white = spec / (np.abs(spec) + 1e-9)
    corr = np.real(np.fft.ifft2(white * _layout().pilot_spec))
    peak = np.unravel_index(int(np.argmax(corr)), corr.shape)
    noise = float(np.std(corr)) or 1.0
    return white, float(corr[peak]) / noise, (int(peak[0]), int(peak[1]))


def _evaluate(img: np.ndarray, period: float, rotation: float = 0.0, mirrors: tuple[bool, ...] = (False,)) -> _Cand:
    """Fold at a geometry (each mirror state asked for) and keep the better pilot SNR."""
    fold = _fold(_canonical(img, period, rotation))
    best = _Cand(-np.inf, period, rotation)
    for mirrored in mirrors:
        white, snr, shift = _correlate(fold[:, ::-1] if mirrored else fold)
        if snr > best.snr:
            best = _Cand(snr, period, rotation, mirrored, shift, white)
    return best


def _flat_autocorrelation(img: np.ndarray) -> np.ndarray:
    """Autocorrelation of the spectrum-flattened image: the mark's lattice shows as peaks at its lags."""
    h, w = img.shape
    win = np.outer(np.hanning(h), np.hanning(w)).astype(np.float32)
    power = np.abs(np.fft.fft2(img * win)) ** 2
    smooth = cv2.blur(np.fft.fftshift(power).astype(np.float32), (15, 15))
    flat = np.fft.ifftshift(np.fft.fftshift(power) / (smooth + 1e-9) - 1.0)
    return np.real(np.fft.ifft2(flat)).astype(np.float32)


def _period_candidates(ac: np.ndarray, max_candidates: int = 6) -> list[float]:
    """Axis-aligned periods where the autocorrelation peaks (a plain rescale), plus the unscaled one."""
    h, w = ac.shape
    cands = [float(TILE)]
    lo, hi = 40, min(h, w) - 24
    if hi - lo < 3:
        return cands
    lags = np.arange(lo, hi)
    score = ac[0, lags] + ac[lags, 0]
    score = score - np.median(score)
    n_found = 0
    for i in np.argsort(score)[::-1]:
        if n_found >= max_candidates:
            break
        j = int(i)
        if 0 < j < len(score) - 1 and score[j] >= score[j - 1] and score[j] >= score[j + 1]:
            a, b, c = score[j - 1], score[j], score[j + 1]
            off = 0.5 * (a - c) / (a - 2 * b + c) if (a - 2 * b + c) != 0 else 0.0
            p = float(lags[j] + off)
            if all(abs(p - q) > 1.0 for q in cands):
                cands.append(p)
                n_found += 1
    return cands


def _lattice_candidates(ac: np.ndarray, k: int = 6) -> list[tuple[float, float]]:
    """(rotation deg, period) of the square lattices the autocorrelation matches best: the sum of its
    values at the lattice vectors L1, L2, L1+L2, L1-L2 over a grid of angles and periods."""
    h, w = ac.shape
    p_lo, p_hi = PERIOD_RANGE[0], min(PERIOD_RANGE[1], min(h, w) - 24)
    if p_hi <= p_lo * 1.05:
        return []
    periods = np.geomspace(p_lo, p_hi, int(math.log(p_hi / p_lo) / math.log(1.004)) + 1).astype(np.float32)
    angles = np.arange(-MAX_ROTATION_DEG, MAX_ROTATION_DEG + 1e-6, 0.1).astype(np.float32)
    a, p = np.meshgrid(np.radians(angles), periods, indexing="ij")
    c, s = np.cos(a) * p, np.sin(a) * p
    score = np.zeros(a.shape, np.float32)
    for x, y in ((c, s), (-s, c), (c - s, s + c), (c + s, s - c)):
        score += cv2.remap(ac, np.mod(x, w).astype(np.float32), np.mod(y, h).astype(np.float32),
                           cv2.INTER_LINEAR, borderMode=cv2.BORDER_WRAP)
    score -= np.median(score, axis=0, keepdims=True)  # the window makes long lags weaker
    peaks = (score == cv2.dilate(score, np.ones((5, 5), np.uint8))) & (score > 0)
    idx = np.argwhere(peaks)
    idx = idx[np.argsort(score[peaks])[::-1][:k]]
    return [(float(angles[i]), float(periods[j])) for i, j in idx]


def _climb(img: np.ndarray, best: _Cand, steps, rotate: bool) -> _Cand:
    """Hill-climb period (relative steps) and, when `rotate`, angle: folding needs the period to ~0.1 %
    and the angle to ~0.05 deg over a whole frame."""
    mirrors = (best.mirrored,)
    for dp, da in steps:
        for param in ("period", "rotation") if rotate else ("period",):
            for direction in (-1, 1):
                for _ in range(4):
                    if param == "period":
                        cand = _evaluate(img, best.period * (1 + direction * dp), best.rotation, mirrors)
                    else:
                        cand = _evaluate(img, best.period, best.rotation + direction * da, mirrors)
                    if cand.snr <= best.snr:
                        break
                    best = cand
    return best


def _direct(img: np.ndarray, ac: np.ndarray) -> _Cand:
    best = _Cand(-np.inf, float(TILE))
    for p in _period_candidates(ac):
        cand = _evaluate(img, p)
        if cand.snr > best.snr:
            best = cand
    if best.period != TILE or best.snr < THRESHOLD:
        best = _climb(img, best, ((0.01, 0), (0.003, 0), (0.001, 0), (0.0004, 0)), rotate=False)
    return best


def _geometric(img: np.ndarray, ac: np.ndarray, direct: _Cand) -> _Cand:
    both = (False, True)
    best = _evaluate(img, direct.period, 0.0, both)
    for rotation, period in _lattice_candidates(ac):
        cand = _evaluate(img, period, rotation, both)
        if cand.snr > best.snr:
            best = cand
    return _climb(img, best, ((0.004, 0.1), (0.0015, 0.04), (0.0006, 0.015)), rotate=True)


def _soft_bits(white: np.ndarray, shift: tuple[int, int]) -> np.ndarray:
    """One soft value per coded bit, weighting each frequency band by how well the pilot survived there.

    Why the weights: H.264 and downscaling erase the upper bands first; weighting bins by the pilot's
    mean correlation in their band (maximal-ratio combining) stops dead bands from adding pure noise."""
    lay = _layout()
    vv, uu = lay.bins.T
    dv, du = shift
    # undo the cyclic shift: the tile appears at offset `shift` in the fold
    rot = np.exp(2j * np.pi * (vv * dv + uu * du) / TILE)
    vals = np.real(white[vv, uu] * rot * np.exp(-1j * lay.phases))
    f = np.fft.fftfreq(TILE) * TILE
    band = np.round(np.hypot(f[vv], f[uu])).astype(np.int64)
    n_bands = int(band.max()) + 1
    sums = np.bincount(band[lay.pilot], vals[lay.pilot], minlength=n_bands)
    counts = np.maximum(np.bincount(band[lay.pilot], minlength=n_bands), 1)
    weight = np.clip(sums / counts, 0.0, None)
    if not weight.any():
        weight[:] = 1.0
    soft = np.zeros(lay.n_coded)
    data = ~lay.pilot
    np.add.at(soft, lay.bit_of[data], (vals * weight[band])[data])
    return soft


def detect(frames: list[np.ndarray] | np.ndarray, key: bytes = FACECAST_KEY, truth: bytes | None = None) -> Detection:
    """Look for the mark in one image or in frames of a video (pooled; use >= 25 frames after H.264)."""
    if key != FACECAST_KEY:
        raise ValueError("only the facecast key is supported by detect")
    _ensure_checked(key)
    if isinstance(frames, np.ndarray):
        frames = [frames]
    if not frames:
        raise FacecastError("no frames to look for a watermark in")
    return detect_pooled(pool(list(frames)), len(frames), truth)


def _decode(c: _Cand) -> tuple[bytes, bool]:
    return ecc.decode_payload(_soft_bits(c.white, c.shift), PAYLOAD_BYTES)


def detect_pooled(img: np.ndarray, n_frames: int = 1, truth: bytes | None = None, search: bool = True) -> Detection:
    """Detect in an already pooled image (see `Pooler` for growing windows over a long video).

    The geometric search (mirror, rotation, any scale) runs only when the direct decode gives no
    checked payload; `search=False` skips it."""
    _ensure_checked(FACECAST_KEY)
    ac = _flat_autocorrelation(img)
    best = _direct(img, ac)
    payload, crc_ok = _decode(best)
    searched = False
    if search and not (crc_ok and best.snr >= LABEL_FLOOR):
        searched = True
        geo = _geometric(img, ac, best)
        if geo.snr > best.snr:
            g_payload, g_crc = _decode(geo)
            if g_crc or not crc_ok:
                best, payload, crc_ok = geo, g_payload, g_crc
    found = best.snr >= THRESHOLD or (crc_ok and best.snr >= LABEL_FLOOR)
    acc = None
    if truth is not None:
        acc = float(np.mean(ecc.bytes_to_bits(payload) == ecc.bytes_to_bits(truth)))
    ok = crc_ok and found
    return Detection(
        found, payload if ok else None, best.snr, ok, best.period, best.shift, n_frames, acc,
        -best.rotation, best.mirrored, searched,  # reported as the attack's angle (counter-clockwise +)
        {"crc_pass": crc_ok},
    )


class Pooler:
    """Running sum of normalised frames, so a video can be checked at 25, 50, 100... frames cheaply."""

    def __init__(self) -> None:
        self.acc: np.ndarray | None = None
        self.n = 0

    def add(self, frame: np.ndarray) -> None:
        y = _normalise(_luma(frame) if frame.ndim == 3 else frame.astype(np.float32))
        if self.acc is not None and self.acc.shape != y.shape:
            return  # a resolution change mid-stream: keep the first size
        self.acc = y if self.acc is None else self.acc + y
        self.n += 1

    def detect(self, truth: bytes | None = None) -> Detection:
        if self.acc is None:
            raise FacecastError("no frames to look for a watermark in")
        return detect_pooled(self.acc / np.sqrt(self.n), self.n, truth)
