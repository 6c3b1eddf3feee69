"""Text of a PDF as people get it: pdftotext (poppler), which honours ActualText spans."""

from __future__ import annotations

import shutil
import subprocess
import unicodedata

import pytest

PDFTOTEXT = shutil.which("pdftotext")


def pdftotext(data: bytes, *, layout: bool = False) -> list[str]:
    """One string per page (``make test`` installs poppler-utils; skip without it)."""
    if PDFTOTEXT is None:
        pytest.skip("pdftotext (poppler-utils) is not installed; make system-deps adds it")
    args = [PDFTOTEXT, "-enc", "UTF-8", *(["-layout"] if layout else []), "-", "-"]
    out = subprocess.run(args, input=data, capture_output=True, check=True).stdout
    return out.decode().split("\f")[:-1]


def words(text: str) -> str:
    """Whitespace collapsed to single spaces (line wrapping is layout, not text)."""
    return " ".join(text.split())


def skeleton(text: str) -> str:
    """Text without combining marks (vowel signs, virama, nukta).

    A PDF's text layer maps glyphs back to characters; for Indic scripts, where a vowel sign
    may be drawn before its consonant or fused into a conjunct, extractors return the signs
    out of order ("रिोगी" for "रोगी"). Consonants and independent vowels come back in order,
    so labels are compared on those.
    """
    return "".join(ch for ch in text if unicodedata.category(ch) not in {"Mn", "Mc"})
