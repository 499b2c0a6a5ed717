"""Studio fixtures: one small real workspace, one running server and one headless Chromium per session.

    studio_ws       a workspace built by the stage functions (demo material: consent, clips, frames,
                    extract src/dst with landmarks) plus the shipped demo model (iteration 2700)
    studio_server   the studio on 127.0.0.1:<free port> in a thread: .url .token .ws .app
    studio_client   a fastapi TestClient on its own app over studio_ws (fast, no sockets), token header set
    browser_page    a Playwright page on Debian's `chromium` (never a downloaded browser), signed in;
                    skipped with the reason when chromium or playwright is missing
    screenshot      screenshot(page, name) -> path under tests/studio/screenshots/
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

SCREENSHOTS = Path(__file__).with_name("screenshots")
MODEL = "demo"


def build_studio_workspace(root: Path, src_frames: int = 6, dst_frames: int = 8):
    """Consent, clips, frames and faces through the demo's stage calls, then the shipped demo weights."""
    from facecast.demo import weights
    from facecast.demo.run import build_inputs
    from facecast.workspace import Workspace

    ws = Workspace.open(root, create=True)
    build_inputs(ws, src_frames, dst_frames, quiet=True, extract_workers=1)
    weights.install(ws.model(MODEL), weights.shipped_weights())
    return ws


@pytest.fixture(scope="session")
def studio_ws(tmp_path_factory):
    return build_studio_workspace(tmp_path_factory.mktemp("studio") / "ws")


@dataclass
class StudioServer:
    url: str
    token: str
    ws: object
    app: object

    def link(self, path: str = "/") -> str:
        sep = "&" if "?" in path else "?"
        return f"{self.url.rstrip('/')}{path}{sep}token={self.token}"


def _start_server(ws):
    import uvicorn

    from facecast.studio.app import create_app
    from facecast.studio.server import free_port, new_token

    token = new_token()
    app = create_app(ws, token, shutdown_timeout=60)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="studio-test-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("studio server did not start")
        time.sleep(0.05)
    return server, thread, StudioServer(f"http://127.0.0.1:{port}/", token, ws, app)


@pytest.fixture(scope="session")
def studio_server(studio_ws):
    server, thread, info = _start_server(studio_ws)
    yield info
    server.should_exit = True
    thread.join(90)


@pytest.fixture()
def studio_client(studio_ws):
    from fastapi.testclient import TestClient

    from facecast.studio.app import create_app
    from facecast.studio.server import new_token

    token = new_token()
    app = create_app(studio_ws, token, shutdown_timeout=60)
    with TestClient(app, base_url="http://127.0.0.1") as client:
        client.headers["X-Facecast-Token"] = token
        client.token = token
        yield client


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="session")
def _browser():
    exe = chromium_path()
    if exe is None:
        pytest.skip("chromium is not installed (apt-get install chromium); CI installs it")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed (pip install -e '.[test]')")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, headless=True,
                                    args=["--no-sandbox"] if os.geteuid() == 0 else [])
        yield browser
        browser.close()


@pytest.fixture()
def browser_page(_browser, studio_server):
    """A fresh signed-in page (the one-time link sets the cookie), 1280x800."""
    context = _browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.set_default_timeout(30_000)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(studio_server.link("/"))
    page.js_errors = errors
    yield page
    context.close()


@pytest.fixture()
def screenshot():
    SCREENSHOTS.mkdir(exist_ok=True)

    def take(page, name: str) -> Path:
        path = SCREENSHOTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=False)
        return path

    return take
