"""HL7 v2 layer: ER7 codec, validation, ACKs, typed extraction/builders and MLLP transport."""

from nidaan.integration.hl7.ack import build_ack
from nidaan.integration.hl7.builders import (
    build_dsr_q03,
    build_oml_o33,
    build_orm,
    build_oru,
    build_qck_q02,
)
from nidaan.integration.hl7.errors import (
    HL7Error,
    HL7ErrorCode,
    HL7ParseError,
    HL7ValidationError,
    HL7ValidationFailed,
)
from nidaan.integration.hl7.extract import (
    Coded,
    HL7Order,
    HL7Patient,
    HL7Result,
    extract_orders,
    extract_patient,
    extract_query,
    extract_results,
)
from nidaan.integration.hl7.message import EncodingChars, Field, Message, Segment, build_msh
from nidaan.integration.hl7.validation import ensure_valid, validate

__all__ = [
    "Coded",
    "EncodingChars",
    "Field",
    "HL7Error",
    "HL7ErrorCode",
    "HL7Order",
    "HL7ParseError",
    "HL7Patient",
    "HL7Result",
    "HL7ValidationError",
    "HL7ValidationFailed",
    "Message",
    "Segment",
    "build_ack",
    "build_dsr_q03",
    "build_msh",
    "build_oml_o33",
    "build_orm",
    "build_oru",
    "build_qck_q02",
    "ensure_valid",
    "extract_orders",
    "extract_patient",
    "extract_query",
    "extract_results",
    "validate",
]
