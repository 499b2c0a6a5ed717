"""Face types that agree: extract's default is what the presets train, and a wider faceset trains a
narrower model (cropped at load) instead of being refused."""

from __future__ import annotations

import numpy as np
import pytest

from facecast.errors import FacecastError
from facecast.faces.align import align_face
from facecast.faces.extract import ExtractSettings
from facecast.faces.facetype import FACE_TYPES, convert_matrix, covers
from facecast.media.synth import sample_photo
from facecast.train.options import preset
from facecast.train.samples import load_faceset
from facecast.train.testdata import make_faceset


def test_extract_default_is_what_the_presets_train():
    import inspect

    from facecast.faces import cli as faces_cli
    from facecast.faces.extract import extract

    assert ExtractSettings.__dataclass_fields__["face_type"].default == "whole_face"
    assert inspect.signature(extract).parameters["face_type"].default == "whole_face"
    assert '"whole_face"' in inspect.getsource(faces_cli)  # the CLI default of --face-type
    for name in ("saehd", "tiny"):
        assert preset(name).face_type == "whole_face"
    for name in ("cpu", "quick96"):  # narrower crops, cut from the default faceset when it loads
        assert covers("whole_face", preset(name).face_type)


def test_covers_is_containment():
    assert covers("whole_face", "full") and covers("head", "whole_face") and covers("full", "half")
    assert not covers("full", "whole_face") and not covers("whole_face", "head")
    for name in FACE_TYPES:
        assert covers(name, name)


@pytest.mark.parametrize("wide,narrow", [("whole_face", "full"), ("head", "whole_face"), ("head", "full")])
def test_convert_matrix_equals_aligning_directly(wide, narrow):
    image, lm = sample_photo("einstein")
    big, _, lm_big = align_face(image, lm, wide, 256)
    direct, _, lm_direct = align_face(image, lm, narrow, 64)
    mat = convert_matrix(wide, 256, narrow, 64)
    moved = lm_big @ mat[:, :2].T + mat[:, 2]
    assert np.abs(moved - lm_direct).max() < 1e-6
    import cv2

    cropped = cv2.warpAffine(big, mat, (64, 64), flags=cv2.INTER_AREA)
    diff = np.abs(cropped.astype(float) - direct.astype(float))[8:-8, 8:-8].mean()
    assert diff < 12, diff  # the same pixels, up to resampling


def test_wider_faceset_trains_a_narrower_model(tmp_path):
    make_faceset(tmp_path / "wf", "einstein", 3, face_type="whole_face", size=96)
    make_faceset(tmp_path / "full", "einstein", 3, face_type="full", size=48)
    full_model = preset("tiny").with_overrides(dict(resolution=32, face_type="full"))
    converted = load_faceset(tmp_path / "wf", full_model)
    direct = load_faceset(tmp_path / "full", full_model)
    assert converted.images.shape == direct.images.shape == (3, 32, 32, 3)
    # same photo, same frames, same face region: the hull masks agree closely
    iou = (np.minimum(converted.masks, direct.masks).sum() / np.maximum(converted.masks, direct.masks).sum())
    assert iou > 0.85, iou


def test_narrower_faceset_is_refused_with_the_fix(tmp_path):
    make_faceset(tmp_path / "full", "einstein", 2, face_type="full", size=48)
    wf_model = preset("tiny").with_overrides(dict(resolution=32))
    with pytest.raises(FacecastError, match="--face-type whole_face"):
        load_faceset(tmp_path / "full", wf_model)
