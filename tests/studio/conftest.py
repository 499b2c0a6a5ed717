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
from pathlib import Path

import pytest

from .helpers import api_client, served, signed_in_page

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


@pytest.fixture(scope="session")
def studio_server(studio_ws):
    with served(studio_ws) as server:
        yield server


@pytest.fixture()
def studio_client(studio_ws):
    with api_client(studio_ws) as client:
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
    with signed_in_page(_browser, studio_server) as page:
        yield page


@pytest.fixture()
def screenshot():
    SCREENSHOTS.mkdir(exist_ok=True)

    def take(page, name: str) -> Path:
        path = SCREENSHOTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=False)
        return path

    return take
