"""Software-update certificates: what ``trust.update_keys`` holds and the keyring RAUC reads.

RAUC verifies a bundle's CMS signature against X.509 certificates (its keyring), so an
update key is provisioned as the *certificate* of the software-update CA made in the key
ceremony (docs/updates.md), not a bare public key. Ed25519 is not usable here: RAUC's
CMS signing refuses it, so update keys are ECDSA P-256 (or RSA) certificates.
"""

from __future__ import annotations

import hashlib

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

KEYRING_NAME = "keyring.pem"


class NotACertificate(ValueError):
    """The text is not a usable software-update certificate."""


def load_certificate(pem: str) -> x509.Certificate:
    """The certificate in ``pem``; NotACertificate with what to do otherwise."""
    try:
        cert = x509.load_pem_x509_certificate(pem.strip().encode("ascii") + b"\n")
    except (ValueError, TypeError, UnicodeEncodeError):
        raise NotACertificate(
            "不是软件更新证书。This is not a software-update certificate: paste the whole text "
            "of update-ca.pem from the key ceremony (docs/updates.md), from -----BEGIN "
            "CERTIFICATE----- to -----END CERTIFICATE-----, between triple quotes ''' '''.") \
            from None
    if not isinstance(cert.public_key(), ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
        raise NotACertificate("证书的密钥类型不受支持。The certificate's key is neither ECDSA nor "
                              "RSA; RAUC signs with those only (docs/updates.md).")
    return cert


def certificate_id(cert: x509.Certificate) -> str:
    """16 hex digits of the SHA-256 of the certificate's public key (its file name)."""
    spki = cert.public_key().public_bytes(serialization.Encoding.DER,
                                          serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(spki).hexdigest()[:16]


def keyring(pems: list[str]) -> bytes:
    """RAUC's keyring: every certificate, one after the other, in a stable order."""
    certs = sorted((certificate_id(load_certificate(p)), load_certificate(p)) for p in pems)
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for _, c in certs)
