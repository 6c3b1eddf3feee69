"""The report pictures in docs/ (``docs/report-en-page1.png``, ``docs/report-hi-page1.png``
and the last pages with the signatories), made by the real renderer from the sample report:
``nidaan report-sample --out docs``.

Page 1 of each PDF is rasterised with PDFium (the ``pypdfium2`` wheel, a dev dependency).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from nidaan.reports.render import render_pdf
from nidaan.reports.sample import sample_document

#: 910 px across an A4 page (210 mm): about 110 dpi, sharp enough to read on screen.
PICTURE_WIDTH = 910


@dataclass(frozen=True)
class SamplePicture:
    language: str
    pdf: Path
    pngs: tuple[Path, ...]


def render_page_png(pdf: bytes, page: int = 0, width: int = PICTURE_WIDTH) -> bytes:
    """One page of a PDF (negative: from the end) as a PNG ``width`` pixels wide."""
    import io

    try:
        import pypdfium2
    except ImportError as exc:  # a production install has no need for pictures
        raise RuntimeError(
            "Rendering PNGs needs pypdfium2 (pip install pypdfium2; make install adds it)."
        ) from exc
    document = pypdfium2.PdfDocument(pdf)
    try:
        sheet = document[page if page >= 0 else len(document) + page]
        image = sheet.render(scale=width / sheet.get_width()).to_pil()
        buffer = io.BytesIO()
        image.convert("RGB").save(buffer, format="PNG", optimize=True)
        return buffer.getvalue()
    finally:
        document.close()


def write_sample_pictures(out: Path, *, png: bool = True) -> list[SamplePicture]:
    """Write ``report-<lang>.pdf`` of the sample report and, with ``png``, its first and last
    pages as ``report-<lang>-page1.png`` and ``report-<lang>-last-page.png``."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for language in ("en", "hi"):
        data = render_pdf(sample_document(language)).data
        pdf_path = out / f"report-{language}.pdf"
        pdf_path.write_bytes(data)
        pngs: list[Path] = []
        if png:
            for page, name in ((0, "page1"), (-1, "last-page")):
                path = out / f"report-{language}-{name}.png"
                path.write_bytes(render_page_png(data, page))
                pngs.append(path)
        written.append(SamplePicture(language, pdf_path, tuple(pngs)))
    return written
