"""Consent records: no stage trains on or renders a person without a recorded consent statement.

The authority is an append-only, hash-chained, signed log, `WS/consent/log.jsonl`: one JSON line per
event (a record added, a record revoked, the source identity chosen, an old unsigned record migrated).
Each line holds its sequence number, the SHA-256 of the previous line (`prev`), the event, and an ECDSA
signature (the workspace's own signing key, provenance/keys.py) over all of that. `require_consent`
re-reads and verifies the whole log on every use, so a record whose `revoked` was set back to null, whose
`expires` moved, or whose identity was switched no longer matches its signature or the chain, and every
stage refuses with one line naming the log entry. `consent/<identity>.json` stays as a readable copy of
each record (diffable, easy to audit); it is rewritten from the log after each change, and a copy that
differs from the log is refused too (someone edited it by hand). `consent/log.head.json` holds the signed
count and hash of the last entry, so removing lines from the end (say, the revocation) is refused too.

What this protects against, and what not (also in the README): it makes edits *evident*. Anyone with
the workspace's private key (`.facecast/keys/leaf.key`, i.e. the workspace's owner) can write a new,
validly signed history; cutting the log back to an earlier complete copy (a rollback of the whole
consent folder) is not detectable without an anchor outside the workspace. The point is an honest
manifest: outputs cite the record ids they relied on, and facecast itself never uses a record that was
changed outside `facecast consent`.

The workspace's *source identity* (the person whose face is rendered) is a signed "src" event; it is
mirrored in `WS/workspace.json` under "src_identity" for other tools, and a mirror that disagrees with
the log is refused. Decision: `facecast consent add --src` sets it explicitly; otherwise the first
record added to a workspace becomes the source identity.

A record is valid when present, not expired (expiry is the end of the given day, UTC) and not revoked.
Revoking appends an event; history is never rewritten.

Records written by facecast before the log existed (plain JSON without a log) are *unsigned*: they are
not used until someone reviews them and signs them into the log with `facecast consent migrate`.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import os
import re
import uuid
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from facecast.errors import ConsentError, FacecastError
from facecast.media.images import atomic_write_bytes
from facecast.workspace import WORKSPACE_FILE, Workspace

SCHEMA = "facecast.consent/1"
LOG_SCHEMA = "facecast.consent-log/1"
LOG_FILE = "log.jsonl"
HEAD_FILE = "log.head.json"  # signed (entries, head): cutting lines off the end of the log shows
GENESIS = "0" * 64
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_VIEW_KEYS = ("id", "identity", "statement", "signed_by", "scope", "created", "expires", "revoked",
              "revoked_reason", "document_sha256", "document_name")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


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
            now = now or _now()
            if now.date() > dt.date.fromisoformat(self.expires):
                return "expired"
        return "valid"

    def to_dict(self) -> dict:
        return {"schema": SCHEMA, **asdict(self)}

    @classmethod
    def from_dict(cls, data: Any) -> "ConsentRecord":
        names = {f.name for f in fields(cls)}
        if not isinstance(data, dict):
            raise TypeError("record is not an object")
        rec = cls(**{k: v for k, v in data.items() if k in names})
        for key in ("id", "identity", "statement", "signed_by", "created"):
            if not isinstance(getattr(rec, key), str):
                raise TypeError(f"{key} is not text")
        if rec.expires is not None:
            dt.date.fromisoformat(str(rec.expires))
        return rec


@dataclass
class ConsentLog:
    """The log folded into current state (only ever built from verified entries)."""

    records: dict[str, ConsentRecord] = field(default_factory=dict)  # identity -> current record
    src: str | None = None
    head: str = GENESIS  # SHA-256 of the last line: cited in manifests, proves which history was used
    entries: int = 0


# -- names, dates -----------------------------------------------------------------------------------------
def _how_to_add(ws: Workspace, identity: str | None) -> str:
    name = identity or "NAME"
    return (
        f'add one with: facecast consent add -w {ws.root} --identity {name} '
        f'--statement "..." --signed-by "..."'
    )


def _check_name(identity: str) -> str:
    if not isinstance(identity, str) or not _NAME.match(identity or ""):
        raise FacecastError(
            f"identity {identity!r} must be 1-64 letters, digits, '.', '_' or '-' (it names consent/<identity>.json)"
        )
    return identity


def _path(ws: Workspace, identity: str) -> Path:
    return ws.consent_dir / f"{_check_name(identity)}.json"


def _log_path(ws: Workspace) -> Path:
    return ws.consent_dir / LOG_FILE


def _head_body(ws: Workspace, entries: int, head: str) -> dict:
    return {"schema": "facecast.consent-log-head/1", "workspace": ws.id, "entries": entries, "head": head}


def _check_head(ws: Workspace, public, hashes: list[str]) -> None:
    """The signed head must name an entry of the log: a log cut short (a revocation removed) is refused.

    The head may lag one append behind (a crash between writing the line and the head); never ahead."""
    path = ws.consent_dir / HEAD_FILE
    try:
        data = json.loads(path.read_text())
        body = {k: data[k] for k in ("schema", "workspace", "entries", "head")}
        entries = int(data["entries"])
    except FileNotFoundError:
        raise ConsentError(f"{path} is missing: the consent log cannot be checked for removed entries; restore it from a "
                           f"backup, or move {LOG_FILE} aside and record consent again") from None
    except (OSError, ValueError, TypeError, KeyError, UnicodeDecodeError):
        raise ConsentError(f"{path}: unreadable consent log head; restore it from a backup") from None
    if not _verify(public, body, data.get("sig")) or body["workspace"] != ws.id:
        raise ConsentError(f"{path}: the consent log head does not match its signature (edited or from another workspace)")
    if not 1 <= entries <= len(hashes) or hashes[entries - 1] != body["head"] or entries < len(hashes) - 1:
        raise ConsentError(
            f"{ws.consent_dir / LOG_FILE}: has {len(hashes)} entries but its signed head records {entries}: entries were "
            f"removed or replaced, so no consent in it is used; restore the log from a backup"
        )


def _write_head(ws: Workspace, key, entries: int, head: str) -> None:
    body = _head_body(ws, entries, head)
    atomic_write_bytes(ws.consent_dir / HEAD_FILE, json.dumps({**body, "sig": _sign(key, body)}, indent=1).encode())


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


# -- signing --------------------------------------------------------------------------------------------
def _canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _keys(ws: Workspace):
    """(private key, public key) of the workspace's signing leaf (created on first use)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    from facecast.provenance.keys import create_workspace_keys, keys_dir

    folder = keys_dir(ws)
    if not (folder / "chain.pem").exists():
        create_workspace_keys(ws)
    try:
        key = serialization.load_pem_private_key((folder / "leaf.key").read_bytes(), password=None)
        leaf = x509.load_pem_x509_certificates((folder / "chain.pem").read_bytes())[0]
    except (OSError, ValueError) as err:
        raise FacecastError(f"{folder}: the workspace signing key is unreadable ({err}); consent cannot be verified") from None
    return key, leaf.public_key()


