"""The workspace folder: DeepFaceLab's names, so its users feel at home.

    workspace/
      data_src.mp4  data_dst.mp4          optional inputs
      data_src/  data_src/aligned/
      data_dst/  data_dst/aligned/  data_dst/aligned_debug/  data_dst/merged/  data_dst/merged_mask/
      model/<name>/
      consent/<identity>.json
      result.mp4

Every command takes `--workspace/-w` and derives its default paths from here, so nobody types
`data_dst/aligned` by hand.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from facecast.errors import FacecastError

SIDES = ("src", "dst")
WORKSPACE_FILE = "workspace.json"


@dataclass(frozen=True)
class Workspace:
    root: Path

    @classmethod
    def open(cls, root: str | Path, create: bool = False) -> "Workspace":
        """Open a workspace; with `create`, make its folders. Missing folders are a user error."""
        ws = cls(Path(root).expanduser().resolve())
        if create:
            ws.init()
        elif not ws.root.is_dir():
            raise FacecastError(
                f"workspace {ws.root} does not exist: create it with `facecast workspace init {root}`"
            )
        elif not ws.looks_like_workspace():
            # e.g. `facecast extract src` run without -w in the home folder: `id` would otherwise turn the
            # folder into a workspace (consent/, data_*/, model/, workspace.json) before failing
            raise FacecastError(
                f"{ws.root} is not a facecast workspace (no {WORKSPACE_FILE}, data_src*, data_dst* or model/): "
                f"pass -w WS, or create one with `facecast workspace init {root}`"
            )
        return ws

    def looks_like_workspace(self) -> bool:
        """A facecast workspace, or a DeepFaceLab one (its folder names) that facecast can adopt."""
        names = (WORKSPACE_FILE, "data_src", "data_dst", "data_src.mp4", "data_dst.mp4", "model")
        return any((self.root / name).exists() for name in names)

    def init(self) -> "Workspace":
        for path in (
            self.data("src"),
            self.aligned("src"),
            self.data("dst"),
            self.aligned("dst"),
            self.aligned_debug,
            self.merged,
            self.merged_mask,
            self.models,
            self.consent_dir,
        ):
            try:
                path.mkdir(parents=True, exist_ok=True)
            except OSError as err:
                raise FacecastError(f"cannot create {path}: {err.strerror}") from None
        marker = self.root / WORKSPACE_FILE
        if not marker.exists():
            import uuid

            marker.write_text(json.dumps({"schema": "facecast.workspace/1", "id": uuid.uuid4().hex}))
        return self

    @property
    def id(self) -> str:
        """A stable random id for this workspace (goes into watermark payloads and manifests)."""
        marker = self.root / WORKSPACE_FILE
        if not marker.exists():
            self.init()
        return json.loads(marker.read_text())["id"]

    @staticmethod
    def _side(side: str) -> str:
        if side not in SIDES:
            raise FacecastError(f"side must be 'src' or 'dst', not {side!r}")
        return side

    def video(self, side: str) -> Path:
        return self.root / f"data_{self._side(side)}.mp4"

    def data(self, side: str) -> Path:
        return self.root / f"data_{self._side(side)}"

    def aligned(self, side: str) -> Path:
        return self.data(side) / "aligned"

    @property
    def aligned_debug(self) -> Path:
        return self.data("dst") / "aligned_debug"

    @property
    def merged(self) -> Path:
        return self.data("dst") / "merged"

    @property
    def merged_mask(self) -> Path:
        return self.data("dst") / "merged_mask"

    @property
    def models(self) -> Path:
        return self.root / "model"

    def model(self, name: str) -> Path:
        return self.models / name

    @property
    def consent_dir(self) -> Path:
        return self.root / "consent"

    @property
    def result(self) -> Path:
        return self.root / "result.mp4"
