"""Fidelius: the ECDH + HKDF + AES-GCM scheme ABDM uses to encrypt health records in transit.

The curve is BouncyCastle's ``curve25519`` in short-Weierstrass form (not RFC 7748 X25519),
so the arithmetic is done here on affine/Jacobian points; it takes a few milliseconds.

- Keys: a private scalar ``d`` and the public point ``d*G``. Public keys are sent as X.509
  SubjectPublicKeyInfo with explicit curve parameters (what Java/BouncyCastle peers emit);
  a bare ``04||X||Y`` point (88 base64 characters) is accepted too.
- Nonces: 32 random bytes per side, XORed; salt = first 20 bytes, IV = last 12 bytes.
- Key: HKDF-SHA256(shared secret, salt, no info) -> 32 bytes; cipher AES-256-GCM, no AAD.

The interop trap: integers are always written as fixed 32-byte big-endian values. Dropping a
leading zero byte (as ``int.to_bytes(bit_length)`` code does) derives a different key in about
one session in 256, and makes some public points malformed.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

# ---- the curve (BouncyCastle CustomNamedCurves "curve25519") ------------------------------

P = 2**255 - 19
_A_MONTGOMERY = 486662
A = (3 - _A_MONTGOMERY**2) * pow(3, -1, P) % P
B = (2 * _A_MONTGOMERY**3 - 9 * _A_MONTGOMERY) * pow(27, -1, P) % P
GX = (9 + _A_MONTGOMERY * pow(3, -1, P)) % P
GY = 0x20AE19A1B8A086B4E01EDD2C7748D14C923D4D7E6D7C61B229E9C5A27ECED3D9
N = 2**252 + 0x14DEF9DEA2F79CD65812631A5CF5D3ED
COFACTOR = 8

CRYPTO_ALGORITHM = "ECDH"
CURVE = "Curve25519"
KEY_PARAMETERS = "Curve25519/32byte random key"
NONCE_BYTES = 32
FIELD_BYTES = 32
SALT_BYTES = 20
IV_BYTES = 12

Point = tuple[int, int] | None  # None is the point at infinity


class FideliusError(ValueError):
    """A key, nonce or ciphertext is malformed, off the curve, or fails authentication."""


def is_on_curve(point: Point) -> bool:
    if point is None:
        return False
    x, y = point
    return 0 <= x < P and 0 <= y < P and (y * y - (x * x * x + A * x + B)) % P == 0


# Jacobian coordinates (X, Y, Z) stand for (X/Z^2, Y/Z^3): no inversion per step.
_Jacobian = tuple[int, int, int]


def _double(p: _Jacobian) -> _Jacobian:
    x, y, z = p
    if y == 0 or z == 0:
        return (1, 1, 0)
    yy = y * y % P
    s = 4 * x * yy % P
    zz = z * z % P
    m = (3 * x * x + A * zz * zz) % P
    x3 = (m * m - 2 * s) % P
    y3 = (m * (s - x3) - 8 * yy * yy) % P
    z3 = 2 * y * z % P
    return (x3, y3, z3)


def _add(p: _Jacobian, q: _Jacobian) -> _Jacobian:
    if p[2] == 0:
        return q
    if q[2] == 0:
        return p
    x1, y1, z1 = p
    x2, y2, z2 = q
    z1z1, z2z2 = z1 * z1 % P, z2 * z2 % P
    u1, u2 = x1 * z2z2 % P, x2 * z1z1 % P
    s1, s2 = y1 * z2 * z2z2 % P, y2 * z1 * z1z1 % P
    if u1 == u2:
        return _double(p) if s1 == s2 else (1, 1, 0)
    h = (u2 - u1) % P
    r = (s2 - s1) % P
    hh = h * h % P
    hhh = h * hh % P
    v = u1 * hh % P
    x3 = (r * r - hhh - 2 * v) % P
    y3 = (r * (v - x3) - s1 * hhh) % P
    z3 = h * z1 * z2 % P
    return (x3, y3, z3)


def multiply(k: int, point: Point) -> Point:
    """``k * point`` (double-and-add; the scalar is ours or random, never attacker-chosen)."""
    if point is None or k % N == 0:
        return None
    result: _Jacobian = (1, 1, 0)
    addend: _Jacobian = (point[0], point[1], 1)
    for bit in bin(k)[2:]:
        result = _double(result)
        if bit == "1":
            result = _add(result, addend)
    x, y, z = result
    if z == 0:
        return None
    z_inv = pow(z, -1, P)
    zz = z_inv * z_inv % P
    return (x * zz % P, y * zz * z_inv % P)


GENERATOR: Point = (GX, GY)


# ---- encodings ------------------------------------------------------------------------------


def _fixed(value: int) -> bytes:
    """A field element as exactly 32 big-endian bytes (leading zeros kept: the trap above)."""
    return value.to_bytes(FIELD_BYTES, "big")


def encode_point(point: Point) -> bytes:
    if point is None:
        raise FideliusError("The point at infinity has no encoding")
    return b"\x04" + _fixed(point[0]) + _fixed(point[1])


def decode_point(raw: bytes) -> Point:
    if len(raw) != 1 + 2 * FIELD_BYTES or raw[0] != 4:
        raise FideliusError("A public point must be 65 bytes: 04 || X(32) || Y(32)")
    point = (int.from_bytes(raw[1:33], "big"), int.from_bytes(raw[33:], "big"))
    if not is_on_curve(point):
        raise FideliusError("The public key is not a point on curve25519")
    if multiply(N, point) is not None:
        raise FideliusError("The public key is not in the prime-order subgroup")
    return point


def _der(tag: int, body: bytes) -> bytes:
    length = len(body)
    if length < 0x80:
        head = bytes([length])
    else:
        size = (length.bit_length() + 7) // 8
        head = bytes([0x80 | size]) + length.to_bytes(size, "big")
    return bytes([tag]) + head + body


def _der_int(value: int) -> bytes:
    return _der(0x02, value.to_bytes(value.bit_length() // 8 + 1, "big"))


_OID_EC_PUBLIC_KEY = bytes.fromhex("06072a8648ce3d0201")  # 1.2.840.10045.2.1
_OID_PRIME_FIELD = bytes.fromhex("06072a8648ce3d0101")  # 1.2.840.10045.1.1

#: The AlgorithmIdentifier with explicit curve parameters, as BouncyCastle writes it.
_ALGORITHM = _der(
    0x30,
    _OID_EC_PUBLIC_KEY
    + _der(
        0x30,
        _der_int(1)
        + _der(0x30, _OID_PRIME_FIELD + _der_int(P))
        + _der(0x30, _der(0x04, _fixed(A)) + _der(0x04, _fixed(B)))
        + _der(0x04, encode_point(GENERATOR))
        + _der_int(N)
        + _der_int(COFACTOR),
    ),
)


def encode_x509(point: Point) -> bytes:
    """SubjectPublicKeyInfo DER (309 bytes) with the explicit curve25519 parameters."""
    return _der(0x30, _ALGORITHM + _der(0x03, b"\x00" + encode_point(point)))


def _read(data: bytes, offset: int) -> tuple[int, bytes, int]:
    """(tag, body, next offset) of the DER element at ``offset``."""
    if offset + 2 > len(data):
        raise FideliusError("Truncated DER")
    tag, first = data[offset], data[offset + 1]
    offset += 2
    if first & 0x80:
        size = first & 0x7F
        if size == 0 or size > 3 or offset + size > len(data):
            raise FideliusError("Bad DER length")
        length = int.from_bytes(data[offset : offset + size], "big")
        offset += size
    else:
        length = first
    if offset + length > len(data):
        raise FideliusError("Truncated DER")
    return tag, data[offset : offset + length], offset + length


def decode_public_key(text: str) -> Point:
    """A peer's public key: X.509 DER (explicit curve25519) or a bare point, base64."""
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise FideliusError("The public key is not base64") from None
    if len(raw) == 1 + 2 * FIELD_BYTES:
        return decode_point(raw)
    tag, body, end = _read(raw, 0)
    if tag != 0x30 or end != len(raw):
        raise FideliusError("The public key is neither a bare point nor X.509 DER")
    algorithm_tag, algorithm, offset = _read(body, 0)
    key_tag, bits, _ = _read(body, offset)
    if algorithm_tag != 0x30 or key_tag != 0x03 or not bits.startswith(b"\x00"):
        raise FideliusError("The public key is not an X.509 SubjectPublicKeyInfo")
    if _der(0x30, algorithm) != _ALGORITHM:
        # Same curve only: named-curve or other parameters would be another curve.
        raise FideliusError("The public key is not on BouncyCastle's curve25519")
    return decode_point(bits[1:])


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise FideliusError(f"The {what} is not base64") from None


