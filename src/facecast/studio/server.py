"""`serve()`: run the studio with uvicorn, print its one-time link, open a browser when there is one."""

from __future__ import annotations

import secrets
import socket
import threading
import webbrowser
from pathlib import Path

from facecast.console import err_console, out_console
from facecast.errors import FacecastError
from facecast.workspace import Workspace

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def new_token() -> str:
    return secrets.token_urlsafe(24)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def studio_url(host: str, port: int, token: str | None = None) -> str:
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    shown = f"[{shown}]" if ":" in shown else shown
    return f"http://{shown}:{port}/" + (f"?token={token}" if token else "")


def has_browser() -> bool:
    try:
        webbrowser.get()
        return True
    except webbrowser.Error:
        return False


def serve(workspace: Path | str, host: str = "127.0.0.1", port: int | None = None, open_browser: bool = True,
          token: str | None = None) -> None:
    """Serve the studio until Ctrl-C; on exit every running job is stopped the Ctrl-C way (work kept)."""
    import uvicorn

    from facecast.studio.app import create_app

    ws = Workspace.open(workspace)
    token = token or new_token()
    if host not in LOOPBACK:
        err_console.print(f"warning: --host {host} makes the studio reachable from other "
                          "machines; anyone with the link can run jobs on this workspace. Use 127.0.0.1 "
                          "unless you trust the network.", highlight=False)
    try:
        port = port or free_port(host if host not in ("0.0.0.0", "::") else "127.0.0.1")
    except OSError as err:
        raise FacecastError(f"cannot bind {host}: {err.strerror}") from None
    app = create_app(ws, token)
    url = studio_url(host, port, token)
    out_console.print(f"facecast studio for {ws.root}\n  open: {url}\n  (Ctrl-C stops the "
                      "studio; running jobs are stopped and keep their work)", highlight=False, soft_wrap=True)
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=5)
    server = uvicorn.Server(config)
    if open_browser and has_browser():
        threading.Timer(1.0, webbrowser.open, args=(url,)).start()
    try:
        server.run()
    except OSError as err:
        raise FacecastError(f"cannot serve on {host}:{port}: {err.strerror}") from None
