"""Faces page: paged listing, cached thumbnails, metadata, recoverable delete/restore, sort as a job;
and in a real browser: the grid shows faces and Delete moves the selected face aside."""

from __future__ import annotations

import time

import pytest

from facecast.faces.aligned import list_aligned
from facecast.studio import thumbs
from .helpers import api_client, private_copy, served, signed_in_page, wait_job


@pytest.fixture(scope="module")
def own_ws(studio_ws, tmp_path_factory):
    """A private copy of the studio workspace (these tests change faces, labels or models)."""
    return private_copy(studio_ws, tmp_path_factory, "faces_page")


@pytest.fixture()
def client(own_ws):
    with api_client(own_ws) as c:
        yield c


def test_list_is_paged_and_thumbnails_are_cached(client, own_ws):
    names = [p.name for p in list_aligned(own_ws.aligned("dst"))]
    r = client.get("/api/faces/dst/list?offset=0&limit=3").json()
    assert r["total"] == len(names) and [i["name"] for i in r["items"]] == names[:3]
    r2 = client.get("/api/faces/dst/list?offset=3&limit=100").json()
    assert [i["name"] for i in r2["items"]] == names[3:]
    t = client.get(f"/api/faces/dst/thumb/{names[0]}")
    assert t.status_code == 200 and t.headers["content-type"] == "image/jpeg" and t.content[:2] == b"\xff\xd8"
    assert "immutable" in t.headers["cache-control"]
    cached = thumbs.cached_path(own_ws.root, own_ws.aligned("dst") / names[0])
    assert cached.is_file() and cached.read_bytes() == t.content
    from facecast.media.images import decode_image

    assert max(decode_image(t.content).shape[:2]) == thumbs.DEFAULT_SIDE
    # the grid's batched form: the same cached bytes, base64, in listing order
    import base64

    batch = client.get("/api/faces/dst/thumbs?offset=0&limit=2").json()
    assert [i["name"] for i in batch["items"]] == names[:2] and batch["total"] == len(names)
    assert base64.b64decode(batch["items"][0]["data"]) == t.content
    # a rewritten face gets a new thumbnail key (never a stale thumbnail)
    from facecast.faces.aligned import read_meta, update_meta

    path = own_ws.aligned("dst") / names[0]
    meta = read_meta(path)
    time.sleep(0.01)
    update_meta(path, meta)
    assert thumbs.cached_path(own_ws.root, path) != cached


def test_meta_has_landmarks_and_source(client, own_ws):
    name = list_aligned(own_ws.aligned("dst"))[0].name
    m = client.get(f"/api/faces/dst/meta/{name}").json()
    assert len(m["landmarks"]) == 68 and len(m["source"]["landmarks"]) == 68
    assert (own_ws.data("dst") / m["source"]["filename"]).is_file() and len(m["image_to_face"]) == 2
    frame = client.get(f"/api/fixframe/dst/frame/{m['source']['filename']}")
    assert frame.status_code == 200 and len(frame.content) > 1000


@pytest.mark.parametrize("path", [
    "/api/faces/dst/thumb/..%2Fworkspace.json", "/api/faces/dst/meta/..%2F..%2Fworkspace.json",
    "/api/faces/dst/image/.hidden.jpg", "/api/faces/other/list", "/api/fixframe/dst/frame/..%2F..%2Fworkspace.json",
])
def test_paths_refused(client, path):
    assert client.get(path).status_code in (403, 404)


def test_delete_moves_aside_and_restore_brings_back(client, own_ws):
    folder = own_ws.aligned("dst")
    names = [p.name for p in list_aligned(folder)]
    before = {n: (folder / n).read_bytes() for n in names[:2]}
    r = client.post("/api/faces/dst/delete", json={"names": names[:2]})
    assert r.status_code == 200, r.text
    assert not (folder / names[0]).exists() and (folder.parent / "aligned_removed" / names[0]).is_file()
    assert client.get("/api/faces/dst/list").json()["total"] == len(names) - 2
    assert client.get("/api/faces/dst/list?removed=true").json()["total"] == 2
    assert set(client.get("/api/faces/dst/removed").json()["names"]) == set(names[:2])
    # a bad name moves nothing
    assert client.post("/api/faces/dst/delete", json={"names": [names[2], "nope.jpg"]}).status_code == 400
    assert (folder / names[2]).is_file()
    assert client.post("/api/faces/dst/delete", json={"names": ["../workspace.json"]}).status_code == 403
    r = client.post("/api/faces/dst/restore", json={"names": None})
    assert sorted(r.json()["restored"]) == sorted(names[:2])
    assert {n: (folder / n).read_bytes() for n in names[:2]} == before


def test_delete_needs_the_csrf_header(client, own_ws):
    name = list_aligned(own_ws.aligned("dst"))[0].name
    r = client.post("/api/faces/dst/delete", json={"names": [name]}, headers={"X-Facecast-Token": ""})
    assert r.status_code in (401, 403) and (own_ws.aligned("dst") / name).is_file()


