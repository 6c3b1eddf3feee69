"""Tamper-evident audit trail: every mutating service call records an entry in its transaction.

Use ``from nidaan.audit.service import audit_service`` and
``from nidaan.audit.schemas import AuditActor, SYSTEM_ACTOR``. The HTTP router lives in
``nidaan.audit.endpoints`` and is not imported here, so ``auth`` can import the schemas
without a cycle.
"""
