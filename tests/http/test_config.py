"""Production mode refuses placeholder secrets and demo keys."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from nidaan.config import (
    DEMO_SECRETS_FILE,
    ConfigurationError,
    Mode,
    Settings,
    check_production_ready,
    generate_secrets,
)


def _production(tmp_path: Path, **values: object) -> Settings:
    return Settings(mode=Mode.PRODUCTION, data_dir=tmp_path, **values)  # type: ignore[arg-type]


def test_production_without_secrets_lists_every_missing_one(tmp_path: Path) -> None:
    problems = check_production_ready(_production(tmp_path))
    assert len(problems) == 4
    assert any("NIDAAN_AUDIT_SIGNING_KEY" in p for p in problems)
    assert any("NIDAAN_SECRET_KEY" in p for p in problems)


def test_production_with_generated_secrets_is_ready(tmp_path: Path) -> None:
    settings = _production(tmp_path, **generate_secrets())
    assert check_production_ready(settings) == []
    active, keys = settings.encryption_keyring()
    assert active == "k1"
    assert len(keys["k1"]) == 32


def test_production_refuses_the_demo_keys(tmp_path: Path) -> None:
    demo = generate_secrets()
    import json

    (tmp_path / DEMO_SECRETS_FILE).write_text(json.dumps(demo))
    problems = check_production_ready(_production(tmp_path, **demo))
    assert any("demo key" in p for p in problems)


def test_bad_keyring_is_a_clear_configuration_error(tmp_path: Path) -> None:
    settings = _production(tmp_path, encryption_keys=SecretStr('{"k1": "dG9vLXNob3J0"}'))
    with pytest.raises(ConfigurationError, match="32 bytes"):
        settings.encryption_keyring()
