"""The report's running header is laid out once per render, not once per page.

The header (lab, QR code, patient table) is a running element shown in ``@top-center`` on
every page. WeasyPrint builds that margin box afresh for each page, from a copy of the
running element, and lays it out again: ~23 % of a 3-page report's render time, for a
result that is the same on every page that shows the same element in the same box.

``install_margin_box_reuse`` wraps WeasyPrint's ``margin_box_content_layout`` so that,
within one render (the cache lives on WeasyPrint's per-render ``LayoutContext``), a margin
box whose content is only ``element()`` is laid out once and the laid-out box is reused on
the later pages where it would come out the same:

- the same running element boxes (the ones ``element()`` resolves to for that page: a
  page of the ``outside`` type shows another header, and a new header assigned on a later
  page is another box);
- the same margin box (``@top-center``), page name and geometry (position and size);
- no generated content (counters) inside the element, which differs from page to page.

The page's other margin boxes (the footer with "Page n of m") are laid out as before.
Drawing only reads the laid-out boxes, so a page that shares the header box draws
exactly what its own copy would have drawn: the PDF is byte-for-byte the same
(``tests/reports/test_running_header.py`` renders with and without the reuse).

Reuse is on only while a report is rendered (``reusing_margin_boxes``), whose stylesheet
gives margin boxes no style by page side, position or ``:nth()``; other documents (invoices,
QC summaries) are laid out exactly as WeasyPrint does.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import weasyprint.layout.page as weasyprint_page

_lock = threading.Lock()
_installed = False
_active = threading.local()


@contextmanager
def reusing_margin_boxes() -> Iterator[None]:
    """Within this block (in this thread), repeated running headers are laid out once."""
    install_margin_box_reuse()
    _active.on = True
    try:
        yield
    finally:
        _active.on = False


def _running_sources(context: Any, page: Any, box: Any) -> tuple[Any, ...] | None:
    """The running element boxes a margin box shows, or None if it shows anything else."""
    content = box.style["content"]
    if not isinstance(content, tuple) or not content:
        return None
    if any(kind != "element()" for kind, _ in content):
        return None
    sources = tuple(
        source for _, value in content for source in context.get_running_element_for(page, *value)
    )
    for source in sources:
        # Generated content (counter(page), ...) is regenerated for every page.
        if any(child.style["content"] not in ("normal", "none") for child in source.descendants()):
            return None
    return sources


def install_margin_box_reuse() -> None:
    """Wrap WeasyPrint's margin box layout once per process (idempotent)."""
    global _installed
    with _lock:
        if _installed:
            return
        layout = weasyprint_page.margin_box_content_layout

        def margin_box_content_layout(context: Any, page: Any, box: Any) -> Any:
            if not getattr(_active, "on", False):
                return layout(context, page, box)
            sources = _running_sources(context, page, box)
            if not sources:
                return layout(context, page, box)
            key = (
                box.at_keyword,
                page.page_type.name,
                tuple(id(source) for source in sources),
                box.position_x,
                box.position_y,
                box.width,
                box.height,
            )
            done: dict[tuple[Any, ...], tuple[Any, tuple[Any, ...]]]
            done = context.__dict__.setdefault("_nidaan_margin_boxes", {})
            if key in done:
                return done[key][0]
            laid_out = layout(context, page, box)
            # The sources are kept with the box so that their ids stay theirs.
            done[key] = (laid_out, sources)
            return laid_out

        margin_box_content_layout.wrapped = layout  # type: ignore[attr-defined]
        weasyprint_page.margin_box_content_layout = margin_box_content_layout
        _installed = True
