"""Demo autoverification: validated rule sets for the chemistry the demo analyzer runs, so a
normal result from the analyzer (with passing QC) is verified by the system and anything
else waits for the pathologist with the rule that stopped it."""

from __future__ import annotations

from typing import Any

from sqlalchemy import any_, literal, select
from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.auth.models import User
from nidaan.auth.principal import Principal
from nidaan.autoverify.models import RuleSet
from nidaan.autoverify.schemas import RuleSetIn
from nidaan.autoverify.service import autoverify_service
from nidaan.catalog.models import CatalogTest
from nidaan.tenancy.models import Organisation

#: Test code -> (reportable low, high, autoverification low, high, delta %).
DEMO_RANGES: dict[str, tuple[str, str, str, str, int]] = {
    "GLUF": ("10", "700", "65", "160", 50),
    "UREA": ("2", "300", "12", "60", 50),
    "CREA": ("0.1", "25", "0.4", "1.6", 40),
    "NA": ("100", "180", "130", "150", 8),
    "K": ("1.0", "10.0", "3.3", "5.6", 25),
    "CL": ("60", "140", "94", "112", 10),
}


def demo_rules(code: str) -> list[dict[str, Any]]:
    """The demo rule set of ``code`` (see docs/qc.md for what each rule checks)."""
    reportable_low, reportable_high, low, high, delta = DEMO_RANGES[code]
    rules: list[dict[str, Any]] = [
        {"type": "source", "allowed": ["instrument"]},
        {"type": "reportable_range", "low": reportable_low, "high": reportable_high},
        {"type": "no_critical"},
        {"type": "autoverification_range", "low": low, "high": high},
        {"type": "delta", "percent": delta, "window_days": 90},
        {"type": "instrument_flags"},
        {"type": "qc", "max_age_hours": 24},
        {"type": "specimen_indices", "H": 100, "I": 20, "L": 200},
        {"type": "no_comment"},
    ]
    if code in ("NA", "CL"):
        rules.append(
            {
                "type": "consistency",
                "expression": "NA - CL >= 25 and NA - CL <= 45",
                "message": "sodium-chloride gap outside 25-45 mmol/L",
                "missing": "pass",
            }
        )
    return rules


async def seed_autoverify(session: AsyncSession, organisation: Organisation) -> list[str]:
    """Create the demo rule sets once (nothing when the organisation has any)."""
    if await session.scalar(
        select(RuleSet.id).where(RuleSet.organisation_id == organisation.id).limit(1)
    ):
        return []
    user = await session.scalar(
        select(User).where(
            User.organisation_id == organisation.id, literal("pathologist") == any_(User.roles)
        )
    )
    if user is None:
        return []
    pathologist = Principal(
        kind="user",
        id=user.id,
        organisation_id=user.organisation_id,
        roles=frozenset(user.roles),
        label=user.email,
    )
    tests = {
        t.code: t
        for t in await session.scalars(
            select(CatalogTest).where(
                CatalogTest.organisation_id == organisation.id,
                CatalogTest.code.in_(set(DEMO_RANGES)),
            )
        )
    }
    for code, test in tests.items():
        await autoverify_service.put_rule_set(
            session,
            pathologist,
            test.id,
            RuleSetIn(enabled=True, rules=demo_rules(code), note="Demo rule set (validated)"),
        )
    return [f"autoverification rule sets for {', '.join(sorted(tests))}"]
