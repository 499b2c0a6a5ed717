"""`facecast studio`: prints a tokened link, serves it, warns on a public host, stops on Ctrl-C."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from facecast.studio.server import free_port


def _start(ws, *args):
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "BROWSER": "", "DISPLAY": ""}
    return subprocess.Popen([sys.executable, "-m", "facecast", "studio", "-w", str(ws.root), "--no-browser", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _read_url(proc, timeout=60.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        m = re.search(r"(http://\S+\?token=\S+)", line)
        if m:
            return m.group(1)
        if proc.poll() is not None:
            break
    raise AssertionError(f"no URL printed; stderr: {proc.stderr.read()}")


def _get(url, headers=None):
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


@pytest.mark.slow
def test_studio_command_serves_with_token_and_stops_on_ctrl_c(studio_ws):
    port = free_port()
    proc = _start(studio_ws, "--port", str(port))
    try:
        url = _read_url(proc)
        assert url.startswith(f"http://127.0.0.1:{port}/?token=")
        token = url.split("token=", 1)[1]
        base = f"http://127.0.0.1:{port}/"
        deadline = time.monotonic() + 30
        while True:
            try:
                status, _ = _get(base + "api/jobs")
                break
            except (urllib.error.URLError, ConnectionError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        assert status == 401
        status, body = _get(base + "api/workspace/status", {"X-Facecast-Token": token})
        assert status == 200 and b"sides" in body
        proc.send_signal(signal.SIGINT)
        assert proc.wait(60) == 0 or proc.returncode in (0, 130)
    finally:
        if proc.poll() is None:
            proc.kill()


@pytest.mark.slow
def test_public_host_warns(studio_ws):
    proc = _start(studio_ws, "--host", "0.0.0.0", "--port", str(free_port()))
    try:
        _read_url(proc)
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        proc.wait(60)
        assert "warning" in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
