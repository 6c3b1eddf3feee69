"""What a report prints, as plain frozen dataclasses, and the pure rules around it.

``ReportDocument`` is everything the PDF shows; ``render.py`` turns one into PDF bytes and
``service.py`` builds one from the other modules' services. Nothing here touches a database.
"""

from __future__ import annotations

import enum
import hashlib
import re
import unicodedata
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import date, datetime

from nidaan.kit.time import IST

LANGUAGES = ("en", "hi", "mr", "ta", "te")
DEFAULT_LANGUAGE = "en"


class ReportStatus(enum.StrEnum):
    """What a version is, printed on every page (ISO 15189 7.4.1.6/7.4.1.7, NABL 112).

    provisional: issued while some tests of the order are still pending (results may change).
    final: every test of the order reported; the first complete version.
    amended: a later version that adds to what an issued report said (further results).
    corrected: a later version in which a result an issued report printed was corrected.
    """

    PROVISIONAL = "provisional"
    FINAL = "final"
    AMENDED = "amended"
    CORRECTED = "corrected"


@dataclass(frozen=True)
class LabInfo:
    name: str
    address: str | None = None
    phone: str | None = None
    email: str | None = None
    # e.g. "NABL accredited (ISO 15189:2022), certificate MC-1234"; None when not accredited.
    accreditation: str | None = None

    @property
    def accredited(self) -> bool:
        """Only an accredited lab prints the NABL line and marks tests outside its scope."""
        return bool(self.accreditation)


@dataclass(frozen=True)
class PatientInfo:
    name: str
    age_text: str  # already localised, e.g. "45 Y" / "45 वर्ष"
    sex: str  # "male" | "female" | "other" | "unknown"
    mrn: str
    referring_doctor: str | None = None
    # The patient's ABHA (address, and the number masked to its last four digits).
    abha: str | None = None


@dataclass(frozen=True)
class OrderInfo:
    number: str
    priority: str = "routine"
    registered_at: datetime | None = None


@dataclass(frozen=True)
class SampleInfo:
    accession: str
    specimen_type: str
    collected_at: datetime | None = None
    received_at: datetime | None = None
    collected_at_centre: str | None = None  # where it was collected (collection centre)
    tested_at: str | None = None  # the lab that received and tested it
    condition: tuple[str, ...] = ()  # at receipt: "haemolysed", "lipaemic" ...
    remarks: str | None = None  # remarks at receipt


@dataclass(frozen=True)
class ResultLine:
    """One printed result."""

    test_name: str
    value: str  # display value, already rounded / the coded text
    unit: str | None = None
    reference: str | None = None  # "13.0 - 17.0", "< 200", "Negative"
    flag: str | None = None  # N, L, H, LL, HH, A
    method: str | None = None
    comment: str | None = None
    abnormal: bool = False
    critical: bool = False
    # Tests outside the lab's scope of accreditation print on their own pages (NABL 133).
    accredited: bool = True
    referral_lab: str | None = None  # referred out: the laboratory that performed it


@dataclass(frozen=True)
class Section:
    """A department's results (Haematology, Biochemistry ...), printed under one heading."""

    title: str
    lines: tuple[ResultLine, ...]
    accredited: bool = True


@dataclass(frozen=True)
class Signatory:
    name: str
    qualification: str | None
    verified_at: datetime
    registration_number: str | None = None  # medical council registration, printed below
    signature_uri: str | None = None  # the signature image as a data: URI


class ChangeKind(enum.StrEnum):
    CORRECTED = "corrected"
    ADDED = "added"


@dataclass(frozen=True)
class Change:
    """One test whose printed result differs from the version this one replaces."""

    test_name: str
    kind: ChangeKind


@dataclass(frozen=True)
class Amendment:
    reason: str
    supersedes_number: str
    supersedes_version: int
    supersedes_issued_at: datetime
    changes: tuple[Change, ...] = ()


