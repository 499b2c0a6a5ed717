"""Faceset tools on crafted sets of real faces (bundled photos, rotated / blurred / relit / recoloured)."""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import run_cli
from facecast.errors import FacecastError
from facecast.faces.align import align_face, transform_points, warp_to_face
from facecast.faces.aligned import AlignedMeta, SourceInfo, list_aligned, read_aligned, read_meta, write_aligned
from facecast.faces.facetype import MIRROR_68
from facecast.faceset import rename as rename_mod
from facecast.faceset.common import JOURNAL, proxy_pose
from facecast.faceset.dedup import DedupSettings, dedup
from facecast.faceset.pack import gate_face, info, merge, pack, read_index, resize, unpack
from facecast.faceset.rename import finish_pending, rename_all
from facecast.faceset.sort import SORT_METHODS, recover_names, sort_faceset

SIZE = 64


@pytest.fixture(scope="module")
def breakingbad():
    """The one colour photo (einstein and takeo are greyscale); its annotated face."""
    from facecast.media.synth import sample_photo

    return sample_photo("breakingbad")


def make_face(photo, *, angle=0.0, scale=1.0, flip=False, gain=1.0, hue=0, blur=0.0, motion=0, black=0.0,
              size=SIZE, source="frame_0001.png", face_index=0, pose=None):
    """An aligned face from a real photo after a frame-level transform and pixel-level edits."""
    img, lm = photo
    h, w = img.shape[:2]
    if flip:
        img, lm = img[:, ::-1].copy(), lm.copy()
        lm[:, 0] = w - 1 - lm[:, 0]
        lm = lm[MIRROR_68]
    m = cv2.getRotationMatrix2D(tuple(map(float, lm.mean(0))), angle, scale)
    frame = cv2.warpAffine(img, m, (w, h), borderMode=cv2.BORDER_REFLECT)
    lm = transform_points(lm, m)
    if hue:
        hsv = cv2.cvtColor(frame, cv2.COLOR_RGB2HSV_FULL)
        hsv[..., 0] = (hsv[..., 0].astype(int) + hue) % 256
        frame = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB_FULL)
    if gain != 1.0:
        frame = np.clip(frame.astype(np.float32) * gain, 0, 255).astype(np.uint8)
    face, mat, lm_face = align_face(frame, lm, "full", size)
    if blur:
        face = cv2.GaussianBlur(face, (0, 0), blur)
    if motion:
        k = np.zeros((motion, motion), np.float32)
        k[motion // 2, :] = 1.0 / motion
        face = cv2.filter2D(face, -1, k)
    if black:
        face = face.copy()
        face[:, : int(round(black * size))] = 0
    meta = AlignedMeta(
        face_type="full", size=size, landmarks=lm_face.tolist(),
        source=SourceInfo(source, (w, h), (0.0, 0.0, 10.0, 10.0), lm.tolist()),
        image_to_face=mat.tolist(), face_index=face_index,
        pose=pose if pose is not None else {"yaw": 0.0, "pitch": 0.0, "roll": 0.0},
        detector={"name": "test"},
    )
    return face, meta


def write_set(folder: Path, faces: dict[str, tuple], suffix: str = ".png") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, (img, meta) in faces.items():
        write_aligned(folder / f"{name}{suffix}", img, meta)


def order_of(folder: Path) -> list[str]:
    """Original names (stems) in current file order."""
    return [Path(read_meta(p).extra.get("original_name", p.name)).stem for p in list_aligned(folder)]


# -- sort ----------------------------------------------------------------------------------------------
def test_sort_blur_orders_progressively_blurred_copies(tmp_path, einstein):
    sigmas = {"c": 0.0, "e": 0.7, "a": 1.3, "d": 2.2, "b": 3.5}  # names deliberately not in blur order
    write_set(tmp_path / "f", {n: make_face(einstein, blur=s) for n, s in sigmas.items()})
    res = sort_faceset(tmp_path / "f", "blur")
    assert order_of(tmp_path / "f") == sorted(sigmas, key=sigmas.get)
    assert res.count == 5 and res.order[0].startswith("00000_")
    sort_faceset(tmp_path / "f", "blur", reverse=True)
    assert order_of(tmp_path / "f") == sorted(sigmas, key=sigmas.get)[::-1]


def test_sort_motion_blur(tmp_path, einstein):
    lengths = {"x": 1, "q": 3, "m": 5, "b": 9, "k": 15}
    write_set(tmp_path / "f", {n: make_face(einstein, motion=k) for n, k in lengths.items()})
    sort_faceset(tmp_path / "f", "motion-blur")
    assert order_of(tmp_path / "f") == sorted(lengths, key=lengths.get)


@pytest.mark.parametrize("key", ["yaw", "pitch"])
def test_sort_pose(tmp_path, takeo, key):
    values = {"a": 30.0, "b": -45.0, "c": 5.0, "d": -10.0, "e": 60.0}
    faces = {}
    for n, v in values.items():
        pose = {"yaw": 1.0, "pitch": 1.0, "roll": 0.0}
        pose[key] = v
        faces[n] = make_face(takeo, pose=pose)
    write_set(tmp_path / "f", faces)
    sort_faceset(tmp_path / "f", key)
    assert order_of(tmp_path / "f") == sorted(values, key=values.get)


def test_sort_hist_groups_similar_faces(tmp_path, einstein, breakingbad):
    faces = {}
    for i in range(3):  # interleaved names: e0 t0 e1 t1 ...
        faces[f"{i}a_e"] = make_face(einstein, angle=4 * i, gain=1.0 + 0.03 * i)
        faces[f"{i}b_t"] = make_face(breakingbad, angle=-4 * i, gain=1.0 - 0.03 * i)
    write_set(tmp_path / "f", faces)
    sort_faceset(tmp_path / "f", "hist")
    kinds = [n[-1] for n in order_of(tmp_path / "f")]
    assert kinds in (["e"] * 3 + ["t"] * 3, ["t"] * 3 + ["e"] * 3)


def test_sort_hist_dissim_puts_the_outlier_first(tmp_path, einstein, takeo):
    faces = {f"e{i}": make_face(einstein, angle=3 * i) for i in range(4)}
    faces["m_odd"] = make_face(takeo)
    write_set(tmp_path / "f", faces)
    sort_faceset(tmp_path / "f", "hist-dissim")
    assert order_of(tmp_path / "f")[0] == "m_odd"


def test_sort_brightness(tmp_path, takeo):
    gains = {"a": 0.6, "b": 1.2, "c": 0.9, "d": 0.75}
    write_set(tmp_path / "f", {n: make_face(takeo, gain=g) for n, g in gains.items()})
    sort_faceset(tmp_path / "f", "brightness")
    assert order_of(tmp_path / "f") == sorted(gains, key=gains.get, reverse=True)


def test_sort_hue(tmp_path, breakingbad):
    shifts = {"a": 40, "b": 0, "c": 60, "d": 20}  # HSV_FULL units (256 = full circle); a colour photo
    write_set(tmp_path / "f", {n: make_face(breakingbad, hue=s) for n, s in shifts.items()})
    sort_faceset(tmp_path / "f", "hue")
    assert order_of(tmp_path / "f") == sorted(shifts, key=shifts.get)


def test_sort_black(tmp_path, takeo):
    black = {"a": 0.3, "b": 0.0, "c": 0.5, "d": 0.1}
    write_set(tmp_path / "f", {n: make_face(takeo, black=f) for n, f in black.items()})
    sort_faceset(tmp_path / "f", "black")
    assert order_of(tmp_path / "f") == sorted(black, key=black.get)


def test_sort_origname_is_natural_order(tmp_path, takeo):
    srcs = {"a": ("frame_10.png", 0), "b": ("frame_2.png", 1), "c": ("frame_2.png", 0), "d": ("frame_1.png", 0)}
    write_set(tmp_path / "f", {n: make_face(takeo, source=s, face_index=i) for n, (s, i) in srcs.items()})
    sort_faceset(tmp_path / "f", "origname")
    assert order_of(tmp_path / "f") == ["d", "c", "b", "a"]


def test_sort_face_count(tmp_path, takeo):
    srcs = {"a": "f1.png", "b": "f3.png", "c": "f2.png", "d": "f3.png", "e": "f2.png", "g": "f3.png"}
    write_set(tmp_path / "f", {n: make_face(takeo, source=s) for n, s in srcs.items()})
    sort_faceset(tmp_path / "f", "face-count")
    got = order_of(tmp_path / "f")
    assert [srcs[n] for n in got] == ["f3.png"] * 3 + ["f2.png"] * 2 + ["f1.png"]


def test_sort_best_takes_the_sharpest_of_each_pose_first(tmp_path, einstein):
    faces = {}
    for yaw in (-60.0, 0.0, 60.0):
        for blur, tag in ((0.0, "sharp"), (2.0, "soft"), (3.5, "mush")):
            faces[f"{tag}_{int(yaw) + 100}"] = make_face(einstein, blur=blur, pose={"yaw": yaw, "pitch": 1.0, "roll": 0.0})
    write_set(tmp_path / "f", faces)
    sort_faceset(tmp_path / "f", "best")
    got = order_of(tmp_path / "f")
    assert set(got[:3]) == {"sharp_40", "sharp_100", "sharp_160"}  # one per pose cell, the sharpest
    assert {n.split("_")[0] for n in got[3:6]} == {"soft"}
    assert {n.split("_")[0] for n in got[6:]} == {"mush"}


def test_recover_names_reverses_any_number_of_sorts(tmp_path, einstein):
    names = ["frame_3_0", "frame_1_0", "frame_2_0", "frame_10_0"]
    write_set(tmp_path / "f", {n: make_face(einstein, blur=i * 0.8, source=f"{n}.png") for i, n in enumerate(names)}, ".jpg")
    before = {p.name: read_aligned(p).image.tobytes() for p in list_aligned(tmp_path / "f")}
    sort_faceset(tmp_path / "f", "blur", reverse=True)
    assert set(p.name for p in list_aligned(tmp_path / "f")) != set(before)
    sort_faceset(tmp_path / "f", "origname")
    res = recover_names(tmp_path / "f")
    after = {p.name: read_aligned(p).image.tobytes() for p in list_aligned(tmp_path / "f")}
    assert after == before  # names back, pixels untouched (metadata rewrite never re-encodes)
    assert res["renamed"] == 4
    assert not (tmp_path / "f" / JOURNAL).exists()


def test_rename_swap_and_crash_recovery(tmp_path, monkeypatch):
    folder = tmp_path / "r"
    folder.mkdir()
    for n in ("a.jpg", "b.jpg", "c.jpg"):
        (folder / n).write_bytes(n.encode())
    assert rename_all(folder, {"a.jpg": "b.jpg", "b.jpg": "c.jpg", "c.jpg": "a.jpg"}) == 3
    assert (folder / "b.jpg").read_bytes() == b"a.jpg" and (folder / "a.jpg").read_bytes() == b"c.jpg"

    real, calls = os.rename, []

    def flaky(src, dst):  # die on the 4th rename: phase A done, phase B half-way
        calls.append(src)
        if len(calls) == 4:
            raise OSError(5, "Input/output error")
        real(src, dst)

    monkeypatch.setattr(rename_mod.os, "rename", flaky)
    with pytest.raises(FacecastError, match="run the command again"):
        rename_all(folder, {"a.jpg": "b.jpg", "b.jpg": "c.jpg", "c.jpg": "a.jpg"})
    monkeypatch.setattr(rename_mod.os, "rename", real)
    assert (folder / JOURNAL).exists()
    assert finish_pending(folder)
    contents = {p.name: p.read_bytes() for p in folder.iterdir()}
    assert contents == {"a.jpg": b"b.jpg", "b.jpg": b"c.jpg", "c.jpg": b"a.jpg"}


def test_rename_refuses_to_overwrite_a_bystander(tmp_path):
    folder = tmp_path / "r"
    folder.mkdir()
    (folder / "a.jpg").write_bytes(b"a")
    (folder / "keep.jpg").write_bytes(b"k")
    with pytest.raises(FacecastError, match="keep.jpg already exists"):
        rename_all(folder, {"a.jpg": "keep.jpg"})
    assert (folder / "a.jpg").read_bytes() == b"a" and (folder / "keep.jpg").read_bytes() == b"k"


def test_sort_errors(tmp_path, takeo):
    write_set(tmp_path / "f", {"a": make_face(takeo)})
    with pytest.raises(FacecastError, match="unknown sort method 'sharpness'"):
        sort_faceset(tmp_path / "f", "sharpness")
    with pytest.raises(FacecastError, match="faceset folder not found"):
        sort_faceset(tmp_path / "nope", "blur")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FacecastError, match="no aligned faces to sort"):
        sort_faceset(tmp_path / "empty", "blur")
    cv2.imwrite(str(tmp_path / "f" / "plain.png"), np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(FacecastError, match="plain.png: not a facecast aligned face"):
        sort_faceset(tmp_path / "f", "yaw")
    assert (tmp_path / "f" / "a.png").exists()  # nothing renamed


def test_proxy_pose_flips_sign_with_a_mirrored_face(einstein):
    _, m1 = make_face(einstein)
    _, m2 = make_face(einstein, flip=True)
    (y1, p1), (y2, p2) = proxy_pose(m1.landmarks_array), proxy_pose(m2.landmarks_array)
    assert abs(y1 + y2) < 1.0 and abs(p1 - p2) < 1.0


# -- dedup ---------------------------------------------------------------------------------------------
def test_dedup_keeps_pose_coverage_and_moves_exact_copies(tmp_path, einstein, takeo):
    faces = {}
    yaws = np.linspace(-60, 60, 13)
    for i, yaw in enumerate(yaws):
        img, meta = make_face(einstein if i % 2 else takeo, angle=i * 2.0,
                              pose={"yaw": float(yaw), "pitch": 0.5, "roll": 0.0})
        img = img.copy()  # an occluder at a different place on each face keeps their hashes apart
        r, c = divmod(i // 2, 4)
        img[4 + r * 18 : 26 + r * 18, 4 + c * 14 : 26 + c * 14] = 255 if i % 4 < 2 else 0
        faces[f"f{i:02d}"] = (img, meta)
    for i in (2, 5, 9):  # exact copies under other names
        faces[f"copy{i}"] = faces[f"f{i:02d}"]
    write_set(tmp_path / "set", faces)
    write_set(tmp_path / "pose_only", faces)
    res = dedup(tmp_path / "set", settings=DedupSettings(target=5, hash_distance=2))
    assert len(res.duplicates) == 3 and len(res.thinned) == 8
    assert res.kept == 5 and len(list_aligned(tmp_path / "set")) == 5
    kept_yaw = [read_meta(p).pose["yaw"] for p in list_aligned(tmp_path / "set")]
    assert min(kept_yaw) == pytest.approx(-60) and max(kept_yaw) == pytest.approx(60)
    assert np.diff(sorted(kept_yaw)).max() <= 60  # pose + shape: no gap over half the range
    assert len(list_aligned(tmp_path / "set_removed")) == 16 - 5  # nothing deleted outright
    # pose alone (shape weight 0): farthest-point sampling spreads the five evenly, 30 degrees apart
    dedup(tmp_path / "pose_only", settings=DedupSettings(target=5, hash_distance=2, shape_weight=0.0))
    kept_yaw = sorted(read_meta(p).pose["yaw"] for p in list_aligned(tmp_path / "pose_only"))
    assert kept_yaw == pytest.approx([-60, -30, 0, 30, 60])
    with pytest.raises(FacecastError, match="--target must be at least 1"):
        dedup(tmp_path / "set", target=0)


def test_dedup_drops_near_duplicates_keeps_the_sharpest(tmp_path, einstein, takeo):
    faces = {
        "e_rot10": make_face(einstein, angle=10), "e_rot20": make_face(einstein, angle=20),
        "e_half": make_face(einstein, scale=0.5), "e_sharp": make_face(einstein),
        "e_soft": make_face(einstein, blur=1.0), "e_mirror": make_face(einstein, flip=True),
        "t": make_face(takeo),
    }
    write_set(tmp_path / "set", faces, ".jpg")
    res = dedup(tmp_path / "set")
    kept = sorted(p.stem for p in list_aligned(tmp_path / "set"))
    assert len(kept) == 3 and "t" in kept and "e_mirror" in kept
    assert res.kept == 3 and len(res.duplicates) == 4 and not res.thinned
    assert sorted(p.stem for p in list_aligned(tmp_path / "set_removed")) == sorted(set(faces) - set(kept))
    assert "e_soft" not in kept  # the blurred copy is never the one kept


# -- pack / unpack / merge / info / resize -------------------------------------------------------------
def test_pack_unpack_round_trip_is_byte_identical(tmp_path, einstein, takeo):
    write_set(tmp_path / "f", {"a": make_face(einstein), "b": make_face(takeo, angle=10)}, ".jpg")
    write_set(tmp_path / "f", {"c": make_face(takeo, gain=0.8)}, ".png")
    for p in list_aligned(tmp_path / "f"):  # faces that already passed the gate (as extract writes them)
        p.write_bytes(gate_face(p.read_bytes(), p.name))
    res = pack(tmp_path / "f", tmp_path / "f.fcset")
    assert res["faces"] == 3
    index = read_index(tmp_path / "f.fcset")
    assert [f["name"] for f in index["faces"]] == ["a.jpg", "b.jpg", "c.png"]
    assert index["faces"][0]["meta"]["face_type"] == "full"
    unpack(tmp_path / "f.fcset", tmp_path / "g")
    for p in list_aligned(tmp_path / "f"):
        assert (tmp_path / "g" / p.name).read_bytes() == p.read_bytes()
    pack(tmp_path / "f", tmp_path / "again.fcset")  # deterministic
    assert (tmp_path / "again.fcset").read_bytes() == (tmp_path / "f.fcset").read_bytes()
    summary = info(tmp_path / "f.fcset")
    assert summary["faces"] == 3 and summary["face_types"] == {"full": 3}


def test_unpack_refuses_crafted_names_and_damage(tmp_path, takeo):
    write_set(tmp_path / "f", {"a": make_face(takeo)}, ".jpg")
    pack(tmp_path / "f", tmp_path / "ok.fcset")
    index = read_index(tmp_path / "ok.fcset")
    data = (tmp_path / "f" / "a.jpg").read_bytes()
    index["faces"][0]["name"] = "../evil.jpg"
    with zipfile.ZipFile(tmp_path / "evil.fcset", "w") as zf:
        zf.writestr("faceset.json", json.dumps(index))
        zf.writestr("../evil.jpg", data)
    with pytest.raises(FacecastError, match="refusing member '../evil.jpg'"):
        unpack(tmp_path / "evil.fcset", tmp_path / "out")
    assert not (tmp_path / "evil.jpg").exists()
    index["faces"][0]["name"] = "a.jpg"
    with zipfile.ZipFile(tmp_path / "bad.fcset", "w") as zf:
        zf.writestr("faceset.json", json.dumps(index))
        zf.writestr("a.jpg", data[:-10] + b"0123456789")
    with pytest.raises(FacecastError, match="checksum of a.jpg does not match"):
        unpack(tmp_path / "bad.fcset", tmp_path / "out")
    (tmp_path / "junk.fcset").write_bytes(b"not a zip")
    with pytest.raises(FacecastError, match="not a facecast faceset pack"):
        unpack(tmp_path / "junk.fcset", tmp_path / "out")
    with pytest.raises(FacecastError, match="no aligned faces to pack"):
        (tmp_path / "empty").mkdir()
        pack(tmp_path / "empty", tmp_path / "e.fcset")


def test_merge_renames_on_collision_and_keeps_metadata(tmp_path, einstein, takeo):
    write_set(tmp_path / "a", {"00000": make_face(einstein, source="ein.png"), "same": make_face(takeo)}, ".jpg")
    write_set(tmp_path / "b", {"00000": make_face(takeo, source="tak.png")}, ".jpg")
    (tmp_path / "b" / "same.jpg").write_bytes((tmp_path / "a" / "same.jpg").read_bytes())
    pack(tmp_path / "b", tmp_path / "b.fcset")
    res = merge(tmp_path / "a", tmp_path / "b.fcset", tmp_path / "c")
    assert res == {"folder": str(tmp_path / "c"), "added": 3, "renamed_on_collision": 1, "identical_skipped": 1}
    names = sorted(p.name for p in list_aligned(tmp_path / "c"))
    assert names == ["00000.jpg", "00000_1.jpg", "same.jpg"]
    assert read_meta(tmp_path / "c" / "00000.jpg").source.filename == "ein.png"
    assert read_meta(tmp_path / "c" / "00000_1.jpg").source.filename == "tak.png"
    with pytest.raises(FacecastError, match="must be a new folder"):
        merge(tmp_path / "a", tmp_path / "b", tmp_path / "a")
    with pytest.raises(FacecastError, match="faceset not found"):
        merge(tmp_path / "a", tmp_path / "zzz", tmp_path / "d")


def test_resize_keeps_landmarks_matrix_and_masks_consistent(tmp_path, einstein):
    img, lm = einstein
    face, meta = make_face(einstein, size=128)
    meta.mask_polygons = [{"type": "include", "points": [[10, 10], [100, 12], [60, 110]]}]
    xseg = np.zeros((128, 128), np.uint8)
    xseg[32:96, 40:90] = 255
    meta.set_xseg_mask(xseg)
    write_aligned(tmp_path / "f" / "a.png", face, meta)
    res = resize(tmp_path / "f", 64)
    assert res["resized"] == 1
    small = read_aligned(tmp_path / "f" / "a.png")
    m = small.meta
    assert m.size == 64 and small.image.shape[:2] == (64, 64)
    # the new matrix still takes the frame landmarks onto the new aligned landmarks
    assert np.abs(transform_points(m.source_landmarks, m.matrix) - m.landmarks_array).max() < 1e-6
    # and re-warping the frame with it reproduces the resized pixels
    rewarped = warp_to_face(img, m.matrix, 64).astype(np.float32)
    assert np.abs(rewarped - small.image.astype(np.float32)).mean() < 6.0
    assert np.allclose(m.mask_polygons[0]["points"][0], [(10 + 0.5) / 2 - 0.5] * 2)
    mask = m.get_xseg_mask()
    assert mask.shape == (64, 64) and mask[16:48, 20:45].mean() > 0.95 and mask[:10].max() < 0.05
    with pytest.raises(FacecastError, match="--size must be between 16 and 4096"):
        resize(tmp_path / "f", 4)


def test_info_of_one_face(tmp_path, takeo):
    face, meta = make_face(takeo, source="clip_0042.png", pose={"yaw": 12.5, "pitch": -3.0, "roll": 1.0})
    write_aligned(tmp_path / "x.jpg", face, meta)
    got = info(tmp_path / "x.jpg")
    assert got["source"] == "clip_0042.png" and got["pose"]["yaw"] == 12.5 and got["size"] == SIZE
    with pytest.raises(FacecastError, match="file not found"):
        info(tmp_path / "missing.jpg")


# -- CLI -----------------------------------------------------------------------------------------------
def test_cli_sort_and_recover_on_workspace(workspace, einstein):
    folder = workspace.aligned("dst")
    write_set(folder, {n: make_face(einstein, blur=s) for n, s in {"b": 2.0, "a": 0.0, "c": 1.0}.items()})
    code, out, err = run_cli("faceset", "sort", "dst", "--by", "blur", "-w", str(workspace.root), "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["faces"] == 3 and data["first"][0] == "00000_a.png"
    code, out, err = run_cli("faceset", "recover-names", str(folder), "--json")
    assert code == 0 and json.loads(out)["renamed"] == 3
    assert sorted(p.name for p in list_aligned(folder)) == ["a.png", "b.png", "c.png"]
    code, out, err = run_cli("faceset", "sort", "dst", "--by", "nonsense", "-w", str(workspace.root))
    assert code == 2 and "unknown sort method 'nonsense'" in err and "Traceback" not in err
    assert set(SORT_METHODS) >= {"blur", "best"}


def test_sort_yaw_estimates_pose_for_faces_without_one(tmp_path, einstein):
    from facecast.faces.pose import estimate_pose

    faces = {"a": make_face(einstein), "b": make_face(einstein, flip=True)}  # no stored pose (all zeros)
    write_set(tmp_path / "f", faces)
    yaws = {n: estimate_pose(np.asarray(m.source.landmarks))["yaw"] for n, (_, m) in faces.items()}
    assert yaws["a"] * yaws["b"] < 0  # the mirror turns the other way
    sort_faceset(tmp_path / "f", "yaw")
    assert order_of(tmp_path / "f") == sorted(yaws, key=yaws.get)


def test_recover_names_never_trusts_a_crafted_original_name(tmp_path, takeo):
    face, meta = make_face(takeo)
    meta.extra["original_name"] = "../../outside.exe"
    write_aligned(tmp_path / "f" / "00000_x.png", face, meta)
    face2, meta2 = make_face(takeo, gain=0.5)
    meta2.extra["original_name"] = ".hidden.png"
    write_aligned(tmp_path / "f" / "00001_y.png", face2, meta2)
    recover_names(tmp_path / "f")
    assert sorted(p.name for p in (tmp_path / "f").iterdir()) == ["hidden.png", "outside.png"]
