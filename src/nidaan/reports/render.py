"""ReportDocument -> PDF bytes: a Jinja2 HTML template laid out by WeasyPrint.

Fonts are static instances of the Noto TTFs of the ``fontpkg-noto-sans*`` wheels
(``faces.py``: WeasyPrint would re-instance the variable fonts at every render), embedded
with ``@font-face`` so HarfBuzz shapes Devanagari conjuncts (क्ष, त्र, श्र) whatever fonts the
host has. The renderer fetches nothing but those font files and ``data:`` URIs (the QR
code): report content cannot make it read other files or reach the network.

What is the same for every report is prepared once per process: the Jinja template is
compiled once, and the fixed styles with their ``@font-face`` rules (``report.css``) are
parsed once into a WeasyPrint stylesheet bound to the report font configuration. Each
report's HTML carries only what varies (the margin-box texts, the script's face).

Rendering is CPU-bound and synchronous; async callers run it in a thread
(``render_pdf_async``).

The text layer of Indic scripts is made right with ActualText (``text_layer.py``): the
glyph-to-character map alone cannot say that the glyph of ि drawn before र belongs after
it, so copy-paste, search and screen readers would get garbled Hindi.
"""

from __future__ import annotations

import asyncio
import logging
import re
import statistics
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2
import markupsafe
import segno
from weasyprint import CSS, HTML
from weasyprint.text.fonts import FontConfiguration
from weasyprint.urls import URLFetcher

from nidaan.kit.metrics import REPORT_RENDER_SECONDS, REPORT_RENDERS
from nidaan.kit.time import IST
from nidaan.reports.domain import ReportDocument, normalise_language, typographic_unit
from nidaan.reports.faces import FontFace, font_faces, static_font_faces
from nidaan.reports.i18n import labels
from nidaan.reports.running_header import reusing_margin_boxes
from nidaan.reports.text_layer import install_actual_text

TEMPLATES = Path(__file__).parent / "templates"

# fontTools logs every variable-font instancing at INFO: a dozen lines per invoice.
logging.getLogger("fontTools").setLevel(logging.WARNING)

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


@dataclass(frozen=True)
class RenderedPdf:
    data: bytes
    page_count: int
    seconds: float

    @property
    def seconds_per_page(self) -> float:
        return self.seconds / max(self.page_count, 1)


@dataclass(frozen=True)
class RenderTiming:
    runs: int
    pages: int
    median_seconds_per_page: float
    p95_seconds_per_page: float
    median_seconds: float


class _FontsOnlyFetcher(URLFetcher):
    """Fetches the bundled font files and data: URIs; refuses everything else."""

    def __init__(self, allowed_files: frozenset[str]) -> None:
        super().__init__(allowed_protocols=("file", "data"), fail_on_errors=True)
        self._allowed_files = allowed_files

    def fetch(self, url: str, headers: Any = None) -> Any:
        if url.startswith("file:") and url.split("?")[0] not in self._allowed_files:
            raise ValueError(f"The report renderer may not read {url}")
        return super().fetch(url, headers)


@lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["css_string"] = _css_string
    environment.filters["unit"] = lambda unit: typographic_unit(unit) or ""
    return environment


