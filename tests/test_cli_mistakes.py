"""Every command-line mistake a new user makes: one `error:` line, a non-zero exit, never a traceback.

These run the INSTALLED `facecast` console script (the one pip wrote next to this Python), in a neutral
folder, the way a user types it. The in-process runner would have hidden the bug this guards against:
typer stopped installing `click`, and the catch-all that imported it crashed every usage error.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest


def _console_script() -> str:
    beside = Path(sys.executable).with_name("facecast")
    found = str(beside) if beside.exists() else shutil.which("facecast")
    if not found:
        pytest.fail("no installed `facecast` console script: install the package (pip install -e .)")
    return found


def facecast(cwd: Path, *args: str, columns: str | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.pop("COLUMNS", None)
    if columns:
        env["COLUMNS"] = columns
    return subprocess.run([_console_script(), *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300, env=env)


MISTAKES = {
    "typo'd flag": ["train", "-w", "nowhere", "--model", "m", "--target-itr", "5"],
    "typo'd command": ["extrct", "dst", "-w", "nowhere"],
    "missing required option": ["merge", "-w", "nowhere"],
    "wrong type": ["train", "-w", "nowhere", "--model", "m", "--target-iter", "abc"],
    "no arguments": [],
    "group without a command": ["consent"],
    "missing file": ["frames", "nope.mp4", "out"],
    "missing workspace": ["extract", "dst", "-w", "nowhere"],
}


@pytest.mark.parametrize("name", list(MISTAKES))
def test_mistake_is_one_error_line(tmp_path, name):
    proc = facecast(tmp_path, *MISTAKES[name])
    assert proc.returncode != 0, name
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: "), lines[0]


def test_usage_errors_name_the_fix(tmp_path):
    err = facecast(tmp_path, *MISTAKES["typo'd flag"]).stderr
    assert "--target-itr" in err and "--target-iter" in err and "facecast train --help" in err
    err = facecast(tmp_path, *MISTAKES["typo'd command"]).stderr
    assert "'extract'" in err
    err = facecast(tmp_path).stderr
    assert "extract" in err and "merge" in err  # the list of commands


@pytest.mark.parametrize("name", ["take [final].mp4", "clip[/x].mp4", "[bold]x[/bold].mp4"])
def test_file_names_with_brackets_print_literally(tmp_path, name):
    proc = facecast(tmp_path, "frames", name, "out")
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip() == f"error: {name}: file not found"


def test_help_is_not_cut_and_flags_take_no_value(tmp_path):
    merge = facecast(tmp_path, "merge", "--help").stdout
    assert "--output-face-scale" in merge and "…" not in merge
    assert "learned-prd*learned-dst" in merge  # long choice lists wrap instead of being cut
    extract = facecast(tmp_path, "extract", "--help").stdout
    assert "<bool>" not in extract
    assert '[[x, y] * 68]' in extract  # not eaten as rich markup
    narrow = facecast(tmp_path, "merge", "--help", columns="80").stdout
    assert "…" not in narrow and "seamless-hist-match" in narrow.replace(" ", "").replace("│", "")


def test_version_and_help_exit_zero(tmp_path):
    assert facecast(tmp_path, "--version").returncode == 0
    assert facecast(tmp_path, "--help").returncode == 0


@pytest.mark.parametrize("args", [["extract", "src"], ["faceset", "sort", "dst", "--by", "blur"]])
def test_forgotten_w_in_a_plain_folder_leaves_it_untouched(tmp_path, args):
    """QA: `facecast extract src` without -w in a plain folder made it a workspace (consent/, data_src/,
    data_dst/, model/, workspace.json) and then blamed the missing consent record."""
    (tmp_path / "holiday.jpg").write_bytes(b"not really")
    proc = facecast(tmp_path, *args)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode != 0 and len(lines) == 1 and "is not a facecast workspace" in lines[0], proc.stderr
    assert "-w" in lines[0] and "consent" not in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["holiday.jpg"]
