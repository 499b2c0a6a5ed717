"""Native libraries' stderr chatter (mediapipe, TFLite, absl) is silenced at the descriptor level and
shown with `--verbose`; our own progress and error lines still get through."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from facecast.media.images import write_image
from facecast.media.synth import Actor, render_clip, sample_photo

NOISE = ("absl::InitializeLog", "inference_feedback_manager", "XNNPACK")


@pytest.fixture()
def dst_frames(workspace):
    img, lm = sample_photo("takeo")
    for i, f in enumerate(render_clip([Actor(img, lm, face_px=(80, 90))], size=(200, 150), n_frames=2).frames):
        write_image(workspace.data("dst") / f"{i:05d}.png", f)
    return workspace


def _extract(ws, *root_options: str, workers: str = "1") -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "FACECAST_VERBOSE")}
    return subprocess.run([sys.executable, "-m", "facecast", *root_options, "extract", "dst", "-w", str(ws.root),
                           "--size", "64", "--workers", workers, "--json"],
                          capture_output=True, text=True, timeout=600, env=env)


@pytest.mark.parametrize("workers", ["1", "2"])
def test_extract_prints_no_native_noise(dst_frames, workers):
    proc = _extract(dst_frames, workers=workers)
    assert proc.returncode == 0, proc.stderr
    assert not [n for n in NOISE if n in proc.stderr], proc.stderr


def test_verbose_shows_native_output(dst_frames):
    proc = _extract(dst_frames, "--verbose")
    assert proc.returncode == 0, proc.stderr
    assert any(n in proc.stderr for n in NOISE), proc.stderr


def test_python_stderr_still_reaches_the_terminal_inside(capfd):
    from facecast.console import native_quiet

    with native_quiet():
        os.write(2, b"native chatter\n")
        print("our line", file=sys.stderr)
    os.write(2, b"after\n")
    err = capfd.readouterr().err
    assert "native chatter" not in err and "our line" in err and "after" in err


def test_summary_table_reads_as_text_and_json_keeps_values(capsys):
    """QA: tables showed `None`, `[]`, "['labelled: ...']" and `90.5763713489996`; --json keeps raw values."""
    import json

    from facecast.console import summary

    data = {"seconds": 90.5763713489996, "patches": None, "passthrough": [], "notes": ["labelled: ok", "x"],
            "size": (160, 200), "ok": True, "gate": {"frames_scored": 41, "mean": 0.123456789}}
    summary(data, as_json=False)
    out = capsys.readouterr().out
    assert "90.58" in out and "90.576" not in out
    assert "None" not in out and "[]" not in out and "['" not in out
    assert "labelled: ok, x" in out and "(160, 200)" in out and "True" in out and "mean: 0.1235" in out
    summary(data, as_json=True)
    back = json.loads(capsys.readouterr().out)
    assert back["seconds"] == 90.5763713489996 and back["patches"] is None and back["passthrough"] == []


def test_ctrl_c_says_the_work_is_kept(tmp_path, monkeypatch, capsys):
    """QA: Ctrl-C during `train` saved the model but printed nothing: typer turns KeyboardInterrupt into
    Exit(130) before our handler sees it, so the promised one line never appeared."""
    from facecast import cli
    from facecast.workspace import Workspace

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(Workspace, "open", interrupted)
    with pytest.raises(SystemExit) as exc:
        cli.main(["workspace", "init", str(tmp_path / "ws")])
    assert exc.value.code == 130
    assert "interrupted: completed work is kept" in capsys.readouterr().err
