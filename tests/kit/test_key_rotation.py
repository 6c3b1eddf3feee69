"""Key rotation against a real PostgreSQL, plus the `nidaan keys` CLI's key generation."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, Text, insert, select, type_coerce
from sqlalchemy.ext.asyncio import AsyncSession
from typer.testing import CliRunner

from nidaan.config import Settings
from nidaan.keys_cli import keys_app
from nidaan.kit.crypto import DecryptionError, FieldCipher, set_cipher, use_cipher
from nidaan.kit.encrypted_type import EncryptedString
from nidaan.kit.key_rotation import rotate_encryption_keys

K1, K2, K3 = os.urandom(32), os.urandom(32), os.urandom(32)


@pytest.fixture
def restore_cipher() -> Iterator[None]:
    """Tests switch the process cipher around; put the configured one back afterwards."""
    previous = set_cipher(None)
    try:
        yield
    finally:
        set_cipher(previous)


def _tables() -> MetaData:
    metadata = MetaData()
    Table(
        "tmp_rotation_people",
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=False),
        Column("mobile", EncryptedString("tmp.people.mobile")),
        Column("abha", EncryptedString("tmp.people.abha"), nullable=True),
        Column("name", String(50)),
        prefixes=["TEMPORARY"],  # the application role may not create tables in public
    )
    # Composite primary key: the keyset pagination must use the whole key.
    Table(
        "tmp_rotation_contacts",
        metadata,
        Column("org", Integer, primary_key=True),
        Column("seq", Integer, primary_key=True),
        # Database name differs from the Python key, as with ORM mapped_column("x_encrypted").
        Column("phone_encrypted", EncryptedString("tmp.contacts.phone"), key="phone"),
        prefixes=["TEMPORARY"],
    )
    return metadata


async def _create(session: AsyncSession, metadata: MetaData) -> None:
    # DDL inside the test transaction: rolled back with everything else.
    await session.run_sync(lambda sync: metadata.create_all(sync.connection()))


async def _raw(session: AsyncSession, table: Table, column: str) -> dict[Any, str | None]:
    pk = list(table.primary_key.columns)
    rows = await session.execute(select(*pk, type_coerce(table.c[column], Text)).order_by(*pk))
    return {tuple(row[:-1]): row[-1] for row in rows}


async def test_rotation_rewraps_everything_once(
    session: AsyncSession, restore_cipher: None
) -> None:
    metadata = _tables()
    people = metadata.tables["tmp_rotation_people"]
    contacts = metadata.tables["tmp_rotation_contacts"]
    await _create(session, metadata)

    set_cipher(FieldCipher({"k1": K1}, "k1"))
    people_rows = [
        {
            "id": i,
            "mobile": f"+9198765{i:05d}",
            "abha": None if i % 3 == 0 else f"91-{i:04d}-0000-0000",
            "name": f"p{i}",
        }
        for i in range(1, 24)
    ]
    await session.execute(insert(people), people_rows)
    contact_rows = [
        {"org": org, "seq": seq, "phone": f"+1415555{org}{seq:03d}"}
        for org in (1, 2)
        for seq in range(1, 8)
    ]
    await session.execute(insert(contacts), contact_rows)
    before = await _raw(session, people, "mobile")
    assert all(token is not None and token.startswith("v1.k1.") for token in before.values())

    # Step 1-2 of a rotation: k2 added and made active; new writes already use it.
    set_cipher(FieldCipher({"k1": K1, "k2": K2}, "k2"))
    await session.execute(insert(people), [{"id": 100, "mobile": "+919999999999", "abha": None}])

    reported: list[tuple[str, int]] = []
    counts = await rotate_encryption_keys(
        session, metadata, batch_size=4, progress=lambda name, n: reported.append((name, n))
    )

    with_abha = sum(1 for row in people_rows if row["abha"] is not None)
    assert counts == {
        "tmp_rotation_contacts.phone_encrypted": 14,
        "tmp_rotation_people.abha": with_abha,
        "tmp_rotation_people.mobile": 23,
    }
    assert reported == sorted(counts.items())

    after = await _raw(session, people, "mobile")
    for key, token in after.items():
        assert token is not None
        assert token.startswith("v1.k2.")
        if key in before:
            # Only the wrapped data key changed; the data ciphertext is byte-identical.
            assert token.split(".")[3] == before[key].split(".")[3]  # type: ignore[union-attr]
    abha_tokens = (await _raw(session, people, "abha")).values()
    assert all(t is None or t.startswith("v1.k2.") for t in abha_tokens)
    assert all(t.startswith("v1.k2.") for t in (await _raw(session, contacts, "phone")).values())

    # Step 5: with the old key removed, every value still decrypts to what was written.
    set_cipher(FieldCipher({"k2": K2}, "k2"))
    loaded = {
        row.id: (row.mobile, row.abha)
        for row in await session.execute(select(people).where(people.c.id < 100))
    }
    assert loaded == {row["id"]: (row["mobile"], row["abha"]) for row in people_rows}
    phones = {(row.org, row.seq): row.phone for row in await session.execute(select(contacts))}
    assert phones == {(row["org"], row["seq"]): row["phone"] for row in contact_rows}

    # Idempotent: nothing left to do.
    assert await rotate_encryption_keys(session, metadata, batch_size=4) == dict.fromkeys(counts, 0)


async def test_key_ids_with_like_wildcards(session: AsyncSession, restore_cipher: None) -> None:
    # "_" is a LIKE wildcard: an unescaped "v1.k_2." prefix would also match "v1.kx2." and
    # leave those rows under the old key.
    metadata = _tables()
    people = metadata.tables["tmp_rotation_people"]
    await _create(session, metadata)
    set_cipher(FieldCipher({"kx2": K1}, "kx2"))
    await session.execute(
        insert(people), [{"id": i, "mobile": f"+91900000000{i}"} for i in range(5)]
    )

    set_cipher(FieldCipher({"kx2": K1, "k_2": K2}, "k_2"))
    counts = await rotate_encryption_keys(session, metadata)

    assert counts["tmp_rotation_people.mobile"] == 5
    tokens = (await _raw(session, people, "mobile")).values()
    assert all(t is not None and t.startswith("v1.k_2.") for t in tokens)


async def test_explicit_cipher_argument(session: AsyncSession, restore_cipher: None) -> None:
    metadata = _tables()
    people = metadata.tables["tmp_rotation_people"]
    await _create(session, metadata)
    with use_cipher(FieldCipher({"k1": K1}, "k1")):
        await session.execute(insert(people), [{"id": 1, "mobile": "+919876543210"}])
    counts = await rotate_encryption_keys(
        session, metadata, cipher=FieldCipher({"k1": K1, "k3": K3}, "k3")
    )
    assert counts["tmp_rotation_people.mobile"] == 1
    assert (await _raw(session, people, "mobile"))[(1,)].startswith("v1.k3.")  # type: ignore[union-attr]


async def test_unknown_key_stops_rotation_without_leaking(
    session: AsyncSession, restore_cipher: None
) -> None:
    metadata = _tables()
    people = metadata.tables["tmp_rotation_people"]
    await _create(session, metadata)
    set_cipher(FieldCipher({"lost": K3}, "lost"))
    await session.execute(insert(people), [{"id": 7, "mobile": "+919876543210"}])

    set_cipher(FieldCipher({"k1": K1, "k2": K2}, "k2"))
    with pytest.raises(DecryptionError) as info:
        await rotate_encryption_keys(session, metadata)
    message = str(info.value)
    assert "tmp_rotation_people.mobile" in message
    assert "(7,)" in message
    assert "'lost'" in message
    assert "9876543210" not in message


async def test_invalid_batch_size(session: AsyncSession) -> None:
    with pytest.raises(ValueError):
        await rotate_encryption_keys(session, MetaData(), batch_size=0)


# --- nidaan keys generate ------------------------------------------------------------


def _env(output: str) -> dict[str, str]:
    values = {}
    for line in output.splitlines():
        if line.startswith("NIDAAN_"):
            name, value = line.split("=", 1)
            values[name] = value[1:-1] if value.startswith("'") else value
    return values


def test_generate_prints_a_complete_working_env() -> None:
    result = CliRunner().invoke(keys_app, ["generate"])
    assert result.exit_code == 0, result.output
    env = _env(result.output)
    assert set(env) == {
        "NIDAAN_SECRET_KEY",
        "NIDAAN_ENCRYPTION_KEYS",
        "NIDAAN_ACTIVE_ENCRYPTION_KEY",
        "NIDAAN_BLIND_INDEX_KEY",
        "NIDAAN_AUDIT_SIGNING_KEY",
        "NIDAAN_BACKUP_KEY",
    }
    settings = Settings(
        secret_key=env["NIDAAN_SECRET_KEY"],
        encryption_keys=env["NIDAAN_ENCRYPTION_KEYS"],
        active_encryption_key=env["NIDAAN_ACTIVE_ENCRYPTION_KEY"],
        blind_index_key=env["NIDAAN_BLIND_INDEX_KEY"],
    )
    cipher = FieldCipher.from_settings(settings)
    assert cipher.decrypt(cipher.encrypt("x", "ctx"), "ctx") == "x"
    assert len(settings.blind_index_secret()) >= 32
    # Fresh every time.
    assert _env(CliRunner().invoke(keys_app, ["generate"]).output) != env


def test_generate_add_to_keeps_old_keys_and_activates_new() -> None:
    first = _env(CliRunner().invoke(keys_app, ["generate"]).output)
    # Accept the value exactly as it sits in .env, quotes included.
    quoted = f"'{first['NIDAAN_ENCRYPTION_KEYS']}'"
    result = CliRunner().invoke(keys_app, ["generate", "--add-to", quoted])
    assert result.exit_code == 0, result.output
    env = _env(result.output)
    assert set(env) == {"NIDAAN_ENCRYPTION_KEYS", "NIDAAN_ACTIVE_ENCRYPTION_KEY"}
    old, new = (
        json.loads(first["NIDAAN_ENCRYPTION_KEYS"]),
        json.loads(env["NIDAAN_ENCRYPTION_KEYS"]),
    )
    assert env["NIDAAN_ACTIVE_ENCRYPTION_KEY"] == "k2"
    assert {k: new[k] for k in old} == old
    assert set(new) == {"k1", "k2"}

    settings = Settings(
        encryption_keys=env["NIDAAN_ENCRYPTION_KEYS"],
        active_encryption_key=env["NIDAAN_ACTIVE_ENCRYPTION_KEY"],
    )
    old_cipher = FieldCipher.from_settings(
        Settings(encryption_keys=first["NIDAAN_ENCRYPTION_KEYS"], active_encryption_key="k1")
    )
    token = old_cipher.encrypt("v", "ctx")
    rotated = FieldCipher.from_settings(settings).rewrap(token)
    assert rotated.startswith("v1.k2.")

    again = _env(
        CliRunner().invoke(keys_app, ["generate", "--add-to", env["NIDAAN_ENCRYPTION_KEYS"]]).output
    )
    assert again["NIDAAN_ACTIVE_ENCRYPTION_KEY"] == "k3"


@pytest.mark.parametrize(
    "bad", ["not json", "[]", "{}", '{"k1": "c2hvcnQ="}', '{"a.b": "' + "A" * 43 + '="}']
)
def test_generate_add_to_rejects_bad_keyrings(bad: str) -> None:
    result = CliRunner().invoke(keys_app, ["generate", "--add-to", bad])
    assert result.exit_code != 0
    assert "c2hvcnQ" not in result.output  # key material is never echoed
