"""ReportDocument -> PDF bytes: a Jinja2 HTML template laid out by WeasyPrint.

Fonts are the Noto TTFs shipped in the ``fontpkg-noto-sans`` and
``fontpkg-noto-sans-devanagari`` wheels, embedded with ``@font-face`` so HarfBuzz shapes
Devanagari conjuncts (क्ष, त्र, श्र) whatever fonts the host has. The renderer fetches nothing
but those font files and ``data:`` URIs (the QR code): report content cannot make it read
other files or reach the network.

Rendering is CPU-bound and synchronous; async callers run it in a thread
(``render_pdf_async``).

The text layer of Indic scripts is made right with ActualText (``text_layer.py``): the
glyph-to-character map alone cannot say that the glyph of ि drawn before र belongs after
it, so copy-paste, search and screen readers would get garbled Hindi.
"""

from __future__ import annotations

import asyncio
import logging
import statistics
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from importlib import import_module
from pathlib import Path
from typing import Any

import jinja2
import markupsafe
import segno
from weasyprint import HTML
from weasyprint.text.fonts import FontConfiguration
from weasyprint.urls import URLFetcher

from nidaan.kit.metrics import REPORT_RENDER_SECONDS, REPORT_RENDERS
from nidaan.kit.time import IST
from nidaan.reports.domain import ReportDocument, normalise_language, typographic_unit
from nidaan.reports.i18n import labels
from nidaan.reports.text_layer import install_actual_text

TEMPLATES = Path(__file__).parent / "templates"

#: (CSS family name, fontpkg module) of every face the template uses.
FONT_PACKAGES = (
    ("Noto Sans", "fontpkg_noto_sans"),
    ("Noto Sans Devanagari", "fontpkg_noto_sans_devanagari"),
    ("Noto Sans Tamil", "fontpkg_noto_sans_tamil"),
    ("Noto Sans Telugu", "fontpkg_noto_sans_telugu"),
)

# fontTools logs every variable-font instancing at INFO: a dozen lines per report.
logging.getLogger("fontTools").setLevel(logging.WARNING)

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


class FontsMissingError(RuntimeError):
    """A font package is not installed; a report without it would print boxes for Hindi."""


@dataclass(frozen=True)
class FontFace:
    family: str
    path: Path
    style: str  # "normal" | "italic"

    @property
    def uri(self) -> str:
        # as_uri() percent-encodes the "[wdth,wght]" of variable font file names.
        return self.path.as_uri()


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


@lru_cache(maxsize=1)
def font_faces() -> tuple[FontFace, ...]:
    """The TTF files of the fontpkg packages, found through the installed modules."""
    faces: list[FontFace] = []
    for family, module_name in FONT_PACKAGES:
        try:
            module = import_module(module_name)
        except ImportError as exc:
            raise FontsMissingError(
                f"The font package for {family!r} is not installed "
                f"(pip install {module_name.replace('_', '-')})."
            ) from exc
        files = sorted((Path(module.__file__).parent / "files").glob("*.ttf"))
        if not files:
            raise FontsMissingError(f"No TTF file in {module_name}")
        for path in files:
            style = "italic" if "italic" in path.name.lower() else "normal"
            faces.append(FontFace(family=family, path=path.resolve(), style=style))
    return tuple(faces)


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
    """The verification URL as an SVG QR code (error correction M), as a data: URI."""
    code = segno.make(url, error="m", micro=False)
    return str(code.svg_data_uri(scale=4, border=0, dark="#000000", light=None))


def render_html(document: ReportDocument) -> str:
    """The report as HTML (what WeasyPrint lays out)."""
    language = normalise_language(document.language)
    text = labels(language)
    template = _environment().get_template("report.html.j2")
    return template.render(
        doc=document,
        t=text,
        lang=language,
        fonts=font_faces(),
        page_counter=page_counter_css(text["page"]),
        fmt=lambda value: format_time(value, language),
        qr=qr_data_uri(document.verification_url),
    )


# WeasyPrint's font configuration is reused between renders (it caches the parsed faces)
# but it is not documented as thread-safe, so one render at a time uses it.
_font_config_lock = threading.Lock()


@lru_cache(maxsize=1)
def _font_config() -> FontConfiguration:
    return FontConfiguration()


def render_pdf(document: ReportDocument) -> RenderedPdf:
    """Lay out and write the PDF; also returns the page count and the time it took."""
    return html_to_pdf(render_html(document))


def html_to_pdf(html: str) -> RenderedPdf:
    """Any of our documents' HTML (reports, invoices, receipts) as a PDF, with the bundled
    fonts and nothing else fetched (``data:`` URIs allowed)."""
    started = time.perf_counter()
    install_actual_text()
    fetcher = _FontsOnlyFetcher(frozenset(face.uri for face in font_faces()))
    try:
        with _font_config_lock:
            font_config = _font_config()
            laid_out = HTML(string=html, url_fetcher=fetcher, base_url=str(TEMPLATES)).render(
                font_config=font_config
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
