"""Fix-a-frame page (manual re-extract): queue, frame face, detect in a box, live preview, save; in a real
browser: dragging a landmark rewrites the aligned face (new pixels, moved landmarks in its metadata)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from facecast.faces.aligned import list_aligned, read_aligned, read_meta
from facecast.media.images import decode_image
from .helpers import api_client, private_copy, served, signed_in_page


@pytest.fixture(scope="module")
def own_ws(studio_ws, tmp_path_factory):
    """A private copy of the studio workspace (these tests change faces, labels or models)."""
    return private_copy(studio_ws, tmp_path_factory, "fixframe")


@pytest.fixture()
def client(own_ws):
    with api_client(own_ws) as c:
        yield c


def test_queue_lists_a_missed_frame_first(client, own_ws):
    faces = list_aligned(own_ws.aligned("dst"))
    frame = read_meta(faces[-1]).source.filename
    removed = own_ws.aligned("dst").parent / "held"
    removed.mkdir(exist_ok=True)
    shutil.move(str(faces[-1]), removed / faces[-1].name)
    try:
        q = client.get("/api/fixframe/dst/queue").json()
        assert q["entries"][0] == {**q["entries"][0], "frame": frame, "reasons": ["missed"], "face": None}
        assert q["frames"] == len(client.get("/api/fixframe/dst/frames").json()["frames"])
        info = client.get(f"/api/fixframe/dst/face/{frame}").json()
        assert info["face"] is None and info["landmarks"] is None and info["origin"] == "none"
    finally:
        shutil.move(str(removed / faces[-1].name), faces[-1])


def test_detect_preview_and_save_round_trip(client, own_ws):
    face = list_aligned(own_ws.aligned("dst"))[0]
    ref = read_aligned(face)
    frame = ref.meta.source.filename
    info = client.get(f"/api/fixframe/dst/face/{frame}").json()
    assert info["face"] == face.name and info["origin"] == "extract" and len(info["landmarks"]) == 68
    assert info["face_size"] == ref.meta.size and info["frame_size"] == list(ref.meta.source.frame_size)
    # re-detection inside the extract box lands near the extracted points
    det = client.post("/api/fixframe/dst/detect", json={"frame": frame, "rect": info["rect"]}).json()
    assert np.abs(np.array(det["landmarks"]) - ref.meta.source_landmarks).mean() < 3.0
    # the preview of the saved points is the saved face
    prev = client.post("/api/fixframe/dst/preview", json={"frame": frame, "landmarks": info["landmarks"]})
    assert prev.status_code == 200 and prev.headers["content-type"] == "image/jpeg"
    img = decode_image(prev.content)
    assert img.shape == ref.image.shape and np.abs(img.astype(int) - ref.image.astype(int)).mean() < 3
    # save moved points: the file is rewritten with the new geometry, marked manual
    lm = np.array(info["landmarks"]) + [5.0, 0.0]
    r = client.post("/api/fixframe/dst/save", json={"frame": frame, "landmarks": lm.tolist(), "rect": info["rect"]})
    assert r.status_code == 200, r.text
    assert r.json()["face"] == face.name and r.json()["replaced"]
    new = read_aligned(face)
    assert np.allclose(new.meta.source_landmarks, lm) and new.meta.detector["name"] == "manual"
    assert client.get(f"/api/fixframe/dst/face/{frame}").json()["origin"] == "manual"
    # bad input: one clear 400 / refused paths
    assert client.post("/api/fixframe/dst/save", json={"frame": frame, "landmarks": [[0, 0]]}).status_code in (400, 422)
    assert client.post("/api/fixframe/dst/detect", json={"frame": frame, "rect": [1, 1, 2, 2]}).status_code == 400
    assert client.post("/api/fixframe/dst/save", json={"frame": "../x.png", "landmarks": lm.tolist()}).status_code == 403


def test_save_refused_by_the_content_gate(client, own_ws, monkeypatch):
    from facecast import provenance
    from facecast.provenance.content_gate import ContentGate

    face = list_aligned(own_ws.aligned("dst"))[1]
    before = face.read_bytes()
    meta = read_meta(face)
    monkeypatch.setattr(provenance, "content_gate", lambda: ContentGate(scorer=lambda img: 0.99))
    r = client.post("/api/fixframe/dst/save", json={"frame": meta.source.filename,
                                                     "landmarks": (meta.source_landmarks + 2).tolist()})
    assert r.status_code == 400 and face.read_bytes() == before


# -- in the browser ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def own_server(own_ws):
    with served(own_ws, shutdown_timeout=30) as server:
        yield server


@pytest.fixture()
def page(_browser, own_server):
    with signed_in_page(_browser, own_server, "/") as pg:
        yield pg


@pytest.mark.slow
@pytest.mark.browser
def test_drag_a_landmark_rewrites_the_aligned_face(page, own_ws, screenshot):
    face = list_aligned(own_ws.aligned("dst"))[2]
    before_bytes = face.read_bytes()
    before = read_aligned(face)
    frame = before.meta.source.filename
    page.goto(f"{page.base}/fixframe?side=dst&frame={frame}")
    page.wait_for_selector("body[data-ready='1']")
    page.wait_for_function("document.getElementById('aligned').naturalWidth > 0")
    first_preview = page.evaluate("document.getElementById('aligned').src")
    box = page.locator("#canvas").bounding_box()
    k = 19  # a brow point, dragged 10 frame px up
    sx, sy = page.evaluate(f"window.fixframe.toScreen(window.fixframe.state.lm[{k}])")
    scale = page.evaluate("window.fixframe.state.view.s")
    page.mouse.move(box["x"] + sx, box["y"] + sy)
    page.mouse.down()
    for step in range(1, 6):
        page.mouse.move(box["x"] + sx, box["y"] + sy - step * 2 * scale)
    page.mouse.up()
    moved = np.array(page.evaluate(f"window.fixframe.state.lm[{k}]"))
    assert np.allclose(moved, before.meta.source_landmarks[k] + [0, -10], atol=0.6)
    page.wait_for_function(f"document.getElementById('aligned').src !== {first_preview!r}")
    screenshot(page, "fixframe_editor")
    page.click("#save")
    page.wait_for_selector("body[data-saved]")
    after = read_aligned(face)
    assert face.read_bytes() != before_bytes
    assert np.allclose(after.meta.source_landmarks[k], before.meta.source_landmarks[k] + [0, -10], atol=0.6)
    others = np.delete(np.arange(68), k)
    assert np.allclose(after.meta.source_landmarks[others], before.meta.source_landmarks[others], atol=1e-3)
    assert not np.allclose(after.meta.matrix, before.meta.matrix)  # the alignment followed the point
    assert np.abs(after.image.astype(int) - before.image.astype(int)).mean() > 0.5  # new pixels
    assert after.meta.detector["name"] == "manual"
    assert page.js_errors == []


@pytest.mark.slow
@pytest.mark.browser
def test_missed_frame_draw_a_box_detect_and_save(page, own_ws):
    """The DFL manual re-extract path: a frame without a face is first in the queue; a box drawn with the
    mouse gets landmarks from the model, Enter saves an aligned face for it."""
    face = list_aligned(own_ws.aligned("dst"))[4]
    meta = read_meta(face)
    frame = meta.source.filename
    face.unlink()
    page.goto(f"{page.base}/fixframe?side=dst")
    page.wait_for_selector("body[data-ready='1']")
    assert page.locator("#queue li").first.get_attribute("data-frame") == frame
    assert "missed" in page.locator("#queue li").first.inner_text()
    assert page.evaluate("window.fixframe.state.lm") is None
    x0, y0, x1, y1 = meta.source.rect
    box = page.locator("#canvas").bounding_box()
    a = page.evaluate(f"window.fixframe.toScreen([{x0}, {y0}])")
    b = page.evaluate(f"window.fixframe.toScreen([{x1}, {y1}])")
    page.mouse.move(box["x"] + a[0], box["y"] + a[1])
    page.mouse.down()
    page.mouse.move(box["x"] + (a[0] + b[0]) / 2, box["y"] + (a[1] + b[1]) / 2)
    page.mouse.move(box["x"] + b[0], box["y"] + b[1])
    page.mouse.up()
    page.wait_for_function("window.fixframe.state.lm !== null && window.fixframe.state.lm.length === 68")
    lm = np.array(page.evaluate("window.fixframe.state.lm"))
    assert np.abs(lm - meta.source_landmarks).mean() < 4.0  # the model found the face in the drawn box
    page.wait_for_function("document.getElementById('aligned').naturalWidth > 0")
    page.keyboard.press("Enter")
    page.wait_for_selector("body[data-saved]")
    new = read_aligned(face)  # extract's name for the frame's face
    assert new.meta.source.filename == frame and new.meta.detector["name"] == "manual"
    assert np.allclose(new.meta.source_landmarks, lm, atol=1e-3)
    assert page.js_errors == []
