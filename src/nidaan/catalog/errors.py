from nidaan.kit.errors import (
    Conflict,
    InvalidInput,
    VersionConflict,  # noqa: F401  (one shared class, re-exported)
)


class FormulaError(InvalidInput):
    code = "invalid_formula"
    title = "Invalid formula"


class UnknownOrderables(InvalidInput):
    code = "unknown_orderables"
    title = "Unknown or inactive tests or panels"


class CatalogCodeTaken(Conflict):
    code = "catalog_code_taken"
    title = "Test or panel code already used"


class CatalogIdConflict(Conflict):
    code = "catalog_id_conflict"
    title = "A different record already has this id"
