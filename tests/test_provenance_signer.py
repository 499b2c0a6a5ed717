"""The signer `verify` reports names the workspace: two workspaces' outputs are told apart."""

from __future__ import annotations

import numpy as np

from facecast.media.images import write_image
from facecast.provenance import sign_output
from facecast.provenance.keys import signer_name
from facecast.provenance.verify import verify
from facecast.workspace import Workspace


def test_signer_differs_per_workspace(tmp_path):
    img = np.full((48, 64, 3), 128, np.uint8)
    signers = []
    for name in ("a", "b"):
        ws = Workspace.open(tmp_path / name, create=True)
        path = tmp_path / f"{name}.png"
        write_image(path, img)
        sign_output(ws, path)
        rep = verify(path, ws)
        assert rep.manifest.valid and rep.manifest.signer == signer_name(ws.id)
        assert ws.id[:16] in rep.manifest.signer
        signers.append(rep.manifest.signer)
    assert signers[0] != signers[1]
