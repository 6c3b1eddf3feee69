from nidaan.kit.errors import (
    Conflict,
    InvalidInput,
    VersionConflict,  # noqa: F401  (one shared class, re-exported)
)


class InstrumentNameTaken(Conflict):
    code = "instrument_name_taken"
    title = "Instrument name already used"


class InvalidTransport(InvalidInput):
    code = "invalid_transport"
    title = "Transport settings incomplete or inconsistent"


class UnknownTests(InvalidInput):
    code = "unknown_tests"
    title = "Test map refers to tests not in the catalogue"


class ExceptionClosed(Conflict):
    code = "exception_closed"
    title = "Exception already resolved or discarded"


class IdConflict(Conflict):
    code = "id_conflict"
    title = "Id already used with other content"