def _sign(key, body: dict) -> str:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    return base64.b64encode(key.sign(_canonical(body), ec.ECDSA(hashes.SHA256()))).decode("ascii")


def _verify(public, body: dict, sig: Any) -> bool:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    try:
        public.verify(base64.b64decode(str(sig), validate=True), _canonical(body), ec.ECDSA(hashes.SHA256()))
        return True
    except (InvalidSignature, ValueError, TypeError):
        return False


# -- the log --------------------------------------------------------------------------------------------
def _tampered(path: Path, line: int, what: str) -> ConsentError:
    return ConsentError(
        f"{path}: entry {line} {what}: the consent log was edited outside `facecast consent`, so no consent in "
        f"it is used; restore it from a backup, or move it aside and record consent again with `facecast consent add`"
    )


def _apply(state: ConsentLog, event: dict) -> None:
    kind = event.get("type")
    if kind in ("add", "migrate"):
        rec = ConsentRecord.from_dict(event.get("record"))
        _check_name(rec.identity)
        state.records[rec.identity] = rec
    elif kind == "revoke":
        rec = state.records.get(str(event.get("identity")))
        if rec is None or rec.id != event.get("id"):
            raise ValueError("revokes a record that is not in the log")
        rec.revoked = str(event["time"])
        rec.revoked_reason = str(event.get("reason") or "revoked")
    elif kind == "src":
        state.src = _check_name(str(event.get("identity")))
    else:
        raise ValueError(f"unknown event type {kind!r}")


