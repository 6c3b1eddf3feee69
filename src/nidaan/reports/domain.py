"""What a report prints, as plain frozen dataclasses, and the pure rules around it.

``ReportDocument`` is everything the PDF shows; ``render.py`` turns one into PDF bytes and
``service.py`` builds one from the other modules' services. Nothing here touches a database.
"""

from __future__ import annotations

import hashlib
import unicodedata
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime

from nidaan.kit.time import IST

LANGUAGES = ("en", "hi", "mr", "ta", "te")
DEFAULT_LANGUAGE = "en"


@dataclass(frozen=True)
class LabInfo:
    name: str
    address: str | None = None
    phone: str | None = None
    email: str | None = None
    # e.g. "NABL accredited (ISO 15189:2022), certificate MC-1234"; None when not accredited.
    accreditation: str | None = None


@dataclass(frozen=True)
class PatientInfo:
    name: str
    age_text: str  # already localised, e.g. "45 Y" / "45 वर्ष"
    sex: str  # "male" | "female" | "other" | "unknown"
    mrn: str
    referring_doctor: str | None = None


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


@dataclass(frozen=True)
class Amendment:
    reason: str
    supersedes_number: str
    supersedes_version: int
    supersedes_issued_at: datetime


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

    @property
    def amended(self) -> bool:
        return self.amendment is not None

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


def group_sections(lines: Iterable[SourceLine]) -> tuple[Section, ...]:
    """Group by department (in first-seen order), accredited sections before the others.

    NABL 133: the accreditation symbol may not appear on a page carrying non-accredited
    parameters, so each department is split into its accredited and non-accredited parts
    and the renderer starts the non-accredited ones on pages of their own.
    """
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
