"""Can the schema be distributed by organisation (Citus)? A check of the migrated database.

Beyond one PostgreSQL primary, the plan (docs/scaling.md) is to distribute every tenant
table by ``organisation_id`` with Citus, co-located, so one lab's queries stay on one node.
Citus requires the distribution column in every primary key, unique constraint and foreign
key between distributed tables. This module reads the live catalogue and lists, per table,
what would have to change; the test in ``tests/ops/test_distribution.py`` keeps the list
complete (a new table must be a tenant table or be named here as global).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: Tables that are not any one organisation's: Citus reference tables (copied to every
#: node) or the distribution root itself.
GLOBAL_TABLES = {
    "organisations": "the tenants themselves: distribute by id, co-located with the rest",
    "alembic_version": "migration state: stays on the coordinator",
    "notification_rate_buckets": "provider send-rate buckets shared by every lab: reference",
    "notification_webhook_inbox": "provider webhooks before they are routed to a lab: reference",
}
#: Tables of one organisation that reach it only through a parent row: they need their
#: own ``organisation_id`` column (backfilled from the parent) before distribution.
CHILD_TABLES = {
    "catalog_panel_tests": "catalog_panels",
    "event_deliveries": "event_outbox",
    "login_failures": "users",
    "user_branches": "users",
}
#: Tenant tables whose rows may arrive before we know the lab (a gateway callback, a
#: payment webhook): unrouted rows must move to a reference inbox, then the key is NOT NULL.
ROUTED_LATER = {
    "abdm_messages": "ABDM gateway callbacks before they are matched to a lab",
    "payment_webhook_events": "gateway webhooks before they are matched to a lab",
}
#: Prefixes of tables owned by libraries (procrastinate's job queue): the queue stays on
#: the coordinator (jobs name their organisation in their arguments).
LIBRARY_PREFIXES = ("procrastinate_",)


@dataclass
class TablePlan:
    table: str
    kind: str  # distributed | global | child | library
    changes: list[str] = field(default_factory=list)


@dataclass
class DistributionReport:
    tables: list[TablePlan]
    unclassified: list[str]
    nullable_tenant_columns: list[str]

    @property
    def distributable(self) -> bool:
        """Every table has a place in the plan and every tenant key is NOT NULL."""
        return not self.unclassified and not self.nullable_tenant_columns

    def changes(self) -> int:
        return sum(len(plan.changes) for plan in self.tables)


_COLUMNS = """
SELECT c.table_name, c.is_nullable
FROM information_schema.columns c
JOIN information_schema.tables t USING (table_schema, table_name)
WHERE c.table_schema = 'public' AND t.table_type = 'BASE TABLE'
  AND c.column_name = 'organisation_id'
"""
_TABLES = """
SELECT table_name FROM information_schema.tables
WHERE table_schema = 'public' AND table_type = 'BASE TABLE' ORDER BY 1
"""
# Unique and primary-key constraints with their columns; foreign keys with both sides.
_UNIQUES = """
SELECT rel.relname, con.conname, con.contype::text,
       array_agg(att.attname ORDER BY att.attnum)::text[]
FROM pg_constraint con
JOIN pg_class rel ON rel.oid = con.conrelid
JOIN pg_namespace ns ON ns.oid = rel.relnamespace AND ns.nspname = 'public'
JOIN pg_attribute att ON att.attrelid = rel.oid AND att.attnum = ANY (con.conkey)
WHERE con.contype IN ('p', 'u')
GROUP BY 1, 2, 3
UNION ALL
SELECT tbl.relname, idx.relname, 'i', array_agg(att.attname ORDER BY att.attnum)::text[]
FROM pg_index ix
JOIN pg_class idx ON idx.oid = ix.indexrelid
JOIN pg_class tbl ON tbl.oid = ix.indrelid
JOIN pg_namespace ns ON ns.oid = tbl.relnamespace AND ns.nspname = 'public'
JOIN pg_attribute att ON att.attrelid = tbl.oid AND att.attnum = ANY (ix.indkey)
WHERE ix.indisunique AND NOT ix.indisprimary
  AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = ix.indexrelid)
GROUP BY 1, 2, 3
"""
_FOREIGN_KEYS = """
SELECT src.relname, con.conname, dst.relname,
       array_agg(att.attname ORDER BY att.attnum)::text[]
FROM pg_constraint con
JOIN pg_class src ON src.oid = con.conrelid
JOIN pg_class dst ON dst.oid = con.confrelid
JOIN pg_namespace ns ON ns.oid = src.relnamespace AND ns.nspname = 'public'
JOIN pg_attribute att ON att.attrelid = src.oid AND att.attnum = ANY (con.conkey)
WHERE con.contype = 'f'
GROUP BY 1, 2, 3
"""


def analyse(connection: Any) -> DistributionReport:
    """Plan the distribution of the database behind the psycopg ``connection``."""
    tables = [row[0] for row in connection.execute(_TABLES).fetchall()]
    tenant = {row[0]: row[1] for row in connection.execute(_COLUMNS).fetchall()}
    plans: dict[str, TablePlan] = {}
    unclassified = []
    for table in tables:
        if table.startswith(LIBRARY_PREFIXES):
            plans[table] = TablePlan(table, "library")
        elif table in GLOBAL_TABLES:
            plans[table] = TablePlan(table, "global")
        elif table in CHILD_TABLES:
            plans[table] = TablePlan(
                table,
                "child",
                [f"add organisation_id (from {CHILD_TABLES[table]}) and distribute by it"],
            )
        elif table in tenant:
            plans[table] = TablePlan(table, "distributed")
        else:
            unclassified.append(table)
    distributed = {t for t, p in plans.items() if p.kind in ("distributed", "child")}
    for table, name, kind, columns in connection.execute(_UNIQUES).fetchall():
        if table in distributed and "organisation_id" not in columns:
            what = {"p": "primary key", "u": "unique constraint", "i": "unique index"}[kind]
            plans[table].changes.append(
                f"{what} {name} ({', '.join(columns)}) must include organisation_id"
            )
    for table, name, target, columns in connection.execute(_FOREIGN_KEYS).fetchall():
        if table in distributed and target in distributed and "organisation_id" not in columns:
            plans[table].changes.append(
                f"foreign key {name} -> {target} ({', '.join(columns)}) must include "
                "organisation_id"
            )
    nullable = sorted(
        t for t, is_nullable in tenant.items() if is_nullable == "YES" and t not in ROUTED_LATER
    )
    for table in ROUTED_LATER:
        if table in plans:
            plans[table].changes.append(
                f"organisation_id is nullable ({ROUTED_LATER[table]}): keep unrouted rows in "
                "a reference inbox, then make it NOT NULL"
            )
    return DistributionReport(
        tables=[plans[t] for t in sorted(plans)],
        unclassified=unclassified,
        nullable_tenant_columns=nullable,
    )
