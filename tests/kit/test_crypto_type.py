"""EncryptedString column type: encrypt on bind, decrypt on load, no ciphertext comparisons."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, Text, select, type_coerce
from sqlalchemy.dialects import postgresql

from nidaan.kit.crypto import DecryptionError, FieldCipher, use_cipher
from nidaan.kit.encrypted_type import (
    EncryptedComparisonError,
    EncryptedString,
    encrypted_columns,
)

DIALECT = postgresql.dialect()  # type: ignore[no-untyped-call]


@pytest.fixture
def cipher() -> Iterator[FieldCipher]:
    with use_cipher(FieldCipher({"k1": os.urandom(32)}, "k1")) as active:
        yield active


@pytest.fixture
def people() -> Table:
    return Table(
        "people",
        MetaData(),
        Column("id", Integer, primary_key=True),
        Column("mobile", EncryptedString("people.mobile")),
        Column("abha", EncryptedString("people.abha")),
        Column("mobile_bidx", String(64)),
    )


def test_bind_encrypts_and_result_decrypts(cipher: FieldCipher) -> None:
    kind = EncryptedString("people.mobile")
    bind = kind.bind_processor(DIALECT)
    load = kind.result_processor(DIALECT, None)
    assert bind is not None
    assert load is not None
    stored = bind("+919876543210")
    assert stored.startswith("v1.k1.")
    assert "9876543210" not in stored
    assert cipher.decrypt(stored, "people.mobile") == "+919876543210"
    assert load(stored) == "+919876543210"


def test_none_passes_through(cipher: FieldCipher) -> None:
    kind = EncryptedString("people.mobile")
    assert kind.process_bind_param(None, DIALECT) is None
    assert kind.process_result_value(None, DIALECT) is None


def test_context_is_bound_to_the_column(cipher: FieldCipher) -> None:
    stored = EncryptedString("people.mobile").process_bind_param("x", DIALECT)
    with pytest.raises(DecryptionError):
        EncryptedString("people.abha").process_result_value(stored, DIALECT)


def test_context_is_required() -> None:
    with pytest.raises(ValueError):
        EncryptedString("")


def test_context_is_part_of_the_cache_key() -> None:
    assert EncryptedString("a")._static_cache_key != EncryptedString("b")._static_cache_key
    assert EncryptedString("a")._static_cache_key == EncryptedString("a")._static_cache_key


def test_comparisons_on_ciphertext_are_refused(people: Table) -> None:
    attempts = [
        lambda: people.c.mobile == "+919876543210",
        lambda: people.c.mobile != "+919876543210",
        lambda: people.c.mobile == "+919876543210",
        lambda: people.c.mobile.in_(["+919876543210"]),
        lambda: people.c.mobile.like("+91%"),
        lambda: people.c.mobile.startswith("+91"),
        lambda: people.c.mobile > "a",
    ]
    for attempt in attempts:
        with pytest.raises(EncryptedComparisonError, match="blind index"):
            attempt()


def test_null_checks_ordering_and_raw_access_still_work(people: Table) -> None:
    query = (
        select(people.c.id)
        .where(people.c.mobile.is_not(None), people.c.abha == None)  # noqa: E711
        .where(type_coerce(people.c.mobile, Text).startswith("v1.k1."))
        .order_by(people.c.id)
    )
    sql = str(query.compile(dialect=DIALECT))
    assert "people.mobile IS NOT NULL" in sql
    assert "people.abha IS NULL" in sql


def test_encrypted_columns_are_discovered(people: Table) -> None:
    other = Table(
        "aaa", people.metadata, Column("id", Integer, primary_key=True), Column("x", Text)
    )
    found = encrypted_columns(people.metadata)
    assert [(item.table.name, item.column.name, item.context) for item in found] == [
        ("people", "abha", "people.abha"),
        ("people", "mobile", "people.mobile"),
    ]
    table, column, context = found[0]  # unpacks as (table, column, context)
    assert table is people
    assert column is people.c.abha
    assert context == "people.abha"
    assert found[1].name == "people.mobile"
    assert other.name not in {item.table.name for item in found}
