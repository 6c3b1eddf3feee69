"""``nidaan sync-agent`` subcommands that work on the local file alone."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from nidaan.sync.client.cli import app
from nidaan.sync.client.model import Change
from nidaan.sync.client.store import LocalStore

runner = CliRunner()


def test_edit_queues_an_update_that_list_status_and_show_report(tmp_path: Path) -> None:
    data = tmp_path / "cc1.sqlite"
    store = LocalStore(data)
    store.apply_changes(
        [Change(4, "patient", "p1", False, 4, {"id": "p1", "full_name": "Asha", "city": "Pune"})],
        "c4",
    )
    store.close()

    edited = runner.invoke(
        app, ["edit", "patient", "p1", "city=Agra", "weight_kg:=61.5", "--data", str(data)]
    )
    assert edited.exit_code == 0, edited.output
    assert "queued #1 update patient p1 (base v4)" in edited.output

    listed = runner.invoke(app, ["list", "patient", "--data", str(data)])
    header, row = listed.output.splitlines()
    assert header.split() == ["ID", "VERSION", "NAME", "/", "NUMBER"]
    assert row.split() == ["*", "p1", "v4", "Asha"]
    assert row.index("v4") == header.index("VERSION")  # the columns line up
    shown = runner.invoke(app, ["show", "patient", "p1", "--data", str(data)])
    assert '"city": "Agra"' in shown.output
    assert '"weight_kg": 61.5' in shown.output
    status = runner.invoke(app, ["status", "--data", str(data)])
    assert "pending ops    1" in status.output

    [op] = LocalStore(data).pending()
    assert (op.data, op.base_version) == ({"city": "Agra", "weight_kg": 61.5}, 4)


def test_create_and_helpful_errors(tmp_path: Path) -> None:
    data = tmp_path / "cc1.sqlite"
    missing = runner.invoke(app, ["status", "--data", str(data)])
    assert missing.exit_code == 1
    LocalStore(data).close()
    created = runner.invoke(
        app, ["create", "patient", "full_name=Ravi", "age_years:=30", "--data", str(data)]
    )
    assert created.exit_code == 0, created.output
    bad = runner.invoke(app, ["edit", "patient", "p1", "age_years:=thirty", "--data", str(data)])
    assert bad.exit_code == 1
    no_server = runner.invoke(app, ["--data", str(data), "--once"])
    assert no_server.exit_code == 1


def test_empty_lists_say_so(tmp_path: Path) -> None:
    data = tmp_path / "cc1.sqlite"
    LocalStore(data).close()
    conflicts = runner.invoke(app, ["conflicts", "--data", str(data)])
    assert conflicts.exit_code == 0, conflicts.output
    assert conflicts.output.strip() == "no open conflicts"
    every = runner.invoke(app, ["conflicts", "--all", "--data", str(data)])
    assert every.output.strip() == "no conflicts"
    rows = runner.invoke(app, ["list", "order", "--data", str(data)])
    assert rows.output.strip() == "no order rows in the local copy"
