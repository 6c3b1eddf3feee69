"""The running header laid out once per render and reused on later pages
(reports/running_header.py): same bytes as laying it out on every page."""

from __future__ import annotations

import re
from dataclasses import replace

import weasyprint.layout.page
from weasyprint import HTML

from nidaan.reports.render import (
    TEMPLATES,
    _fetcher,
    _report_styles,
    _write_pdf,
    render_html,
    render_pdf,
)
from nidaan.reports.running_header import reusing_margin_boxes
from nidaan.reports.sample import sample_document


def _laid_out_every_page(language: str) -> bytes:
    """The report as WeasyPrint lays it out by itself: the header again on every page."""
    font_config, stylesheet = _report_styles()
    return _write_pdf(render_html(sample_document(language)), font_config, (stylesheet,), 0.0).data


def test_reusing_the_header_gives_the_same_bytes() -> None:
    for language in ("en", "hi"):
        assert render_pdf(sample_document(language)).data == _laid_out_every_page(language)


def test_pages_with_the_same_header_share_one_laid_out_box_and_others_do_not() -> None:
    font_config, stylesheet = _report_styles()
    html = render_html(sample_document("en"))
    with reusing_margin_boxes():
        document = HTML(string=html, url_fetcher=_fetcher(), base_url=str(TEMPLATES)).render(
            font_config=font_config, stylesheets=[stylesheet]
        )
    headers = [
        next(b for b in page._page_box.children if getattr(b, "at_keyword", "") == "@top-center")
        for page in document.pages
    ]
    footers = [
        next(b for b in page._page_box.children if getattr(b, "at_keyword", "") == "@bottom-right")
        for page in document.pages
    ]
    assert len(headers) == 3
    assert headers[0] is headers[1]  # the accredited header, laid out once
    assert headers[2] is not headers[0]  # page 3 shows the "outside the scope" header
    assert len({id(footer) for footer in footers}) == 3  # "Page n of 3" differs per page


def test_a_report_whose_header_differs_only_in_the_patient_renders_its_own() -> None:
    document = sample_document("en")
    other = replace(document, patient=replace(document.patient, name="Anil Kumar"))
    first, second = render_pdf(document).data, render_pdf(other).data
    assert first != second
    assert render_pdf(other).data == second


def test_the_hook_is_in_place_and_the_stylesheet_styles_no_page_by_position() -> None:
    render_pdf(sample_document("en"))
    assert hasattr(weasyprint.layout.page.margin_box_content_layout, "wrapped")
    # The reuse key holds the page's name, not its side or index: report.css must not
    # style pages (or their margin boxes) with :first, :left, :right, :blank or :nth().
    css = (TEMPLATES / "report.css").read_text() + (TEMPLATES / "report.html.j2").read_text()
    assert not re.search(r"@page[^{]*:", css)
