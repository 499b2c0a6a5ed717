"""DeepFaceLab import: files written here in DFL's layouts, and malicious pickles that must not run."""

from __future__ import annotations

import enum
import io
import json
import os
import pickle
import struct
import sys
import types
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import run_cli
from facecast.errors import FacecastError
from facecast.faces.align import align_face, transform_points
from facecast.faces.aligned import list_aligned, read_aligned
from facecast.faces.facetype import template_landmarks
from facecast.faceset.dfl_import import DFL_FACE_TYPES, dfl_payload, import_dfl
from facecast.faceset.safe_pickle import PickleInvalid, PickleRefused, safe_loads
from facecast.media.images import decode_image, encode_image

SIZE = 96


# -- writing DFL-layout files (our own writer, from the documented format) ------------------------------
def dfl_jpeg(image: np.ndarray, payload: bytes) -> bytes:
    """A JPEG with `payload` in an APP15 segment after the last APPn segment, as DFL places it."""
    data = encode_image(image, ".jpg", 95)
    pos, last_app_end = 2, 2
    while data[pos + 1] != 0xDA:
        length = struct.unpack(">H", data[pos + 2 : pos + 4])[0]
        if 0xE0 <= data[pos + 1] <= 0xEF:
            last_app_end = pos + 2 + length
        pos += 2 + length
    seg = b"\xff\xef" + struct.pack(">H", len(payload) + 2) + payload
    return data[:last_app_end] + seg + data[last_app_end:]


def dfl_png(image: np.ndarray, payload: bytes) -> bytes:
    """A PNG with `payload` in a private `fcWp` chunk before IEND (DFL 1.0's DFLPNG)."""
    data = encode_image(image, ".png")
    iend = data.rindex(b"IEND") - 4
    chunk = struct.pack(">I", len(payload)) + b"fcWp" + payload + struct.pack(">I", zlib.crc32(b"fcWp" + payload) & 0xFFFFFFFF)
    return data[:iend] + chunk + data[iend:]


def dfl_face(einstein, face_type="full_face", with_masks=True):
    """(aligned image, DFL dict) with DFL's key names and value types (numpy arrays and scalars)."""
    img, lm = einstein
    face, mat, lm_face = align_face(img, lm, "full", SIZE)
    d = {
        "face_type": face_type,
        "landmarks": lm_face.astype(np.float32),
        "source_filename": "00042.png",
        "source_rect": (np.int64(210), np.int64(300), np.int64(610), np.int64(760)),
        "source_landmarks": lm.tolist(),
        "image_to_face_mat": mat,
        "eyebrows_expand_mod": 1.25,
    }
    if with_masks:
        d["seg_ie_polys"] = {"polys": [
            {"type": 0, "pts": np.array([[40, 60], [55, 60], [50, 75]], np.float32)},  # exclude first in file
            {"type": 1, "pts": np.array([[5, 5], [90, 5], [90, 90], [5, 90]], np.float32)},
        ]}
        mask = np.zeros((SIZE, SIZE), np.uint8)
        cv2.circle(mask, (48, 50), 30, 255, -1)
        ok, buf = cv2.imencode(".png", mask)  # DFL keeps cv2.imencode's ndarray
        d["xseg_mask"] = buf
    return face, d


class _Evil:
    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class NotAllowed:  # a class from a module the unpickler does not know
    def __init__(self):
        self.x = 1


