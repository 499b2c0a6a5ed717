"""The README's commands, run as written: its set-up block agrees with .ci/run, and its "Stages" recipe
runs from `workspace init` to `verify` on rendered sample clips (only the iteration count made small,
through the documented `--target-iter`)."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


def bash_blocks(text: str) -> list[str]:
    return re.findall(r"^```bash\n(.*?)^```", text, flags=re.S | re.M)


def stages_block() -> list[str]:
    text = README.read_text()
    section = text[text.index("## Stages"):]
    block = bash_blocks(section)[0]
    lines = []
    for raw in block.splitlines():
        # drop trailing comments the way bash would (quotes respected), keep the command text as written
        words = shlex.split(raw, comments=True)
        if words:
            lines.append(raw.split("  #")[0].strip() if "  #" in raw else raw.strip())
    return lines


def test_setup_command_is_one_line_that_uses_the_constraints():
    setup = bash_blocks(README.read_text())[0].strip().splitlines()
    assert len(setup) == 1, setup
    assert setup[0].count("-c constraints.txt") == 2 and setup[0].endswith("facecast demo")
    ci = (ROOT / ".ci" / "run").read_text()
    for step in setup[0].split("&&")[:-1]:  # the installs, as CI runs them
        pkgs = step.strip().removeprefix("pip install").strip()
        assert f"-m pip install -q {pkgs}" in ci, (step, ci)
    assert "python3 -m venv" in ci and "python3 -m pytest -q" in ci
    test_cmd = bash_blocks(README.read_text())[1].strip()
    assert test_cmd == "python3 -m pytest -q"


def test_constraints_pin_every_dependency_and_no_click_import():
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, _, version = line.partition("==")
            pins[name.lower().replace("_", "-")] = version
    import tomllib

    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = deps["dependencies"] + deps["optional-dependencies"]["test"]
    for req in wanted:
        name = re.split(r"[<>=!~; \[]", req, maxsplit=1)[0].lower().replace("_", "-")
        assert name in pins, f"{name} is a dependency but has no tested version in constraints.txt"
    # typer 0.29 vendors click and no longer installs it; uvicorn (the studio) does. facecast itself must
    # never import `click`, so its usage errors work whichever way click arrives or does not.
    offenders = [str(p.relative_to(ROOT)) for p in (ROOT / "src").rglob("*.py")
                 if re.search(r"^\s*(import click|from click\b)", p.read_text(), re.M)]
    assert not offenders, offenders


@pytest.mark.slow
def test_readme_stages_recipe_runs_as_written(tmp_path):
    from facecast.demo.material import ClipSpec, render_side_video
    from facecast.workspace import Workspace

    lines = stages_block()
    assert lines[0] == "facecast workspace init WS" and lines[-1].startswith("facecast verify")
    console = shutil.which("facecast", path=str(Path(sys.executable).parent)) or shutil.which("facecast")
    assert console, "no installed facecast console script"
    env = dict(os.environ, PATH=f"{Path(console).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    outputs = []
    for line in lines:
        if line.startswith("facecast train"):
            line += " --target-iter 2"  # the one change: a CPU-sized iteration count
        proc = subprocess.run(["bash", "-ec", line], cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=1500)
        assert proc.returncode == 0, f"{line}\n{proc.stderr[-3000:]}"
        assert "Traceback" not in proc.stderr
        outputs.append(proc.stdout + proc.stderr)
        if line == "facecast workspace init WS":  # the README's WS holds data_src.mp4 and data_dst.mp4
            ws = Workspace.open(tmp_path / "WS")
            render_side_video(ws, "src", ClipSpec("einstein", 6, size=(256, 192), face_px=(95.0, 105.0), seed=1))
            render_side_video(ws, "dst", ClipSpec("takeo", 6, size=(256, 192), face_px=(95.0, 105.0), seed=2))
    assert (tmp_path / "WS" / "result.mp4").is_file()
    verdict = outputs[-1]
    assert "valid, signed by workspace" in verdict and "model alice" in verdict and "trusted against" in verdict
