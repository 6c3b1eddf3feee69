"""Password hashing with Argon2id (argon2-cffi), parameters from settings."""

from __future__ import annotations

import asyncio
from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from nidaan.config import get_settings

MIN_PASSWORD_LENGTH = 10


@lru_cache(maxsize=1)
def _hasher() -> PasswordHasher:
    settings = get_settings()
    return PasswordHasher(
        time_cost=settings.argon2_time_cost, memory_cost=settings.argon2_memory_kib
    )


def hash_password(password: str) -> str:
    return _hasher().hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher().verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


async def verify_password_off_loop(password_hash: str, password: str) -> bool:
    """``verify_password`` in a worker thread: Argon2id takes tens of milliseconds of CPU
    (it releases the GIL), which must not stall every other request on the event loop."""
    return await asyncio.to_thread(verify_password, password_hash, password)


def needs_rehash(password_hash: str) -> bool:
    return _hasher().check_needs_rehash(password_hash)


# A valid hash to verify against when the user does not exist, so timing does not reveal it.
@lru_cache(maxsize=1)
def dummy_hash() -> str:
    return hash_password("not-a-real-password-for-timing")
