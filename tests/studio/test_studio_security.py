"""Studio security: token on every request, CSRF header on POST, only workspace files served."""

from __future__ import annotations

import os

import pytest
from fastapi import HTTPException

from facecast.studio.files import safe_path


def test_token_missing_is_401(studio_client):
    for path in ("/", "/api/jobs", "/files/workspace.json", "/static/common.js", "/merge"):
        r = studio_client.get(path, headers={"X-Facecast-Token": ""})
        assert r.status_code == 401, path
    r = studio_client.get("/api/jobs", headers={"X-Facecast-Token": "x" * 32})
    assert r.status_code == 401
    assert studio_client.get("/api/jobs").status_code == 200


def test_one_time_link_sets_cookie_then_cookie_alone_reads(studio_client):
    token = studio_client.token
    del studio_client.headers["X-Facecast-Token"]
    assert studio_client.get("/api/jobs").status_code == 401
    r = studio_client.get(f"/merge?token={token}", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/merge"  # token leaves the address bar
    assert studio_client.get("/api/jobs").status_code == 200  # the cookie now signs GETs in
    # ...but a state-changing request needs the header: a cookie is what a cross-site form would carry
    r = studio_client.post("/api/jobs/1/stop")
    assert r.status_code == 403 and "cross-site" in r.json()["detail"]
    assert studio_client.get("/?token=wrong-token-wrong-token").status_code == 401


def test_foreign_origin_post_refused(studio_client):
    r = studio_client.post("/api/jobs/1/stop", headers={"Origin": "http://evil.example"})
    assert r.status_code == 403
    r = studio_client.post("/api/jobs/999/stop", headers={"Origin": "http://127.0.0.1"})
    assert r.status_code == 404  # same origin, allowed through to the route (no such job)


def test_get_cannot_change_state(studio_client):
    assert studio_client.get("/api/jobs/1/stop").status_code in (404, 405)


@pytest.mark.parametrize("path", [
    "/files/../workspace.json",
    "/files/..%2F..%2Fetc%2Fpasswd",
    "/files/data_dst/..%2F..%2F..%2Fetc%2Fpasswd",
    "/files/%2Fetc%2Fpasswd",
    "/files//etc/passwd",
    "/files/.facecast/keys/signing.key",
    "/files/data_dst/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
])
def test_path_traversal_refused(studio_client, path):
    r = studio_client.get(path)
    assert r.status_code in (403, 404), (path, r.status_code)
    assert "root:" not in r.text


def test_workspace_file_served(studio_client, studio_ws):
    r = studio_client.get("/files/workspace.json")
    assert r.status_code == 200 and r.json()["id"] == studio_ws.id


def test_symlink_out_of_workspace_refused(studio_client, studio_ws, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOPSECRET")
    link = studio_ws.root / "link_out.txt"
    os.symlink(secret, link)
    try:
        r = studio_client.get("/files/link_out.txt")
        assert r.status_code == 403 and "TOPSECRET" not in r.text
    finally:
        link.unlink()


def test_safe_path_rules(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "f.png").write_bytes(b"x")
    assert safe_path(tmp_path, "a/f.png") == (tmp_path / "a" / "f.png").resolve()
    for bad in ("../x", "a/../../x", "/etc/passwd", "C:/x", "a/\x00", ".facecast/keys", "", "a\\..\\..\\x"):
        with pytest.raises(HTTPException) as err:
            safe_path(tmp_path, bad)
        assert err.value.status_code == 403, bad
    with pytest.raises(HTTPException) as err:
        safe_path(tmp_path, "a/missing.png")
    assert err.value.status_code == 404
    assert safe_path(tmp_path, "a/new.png", must_exist=False).name == "new.png"