# -- good imports --------------------------------------------------------------------------------------
def test_jpeg_import_gives_correct_metadata_and_untouched_pixels(tmp_path, einstein):
    face, d = dfl_face(einstein)
    src = tmp_path / "dfl"
    src.mkdir()
    (src / "00042_0.jpg").write_bytes(dfl_jpeg(face, pickle.dumps(d, 3)))
    res = import_dfl(src, tmp_path / "out")
    assert res.imported == 1 and res.with_polygons == 1 and res.with_xseg == 1
    out = read_aligned(tmp_path / "out" / "00042_0.jpg")
    m = out.meta
    assert m.face_type == "full" and m.size == SIZE
    assert np.allclose(m.landmarks_array, d["landmarks"], atol=1e-4)
    assert np.allclose(m.matrix, d["image_to_face_mat"]) and np.allclose(m.source_landmarks, d["source_landmarks"])
    assert m.source.filename == "00042.png" and m.source.rect == (210.0, 300.0, 610.0, 760.0)
    assert m.mask_polygons[0] == {"type": "include", "points": [[5, 5], [90, 5], [90, 90], [5, 90]]}
    assert m.mask_polygons[1]["type"] == "exclude" and m.mask_polygons[1]["points"][0] == [40, 60]
    mask = m.get_xseg_mask()
    assert mask[50, 48] == 1.0 and mask[2, 2] == 0.0 and abs(mask.mean() - np.pi * 30**2 / SIZE**2) < 0.02
    assert m.extra["dfl"] == {"face_type": "full_face", "file": "00042_0.jpg", "eyebrows_expand_mod": 1.25}
    assert m.sharpness > 0
    raw = (tmp_path / "out" / "00042_0.jpg").read_bytes()
    assert dfl_payload(raw) is None  # the pickle is gone
    assert np.array_equal(out.image, decode_image((src / "00042_0.jpg").read_bytes()))  # no re-encode
    again = import_dfl(src, tmp_path / "out")  # a re-run resumes: nothing duplicated
    assert again.imported == 0 and again.already_imported == 1
    assert [p.name for p in list_aligned(tmp_path / "out")] == ["00042_0.jpg"]


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_png_import_old_ie_polys_and_any_pickle_protocol(tmp_path, einstein, protocol):
    face, d = dfl_face(einstein, "whole_face", with_masks=False)
    d["ie_polys"] = [(1, [[1.0, 1.0], [50.0, 1.0], [25.0, 40.0]])]  # DFL 1.0's list layout
    d["pitch_yaw_roll"] = (np.float32(0.1), np.float32(-0.5), 0.0)
    (tmp_path / "a.png").write_bytes(dfl_png(face, pickle.dumps(d, protocol)))
    import_dfl(tmp_path / "a.png", tmp_path / "out")
    m = read_aligned(tmp_path / "out" / "a.png").meta
    assert m.face_type == "whole_face"
    assert m.mask_polygons == [{"type": "include", "points": [[1.0, 1.0], [50.0, 1.0], [25.0, 40.0]]}]
    from facecast.faces.pose import estimate_pose

    expected = estimate_pose(np.asarray(d["source_landmarks"]))  # one pose convention for every face
    assert m.pose == pytest.approx(expected, abs=1e-6)
    assert m.extra["dfl"]["pitch_yaw_roll"] == pytest.approx([0.1, -0.5, 0.0], abs=1e-6)


