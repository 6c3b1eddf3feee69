from nidaan.kit.errors import Conflict, Forbidden, InvalidInput, VersionConflict
from nidaan.samples.domain import IllegalTransition

__all__ = [
    "BranchNotALab",
    "BranchNotAllowed",
    "IdConflict",
    "IllegalTransition",
    "ManifestEmpty",
    "ManifestIllegalTransition",
    "SampleNotAtBranch",
    "SampleOnManifest",
    "VersionConflict",
    "WrongDestination",
]


class BranchNotAllowed(Forbidden):
    code = "branch_not_allowed"
    title = "Branch not allowed"


class IdConflict(Conflict):
    code = "id_conflict"
    title = "Id already used for different content"


class BranchNotALab(InvalidInput):
    code = "branch_not_a_lab"
    title = "Not a central lab"


class WrongDestination(Conflict):
    code = "wrong_destination"
    title = "Sample is on its way to another lab"


class SampleNotAtBranch(Conflict):
    code = "sample_not_at_branch"
    title = "Sample was not collected at this branch"


class SampleOnManifest(Conflict):
    code = "sample_on_manifest"
    title = "Sample already on a manifest"


class ManifestEmpty(Conflict):
    code = "manifest_empty"
    title = "Manifest has no sample to dispatch"


class ManifestIllegalTransition(Conflict):
    code = "illegal_transition"
    title = "Illegal state transition"

    def __init__(self, current: str, target: str) -> None:
        super().__init__(
            f"A {current} manifest cannot become {target}.",
            **{"from": str(current), "to": str(target)},
        )


class LabelAlreadyBound(Conflict):
    code = "label_already_bound"
    title = "This label is already on another sample"
