"""Signing credentials for C2PA manifests: a per-workspace local CA and a leaf it signs.

Why these exact certificate fields: measured with c2pa-python 0.38.1 (see DESIGN.md, "Provenance and
consent"), a self-made chain is accepted only when
  - the CA has basic constraints CA:true and key usage keyCertSign, and
  - the leaf has CA:false, key usage digitalSignature, extended key usage **emailProtection** (any other
    EKU, or none, is refused as "missing required EKU") and an AuthorityKeyIdentifier.
ES256 (P-256) keys; chain PEM = leaf then CA; key as PKCS8 PEM.

Why a long validity (20 years): we sign offline, with no timestamp authority, so a manifest carries no
trusted signing time and a validator checks the leaf's validity window against *now*. A short-lived leaf
would turn every old output "invalid" when it expires. The trade-off is stated openly: the signature
proves which workspace key signed, not when.

Files (created on first use, keys mode 0600):
    WS/.facecast/keys/ca.pem  ca.key  chain.pem (leaf + CA)  leaf.key

Using a studio's own certificate instead: set the environment variables
    FACECAST_C2PA_CHAIN=/path/chain.pem   (leaf first, then intermediates; leaf needs digitalSignature
                                            + emailProtection EKU + AKI, as above)
    FACECAST_C2PA_KEY=/path/leaf.key      (PKCS8 PEM private key of the leaf)
    FACECAST_C2PA_ALG=es256               (optional: es256/es384/es512/ps256/ps384/ps512/ed25519)
    FACECAST_C2PA_TSA=https://...         (optional timestamp authority URL; gives a trusted time)
or pass the same paths to `load_credentials(..., chain=..., key=...)`. Validators then report the
studio's identity, and "trusted" wherever the studio's CA is in the trust list.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path

from facecast.errors import FacecastError
from facecast.media.images import atomic_write_bytes
from facecast.workspace import Workspace

VALIDITY_DAYS = 20 * 365
ENV_CHAIN = "FACECAST_C2PA_CHAIN"
ENV_KEY = "FACECAST_C2PA_KEY"
ENV_ALG = "FACECAST_C2PA_ALG"
ENV_TSA = "FACECAST_C2PA_TSA"


@dataclass(frozen=True)
class Credentials:
    """What a C2PA signer needs: PEM bytes, the algorithm name and an optional timestamp URL."""

    chain_pem: bytes
    key_pem: bytes
    alg: str = "es256"
    tsa_url: str | None = None
    ca_pem: bytes | None = None  # the workspace CA, used as a trust anchor when reading back
    source: str = "workspace"  # "workspace" or "studio"


def keys_dir(ws: Workspace) -> Path:
    return ws.root / ".facecast" / "keys"


def _write_private(path: Path, data: bytes) -> None:
    atomic_write_bytes(path, data)
    os.chmod(path, 0o600)


SUBJECT_ID_CHARS = 16  # of the workspace id, in the CN and O: 64 bits tell workspaces apart


def signer_name(ws_id: str) -> str:
    """The common name `verify` shows as the signer: names the workspace, so two workspaces' outputs
    are told apart at a glance (the same id prefix as the certificate's organisation)."""
    return f"facecast signer {ws_id[:SUBJECT_ID_CHARS]}"


def _name(common: str, ws_id: str):
    """Subject/issuer name. Why the workspace id in CN *and* O: C2PA readers report the leaf's CN as
    the signer and its issuer's O as the issuer; with a fixed "facecast signer" every workspace looked
    the same in `verify`, so a file could not be attributed to the workspace that made it."""
    from cryptography.x509.oid import NameOID
    from cryptography import x509

    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, f"facecast workspace {ws_id[:SUBJECT_ID_CHARS]}"),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, ws_id[:32]),
        ]
    )


def create_workspace_keys(ws: Workspace) -> None:
    """Make the CA and leaf for a workspace (only when absent: keys are never silently replaced)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID

    folder = keys_dir(ws)
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    now = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=5)
    until = now + dt.timedelta(days=VALIDITY_DAYS)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name(f"facecast workspace CA {ws.id[:SUBJECT_ID_CHARS]}", ws.id)
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(until)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    leaf = (
        x509.CertificateBuilder()
        .subject_name(_name(signer_name(ws.id), ws.id))
        .issuer_name(ca_name)
        .public_key(leaf_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(until)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(leaf_key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    pkcs8 = serialization.PrivateFormat.PKCS8
    none = serialization.NoEncryption()
    ca_pem = ca.public_bytes(pem)
    _write_private(folder / "ca.key", ca_key.private_bytes(pem, pkcs8, none))
    _write_private(folder / "leaf.key", leaf_key.private_bytes(pem, pkcs8, none))
    atomic_write_bytes(folder / "ca.pem", ca_pem)
    # chain last: its presence marks a complete set (a kill before it leaves keys that get regenerated)
    atomic_write_bytes(folder / "chain.pem", leaf.public_bytes(pem) + ca_pem)
    for cert in ("ca.pem", "chain.pem"):
        os.chmod(folder / cert, 0o644)  # public certificates; only the keys stay 0600


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as err:
        raise FacecastError(f"cannot read the C2PA {what} {path}: {err.strerror}; check {ENV_CHAIN}/{ENV_KEY}") from None


def load_credentials(
    ws: Workspace | None, chain: str | Path | None = None, key: str | Path | None = None
) -> Credentials:
    """Studio certificate (arguments, else environment) if given, else the workspace's own (made on first use)."""
    chain = chain or os.environ.get(ENV_CHAIN)
    key = key or os.environ.get(ENV_KEY)
    if bool(chain) != bool(key):
        raise FacecastError(f"a studio certificate needs both {ENV_CHAIN} (chain PEM) and {ENV_KEY} (key PEM)")
    alg = os.environ.get(ENV_ALG, "es256").lower()
    tsa = os.environ.get(ENV_TSA) or None  # never "": c2pa then tries to contact "" and fails
    if chain and key:
        return Credentials(_read(Path(chain), "chain"), _read(Path(key), "key"), alg, tsa, None, "studio")
    if ws is None:
        raise FacecastError("signing needs a workspace (-w WS) or a studio certificate")
    folder = keys_dir(ws)
    if not (folder / "chain.pem").exists():
        create_workspace_keys(ws)
    return Credentials(
        (folder / "chain.pem").read_bytes(),
        (folder / "leaf.key").read_bytes(),
        "es256",
        tsa,
        (folder / "ca.pem").read_bytes(),
        "workspace",
    )


def workspace_secret(ws: Workspace, purpose: bytes) -> bytes:
    """A 32-byte secret for `purpose` derived from the workspace's private key (made on first use).

    For MACs on workspace state (e.g. the gate verdict cache): only someone holding the key can forge."""
    import hashlib

    leaf = keys_dir(ws) / "leaf.key"
    if not (keys_dir(ws) / "chain.pem").exists():
        create_workspace_keys(ws)
    return hashlib.sha256(b"facecast/" + purpose + b"/" + _read(leaf, "workspace key")).digest()
