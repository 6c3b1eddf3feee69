"""The report pictures in docs/ come from the real renderer (nidaan report-sample)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image, ImageChops

from nidaan.reports.pictures import PICTURE_WIDTH, write_sample_pictures
from tests.reports.pdf_text import pdftotext, words

DOCS = Path(__file__).resolve().parents[2] / "docs"


@pytest.fixture(scope="module")
def pictures(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, ...]]:
    out = tmp_path_factory.mktemp("pictures")
    return {p.language: (p.pdf, *p.pngs) for p in write_sample_pictures(out)}


def test_the_command_writes_each_pdf_and_its_first_and_last_page(
    pictures: dict[str, tuple[Path, ...]],
) -> None:
    for language in ("en", "hi"):
        pdf, first, last = pictures[language]
        assert pdf.read_bytes().startswith(b"%PDF")
        assert (first.name, last.name) == (
            f"report-{language}-page1.png",
            f"report-{language}-last-page.png",
        )
        for png in (first, last):
            with Image.open(png) as image:
                width, height = image.size
            assert width == PICTURE_WIDTH
            assert abs(height / width - 297 / 210) < 0.01  # A4


def test_what_the_pictures_show_is_in_the_pdf_text(pictures: dict[str, tuple[Path, ...]]) -> None:
    data = pictures["en"][0].read_bytes()
    # Table cells wrap in layout mode and interleave in reading order: accept either form.
    layout = [words(p) for p in pdftotext(data, layout=True)]
    reading = [words(p) for p in pdftotext(data)]
    first = layout[0] + " | " + reading[0]
    last = layout[-1] + " | " + reading[-1]
    for element in (
        "FINAL REPORT · Version 1",
        "NABL accredited medical laboratory",
        "Collected at: Jayanagar collection centre",
        "Tested at: Sanjeevani central laboratory",
        "Condition at receipt",
        "Lipaemic",
        "10³/µL",
        "mL/min/1.73 m²",
        "Method: Impedance",
        "MRN-00012345",
    ):
        assert element in first, element
    for element in (
        "ESR *",
        "Referred test, performed at Metropolis Healthcare",
        "* Not in NABL scope",
        "Reg. No. KMC 45812",
        "Reg. No. KMC 51230",
        "FINAL REPORT · Version 1",
    ):
        assert element in last, element
    hindi = [words(p) for p in pdftotext(pictures["hi"][0].read_bytes(), layout=True)]
    assert "अंतिम रिपोर्ट (FINAL) · संस्करण 1" in hindi[0]
    assert "प्रयोगशाला परीक्षण रिपोर्ट" in hindi[0]


@pytest.mark.parametrize(
    "name",
    [
        "report-en-page1.png",
        "report-hi-page1.png",
        "report-en-last-page.png",
        "report-hi-last-page.png",
    ],
)
def test_the_docs_pictures_are_what_the_renderer_makes_today(
    pictures: dict[str, tuple[Path, ...]], name: str
) -> None:
    """Regenerate with: nidaan report-sample --out docs"""
    fresh = next(p for paths in pictures.values() for p in paths if p.name == name)
    with Image.open(DOCS / name) as committed, Image.open(fresh) as made:
        assert committed.size == made.size
        difference = ImageChops.difference(committed.convert("L"), made.convert("L"))
        changed = difference.point(lambda value: 255 if value > 48 else 0).histogram()[255]
    assert changed / (made.size[0] * made.size[1]) < 0.005, f"{name}: run nidaan report-sample"


def test_png_rendering_is_of_the_requested_page() -> None:
    from nidaan.reports.pictures import render_page_png
    from nidaan.reports.render import render_pdf
    from nidaan.reports.sample import sample_document

    data = render_pdf(sample_document("en")).data
    first = render_page_png(data, 0, width=200)
    last = render_page_png(data, -1, width=200)
    with Image.open(io.BytesIO(first)) as a, Image.open(io.BytesIO(last)) as b:
        assert a.size[0] == b.size[0] == 200
        assert ImageChops.difference(a.convert("L"), b.convert("L")).getbbox() is not None
