"""Ed25519 keys and detached release signatures.

A private key is a PKCS#8 PEM file (mode 0600); a public key is a PEM file. A key's
id is the first 16 hex digits of the sha256 of its raw 32-byte public key. A
signature file is JSON naming the key id, over the exact bytes it signs.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from .atomic import atomic_write_bytes
from .errors import KetangError, SignatureError

SIGNATURE_FORMAT = "ketang-signature/1"
MAX_SIGNATURE_FILE = 4096


def key_id(public_key: Ed25519PublicKey) -> str:
    """The short id a signature names its key by."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


@dataclass(frozen=True)
class KeyPair:
    """Where ``ketang keys new`` wrote a key pair, and its id."""

    private_path: Path
    public_path: Path
    key_id: str


def generate_keypair(out_dir: Path, name: str) -> KeyPair:
    """Write ``NAME.key`` (private, 0600) and ``NAME.pub`` into ``out_dir``.

    Refuses to overwrite an existing key: losing a publisher key strands every
    device that trusts it.
    """
    out_dir = Path(out_dir)
    private_path = out_dir / f"{name}.key"
    public_path = out_dir / f"{name}.pub"
    for p in (private_path, public_path):
        if p.exists():
            raise KetangError(f"{p} already exists; choose another --name or folder.")
    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    atomic_write_bytes(private_path, pem, mode=0o600)
    atomic_write_bytes(public_path, public_pem(private.public_key()))
    return KeyPair(private_path, public_path, key_id(private.public_key()))


def public_pem(public_key: Ed25519PublicKey) -> bytes:
    """The PEM text of a public key."""
    return public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def load_private_key(path: Path) -> Ed25519PrivateKey:
    """Read a private key written by :func:`generate_keypair`."""
    try:
        key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as e:
        raise KetangError(f"cannot read the private key {path}: {e}") from e
    if not isinstance(key, Ed25519PrivateKey):
        raise KetangError(f"{path} is not an Ed25519 private key")
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    """Read a public key (``*.pub``, PEM)."""
    try:
        key = serialization.load_pem_public_key(Path(path).read_bytes())
    except (OSError, ValueError, TypeError) as e:
        raise KetangError(f"cannot read the public key {path}: {e}") from e
    if not isinstance(key, Ed25519PublicKey):
        raise KetangError(f"{path} is not an Ed25519 public key")
    return key


class TrustedKeys(dict[str, Ed25519PublicKey]):
    """Trusted public keys by key id, and the folder they were read from (for messages)."""

    def __init__(self, keys: dict[str, Ed25519PublicKey], folder: Path | None = None) -> None:
        super().__init__(keys)
        self.folder = folder


def trusted_folder(trusted: dict[str, Ed25519PublicKey]) -> str:
    """"the trusted keys folder <path>", naming the folder when it is known."""
    folder = getattr(trusted, "folder", None)
    return f"the trusted keys folder {folder}" if folder else "the trusted keys folder"


def load_trusted_keys(keys_dir: Path) -> TrustedKeys:
    """Every ``*.pub`` in ``keys_dir``, by key id. A missing folder trusts nothing."""
    keys: dict[str, Ed25519PublicKey] = {}
    keys_dir = Path(keys_dir)
    if keys_dir.is_dir():
        for p in sorted(keys_dir.glob("*.pub")):
            k = load_public_key(p)
            keys[key_id(k)] = k
    return TrustedKeys(keys, keys_dir)


def sign(private_key: Ed25519PrivateKey, data: bytes) -> bytes:
    """A detached signature file's bytes for ``data``."""
    doc = {
        "format": SIGNATURE_FORMAT,
        "algorithm": "ed25519",
        "key_id": key_id(private_key.public_key()),
        "signature": base64.b64encode(private_key.sign(data)).decode("ascii"),
    }
    return (json.dumps(doc, indent=2) + "\n").encode()


def verify(data: bytes, signature_file: bytes, trusted: dict[str, Ed25519PublicKey],
           where: str = "the manifest") -> str:
    """Check a detached signature over ``data``; return the signing key's id.

    Raises SignatureError saying what is wrong: malformed, unknown key, or bad signature.
    """
    if len(signature_file) > MAX_SIGNATURE_FILE:
        raise SignatureError(f"the signature of {where} is too large to be a Ketang signature")
    try:
        doc = json.loads(signature_file)
        kid = doc["key_id"]
        raw = base64.b64decode(doc["signature"], validate=True)
        if doc.get("format") != SIGNATURE_FORMAT or doc.get("algorithm") != "ed25519":
            raise ValueError("unknown format or algorithm")
        if not isinstance(kid, str):
            raise ValueError("key_id is not a string")
    except (ValueError, KeyError, TypeError, binascii.Error, RecursionError) as e:
        # RecursionError: json.loads recurses once per nesting level ('[' * 4000).
        raise SignatureError(
            f"the signature of {where} is malformed ({e}); the bundle is damaged or "
            "was not made by `ketang publish`."
        ) from e
    key = trusted.get(kid)
    if key is None:
        known = ", ".join(sorted(trusted)) or "none"
        raise SignatureError(
            f"{where} is signed by key {kid}, which this device does not trust "
            f"(trusted keys: {known}). Ask the publisher for a bundle signed by a trusted "
            f"key, or add their public key (.pub) to {trusted_folder(trusted)}."
        )
    try:
        key.verify(raw, data)
    except InvalidSignature as e:
        raise SignatureError(
            f"{where} does not match its signature by key {kid}: it was altered after "
            "signing or damaged in transit. Nothing was imported; re-copy the bundle."
        ) from e
    return kid
