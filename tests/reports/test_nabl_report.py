"""What an NABL assessor checks on a report (ISO 15189 7.4, NABL 112), read back from the PDF.

Each element is asserted on the text a reader gets out of the generated PDF (pdftotext).
"""

from __future__ import annotations

import io
import re
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pypdf import PdfReader
from pypdf.generic import BooleanObject

from nidaan.reports.domain import ReportStatus, typographic_unit
from nidaan.reports.i18n import labels
from nidaan.reports.render import render_pdf
from nidaan.reports.sample import REFERRAL_LAB, sample_document
from tests.reports.pdf_text import pdftotext, words


@pytest.fixture(scope="module")
def english_pages() -> list[str]:
    return [words(page) for page in pdftotext(render_pdf(sample_document("en")).data)]


@pytest.fixture(scope="module")
def hindi_pages() -> list[str]:
    return [words(page) for page in pdftotext(render_pdf(sample_document("hi")).data)]


def _images_on(data: bytes) -> int:
    """How many distinct raster images the PDF draws besides the QR code (the one image
    drawn without smoothing: ``image-rendering: pixelated``)."""
    found = set()
    for page in PdfReader(io.BytesIO(data)).pages:
        objects = page["/Resources"].get_object().get("/XObject", {})
        for item in objects.values():
            image = item.get_object()
            smoothed = image.get("/Interpolate") != BooleanObject(False)
            if image.get("/Subtype") == "/Image" and smoothed:
                found.add(item.idnum if hasattr(item, "idnum") else id(item.get_object()))
    return len(found)


@pytest.mark.parametrize(
    ("status", "printed"),
    [
        (ReportStatus.PROVISIONAL, "PROVISIONAL REPORT"),
        (ReportStatus.FINAL, "FINAL REPORT"),
        (ReportStatus.AMENDED, "AMENDED REPORT"),
        (ReportStatus.CORRECTED, "CORRECTED REPORT"),
    ],
)
def test_the_report_status_is_on_every_page(status: ReportStatus, printed: str) -> None:
    pages = [words(p) for p in pdftotext(render_pdf(sample_document("en", status=status)).data)]
    assert len(pages) > 1
    others = {"PROVISIONAL REPORT", "FINAL REPORT", "AMENDED REPORT", "CORRECTED REPORT"}
    for page in pages:
        assert printed in page
        assert not any(other in page for other in others - {printed})
    version = 1 if status in {ReportStatus.PROVISIONAL, ReportStatus.FINAL} else 2
    assert all(f"{printed} · Version {version}" in page for page in pages)


def test_an_amended_or_corrected_version_says_what_changed_and_why() -> None:
    for status, change in (
        (ReportStatus.CORRECTED, "Potassium: result corrected"),
        (ReportStatus.AMENDED, "Potassium: result added"),
    ):
        first = pdftotext(render_pdf(sample_document("en", status=status)).data)[0]
        text = words(first)
        assert "replaces report RPT-2026-000418 (version 1) issued 12-Mar-2026 12:01 IST" in text
        assert f"What changed: {change}" in text
        assert "Why: Potassium re-run on a fresh sample" in text


def test_a_provisional_report_names_the_pending_tests() -> None:
    pages = pdftotext(render_pdf(sample_document("en", status=ReportStatus.PROVISIONAL)).data)
    first = words(pages[0])
    assert "Tests pending: Urine culture and sensitivity" in first
    assert "a final report will follow" in first


def _column_below(lines: list[str], heading: str, depth: int = 3) -> list[str]:
    """The texts printed under ``heading`` in its column (pdftotext -layout keeps columns)."""
    row = next(i for i, line in enumerate(lines) if heading in line)
    column = lines[row].index(heading)
    below = []
    for line in lines[row + 1 : row + 1 + depth]:
        below.append(line[column:].split("   ")[0].strip())
    return below


def test_signatories_print_their_registration_number_and_signature() -> None:
    signed = render_pdf(sample_document("en")).data
    last = pdftotext(signed, layout=True)[-1].splitlines()
    assert _column_below(last, "Dr. Kavita Rao")[:2] == ["MD (Pathology)", "Reg. No. KMC 45812"]
    assert _column_below(last, "Dr. Arvind Iyer")[:2] == [
        "MD (Biochemistry)",
        "Reg. No. KMC 51230",
    ]
    assert _images_on(signed) == 1  # Dr. Rao's uploaded signature; Dr. Iyer has none
    document = sample_document("en")
    unsigned = replace(
        document,
        signatories=tuple(replace(s, signature_uri=None) for s in document.signatories),
    )
    assert _images_on(render_pdf(unsigned).data) == 0


def test_scope_marking_and_the_nabl_line_only_for_an_accredited_lab(
    english_pages: list[str],
) -> None:
    everything = " ".join(english_pages)
    assert "ESR *" in everything
    assert "Vitamin D, 25-hydroxy *" in everything
    assert "Haemoglobin *" not in everything
    assert "* Not in NABL scope" in everything
    assert "NABL accredited medical laboratory" in english_pages[0]

    plain = sample_document("en", accreditation=None)
    pages = [words(p) for p in pdftotext(render_pdf(plain).data)]
    text = " ".join(pages)
    assert "NABL" not in text.replace("(NABL MC-2212)", "")  # the referral lab's own number
    assert "accreditation" not in text
    assert " *" not in text.replace("*** End of report ***", "")
    assert "ESR" in text


