"""The ActualText spans that give Hindi reports a correct text layer (reports/text_layer.py)."""

from __future__ import annotations

import io

import weasyprint.draw
from pypdf import PdfReader

from nidaan.reports.render import render_pdf
from nidaan.reports.sample import sample_document
from nidaan.reports.text_layer import needs_actual_text


def _content(data: bytes) -> bytes:
    return b"\n".join(page.get_contents().get_data() for page in PdfReader(io.BytesIO(data)).pages)


def test_indic_text_is_drawn_inside_actual_text_spans_and_latin_is_left_alone() -> None:
    hindi = _content(render_pdf(sample_document("hi")).data)
    english = _content(render_pdf(sample_document("en")).data)
    assert hindi.count(b"/ActualText") > 50
    assert hindi.count(b"BDC") == hindi.count(b"EMC")
    assert b"/ActualText" not in english
    # The span holds the source text (UTF-16BE with a byte order mark, hex-encoded).
    assert ("\ufeff" + "परिणाम").encode("utf-16-be").hex().encode() in hindi.lower()


def test_the_weasyprint_hook_is_in_place() -> None:
    render_pdf(sample_document("hi"))
    assert hasattr(weasyprint.draw.draw_text, "wrapped")


def test_which_text_needs_a_span() -> None:
    assert needs_actual_text("परिणाम")
    assert needs_actual_text("Page 1 / पृष्ठ")
    assert needs_actual_text("தமிழ்")  # Tamil reorders too
    assert not needs_actual_text("Haemoglobin 10.8 g/dL µIU/mL 10³")