def read_log(ws: Workspace) -> ConsentLog:
    """Verify every entry (schema, sequence, hash chain, signature) and fold them into current state.

    Any failure is one ConsentError line naming the entry; nothing in a tampered log is used."""
    path = _log_path(ws)
    state = ConsentLog()
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return state
    except OSError as err:
        raise ConsentError(f"{path}: cannot read the consent log ({err.strerror})") from None
    public = None
    hashes: list[str] = []
    for i, line in enumerate(raw.splitlines(), start=1):
        try:
            entry = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise _tampered(path, i, "is not valid JSON") from None
        if not isinstance(entry, dict) or entry.get("schema") != LOG_SCHEMA or not isinstance(entry.get("event"), dict):
            raise _tampered(path, i, "is not a consent log entry")
        if entry.get("seq") != i - 1 or entry.get("prev") != state.head:
            raise _tampered(path, i, "breaks the hash chain (an entry was removed, reordered or changed)")
        if public is None:
            public = _keys(ws)[1]
        body = {k: v for k, v in entry.items() if k != "sig"}
        if not _verify(public, body, entry.get("sig")):
            raise _tampered(path, i, f"({entry['event'].get('type')}) does not match its signature")
        try:
            _apply(state, entry["event"])
        except (ValueError, TypeError, KeyError, FacecastError) as err:
            raise _tampered(path, i, f"is malformed ({err})") from None
        state.head = hashlib.sha256(_canonical(entry)).hexdigest()
        state.entries = i
        hashes.append(state.head)
    if hashes:
        _check_head(ws, public, hashes)
    return state


def _append(ws: Workspace, event: dict) -> ConsentLog:
    """Verify the log, append one signed event (under an exclusive lock), refresh the readable copies."""
    import fcntl

    ws.consent_dir.mkdir(parents=True, exist_ok=True)
    path = _log_path(ws)
    with open(ws.consent_dir / ".log.lock", "a+b") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        state = read_log(ws)
        key, _ = _keys(ws)
        body = {"schema": LOG_SCHEMA, "seq": state.entries, "prev": state.head, "event": event}
        entry = {**body, "sig": _sign(key, body)}
        line = _canonical(entry) + b"\n"
        _apply(state, json.loads(_canonical(event)))
        with open(path, "ab") as fh:
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())
        state.head = hashlib.sha256(_canonical(entry)).hexdigest()
        state.entries += 1
        _write_head(ws, key, state.entries, state.head)
        _write_views(ws, state)
    return state


def _write_views(ws: Workspace, state: ConsentLog) -> None:
    for identity, rec in state.records.items():
        view = {**rec.to_dict(), "log": {"file": LOG_FILE, "note": "readable copy; the signed log is authoritative"}}
        atomic_write_bytes(_path(ws, identity), json.dumps(view, indent=2).encode())
    if state.src is not None:
        data = _workspace_json(ws)
        if data.get("src_identity") != state.src:
            data["src_identity"] = state.src
            atomic_write_bytes(ws.root / WORKSPACE_FILE, json.dumps(data, indent=2).encode())


def _check_view(ws: Workspace, rec: ConsentRecord) -> None:
    """A readable copy that differs from the signed log was edited by hand: refuse, naming the field."""
    path = _path(ws, rec.identity)
    if not path.exists():
        return  # only a copy: the log is what counts (it is rewritten on the next change)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError, UnicodeDecodeError):
        raise ConsentError(f"{path}: unreadable copy of a signed consent record; delete it (facecast rewrites it from the log)") from None
    signed = rec.to_dict()
    for key in _VIEW_KEYS:
        if not isinstance(data, dict) or data.get(key) != signed.get(key):
            theirs = data.get(key) if isinstance(data, dict) else data
            raise ConsentError(
                f"{path}: {key} was edited (file says {theirs!r}, the signed consent log says {signed.get(key)!r}); "
                f"consent changes only through `facecast consent add|revoke`: undo the edit or delete this copy"
            )


# -- workspace.json mirror ------------------------------------------------------------------------------
def _workspace_json(ws: Workspace) -> dict:
    path = ws.root / WORKSPACE_FILE
    if not path.exists():
        ws.init()
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError, UnicodeDecodeError) as err:
        raise FacecastError(f"{path} is unreadable ({err}); restore it or re-create the workspace") from None
    if not isinstance(data, dict):
        raise FacecastError(f"{path} is not a workspace file (not a JSON object); restore it or re-create the workspace")
    return data


def src_identity(ws: Workspace) -> str | None:
    """The source identity from the signed log (for a workspace not yet migrated: workspace.json's)."""
    state = read_log(ws)
    if state.src is not None:
        return state.src
    value = _workspace_json(ws).get("src_identity")
    return value if isinstance(value, str) else None


def set_src_identity(ws: Workspace, identity: str) -> None:
    _append(ws, {"type": "src", "identity": _check_name(identity), "time": _now().isoformat(timespec="seconds")})


# -- public API -----------------------------------------------------------------------------------------
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
    """Record consent (superseding any earlier record for the identity). `src=True` makes it the source."""
    _check_name(identity)
    if not statement or not statement.strip():
        raise FacecastError("--statement is empty: write what the person agreed to")
    if not signed_by or not signed_by.strip():
        raise FacecastError("--signed-by is empty: name who gave consent")
    exp = _parse_expires(expires)
    if exp and dt.date.fromisoformat(exp) < _now().date():
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
        created=_now().isoformat(timespec="seconds"),
        expires=exp,
        document_sha256=doc_hash,
        document_name=doc_name,
    )
    state = _append(ws, {"type": "add", "record": asdict(record), "time": record.created})
    if src or (src is None and state.src is None):
        set_src_identity(ws, identity)
    return record


