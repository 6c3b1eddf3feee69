"""Beckman Coulter DxH 800/900 (haematology), ASTM LIS2-A with ``H|\\!~`` delimiters.

Inbound delimiters are read from each H record by the codec; replies use the DxH set, so a
test id looks like ``!!!WBC`` and the host query ``Q|1|!<sid>||ALL...`` is answered with
``O|1|<sid>||!!!CD|R||||||N||||Whole blood``. Codes are the DxH parameter mnemonics
(``WBC``, ``RBC``, ``HGB``...), the LOINC after them is ignored (map by mnemonic).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from nidaan.integration.astm.records import Delimiters, Order, Query
from nidaan.integration.drivers.astm_generic import GenericASTMDriver
from nidaan.integration.drivers.base import OrderLine, register

DXH_DELIMITERS = Delimiters(field="|", repeat="\\", component="!", escape="~")


class BeckmanDxHDriver(GenericASTMDriver):
    name: ClassVar[str] = "beckman-dxh"
    delimiters: ClassVar[Delimiters] = DXH_DELIMITERS

    def clean_code(self, test_id: Sequence[str]) -> str:
        return super().clean_code(test_id).upper()

    def order_record(
        self,
        sample_id: str,
        orders: Sequence[OrderLine],
        *,
        report_type: str,
        query: Query | None = None,
    ) -> Order:
        order = super().order_record(sample_id, orders, report_type=report_type, query=query)
        order.specimen_descriptor = "Whole blood"
        return order


driver = register(BeckmanDxHDriver())
