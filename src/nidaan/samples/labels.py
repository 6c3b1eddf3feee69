"""Barcode labels: one 50 x 25 mm page per tube, Code 128 of the accession (reportlab).

Pure rendering: the service gathers the facts into ``Label`` values. The standard PDF fonts
cover Latin-1 only, so other characters print as "?" (names are usually Latin on tubes).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import datetime

from reportlab.graphics.barcode.code128 import Code128
from reportlab.lib.units import mm
from reportlab.pdfgen.canvas import Canvas

from nidaan.kit.time import IST

PAGE_WIDTH = 50 * mm
PAGE_HEIGHT = 25 * mm
MARGIN = 2 * mm
#: Scanners need a blank zone of about ten bars either side of the code.
QUIET_ZONE = 3 * mm
BAR_HEIGHT = 8 * mm
#: Width of the narrowest bar (module) when the code fits; longer codes get thinner bars.
MAX_BAR_WIDTH = 0.30 * mm
NAME_CHARS = 24


@dataclass(frozen=True)
class Label:
    accession: str
    patient_name: str
    age_sex: str  # "34Y/F"
    specimen_type: str
    container: str  # in words, e.g. "Serum (yellow top)"
    order_number: str
    collected_at: datetime | None = None
    mrn: str = ""


def _latin1(text: str) -> str:
    return text.encode("latin-1", "replace").decode("latin-1")


def truncate(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "."


def _fit(canvas: Canvas, text: str, font: str, size: float, width: float) -> str:
    """Shorten ``text`` until it fits ``width`` points."""
    text = _latin1(text)
    while text and canvas.stringWidth(text, font, size) > width:
        text = text[:-2] + "." if len(text) > 2 else ""
    return text


def render_labels(labels: list[Label]) -> bytes:
    """A PDF with one label page per entry."""
    buffer = io.BytesIO()
    # invariant: the same labels give the same bytes (a reprint is not a new file version).
    canvas = Canvas(buffer, pagesize=(PAGE_WIDTH, PAGE_HEIGHT), pageCompression=1, invariant=1)
    canvas.setTitle("Sample labels")
    canvas.setCreator("Nidaan")
    usable = PAGE_WIDTH - 2 * MARGIN
    for label in labels:
        top = PAGE_HEIGHT - MARGIN
        canvas.setFont("Helvetica-Bold", 7)
        name = _fit(
            canvas, truncate(label.patient_name, NAME_CHARS), "Helvetica-Bold", 7, usable * 0.72
        )
        canvas.drawString(MARGIN, top - 6, name)
        canvas.setFont("Helvetica", 7)
        canvas.drawRightString(PAGE_WIDTH - MARGIN, top - 6, _latin1(label.age_sex))

        barcode = Code128(label.accession, barWidth=1, barHeight=BAR_HEIGHT, quiet=0)
        modules = barcode.width
        bar_width = min(MAX_BAR_WIDTH, (PAGE_WIDTH - 2 * QUIET_ZONE) / modules)
        barcode = Code128(label.accession, barWidth=bar_width, barHeight=BAR_HEIGHT, quiet=0)
        barcode.drawOn(canvas, (PAGE_WIDTH - barcode.width) / 2, top - 8 - BAR_HEIGHT)

        canvas.setFont("Helvetica-Bold", 7)
        canvas.drawCentredString(PAGE_WIDTH / 2, top - 15 - BAR_HEIGHT, label.accession)

        canvas.setFont("Helvetica", 5.5)
        mrn_width = canvas.stringWidth(_latin1(label.mrn), "Helvetica-Bold", 5.5)
        container = _fit(canvas, label.container, "Helvetica", 5.5, usable - mrn_width - 1 * mm)
        canvas.drawString(MARGIN, MARGIN + 6.5, container)
        if label.mrn:
            canvas.setFont("Helvetica-Bold", 5.5)
            canvas.drawRightString(PAGE_WIDTH - MARGIN, MARGIN + 6.5, _latin1(label.mrn))
            canvas.setFont("Helvetica", 5.5)
        collected = (
            label.collected_at.astimezone(IST).strftime("%d-%m-%Y %H:%M")
            if label.collected_at
            else "__/__/____ __:__"
        )
        canvas.drawString(MARGIN, MARGIN, f"Coll: {collected}")
        canvas.drawRightString(
            PAGE_WIDTH - MARGIN,
            MARGIN,
            _fit(canvas, label.order_number, "Helvetica", 5.5, usable * 0.45),
        )
        canvas.showPage()
    canvas.save()
    return buffer.getvalue()
