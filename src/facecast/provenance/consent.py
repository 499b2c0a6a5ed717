"""Consent records: no stage trains on or renders a person without a recorded consent statement.

A record is plain JSON at `WS/consent/<identity>.json` (readable, diffable, easy to audit), written
atomically. Its `id` goes into every output's C2PA manifest, so an output names the consent it relied on.

The workspace's *source identity* (the person whose face is rendered) is stored in `WS/workspace.json`
under "src_identity". Decision: `facecast consent add --src` sets it explicitly; otherwise the first
record added to a workspace becomes the source identity (a workspace almost always has one source
person, and the first consent recorded is theirs). `require_consent(ws)` checks that identity.

A record is valid when present, not expired (expiry is the end of the given day, UTC) and not revoked.
Revoking keeps the file (with time and reason) so the history stays auditable.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import uuid
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from facecast.errors import ConsentError, FacecastError
from facecast.media.images import atomic_write_bytes
from facecast.workspace import WORKSPACE_FILE, Workspace

SCHEMA = "facecast.consent/1"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


@dataclass
class ConsentRecord:
    id: str
    identity: str
    statement: str
    signed_by: str
    scope: str | None
    created: str  # ISO 8601 UTC
    expires: str | None  # ISO date (valid through that day, UTC) or None
    revoked: str | None = None  # ISO 8601 UTC time of revocation
    revoked_reason: str | None = None
    document_sha256: str | None = None
    document_name: str | None = None

    def status(self, now: dt.datetime | None = None) -> str:
        """"valid", "expired" or "revoked"."""
        if self.revoked:
            return "revoked"
        if self.expires:
            now = now or dt.datetime.now(dt.timezone.utc)
            if now.date() > dt.date.fromisoformat(self.expires):
                return "expired"
        return "valid"

    def to_dict(self) -> dict:
        return {"schema": SCHEMA, **asdict(self)}


def _how_to_add(ws: Workspace, identity: str | None) -> str:
    name = identity or "NAME"
    return (
        f'add one with: facecast consent add -w {ws.root} --identity {name} '
        f'--statement "..." --signed-by "..."'
    )


def _check_name(identity: str) -> str:
    if not _NAME.match(identity or ""):
        raise FacecastError(
            f"identity {identity!r} must be 1-64 letters, digits, '.', '_' or '-' (it names consent/<identity>.json)"
        )
    return identity


def _path(ws: Workspace, identity: str) -> Path:
    return ws.consent_dir / f"{_check_name(identity)}.json"


def _parse_expires(expires: str | dt.date | None) -> str | None:
    if expires is None or expires == "":
        return None
    if isinstance(expires, dt.datetime):
        day = expires.date()
    elif isinstance(expires, dt.date):
        day = expires
    else:
        try:
            day = dt.date.fromisoformat(str(expires)[:10])
        except ValueError:
            raise FacecastError(f"--expires {expires!r} is not a date; use YYYY-MM-DD") from None
    return day.isoformat()


def _workspace_json(ws: Workspace) -> dict:
    path = ws.root / WORKSPACE_FILE
    if not path.exists():
        ws.init()
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise FacecastError(f"{path} is unreadable ({err}); restore it or re-create the workspace") from None


def src_identity(ws: Workspace) -> str | None:
    return _workspace_json(ws).get("src_identity")


def set_src_identity(ws: Workspace, identity: str) -> None:
    data = _workspace_json(ws)
    data["src_identity"] = _check_name(identity)
    atomic_write_bytes(ws.root / WORKSPACE_FILE, json.dumps(data, indent=2).encode())


def add_consent(
    ws: Workspace,
    identity: str,
    statement: str,
    signed_by: str,
    scope: str | None = None,
    expires: str | dt.date | None = None,
    document: str | Path | None = None,
    src: bool | None = None,
) -> ConsentRecord:
    """Record consent (replacing any earlier record for the identity). `src=True` makes it the source."""
    path = _path(ws, identity)
    if not statement or not statement.strip():
        raise FacecastError("--statement is empty: write what the person agreed to")
    if not signed_by or not signed_by.strip():
        raise FacecastError("--signed-by is empty: name who gave consent")
    exp = _parse_expires(expires)
    if exp and dt.date.fromisoformat(exp) < dt.datetime.now(dt.timezone.utc).date():
        raise FacecastError(f"--expires {exp} is in the past")
    doc_hash = doc_name = None
    if document is not None:
        doc = Path(document)
        try:
            doc_hash = hashlib.sha256(doc.read_bytes()).hexdigest()
        except OSError as err:
            raise FacecastError(f"--document {doc}: cannot read ({err.strerror})") from None
        doc_name = doc.name
    record = ConsentRecord(
        id=f"consent-{identity}-{uuid.uuid4().hex[:12]}",
        identity=identity,
        statement=statement.strip(),
        signed_by=signed_by.strip(),
        scope=scope,
        created=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        expires=exp,
        document_sha256=doc_hash,
        document_name=doc_name,
    )
    atomic_write_bytes(path, json.dumps(record.to_dict(), indent=2).encode())
    if src or (src is None and src_identity(ws) is None):
        set_src_identity(ws, identity)
    return record


def _load(path: Path) -> ConsentRecord:
    try:
        data = json.loads(path.read_text())
        names = {f.name for f in fields(ConsentRecord)}
        return ConsentRecord(**{k: v for k, v in data.items() if k in names})
    except (OSError, json.JSONDecodeError, TypeError) as err:
        raise FacecastError(f"{path}: not a readable consent record ({err}); add it again with `facecast consent add`") from None


def get_consent(ws: Workspace, identity: str) -> ConsentRecord | None:
    path = _path(ws, identity)
    return _load(path) if path.exists() else None


def list_consents(ws: Workspace) -> list[ConsentRecord]:
    if not ws.consent_dir.is_dir():
        return []
    return [_load(p) for p in sorted(ws.consent_dir.glob("*.json"))]


def revoke_consent(ws: Workspace, identity: str, reason: str) -> ConsentRecord:
    record = get_consent(ws, identity)
    if record is None:
        raise FacecastError(f"no consent record for {identity!r} in {ws.consent_dir}")
    record.revoked = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    record.revoked_reason = reason or "revoked"
    atomic_write_bytes(_path(ws, identity), json.dumps(record.to_dict(), indent=2).encode())
    return record


def require_consent(ws: Workspace, identity: str | None = None) -> ConsentRecord:
    """The valid record for `identity` (default: the workspace's source identity), else ConsentError."""
    if identity is None:
        identity = src_identity(ws)
        if identity is None:
            raise ConsentError(
                f"no consent recorded for this workspace's source person; {_how_to_add(ws, None)}"
            )
    record = get_consent(ws, identity)
    if record is None:
        raise ConsentError(f"no consent record for {identity!r}; {_how_to_add(ws, identity)}")
    state = record.status()
    if state == "expired":
        raise ConsentError(
            f"consent for {identity!r} expired on {record.expires}; renew it: {_how_to_add(ws, identity)} --expires YYYY-MM-DD"
        )
    if state == "revoked":
        raise ConsentError(
            f"consent for {identity!r} was revoked ({record.revoked_reason}); nothing can be made with this "
            f"face unless the person consents again: {_how_to_add(ws, identity)}"
        )
    return record
