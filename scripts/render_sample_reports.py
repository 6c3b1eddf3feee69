"""Render the sample report in each language to docs/report-<lang>-page1.png (and the PDF's
text layer to docs/report-<lang>-page1.txt), from the real renderer.

Usage: .venv/bin/python scripts/render_sample_reports.py [lang ...]   (needs pdftoppm, pdftotext)
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from nidaan.reports.domain import LANGUAGES
from nidaan.reports.render import render_pdf
from nidaan.reports.sample import sample_document

DOCS = Path(__file__).resolve().parents[1] / "docs"


def render(language: str) -> Path:
    rendered = render_pdf(sample_document(language))
    with tempfile.TemporaryDirectory() as work:
        pdf = Path(work) / "report.pdf"
        pdf.write_bytes(rendered.data)
        stem = DOCS / f"report-{language}-page1"
        page1 = ["-f", "1", "-l", "1"]
        subprocess.run(  # noqa: S603
            ["pdftoppm", "-png", "-r", "110", *page1, "-singlefile", str(pdf), str(stem)],  # noqa: S607
            check=True,
        )
        subprocess.run(  # noqa: S603
            ["pdftotext", *page1, "-layout", str(pdf), f"{stem}.txt"],  # noqa: S607
            check=True,
        )
    return stem.with_suffix(".png")


if __name__ == "__main__":
    for language in sys.argv[1:] or [lang for lang in LANGUAGES if lang not in ("en", "hi")]:
        print(render(language))
