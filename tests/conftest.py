"""Shared fixtures: real face photos (bundled with the package) rendered into small clips."""

from __future__ import annotations

import os
import tempfile

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# Results written outside a workspace are signed with a per-user key: keep the tests' one private.
os.environ.setdefault("FACECAST_HOME", tempfile.mkdtemp(prefix="facecast-home-"))


@pytest.fixture(scope="session")
def einstein():
    from facecast.media.synth import sample_photo

    return sample_photo("einstein")


@pytest.fixture(scope="session")
def takeo():
    from facecast.media.synth import sample_photo

    return sample_photo("takeo")


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    from facecast.media.synth import sample_photo

    return sample_photo("astronaut")[0]


@pytest.fixture()
def workspace(tmp_path):
    from facecast.workspace import Workspace

    return Workspace.open(tmp_path / "ws", create=True)


def run_cli(*args: str):
    """Run the CLI in-process the way a user would; returns (exit code, stdout, stderr)."""
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", "facecast", *args], capture_output=True, text=True, timeout=600
    )
    return proc.returncode, proc.stdout, proc.stderr
