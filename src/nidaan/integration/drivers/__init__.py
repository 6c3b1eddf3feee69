"""Vendor drivers (see :mod:`nidaan.integration.drivers.base`)."""

from __future__ import annotations


def load_all() -> None:
    """Import every driver module so that each registers itself."""
    from nidaan.integration.drivers import (  # noqa: F401
        abbott_architect,
        astm_generic,
        beckman_dxh,
        hl7_generic,
        hospital_hl7,
        roche_cobas,
    )
