from nidaan.kit.errors import Conflict, InvalidInput
from nidaan.samples.errors import BranchNotAllowed, IdConflict, VersionConflict

__all__ = [
    "BranchNotAllowed",
    "IdConflict",
    "OrderNotOpen",
    "OrderTestIllegalTransition",
    "PatientMerged",
    "VersionConflict",
]


class OrderNotOpen(Conflict):
    code = "order_not_open"
    title = "Order is not open"


class PatientMerged(InvalidInput):
    code = "patient_merged"
    title = "Patient record was merged into another"


class OrderTestIllegalTransition(Conflict):
    """A test status change its current status does not allow (e.g. cancelling a result)."""

    code = "illegal_transition"
    title = "Illegal state transition"

    def __init__(self, current: str, target: str, detail: str | None = None) -> None:
        super().__init__(
            detail or f"A {current} test cannot become {target}.",
            **{"from": str(current), "to": str(target)},
        )
