"""Architecture strings: `df`, `liae`, plus SAEHD's flags after a dash (`df-ud`, `liae-udt`).

-u  pixel-normalised encoder code (more src likeness)
-d  decoder doubles the resolution at its end (about the compute of half resolution)
-t  extra depth: a fifth encoder level and residual blocks, one more decoder upscale (more src likeness)
"""

from __future__ import annotations

from dataclasses import dataclass

from facecast.errors import FacecastError

KINDS = ("df", "liae")
FLAGS = "udt"


@dataclass(frozen=True)
class ArchSpec:
    kind: str
    u: bool
    d: bool
    t: bool

    @property
    def name(self) -> str:
        flags = "".join(f for f in FLAGS if getattr(self, f))
        return self.kind + (f"-{flags}" if flags else "")

    @property
    def resolution_multiple(self) -> int:
        # 4 stride-2 levels then a dense code at res/16 (res/32 with -d, whose decoder works at half res).
        return 32 if self.d else 16


def parse_arch(arch: str) -> ArchSpec:
    text = (arch or "").strip().lower()
    kind, _, flags = text.partition("-")
    if kind not in KINDS or any(f not in FLAGS for f in flags) or len(set(flags)) != len(flags):
        raise FacecastError(
            f"unknown arch {arch!r}: use df or liae, optionally with flags u/d/t after a dash (e.g. liae-ud)"
        )
    return ArchSpec(kind, "u" in flags, "d" in flags, "t" in flags)


def all_archs() -> list[str]:
    """Every kind with every flag combination (for tests and the bench)."""
    import itertools

    out = []
    for kind in KINDS:
        for n in range(len(FLAGS) + 1):
            for combo in itertools.combinations(FLAGS, n):
                out.append(kind + ("-" + "".join(combo) if combo else ""))
    return out


def build_model(options):  # -> SwapModel
    """Build the network an options object describes (options already validated)."""
    spec = parse_arch(options.arch)
    if spec.kind == "df":
        from facecast.train.archs.df import DF

        return DF(spec, options.resolution, options.ae_dims, options.e_dims, options.d_dims, options.d_mask_dims)
    from facecast.train.archs.liae import LIAE

    return LIAE(spec, options.resolution, options.ae_dims, options.e_dims, options.d_dims, options.d_mask_dims)