@pytest.mark.parametrize("dfl_type", sorted(DFL_FACE_TYPES))
def test_every_dfl_face_type_maps(tmp_path, einstein, dfl_type):
    face, d = dfl_face(einstein, dfl_type, with_masks=False)
    if dfl_type == "mark_only":  # a whole frame with frame landmarks
        img, lm = einstein
        face = cv2.resize(img, (img.shape[1] // 4, img.shape[0] // 4), interpolation=cv2.INTER_AREA)
        d["landmarks"] = lm / 4.0
        for k in ("image_to_face_mat", "source_landmarks", "source_rect"):
            d.pop(k)
    (tmp_path / "x.jpg").write_bytes(dfl_jpeg(face, pickle.dumps(d)))
    import_dfl(tmp_path / "x.jpg", tmp_path / "out")
    out = read_aligned(tmp_path / "out" / "x.jpg")
    expected = {"mark_only": "full"}.get(dfl_type, DFL_FACE_TYPES[dfl_type])
    assert out.meta.face_type == expected and out.meta.extra["dfl"]["face_type"] == dfl_type
    if dfl_type == "mark_only":  # aligned here: the landmarks land on our template
        size = out.meta.size
        err = np.linalg.norm(out.meta.landmarks_array[17:] - template_landmarks("full", size)[17:], axis=1).mean()
        assert err < 0.05 * size and out.meta.source.frame_size == (face.shape[1], face.shape[0])
        back = transform_points(out.meta.source_landmarks, out.meta.matrix)
        assert np.abs(back - out.meta.landmarks_array).max() < 1e-6


def test_face_type_override(tmp_path, einstein):
    face, d = dfl_face(einstein, with_masks=False)
    (tmp_path / "x.jpg").write_bytes(dfl_jpeg(face, pickle.dumps(d)))
    import_dfl(tmp_path / "x.jpg", tmp_path / "out", face_type_override="wf")
    assert read_aligned(tmp_path / "out" / "x.jpg").meta.face_type == "whole_face"
    with pytest.raises(FacecastError, match="unknown face type 'huge'"):
        import_dfl(tmp_path / "x.jpg", tmp_path / "out2", face_type_override="huge")


def _fake_dfl_modules(monkeypatch):
    """DFL's IntEnums under DFL's module names, so pickles name them exactly as DFL's would."""
    sample_mod = types.ModuleType("samplelib.Sample")
    facetype_mod = types.ModuleType("facelib.FaceType")
    SampleType = enum.IntEnum("SampleType", {"IMAGE": 0, "FACE": 1}, module="samplelib.Sample")
    FaceType = enum.IntEnum("FaceType", {"HALF": 0, "FULL": 2, "WHOLE_FACE": 4, "HEAD": 10}, module="facelib.FaceType")
    sample_mod.SampleType, facetype_mod.FaceType = SampleType, FaceType
    for name, mod in (("samplelib", types.ModuleType("samplelib")), ("samplelib.Sample", sample_mod),
                      ("facelib", types.ModuleType("facelib")), ("facelib.FaceType", facetype_mod)):
        monkeypatch.setitem(sys.modules, name, mod)
    return SampleType, FaceType


def write_pak(path: Path, samples: list[tuple[dict, bytes]]) -> None:
    """DFL's faceset.pak layout, including its absolute last offset."""
    configs = pickle.dumps([cfg for cfg, _ in samples], 4)
    buf = io.BytesIO()
    buf.write(struct.pack("<Q", 1) + struct.pack("<Q", len(configs)) + configs)
    table = buf.tell()
    buf.write(bytes(8 * (len(samples) + 1)))
    start = buf.tell()
    offsets = []
    for _, blob in samples:
        offsets.append(buf.tell() - start)
        buf.write(blob)
    offsets.append(buf.tell())  # DFL: absolute, unlike the others
    data = bytearray(buf.getvalue())
    data[table : table + 8 * len(offsets)] = b"".join(struct.pack("<Q", o) for o in offsets)
    path.write_bytes(bytes(data))


def test_faceset_pak_import(tmp_path, einstein, takeo, monkeypatch):
    SampleType, FaceType = _fake_dfl_modules(monkeypatch)
    f1, d1 = dfl_face(einstein)
    f2, d2 = dfl_face(takeo, "head", with_masks=False)
    blob1, blob2 = dfl_jpeg(f1, pickle.dumps(d1, 3)), dfl_jpeg(f2, pickle.dumps(d2, 3))
    cfg = lambda name, d, ft: {  # noqa: E731 - DFL's Sample.get_config() keys
        "sample_type": SampleType.FACE, "filename": name, "face_type": ft, "shape": (SIZE, SIZE, 3),
        "landmarks": np.asarray(d["landmarks"]).tolist(), "seg_ie_polys": {"polys": []}, "xseg_mask": None,
        "xseg_mask_compressed": d.get("xseg_mask"), "eyebrows_expand_mod": 1.0,
        "source_filename": d["source_filename"], "person_name": None}
    (tmp_path / "aligned").mkdir()
    write_pak(tmp_path / "aligned" / "faceset.pak",
              [(cfg("00001_0.jpg", d1, FaceType.FULL), blob1), (cfg("00002_0.jpg", d2, FaceType.HEAD), blob2)])
    monkeypatch.undo()  # the importer must not need DFL's modules
    res = import_dfl(tmp_path / "aligned", tmp_path / "out")
    assert res.imported == 2 and res.face_types == {"full": 1, "head": 1}
    a = read_aligned(tmp_path / "out" / "00001_0.jpg")
    b = read_aligned(tmp_path / "out" / "00002_0.jpg")  # the last one (absolute offset) is whole
    assert np.array_equal(b.image, decode_image(blob2))
    assert a.meta.mask_polygons and a.meta.xseg_mask and np.allclose(a.meta.matrix, d1["image_to_face_mat"])


def test_a_folder_skips_images_without_dfl_metadata(tmp_path, einstein):
    face, d = dfl_face(einstein, with_masks=False)
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "good.jpg").write_bytes(dfl_jpeg(face, pickle.dumps(d)))
    (tmp_path / "src" / "plain.jpg").write_bytes(encode_image(face, ".jpg"))
    res = import_dfl(tmp_path / "src", tmp_path / "out")
    assert res.imported == 1 and res.skipped == ["plain.jpg"]


# -- refusals ------------------------------------------------------------------------------------------
def _assert_refused(tmp_path, blob_writer, payload: bytes, match: str, marker: Path | None = None):
    src = tmp_path / "src"
    src.mkdir(exist_ok=True)
    blob_writer(src)
    with pytest.raises(FacecastError, match=match) as info:
        import_dfl(src, tmp_path / "out")
    assert "\n" not in str(info.value)
    if marker is not None:
        assert not marker.exists(), "the pickle ran code"
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())  # nothing imported


