"""The static font instances shipped in reports/fonts/ are those of the installed fontpkg
variable fonts (regenerate with: python -m nidaan.reports.faces), and a report shaped with
them draws the very glyphs the variable fonts gave, bold text now at its own advances."""

from __future__ import annotations

import fnmatch
import io
import json
import re
import tomllib
from pathlib import Path

import pypdfium2
import pytest
from fontTools.ttLib import TTFont
from pypdf import PdfReader
from pypdf.generic import ContentStream

from nidaan.reports.faces import (
    MANIFEST,
    WEIGHTS,
    FontFace,
    font_faces,
    instance_file_name,
    manifest_entries,
    static_font_faces,
)
from nidaan.reports.render import TEMPLATES, html_to_pdf, render_html, render_pdf
from nidaan.reports.sample import sample_document


def test_the_manifest_matches_the_installed_variable_fonts() -> None:
    """Fails after a fontpkg upgrade until the instances are made again from the new files."""
    recorded = json.loads(MANIFEST.read_text())["instances"]
    assert recorded == manifest_entries(font_faces()), "run: python -m nidaan.reports.faces"


def test_one_static_face_per_family_style_and_weight() -> None:
    faces = static_font_faces()
    keys = [(face.family, face.style, face.weight) for face in faces]
    assert len(keys) == len(set(keys)) == len(font_faces()) * len(WEIGHTS)
    assert {face.weight for face in faces} == set(WEIGHTS)
    assert ("Noto Sans", "italic", 400) in keys
    assert all(face.path.is_file() and face.path.suffix == ".ttf" for face in faces)


@pytest.mark.parametrize("weight", WEIGHTS)
@pytest.mark.parametrize("variable", font_faces(), ids=lambda face: face.path.name)
def test_each_instance_is_static_at_its_weight_with_the_sources_characters(
    variable: FontFace, weight: int
) -> None:
    path = next(
        f.path for f in static_font_faces() if f.path.name == instance_file_name(variable, weight)
    )
    static = TTFont(path, lazy=True)
    source = TTFont(variable.path, lazy=True)
    # No variation tables left: WeasyPrint has nothing to instance at render time.
    assert not {"fvar", "gvar", "cvar", "HVAR", "MVAR", "avar"} & set(static.keys())
    assert static["OS/2"].usWeightClass == weight
    assert static.getBestCmap() == source.getBestCmap()
    assert static["head"].fontRevision == source["head"].fontRevision
    # Shaping rules survive (conjuncts, matra reordering, mark positioning).
    assert {"GSUB", "GPOS"} <= set(static.keys())


def _glyph_runs(data: bytes) -> dict[str, str]:
    """Per embedded font (subset tag dropped), the glyph ids it draws, in drawing order."""
    reader = PdfReader(io.BytesIO(data))
    runs: dict[str, list[str]] = {}
    for page in reader.pages:
        fonts = page["/Resources"]["/Font"]
        names = {
            key: re.sub(r"^/[A-Z]{6}\+", "", str(font.get_object()["/BaseFont"]))
            for key, font in fonts.items()
        }
        font = ""
        for operands, operator in ContentStream(page.get_contents(), reader).operations:
            if operator == b"Tf":
                font = names[operands[0]]
            elif operator == b"TJ":
                strings = [item for item in operands[0] if hasattr(item, "original_bytes")]
                runs.setdefault(font, []).extend(item.original_bytes.hex() for item in strings)
    return {font: "".join(glyphs) for font, glyphs in runs.items()}


def _with_variable_fonts(html: str) -> str:
    """The report's HTML styled as before the static instances: the variable fonts and
    report.css in the document itself (before the report's own <style>, which wins)."""
    rules = "\n".join(
        f'@font-face {{ font-family: "{face.family}"; src: url("{face.uri}"); '
        f"font-style: {face.style}; font-weight: {weight}; }}"
        for face in font_faces()
        for weight in WEIGHTS
    )
    css = (TEMPLATES / "report.css").read_text()
    return html.replace("<head>", f"<head><style>{rules}\n{css}</style>", 1)


@pytest.mark.parametrize("language", ["hi", "en"])
def test_static_instances_shape_exactly_as_the_variable_fonts(language: str) -> None:
    """Same glyphs, same order, per font: the conjuncts, reordered matras and reph of the
    Hindi report are what HarfBuzz made of the variable Devanagari font."""
    document = sample_document(language)
    static = _glyph_runs(render_pdf(document).data)
    variable = _glyph_runs(html_to_pdf(_with_variable_fonts(render_html(document))).data)
    assert static == variable
    devanagari = sum(len(g) // 4 for font, g in static.items() if "Devanagari" in font)
    assert devanagari > (1000 if language == "hi" else -1)


def test_bold_text_is_spaced_with_the_bold_advances() -> None:
    """The variable fonts were shaped at their default weight (400) and drawn at 700, so
    bold text came out cramped; a static bold instance is shaped and drawn as itself."""
    data = render_pdf(sample_document("en")).data
    pdf = pypdfium2.PdfDocument(data)
    try:
        text_page = pdf[0].get_textpage()
        text = text_page.get_text_range()
        name = "Sunita Sharma"  # 10pt bold in the patient box
        start = text.index(name)
        first, last = text_page.get_charbox(start), text_page.get_charbox(start + len(name) - 1)
        drawn = last[2] - first[0]
    finally:
        pdf.close()
    bold = TTFont(
        next(
            f.path
            for f in static_font_faces()
            if (f.family, f.style, f.weight) == ("Noto Sans", "normal", 700)
        )
    )
    cmap, metrics = bold.getBestCmap(), bold["hmtx"]
    advances = sum(metrics[cmap[ord(c)]][0] for c in name) * 10 / bold["head"].unitsPerEm
    # First ink to last ink is the advances less two side bearings (1.6 % here); shaped at
    # the regular advances it was 6.6 % short.
    assert abs(drawn - advances) < 0.03 * advances, (drawn, advances)


def test_the_static_fonts_are_package_data() -> None:
    """A non-editable install (the Docker image) must carry them, or no report renders."""
    root = Path(__file__).resolve().parents[2]
    patterns = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"
    ]["nidaan"]
    package = root / "src" / "nidaan"
    for path in [MANIFEST, *(face.path for face in static_font_faces())]:
        relative = path.relative_to(package).as_posix()
        assert any(fnmatch.fnmatchcase(relative, pattern) for pattern in patterns), relative
