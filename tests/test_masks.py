"""Label polygons, LabelMe exchange, synthetic occluders and the label commands (no training here)."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from facecast.errors import FacecastError
from facecast.faces.align import align_face
from facecast.faces.aligned import list_aligned, read_meta
from facecast.imaging.hull import hull_mask
from facecast.masks.labels import labels_export, labels_fetch, labels_import, labels_list
from facecast.masks.occluders import KINDS, OccluderSettings, default_pool, occlude, shape_mask
from facecast.masks.polygons import from_labelme, mask_to_polygons, rasterize, to_labelme, validate_polygons
from facecast.masks.synthfaces import write_faceset
from tests.conftest import run_cli

SQUARE = [[10, 10], [50, 10], [50, 50], [10, 50]]
INNER = [[20, 20], [40, 20], [40, 40], [20, 40]]


def iou(a, b):
    a, b = a > 0.5, b > 0.5
    return (a & b).sum() / max(1, (a | b).sum())


def test_rasterize_paints_in_order():
    m = rasterize([{"type": "include", "points": SQUARE}, {"type": "exclude", "points": INNER}], 64)
    assert m.dtype == np.float32 and m.shape == (64, 64)
    assert m[15, 15] == 1 and m[30, 30] == 0 and m[5, 5] == 0
    # an include drawn after the exclude puts the hole back (DeepFaceLab's order semantics)
    m2 = rasterize([{"type": "include", "points": SQUARE}, {"type": "exclude", "points": INNER},
                    {"type": "include", "points": INNER}], 64)
    assert m2[30, 30] == 1
    assert abs(m.sum() - (41 * 41 - 21 * 21)) < 60


def test_mask_to_polygons_round_trip(einstein):
    img, lm = einstein
    _, _, alm = align_face(img, lm, "whole_face", 128)
    mask = hull_mask(alm, 128, forehead=0.3)
    mask[50:70, 30:90] = 0  # a bar through the face: two include pieces or a hole
    polys = mask_to_polygons(mask)
    assert {p["type"] for p in polys} <= {"include", "exclude"}
    assert iou(rasterize(polys, 128), mask) > 0.97


def test_labelme_round_trip_and_rescale():
    polys = validate_polygons([{"type": "include", "points": SQUARE}, {"type": "exclude", "points": INNER}])
    doc = json.loads(json.dumps(to_labelme(polys, "00001_0.jpg", 64)))
    assert doc["shapes"][0]["label"] == "face" and doc["shapes"][1]["label"] == "exclude"
    assert doc["shapes"][0]["shape_type"] == "polygon" and doc["imageWidth"] == 64
    assert from_labelme(doc, "x.json", 64) == polys
    # labelled on a 2x copy: points come back at the face's own size
    doc["imageWidth"] = doc["imageHeight"] = 128
    back = from_labelme(doc, "x.json", 64)
    assert back[0]["points"][1] == [25.0, 5.0]
    # CVAT-style labels are accepted too
    doc["shapes"][1]["label"] = "Obstruction"
    assert from_labelme(doc, "x.json", 128)[1]["type"] == "exclude"


@pytest.mark.parametrize(
    "doc, words",
    [
        ({"shapes": [{"label": "hand", "points": SQUARE, "shape_type": "polygon"}]}, "label 'hand'"),
        ({"shapes": [{"label": "face", "points": SQUARE[:2], "shape_type": "polygon"}]}, "at least 3"),
        ({"shapes": [{"label": "face", "points": SQUARE, "shape_type": "rectangle"}]}, "only polygons"),
        ({"nothing": 1}, "not a LabelMe file"),
    ],
)
def test_labelme_bad_documents(doc, words):
    with pytest.raises(FacecastError, match=words):
        from_labelme(doc, "bad.json", 64)


def test_occluder_shapes_and_masks(einstein):
    img, lm = einstein
    face, _, alm = align_face(img, lm, "whole_face", 128)
    hull = (hull_mask(alm, 128, forehead=0.3) > 0.5).astype(np.float32)
    rng = np.random.default_rng(3)
    for kind in KINDS:
        m = shape_mask(kind, (128, 128), np.array([64.0, 64.0]), 50, rng, np.array([64.0, 70.0]))
        assert m.dtype == np.uint8 and m[64, 64] == 255, kind
        assert 0.01 < (m > 127).mean() < 0.9, kind
    seen = set()
    for seed in range(12):
        o = occlude(face, hull, np.random.default_rng(seed), settings=OccluderSettings(), force=True)
        seen.update(o.kinds)
        assert o.kinds and o.image.shape == face.shape and o.image.dtype == np.uint8
        # target is exactly the face minus the occluder
        assert np.array_equal(o.target > 0.5, (hull > 0.5) & ~(o.occluder > 0.5))
        # the occluder hides part of the face, not all of it
        assert 0.01 < ((o.occluder > 0.5) & (hull > 0.5)).sum() / hull.sum() < 0.9
        # pixels far from any occluder are untouched; pixels under it changed
        far = cv2.dilate(o.occluder, np.ones((7, 7), np.uint8)) < 0.5
        assert np.array_equal(o.image[far], face[far])
        changed = np.abs(o.image.astype(int) - face.astype(int)).sum(2) > 0
        assert changed[o.occluder > 0.5].mean() > 0.5
    assert len(seen) >= 3
    # without force, some faces stay clean (probability < 1)
    clean = sum(not occlude(face, hull, np.random.default_rng(s)).kinds for s in range(40))
    assert 0 < clean < 20


def test_texture_pool_has_real_textures_and_skin():
    pool = default_pool()
    assert len(pool.textures) >= 10 and len(pool.skin) >= 2
    patch = pool.sample(np.random.default_rng(0), 40, 30, skin=True)
    assert patch.shape == (30, 40, 3) and patch.std() > 1


@pytest.fixture()
def labelled_ws(workspace):
    write_faceset(workspace.aligned("dst"), 6, size=64, seed=5, labelled=3)
    return workspace


def test_labels_labelme_export_import_round_trip(labelled_ws, tmp_path):
    ws = labelled_ws
    before = {p.name: read_meta(p).mask_polygons for p in list_aligned(ws.aligned("dst"))}
    assert sum(bool(v) for v in before.values()) == 3
    out = tmp_path / "lm"
    res = labels_export(ws, "dst", "labelme", out)
    assert res["exported"] == 6 and res["labelled"] == 3
    assert len(list(out.glob("*.json"))) == 6 and len(list(out.glob("*.jpg"))) == 6
    # the user labels an unlabelled face in LabelMe and deletes the labels of another
    names = sorted(before)
    doc = json.loads((out / names[4].replace(".jpg", ".json")).read_text())
    doc["shapes"] = [{"label": "face", "points": [[5, 5], [60, 5], [60, 60], [5, 60]], "shape_type": "polygon"}]
    (out / names[4].replace(".jpg", ".json")).write_text(json.dumps(doc))
    doc = json.loads((out / names[0].replace(".jpg", ".json")).read_text())
    doc["shapes"] = []
    (out / names[0].replace(".jpg", ".json")).write_text(json.dumps(doc))
    res = labels_import(ws, "dst", "labelme", out)
    assert res["changed"] == 2 and res["labelled"] == 3
    after = {p.name: read_meta(p).mask_polygons for p in list_aligned(ws.aligned("dst"))}
    assert after[names[0]] is None
    assert after[names[1]] == before[names[1]]
    assert after[names[4]][0]["points"][1] == [60.0, 5.0]
    listing = labels_list(ws, "dst")
    assert listing["labelled"] == 3 and names[4] in listing["labelled_faces"]
    fetched = labels_fetch(ws, "dst", tmp_path / "fetched")
    assert fetched["copied"] == 3 and len(list((tmp_path / "fetched").iterdir())) == 3


def test_labels_facecast_round_trip(labelled_ws, tmp_path):
    ws = labelled_ws
    labels_export(ws, "dst", "facecast", tmp_path / "fc")
    before = {p.name: read_meta(p).mask_polygons for p in list_aligned(ws.aligned("dst"))}
    # wipe and restore
    from facecast.faces.aligned import update_meta

    for p in list_aligned(ws.aligned("dst")):
        meta = read_meta(p)
        meta.mask_polygons = None
        update_meta(p, meta)
    res = labels_import(ws, "dst", "facecast", tmp_path / "fc")
    assert res["labelled"] == 3
    assert {p.name: read_meta(p).mask_polygons for p in list_aligned(ws.aligned("dst"))} == before


def test_corrupt_label_file_changes_nothing(labelled_ws, tmp_path):
    ws = labelled_ws
    out = tmp_path / "lm"
    labels_export(ws, "dst", "labelme", out)
    names = sorted(p.name for p in list_aligned(ws.aligned("dst")))
    # a valid edit in one file and a truncated (corrupt) second file
    good = out / names[3].replace(".jpg", ".json")
    doc = json.loads(good.read_text())
    doc["shapes"] = [{"label": "face", "points": [[5, 5], [60, 5], [60, 60]], "shape_type": "polygon"}]
    good.write_text(json.dumps(doc))
    bad = out / names[5].replace(".jpg", ".json")
    bad.write_text(bad.read_text()[:40])
    before = [p.read_bytes() for p in list_aligned(ws.aligned("dst"))]
    with pytest.raises(FacecastError, match="corrupt label file"):
        labels_import(ws, "dst", "labelme", out)
    assert [p.read_bytes() for p in list_aligned(ws.aligned("dst"))] == before
    code, _, err = run_cli("xseg", "labels", "import", "-w", str(ws.root), "dst", "--from", str(out))
    assert code == 2 and "corrupt label file" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_label_for_unknown_face_is_refused(labelled_ws, tmp_path):
    doc = to_labelme([{"type": "include", "points": SQUARE}], "nobody.jpg", 64)
    (tmp_path / "nobody.json").write_text(json.dumps(doc))
    with pytest.raises(FacecastError, match="no aligned face named nobody"):
        labels_import(labelled_ws, "dst", "labelme", tmp_path)
