"""``nidaan keys``: generate key material and rotate the field-encryption key."""

from __future__ import annotations

import asyncio
import json
import re
import secrets
from base64 import urlsafe_b64decode, urlsafe_b64encode
from typing import Annotated

import typer

from nidaan.config import ConfigurationError, generate_secrets, get_settings
from nidaan.kit.crypto import KEY_BYTES, KEY_ID_PATTERN, DecryptionError

ROTATION_STEPS = """\
To rotate the encryption key (keep a backup of your .env first):

\b
  1. nidaan keys generate --add-to '<current NIDAAN_ENCRYPTION_KEYS value>'
     and put the two printed lines into .env (the old key stays in the list).
  2. Restart Nidaan: new values are now encrypted with the new key.
  3. nidaan keys rotate   (re-wraps every stored value under the new key).
  4. Run nidaan keys rotate again: it must report 0 values.
  5. Only then delete the old key id from NIDAAN_ENCRYPTION_KEYS and restart.

Never change or lose NIDAAN_BLIND_INDEX_KEY: searches by mobile number depend on it.
"""

keys_app = typer.Typer(
    name="keys",
    help="Generate secrets and rotate the encryption key.\n\n" + ROTATION_STEPS,
    no_args_is_help=True,
)


def _env_line(name: str, value: str) -> str:
    # JSON holds double quotes; single quotes keep it intact for .env, shells and systemd.
    if any(ch in value for ch in "\"' #"):
        return f"{name}='{value}'"
    return f"{name}={value}"


def _next_key_id(existing: list[str]) -> str:
    numbers = [int(m.group(1)) for kid in existing if (m := re.fullmatch(r"k(\d+)", kid))]
    candidate = max(numbers, default=0) + 1
    while f"k{candidate}" in existing:
        candidate += 1
    return f"k{candidate}"


def _parse_keyring(raw: str) -> dict[str, str]:
    """The existing NIDAAN_ENCRYPTION_KEYS JSON, validated (errors never echo key material)."""
    text = raw.strip()
    if text.startswith("NIDAAN_ENCRYPTION_KEYS="):
        text = text.split("=", 1)[1]
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        text = text[1:-1]
    try:
        keys = json.loads(text)
    except ValueError:
        raise typer.BadParameter(
            'Expected the JSON value of NIDAAN_ENCRYPTION_KEYS, e.g. \'{"k1": "..."}\''
        ) from None
    if not isinstance(keys, dict) or not keys:
        raise typer.BadParameter("NIDAAN_ENCRYPTION_KEYS must be a non-empty JSON object")
    for key_id, value in keys.items():
        try:
            ok = isinstance(value, str) and len(urlsafe_b64decode(value)) == KEY_BYTES
        except ValueError:
            ok = False
        if not ok or not KEY_ID_PATTERN.match(key_id):
            raise typer.BadParameter(f"Key {key_id!r} is not a valid base64 32-byte key")
    return keys


@keys_app.command("generate")
def generate(
    add_to: Annotated[
        str | None,
        typer.Option(
            "--add-to",
            metavar="JSON",
            help="Your current NIDAAN_ENCRYPTION_KEYS value. Prints it with a new key added "
            "and made active (step 1 of a rotation); other secrets are left alone.",
        ),
    ] = None,
) -> None:
    """Print fresh secrets as .env lines (for a new production installation).

    With --add-to, print only NIDAAN_ENCRYPTION_KEYS (old keys kept, one
    new key added) and NIDAAN_ACTIVE_ENCRYPTION_KEY set to the new key:
    step 1 of a rotation.
    """
    if add_to is None:
        values = generate_secrets()
        typer.echo("# Nidaan secrets: keep them private and backed up; losing them loses data.")
        for name in (
            "secret_key",
            "encryption_keys",
            "active_encryption_key",
            "blind_index_key",
            "audit_signing_key",
            "backup_key",
        ):
            typer.echo(_env_line(f"NIDAAN_{name.upper()}", str(values[name])))
        return
    keys = _parse_keyring(add_to)
    new_id = _next_key_id(list(keys))
    keys[new_id] = urlsafe_b64encode(secrets.token_bytes(KEY_BYTES)).decode()
    typer.echo("# Replace these two lines in .env; then restart and run `nidaan keys rotate`.")
    typer.echo(_env_line("NIDAAN_ENCRYPTION_KEYS", json.dumps(keys, separators=(",", ":"))))
    typer.echo(_env_line("NIDAAN_ACTIVE_ENCRYPTION_KEY", new_id))


@keys_app.command("rotate")
def rotate(
    batch_size: Annotated[
        int, typer.Option(min=1, help="Rows re-wrapped per database round trip")
    ] = 500,
) -> None:
    """Re-wrap every stored encrypted value under the active key (step 3 of a rotation).

    Safe to run while Nidaan is running, and safe to repeat: values already
    under the active key are skipped. All changes are committed together.
    """
    from nidaan.kit.crypto import get_cipher

    try:
        cipher = get_cipher()
    except ConfigurationError as exc:
        typer.secho(f"Error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from None
    typer.echo(
        f"Active key: {cipher.active_key_id} (known keys: {', '.join(sorted(cipher.key_ids))})"
    )
    from nidaan.command_line import open_database

    open_database(get_settings())
    try:
        counts = asyncio.run(_rotate(batch_size))
    except DecryptionError as exc:
        typer.secho(f"Error: {exc}\nNothing was changed.", fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from None
    total = sum(counts.values())
    typer.echo(f"Done: {total} value(s) re-wrapped under key {cipher.active_key_id}.")
    if total:
        typer.echo("Run `nidaan keys rotate` again; once it reports 0 you may remove old keys.")
    else:
        typer.echo("No value uses another key: old keys may now be removed.")


async def _rotate(batch_size: int) -> dict[str, int]:
    # Imported here: nidaan.models pulls in every module's tables, which `generate` never needs.
    from nidaan.kit import db
    from nidaan.kit.key_rotation import rotate_encryption_keys
    from nidaan.models import metadata

    def report(name: str, count: int) -> None:
        typer.echo(f"  {name}: {count} value(s) re-wrapped")

    settings = get_settings()
    try:
        async with db.session_scope(settings) as session:
            return await rotate_encryption_keys(
                session, metadata, batch_size=batch_size, progress=report
            )
    finally:
        await db.dispose()
