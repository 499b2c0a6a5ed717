"""Make the README's studio screenshots (docs/screenshots/{workspace,merge,train}.png).

Builds a small workspace with the demo material and the shipped demo weights, merges it and makes the
video (so every stage has state), then drives the studio in headless Debian chromium: the workspace page,
the merger in split view, and the train page while the demo model resumes training (its preview and
curves are those of a trained model). Run from the repo root: `python scripts/studio_screenshots.py`.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "studio"))


def main() -> None:
    import os

    os.environ.setdefault("FACECAST_HOME", tempfile.mkdtemp(prefix="facecast-home-"))
    from conftest import _start_server, build_studio_workspace  # the tests' own builders
    from playwright.sync_api import sync_playwright

    from facecast.merge.settings import MergeSettings
    from facecast.studio import stages
    from facecast.studio.jobs import JobRunner

    out = ROOT / "docs" / "screenshots"
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="studio-shots-") as tmp:
        ws = build_studio_workspace(Path(tmp) / "ws", src_frames=8, dst_frames=12)
        from facecast.merge.session import Session

        session = Session.load(ws.model("demo"), "demo")
        session.settings = MergeSettings(mode="overlay", mask_mode="dst", color_transfer="rct", erode=2, blur=6)
        session.save()
        runner = JobRunner()
        for target in (stages.merge_job(ws, "demo"), stages.video_job(ws)):
            job = runner.submit("x", target)
            runner.wait(job.id)
            assert job.state == "done", job.error
        server, thread, info = _start_server(ws)
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=shutil.which("chromium"), headless=True,
                                            args=["--no-sandbox"])
                page = browser.new_page(viewport={"width": 1280, "height": 860})
                page.goto(info.link("/"))
                page.wait_for_selector("tr[data-stage=Faces]")
                page.screenshot(path=str(out / "workspace.png"))
                page.goto(info.url + "merge")
                page.wait_for_function("Number(document.getElementById('frame').dataset.renders || 0) >= 1", timeout=120_000)
                for _ in range(5):
                    page.locator("#next").click()
                page.locator("button[data-view=split]").click()
                time.sleep(3)
                page.screenshot(path=str(out / "merge.png"))
                page.goto(info.url + "train")
                page.wait_for_selector("[data-opt=preview_every]")
                page.fill("[data-opt=preview_every]", "3")
                page.fill("[data-opt=eval_every]", "6")
                page.fill("#max-iters", "30")
                page.click("#start")
                page.wait_for_function("document.getElementById('preview').dataset.mtime", timeout=600_000)
                first = page.locator("#preview").get_attribute("data-mtime")
                page.wait_for_function(f"document.getElementById('preview').dataset.mtime !== '{first}'", timeout=600_000)
                time.sleep(2)
                page.screenshot(path=str(out / "train.png"), full_page=True)
                page.click("#stop")
                browser.close()
        finally:
            server.should_exit = True
            thread.join(120)
    print("wrote", *sorted(str(p) for p in out.glob("*.png")))


if __name__ == "__main__":
    main()
