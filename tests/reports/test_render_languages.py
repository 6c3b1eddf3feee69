"""Marathi (Devanagari), Tamil and Telugu reports: labels in the language, the script's own
Noto face embedded, and a text layer that extracts exactly as written (the ActualText spans
that fix Hindi's, read back with pdftotext as people copy and search)."""

from __future__ import annotations

from datetime import date

import pytest

from nidaan.reports.domain import LANGUAGES, age_text, normalise_language
from nidaan.reports.i18n import LABELS
from nidaan.reports.render import format_time, render_html, render_pdf
from nidaan.reports.sample import sample_document
from tests.reports.pdf_text import pdftotext, words
from tests.reports.test_render import font_names

CASES = {
    # language: (embedded font, labels that must extract, labels that must be laid out)
    "mr": (
        "NotoSansDevanagari",
        ("प्रयोगशाळा चाचणी अहवाल", "रुग्ण", "निकाल", "चाचणी", "नमुना संकलन", "सुधारित"),
        ("एकक", "संदर्भ मर्यादा", "अहवाल समाप्त", "पडताळणी"),
    ),
    "ta": (
        "NotoSansTamil",
        ("ஆய்வக பரிசோதனை", "நோயாளி", "முடிவு", "பரிசோதனை", "மாதிரி சேகரிப்பு", "திருத்தப்பட்ட"),
        ("அலகு", "குறிப்பு வரம்பு", "அறிக்கை முடிவு", "சரிபார்த்து"),
    ),
    "te": (
        "NotoSansTelugu",
        ("ప్రయోగశాల పరీక్ష నివేదిక", "రోగి", "ఫలితం", "పరీక్ష", "నమూనా సేకరణ", "సవరించిన"),
        ("ప్రమాణం", "సూచన పరిధి", "నివేదిక ముగింపు", "ధృవీకరించి"),
    ),
}


@pytest.mark.parametrize("language", sorted(CASES))
def test_report_in_the_language_with_its_script(language: str) -> None:
    font, extracted, laid_out = CASES[language]
    rendered = render_pdf(sample_document(language, amended=True))
    everything = " ".join(words(page) for page in pdftotext(rendered.data))
    for label in extracted:
        assert label in everything, label
    assert any(font in name.replace("-", "") for name in font_names(rendered.data))
    html = render_html(sample_document(language, amended=True))
    assert f'<html lang="{language}">' in html
    for label in laid_out:
        assert label in html, label
    assert "Haemoglobin" in everything  # test names stay as catalogued
    assert "12-03-2026" in everything  # numeric dates, no English month names


def test_every_language_has_every_label_and_its_age_units() -> None:
    assert set(LANGUAGES) == {"en", "hi", "mr", "ta", "te"}
    for language in LANGUAGES:
        assert set(LABELS[language]) == set(LABELS["en"]), language
        assert normalise_language(f"{language.upper()}-IN") == language
    issued = sample_document("ta").issued_at
    assert age_text(date(1987, 8, 14), issued, "te") == "38 సం."
    assert format_time(issued, "mr") == "12-03-2026 15:01 IST"
