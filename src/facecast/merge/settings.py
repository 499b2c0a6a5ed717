"""Merge settings: DeepFaceLab's merger controls as one JSON-serialisable dataclass.

Why one dataclass: the same object is validated once at the edge (CLI, UI, session file), hashed per
frame so a re-run knows which frames a change affects, and stored in `merge_session.json` so a session
can be resumed or reviewed. Defaults follow DeepFaceLab's MergerConfigMasked (overlay, mask
learned-prd*learned-dst, rct colour transfer, masked histogram match at threshold 238) so its users
get what they expect.

Units (as in DeepFaceLab): `erode` and `blur` are pixels of the face at the model's resolution
(negative erode grows the mask); scales and powers are percentages.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from facecast.errors import FacecastError

MODES = (
    "original",
    "overlay",
    "hist-match",
    "seamless",
    "seamless-hist-match",
    "raw-rgb",
    "raw-predict",
    "raw-mask",
)
MASK_MODES = (
    "dst",
    "learned-prd",
    "learned-dst",
    "learned-prd*learned-dst",
    "learned-prd+learned-dst",
    "xseg-prd",
    "xseg-dst",
    "xseg-prd*xseg-dst",
    "learned-prd*learned-dst*xseg-prd*xseg-dst",
)
COLOR_TRANSFERS = ("none", "rct", "lct", "mkl", "mkl-m", "idt", "idt-m", "sot-m", "mix-m")
SHARPEN_MODES = ("none", "box", "gaussian")

# name -> (low, high) for numeric settings; checked by validate().
RANGES: dict[str, tuple[float, float]] = {
    "erode": (-400, 400),
    "blur": (0, 400),
    "face_scale": (-50, 50),
    "output_face_scale": (-50, 50),
    "motion_blur": (0, 100),
    "sharpen_amount": (-100, 100),
    "image_denoise": (0, 500),
    "bicubic_degrade": (0, 100),
    "color_degrade": (0, 100),
    "hist_match_threshold": (0, 255),
    "temporal_window": (1, 31),
}


@dataclass(frozen=True)
class MergeSettings:
    """Every control of the merger. Frozen: overrides make a new object (see `with_overrides`)."""

    mode: str = "overlay"
    mask_mode: str = "learned-prd*learned-dst"
    erode: int = 0  # px at model resolution; negative grows the mask
    blur: int = 0  # feather, px at model resolution
    face_scale: int = 0  # % scale of the predicted face inside a fixed mask region
    output_face_scale: int = 0  # % scale of face and mask together in the frame
    motion_blur: int = 0  # % of the landmark motion between neighbouring frames
    sharpen_mode: str = "none"
    sharpen_amount: int = 0  # -100 (blur) .. 100 (sharpen)
    image_denoise: int = 0  # median-filter strength applied to the dst frame (0..500)
    bicubic_degrade: int = 0  # % down/up-sampling of the dst frame to match a softer face
    color_degrade: int = 0  # % blend towards a 256-colour version of the result
    color_transfer: str = "rct"
    masked_hist_match: bool = True
    hist_match_threshold: int = 238
    temporal_window: int = 1  # frames over which colour statistics and mask are averaged (odd)

    # -- validation ----------------------------------------------------------------------------
    def validate(self) -> "MergeSettings":
        """Raise one clear FacecastError naming the bad setting and its allowed values."""
        for name, allowed in (
            ("mode", MODES),
            ("mask_mode", MASK_MODES),
            ("color_transfer", COLOR_TRANSFERS),
            ("sharpen_mode", SHARPEN_MODES),
        ):
            value = getattr(self, name)
            if value not in allowed:
                raise FacecastError(f"merge setting {name}={value!r} is not valid: choose one of {', '.join(allowed)}")
        for name, (lo, hi) in RANGES.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo <= value <= hi:
                raise FacecastError(f"merge setting {name}={value!r} is out of range: use a number from {lo:g} to {hi:g}")
        if not isinstance(self.masked_hist_match, bool):
            raise FacecastError(f"merge setting masked_hist_match={self.masked_hist_match!r} must be true or false")
        if self.temporal_window % 2 == 0:
            raise FacecastError(
                f"merge setting temporal_window={self.temporal_window} must be odd (centred on the frame): use "
                f"{self.temporal_window + 1}"
            )
        return self

    @property
    def needs_xseg(self) -> bool:
        return "xseg" in self.mask_mode

    @property
    def needs_xseg_prd(self) -> bool:
        return "xseg-prd" in self.mask_mode

    # -- (de)serialisation -----------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "merge settings") -> "MergeSettings":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise FacecastError(f"{where}: unknown setting(s) {', '.join(unknown)}; valid: {', '.join(sorted(known))}")
        return cls(**data).validate()

    def with_overrides(self, overrides: dict[str, Any], where: str = "override") -> "MergeSettings":
        """A copy with some settings changed (per-frame overrides), validated."""
        known = {f.name for f in fields(self)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise FacecastError(f"{where}: unknown setting(s) {', '.join(unknown)}; valid: {', '.join(sorted(known))}")
        return replace(self, **overrides).validate()

    def digest(self) -> str:
        """A short stable hash of every setting (for the per-frame settings hash)."""
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def parse_override(text: str) -> tuple[str, Any]:
    """Parse `key=value` (value as JSON when it parses, else as a string); names may use dashes."""
    if "=" not in text:
        raise FacecastError(f"override {text!r} must look like key=value, e.g. erode=10 or mode=seamless")
    key, raw = text.split("=", 1)
    key = key.strip().replace("-", "_")
    known = {f.name: f for f in fields(MergeSettings)}
    if key not in known:
        raise FacecastError(f"override {text!r}: unknown setting {key!r}; valid: {', '.join(sorted(known))}")
    raw = raw.strip()
    default = getattr(MergeSettings(), key)
    try:
        if isinstance(default, bool):
            if raw.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError
            value: Any = raw.lower() in ("true", "1", "yes")
        elif isinstance(default, int):
            value = int(raw)
        else:
            value = raw
    except ValueError:
        raise FacecastError(f"override {text!r}: {key} needs a {type(default).__name__} value") from None
    return key, value
