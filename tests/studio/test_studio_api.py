"""Studio API over the real stage functions: status, merger preview + session, consent, jobs end to end."""

from __future__ import annotations

import json
import shutil
import time

import numpy as np
import pytest

from facecast.media.images import decode_image

from .helpers import api_client, wait_job

MODEL = "demo"


def test_pages_are_discovered_and_served(studio_client):
    from facecast.studio.app import discover_pages

    names = [n for n, _ in discover_pages()]
    assert {"workspace", "train", "merge", "verify"} <= set(names)
    for page in ("/", "/train", "/merge", "/verify"):
        r = studio_client.get(page)
        assert r.status_code == 200 and '<nav id="nav">' in r.text, page
    assert studio_client.get("/nosuchpage").status_code == 404
    assert "export async function api" in studio_client.get("/static/common.js").text


def test_workspace_status_reads_every_stage(studio_client, studio_ws):
    s = studio_client.get("/api/workspace/status").json()
    assert s["sides"]["dst"]["frames"] == len(list(studio_ws.data("dst").glob("*.png")))
    assert s["sides"]["dst"]["extract"]["faces_written"] == s["sides"]["dst"]["aligned"] > 0
    assert any(c["status"] == "valid" for c in s["consents"])
    demo = next(m for m in s["models"] if m["name"] == MODEL)
    assert demo["iteration"] == 2700
    assert s["next"]["text"]


