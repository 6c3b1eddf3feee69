import enum


class Driver(enum.StrEnum):
    """Which adapter speaks to the analyzer (vendor dialects of HL7 and ASTM)."""

    GENERIC_HL7 = "generic-hl7"
    GENERIC_ASTM = "generic-astm"
    ROCHE_COBAS = "roche-cobas"
    ABBOTT_ARCHITECT = "abbott-architect"
    BECKMAN_DXH = "beckman-dxh"
    # A hospital information system (HIS): ADT and orders in, verified results out.
    HOSPITAL_HL7 = "hospital-hl7"


class Transport(enum.StrEnum):
    TCP_SERVER = "tcp-server"  # we listen; the analyzer connects to host:port
    TCP_CLIENT = "tcp-client"  # we connect to the analyzer at host:port
    SERIAL = "serial"  # RS-232 device (or a serial-to-Ethernet box)


class Direction(enum.StrEnum):
    IN = "in"
    OUT = "out"


class Protocol(enum.StrEnum):
    HL7 = "hl7"
    ASTM = "astm"


class MessageStatus(enum.StrEnum):
    OK = "ok"
    ERROR = "error"
    DUPLICATE = "duplicate"  # same dedupe key seen before: stored, never applied again
    # Outbound (order download): queued, delivered (the analyzer acknowledged it), or
    # rejected by the analyzer (not retried; transport errors stay pending and are retried).
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"


class ExceptionKind(enum.StrEnum):
    UNKNOWN_SAMPLE = "unknown_sample"  # no sample with that accession
    # The analyzer could not read the tube's barcode (Roche "@<seq>"): never matched.
    UNIDENTIFIED_SAMPLE = "unidentified_sample"
    # The message's sample identifiers (filler, specimen, placer) name different samples.
    IDENTIFIER_CONFLICT = "identifier_conflict"
    UNMAPPED_TEST = "unmapped_test"  # the instrument code is not in the test map
    NOT_ORDERED = "not_ordered"  # the mapped test is not ordered on that sample
    CANCELLED_TEST = "cancelled_test"
    NOT_RECEIVED = "not_received"  # the sample is not (or no longer) in the lab
    INVALID_VALUE = "invalid_value"  # empty, "no value" status, or not valid for the test
    ALREADY_VERIFIED = "already_verified"  # verified results are corrected, not re-sent
    CALCULATED_TEST = "calculated_test"  # the map points at a calculated test
    # A hospital ordered a code that is not in its connection's test map (no test was added).
    UNMAPPED_ORDER_CODE = "unmapped_order_code"


class ExceptionStatus(enum.StrEnum):
    OPEN = "open"
    RESOLVED = "resolved"  # a value was entered by a person
    DISCARDED = "discarded"


class ResolutionAction(enum.StrEnum):
    ENTER = "enter"
    DISCARD = "discard"


class ConnectionState(enum.StrEnum):
    CONNECTED = "connected"
    IDLE = "idle"
    ERROR = "error"
    DISABLED = "disabled"
