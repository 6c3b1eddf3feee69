"""Text of a PDF as people get it: pdftotext (poppler), which honours ActualText spans."""

from __future__ import annotations

import shutil
import subprocess

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