def test_merge_preview_is_watermarked_and_follows_settings(studio_client, studio_ws):
    from facecast.provenance import workspace_payload
    from facecast.provenance.watermark import detect

    st = studio_client.get(f"/api/merge/state?model={MODEL}").json()
    frame = st["frames"][len(st["frames"]) // 2]
    imgs = {}
    for erode in (0, 40):
        r = studio_client.post("/api/merge/preview", json={"model": MODEL, "frame": frame, "settings": {"erode": erode}})
        assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
        imgs[erode] = decode_image(r.content)
    assert np.abs(imgs[0].astype(int) - imgs[40].astype(int)).mean() > 0.05  # erode changes the pixels
    det = detect(imgs[0])
    assert det.found and det.payload == workspace_payload(studio_ws)
    before = decode_image(studio_client.post("/api/merge/preview", json={"model": MODEL, "frame": frame, "view": "before"}).content)
    assert before.shape == imgs[0].shape
    mask = decode_image(studio_client.post("/api/merge/preview", json={"model": MODEL, "frame": frame, "view": "mask"}).content)
    assert mask.max() > 200 and mask.min() < 30
    r = studio_client.post("/api/merge/preview", json={"model": MODEL, "frame": frame, "settings": {"erode": 9999}})
    assert r.status_code == 400 and "erode" in r.json()["detail"]


def test_merge_settings_land_in_the_session_file_the_cli_reads(studio_client, studio_ws):
    from facecast.merge.session import Session

    frames = studio_client.get(f"/api/merge/state?model={MODEL}").json()["frames"]
    r = studio_client.post("/api/merge/settings", json={"model": MODEL, "settings": {"blur": 12}, "scope": "all"})
    assert r.status_code == 200
    r = studio_client.post("/api/merge/settings", json={"model": MODEL, "settings": {"erode": 7}, "scope": "from",
                                                        "frame": frames[-2]})
    session = Session.load(studio_ws.model(MODEL), MODEL)
    assert session.settings.blur == 12
    assert session.overrides == {frames[-2]: {"erode": 7}, frames[-1]: {"erode": 7}}
    assert session.effective(frames[-1]).erode == 7 and session.effective(frames[0]).erode == session.settings.erode
    studio_client.post("/api/merge/override/clear", json={"model": MODEL, "frame": frames[-1]})
    data = json.loads((studio_ws.model(MODEL) / "merge_session.json").read_text())
    assert list(data["overrides"]) == [frames[-2]]
    for f in frames[-2:]:
        studio_client.post("/api/merge/override/clear", json={"model": MODEL, "frame": f})


@pytest.fixture()
def no_consent_client(studio_ws, tmp_path):
    """A copy of the studio workspace whose consent records were removed."""
    from fastapi.testclient import TestClient

    from facecast.studio.app import create_app
    from facecast.workspace import Workspace

    root = tmp_path / "ws"
    shutil.copytree(studio_ws.root, root, symlinks=True)
    shutil.rmtree(root / "consent")
    (root / "consent").mkdir()
    ws = Workspace.open(root)
    token = "t" * 24
    with TestClient(create_app(ws, token), base_url="http://127.0.0.1") as client:
        client.headers["X-Facecast-Token"] = token
        client.ws = ws
        yield client


def test_no_consent_no_merge_no_preview_no_training(no_consent_client):
    c = no_consent_client
    frame = c.get(f"/api/merge/state?model={MODEL}").json()["frames"][0]
    r = c.post("/api/merge/preview", json={"model": MODEL, "frame": frame})
    assert r.status_code == 403 and "consent" in r.json()["detail"]
    r = c.post("/api/merge/run", json={"model": MODEL})
    assert r.status_code == 403 and "consent" in r.json()["detail"]
    r = c.post("/api/train/start", json={"model": MODEL, "max_iters": 2})
    assert r.status_code == 403 and "consent" in r.json()["detail"]
    # and the jobs themselves refuse too (the stage functions check): nothing gets merged or trained
    job = c.post("/api/workspace/run", json={"action": f"merge:{MODEL}"}).json()
    job = wait_job(c, job["id"], 120)
    assert job["state"] == "failed" and "consent" in job["error"]
    assert not any(c.ws.merged.glob("*.png"))


@pytest.mark.slow
def test_train_job_progress_preview_and_stop(studio_client, studio_ws):
    """Create a tiny model, train it as a job with previews every 2 iterations, stop it: state is saved."""
    opts = {"preview_every": 2, "eval_every": 0, "save_minutes": 0, "batch_size": 2}
    r = studio_client.post("/api/train/start", json={"model": "tiny_api", "preset": "tiny", "options": opts,
                                                     "max_iters": 100000})
    assert r.status_code == 200, r.text
    job = r.json()
    again = studio_client.post("/api/train/start", json={"model": "tiny_api", "max_iters": 3})
    assert again.status_code == 409  # no two trainings of one model
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        st = studio_client.get("/api/train/state?model=tiny_api").json()["state"]
        if st.get("preview") and st["iteration"] >= 2:
            break
        time.sleep(0.5)
    assert st["preview"] and st["iteration"] >= 2 and st["job"]["state"] == "running"
    assert st["ms_per_iter"] and st["job"]["extra"]["ms_per_iter"]
    img = studio_client.get(st["preview"])
    assert img.status_code == 200 and img.headers["content-type"] == "image/png"
    studio_client.post(f"/api/jobs/{job['id']}/stop")
    job = wait_job(studio_client, job["id"], 300)
    assert job["state"] == "stopped"
    saved = json.loads((studio_ws.model("tiny_api") / "state.json").read_text())
    assert saved["iteration"] >= st["iteration"]  # Ctrl-C path: the trainer saved where it stopped
    # resume refuses architecture changes, exactly like the CLI
    r = studio_client.post("/api/train/start", json={"model": "tiny_api", "options": {"resolution": 128}, "max_iters": 1})
    assert r.status_code == 400 and "resolution" in r.json()["detail"]


@pytest.mark.slow
def test_merge_all_then_video_then_verify(studio_client, studio_ws):
    job = studio_client.post("/api/merge/run", json={"model": MODEL}).json()
    job = wait_job(studio_client, job["id"], 600)
    assert job["state"] == "done", job
    n = len(list(studio_ws.data("dst").glob("*.png")))
    assert len(list(studio_ws.merged.glob("*.png"))) == n
    job = wait_job(studio_client, studio_client.post("/api/merge/video").json()["id"], 600)
    assert job["state"] == "done", job
    assert studio_ws.result.is_file()
    rep = studio_client.post("/api/verify/file", json={"path": "result.mp4"}).json()
    assert rep["labelled"] and rep["manifest"]["present"]
    frame = sorted(studio_ws.merged.glob("*.png"))[0]
    rep = studio_client.post("/api/verify/upload", content=frame.read_bytes(), headers={"X-Filename": "x.png"}).json()
    assert rep["labelled"] and rep["watermark"]["found"]
    r = studio_client.post("/api/verify/file", json={"path": "../etc/passwd"})
    assert r.status_code == 403


def test_cluster_run_shows_on_the_workspace_page(tmp_path, studio_ws):
    """The last --engine ray run, read from the progress file the head writes (no Ray needed here)."""
    from facecast.cluster.shards import ProgressFile, write_shard_record
    from facecast.workspace import Workspace

    ws = Workspace.open(tmp_path / "ws", create=True)
    with api_client(ws) as c:
        assert c.get("/api/workspace/cluster").json() == {}
        prog = ProgressFile(ws.root, "r1", "merge", [{"node": "10.0.0.2", "id": "w1", "cpus": 1, "alive": True},
                                                     {"node": "10.0.0.3", "id": "w2", "cpus": 1, "alive": False}], "auto")
        prog.add(0, 32)
        prog.add(1, 8)
        prog.set(0, "done")
        prog.save()
        for _ in range(2):  # a first attempt lost with its node, then the retry elsewhere
            write_shard_record(ws.root, "r1", 1, state="running")
        got = c.get("/api/workspace/cluster").json()
    assert got["stage"] == "merge" and got["frames_done"] == 32 and got["frames_total"] == 40
    assert got["counts"] == {"done": 1, "running": 1} and got["shards"]["1"]["attempt"] == 2
    assert [w["alive"] for w in got["workers"]] == [True, False]
