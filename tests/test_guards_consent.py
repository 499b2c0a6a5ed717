"""Consent is a signed, hash-chained log (issue 13, bypass 4): edits outside `facecast consent` are refused
with one line, on every use, by every stage."""

from __future__ import annotations

import json

import pytest

from facecast.errors import ConsentError
from facecast.provenance import require_consent
from facecast.provenance.consent import (
    LOG_FILE,
    add_consent,
    list_consents,
    read_log,
    revoke_consent,
    src_identity,
    unsigned_records,
)
from tests.conftest import run_cli


def _one_line(err) -> str:
    msg = str(err.value)
    assert "\n" not in msg
    return msg


def _log_lines(ws):
    return (ws.consent_dir / LOG_FILE).read_text().splitlines()


def _write_log(ws, lines):
    (ws.consent_dir / LOG_FILE).write_text("\n".join(lines) + "\n")


def test_revoked_then_view_set_back_to_null_is_refused(bare_workspace):
    ws = bare_workspace
    add_consent(ws, "alice", "ok", "Alice")
    revoke_consent(ws, "alice", "withdrawn")
    view = ws.consent_dir / "alice.json"
    data = json.loads(view.read_text())
    assert data["revoked"]
    data["revoked"] = None
    view.write_text(json.dumps(data))
    with pytest.raises(ConsentError) as err:
        require_consent(ws)
    assert "revoked was edited" in _one_line(err)


@pytest.mark.parametrize("field,value", [("revoked", None), ("expires", "2999-01-01"), ("identity", "bob")])
def test_edited_log_entry_is_refused(bare_workspace, field, value):
    ws = bare_workspace
    add_consent(ws, "alice", "ok", "Alice", expires="2100-01-01")
    add_consent(ws, "bob", "ok", "Bob")
    revoke_consent(ws, "alice", "withdrawn")
    lines = _log_lines(ws)
    edited = []
    for line in lines:
        entry = json.loads(line)
        ev = entry["event"]
        if field == "revoked" and ev["type"] == "revoke":
            ev["reason"] = "never mind"
            ev["time"] = None
        elif field in ("expires", "identity") and ev["type"] == "add" and ev["record"]["identity"] == "alice":
            ev["record"][field] = value
        edited.append(json.dumps(entry, sort_keys=True, separators=(",", ":")))
    _write_log(ws, edited)
    with pytest.raises(ConsentError) as err:
        require_consent(ws, "alice")
    msg = _one_line(err)
    assert "edited outside `facecast consent`" in msg and "signature" in msg


def test_removing_the_revocation_from_the_end_is_refused(bare_workspace):
    ws = bare_workspace
    add_consent(ws, "alice", "ok", "Alice")
    revoke_consent(ws, "alice", "withdrawn")
    _write_log(ws, _log_lines(ws)[:-1])
    view = ws.consent_dir / "alice.json"
    data = json.loads(view.read_text())
    data["revoked"] = data["revoked_reason"] = None
    view.write_text(json.dumps(data))
    with pytest.raises(ConsentError) as err:
        require_consent(ws)
    assert "entries were removed" in _one_line(err)
    # and from the middle: the hash chain breaks
    ws2 = type(ws).open(ws.root.parent / "ws2", create=True)
    add_consent(ws2, "alice", "ok", "Alice")
    add_consent(ws2, "bob", "ok", "Bob")
    lines = _log_lines(ws2)
    _write_log(ws2, lines[:1] + lines[2:])
    with pytest.raises(ConsentError, match="hash chain"):
        require_consent(ws2)


def test_switched_source_identity_is_refused(bare_workspace):
    ws = bare_workspace
    add_consent(ws, "alice", "ok", "Alice")
    add_consent(ws, "bob", "ok", "Bob")
    revoke_consent(ws, "alice", "withdrawn")
    wsjson = ws.root / "workspace.json"
    data = json.loads(wsjson.read_text())
    assert data["src_identity"] == "alice"
    data["src_identity"] = "bob"  # render alice's model while pointing the check at bob's valid record
    wsjson.write_text(json.dumps(data))
    with pytest.raises(ConsentError) as err:
        require_consent(ws)
    assert "signed consent log says 'alice'" in _one_line(err)
    # the honest way: a signed src event
    add_consent(ws, "bob", "ok", "Bob", src=True)
    assert require_consent(ws).identity == "bob" and src_identity(ws) == "bob"


def test_merge_refuses_after_tampering(workspace):
    from facecast.merge.merger import merge
    from facecast.merge.settings import MergeSettings
    from facecast.merge.testing import FakePredictor, build_dst_workspace

    build_dst_workspace(workspace, n_frames=2)
    revoke_consent(workspace, "sample", "withdrawn")
    view = workspace.consent_dir / "sample.json"
    data = json.loads(view.read_text())
    data["revoked"] = None
    view.write_text(json.dumps(data))
    with pytest.raises(ConsentError, match="edited"):
        merge(workspace, "m", MergeSettings(), FakePredictor(64), quiet=True)
    assert not any(workspace.merged.iterdir())


def test_unsigned_legacy_records_need_migration(bare_workspace):
    ws = bare_workspace
    legacy = {"schema": "facecast.consent/1", "id": "consent-old-1", "identity": "old", "statement": "ok",
              "signed_by": "Old", "scope": None, "created": "2025-01-01T00:00:00+00:00", "expires": None}
    (ws.consent_dir / "old.json").write_text(json.dumps(legacy))
    data = json.loads((ws.root / "workspace.json").read_text())
    data["src_identity"] = "old"
    (ws.root / "workspace.json").write_text(json.dumps(data))
    with pytest.raises(ConsentError) as err:
        require_consent(ws)
    assert "unsigned consent record" in _one_line(err) and "consent migrate" in str(err.value)
    assert [p.name for p in unsigned_records(ws)] == ["old.json"]
    code, out, err_text = run_cli("consent", "migrate", "-w", str(ws.root), "--json")
    assert code == 0, err_text
    assert json.loads(out)["migrated"] == ["old"]
    assert require_consent(ws).id == "consent-old-1" and src_identity(ws) == "old"
    assert not unsigned_records(ws) and [r.identity for r in list_consents(ws)] == ["old"]
    assert read_log(ws).entries == 2


def test_cli_tamper_is_one_line(bare_workspace):
    ws = bare_workspace
    add_consent(ws, "alice", "ok", "Alice")
    lines = _log_lines(ws)
    _write_log(ws, [lines[0].replace('"statement":"ok"', '"statement":"anything"')] + lines[1:])
    code, _out, err = run_cli("consent", "list", "-w", str(ws.root))
    assert code != 0 and "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "entry 1" in errors[0]