def test_referral_tests_name_the_lab_that_did_them(english_pages: list[str]) -> None:
    everything = " ".join(english_pages)
    assert "Vitamin D, 25-hydroxy * 18.4 L ng/mL" in everything
    assert f"Referred test, performed at {REFERRAL_LAB}" in everything
    assert everything.count("Referred test") == 1


def test_where_collected_where_tested_and_condition_at_receipt(english_pages: list[str]) -> None:
    first = english_pages[0]
    assert "Collected at: Jayanagar collection centre" in first
    assert "Tested at: Sanjeevani central laboratory, Bengaluru" in first
    assert "Condition at receipt" in first
    assert "Lipaemic" in first
    assert "Mildly lipaemic; results not affected." in first


def test_units_print_with_typography(english_pages: list[str]) -> None:
    everything = " ".join(english_pages)
    for unit in ("10³/µL", "mL/min/1.73 m²", "µIU/mL"):
        assert unit in everything, unit
    for ascii_form in ("10^3", "/uL", "1.73m2", "uIU"):
        assert ascii_form not in everything, ascii_form


def test_methods_print_for_every_test_that_has_one(english_pages: list[str]) -> None:
    everything = " ".join(english_pages)
    assert everything.count("Method: ") == 18  # every sample line carries a method


@given(st.text(alphabet="0123456789^/ .-umLgdIUoklnsµ²cMf%", max_size=20))
def test_typographic_units_are_stable(unit: str) -> None:
    once = typographic_unit(unit)
    assert typographic_unit(once) == once
    assert "^" not in (once or "").replace("^-", "").rstrip("^") or "^" in unit


def test_typographic_units_of_the_catalogue() -> None:
    assert typographic_unit("10^3/uL") == "10³/µL"
    assert typographic_unit("10^6/uL") == "10⁶/µL"
    assert typographic_unit("mL/min/1.73m2") == "mL/min/1.73 m²"
    assert typographic_unit("uIU/mL") == "µIU/mL"
    assert typographic_unit("umol/L") == "µmol/L"
    assert typographic_unit("cells/cumm") == "cells/cumm"
    assert typographic_unit("mmol/L") == "mmol/L"
    assert typographic_unit(None) is None


# ---- the Hindi text layer --------------------------------------------------------------

#: Labels printed on the sample Hindi report, as they must come out of the PDF.
PRINTED_HINDI = (
    "title",
    "patient",
    "age_sex",
    "accession",
    "referred_by",
    "order",
    "priority",
    "collected",
    "received",
    "reported",
    "report_no",
    "specimen",
    "test",
    "result",
    "flag",
    "unit",
    "reference",
    "method",
    "comment",
    "critical",
    "verified_by",
    "signed_electronically",
    "end_of_report",
    "scan_to_verify",
    "legend",
    "not_accredited",
    "status_final",
    "condition_at_receipt",
    "collected_at_centre",
    "tested_at",
    "condition_lipaemic",
    "not_in_scope_note",
    "registration",
    "sex_female",
    "priority_urgent",
)


def test_hindi_text_extracts_exactly_as_written(hindi_pages: list[str]) -> None:
    everything = " ".join(hindi_pages)
    text = labels("hi")
    for key in PRINTED_HINDI:
        assert words(text[key]) in everything, (key, text[key])
    for word in ("रिपोर्ट", "परिणाम", "इकाई"):  # the words the issue found garbled
        assert word in everything, word
    for garbled in ("रपोटर्भ", "प रणाम", "परणाम", "इकाइर्ट", "इकाइर"):
        assert garbled not in everything, garbled
    for number, page in enumerate(hindi_pages, start=1):
        assert f"पृष्ठ {number} / {len(hindi_pages)}" in page
    referral = text["referral"].format(lab=REFERRAL_LAB)
    assert words(referral) in everything
    assert "त्रैमासिक जाँच की सलाह; श्रेणी: मधुमेह-पूर्व (prediabetes)।" in everything


def test_every_devanagari_word_of_the_page_round_trips(hindi_pages: list[str]) -> None:
    """Whatever Devanagari the reader gets is a word the source printed (nothing invented)."""
    text = labels("hi")
    source_words: set[str] = set()
    for value in [*text.values(), "त्रैमासिक जाँच की सलाह; श्रेणी: मधुमेह-पूर्व (prediabetes)।"]:
        source_words.update(re.findall(r"[\u0900-\u097F\u200c\u200d]+", value))
    source_words.update(["वर्ष"])  # the age unit
    extracted = set(re.findall(r"[\u0900-\u097F\u200c\u200d]+", " ".join(hindi_pages)))
    assert extracted
    assert extracted <= source_words, extracted - source_words
