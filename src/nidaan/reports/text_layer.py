"""A correct text layer for Devanagari (and other Indic scripts) in WeasyPrint's PDFs.

Why it is needed, as measured with WeasyPrint 70 and Noto Sans Devanagari: a PDF maps each
*glyph* to text through the font's ToUnicode table, one entry per glyph id for the whole
document, and WeasyPrint fills it from the first cluster each glyph appears in. Devanagari
breaks both assumptions:

- pre-base matras are drawn before their consonant: in "रि" the glyph of ि comes first and
  the cluster's text goes to one glyph only, so "परिणाम" extracts as "प रणाम";
- one glyph serves several clusters (the reph of "र्ट", the sign that makes "ई" from "इ"),
  and the first cluster wins: "इकाई" extracts as "इकाइर्ट", "रिपोर्ट" as "रपोटर्भ".

A ToUnicode table cannot express either (it is per glyph id, not per occurrence). PDF's
answer is a marked-content span with an /ActualText entry: readers that extract text
(pdftotext/poppler, Acrobat, pdf.js, screen readers) take the span's ActualText instead of
the glyphs' mapping. So every piece of text that contains an Indic character is drawn
inside ``/Span <</ActualText (…)>> BDC … EMC`` holding its source text. Latin text is left
alone (its glyph map is exact), so English reports are byte-for-byte what they were.

WeasyPrint has no option for this, so ``install_actual_text`` wraps its text-drawing
function once per process; ``tests/reports/test_text_layer.py`` fails if a WeasyPrint
upgrade changes what is wrapped.
"""

from __future__ import annotations

import re
import threading
from typing import Any

import pydyf
import weasyprint.draw

#: Devanagari to Malayalam, and the Vedic extensions: scripts that shape with reordering.
INDIC = re.compile(r"[\u0900-\u0D7F\u1CD0-\u1CFF\uA8E0-\uA8FF]")

_lock = threading.Lock()
_installed = False


def needs_actual_text(text: str) -> bool:
    """Whether the glyphs of ``text`` may not extract back to ``text`` by themselves."""
    return bool(INDIC.search(text))


def install_actual_text() -> None:
    """Make WeasyPrint draw Indic text inside ActualText spans (idempotent)."""
    global _installed
    with _lock:
        if _installed:
            return
        draw_text = weasyprint.draw.draw_text

        def draw_text_with_actual_text(stream: Any, textbox: Any, *args: Any, **kwargs: Any) -> Any:
            text = textbox.text
            if not needs_actual_text(text):
                return draw_text(stream, textbox, *args, **kwargs)
            stream.begin_marked_content(
                "Span", pydyf.Dictionary({"ActualText": pydyf.String(text)})
            )
            try:
                return draw_text(stream, textbox, *args, **kwargs)
            finally:
                stream.end_marked_content()

        draw_text_with_actual_text.wrapped = draw_text  # type: ignore[attr-defined]
        weasyprint.draw.draw_text = draw_text_with_actual_text
        _installed = True
