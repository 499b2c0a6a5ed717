"""The studio in a real browser (Debian's chromium, headless, through Playwright).

One server and one workspace for the whole session (conftest); each test saves a screenshot under
tests/studio/screenshots/ (the README's three come from here)."""

from __future__ import annotations

import hashlib
import json

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]
MODEL = "demo"


def _digest(page, selector: str) -> str:
    return hashlib.sha1(page.locator(selector).screenshot()).hexdigest()


def test_token_missing_is_401_and_traversal_refused(_browser, studio_server):
    context = _browser.new_context()  # no cookie, no token
    page = context.new_page()
    resp = page.goto(studio_server.url)
    assert resp.status == 401 and "token" in page.content()
    assert page.request.get(studio_server.url + "api/jobs").status == 401
    context.close()
    context = _browser.new_context()
    page = context.new_page()
    assert page.goto(studio_server.link("/")).status == 200  # the one-time link signs this browser in
    for bad in ("files/..%2F..%2F..%2Fetc%2Fpasswd", "files/%2Fetc%2Fpasswd", "files/.facecast/keys/x",
                "files/data_dst/..%2F..%2F..%2F..%2Fetc%2Fpasswd"):
        r = page.request.get(studio_server.url + bad)
        assert r.status in (403, 404), bad
        assert "root:" not in r.text()
    assert page.request.get(studio_server.url + "files/workspace.json").status == 200
    # a POST with the cookie alone (what a cross-site form could send) is refused
    assert page.request.post(studio_server.url + "api/workspace/run", data={"action": "video"}).status == 403
    context.close()


def test_workspace_page(browser_page, studio_server, screenshot):
    page = browser_page
    page.goto(studio_server.url)
    page.wait_for_selector("#next-text")
    page.wait_for_selector("tr[data-stage=Faces]")
    text = page.locator("#stages").inner_text()
    assert "found" in text and "iteration 2700" in text
    assert page.locator("tr[data-stage=Consent]").inner_text().count("valid") >= 1
    assert page.locator("#nav a.active").inner_text() == "Workspace"
    assert page.locator("#cluster").is_hidden()  # no --engine ray run in this workspace
    screenshot(page, "workspace")
    assert not page.js_errors


def test_merge_page_erode_changes_preview_and_session(browser_page, studio_server, screenshot):
    page = browser_page
    page.goto(studio_server.url + "merge")
    page.wait_for_function("Number(document.getElementById('frame').dataset.renders || 0) >= 1", timeout=120_000)
    page.locator("#next").click()  # a frame in the middle: the face is large there
    page.wait_for_function("Number(document.getElementById('frame').dataset.renders) >= 2", timeout=60_000)
    erode0 = int(page.locator("#frame").get_attribute("data-erode"))
    renders = int(page.locator("#frame").get_attribute("data-renders"))
    before = _digest(page, "#frame")
    page.locator("body").click(position={"x": 5, "y": 300})
    for _ in range(4):
        page.keyboard.press("Shift+W")  # DFL's erode key, shift = 5 steps
    target = erode0 + 20
    page.wait_for_function(f"document.getElementById('frame').dataset.erode === '{target}' && "
                           f"Number(document.getElementById('frame').dataset.renders) > {renders}", timeout=60_000)
    assert page.locator("#num-erode").input_value() == str(target)
    assert _digest(page, "#frame") != before  # the re-rendered frame differs
    page.wait_for_function("Number(document.body.dataset.saved || 0) >= 1", timeout=30_000)
    session = json.loads((studio_server.ws.model(MODEL) / "merge_session.json").read_text())
    assert session["settings"]["erode"] == target  # the CLI's session file records it
    assert "settings changed" in page.locator("#merge-progress").inner_text()  # not "merged with the current settings"
    page.keyboard.press("?")
    assert page.locator("#help").is_visible() and "erode" in page.locator("#keys").inner_text()
    page.keyboard.press("Escape")
    assert not page.locator("#help").is_visible()
    page.locator("button[data-view=split]").click()
    page.wait_for_function(f"Number(document.getElementById('frame').dataset.renders) > {renders + 1}")
    screenshot(page, "merge")
    assert not page.js_errors


