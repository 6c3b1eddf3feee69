"""Templates in English and Hindi, WhatsApp's parameter rules, rupee formatting (pure)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nidaan.notifications.domain import RANK, combined
from nidaan.notifications.enums import NotificationStatus, TemplateName
from nidaan.notifications.errors import TemplateParameterError
from nidaan.notifications.templates import (
    LANGUAGES,
    MAX_BODY_CHARS,
    TEMPLATES,
    check_parameter,
    clean_parameter,
    format_inr,
    join_names,
    pick_language,
    render,
    safe_document_filename,
)

S = NotificationStatus


def test_every_template_has_english_and_hindi_with_its_parameters() -> None:
    assert set(TEMPLATES) == set(TemplateName)
    for template in TEMPLATES.values():
        assert set(template.texts) == set(LANGUAGES)
        for text in template.texts.values():
            for position in range(1, len(template.parameters) + 1):
                assert f"{{{{{position}}}}}" in text.body
        # Meta files one-time codes under Authentication, everything else under Utility.
        expected = "AUTHENTICATION" if template.name is TemplateName.BOOKING_OTP else "UTILITY"
        assert template.category == expected
    hindi = render(
        TEMPLATES[TemplateName.TEST_RESULT_READY],
        "hi",
        ("सुनीता शर्मा", "CBC और KFT", "https://lab.example/r/1"),
    )
    assert hindi.startswith("प्रिय सुनीता शर्मा, आपकी CBC और KFT जाँच")


@pytest.mark.parametrize(
    ("preferred", "expected"), [("hi", "hi"), ("HI-in", "hi"), ("ta", "en"), (None, "en")]
)
def test_the_patients_language_picks_the_text(preferred: str | None, expected: str) -> None:
    assert pick_language(preferred) == expected


@pytest.mark.parametrize(
    "value", ["two\nlines", "tab\there", "five     spaces", "", "x" * 701, "cr\rhere"]
)
def test_parameters_whatsapp_refuses_are_refused(value: str) -> None:
    with pytest.raises(TemplateParameterError):
        check_parameter(value, 1)


@given(st.text(max_size=300))
def test_cleaned_parameters_always_pass_or_are_empty(value: str) -> None:
    cleaned = clean_parameter(value)
    if cleaned:
        check_parameter(cleaned, 1)
        assert "\n" not in cleaned
        assert "\t" not in cleaned
        assert "     " not in cleaned
    else:
        with pytest.raises(TemplateParameterError):
            check_parameter(cleaned, 1)


def test_wrong_parameter_count_and_long_bodies_are_refused() -> None:
    template = TEMPLATES[TemplateName.CRITICAL_VALUE_ALERT]
    with pytest.raises(TemplateParameterError):
        render(template, "en", ("a", "b"))
    with pytest.raises(TemplateParameterError):
        render(template, "en", ("a" * 400, "b" * 400, "c" * 400))
    assert len(render(template, "en", ("Asha", "Potassium", "6.8 mmol/L"))) < MAX_BODY_CHARS


@given(st.lists(st.text(min_size=1, max_size=80), max_size=40), st.sampled_from(LANGUAGES))
def test_test_names_fit_whatever_the_order(names: list[str], language: str) -> None:
    joined = join_names(names, language)
    assert 0 < len(joined) <= 200
    check_parameter(joined, 2)


def test_test_names_read_naturally() -> None:
    assert join_names(["CBC"], "en") == "CBC"
    assert join_names(["CBC", "KFT", "Lipid profile"], "en") == "CBC, KFT and Lipid profile"
    assert join_names(["CBC", "KFT"], "hi") == "CBC और KFT"
    many = join_names([f"Test number {i}" for i in range(40)], "en")
    assert many.endswith("more")


@pytest.mark.parametrize(
    ("amount", "text"),
    [
        ("0", "₹0.00"),
        ("999.5", "₹999.50"),
        ("1000", "₹1,000.00"),
        ("125000.505", "₹1,25,000.51"),
        ("12345678.9", "₹1,23,45,678.90"),
        ("-1500", "-₹1,500.00"),
    ],
)
def test_rupees_use_indian_grouping(amount: str, text: str) -> None:
    assert format_inr(Decimal(amount)) == text


def test_document_filenames_are_never_untitled() -> None:
    assert safe_document_filename("Report_RPT-2026-000001.pdf") == "Report_RPT-2026-000001.pdf"
    assert safe_document_filename("") == "Report.pdf"
    assert safe_document_filename("../../etc/passwd") == "etc_passwd.pdf"


PROVIDER = [S.SENT, S.DELIVERED, S.READ, S.FAILED]


@given(st.lists(st.sampled_from(PROVIDER), min_size=1, max_size=12), st.randoms())
def test_status_is_the_highest_ever_seen_in_any_order(statuses: list[S], rng) -> None:  # type: ignore[no-untyped-def]
    shuffled = statuses[:]
    rng.shuffle(shuffled)
    final = S.SENDING
    for status in shuffled:
        before = final
        final = combined(final, status)
        assert RANK[final] >= RANK[before]
    assert final == max(statuses, key=RANK.__getitem__)
    if S.READ in statuses:
        assert final is S.READ
