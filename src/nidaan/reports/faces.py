"""The font files our PDFs embed: the variable Noto TTFs of the ``fontpkg-noto-sans*`` wheels,
and static instances of them at the two weights reports use, shipped in ``reports/fonts/``.

Why static instances: WeasyPrint turns every variable font it embeds into a static one with
fontTools' instancer (pure Python, ``pdf/fonts.py: Font.clean``), and it does so on every
render, for every face and weight used: measured, that was a third of a report's render
time. A static font has no ``fvar`` table, so WeasyPrint only subsets it (HarfBuzz, C), and
the instancing is done once, here, when the fonts are upgraded:

    .venv/bin/python -m nidaan.reports.faces

which writes ``fonts/*.ttf`` and ``fonts/manifest.json`` (each instance's source file and
its SHA-256; ``tests/reports/test_faces.py`` fails when an installed fontpkg file no longer
matches). Instancing keeps the outlines, metrics and OpenType layout (GSUB/GPOS) of that
weight, so HarfBuzz shapes Devanagari conjuncts exactly as it does with the variable font.
The fonts are under the SIL Open Font License (``fonts/OFL-*.txt``, copied from each wheel).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from dataclasses import dataclass
from functools import lru_cache
from importlib import import_module
from pathlib import Path

#: (CSS family name, fontpkg module) of every face the templates use.
FONT_PACKAGES = (
    ("Noto Sans", "fontpkg_noto_sans"),
    ("Noto Sans Devanagari", "fontpkg_noto_sans_devanagari"),
    ("Noto Sans Tamil", "fontpkg_noto_sans_tamil"),
    ("Noto Sans Telugu", "fontpkg_noto_sans_telugu"),
)

#: The weights the templates use (normal and bold).
WEIGHTS = (400, 700)

FONTS_DIR = Path(__file__).parent / "fonts"
MANIFEST = FONTS_DIR / "manifest.json"


class FontsMissingError(RuntimeError):
    """A font package is not installed; a report without it would print boxes for Hindi."""


@dataclass(frozen=True)
class FontFace:
    family: str
    path: Path
    style: str  # "normal" | "italic"
    #: The weight of a static instance; None for a variable font (any weight).
    weight: int | None = None

    @property
    def uri(self) -> str:
        # as_uri() percent-encodes the "[wdth,wght]" of variable font file names.
        return self.path.as_uri()


@lru_cache(maxsize=1)
def font_faces() -> tuple[FontFace, ...]:
    """The variable TTF files of the fontpkg packages, found through the installed modules."""
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


@lru_cache(maxsize=1)
def static_font_faces() -> tuple[FontFace, ...]:
    """The shipped static instances, one per family, style and weight (see the manifest)."""
    try:
        entries = json.loads(MANIFEST.read_text())["instances"]
    except FileNotFoundError as exc:
        raise FontsMissingError(
            f"{MANIFEST} is missing: run python -m nidaan.reports.faces"
        ) from exc
    faces = tuple(
        FontFace(
            family=entry["family"],
            path=(FONTS_DIR / entry["file"]).resolve(),
            style=entry["style"],
            weight=entry["weight"],
        )
        for entry in entries
    )
    missing = [face.path.name for face in faces if not face.path.is_file()]
    if missing:
        raise FontsMissingError(f"Static font files missing: {', '.join(missing)}")
    return faces


def instance_file_name(variable: FontFace, weight: int) -> str:
    """``NotoSans-Italic[wdth,wght].ttf`` at 700 -> ``NotoSans-Italic-700.ttf``."""
    return f"{variable.path.name.split('[')[0]}-{weight}.ttf"


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def manifest_entries(faces: tuple[FontFace, ...]) -> list[dict[str, object]]:
    """What the manifest records for the installed variable fonts (and what tests compare)."""
    return [
        {
            "file": instance_file_name(face, weight),
            "family": face.family,
            "style": face.style,
            "weight": weight,
            "source": face.path.name,
            "source_sha256": sha256_of(face.path),
        }
        for face in faces
        for weight in WEIGHTS
    ]


def build_static_fonts(out: Path = FONTS_DIR) -> list[Path]:
    """Instance every variable face at every weight into ``out`` (minutes: fontTools is slow,
    which is the point of doing it here rather than at every render)."""
    from fontTools.ttLib import TTFont
    from fontTools.varLib.instancer import instantiateVariableFont

    out.mkdir(parents=True, exist_ok=True)
    faces = font_faces()
    entries = manifest_entries(faces)
    written: list[Path] = []
    for face in faces:
        for weight in WEIGHTS:
            variable = TTFont(face.path)
            # Width at its default (100, normal): the templates never stretch type.
            static = instantiateVariableFont(variable, {"wght": weight}, static=True)
            # Keep the source's head.modified: the same sources give the same bytes.
            static.recalcTimestamp = False
            path = out / instance_file_name(face, weight)
            static.save(path, reorderTables=True)
            written.append(path)
            print(f"{path.name}: {path.stat().st_size:,} bytes", file=sys.stderr)
    for _family, module_name in FONT_PACKAGES:
        package = Path(import_module(module_name).__file__).parent
        shutil.copyfile(package / "LICENSE", out / f"OFL-{module_name}.txt")
    (out / "manifest.json").write_text(json.dumps({"instances": entries}, indent=2) + "\n")
    return written


if __name__ == "__main__":
    build_static_fonts(Path(sys.argv[1]) if len(sys.argv) > 1 else FONTS_DIR)