@dataclass(frozen=True)
class ReportDocument:
    lab: LabInfo
    patient: PatientInfo
    order: OrderInfo
    samples: tuple[SampleInfo, ...]
    sections: tuple[Section, ...]
    signatories: tuple[Signatory, ...]
    report_number: str
    version: int
    issued_at: datetime
    verification_url: str
    language: str = DEFAULT_LANGUAGE
    amendment: Amendment | None = None
    status: ReportStatus = ReportStatus.FINAL
    pending_tests: tuple[str, ...] = ()  # a provisional report names what is still to come

    @property
    def amended(self) -> bool:
        return self.amendment is not None

    @property
    def marks_scope(self) -> bool:
        """Tests outside the accreditation scope are starred (an accredited lab only)."""
        return self.lab.accredited and any(not s.accredited for s in self.sections)

    @property
    def accessions(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(sample.accession for sample in self.samples))

    @property
    def collected_at(self) -> datetime | None:
        times = [s.collected_at for s in self.samples if s.collected_at is not None]
        return min(times) if times else None

    @property
    def received_at(self) -> datetime | None:
        times = [s.received_at for s in self.samples if s.received_at is not None]
        return min(times) if times else None

    @property
    def line_count(self) -> int:
        return sum(len(section.lines) for section in self.sections)


@dataclass(frozen=True)
class SourceLine:
    """A result as the results module reports it, before grouping (service adapts to this)."""

    result_id: uuid.UUID
    department: str
    line: ResultLine
    sort_key: tuple[int, str] = (0, "")
    verifier: Signatory | None = None
    extra_verifiers: tuple[Signatory, ...] = field(default=())


def normalise_language(value: str | None) -> str:
    """``hi``/``hi-IN``/``HI`` -> ``hi``; anything unsupported falls back to English."""
    base = (value or "").strip().lower().replace("_", "-").split("-")[0]
    return base if base in LANGUAGES else DEFAULT_LANGUAGE


def group_sections(
    lines: Iterable[SourceLine], *, accredited_lab: bool = True
) -> tuple[Section, ...]:
    """Group by department (in first-seen order), accredited sections before the others.

    NABL 133: the accreditation symbol may not appear on a page carrying non-accredited
    parameters, so each department is split into its accredited and non-accredited parts
    and the renderer starts the non-accredited ones on pages of their own. A lab without
    accreditation has no scope: its departments are not split.
    """
    if not accredited_lab:
        lines = [replace(item, line=replace(item.line, accredited=True)) for item in lines]
    ordered = sorted(lines, key=lambda item: (item.sort_key, item.line.test_name))
    departments: dict[str, list[SourceLine]] = {}
    for item in ordered:
        departments.setdefault(item.department, []).append(item)
    accredited: list[Section] = []
    other: list[Section] = []
    for department, items in departments.items():
        title = department.replace("_", " ").strip().title()
        inside = tuple(item.line for item in items if item.line.accredited)
        outside = tuple(item.line for item in items if not item.line.accredited)
        if inside:
            accredited.append(Section(title=title, lines=inside, accredited=True))
        if outside:
            other.append(Section(title=title, lines=outside, accredited=False))
    return (*accredited, *other)


def signatories_of(lines: Iterable[SourceLine]) -> tuple[Signatory, ...]:
    """Each verifier once (latest signature), in the order they signed."""
    latest: dict[tuple[str, str | None], Signatory] = {}
    for item in lines:
        for signatory in (item.verifier, *item.extra_verifiers):
            if signatory is None:
                continue
            key = (signatory.name, signatory.qualification)
            known = latest.get(key)
            if known is None or signatory.verified_at > known.verified_at:
                latest[key] = signatory
    return tuple(sorted(latest.values(), key=lambda s: s.verified_at))


def source_fingerprint(result_ids: Iterable[uuid.UUID]) -> str:
    """What a report version was made from: the set of verified result rows it prints.

    A correction is a new result row, so a new fingerprint; the same verification event
    delivered twice (or the order and department events of one verification) is not.
    """
    joined = ",".join(sorted(str(result_id) for result_id in set(result_ids)))
    return hashlib.sha256(joined.encode()).hexdigest()


_AGE_UNITS = {
    "en": {"y": "Y", "m": "M", "d": "D"},
    "hi": {"y": "वर्ष", "m": "माह", "d": "दिन"},
    "mr": {"y": "वर्षे", "m": "महिने", "d": "दिवस"},
    "ta": {"y": "வயது", "m": "மாதம்", "d": "நாள்"},
    "te": {"y": "సం.", "m": "నెలలు", "d": "రోజులు"},
}


