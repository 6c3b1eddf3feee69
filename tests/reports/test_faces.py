"""The static font instances shipped in reports/fonts/ are those of the installed fontpkg
variable fonts (regenerate with: python -m nidaan.reports.faces)."""

from __future__ import annotations

import json

import pytest
from fontTools.ttLib import TTFont

from nidaan.reports.faces import (
    MANIFEST,
    WEIGHTS,
    FontFace,
    font_faces,
    instance_file_name,
    manifest_entries,
    static_font_faces,
)


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
