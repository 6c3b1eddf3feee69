"""The IRP's encryption scheme (NIC e-invoice API v1.04, fact sheet 4.2-4.3), shared by our
adapter and the IRP simulator so both speak exactly one wire format:

* auth: the credentials JSON is Base64-encoded, RSA-encrypted (PKCS#1 v1.5) with the IRP's
  public key, and sent Base64-encoded as ``Data``;
* the IRP answers with a session key (``Sek``, 32 bytes) AES-256-ECB/PKCS7-encrypted with our
  random 32-byte ``AppKey``;
* every later payload and answer is AES-256-ECB/PKCS7-encrypted with the SEK, Base64-encoded.

ECB is NIC's choice, not ours; it is what the IRP accepts.
"""

from __future__ import annotations

import base64
import secrets

from cryptography.hazmat.primitives import padding, serialization
from cryptography.hazmat.primitives.asymmetric import padding as asym_padding
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes


def new_app_key() -> bytes:
    return secrets.token_bytes(32)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def unb64(text: str) -> bytes:
    return base64.b64decode(text, validate=True)


def aes_encrypt(key: bytes, plain: bytes) -> bytes:
    padder = padding.PKCS7(128).padder()
    encryptor = Cipher(algorithms.AES(key), modes.ECB()).encryptor()  # noqa: S305 (NIC's scheme)
    return encryptor.update(padder.update(plain) + padder.finalize()) + encryptor.finalize()


def aes_decrypt(key: bytes, data: bytes) -> bytes:
    decryptor = Cipher(algorithms.AES(key), modes.ECB()).decryptor()  # noqa: S305
    unpadder = padding.PKCS7(128).unpadder()
    padded = decryptor.update(data) + decryptor.finalize()
    return unpadder.update(padded) + unpadder.finalize()


def rsa_encrypt(public_key_pem: str | bytes, plain: bytes) -> bytes:
    key = load_public_key(public_key_pem)
    return key.encrypt(plain, asym_padding.PKCS1v15())


def rsa_decrypt(private_key: rsa.RSAPrivateKey, data: bytes) -> bytes:
    return private_key.decrypt(data, asym_padding.PKCS1v15())


def load_public_key(pem: str | bytes) -> rsa.RSAPublicKey:
    """A PEM public key, or the Base64 DER body NIC publishes without PEM armour."""
    raw = pem.encode() if isinstance(pem, str) else pem
    if b"-----BEGIN" in raw:
        key = serialization.load_pem_public_key(raw)
    else:
        key = serialization.load_der_public_key(base64.b64decode(b"".join(raw.split())))
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError("The IRP public key must be an RSA key.")
    return key


def new_key_pair() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def private_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def public_pem(key: rsa.RSAPrivateKey | rsa.RSAPublicKey) -> str:
    public = key.public_key() if isinstance(key, rsa.RSAPrivateKey) else key
    return public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def load_private_key(pem: bytes) -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("not an RSA private key")
    return key