def age_text(date_of_birth: date | None, at: datetime, language: str = "en") -> str:
    """Age at ``at`` as printed on reports: years from 2 on, else months, else days."""
    units = _AGE_UNITS[normalise_language(language)]
    if date_of_birth is None:
        return "—"
    today = at.astimezone(IST).date()
    years = (
        today.year
        - date_of_birth.year
        - ((today.month, today.day) < (date_of_birth.month, date_of_birth.day))
    )
    if years >= 2:
        return f"{years} {units['y']}"
    months = (today.year - date_of_birth.year) * 12 + today.month - date_of_birth.month
    if today.day < date_of_birth.day:
        months -= 1
    if months >= 1:
        return f"{months} {units['m']}"
    return f"{max((today - date_of_birth).days, 0)} {units['d']}"


def initials(full_name: str) -> str:
    """``"Sunita R. Sharma"`` -> ``"S. R. S."``: all the public verification page reveals."""
    letters = []
    for part in full_name.replace(".", " ").split():
        first = next((ch for ch in part if unicodedata.category(ch).startswith("L")), None)
        if first is not None:
            letters.append(f"{first.upper()}.")
    return " ".join(letters) or "—"


def flag_is_abnormal(flag: str | None) -> bool:
    return bool(flag) and flag != "N"


def flag_is_critical(flag: str | None) -> bool:
    return flag in {"LL", "HH"}


# ---- versions ------------------------------------------------------------------------


@dataclass(frozen=True)
class PrintedResult:
    """What the version logic needs of a printed result line."""

    result_id: uuid.UUID
    test_name: str
    corrected: bool  # a later version of a result (the results module's correction)
    correction_reason: str | None = None


def changes_since(
    previous_ids: Iterable[uuid.UUID] | None, lines: Iterable[PrintedResult]
) -> tuple[Change, ...]:
    """The tests whose printed result is new since the previous version, and how.

    A result row the previous version did not print is either a correction of one it did
    (a later result version) or a result it did not have yet. ``previous_ids`` is None for
    a version issued before report versions remembered their results: then every corrected
    line counts.
    """
    known = set(previous_ids) if previous_ids is not None else None
    found: list[Change] = []
    for line in lines:
        if known is not None and line.result_id in known:
            continue
        if known is None and not line.corrected:
            continue
        kind = ChangeKind.CORRECTED if line.corrected else ChangeKind.ADDED
        found.append(Change(line.test_name, kind))
    return tuple(dict.fromkeys(found))


def version_status(
    *, previous: ReportStatus | None, pending: bool, changes: Iterable[Change]
) -> ReportStatus:
    """The status of a new version: provisional while tests are pending; the first complete
    version (also after provisional ones) is final; later ones are corrected when a printed
    result was corrected, else amended."""
    if pending:
        return ReportStatus.PROVISIONAL
    if previous is None or previous is ReportStatus.PROVISIONAL:
        return ReportStatus.FINAL
    if any(change.kind is ChangeKind.CORRECTED for change in changes):
        return ReportStatus.CORRECTED
    return ReportStatus.AMENDED


# ---- units -----------------------------------------------------------------------------

_SUPERSCRIPT = str.maketrans("0123456789-", "⁰¹²³⁴⁵⁶⁷⁸⁹⁻")
_POWER = re.compile(r"\^(-?\d+)")
# "u" as the micro prefix of an SI or clinical unit: uL, ug, umol, uIU, uU, um, ukat, uEq.
_MICRO = re.compile(r"(?<![A-Za-z])u(?=(?:L|l|g|mol|IU|U|m|kat|Eq)\b)")
_AREA = re.compile(r"(\d)\s*m(?:2|²)(?![\d])")


def typographic_unit(unit: str | None) -> str | None:
    """A unit as a lab report prints it: ``10^3/uL`` -> ``10³/µL``, ``uIU/mL`` -> ``µIU/mL``,
    ``mL/min/1.73m2`` -> ``mL/min/1.73 m²``. Catalogues and analyzers store ASCII; this is
    applied wherever a unit is printed."""
    if not unit:
        return unit
    text = _POWER.sub(lambda match: match.group(1).translate(_SUPERSCRIPT), unit.strip())
    text = _MICRO.sub("µ", text).replace("μ", "µ")  # one micro sign (U+00B5) everywhere
    return _AREA.sub(lambda match: f"{match.group(1)} m²", text)