def test_os_system_reduce_is_refused_without_running(tmp_path, einstein):
    face, d = dfl_face(einstein, with_masks=False)
    marker = tmp_path / "PWNED"
    evil = _Evil()
    evil.marker = marker
    d["landmarks"] = evil
    payload = pickle.dumps(d, 3)

    def write(src):
        (src / "00001.jpg").write_bytes(dfl_jpeg(face, pickle.dumps(dfl_face(einstein, with_masks=False)[1])))
        (src / "00002.jpg").write_bytes(dfl_jpeg(face, payload))  # one bad file stops the whole import

    _assert_refused(tmp_path, write, payload, r"00002\.jpg: refused: .* asks to load (posix|os|nt)\.system", marker)


@pytest.mark.parametrize("protocol", [0, 2, 4])
def test_builtins_eval_is_refused(tmp_path, einstein, protocol):
    face, _ = dfl_face(einstein, with_masks=False)
    marker = tmp_path / "EVAL"

    class EvalIt:
        def __reduce__(self):
            return (eval, (f"open({str(marker)!r}, 'w')",))

    payload = pickle.dumps({"landmarks": EvalIt()}, protocol)
    _assert_refused(tmp_path, lambda src: (src / "e.png").write_bytes(dfl_png(face, payload)), payload,
                    r"e\.png: refused: .* asks to load builtins\.eval", marker)


def test_unknown_class_is_refused(tmp_path, einstein):
    face, _ = dfl_face(einstein, with_masks=False)
    payload = pickle.dumps({"face_type": "full_face", "x": NotAllowed()})
    _assert_refused(tmp_path, lambda src: (src / "c.jpg").write_bytes(dfl_jpeg(face, payload)), payload,
                    r"c\.jpg: refused: .* asks to load test_dfl_import\.NotAllowed")


def test_subprocess_in_a_pak_sample_table_is_refused(tmp_path, einstein):
    import subprocess

    face, d = dfl_face(einstein, with_masks=False)
    marker = tmp_path / "SUB"

    class Sub:
        def __reduce__(self):
            return (subprocess.call, (["touch", str(marker)],))

    def write(src):
        cfg = {"filename": "a.jpg", "face_type": "full_face", "evil": Sub()}
        configs = pickle.dumps([cfg], 4)
        blob = dfl_jpeg(face, pickle.dumps(d))
        data = struct.pack("<QQ", 1, len(configs)) + configs + struct.pack("<QQ", 0, len(blob)) + blob
        (src / "faceset.pak").write_bytes(data)

    _assert_refused(tmp_path, write, b"", r"faceset\.pak: refused: .* asks to load subprocess\.call", marker)


def test_malicious_face_inside_a_pak_is_refused(tmp_path, einstein):
    face, d = dfl_face(einstein, with_masks=False)
    marker = tmp_path / "INNER"
    evil = _Evil()
    evil.marker = marker
    bad = dfl_jpeg(face, pickle.dumps({"landmarks": evil}))
    _assert_refused(tmp_path, lambda src: write_pak(src / "faceset.pak", [({"filename": "in.jpg"}, bad)]), b"",
                    r"faceset\.pak:in\.jpg: refused", marker)


