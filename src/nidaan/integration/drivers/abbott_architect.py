"""Abbott ARCHITECT (and Alinity ci): ASTM over the Abbott Standard Interface.

Test ids are ``^^^<assay no>^<assay name>^<dilution>^<P|C>`` and, in R records, continue
``^<reagent lot>^<reagent serial>^<control lot>^<result type>``. Each assay arrives as up to
three R records: **F** final value, **I** interpretation (``Reactive``...) and **P** the raw
instrument response (RLU/Abs). We land one result per assay: the F value (or the I text when
the assay is qualitative only), the interpretation as a flag, and keep every record (raw RLU
included) in the result's raw segment. A result naming a control lot (R-3, 10th component) or
sent under H-12 ``Q`` is quality control.
"""

from __future__ import annotations

from typing import ClassVar

from nidaan.integration.astm.records import Message, OrderGroup, Result
from nidaan.integration.domain import InstrumentResult
from nidaan.integration.drivers.astm_generic import GenericASTMDriver
from nidaan.integration.drivers.base import parse_astm_ts, register

#: Component (0-based) of R-3 holding the result type F / I / P.
RESULT_TYPE = 10
DILUTION = 5
#: Component (0-based) of R-3 holding the control lot: set only for QC results.
CONTROL_LOT = 9


def result_type(result: Result) -> str:
    t = result.test_id
    return t[RESULT_TYPE].strip().upper() if len(t) > RESULT_TYPE and t[RESULT_TYPE] else "F"


class AbbottArchitectDriver(GenericASTMDriver):
    name: ClassVar[str] = "abbott-architect"
    sender: ClassVar[tuple[str, ...]] = ("NIDAAN",)

    def results_of(self, group: OrderGroup, message: Message) -> list[InstrumentResult]:
        accession = self.accession(group)
        assays: dict[tuple[str, str], list[Result]] = {}
        for rg in group.results:
            r = rg.result
            dilution = r.test_id[DILUTION] if len(r.test_id) > DILUTION else ""
            assays.setdefault((self.clean_code(r.test_id), dilution), []).append(r)
        control = self.is_control(group, message)
        out = []
        for (code, _), records in assays.items():
            by_type = {result_type(r): r for r in records}
            main = by_type.get("F") or by_type.get("I") or records[0]
            flags = [f.strip() for f in main.flags if f.strip()]
            interpretation = by_type.get("I")
            if interpretation is not None and interpretation is not main:
                text = interpretation.value.strip()
                if text and text not in flags:
                    flags.append(text)
            lot = main.test_id[CONTROL_LOT].strip() if len(main.test_id) > CONTROL_LOT else ""
            out.append(
                InstrumentResult(
                    control=control or bool(lot),
                    control_lot=lot or None,
                    accession=accession,
                    instrument_code=code,
                    value=self.clean_value(main.value),
                    unit=main.units.strip() or None,
                    flags=tuple(flags),
                    status=main.status.strip() or None,
                    completed_at=parse_astm_ts(main.completed_at),
                    raw_segment="\r".join(
                        r.to_record().encode(message.delimiters) for r in records
                    ),
                )
            )
        return out


driver = register(AbbottArchitectDriver())
