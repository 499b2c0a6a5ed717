"""Commands of the provenance stage: `facecast verify` and `facecast consent add|list|revoke|migrate`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from facecast.console import JsonOpt, QuietOpt, WorkspaceOpt, summary


def register(app: typer.Typer) -> None:
    @app.command("verify")
    def verify_cmd(
        file: Annotated[Path, typer.Argument(help="Image or video to check.")],
        workspace: Annotated[
            Optional[Path],
            typer.Option("--workspace", "-w", help="Workspace whose CA to trust and whose tag to match."),
        ] = None,
        quiet: QuietOpt = False,
        json_out: JsonOpt = False,
    ) -> None:
        """Report a file's C2PA manifest and invisible watermark; exit 1 when neither is found."""
        from facecast.provenance.verify import c2pa_line, verify
        from facecast.workspace import Workspace

        ws = Workspace.open(workspace) if workspace else None
        rep = verify(file, ws)
        if json_out:
            summary(rep.to_dict(), True)
        else:
            m = rep.manifest
            rows = {
                "file": rep.path,
                "labelled": rep.labelled_text(),
                "c2pa": c2pa_line(m, rep.anchor),
                "watermark": rep.watermark_text(),
            }
            if rep.workspace_match is not None:
                rows["workspace"] = "matches" if rep.workspace_match else "different workspace"
            summary(rows, False, quiet, title="facecast verify")
        if not rep.labelled:
            raise typer.Exit(1)

    consent_app = typer.Typer(help="Consent records: required before extracting, training or merging a face.", no_args_is_help=True)

    @consent_app.command("add")
    def add_cmd(
        workspace: WorkspaceOpt,
        identity: Annotated[str, typer.Option(help="Name of the person (file name: consent/<identity>.json).")],
        statement: Annotated[str, typer.Option(help="What the person agreed to.")],
        signed_by: Annotated[str, typer.Option("--signed-by", help="Who gave consent (the person or guardian).")],
        scope: Annotated[Optional[str], typer.Option(help="Where the output may be used.")] = None,
        expires: Annotated[Optional[str], typer.Option(help="Last valid day, YYYY-MM-DD.")] = None,
        document: Annotated[Optional[Path], typer.Option(help="Signed release form; its SHA-256 is recorded.")] = None,
        src: Annotated[
            bool, typer.Option("--src", help="Make this the workspace's source identity (default: the first record).")
        ] = False,
        quiet: QuietOpt = False,
        json_out: JsonOpt = False,
    ) -> None:
        """Record a person's consent."""
        from facecast.provenance.consent import add_consent
        from facecast.workspace import Workspace

        ws = Workspace.open(workspace)
        rec = add_consent(ws, identity, statement, signed_by, scope, expires, document, src=True if src else None)
        summary(rec.to_dict(), json_out, quiet, title="consent recorded")

    @consent_app.command("list")
    def list_cmd(workspace: WorkspaceOpt, quiet: QuietOpt = False, json_out: JsonOpt = False) -> None:
        """List consent records and their state."""
        from facecast.provenance.consent import consent_log_head, list_consents, src_identity, unsigned_records
        from facecast.workspace import Workspace

        ws = Workspace.open(workspace)
        src = src_identity(ws)
        recs = list_consents(ws)
        unsigned = [p.name for p in unsigned_records(ws)]
        if json_out:
            summary({"src_identity": src, "records": [{**r.to_dict(), "status": r.status()} for r in recs],
                     "unsigned": unsigned, "log_head": consent_log_head(ws)}, True)
            return
        rows = {
            r.identity + (" (src)" if r.identity == src else ""): f"{r.status()}; id {r.id}; signed by {r.signed_by}; expires {r.expires or 'never'}"
            for r in recs
        }
        for name in unsigned:
            rows[name] = "UNSIGNED (from an older facecast; not used): review it, then `facecast consent migrate`"
        summary(rows or {"records": "none"}, False, quiet, title="consent records")

    @consent_app.command("migrate")
    def migrate_cmd(workspace: WorkspaceOpt, quiet: QuietOpt = False, json_out: JsonOpt = False) -> None:
        """Sign consent records from an older facecast (plain JSON) into the tamper-evident log, as they are now."""
        from facecast.provenance.consent import migrate_consents
        from facecast.workspace import Workspace

        recs = migrate_consents(Workspace.open(workspace))
        summary({"migrated": [r.identity for r in recs] or "none (nothing unsigned)"}, json_out, quiet, title="consent migrate")

    @consent_app.command("revoke")
    def revoke_cmd(
        workspace: WorkspaceOpt,
        identity: Annotated[str, typer.Option(help="Whose consent to revoke.")],
        reason: Annotated[str, typer.Option(help="Why (kept in the record).")] = "revoked by request",
        quiet: QuietOpt = False,
        json_out: JsonOpt = False,
    ) -> None:
        """Revoke a consent record (kept for the audit trail; stages refuse to run on it)."""
        from facecast.provenance.consent import revoke_consent
        from facecast.workspace import Workspace

        rec = revoke_consent(Workspace.open(workspace), identity, reason)
        summary(rec.to_dict(), json_out, quiet, title="consent revoked")

    app.add_typer(consent_app, name="consent")
