"""Rendering a ReportDocument to PDF: NABL/ISO 15189 content on every page, Hindi labels."""

from __future__ import annotations

import io
from dataclasses import replace

import pytest
from pypdf import PdfReader

from nidaan.reports.domain import ReportStatus, Section
from nidaan.reports.render import (
    font_face_rules,
    font_faces,
    format_time,
    page_counter_css,
    render_html,
    render_pdf,
    static_font_faces,
)
from nidaan.reports.sample import sample_document


def page_texts(data: bytes) -> list[str]:
    return [page.extract_text() or "" for page in PdfReader(io.BytesIO(data)).pages]


def font_names(data: bytes) -> set[str]:
    names = set()
    for page in PdfReader(io.BytesIO(data)).pages:
        fonts = page["/Resources"].get_object().get("/Font", {})
        for font in fonts.values():
            names.add(str(font.get_object()["/BaseFont"]))
    return names


@pytest.fixture(scope="module")
def english():  # type: ignore[no-untyped-def]
    return render_pdf(sample_document("en"))


def test_pdf_has_header_results_signatories_and_page_numbers(english) -> None:  # type: ignore[no-untyped-def]
    assert english.data.startswith(b"%PDF")
    pages = page_texts(english.data)
    assert len(pages) == english.page_count >= 1
    for number, text in enumerate(pages, start=1):
        assert "Sanjeevani Diagnostics" in text
        assert "Sunita Sharma" in text
        assert "MRN-00012345" in text
        assert "JAY-20260312-0042" in text
        assert f"Page {number} of {len(pages)}" in text
    everything = "\n".join(pages)
    for expected in (
        "NABL accredited",
        "Dr. R. K. Mehta",
        "12-Mar-2026 08:10 IST",  # collected (02:40 UTC)
        "12-Mar-2026 15:01 IST",  # reported
        "Haemoglobin",
        "Photometric (SLS)",
        "12.0 - 15.0",
        "g/dL",
        "CRITICAL",
        "Critical value phoned",
        "Dr. Kavita Rao",
        "MD (Pathology)",
        "End of report",
    ):
        assert expected in everything, expected
    assert "AMENDED" not in everything


def test_non_accredited_tests_get_their_own_pages_without_the_accreditation_line(english) -> None:  # type: ignore[no-untyped-def]
    pages = page_texts(english.data)
    outside = [text for text in pages if "ESR" in text]
    assert outside
    for text in outside:
        assert "not within the laboratory's scope of accreditation" in text
        assert "NABL accredited" not in text
        assert "Haemoglobin" not in text


def test_long_report_repeats_the_patient_on_every_page() -> None:
    document = sample_document("en", repeat=4)  # 68 results
    assert document.line_count >= 60
    rendered = render_pdf(document)
    pages = page_texts(rendered.data)
    assert rendered.page_count == len(pages) > 1
    for number, text in enumerate(pages, start=1):
        assert "Sunita Sharma" in text
        assert "MRN-00012345" in text
        assert f"Page {number} of {len(pages)}" in text
    assert "End of report" in pages[-1]
    assert rendered.seconds_per_page > 0


def test_amended_report_says_so_and_references_the_version_it_replaces() -> None:
    rendered = render_pdf(sample_document("en", status=ReportStatus.AMENDED))
    pages = page_texts(rendered.data)
    assert "AMENDED REPORT" in pages[0]
    assert "replaces report RPT-2026-000418 (version 1) issued 12-Mar-2026 12:01 IST" in pages[0]
    assert "Potassium re-run on a fresh sample" in pages[0]
    assert all("AMENDED" in text for text in pages)


def test_hindi_report_uses_the_devanagari_font_and_keeps_test_names() -> None:
    rendered = render_pdf(sample_document("hi", amended=True))
    pages = page_texts(rendered.data)
    assert any("NotoSansDevanagari" in name.replace("-", "") for name in font_names(rendered.data))
    html = render_html(sample_document("hi", amended=True))
    for label in ("इकाई", "संदर्भ सीमा", "सुधारित रिपोर्ट", "रिपोर्ट समाप्त", "सत्यापित"):
        assert label in html, label
    assert "Haemoglobin" in "\n".join(pages)  # test names stay as catalogued


def test_fonts_come_from_the_fontpkg_packages() -> None:
    families = {face.family for face in font_faces()}
    assert families == {
        "Noto Sans",
        "Noto Sans Devanagari",
        "Noto Sans Tamil",
        "Noto Sans Telugu",
    }
    assert all(face.path.suffix == ".ttf" and face.path.is_file() for face in font_faces())
    # Reports embed the static instances made from them (tests/reports/test_faces.py).
    assert {face.family for face in static_font_faces()} == families
    rules = font_face_rules(static_font_faces())
    assert rules.count("@font-face") == len(static_font_faces())
    assert (
        'NotoSansDevanagari-700.ttf") format("truetype"); font-style: normal; font-weight: 700;'
        in rules
    )


def test_report_text_cannot_inject_markup_or_fetch_files() -> None:
    document = sample_document("en")
    hostile = replace(
        document,
        patient=replace(document.patient, name='<img src="file:///etc/passwd">Evil"</style>'),
        sections=(
            Section(
                title="X",
                lines=(replace(document.sections[0].lines[0], comment="<b>bold</b>"),),
            ),
        ),
    )
    html = render_html(hostile)
    assert '<img src="file:///etc/passwd">' not in html
    assert "<b>bold</b>" not in html
    pages = page_texts(render_pdf(hostile).data)
    assert '<img src="file:///etc/passwd">Evil' in pages[0]


def test_time_and_page_counter_helpers() -> None:
    document = sample_document("en")
    assert format_time(document.issued_at, "en") == "12-Mar-2026 15:01 IST"
    assert format_time(document.issued_at, "hi") == "12-03-2026 15:01 IST"
    assert format_time(None, "en") == "—"
    assert page_counter_css("Page {page} of {pages}") == (
        '"Page " counter(page) " of " counter(pages)'
    )
    assert page_counter_css("पृष्ठ {page} / {pages}") == ('"पृष्ठ " counter(page) " / " counter(pages)')
