"""The same report renders to the same bytes: twice in one process, after other documents
with other fonts, and in a fresh process (what was sent can be re-made and compared)."""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
from dataclasses import replace

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nidaan.reports.render import font_faces, html_to_pdf, render_pdf
from nidaan.reports.sample import sample_document

# WeasyPrint writes no dates unless the HTML asks for them; should it ever, they may differ.
_DATES = re.compile(rb"/(CreationDate|ModDate) \([^)]*\)")


def _stable(data: bytes) -> bytes:
    return _DATES.sub(b"", data)


def _variable_font_document() -> str:
    """An invoice-like page with the variable faces, as billing and QC send them."""
    rules = "\n".join(
        f'@font-face {{ font-family: "{face.family}"; src: url("{face.uri}"); '
        f"font-style: {face.style}; font-weight: {weight}; }}"
        for face in font_faces()
        for weight in (400, 700)
    )
    return (
        f'<html><head><style>{rules} html {{ font-family: "Noto Sans"; }}</style></head>'
        "<body><b>Invoice</b> परीक्षण</body></html>"
    )


def test_a_report_renders_to_the_same_bytes_in_this_process_and_in_another() -> None:
    document = sample_document("hi")
    first = _stable(render_pdf(document).data)
    html_to_pdf(_variable_font_document())
    render_pdf(sample_document("en"))
    assert _stable(render_pdf(document).data) == first
    script = (
        "import hashlib, sys\n"
        "from nidaan.reports.render import render_pdf\n"
        "from nidaan.reports.sample import sample_document\n"
        "sys.stdout.write(hashlib.sha256(render_pdf(sample_document('hi')).data).hexdigest())\n"
    )
    elsewhere = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout
    assert elsewhere == hashlib.sha256(first).hexdigest()


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=st.text(
        alphabet=st.sampled_from("Sunita Sharmaअंकितक्षत्रश्रीरामिुेोटर्ट .-'"),
        min_size=1,
        max_size=40,
    ).filter(str.strip),
    language=st.sampled_from(["en", "hi"]),
)
def test_any_patient_name_renders_to_the_same_bytes_twice(name: str, language: str) -> None:
    document = sample_document(language)
    document = replace(document, patient=replace(document.patient, name=name))
    assert _stable(render_pdf(document).data) == _stable(render_pdf(document).data)
