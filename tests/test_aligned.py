import numpy as np
import pytest

from facecast.errors import FacecastError
from facecast.faces.align import align_face, invert, transform_points, umeyama
from facecast.faces.aligned import (
    AlignedMeta,
    SourceInfo,
    read_aligned,
    read_meta,
    update_meta,
    write_aligned,
)
from facecast.faces.facetype import FACE_TYPES, MEAN_FACE_68, MIRROR_68, template_landmarks


def _meta(lm_face, lm_src, mat, size=128):
    return AlignedMeta(
        face_type="full",
        size=size,
        landmarks=lm_face.tolist(),
        source=SourceInfo("frame_000001.png", (817, 1024), (1.0, 2.0, 3.0, 4.0), lm_src.tolist()),
        image_to_face=mat.tolist(),
        identity=3,
        detector={"name": "test"},
    )


def test_umeyama_recovers_similarity():
    rng = np.random.default_rng(0)
    pts = rng.uniform(0, 100, (30, 2))
    ang, s, t = 0.3, 1.7, np.array([5.0, -3.0])
    rot = np.array([[np.cos(ang), -np.sin(ang)], [np.sin(ang), np.cos(ang)]])
    moved = pts @ (s * rot).T + t
    mat = umeyama(pts, moved)
    assert np.allclose(mat[:, :2], s * rot, atol=1e-9)
    assert np.allclose(mat[:, 2], t, atol=1e-9)


def test_mean_face_is_symmetric_and_mirror_is_an_involution():
    mirrored = MEAN_FACE_68.copy()
    mirrored[:, 0] = 1.0 - mirrored[:, 0]
    assert np.allclose(mirrored[MIRROR_68], MEAN_FACE_68, atol=1e-3)
    assert [MIRROR_68[i] for i in MIRROR_68] == list(range(68))


@pytest.mark.parametrize("face_type", list(FACE_TYPES))
def test_alignment_round_trip_on_real_photo(einstein, face_type):
    img, lm = einstein
    face, mat, lm_face = align_face(img, lm, face_type, 256)
    assert face.shape[:2] == (256, 256)
    back = transform_points(lm_face, invert(mat))
    assert np.abs(back - lm).max() < 1e-6
    # aligned inner landmarks sit near the template (real face vs mean face: a few pixels)
    err = np.linalg.norm(lm_face[17:] - template_landmarks(face_type, 256)[17:], axis=1).mean()
    assert err < 256 * 0.05


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_metadata_round_trip(tmp_path, einstein, suffix):
    img, lm = einstein
    face, mat, lm_face = align_face(img, lm, "full", 128)
    meta = _meta(lm_face, lm, mat)
    mask = np.zeros((128, 128), np.float32)
    mask[20:100, 30:90] = 1.0
    meta.set_xseg_mask(mask)
    path = tmp_path / f"face{suffix}"
    write_aligned(path, face, meta)
    got = read_aligned(path)
    assert got.image.shape == (128, 128, 3)
    assert got.meta.identity == 3
    assert np.allclose(got.meta.landmarks_array, lm_face)
    assert np.allclose(got.meta.matrix, mat)
    assert np.array_equal(got.meta.get_xseg_mask() > 0.5, mask > 0.5)
    # updating metadata keeps pixels byte-identical
    before = got.image.copy()
    got.meta.identity = 7
    update_meta(path, got.meta)
    assert read_meta(path).identity == 7
    assert np.array_equal(read_aligned(path).image, before)


def test_large_metadata_spans_several_jpeg_segments(tmp_path, einstein):
    img, lm = einstein
    face, mat, lm_face = align_face(img, lm, "full", 64)
    meta = _meta(lm_face, lm, mat, 64)
    meta.extra["blob"] = "x" * 200_000
    write_aligned(tmp_path / "big.jpg", face, meta)
    assert len(read_meta(tmp_path / "big.jpg").extra["blob"]) == 200_000


def test_plain_image_gives_one_clear_error(tmp_path, einstein):
    from facecast.media.images import write_image

    write_image(tmp_path / "plain.jpg", einstein[0])
    with pytest.raises(FacecastError, match="plain.jpg: not a facecast aligned face.*facecast extract"):
        read_meta(tmp_path / "plain.jpg")
    (tmp_path / "junk.jpg").write_bytes(b"\xff\xd8garbage")
    with pytest.raises(FacecastError, match="junk.jpg"):
        read_aligned(tmp_path / "junk.jpg")