# ---- keys and encryption --------------------------------------------------------------------


@dataclass(frozen=True)
class KeyMaterial:
    """One side's key pair and nonce for a transfer."""

    private_key: int
    public_key: Point
    nonce: bytes

    @classmethod
    def generate(cls) -> KeyMaterial:
        private_key = secrets.randbelow(N - 1) + 1
        return cls(private_key, multiply(private_key, GENERATOR), secrets.token_bytes(NONCE_BYTES))

    @classmethod
    def from_private(cls, private_b64: str, nonce_b64: str) -> KeyMaterial:
        """Rebuild from Java-style values: BigInteger bytes (31-33, unsigned) and a nonce."""
        private_key = int.from_bytes(_unb64(private_b64, "private key"), "big")
        if not 0 < private_key < N:
            raise FideliusError("The private key is out of range")
        nonce = _unb64(nonce_b64, "nonce")
        if len(nonce) != NONCE_BYTES:
            raise FideliusError("A nonce is 32 bytes")
        return cls(private_key, multiply(private_key, GENERATOR), nonce)

    @property
    def public_key_x509(self) -> str:
        return _b64(encode_x509(self.public_key))

    @property
    def public_key_raw(self) -> str:
        return _b64(encode_point(self.public_key))

    @property
    def nonce_b64(self) -> str:
        return _b64(self.nonce)

    @property
    def private_key_b64(self) -> str:
        """Java BigInteger.toByteArray() form (a sign byte when the top bit is set)."""
        return _b64(self.private_key.to_bytes(self.private_key.bit_length() // 8 + 1, "big"))


def shared_secret(own: KeyMaterial, peer_public_key: Point) -> bytes:
    """The x-coordinate of ``d * peer``, always 32 bytes."""
    shared = multiply(own.private_key, peer_public_key)
    if shared is None:
        raise FideliusError("The key agreement gave the point at infinity")
    return _fixed(shared[0])


def _aes_key_and_iv(secret: bytes, own_nonce: bytes, peer_nonce: bytes) -> tuple[bytes, bytes]:
    if len(own_nonce) != NONCE_BYTES or len(peer_nonce) != NONCE_BYTES:
        raise FideliusError("A nonce is 32 bytes")
    mixed = bytes(a ^ b for a, b in zip(own_nonce, peer_nonce, strict=True))
    salt, iv = mixed[:SALT_BYTES], mixed[-IV_BYTES:]
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=None).derive(secret)
    return key, iv


def encrypt(own: KeyMaterial, peer_public_key: str, peer_nonce_b64: str, plaintext: str) -> str:
    """Encrypt UTF-8 ``plaintext`` for the peer; base64 of ciphertext followed by the tag."""
    key, iv = _aes_key_and_iv(
        shared_secret(own, decode_public_key(peer_public_key)),
        own.nonce,
        _unb64(peer_nonce_b64, "nonce"),
    )
    return _b64(AESGCM(key).encrypt(iv, plaintext.encode("utf-8"), None))


def decrypt(own: KeyMaterial, peer_public_key: str, peer_nonce_b64: str, ciphertext: str) -> str:
    """Decrypt what the peer encrypted for us (FideliusError if tampered or mismatched)."""
    key, iv = _aes_key_and_iv(
        shared_secret(own, decode_public_key(peer_public_key)),
        own.nonce,
        _unb64(peer_nonce_b64, "nonce"),
    )
    try:
        return AESGCM(key).decrypt(iv, _unb64(ciphertext, "ciphertext"), None).decode("utf-8")
    except (InvalidTag, UnicodeDecodeError):
        raise FideliusError("The ciphertext does not decrypt with these keys") from None