def get_consent(ws: Workspace, identity: str) -> ConsentRecord | None:
    """The signed record for `identity` (its readable copy checked against it), or None."""
    rec = read_log(ws).records.get(_check_name(identity))
    if rec is not None:
        _check_view(ws, rec)
    return rec


def list_consents(ws: Workspace) -> list[ConsentRecord]:
    """Every signed record, by identity (unsigned legacy files are listed by `unsigned_records`)."""
    state = read_log(ws)
    return [state.records[k] for k in sorted(state.records)]


def unsigned_records(ws: Workspace) -> list[Path]:
    """Record files with no signed log entry (written before the log existed): used only after migration."""
    if not ws.consent_dir.is_dir():
        return []
    signed = read_log(ws).records
    return [p for p in sorted(ws.consent_dir.glob("*.json")) if p.stem not in signed and p.name != HEAD_FILE]


def revoke_consent(ws: Workspace, identity: str, reason: str) -> ConsentRecord:
    record = get_consent(ws, identity)
    if record is None:
        raise FacecastError(f"no consent record for {identity!r} in {ws.consent_dir}")
    event = {"type": "revoke", "identity": identity, "id": record.id,
             "time": _now().isoformat(timespec="seconds"), "reason": reason or "revoked"}
    return _append(ws, event).records[identity]


def migrate_consents(ws: Workspace) -> list[ConsentRecord]:
    """Sign unsigned records (from facecast before the log) into the log, as they are now.

    Run it after reviewing them: migration vouches for their current content. A record that was
    revoked stays revoked; the source identity in workspace.json becomes a signed "src" event."""
    out = []
    for path in unsigned_records(ws):
        try:
            data = json.loads(path.read_text())
            rec = ConsentRecord.from_dict(data)
            if rec.identity != path.stem:
                raise ValueError(f"identity {rec.identity!r} does not match the file name")
        except (OSError, ValueError, TypeError, UnicodeDecodeError) as err:
            raise FacecastError(f"{path}: not a readable consent record ({err}); add it again with `facecast consent add`") from None
        _append(ws, {"type": "migrate", "record": asdict(rec), "from": path.name,
                     "file_sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
                     "time": _now().isoformat(timespec="seconds")})
        out.append(rec)
    legacy_src = _workspace_json(ws).get("src_identity")
    if read_log(ws).src is None and isinstance(legacy_src, str) and legacy_src in read_log(ws).records:
        set_src_identity(ws, legacy_src)
    return out


def consent_log_head(ws: Workspace) -> str:
    """SHA-256 of the last verified log line: which consent history an output relied on."""
    return read_log(ws).head


def require_consent(ws: Workspace, identity: str | None = None) -> ConsentRecord:
    """The valid, signature-verified record for `identity` (default: the source identity), else ConsentError."""
    state = read_log(ws)
    if identity is None:
        mirror = _workspace_json(ws).get("src_identity")
        identity = state.src
        if identity is not None and mirror is not None and mirror != identity:
            raise ConsentError(
                f"{ws.root / WORKSPACE_FILE}: src_identity says {mirror!r} but the signed consent log says {identity!r}; "
                f"change the source person with `facecast consent add --src` (undo the edit)"
            )
        if identity is None and isinstance(mirror, str):
            identity = mirror  # an unmigrated workspace: reported as unsigned below
        if identity is None:
            raise ConsentError(
                f"no consent recorded for this workspace's source person; {_how_to_add(ws, None)}"
            )
    record = state.records.get(_check_name(identity))
    if record is None:
        if _path(ws, identity).exists():
            raise ConsentError(
                f"{_path(ws, identity)}: unsigned consent record from an older facecast; review it, then sign it into "
                f"the tamper-evident log with `facecast consent migrate -w {ws.root}` (or add it again)"
            )
        raise ConsentError(f"no consent record for {identity!r}; {_how_to_add(ws, identity)}")
    _check_view(ws, record)
    state_name = record.status()
    if state_name == "expired":
        raise ConsentError(
            f"consent for {identity!r} expired on {record.expires}; renew it: {_how_to_add(ws, identity)} --expires YYYY-MM-DD"
        )
    if state_name == "revoked":
        raise ConsentError(
            f"consent for {identity!r} was revoked ({record.revoked_reason}); nothing can be made with this "
            f"face unless the person consents again: {_how_to_add(ws, identity)}"
        )
    return record
