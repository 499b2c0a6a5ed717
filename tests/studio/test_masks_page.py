"""Masks page (XSeg editor): polygons saved into the face's metadata, the segmenter's mask, XSeg training
as a job with its preview; in a real browser: a polygon drawn with the mouse lands in the metadata."""

from __future__ import annotations

import time

import numpy as np
import pytest

from facecast.faces.aligned import list_aligned, read_aligned, read_meta
from facecast.media.images import decode_image
from .helpers import api_client, private_copy, served, signed_in_page, wait_job


@pytest.fixture(scope="module")
def own_ws(studio_ws, tmp_path_factory):
    """A private copy of the studio workspace (these tests change faces, labels or models)."""
    return private_copy(studio_ws, tmp_path_factory, "masks_page")


@pytest.fixture()
def client(own_ws):
    with api_client(own_ws) as c:
        yield c


def test_polygons_saved_into_metadata_without_touching_pixels(client, own_ws):
    path = list_aligned(own_ws.aligned("dst"))[0]
    pixels = read_aligned(path).image
    polys = [{"type": "include", "points": [[10, 10], [100, 12], [90, 110], [15, 100]]},
             {"type": "exclude", "points": [[40, 40], [60, 40], [50, 70]]}]
    r = client.post("/api/masks/dst/save", json={"name": path.name, "polygons": polys})
    assert r.status_code == 200 and r.json()["polygons"] == 2
    meta = read_meta(path)
    assert [p["type"] for p in meta.mask_polygons] == ["include", "exclude"]
    assert meta.mask_polygons[0]["points"][1] == [100.0, 12.0]
    assert np.array_equal(read_aligned(path).image, pixels)
    face = client.get(f"/api/masks/dst/face/{path.name}").json()
    assert face["polygons"] == meta.mask_polygons
    assert path.name in client.get("/api/masks/dst/labelled").json()["names"]
    # malformed polygons are one clear 400, and nothing changes
    bad = client.post("/api/masks/dst/save", json={"name": path.name, "polygons": [{"type": "include", "points": [[1, 2]]}]})
    assert bad.status_code == 400 and "at least 3" in bad.json()["detail"]
    assert len(read_meta(path).mask_polygons) == 2
    assert client.post("/api/masks/dst/save", json={"name": "../x.jpg", "polygons": []}).status_code == 403
    # an empty list removes the labels
    client.post("/api/masks/dst/save", json={"name": path.name, "polygons": []})
    assert read_meta(path).mask_polygons is None


def test_train_job_writes_preview_and_mask_overlay(client, own_ws):
    faces = list_aligned(own_ws.aligned("dst"))
    assert client.get(f"/api/masks/dst/mask/{faces[0].name}").status_code == 404  # no stored mask yet
    assert client.get("/api/masks/preview/xseg").status_code == 404
    size = read_meta(faces[0]).size
    for p in faces[:3]:
        poly = [[size * 0.2, size * 0.2], [size * 0.8, size * 0.2], [size * 0.8, size * 0.9], [size * 0.2, size * 0.9]]
        assert client.post("/api/masks/dst/save", json={"name": p.name, "polygons": [{"type": "include", "points": poly}]}).status_code == 200
    job = client.post("/api/masks/train", json={"model": "xseg", "phase": "train", "target_iter": 6, "preset": "tiny",
                                                "save_every": 3, "batch_size": 2}).json()
    done = wait_job(client, job["id"])
    assert done["state"] == "done", done
    assert done["result"]["iterations"] == 6 and done["done"] == 6
    models = client.get("/api/masks/models").json()["models"]
    assert [m["name"] for m in models] == ["xseg"] and models[0]["iterations"]["train"] == 6
    prev = client.get("/api/masks/preview/xseg")
    assert prev.status_code == 200 and prev.content[:4] == b"\x89PNG"
    m = client.get(f"/api/masks/dst/mask/{faces[0].name}?model=xseg")
    assert m.status_code == 200
    mask = decode_image(m.content, "mask", 0)
    assert mask.shape[:2] == (size, size)
    assert client.get(f"/api/masks/dst/mask/{faces[0].name}?model=nope").status_code == 404
    assert client.post("/api/masks/train", json={"model": "../x"}).status_code == 403