def test_unpickler_refuses_object_arrays_setattr_and_garbage():
    with pytest.raises(PickleInvalid, match="not a plain numeric type"):
        safe_loads(pickle.dumps(np.array([{"a": 1}], dtype=object)))
    # BUILD with slot state on an allowed function would setattr on it: refused
    poke = b"cnumpy.core.multiarray\n_reconstruct\nN}X\x0c\x00\x00\x00__defaults__K\x01s\x86b."
    with pytest.raises(PickleRefused, match="setting attribute"):
        safe_loads(poke)
    with pytest.raises(PickleInvalid):
        safe_loads(b"\x80\x04garbage")
    # a dtype whose record fields would smuggle objects
    with pytest.raises(PickleInvalid):
        safe_loads(pickle.dumps(np.zeros(2, dtype=[("a", "f4"), ("b", "i4")])))
    # plain data and arrays come back exactly
    data = {"a": [1, 2.5, None, True, b"x", "s"], "m": np.arange(6, dtype=np.float32).reshape(2, 3)}
    got = safe_loads(pickle.dumps(data, 3))
    assert got["a"] == data["a"] and np.array_equal(got["m"], data["m"]) and got["m"].dtype == np.float32


def test_corrupt_and_unusable_metadata_errors(tmp_path, einstein):
    face, d = dfl_face(einstein, with_masks=False)
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "t.jpg").write_bytes(dfl_jpeg(face, pickle.dumps(d)[:-5]))
    with pytest.raises(FacecastError, match=r"t\.jpg: corrupt DeepFaceLab metadata"):
        import_dfl(tmp_path / "a", tmp_path / "out")
    d2 = dict(d, landmarks=np.zeros((5, 2)))
    (tmp_path / "b.jpg").write_bytes(dfl_jpeg(face, pickle.dumps(d2)))
    with pytest.raises(FacecastError, match=r"b\.jpg: DeepFaceLab landmarks have 5 points; facecast needs 68"):
        import_dfl(tmp_path / "b.jpg", tmp_path / "out")
    (tmp_path / "c.jpg").write_bytes(dfl_jpeg(face, pickle.dumps(dict(d, face_type="alien_face"))))
    with pytest.raises(FacecastError, match="unknown DeepFaceLab face type 'alien_face'"):
        import_dfl(tmp_path / "c.jpg", tmp_path / "out")
    (tmp_path / "d.jpg").write_bytes(dfl_jpeg(face, pickle.dumps([1, 2])))
    with pytest.raises(FacecastError, match="not a dictionary"):
        import_dfl(tmp_path / "d.jpg", tmp_path / "out")
    (tmp_path / "e.pak").write_bytes(struct.pack("<QQ", 7, 0))
    with pytest.raises(FacecastError, match="unsupported faceset.pak version 7"):
        import_dfl(tmp_path / "e.pak", tmp_path / "out")
    with pytest.raises(FacecastError, match="not found"):
        import_dfl(tmp_path / "nope", tmp_path / "out")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FacecastError, match="no DeepFaceLab aligned faces found"):
        import_dfl(tmp_path / "empty", tmp_path / "out")


def test_cli_import_dfl_into_workspace(tmp_path, workspace, einstein):
    face, d = dfl_face(einstein)
    (tmp_path / "dfl").mkdir()
    (tmp_path / "dfl" / "1.jpg").write_bytes(dfl_jpeg(face, pickle.dumps(d)))
    code, out, err = run_cli("faceset", "import-dfl", str(tmp_path / "dfl"), "-w", str(workspace.root), "--json")
    assert code == 0, err
    assert json.loads(out)["imported"] == 1
    assert [p.name for p in list_aligned(workspace.aligned("src"))] == ["1.jpg"]
    evil = _Evil()
    evil.marker = tmp_path / "CLI_PWNED"
    (tmp_path / "dfl" / "2.jpg").write_bytes(dfl_jpeg(face, pickle.dumps({"x": evil})))
    code, out, err = run_cli("faceset", "import-dfl", str(tmp_path / "dfl"), "--out", str(tmp_path / "o"))
    assert code == 2 and "2.jpg: refused" in err and "Traceback" not in err
    assert not (tmp_path / "CLI_PWNED").exists()
