"""By-products that show synthetic faces carry the invisible watermark (issue 13, bypass 5)."""

from __future__ import annotations

import numpy as np

from facecast.faces.aligned import list_aligned, read_aligned
from facecast.media.images import read_image
from facecast.provenance import workspace_payload
from facecast.provenance.watermark import detect
from facecast.train.previews import EvalBatch, write_preview
from facecast.train.testdata import make_faceset


def _batch(tmp_path, size=64, n=4):
    make_faceset(tmp_path / "faces", "einstein", n, size=size)
    faces = np.stack([read_aligned(p).image for p in list_aligned(tmp_path / "faces")])
    swap = np.ascontiguousarray(faces[:, :, ::-1])
    return EvalBatch(faces, faces, faces, faces, swap, iteration=7)


def test_training_preview_and_history_are_watermarked(workspace, tmp_path):
    batch = _batch(tmp_path)
    model_dir = workspace.model("m")
    model_dir.mkdir(parents=True)
    write_preview(model_dir, True, batch)
    for path in (model_dir / "previews" / "preview.png", model_dir / "previews" / "history" / "00000007.png"):
        img = read_image(path)
        det = detect(img)
        assert det.found and det.crc_ok and det.payload == workspace_payload(workspace), (path, det)
    # the grid is the faces plus only an invisible change
    grid = read_image(model_dir / "previews" / "preview.png").astype(np.float64)
    raw = np.concatenate([np.concatenate([batch.src[i], batch.src_recon[i], batch.dst[i], batch.dst_recon[i],
                                          batch.swap[i]], 1) for i in range(len(batch.src))], 0).astype(np.float64)
    mse = np.mean((grid - raw) ** 2)
    assert 0 < mse and 10 * np.log10(255 ** 2 / mse) > 35


def test_unwatermarked_grid_is_not_detected(tmp_path):
    """The detector is not fooled by the faces themselves (so the test above can fail)."""
    batch = _batch(tmp_path)
    raw = np.concatenate([np.concatenate([batch.src[i], batch.swap[i]] * 2 + [batch.dst[i]], 1)
                          for i in range(len(batch.src))], 0)
    det = detect(raw)
    assert not det.found and not det.crc_ok