def test_stop_keeps_the_work(client, own_ws):
    job = client.post("/api/masks/train", json={"model": "xseg_stop", "phase": "pretrain", "target_iter": 100000,
                                                "preset": "tiny", "save_every": 1000, "batch_size": 2}).json()
    deadline = time.monotonic() + 120
    while client.get(f"/api/jobs/{job['id']}").json()["done"] < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    client.post(f"/api/jobs/{job['id']}/stop")
    done = wait_job(client, job["id"])
    assert done["state"] in ("stopped", "done"), done
    from facecast.masks.xseg import store

    state = store.read_state(own_ws.model("xseg_stop"))
    assert 2 <= state.iterations["pretrain"] < 100000  # the Ctrl-C path saved a checkpoint


# -- in the browser ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def own_server(own_ws):
    with served(own_ws, shutdown_timeout=30) as server:
        yield server


@pytest.fixture()
def page(_browser, own_server):
    with signed_in_page(_browser, own_server, "/") as pg:
        yield pg


def _click_face_point(page, x, y):
    sx, sy = page.evaluate(f"window.masks.toScreen([{x}, {y}])")
    box = page.locator("#canvas").bounding_box()
    page.mouse.click(box["x"] + sx, box["y"] + sy)


@pytest.mark.slow
@pytest.mark.browser
def test_draw_polygon_with_the_mouse_saves_it_in_metadata(page, own_ws, screenshot):
    from facecast.faces.aligned import update_meta

    faces = list_aligned(own_ws.aligned("dst"))
    for p in faces[:3]:  # start from unlabelled faces (other tests of this module label some)
        meta = read_meta(p)
        meta.mask_polygons = None
        update_meta(p, meta)
    target = faces[1]
    page.goto(f"{page.base}/masks?side=dst&face={target.name}")
    page.wait_for_selector("body[data-ready='1']")
    assert page.locator("#face-name").inner_text() == target.name
    size = read_meta(target).size
    pts = [(0.25, 0.2), (0.75, 0.2), (0.8, 0.85), (0.2, 0.85)]
    for x, y in pts:
        _click_face_point(page, x * size, y * size)
    _click_face_point(page, pts[0][0] * size, pts[0][1] * size)  # click the first point: closes it
    page.keyboard.press("w")  # exclude mode (DFL's W), then a small triangle over the mouth
    for x, y in [(0.4, 0.65), (0.6, 0.65), (0.5, 0.78)]:
        _click_face_point(page, x * size, y * size)
    page.keyboard.press("Enter")
    page.keyboard.press("4")  # baked mask view: include minus exclude
    page.keyboard.press("1")  # back to the polygons over the face
    screenshot(page, "masks_editor")
    page.keyboard.press("s")
    page.wait_for_selector("body[data-saved]")
    meta = read_meta(target)
    assert [p["type"] for p in meta.mask_polygons] == ["include", "exclude"]
    got = np.array(meta.mask_polygons[0]["points"])
    assert np.abs(got - np.array(pts) * size).max() < 1.5
    # D: next face (DFL's key); C: copy the previous face's polygons onto it; moving on saves it
    page.keyboard.press("d")
    page.wait_for_function(f"document.getElementById('face-name').textContent === '{faces[2].name}'")
    page.wait_for_selector("body[data-ready='1']")
    page.keyboard.press("c")
    page.wait_for_function("window.masks.state.polys.length === 2")
    page.keyboard.press("Control+z")
    page.wait_for_function("window.masks.state.polys.length === 0")
    page.keyboard.press("Control+Shift+z")
    page.wait_for_function("window.masks.state.polys.length === 2")
    # right-click a point deletes it (the 4-point include keeps 3); Delete removes the polygon under the mouse
    sx, sy = page.evaluate("window.masks.toScreen(window.masks.state.polys[0].points[1])")
    box = page.locator("#canvas").bounding_box()
    page.mouse.click(box["x"] + sx, box["y"] + sy, button="right")
    assert page.evaluate("window.masks.state.polys[0].points.length") == 3
    mx, my = page.evaluate(f"window.masks.toScreen([{0.5 * size}, {0.71 * size}])")
    page.mouse.move(box["x"] + mx, box["y"] + my)  # inside the exclude triangle (drawn last: on top)
    page.keyboard.press("Delete")
    assert [p["type"] for p in page.evaluate("window.masks.state.polys")] == ["include"]
    page.keyboard.press("Control+z")
    page.keyboard.press("Control+z")
    page.wait_for_function("window.masks.state.polys.length === 2 && window.masks.state.polys[0].points.length === 4")
    page.keyboard.press("a")
    page.wait_for_function(f"document.getElementById('face-name').textContent === '{target.name}'")
    assert len(read_meta(faces[2]).mask_polygons) == 2
    assert page.js_errors == []
