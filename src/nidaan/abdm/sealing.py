"""Sealing Aadhaar, mobile and OTP values for the ABHA v3 APIs.

ABHA v3 wants RSA-OAEP with SHA-1 for both the digest and MGF1 (its certificate says
``RSA/ECB/OAEPWithSHA-1AndMGF1Padding``), standard base64 in the field. PKCS#1 v1.5 (the old
v1/v2 APIs) and OAEP-SHA-256 are refused with errors that do not mention encryption.
"""

from __future__ import annotations

import base64
import binascii

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

ABHA_ALGORITHM = "RSA/ECB/OAEPWithSHA-1AndMGF1Padding"
# SHA-1 is what ABHA requires here (OAEP's use of it is not the weak collision case).
_SHA1 = hashes.SHA1()  # noqa: S303
OAEP_SHA1 = padding.OAEP(mgf=padding.MGF1(algorithm=_SHA1), algorithm=_SHA1, label=None)


class InvalidCertificate(ValueError):
    """The ABHA public certificate is not a usable RSA public key."""


def load_public_key(public_key_b64: str) -> rsa.RSAPublicKey:
    """The certificate's ``publicKey``: bare base64 DER SubjectPublicKeyInfo (PEM accepted)."""
    text = public_key_b64.strip()
    try:
        if text.startswith("-----BEGIN"):
            key = serialization.load_pem_public_key(text.encode())
        else:
            key = serialization.load_der_public_key(base64.b64decode(text, validate=True))
    except (ValueError, binascii.Error, TypeError) as exc:
        raise InvalidCertificate("The ABHA certificate is not a public key") from exc
    if not isinstance(key, rsa.RSAPublicKey):
        raise InvalidCertificate("The ABHA certificate is not an RSA key")
    return key


def seal(public_key: rsa.RSAPublicKey, value: str) -> str:
    """Encrypt ``value`` (UTF-8) with RSA-OAEP-SHA1; base64."""
    return base64.b64encode(public_key.encrypt(value.encode("utf-8"), OAEP_SHA1)).decode("ascii")


def unseal(private_key: rsa.RSAPrivateKey, sealed: str) -> str:
    """The reverse (the simulator plays ABDM and holds the private key)."""
    return private_key.decrypt(base64.b64decode(sealed, validate=True), OAEP_SHA1).decode("utf-8")
