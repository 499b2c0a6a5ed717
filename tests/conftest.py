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
def bare_workspace(tmp_path):
    """A fresh workspace with no consent record (for the consent tests themselves)."""
    from facecast.workspace import Workspace

    return Workspace.open(tmp_path / "ws", create=True)


@pytest.fixture()
def workspace(bare_workspace):
    """A fresh workspace whose source person ("sample": the bundled test photos) has consented, since
    extract src, train and merge refuse to run without it."""
    grant_consent(bare_workspace)
    return bare_workspace


def grant_consent(ws, identity: str = "sample"):
    from facecast.provenance.consent import add_consent

    return add_consent(ws, identity, "bundled public-domain/test photos, used only by the tests",
                       "facecast tests", src=True)


def run_cli(*args: str):
    """Run the CLI in-process the way a user would; returns (exit code, stdout, stderr)."""
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", "facecast", *args], capture_output=True, text=True, timeout=600
    )
    return proc.returncode, proc.stdout, proc.stderr
