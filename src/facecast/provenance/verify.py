"""`facecast verify FILE`: is this file facecast output? Reports both labels.

Why both: the C2PA manifest is precise (who signed, which model, which consent) but any re-encode or
even a remux drops it; the watermark survives re-encoding, scaling, cropping, mirroring and small
rotations but only says "a facecast mark, workspace tag X". A file counts as labelled when either is
found (exit 0), else exit 1.

The watermark has three honest verdicts (watermark.Detection.verdict):
  - labelled: the mark is present and its payload decoded with a passing CRC-16 (the tag is shown);
  - mark present, payload unreadable: the pilot is there (false-alarm rate <= 1e-4 per clip, measured
    by bench/watermark_fp.py) but the payload failed its check: no payload is ever shown then;
  - no mark.

What each label proves (also in README, "Responsible use"): the watermark key is public, so anyone can
detect the mark and anyone can also *write* it, e.g. stamp a real photo so it reads as synthetic, or
copy another workspace's tag. The watermark is a soft binding: "these pixels carry a facecast mark".
The signed C2PA manifest is the authenticated claim: who signed (the workspace's certificate), which
model, which consent records; `verify` prints which of the two it is relying on.

Videos are decoded with PyAV and pooled (watermark.Pooler) at 25, 50, 100 and 150 frames, stopping at
the first window whose payload passes its CRC: H.264 at CRF 28 needs >= 25 pooled frames.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from facecast.errors import FacecastError
from facecast.provenance import watermark as wm
from facecast.provenance.c2pa import ManifestStatus, read_manifest, workspace_tag

VIDEO_SUFFIXES = (".mp4", ".mov", ".m4v", ".mkv", ".avi", ".webm")
CHECKPOINTS = (wm.POOL_FRAMES, 2 * wm.POOL_FRAMES, 4 * wm.POOL_FRAMES, 6 * wm.POOL_FRAMES)


@dataclass
class VerifyReport:
    path: str
    kind: str  # image / video
    manifest: ManifestStatus
    watermark: wm.Detection
    workspace_match: bool | None = None  # payload equals this workspace's tag (when -w given)
    anchor: str | None = None  # what the signature was checked against (the -w workspace's CA)

    @property
    def labelled(self) -> bool:
        return (self.manifest.present and self.manifest.valid) or self.watermark.found

    def labelled_text(self) -> str:
        if self.manifest.present and self.manifest.valid:
            return "yes (signed manifest: the authenticated claim)"
        if self.watermark.found:
            return "yes, by the watermark only (a soft binding: anyone with facecast can write it)"
        return "NO (no manifest, no watermark)"

    def watermark_text(self) -> str:
        """One line for the watermark verdict; a payload is shown only when its CRC passed."""
        w = self.watermark
        geo = []
        if w.mirrored:
            geo.append("mirrored")
        if abs(w.rotation) >= 0.3:
            geo.append(f"rotated {w.rotation:+.1f} deg")
        if abs(w.period / wm.TILE - 1) >= 0.02:
            geo.append(f"scaled {w.period / wm.TILE:.2f}x")
        where = f", confidence {w.confidence:.1f} (threshold {wm.THRESHOLD}), {w.frames} frame(s)"
        if w.verdict == wm.VERDICT_NONE or not geo:
            pass  # the geometry of the best guess when nothing was found is noise: saying it reads like a find
        else:
            where += f", found {', '.join(geo)}"
        if w.verdict == wm.VERDICT_LABELLED:
            return f"labelled: payload {w.payload.hex()} (CRC ok){where}"
        if w.verdict == wm.VERDICT_UNREADABLE:
            return f"mark present, payload unreadable (CRC failed; not shown){where}"
        return f"no mark{where}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "kind": self.kind,
            "labelled": self.labelled,
            "c2pa": c2pa_line(self.manifest, self.anchor),
            "manifest": self.manifest.to_dict(),
            "watermark": self.watermark.to_dict(),
            "watermark_binding": "soft: public key, anyone can write the mark; the signed manifest is the authenticated claim",
            "workspace_match": self.workspace_match,
        }


def trust_anchor(ws) -> str | None:
    """How the trust anchor is named in every provenance line: the CA of the workspace given."""
    return f"the CA of workspace {ws.root}" if ws is not None else None


def c2pa_line(m: ManifestStatus, anchor: str | None) -> str:
    """The one wording of a C2PA verdict: valid or not, signed by which workspace (and for which model),
    trusted against which anchor. `verify`, the demo summary and the README all say it this way."""
    if not m.present:
        if m.state == "unsupported":
            return "none: this container cannot carry a C2PA manifest (the watermark labels it)"
        return "absent (re-encoded, remuxed or never signed)"
    if not m.valid:
        return f"INVALID ({', '.join(m.failures) or m.state}): the file changed after it was signed"
    ws_tag = m.claims.get("workspace")
    line = f"valid, signed by workspace {ws_tag}" if ws_tag else "valid, signed outside a workspace"
    if m.signer:
        line += f" ({m.signer})"
    model = m.claims.get("model")
    line += f", model {model}" if model else ", no model named"
    if m.trusted:
        return line + f"; trusted against {anchor or 'a configured anchor'}"
    if anchor:
        return line + f"; NOT trusted against {anchor} (signed by another key)"
    return line + "; trust not checked (give -w WORKSPACE to trust its CA)"


def _video_watermark(path: Path, max_frames: int) -> wm.Detection:
    import av

    pooler = wm.Pooler()
    windows: list[wm.Detection] = []
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise FacecastError(f"{path}: has no video stream")
            for frame in container.decode(video=0):
                pooler.add(frame.to_ndarray(format="rgb24"))
                if pooler.n in CHECKPOINTS or pooler.n >= max_frames:
                    windows.append(pooler.detect())
                    if windows[-1].crc_ok or pooler.n >= max_frames:
                        return windows[-1]
    except av.error.FFmpegError as err:
        raise FacecastError(f"{path}: not a readable video ({err})") from None
    if pooler.n == 0:
        raise FacecastError(f"{path}: the video has no frames")
    if not windows or windows[-1].frames != pooler.n:
        windows.append(pooler.detect())
    # no window's payload checked: report the strongest (the threshold allows for these <= 4 looks)
    return max(windows, key=lambda d: d.confidence)


def verify(path: str | Path, ws=None, max_frames: int = CHECKPOINTS[-1]) -> VerifyReport:
    """Report the manifest and the watermark of an image or a video."""
    path = Path(path)
    if not path.is_file():
        raise FacecastError(f"{path}: file not found")
    manifest = read_manifest(path, ws)
    if path.suffix.lower() in VIDEO_SUFFIXES:
        kind, det = "video", _video_watermark(path, max_frames)
    else:
        from facecast.media.images import read_image

        kind, det = "image", wm.detect([read_image(path)])
    match = None
    if ws is not None and det.payload is not None:
        match = det.crc_ok and det.payload.hex() == workspace_tag(ws.id)
    return VerifyReport(str(path), kind, manifest, det, match, trust_anchor(ws))
