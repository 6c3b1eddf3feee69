"""Rules per file purpose (size, types, roles, retention) and filename hygiene; pure."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta

from nidaan.auth.enums import Role
from nidaan.files.enums import FilePurpose

PDF = "application/pdf"
PNG = "image/png"
JPEG = "image/jpeg"
MB = 1024 * 1024

#: File-name extension for each content type we keep.
EXTENSIONS = {PDF: ".pdf", PNG: ".png", JPEG: ".jpg"}

CLINICAL_READERS = frozenset(
    {Role.ADMIN, Role.FRONT_DESK, Role.TECHNICIAN, Role.PATHOLOGIST, Role.AUDITOR}
)
DESK_UPLOADERS = frozenset(
    {Role.ADMIN, Role.FRONT_DESK, Role.PHLEBOTOMIST, Role.TECHNICIAN, Role.PATHOLOGIST}
)


@dataclass(frozen=True)
class PurposeRule:
    """What may be stored for one purpose, by whom, and how long a deleted file is kept."""

    max_bytes: int
    content_types: frozenset[str]
    readers: frozenset[str]
    #: Empty: made by Nidaan only (reports, labels, invoices), never uploaded.
    uploaders: frozenset[str]
    deleters: frozenset[str]
    #: Years a deleted file is kept before purging (medical and tax records), or None to
    #: use ``NIDAAN_FILE_RETENTION_DAYS``.
    retention_years: int | None = None

    @property
    def uploadable(self) -> bool:
        return bool(self.uploaders)


RULES: dict[FilePurpose, PurposeRule] = {
    # Signed reports are medical records: kept three years after deletion (MCI 1.3.1,
    # Clinical Establishments Rules), whatever the upload retention is.
    FilePurpose.REPORT: PurposeRule(
        max_bytes=50 * MB,
        content_types=frozenset({PDF}),
        readers=CLINICAL_READERS,
        uploaders=frozenset(),
        deleters=frozenset({Role.ADMIN}),
        retention_years=3,
    ),
    FilePurpose.LABEL: PurposeRule(
        max_bytes=5 * MB,
        content_types=frozenset({PDF}),
        readers=frozenset(
            {Role.ADMIN, Role.FRONT_DESK, Role.PHLEBOTOMIST, Role.TECHNICIAN, Role.AUDITOR}
        ),
        uploaders=frozenset(),
        deleters=frozenset({Role.ADMIN}),
    ),
    # Tax documents: eight years (Income-tax and CGST record keeping).
    FilePurpose.INVOICE: PurposeRule(
        max_bytes=10 * MB,
        content_types=frozenset({PDF}),
        readers=frozenset({Role.ADMIN, Role.FRONT_DESK, Role.BILLING, Role.AUDITOR}),
        uploaders=frozenset(),
        deleters=frozenset({Role.ADMIN}),
        retention_years=8,
    ),
    FilePurpose.RECEIPT: PurposeRule(
        max_bytes=10 * MB,
        content_types=frozenset({PDF}),
        readers=frozenset({Role.ADMIN, Role.FRONT_DESK, Role.BILLING, Role.AUDITOR}),
        uploaders=frozenset(),
        deleters=frozenset({Role.ADMIN}),
        retention_years=8,
    ),
    FilePurpose.QR: PurposeRule(
        max_bytes=1 * MB,
        content_types=frozenset({PNG}),
        readers=frozenset(Role),
        uploaders=frozenset(),
        deleters=frozenset({Role.ADMIN}),
    ),
    FilePurpose.PRESCRIPTION: PurposeRule(
        max_bytes=20 * MB,
        content_types=frozenset({PDF, PNG, JPEG}),
        readers=frozenset(
            {Role.ADMIN, Role.FRONT_DESK, Role.PHLEBOTOMIST, Role.TECHNICIAN, Role.PATHOLOGIST}
        ),
        uploaders=DESK_UPLOADERS,
        deleters=frozenset({Role.ADMIN, Role.FRONT_DESK}),
    ),
    # Signed consent is the lab's proof (DPDP s.6(10)): kept like the records it covers.
    FilePurpose.CONSENT_FORM: PurposeRule(
        max_bytes=20 * MB,
        content_types=frozenset({PDF, PNG, JPEG}),
        readers=frozenset({Role.ADMIN, Role.FRONT_DESK, Role.PATHOLOGIST, Role.AUDITOR}),
        uploaders=DESK_UPLOADERS,
        deleters=frozenset({Role.ADMIN}),
        retention_years=3,
    ),
    FilePurpose.ATTACHMENT: PurposeRule(
        max_bytes=50 * MB,
        content_types=frozenset({PDF, PNG, JPEG}),
        readers=frozenset({Role.ADMIN, Role.FRONT_DESK, Role.TECHNICIAN, Role.PATHOLOGIST}),
        uploaders=DESK_UPLOADERS,
        deleters=frozenset({Role.ADMIN, Role.FRONT_DESK}),
    ),
}

#: Everyone who may read, upload or delete some purpose (the endpoints' outer role gate).
ANY_READER = frozenset().union(*(rule.readers for rule in RULES.values()))
ANY_UPLOADER = frozenset().union(*(rule.uploaders for rule in RULES.values()))
ANY_DELETER = frozenset().union(*(rule.deleters for rule in RULES.values()))

#: The largest file any purpose allows, and room for the multipart envelope around it.
LARGEST_FILE = max(rule.max_bytes for rule in RULES.values())
MULTIPART_OVERHEAD = 64 * 1024

MAX_FILENAME = 150
_UNSAFE = re.compile(r"[^\w.\- ()]+", re.UNICODE)


def rule_for(purpose: FilePurpose) -> PurposeRule:
    return RULES[purpose]


def readable_purposes(roles: frozenset[str]) -> list[FilePurpose]:
    """The purposes whose files a caller holding ``roles`` may see."""
    return [purpose for purpose, rule in RULES.items() if rule.readers & roles]


def safe_filename(name: str | None, content_type: str, fallback: str = "file") -> str:
    """A download name: no directories, control or shell characters, and the extension
    of the detected type (a "report.pdf.exe" that is a PDF becomes "report.pdf.exe.pdf")."""
    base = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    base = unicodedata.normalize("NFC", base)
    base = "".join(ch for ch in base if unicodedata.category(ch)[0] != "C")
    base = _UNSAFE.sub("_", base).strip(" ._") or fallback
    extension = EXTENSIONS.get(content_type, "")
    if extension and not base.lower().endswith(
        (extension, ".jpeg") if extension == ".jpg" else (extension,)
    ):
        base += extension
    if len(base) > MAX_FILENAME:
        stem_room = MAX_FILENAME - len(extension)
        base = base[:stem_room].rstrip(" ._") + extension
    return base


def add_years(moment: datetime, years: int) -> datetime:
    """``moment`` on the same calendar day ``years`` later (29 Feb -> 28 Feb)."""
    try:
        return moment.replace(year=moment.year + years)
    except ValueError:
        return moment.replace(year=moment.year + years, day=28)


def purge_after(purpose: FilePurpose, deleted_at: datetime, retention_days: int) -> datetime:
    """When a file deleted at ``deleted_at`` may be purged from the store."""
    years = RULES[purpose].retention_years
    if years is not None:
        return add_years(deleted_at, years)
    return deleted_at + timedelta(days=retention_days)
