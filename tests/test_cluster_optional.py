"""Ray stays an optional extra: without --engine nothing imports it (runs with or without Ray installed)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from facecast.errors import FacecastError

SRC = str(Path(__file__).resolve().parents[1] / "src")


def test_ray_is_not_imported_without_engine():
    """Without --engine nothing imports Ray: the CLI, the stages and the cluster modules themselves."""
    code = ("import sys\n"
            "import facecast.cli, facecast.merge.merger, facecast.faces.extract, facecast.quality.score, facecast.cluster.cli, facecast.cluster.stages\n"
            "from facecast.cluster.cli import make_engine\n"
            "assert make_engine(None, None) is None\n"
            "from typer.testing import CliRunner\n"
            "CliRunner().invoke(facecast.cli.app, ['merge', '--help'])\n"
            "CliRunner().invoke(facecast.cli.app, ['score', '--help'])\n"
            "print('ray' in sys.modules)\n")
    env = dict(os.environ, PYTHONPATH=SRC + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "False"



def test_engine_options_are_checked():
    from facecast.cluster.cli import make_engine
    from facecast.cluster.shards import group_by_weight, split

    with pytest.raises(FacecastError, match="only engine is ray"):
        make_engine("dask", None)
    with pytest.raises(FacecastError, match="need --engine ray"):
        make_engine(None, "head:6379")
    assert split(list(range(7)), 3) == [[0, 1, 2], [3, 4, 5], [6]]
    assert group_by_weight(list("abcd"), [48, 48, 1, 1], 16) == [[0], [1], [2, 3]]


def test_cluster_status_without_a_run_is_one_line(tmp_path):
    from facecast.workspace import Workspace

    Workspace.open(tmp_path / "ws", create=True)
    out = subprocess.run([sys.executable, "-m", "facecast", "cluster", "status", "-w", str(tmp_path / "ws")],
                         capture_output=True, text=True, timeout=120,
                         env=dict(os.environ, PYTHONPATH=SRC + os.pathsep + os.environ.get("PYTHONPATH", "")))
    assert out.returncode != 0 and "Traceback" not in out.stderr and "no cluster run recorded" in out.stderr


def test_unreachable_address_is_one_line_error():
    pytest.importorskip("ray", reason="Ray is not installed")
    from facecast.cluster.engine import RayEngine

    with pytest.raises(FacecastError, match="no Ray head answers there"):
        RayEngine(address="127.0.0.1:1").connect()
