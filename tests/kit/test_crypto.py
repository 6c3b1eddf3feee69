"""FieldCipher: envelope encryption round trips, tamper detection, rotation by re-wrap."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nidaan.kit.crypto import DecryptionError, FieldCipher, get_cipher, set_cipher, use_cipher

K1, K2, K3 = os.urandom(32), os.urandom(32), os.urandom(32)
CTX = "users.mobile"
SECRET = "+919876543210"


@pytest.fixture
def cipher() -> FieldCipher:
    return FieldCipher({"k1": K1}, "k1")


def test_round_trip(cipher: FieldCipher) -> None:
    for value in ["", SECRET, "ABHA 12-3456-7890-1234", "नमस्ते 🧪", "x" * 10_000]:
        assert cipher.decrypt(cipher.encrypt(value, CTX), CTX) == value


def test_token_shape(cipher: FieldCipher) -> None:
    token = cipher.encrypt(SECRET, CTX)
    version, kid, wrapped, _data = token.split(".")
    assert (version, kid) == ("v1", "k1")
    assert token.isascii()
    assert "=" not in token
    assert SECRET not in token
    assert "9876543210" not in token
    assert cipher.key_id_of(token) == "k1"
    assert len(wrapped) == 80  # 12-byte nonce + 32-byte key + 16-byte tag


def test_same_value_encrypts_differently(cipher: FieldCipher) -> None:
    a, b = cipher.encrypt(SECRET, CTX), cipher.encrypt(SECRET, CTX)
    assert a != b
    assert a.split(".")[2] != b.split(".")[2]  # fresh data key each time
    assert a.split(".")[3] != b.split(".")[3]


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_any_flipped_byte_is_detected(data: st.DataObject) -> None:
    cipher = FieldCipher({"k1": K1, "k2": K2}, "k1")
    token = cipher.encrypt(SECRET, CTX).encode("ascii")
    index = data.draw(st.integers(0, len(token) - 1), label="index")
    mask = data.draw(st.integers(1, 255), label="mask")
    tampered = bytearray(token)
    tampered[index] ^= mask
    with pytest.raises(DecryptionError) as info:
        cipher.decrypt(tampered.decode("latin-1"), CTX)
    assert SECRET not in str(info.value)


def test_every_position_flipped_is_detected(cipher: FieldCipher) -> None:
    # Exhaustive over positions (hypothesis covers masks): includes the last base64 char,
    # whose unused low bits a lax decoder would ignore.
    token = cipher.encrypt("abc", CTX)
    for index in range(len(token)):
        for replacement in {"A", "B", "-", "_", ".", "="} - {token[index]}:
            with pytest.raises(DecryptionError):
                cipher.decrypt(token[:index] + replacement + token[index + 1 :], CTX)


def test_swapping_parts_between_tokens_is_detected(cipher: FieldCipher) -> None:
    a = cipher.encrypt(SECRET, CTX).split(".")
    b = cipher.encrypt(SECRET, CTX).split(".")
    with pytest.raises(DecryptionError):
        cipher.decrypt(".".join([*a[:3], b[3]]), CTX)


@pytest.mark.parametrize(
    "token",
    ["", "garbage", "v1.k1.AAAA.AAAA", "v2.k1.x.y", "v1..x.y", "v1.k1.a.b.c", "v1.k1.!!.@@"],
)
def test_malformed_tokens(cipher: FieldCipher, token: str) -> None:
    with pytest.raises(DecryptionError):
        cipher.decrypt(token, CTX)
    with pytest.raises(DecryptionError):
        cipher.key_id_of(token)


def test_plaintext_in_column_is_not_echoed(cipher: FieldCipher) -> None:
    # Legacy/unencrypted data in an encrypted column must not leak through the error.
    with pytest.raises(DecryptionError) as info:
        cipher.decrypt("9876543210", CTX)
    assert "9876543210" not in str(info.value)
    assert "9876543210" not in repr(info.value)


def test_wrong_context_fails(cipher: FieldCipher) -> None:
    token = cipher.encrypt(SECRET, CTX)
    with pytest.raises(DecryptionError, match=r"context 'patients\.mobile'") as info:
        cipher.decrypt(token, "patients.mobile")
    assert SECRET not in str(info.value)


def test_unknown_key_id_is_explained() -> None:
    token = FieldCipher({"old": K1}, "old").encrypt(SECRET, CTX)
    with pytest.raises(DecryptionError) as info:
        FieldCipher({"k2": K2}, "k2").decrypt(token, CTX)
    message = str(info.value)
    assert "'old'" in message
    assert "NIDAAN_ENCRYPTION_KEYS" in message
    assert "k2" in message
    assert SECRET not in message


def test_same_key_id_different_key_fails() -> None:
    token = FieldCipher({"k1": K1}, "k1").encrypt(SECRET, CTX)
    with pytest.raises(DecryptionError, match="data key failed authentication"):
        FieldCipher({"k1": K2}, "k1").decrypt(token, CTX)


def test_rewrap_moves_to_active_key_and_keeps_data() -> None:
    old = FieldCipher({"k1": K1}, "k1")
    token = old.encrypt(SECRET, CTX)
    rotating = FieldCipher({"k1": K1, "k2": K2}, "k2")
    assert rotating.needs_rewrap(token)

    new_token = rotating.rewrap(token)

    assert rotating.key_id_of(new_token) == "k2"
    assert not rotating.needs_rewrap(new_token)
    assert new_token.split(".")[3] == token.split(".")[3]  # data ciphertext untouched
    assert new_token.split(".")[2] != token.split(".")[2]
    assert rotating.decrypt(new_token, CTX) == SECRET
    # After the old key is removed, the re-wrapped value still decrypts; the old one cannot.
    new_only = FieldCipher({"k2": K2}, "k2")
    assert new_only.decrypt(new_token, CTX) == SECRET
    with pytest.raises(DecryptionError):
        new_only.decrypt(token, CTX)


def test_rewrap_is_a_no_op_under_active_key(cipher: FieldCipher) -> None:
    token = cipher.encrypt(SECRET, CTX)
    assert not cipher.needs_rewrap(token)
    assert cipher.rewrap(token) == token


def test_rewrap_of_tampered_token_fails() -> None:
    token = FieldCipher({"k1": K1}, "k1").encrypt(SECRET, CTX)
    version, kid, wrapped, data = token.split(".")
    bad = ".".join([version, kid, wrapped[:-2] + ("AA" if wrapped[-2:] != "AA" else "BA"), data])
    with pytest.raises(DecryptionError):
        FieldCipher({"k1": K1, "k2": K2}, "k2").rewrap(bad)


@pytest.mark.parametrize(
    ("keys", "active"),
    [({}, "k1"), ({"k1": b"short"}, "k1"), ({"k1": K1}, "k2"), ({"a.b": K1}, "a.b")],
)
def test_invalid_keyrings_are_rejected(keys: dict[str, bytes], active: str) -> None:
    with pytest.raises(ValueError) as info:
        FieldCipher(keys, active)
    assert K1.hex() not in str(info.value)


def test_repr_hides_keys() -> None:
    cipher = FieldCipher({"k1": K1, "k2": K2}, "k2")
    text = repr(cipher)
    assert "k1" in text
    assert "k2" in text
    for key in (K1, K2):
        assert key.hex() not in text
        assert repr(key) not in text


def test_context_is_required(cipher: FieldCipher) -> None:
    with pytest.raises(ValueError):
        cipher.encrypt(SECRET, "")
    with pytest.raises(TypeError):
        cipher.encrypt(1234, CTX)  # type: ignore[arg-type]


def test_process_cipher_override_is_restored() -> None:
    previous = set_cipher(None)
    try:
        configured = get_cipher()  # built from the test settings
        assert get_cipher() is configured
        replacement = FieldCipher({"k3": K3}, "k3")
        with use_cipher(replacement):
            assert get_cipher() is replacement
        assert get_cipher() is configured
    finally:
        set_cipher(previous)
