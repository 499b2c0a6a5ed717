"""Consent records: missing / expired / revoked each block with a message that says how to fix it."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from facecast.errors import ConsentError, FacecastError
from facecast.provenance import require_consent
import facecast.provenance.consent as consent_mod
from facecast.provenance.consent import add_consent, list_consents, revoke_consent, src_identity
from tests.conftest import run_cli

HOW = "facecast consent add -w"


def test_missing_consent_says_how_to_add(bare_workspace):
    with pytest.raises(ConsentError) as err:
        require_consent(bare_workspace)
    assert HOW in str(err.value) and "--identity NAME" in str(err.value) and "--signed-by" in str(err.value)
    with pytest.raises(ConsentError, match="no consent record for 'bob'.*--identity bob"):
        require_consent(bare_workspace, "bob")


def test_add_list_and_first_record_becomes_src(bare_workspace, tmp_path):
    doc = tmp_path / "release.pdf"
    doc.write_bytes(b"signed release form")
    rec = add_consent(bare_workspace, "alice", "May be rendered in film X", "Alice A.", scope="film X", document=doc)
    assert (bare_workspace.consent_dir / "alice.json").exists()
    data = json.loads((bare_workspace.consent_dir / "alice.json").read_text())
    assert data["id"] == rec.id and data["document_sha256"] and len(data["document_sha256"]) == 64
    assert src_identity(bare_workspace) == "alice"
    add_consent(bare_workspace, "bob", "ok", "Bob")  # not the first: src stays alice
    assert src_identity(bare_workspace) == "alice"
    add_consent(bare_workspace, "carol", "ok", "Carol", src=True)
    assert src_identity(bare_workspace) == "carol"
    assert [r.identity for r in list_consents(bare_workspace)] == ["alice", "bob", "carol"]
    assert require_consent(bare_workspace).identity == "carol"
    assert require_consent(bare_workspace, "alice").id == rec.id


def test_expired_and_revoked_block(bare_workspace, monkeypatch):
    rec = add_consent(bare_workspace, "alice", "ok", "Alice", expires=dt.date.today().isoformat())
    assert require_consent(bare_workspace).id == rec.id  # valid through the given day
    later = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=2)
    monkeypatch.setattr(consent_mod, "_now", lambda: later)
    with pytest.raises(ConsentError, match=f"expired on {rec.expires}.*" + HOW):
        require_consent(bare_workspace)
    monkeypatch.undo()
    add_consent(bare_workspace, "alice", "ok again", "Alice")
    revoke_consent(bare_workspace, "alice", "asked to stop")
    with pytest.raises(ConsentError, match=r"revoked \(asked to stop\).*" + HOW):
        require_consent(bare_workspace)


def test_bad_input_is_a_clear_error(bare_workspace):
    with pytest.raises(FacecastError, match="identity"):
        add_consent(bare_workspace, "../evil", "ok", "x")
    with pytest.raises(FacecastError, match="in the past"):
        add_consent(bare_workspace, "a", "ok", "x", expires="2001-01-01")
    with pytest.raises(FacecastError, match="YYYY-MM-DD"):
        add_consent(bare_workspace, "a", "ok", "x", expires="soon")
    with pytest.raises(FacecastError, match="statement"):
        add_consent(bare_workspace, "a", " ", "x")


def test_cli_add_list_revoke(bare_workspace):
    ws = str(bare_workspace.root)
    code, out, err = run_cli("consent", "add", "-w", ws, "--identity", "alice", "--statement", "ok", "--signed-by", "Alice", "--json")
    assert code == 0, err
    assert json.loads(out)["identity"] == "alice"
    code, out, _ = run_cli("consent", "list", "-w", ws, "--json")
    listing = json.loads(out)
    assert listing["src_identity"] == "alice" and listing["records"][0]["status"] == "valid"
    code, out, _ = run_cli("consent", "revoke", "-w", ws, "--identity", "alice", "--reason", "withdrawn", "-q")
    assert code == 0
    code, out, _ = run_cli("consent", "list", "-w", ws, "--json")
    assert json.loads(out)["records"][0]["status"] == "revoked"
    code, _, err = run_cli("consent", "revoke", "-w", ws, "--identity", "nobody")
    assert code != 0 and "no consent record" in err and "Traceback" not in err
