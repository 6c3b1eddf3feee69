"""Migration check: every table of the migrated schema has a place in the Citus plan."""

from __future__ import annotations

import os

import psycopg

from nidaan.config import Settings
from nidaan.ops.distribution import analyse


def test_every_tenant_table_can_be_distributed_by_organisation(settings: Settings) -> None:
    owner = os.environ["NIDAAN_MIGRATION_DATABASE_URL"].replace("+psycopg", "")
    with psycopg.connect(owner) as connection:
        report = analyse(connection)
    # A new table must carry organisation_id or be named as global/child in the plan.
    assert report.unclassified == []
    kinds = {plan.table: plan.kind for plan in report.tables}
    assert kinds["orders"] == kinds["results"] == kinds["audit_log"] == "distributed"
    assert kinds["organisations"] == "global"
    assert kinds["user_branches"] == "child"
    # Every distribution key is required: no tenant row without its organisation.
    assert report.nullable_tenant_columns == []
    # What has to change is listed per table: today's primary keys are (id) alone.
    orders = next(plan for plan in report.tables if plan.table == "orders")
    assert any(c.startswith("primary key") for c in orders.changes)
    assert report.changes() > 0
