"""Fidelius: the published test vector, the leading-zero trap, key encodings, tampering."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nidaan.abdm import fidelius
from nidaan.abdm.fidelius import FideliusError, KeyMaterial

# fidelius-cli README / pyfidelius tests (the spec sheet's test vector).
REQUESTER_PRIVATE = "DMxHPri8d7IT23KgLk281zZenMfVHSdeamq0RhwlIBk="
REQUESTER_PUBLIC = (
    "BAheD5rUqTy4V5xR4/6HWmYpopu5CO+KO8BECS0udNqUTSNo91TIqIIy1A4Vh+F94c+n9vAcwXU2bGcfsI5f69Y="
)
REQUESTER_NONCE = "6uj1RdDUbcpI3lVMZvijkMC8Te20O4Bcyz0SyivX8Eg="
SENDER_PRIVATE = "AYhVZpbVeX4KS5Qm/W0+9Ye2q3rnVVGmqRICmseWni4="
SENDER_PUBLIC = (
    "BABVt+mpRLMXiQpIfEq6bj8hlXsdtXIxLsspmMgLNI1SR5mHgDVbjHO2A+U4QlMddGzqyEidzm1AkhtSxSO2Ahg="
)
SENDER_NONCE = "lmXgblZwotx+DfBgKJF0lZXtAXgBEYr5khh79Zytr2Y="
PLAINTEXT = "Wormtail should never have been Potter cottage's secret keeper."
SHARED_SECRET = "HZbc9a4h9kMAReILN5VtvbSYHWQpfIcrZ9pWHlQZUHs="
CIPHERTEXT = (
    "pzMvVZNNVtJzqPkkxcCbBUWgDEBy/mBXIeT2dJWI16ZAQnnXUb9lI+S4k8XK6mgZSKKSRIHkcNvJpllnBg548wUg"
    "avBa0vCRRwdL6kY6Yw=="
)


def test_the_published_vector() -> None:
    requester = KeyMaterial.from_private(REQUESTER_PRIVATE, REQUESTER_NONCE)
    sender = KeyMaterial.from_private(SENDER_PRIVATE, SENDER_NONCE)
    assert requester.public_key_raw == REQUESTER_PUBLIC
    # X of the sender's key starts with 0x00: a variable-length encoding would break it.
    assert sender.public_key_raw == SENDER_PUBLIC
    assert base64.b64decode(SENDER_PUBLIC)[1] == 0
    secret = fidelius.shared_secret(requester, fidelius.decode_public_key(SENDER_PUBLIC))
    assert base64.b64encode(secret).decode() == SHARED_SECRET
    assert fidelius.encrypt(sender, REQUESTER_PUBLIC, REQUESTER_NONCE, PLAINTEXT) == CIPHERTEXT
    assert fidelius.decrypt(requester, SENDER_PUBLIC, SENDER_NONCE, CIPHERTEXT) == PLAINTEXT
    # The X.509 form (what Java peers send) decrypts the same.
    assert (
        fidelius.decrypt(requester, sender.public_key_x509, SENDER_NONCE, CIPHERTEXT) == PLAINTEXT
    )


def test_x509_encoding_is_bouncycastle_shaped() -> None:
    sender = KeyMaterial.from_private(SENDER_PRIVATE, SENDER_NONCE)
    der = base64.b64decode(sender.public_key_x509)
    assert len(der) == 309
    assert len(sender.public_key_x509) == 412
    assert der[-68:-64] == bytes.fromhex("03420004")
    assert fidelius.decode_public_key(sender.public_key_x509) == sender.public_key


@settings(max_examples=40, deadline=None)
@given(st.text(max_size=300))
def test_round_trip_between_fresh_key_pairs(text: str) -> None:
    hip, hiu = KeyMaterial.generate(), KeyMaterial.generate()
    sealed = fidelius.encrypt(hip, hiu.public_key_x509, hiu.nonce_b64, text)
    assert fidelius.decrypt(hiu, hip.public_key_x509, hip.nonce_b64, sealed) == text
    assert fidelius.decrypt(hiu, hip.public_key_raw, hip.nonce_b64, sealed) == text


def test_shared_secrets_with_a_leading_zero_keep_32_bytes() -> None:
    """About 1 in 256 key agreements starts with 0x00; both sides must still agree."""
    hiu = KeyMaterial.generate()
    found = 0
    for _ in range(2000):
        hip = KeyMaterial.generate()
        secret = fidelius.shared_secret(hip, hiu.public_key)
        assert len(secret) == 32
        if secret[0] == 0:
            found += 1
            assert fidelius.shared_secret(hiu, hip.public_key) == secret
            sealed = fidelius.encrypt(hip, hiu.public_key_x509, hiu.nonce_b64, "{}")
            assert fidelius.decrypt(hiu, hip.public_key_x509, hip.nonce_b64, sealed) == "{}"
        if found >= 2:
            break
    assert found >= 1


def test_tampering_and_bad_keys_are_refused() -> None:
    hip, hiu = KeyMaterial.generate(), KeyMaterial.generate()
    sealed = fidelius.encrypt(hip, hiu.public_key_x509, hiu.nonce_b64, "record")
    raw = bytearray(base64.b64decode(sealed))
    raw[0] ^= 1
    with pytest.raises(FideliusError):
        fidelius.decrypt(hiu, hip.public_key_x509, hip.nonce_b64, base64.b64encode(raw).decode())
    with pytest.raises(FideliusError):
        fidelius.decrypt(hiu, hip.public_key_x509, hiu.nonce_b64, sealed)  # wrong nonce
    off_curve = base64.b64encode(b"\x04" + b"\x01" * 64).decode()
    with pytest.raises(FideliusError, match="not a point"):
        fidelius.decode_public_key(off_curve)
    with pytest.raises(FideliusError):
        fidelius.decode_public_key("not base64!")
    corrupted = bytearray(base64.b64decode(hip.public_key_x509))
    corrupted[20] ^= 0xFF  # inside the curve parameters
    with pytest.raises(FideliusError):
        fidelius.decode_public_key(base64.b64encode(corrupted).decode())
