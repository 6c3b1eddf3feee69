"""Pure report rules: ages, initials, languages, sections, signatories, fingerprints."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta

from nidaan.reports.domain import (
    ResultLine,
    Signatory,
    SourceLine,
    age_text,
    group_sections,
    initials,
    normalise_language,
    signatories_of,
    source_fingerprint,
)

AT = datetime(2026, 3, 12, 4, 0, tzinfo=UTC)


def test_age_text_in_years_months_or_days() -> None:
    assert age_text(date(1987, 8, 14), AT) == "38 Y"
    assert age_text(date(1987, 8, 14), AT, "hi") == "38 वर्ष"
    assert age_text(date(2025, 1, 20), AT) == "13 M"
    assert age_text(date(2026, 3, 1), AT, "hi") == "11 दिन"
    assert age_text(None, AT) == "—"


def test_initials_and_languages() -> None:
    assert initials("Sunita R. Sharma") == "S. R. S."
    assert initials("  ") == "—"
    assert normalise_language("hi-IN") == "hi"
    assert normalise_language("HI") == "hi"
    assert normalise_language("ta") == "ta"
    assert normalise_language("bn") == "en"  # no Bengali report labels yet
    assert normalise_language(None) == "en"


def _line(department: str, name: str, *, accredited: bool = True, signer: Signatory | None = None):  # type: ignore[no-untyped-def]
    return SourceLine(
        result_id=uuid.uuid4(),
        department=department,
        line=ResultLine(test_name=name, value="1", accredited=accredited),
        sort_key=(0, name),
        verifier=signer,
    )


def test_sections_group_by_department_with_non_accredited_parts_last() -> None:
    sections = group_sections(
        [
            _line("haematology", "Hb"),
            _line("biochemistry", "Glucose"),
            _line("haematology", "ESR", accredited=False),
            _line("clinical_pathology", "Urine protein", accredited=False),
        ]
    )
    assert [(s.title, s.accredited, [x.test_name for x in s.lines]) for s in sections] == [
        ("Haematology", True, ["Hb"]),
        ("Biochemistry", True, ["Glucose"]),
        ("Haematology", False, ["ESR"]),
        ("Clinical Pathology", False, ["Urine protein"]),
    ]


def test_each_signatory_once_in_signing_order() -> None:
    early = Signatory("Dr. B", "MD", AT)
    late = Signatory("Dr. A", "MD", AT + timedelta(minutes=5))
    lines = [
        _line("x", "1", signer=late),
        _line("x", "2", signer=early),
        _line("x", "3", signer=late),
    ]
    assert signatories_of(lines) == (early, late)


def test_fingerprint_is_the_set_of_results() -> None:
    a, b = uuid.uuid4(), uuid.uuid4()
    assert source_fingerprint([a, b]) == source_fingerprint([b, a, a])
    assert source_fingerprint([a]) != source_fingerprint([a, b])