def test_sort_job_and_recover_names(client, own_ws):
    folder = own_ws.aligned("dst")
    original = sorted(p.name for p in list_aligned(folder))
    assert "yaw" in client.get("/api/faces/sort-methods").json()["methods"]
    assert client.post("/api/faces/dst/sort", json={"method": "nope"}).status_code == 400
    job = client.post("/api/faces/dst/sort", json={"method": "blur", "reverse": True}).json()
    done = wait_job(client, job["id"])
    assert done["state"] == "done", done
    renamed = [p.name for p in list_aligned(folder)]
    assert renamed != original and all(n[:5].isdigit() and n[5] == "_" for n in renamed)
    listing = client.get("/api/faces/dst/list").json()
    assert [i["name"] for i in listing["items"]] == renamed  # the listing cache saw the renames
    job = client.post("/api/faces/dst/recover-names").json()
    assert wait_job(client, job["id"])["state"] == "done"
    assert sorted(p.name for p in list_aligned(folder)) == original


# -- in the browser ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def own_server(own_ws):
    with served(own_ws, shutdown_timeout=30) as server:
        yield server


@pytest.fixture()
def page(_browser, own_server):
    with signed_in_page(_browser, own_server, "/faces") as pg:
        yield pg


@pytest.mark.slow
@pytest.mark.browser
def test_grid_shows_faces_and_delete_moves_one_aside(page, own_ws, screenshot):
    folder = own_ws.aligned("dst")
    names = [p.name for p in list_aligned(folder)]
    page.wait_for_selector("body[data-ready='1']")
    page.wait_for_function("[...document.querySelectorAll('#grid .cell img')].filter(i => i.complete && i.naturalWidth > 0).length >= 3")
    cells = page.locator("#grid .cell")
    assert cells.count() == len(names)
    assert page.locator("#count").inner_text().startswith(f"{len(names)} face")
    cells.nth(1).click()
    page.wait_for_selector("#face-info:not([hidden])")
    page.wait_for_function("document.getElementById('debug').height > 100")
    screenshot(page, "faces_grid")
    victim = cells.nth(1).get_attribute("data-name")
    page.keyboard.press("Delete")
    page.wait_for_function(f"document.querySelectorAll('#grid .cell').length === {len(names) - 1}")
    assert not (folder / victim).exists() and (folder.parent / "aligned_removed" / victim).is_file()
    # restore from the removed view
    page.check("#show-removed")
    page.wait_for_function("document.querySelectorAll('#grid .cell').length === 1")
    page.click("#restore")
    page.wait_for_function("document.querySelectorAll('#grid .cell').length === 0")
    assert (folder / victim).is_file()
    assert page.js_errors == []


# -- units: thumbnail cache and the move-aside helpers -------------------------------------------------
def test_thumbnail_decodes_big_jpegs_reduced_and_keys_on_content(tmp_path):
    import numpy as np

    from facecast.media.images import decode_image, encode_image

    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (512, 384, 3), dtype=np.uint8)
    data = encode_image(img, ".jpg")
    assert thumbs.jpeg_size(data) == (384, 512)
    assert thumbs.jpeg_size(encode_image(img, ".png")) is None
    small = decode_image(thumbs.make_thumbnail(data, 128))
    assert small.shape == (128, 96, 3)
    assert decode_image(thumbs.make_thumbnail(encode_image(img[:100, :80], ".jpg"), 128)).shape == (100, 80, 3)
    face = tmp_path / "a.jpg"
    face.write_bytes(data)
    first = thumbs.thumbnail(tmp_path, face)
    assert first.is_file() and thumbs.thumbnail(tmp_path, face) == first
    face.write_bytes(encode_image(img[::-1], ".jpg"))
    import os

    os.utime(face, ns=(1, 1))
    assert thumbs.thumbnail(tmp_path, face) != first  # rewritten file: new key
    assert thumbs.prune(tmp_path, older_than_s=-1) == 2


def test_remove_and_restore_faces_units(tmp_path):
    from facecast.errors import FacecastError
    from facecast.faceset.aside import remove_faces, removed_faces, restore_faces

    folder = tmp_path / "aligned"
    folder.mkdir()
    for n in ("a.jpg", "b.jpg", "c.png"):
        (folder / n).write_bytes(n.encode())
    with pytest.raises(FacecastError, match="no face named"):
        remove_faces(folder, ["a.jpg", "zz.jpg"])
    assert (folder / "a.jpg").is_file()  # checked before anything moved
    with pytest.raises(FacecastError, match="not a face file name"):
        remove_faces(folder, ["../x.jpg"])
    assert remove_faces(folder, ["a.jpg", "c.png"])["moved"] == ["a.jpg", "c.png"]
    assert [p.name for p in removed_faces(folder)] == ["a.jpg", "c.png"]
    (folder / "a.jpg").write_bytes(b"new a")  # a new face took the name meanwhile
    restored = restore_faces(folder)["restored"]
    assert restored == ["a_1.jpg", "c.png"] and (folder / "a_1.jpg").read_bytes() == b"a.jpg"
    assert removed_faces(folder) == []
