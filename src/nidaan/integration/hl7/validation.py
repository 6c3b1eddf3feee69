"""Structure and required-field validation for the message types Nidaan exchanges.

Grammars are the v2.5(.1) abstract message syntax (see the research notes), matched greedily
against the segment names. Z-segments are accepted anywhere. The rules are tolerant where
v2.3.1 analysers (Mindray, etc.) are known to deviate; every error names the segment with
its occurrence (``OBX[2]``), the field and the HL7 table 0357 code for ERR-3.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from nidaan.integration.hl7.errors import (
    HL7ErrorCode,
    HL7ValidationError,
    HL7ValidationFailed,
)
from nidaan.integration.hl7.message import Message, Segment

__all__ = ["STRUCTURES", "ensure_valid", "structure_of", "validate"]


# -- grammar ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Node:
    """A segment (``name``) or a group (``children``); optional and/or repeating."""

    name: str = ""
    children: tuple[_Node, ...] = ()
    optional: bool = False
    repeat: bool = False
    label: str = ""

    @property
    def first(self) -> str:
        """The segment whose absence makes this node missing (first required one)."""
        if self.name:
            return self.name
        for child in self.children:
            if not child.optional:
                return child.first
        return self.children[0].first


def _parse_grammar(text: str) -> _Node:
    """Tiny notation: ``[x]`` optional, ``{x}`` repeating, ``[{x}]`` both, ``<A|B>`` choice
    is not needed. Groups are written ``( ... )`` inside brackets."""
    tokens = re.findall(r"\[|\]|\{|\}|\(|\)|[A-Z0-9]{3}", text)
    pos = 0

    def seq(end: str | None) -> list[_Node]:
        nonlocal pos
        items: list[_Node] = []
        while pos < len(tokens) and tokens[pos] != end:
            items.append(item())
        pos += 1  # closing token (or end of input)
        return items

    def item() -> _Node:
        nonlocal pos
        tok = tokens[pos]
        pos += 1
        if tok in ("[", "{"):
            close = "]" if tok == "[" else "}"
            inner = seq(close)
            node = inner[0] if len(inner) == 1 else _Node(children=tuple(inner))
            if tok == "[":
                return _Node(node.name, node.children, True, node.repeat)
            return _Node(node.name, node.children, node.optional, True)
        if tok == "(":
            return _Node(children=tuple(seq(")")))
        return _Node(name=tok)

    return _Node(children=tuple(seq(None)))


_ORDER_DETAIL_OBS = "[{(OBX [{NTE}])}]"

_GRAMMARS: Final[dict[str, str]] = {
    "ACK": "MSH [{SFT}] MSA [{ERR}]",
    "ADT_A01": "MSH [{SFT}] EVN PID [PD1] [{ROL}] [{NK1}] PV1 [PV2] [{ROL}] [{DB1}] [{OBX}] "
    "[{AL1}] [{DG1}] [DRG] [{(PR1 [{ROL}])}] [{GT1}] [{(IN1 [IN2] [{IN3}] [{ROL}])}] "
    "[ACC] [UB1] [UB2] [PDA]",
    "ORM_O01": "MSH [{NTE}] [(PID [PD1] [{NTE}] [(PV1 [PV2])] [{(IN1 [IN2] [IN3])}] [GT1] "
    "[{AL1}])] {(ORC [(OBR [{NTE}] [CTD] [{DG1}] " + _ORDER_DETAIL_OBS + ")] [{FT1}] [{CTI}] "
    "[BLG])}",
    "ORU_R01": "MSH [{SFT}] {([(PID [PD1] [{NTE}] [{NK1}] [(PV1 [PV2])])] {([ORC] OBR [{NTE}] "
    "[{(TQ1 [{TQ2}])}] [CTD] [{(OBX [{NTE}])}] [{FT1}] [{CTI}] [{(SPM [{OBX}])}])})} [DSC]",
    "QRY_Q02": "MSH [{SFT}] QRD [QRF] [DSC]",
    "QRY_A19": "MSH [{SFT}] QRD [QRF]",
    "DSR_Q03": "MSH [{SFT}] [MSA] [ERR] [QAK] QRD [QRF] {DSP} [DSC]",
    "QCK_Q02": "MSH [{SFT}] MSA [ERR] [QAK]",
    "QBP_Q11": "MSH [{SFT}] QPD RCP [DSC]",
    "OML_O33": "MSH [{SFT}] [{NTE}] [(PID [PD1] [{PRT}] [{NTE}] [{NK1}] [(PV1 [PV2])] "
    "[{(IN1 [IN2] [IN3])}] [GT1] [{AL1}])] {(SPM [{OBX}] [{SAC}] {(ORC [{(TQ1 [{TQ2}])}] "
    "[(OBR [TCD] [{NTE}] [{DG1}] [{(OBX [TCD] [{NTE}])}] [{(PID [PD1])}])] [{FT1}] [{CTI}] "
    "[BLG])})}",
    "OUL_R22": "MSH [{SFT}] [NTE] [(PID [PD1] [{NTE}])] [(PV1 [PV2])] {(SPM [{OBX}] "
    "[{(SAC [INV])}] {(OBR [ORC] [{NTE}] [{(TQ1 [{TQ2}])}] [{(OBX [TCD] [{SID}] [{NTE}])}] "
    "[{CTI}])})} [DSC]",
}

STRUCTURES: Final[dict[str, _Node]] = {k: _parse_grammar(v) for k, v in _GRAMMARS.items()}

#: (message code, trigger) -> structure, for messages that leave MSH-9.3 empty.
_EVENT_STRUCTURE: Final[dict[tuple[str, str], str]] = {
    ("ADT", "A01"): "ADT_A01",
    ("ADT", "A04"): "ADT_A01",
    ("ADT", "A08"): "ADT_A01",
    ("ORM", "O01"): "ORM_O01",
    ("ORU", "R01"): "ORU_R01",
    ("QRY", "Q02"): "QRY_Q02",
    ("DSR", "Q03"): "DSR_Q03",
    ("QCK", "Q02"): "QCK_Q02",
    ("QBP", "Q11"): "QBP_Q11",
    ("OML", "O33"): "OML_O33",
    ("OUL", "R22"): "OUL_R22",
}

SUPPORTED_MESSAGE_CODES: Final = frozenset(code for code, _ in _EVENT_STRUCTURE) | {"ACK"}


def structure_of(msg: Message) -> str:
    """The abstract message structure (``ORU_R01``); raises HL7ValidationError 200/201."""
    code, trigger = msg.message_code, msg.trigger_event
    if code == "ACK":
        return "ACK"
    if code not in SUPPORTED_MESSAGE_CODES:
        raise HL7ValidationError(
            HL7ErrorCode.UNSUPPORTED_MESSAGE_TYPE, "MSH", 9, f"message type {code!r} not supported"
        )
    structure = _EVENT_STRUCTURE.get((code, trigger))
    if structure is None:
        raise HL7ValidationError(
            HL7ErrorCode.UNSUPPORTED_EVENT_CODE,
            "MSH",
            9,
            f"event {code}^{trigger} not supported",
            component=2,
        )
    return structure


class _Matcher:
    def __init__(self, names: list[str]) -> None:
        self.names = names
        self.pos = 0
        self.errors: list[tuple[int, str]] = []

    def _skip_z(self) -> None:
        while self.pos < len(self.names) and self.names[self.pos].startswith("Z"):
            self.pos += 1

    def match(self, node: _Node) -> bool:
        """Match ``node`` once or more; False when absent (no error recorded then)."""
        if not self._once(node):
            return False
        if node.repeat:
            while self._once(node):
                pass
        return True

    def _once(self, node: _Node) -> bool:
        self._skip_z()
        if node.name:
            if self.pos < len(self.names) and self.names[self.pos] == node.name:
                self.pos += 1
                return True
            return False
        # group: absent unless its first required/optional child matches
        start = self.pos
        matched_any = False
        for child in node.children:
            if self.match(child):
                matched_any = True
                continue
            if child.optional:
                continue
            if not matched_any:
                self.pos = start
                return False
            self.errors.append((self.pos, child.first))
            return True
        return matched_any


def _check_structure(msg: Message, structure: str) -> list[HL7ValidationError]:
    names = [s.name for s in msg.segment_list]
    matcher = _Matcher(names)
    root = STRUCTURES[structure]
    errors: list[HL7ValidationError] = []
    for child in root.children:
        if not matcher.match(child) and not child.optional:
            matcher.errors.append((matcher.pos, child.first))
            break
    matcher._skip_z()
    for _, missing in matcher.errors[:1]:
        errors.append(
            HL7ValidationError(
                HL7ErrorCode.SEGMENT_SEQUENCE_ERROR,
                missing,
                None,
                f"required segment {missing} missing or out of order for {structure}",
            )
        )
    if not errors and matcher.pos < len(names):
        name = names[matcher.pos]
        occ = names[: matcher.pos + 1].count(name)
        errors.append(
            HL7ValidationError(
                HL7ErrorCode.SEGMENT_SEQUENCE_ERROR,
                f"{name}[{occ}]",
                None,
                f"unexpected segment {name} at position {matcher.pos + 1} for {structure}",
            )
        )
    return errors


# -- fields ---------------------------------------------------------------------------------

#: Required fields for every message.
_REQUIRED: Final[dict[str, tuple[int, ...]]] = {
    "MSH": (9, 10, 12),
    "MSA": (1, 2),
    "OBX": (3, 11),
    "ORC": (1,),
    "QRD": (8,),
    "QPD": (1, 2),
    "SPM": (4,),
    "ERR": (),
}
#: Extra required fields by structure (PID-3/5 only where the patient is the subject).
_REQUIRED_BY_STRUCTURE: Final[dict[str, dict[str, tuple[int, ...]]]] = {
    "ADT_A01": {"PID": (3, 5), "EVN": (2,), "PV1": (2,)},
    "ORM_O01": {"OBR": (4,)},
    "OML_O33": {"OBR": (4,)},
}

_ACK_CODES: Final = frozenset({"AA", "AE", "AR", "CA", "CE", "CR"})
_NM_RE: Final = re.compile(
    r"^\s*(?:[<>]=?|=)?\s*[+-]?(?:\d+(?:[.,]\d*)?|[.,]\d+)(?:[eE][+-]?\d+)?\s*$"
)
_SEGMENT_NAME_RE: Final = re.compile(r"^[A-Z][A-Z0-9]{2}$")


def _empty(value: str) -> bool:
    return not value or value == '""'


def _check_fields(msg: Message, structure: str | None) -> list[HL7ValidationError]:
    errors: list[HL7ValidationError] = []
    extra = _REQUIRED_BY_STRUCTURE.get(structure or "", {})
    counts: dict[str, int] = {}
    for seg in msg.segment_list:
        name = seg.name
        occ = counts[name] = counts.get(name, 0) + 1
        label = f"{name}[{occ}]" if occ > 1 or name in {"OBX", "OBR", "ORC", "SPM"} else name
        if not _SEGMENT_NAME_RE.match(name):
            errors.append(
                HL7ValidationError(
                    HL7ErrorCode.SEGMENT_SEQUENCE_ERROR, label, None, "invalid segment name"
                )
            )
            continue
        required = _REQUIRED.get(name, ()) + extra.get(name, ())
        fields = seg.fields
        for n in required:
            raw = fields[n] if n < len(fields) else ""
            if _empty(raw) or not raw.strip(seg.enc.component + seg.enc.repetition):
                errors.append(
                    HL7ValidationError(HL7ErrorCode.REQUIRED_FIELD_MISSING, label, n, "is empty")
                )
        if name == "OBX":
            errors.extend(_check_obx(seg, label))
        elif name == "MSA":
            code = seg.get(1)
            if code and code not in _ACK_CODES:
                errors.append(
                    HL7ValidationError(
                        HL7ErrorCode.TABLE_VALUE_NOT_FOUND,
                        label,
                        1,
                        f"acknowledgment code {code!r} not in table 0008",
                    )
                )
    return errors


def _check_obx(seg: Segment, label: str) -> list[HL7ValidationError]:
    errors = []
    value_type = seg.get(2)
    raw_value = seg.fields[5] if len(seg.fields) > 5 else ""
    if raw_value and not value_type:
        errors.append(
            HL7ValidationError(
                HL7ErrorCode.REQUIRED_FIELD_MISSING, label, 2, "is empty but OBX-5 is valued"
            )
        )
    if value_type == "NM" and raw_value and raw_value != '""':
        for rep in seg.values(5, None):
            if not _NM_RE.match(rep):
                errors.append(
                    HL7ValidationError(
                        HL7ErrorCode.DATA_TYPE_ERROR,
                        label,
                        5,
                        f"value {rep!r} is not numeric (OBX-2 is NM)",
                    )
                )
                break
    return errors


def validate(msg: Message) -> list[HL7ValidationError]:
    """All problems found in ``msg`` (empty when valid), MSH problems first."""
    if not msg.segment_list or msg.segment_list[0].name != "MSH":
        return [
            HL7ValidationError(
                HL7ErrorCode.SEGMENT_SEQUENCE_ERROR, "MSH", None, "MSH must be the first segment"
            )
        ]
    errors: list[HL7ValidationError] = []
    version = msg.version
    if version and not version.startswith("2."):
        errors.append(
            HL7ValidationError(
                HL7ErrorCode.UNSUPPORTED_VERSION_ID, "MSH", 12, f"version {version!r} not supported"
            )
        )
    structure: str | None = None
    if msg.message_code:
        try:
            structure = structure_of(msg)
        except HL7ValidationError as exc:
            errors.append(exc)
    errors.extend(_check_fields(msg, structure))
    if structure is not None:
        errors.extend(_check_structure(msg, structure))
    return errors


def ensure_valid(msg: Message) -> Message:
    """Return ``msg`` or raise ``HL7ValidationFailed`` listing every problem."""
    errors = validate(msg)
    if errors:
        raise HL7ValidationFailed(errors)
    return msg