def test_train_page_preview_refreshes(browser_page, studio_server, screenshot):
    page = browser_page
    page.goto(studio_server.url + "train")
    page.wait_for_selector("#opts label")
    page.fill("#new-name", "tiny_browser")
    page.dispatch_event("#new-name", "change")
    page.wait_for_function("document.getElementById('start').textContent === 'Start'")
    page.wait_for_selector("[data-opt=preview_every]")
    for name, value in (("preview_every", "2"), ("eval_every", "0"), ("batch_size", "2"), ("save_minutes", "0")):
        page.fill(f"[data-opt={name}]", value)
    page.fill("#max-iters", "400")
    page.click("#start")
    page.wait_for_function("document.getElementById('preview').dataset.mtime", timeout=300_000)
    first = page.locator("#preview").get_attribute("data-mtime")
    page.wait_for_function(f"document.getElementById('preview').dataset.mtime !== '{first}'", timeout=300_000)
    page.wait_for_function("document.getElementById('preview').naturalWidth > 0")
    assert page.locator("[data-stat=speed]").inner_text() != "–"
    screenshot(page, "train")
    page.click("#stop")
    page.wait_for_function("document.querySelector('[data-stat=job]').textContent.startsWith('not training')",
                           timeout=300_000)
    state = json.loads((studio_server.ws.model("tiny_browser") / "state.json").read_text())
    assert state["iteration"] >= 4
    assert not page.js_errors


def test_verify_page_reads_the_watermark(browser_page, studio_server, tmp_path, screenshot):
    from facecast.media.images import read_image, write_image
    from facecast.provenance import watermark_frame

    ws = studio_server.ws
    frame = read_image(sorted(ws.data("dst").glob("*.png"))[0])
    marked = tmp_path / "marked.png"
    write_image(marked, watermark_frame(ws, frame))
    page = browser_page
    page.goto(studio_server.url + "verify")
    page.set_input_files("#file", str(marked))
    page.wait_for_selector("#verdict[data-labelled]", timeout=120_000)
    assert page.locator("#verdict").get_attribute("data-labelled") == "true"
    assert "made in this workspace" in page.locator("#rows").inner_text()
    plain = tmp_path / "plain.png"
    write_image(plain, frame)
    page.set_input_files("#file", str(plain))
    page.wait_for_selector("#verdict[data-labelled=false]", timeout=120_000)
    screenshot(page, "verify")
    assert not page.js_errors


def test_small_clip_is_scaled_up_and_empty_panels_say_so(browser_page, studio_server):
    """QA on a 160x200 clip: the merge preview sat at native size in a 700 px stage, the masks page showed
    an empty black box for a missing XSeg preview, face-grid names lost their underscore to clipping."""
    page = browser_page
    page.goto(studio_server.url + "merge")
    page.wait_for_function("Number(document.getElementById('frame').dataset.renders || 0) >= 1", timeout=120_000)
    natural_h = page.evaluate("document.getElementById('frame').naturalHeight")
    shown_h = page.locator("#frame").bounding_box()["height"]
    assert natural_h < 360 and shown_h >= 359, (natural_h, shown_h)
    page.goto(studio_server.url + "masks")
    page.locator("#train-model").fill("no-such-xseg")
    page.wait_for_timeout(500)
    assert page.locator("#preview-none").is_visible() and not page.locator("#preview").is_visible()
    page.goto(studio_server.url + "faces")
    label = page.locator(".cell .label").first
    label.wait_for()
    assert page.evaluate("el => el.scrollHeight <= el.clientHeight", label.element_handle())
    assert not page.js_errors
