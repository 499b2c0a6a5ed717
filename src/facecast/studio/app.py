"""`create_app(workspace, token)`: the studio's FastAPI application.

Security (issue 12), enforced here for every route, pages and page modules alike:
- every request carries the token: the `X-Facecast-Token` header, or the cookie that the one-time link
  `/?token=...` sets (then redirects to the same URL without the token, so it leaves the address bar);
  without it: 401;
- state-changing requests are POST and must carry the header itself (a cookie alone is what a
  cross-site form or fetch could ride on; a custom header needs a CORS preflight we never answer), and
  a foreign `Origin` is refused: 403;
- files come only from inside the workspace (`files.safe_path`).

Page modules: every module of `facecast.studio.pages` with a `router` (fastapi.APIRouter) is included,
so a new page needs no edit here. A page's HTML is `static/<page>.html`, served at `/<page>`.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib
import json
import pkgutil
import secrets
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import parse_qs, urlencode

from fastapi import APIRouter, FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response, StreamingResponse

from facecast.errors import ConsentError, FacecastError
from facecast.studio.files import safe_path
from facecast.studio.jobs import JobConflict, JobRunner
from facecast.workspace import Workspace

STATIC = Path(__file__).with_name("static")
TOKEN_HEADER = "x-facecast-token"
SAFE_METHODS = ("GET", "HEAD")
PAGES = ("workspace", "faces", "fixframe", "masks", "train", "merge", "verify")


def cookie_name(token: str) -> str:
    """Per-server cookie name (two studios on one host must not overwrite each other's cookie)."""
    return "facecast_" + hashlib.sha256(token.encode()).hexdigest()[:10]


class TokenGuard:
    """Pure ASGI middleware (streams server-sent events untouched) for the token and CSRF rules."""

    def __init__(self, app, token: str) -> None:
        self.app, self.token, self.cookie = app, token, cookie_name(token)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        request = Request(scope)
        method = scope["method"]
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        link_token = (query.get("token") or [None])[0]
        if link_token is not None and method in SAFE_METHODS:
            if not secrets.compare_digest(link_token, self.token):
                return await _deny(scope, receive, send, 401, "invalid token")
            rest = {k: v for k, v in query.items() if k != "token"}
            url = scope["path"] + ("?" + urlencode(rest, doseq=True) if rest else "")
            resp = RedirectResponse(url, status_code=303)
            resp.set_cookie(self.cookie, self.token, httponly=True, samesite="strict", path="/")
            return await resp(scope, receive, send)
        header = request.headers.get(TOKEN_HEADER)
        cookie = request.cookies.get(self.cookie)
        ok_header = header is not None and secrets.compare_digest(header, self.token)
        ok_cookie = cookie is not None and secrets.compare_digest(cookie, self.token)
        if not (ok_header or ok_cookie):
            return await _deny(scope, receive, send, 401, "missing or wrong access token: open the link that "
                               "`facecast studio` printed (it carries ?token=...)")
        if method not in SAFE_METHODS:
            if not ok_header:
                return await _deny(scope, receive, send, 403, f"cross-site request refused: {method} needs the "
                                   "X-Facecast-Token header")
            origin = request.headers.get("origin")
            if origin and origin != "null" and origin.split("://", 1)[-1] != request.headers.get("host", ""):
                return await _deny(scope, receive, send, 403, f"cross-site request refused (origin {origin})")
        return await self.app(scope, receive, send)


async def _deny(scope, receive, send, status: int, detail: str) -> None:
    resp = JSONResponse({"detail": detail}, status_code=status)
    await resp(scope, receive, send)


def discover_pages() -> list[tuple[str, APIRouter]]:
    """(module name, router) of every page module in facecast.studio.pages that has a `router`."""
    from facecast.studio import pages

    out = []
    for info in sorted(pkgutil.iter_modules(pages.__path__), key=lambda i: i.name):
        module = importlib.import_module(f"{pages.__name__}.{info.name}")
        router = getattr(module, "router", None)
        if isinstance(router, APIRouter):
            out.append((info.name, router))
    return out


def create_app(workspace: Path | str | Workspace, token: str, *, shutdown_timeout: float = 120.0) -> FastAPI:
    """The studio app for one workspace (see the module docstring)."""
    ws = workspace if isinstance(workspace, Workspace) else Workspace.open(workspace)
    if not token or len(token) < 16:
        raise FacecastError("the studio token must be at least 16 characters")
    runner = JobRunner()

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        yield
        # closing the server stops jobs the Ctrl-C way and waits for them to save their work
        await asyncio.to_thread(runner.shutdown, shutdown_timeout)

    app = FastAPI(title="facecast studio", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.workspace = ws
    app.state.jobs = runner
    app.state.token = token
    app.state.caches = {}  # page modules keep loaded models etc. here (one per app, not per module)

    @app.exception_handler(FacecastError)
    async def _user_error(_request: Request, err: FacecastError):
        code = 409 if isinstance(err, JobConflict) else 403 if isinstance(err, ConsentError) else 400
        return JSONResponse({"detail": str(err)}, status_code=code)

    @app.exception_handler(KeyError)
    async def _missing(_request: Request, err: KeyError):
        return JSONResponse({"detail": f"not found: {err}"}, status_code=404)

    _core_routes(app, ws, runner)
    app.state.pages = []
    for name, router in discover_pages():
        app.include_router(router)
        app.state.pages.append(name)
    _page_routes(app)
    app.add_middleware(TokenGuard, token=token)
    return app


def _core_routes(app: FastAPI, ws: Workspace, runner: JobRunner) -> None:
    @app.get("/api/token")
    def get_token(request: Request):
        """The token for the X-Facecast-Token header of same-origin pages (signed in by cookie).

        A cross-site page cannot read this response (no CORS), and the cookie is SameSite=Strict."""
        return {"token": request.app.state.token}

    @app.get("/api/jobs")
    def list_jobs():
        return {"jobs": [j.to_dict(logs=True) for j in runner.list()], "seq": runner.seq}

    @app.get("/api/jobs/events")
    async def job_events(request: Request, since: int | None = None):
        """Server-sent events: `job` (a job's state/progress) and `log` (one log line)."""
        start = runner.seq if since is None else since

        async def stream():
            seq = start
            yield f"event: hello\ndata: {json.dumps({'seq': seq})}\n\n"
            idle = 0.0
            while not await request.is_disconnected():
                events = runner.events_since(seq)
                for s, kind, data in events:
                    seq = s
                    yield f"id: {s}\nevent: {kind}\ndata: {json.dumps(data, default=str)}\n\n"
                if events:
                    idle = 0.0
                else:
                    idle += 0.25
                    if idle >= 15:
                        idle = 0.0
                        yield ": keep-alive\n\n"
                await asyncio.sleep(0.25)

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    @app.get("/api/jobs/{job_id}")
    def get_job(job_id: str):
        return runner.get(job_id).to_dict(logs=True)

    @app.post("/api/jobs/{job_id}/stop")
    def stop_job(job_id: str):
        return runner.stop(job_id).to_dict()

    @app.get("/files/{rel:path}")
    def workspace_file(rel: str):
        """Any file inside the workspace (images, videos, JSON), never anything outside it."""
        path = safe_path(ws.root, rel)
        if not path.is_file():
            raise HTTPException(404, f"not a file: {rel}")
        return FileResponse(path, headers={"Cache-Control": "no-store"})


def _page_routes(app: FastAPI) -> None:
    def page_file(name: str) -> Path:
        path = STATIC / f"{name}.html"
        if name not in PAGES or not path.is_file():
            raise HTTPException(404, f"no page {name!r}")
        return path

    @app.get("/favicon.ico")
    def favicon():
        return Response(status_code=204)

    @app.get("/")
    def index():
        return FileResponse(page_file("workspace"), headers={"Cache-Control": "no-store"})

    @app.get("/static/{name}")
    def static(name: str):
        path = STATIC / name
        if "/" in name or name.startswith(".") or not path.is_file():
            raise HTTPException(404, f"no static file {name!r}")
        return FileResponse(path, headers={"Cache-Control": "no-store"})

    @app.get("/api/pages")
    def pages():
        return {"pages": [p for p in PAGES if (STATIC / f"{p}.html").is_file()]}

    @app.get("/{page}")
    def page(page: str):
        return FileResponse(page_file(page), headers={"Cache-Control": "no-store"})