def _css_string(value: str) -> markupsafe.Markup:
    """A Python string as a CSS string literal (for generated ``content:`` values)."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\A ")
    escaped = escaped.replace("<", "\\3C ").replace(">", "\\3E ")
    # Safe inside <style>: no quote ends the string and no "</style>" can appear.
    return markupsafe.Markup(f'"{escaped}"')  # noqa: S704 - escaped for CSS above


def format_time(value: datetime | None, language: str) -> str:
    """A time in the lab's zone: ``12-Mar-2026 09:41 IST`` (numeric months in Indian
    languages, where an English month name would be out of place)."""
    if value is None:
        return "—"
    local = value.astimezone(IST)
    if language != "en":
        return local.strftime("%d-%m-%Y %H:%M") + " IST"
    return f"{local:%d}-{_MONTHS[local.month - 1]}-{local:%Y %H:%M} IST"


def page_counter_css(template: str) -> markupsafe.Markup:
    """``"Page {page} of {pages}"`` -> ``"Page " counter(page) " of " counter(pages)``."""
    parts: list[str] = []
    rest = template
    while rest:
        head, marker, rest = _split_first(rest, ("{page}", "{pages}"))
        if head:
            parts.append(_css_string(head))
        if marker:
            parts.append(f"counter({marker.strip('{}')})")
    return markupsafe.Markup(" ".join(parts))  # noqa: S704 - CSS strings and counters


def _split_first(text: str, markers: tuple[str, ...]) -> tuple[str, str, str]:
    found = [(text.find(m), m) for m in markers if m in text]
    if not found:
        return text, "", ""
    index, marker = min(found, key=lambda item: (item[0], -len(item[1])))
    return text[:index], marker, text[index + len(marker) :]


def qr_data_uri(url: str) -> str:
    """The verification URL as a QR code (error correction M): a PNG data: URI, one pixel
    per module, which the stylesheet scales up without smoothing (``image-rendering:
    pixelated``), so it prints as sharp as vector art. As SVG, WeasyPrint parsed and drew the
    code's path again on every page: ~8 % of a report's render time."""
    code = segno.make(url, error="m", micro=False)
    return str(code.png_data_uri(scale=1, border=0, dark="#000000", light="#ffffff"))


# Whitespace between two tags that spans a line break: the template's indentation. HTML
# lays it out as nothing (between blocks, table parts, or at a line's start or end), but
# WeasyPrint still builds, styles and measures a text box for each run (Pango layouts in
# every table cell's min/max-content width). User text cannot match: it is escaped, so
# it holds no literal "<" or ">"; a deliberate space between two inline tags is written
# on one line in the template and is kept.
_LAYOUT_WHITESPACE = re.compile(r">[ \t]*\n\s*<")


def render_html(document: ReportDocument) -> str:
    """The report as HTML (what WeasyPrint lays out)."""
    language = normalise_language(document.language)
    text = labels(language)
    template = _environment().get_template("report.html.j2")
    html = template.render(
        doc=document,
        t=text,
        lang=language,
        page_counter=page_counter_css(text["page"]),
        fmt=lambda value: format_time(value, language),
        qr=qr_data_uri(document.verification_url),
    )
    return _LAYOUT_WHITESPACE.sub("><", html)


# WeasyPrint's font configurations are reused between renders (they cache the loaded faces)
# but are not documented as thread-safe, so one render at a time uses them.
_font_config_lock = threading.Lock()


def _fetcher() -> _FontsOnlyFetcher:
    allowed = frozenset(face.uri for face in (*font_faces(), *static_font_faces()))
    return _FontsOnlyFetcher(allowed)


@lru_cache(maxsize=1)
def _font_config() -> FontConfiguration:
    """For documents that bring their own ``@font-face`` rules (invoices, QC summaries)."""
    return FontConfiguration()


@lru_cache(maxsize=1)
def _report_styles() -> tuple[FontConfiguration, CSS]:
    """The report font configuration and ``report.css`` parsed into it, once per process.

    A configuration of its own: fontconfig keeps every face ever added to a configuration,
    so a variable "Noto Sans" added by an invoice must not compete with the static one here
    (which face wins would then depend on what the process rendered before).
    """
    font_config = FontConfiguration()
    css = "\n".join((font_face_rules(static_font_faces()), (TEMPLATES / "report.css").read_text()))
    stylesheet = CSS(
        string=css, base_url=str(TEMPLATES), url_fetcher=_fetcher(), font_config=font_config
    )
    return font_config, stylesheet


def font_face_rules(faces: tuple[FontFace, ...]) -> str:
    """``@font-face`` rules for static faces (one weight each)."""
    return "\n".join(
        f'@font-face {{ font-family: "{face.family}"; src: url("{face.uri}") format("truetype"); '
        f"font-style: {face.style}; font-weight: {face.weight}; }}"
        for face in faces
    )


def render_pdf(document: ReportDocument) -> RenderedPdf:
    """Lay out and write the PDF; also returns the page count and the time it took."""
    started = time.perf_counter()
    html = render_html(document)
    with _font_config_lock, reusing_margin_boxes():
        font_config, stylesheet = _report_styles()
        return _write_pdf(html, font_config, (stylesheet,), started)


def html_to_pdf(html: str) -> RenderedPdf:
    """Any of our documents' HTML (reports, invoices, receipts) as a PDF, with the bundled
    fonts and nothing else fetched (``data:`` URIs allowed)."""
    started = time.perf_counter()
    with _font_config_lock:
        return _write_pdf(html, _font_config(), (), started)


def _write_pdf(
    html: str, font_config: FontConfiguration, stylesheets: tuple[CSS, ...], started: float
) -> RenderedPdf:
    install_actual_text()
    try:
        laid_out = HTML(string=html, url_fetcher=_fetcher(), base_url=str(TEMPLATES)).render(
            font_config=font_config, stylesheets=list(stylesheets)
        )
        data = laid_out.write_pdf()
    except Exception:
        REPORT_RENDERS.labels("failed").inc()
        raise
    assert data is not None
    seconds = time.perf_counter() - started
    REPORT_RENDERS.labels("succeeded").inc()
    REPORT_RENDER_SECONDS.observe(seconds)
    return RenderedPdf(data=data, page_count=len(laid_out.pages), seconds=seconds)


async def render_pdf_async(document: ReportDocument) -> RenderedPdf:
    """``render_pdf`` in a worker thread, so the event loop keeps serving meanwhile."""
    return await asyncio.to_thread(render_pdf, document)


def measure_render(document: ReportDocument, runs: int = 20) -> RenderTiming:
    """Render ``document`` ``runs`` times (after one warm-up) and summarise the time per page.

    For ``benchmarks/``; tests never assert on speed.
    """
    render_pdf(document)
    results = [render_pdf(document) for _ in range(runs)]
    per_page = sorted(result.seconds_per_page for result in results)
    p95_index = min(len(per_page) - 1, max(0, round(0.95 * len(per_page)) - 1))
    return RenderTiming(
        runs=runs,
        pages=results[0].page_count,
        median_seconds_per_page=statistics.median(per_page),
        p95_seconds_per_page=per_page[p95_index],
        median_seconds=statistics.median(result.seconds for result in results),
    )
