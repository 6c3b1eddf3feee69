"""Role matrix of the samples, manifests and sample worklist endpoints.

The sample label and reject endpoints are served by orders' router; they are listed in
``orders.py``.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.auth.enums import Role
from nidaan.samples.schemas import ManifestCreate
from nidaan.samples.service import samples_service
from nidaan.tenancy.enums import BranchKind
from nidaan.tenancy.models import Organisation
from tests.fixtures.lab import create_catalog_test, create_patient
from tests.fixtures.objects import create_branch
from tests.fixtures.orders import create_order, system_principal
from tests.http.matrix.base import ALL, Case

COLLECTORS = frozenset({Role.ADMIN, Role.FRONT_DESK, Role.PHLEBOTOMIST})
RECEIVERS = frozenset({Role.ADMIN, Role.TECHNICIAN})

# The harness formats only top-level string values of a body, so context() fills this
# list in place with the accession of a sample collected for the manifest.
MANIFEST_ACCESSIONS: list[str] = []

CASES = [
    Case("GET", "/api/v1/samples", ALL),
    Case("GET", "/api/v1/samples/{accession}", ALL),
    Case("POST", "/api/v1/samples/{accession}/collect", COLLECTORS, {}),
    # The matrix fills one {accession} for every case: an ordered tube, which collect
    # moves on and receive refuses with 409 illegal_transition (past the role check).
    Case("POST", "/api/v1/samples/{accession}/receive", RECEIVERS, {}, ok_statuses=(409,)),
    Case(
        "POST",
        "/api/v1/manifests",
        COLLECTORS,
        {
            "from_branch_id": "{centre_id}",
            "to_branch_id": "{lab_id}",
            "accessions": MANIFEST_ACCESSIONS,
        },
    ),
    Case("POST", "/api/v1/manifests/{manifest_id}/dispatch", COLLECTORS, {}),
    Case("GET", "/api/v1/manifests/{manifest_id}", ALL),
    Case("GET", "/api/v1/worklists/pending-collection", COLLECTORS),
    Case("GET", "/api/v1/worklists/pending-receipt", RECEIVERS),
]


async def lab_context(session: AsyncSession, organisation: Organisation) -> dict[str, str]:
    """Real rows: an order at collection centre CC1 with three tubes (one still ordered,
    one collected and loose, one collected on an open manifest to LAB), and an order at
    LAB whose tube was collected there."""
    caller = system_principal(organisation)
    lab = await create_branch(session, organisation, code="LAB", kind=BranchKind.CENTRAL_LAB)
    centre = await create_branch(session, organisation, code="CC1")
    tests = [
        await create_catalog_test(
            session, organisation, code=code, specimen_type=specimen, container=container
        )
        for code, specimen, container in (
            ("GLU", "plasma", "fluoride_grey"),
            ("ALT", "serum", "sst_yellow"),
            ("HB", "whole_blood", "edta_purple"),
        )
    ]
    await create_catalog_test(session, organisation, code="UREA")
    patient = await create_patient(session, organisation)
    order, (ordered, loose, shipped), order_tests = await create_order(
        session, organisation, patient, tests, branch=centre
    )
    for sample in (loose, shipped):
        await samples_service.collect(session, caller, sample.id)
    manifest, _ = await samples_service.create_manifest(
        session,
        caller,
        ManifestCreate(
            from_branch_id=centre.id, to_branch_id=lab.id, accessions=[shipped.accession]
        ),
    )
    _, (at_lab,), _ = await create_order(session, organisation, patient, tests[:1], branch=lab)
    await samples_service.collect(session, caller, at_lab.id)
    MANIFEST_ACCESSIONS[:] = [loose.accession]
    return {
        "accession": ordered.accession,
        "collected_accession": at_lab.accession,
        "loose_accession": loose.accession,
        "manifest_id": str(manifest.id),
        "lab_id": str(lab.id),
        "centre_id": str(centre.id),
        "patient_id": str(patient.id),
        "order_id": str(order.id),
        "order_test_id": str(order_tests[0].id),
    }


async def context(
    session: AsyncSession, organisation: Organisation, client, admin_headers
) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return await lab_context(session, organisation)
