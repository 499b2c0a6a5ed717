"""What the studio's page tests share: a private copy of the session workspace, an API client, a served
app and a signed-in browser page over it, and waiting for a job (conftest's fixtures use them too)."""

from __future__ import annotations

import shutil
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass


def private_copy(studio_ws, tmp_path_factory, name: str):
    """A copy of the session workspace without its model, for tests that delete, rewrite or train."""
    from facecast.workspace import Workspace

    root = tmp_path_factory.mktemp(name) / "ws"
    shutil.copytree(studio_ws.root, root, ignore=shutil.ignore_patterns("model", ".facecast_cache"))
    return Workspace.open(root)


@contextmanager
def api_client(ws):
    """A fastapi TestClient on a fresh app over `ws` (no sockets), the token header set, `.token` kept."""
    from fastapi.testclient import TestClient

    from facecast.studio.app import create_app
    from facecast.studio.server import new_token

    token = new_token()
    with TestClient(create_app(ws, token, shutdown_timeout=60), base_url="http://127.0.0.1") as client:
        client.headers["X-Facecast-Token"] = token
        client.token = token
        yield client


def wait_job(client, job_id, timeout: float = 300, poll: float = 0.1) -> dict:
    """The job's final record once it is neither queued nor running."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/api/jobs/{job_id}").json()
        if job["state"] not in ("queued", "running"):
            return job
        time.sleep(poll)
    raise AssertionError(f"job {job_id} still running after {timeout} s")


@dataclass
class StudioServer:
    url: str
    token: str
    ws: object
    app: object

    def link(self, path: str = "/") -> str:
        sep = "&" if "?" in path else "?"
        return f"{self.url.rstrip('/')}{path}{sep}token={self.token}"


@contextmanager
def served(ws, shutdown_timeout: float = 60):
    """The studio over `ws` on 127.0.0.1:<free port> in a thread, stopped on exit."""
    import uvicorn

    from facecast.studio.app import create_app
    from facecast.studio.server import free_port, new_token

    token = new_token()
    app = create_app(ws, token, shutdown_timeout=shutdown_timeout)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="studio-test-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("studio server did not start")
        time.sleep(0.05)
    try:
        yield StudioServer(f"http://127.0.0.1:{port}/", token, ws, app)
    finally:
        server.should_exit = True
        thread.join(90)


@contextmanager
def signed_in_page(browser, server: StudioServer, path: str = "/"):
    """A fresh 1280x800 page signed in by the one-time link at `path`; page errors gathered in `.js_errors`."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.set_default_timeout(30_000)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.js_errors = errors
    page.base = server.url.rstrip("/")
    page.goto(server.link(path))
    try:
        yield page
    finally:
        context.close()
