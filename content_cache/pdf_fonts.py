"""Which fonts a PDF uses without embedding them (a publisher-side check).

A task sheet whose Chinese font is not embedded draws its Chinese only on a device
that has poppler-data and a CJK font; on anything else (a tablet's PDF viewer, an
older device) the Chinese is missing. The publisher warns about such a PDF. Parsing
uses pypdf (well kept, pure Python), never our own PDF reader.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from pypdf import PdfReader
from pypdf.errors import PyPdfError

# The 14 standard Latin fonts every PDF reader has: not embedding them is fine.
STANDARD_14 = {"Courier", "Courier-Bold", "Courier-Oblique", "Courier-BoldOblique",
               "Helvetica", "Helvetica-Bold", "Helvetica-Oblique", "Helvetica-BoldOblique",
               "Times-Roman", "Times-Bold", "Times-Italic", "Times-BoldItalic", "Symbol",
               "ZapfDingbats"}
_EMBEDDED_KEYS = ("/FontFile", "/FontFile2", "/FontFile3")


def fonts_not_embedded(path: Path) -> list[str] | None:
    """The names of the non-standard fonts ``path`` uses but does not embed, sorted;
    None when the file cannot be read as a PDF (the caller says so)."""
    logging.getLogger("pypdf").setLevel(logging.ERROR)  # a broken file is reported once
    try:
        reader = PdfReader(str(path))
        missing: set[str] = set()
        for page in reader.pages:
            resources = page.get("/Resources")
            fonts = resources.get_object().get("/Font") if resources else None
            for ref in (fonts.get_object().values() if fonts else ()):
                name, embedded = _font_state(ref.get_object())
                if not embedded and name not in STANDARD_14:
                    missing.add(name)
        return sorted(missing)
    except (PyPdfError, OSError, ValueError, KeyError, TypeError, AttributeError,
            RecursionError):
        return None


def _font_state(font: Any) -> tuple[str, bool]:
    """A font dictionary's base name and whether its glyphs travel in the file."""
    name = str(font.get("/BaseFont", "?")).lstrip("/")
    if font.get("/Subtype") == "/Type3":  # glyphs drawn by the PDF itself
        return name, True
    descriptor = font.get("/FontDescriptor")
    if font.get("/Subtype") == "/Type0":
        descendants = font.get("/DescendantFonts")
        if descendants:
            descriptor = descendants.get_object()[0].get_object().get("/FontDescriptor")
    if descriptor is None:
        return name, False
    d = descriptor.get_object()
    return name, any(k in d for k in _EMBEDDED_KEYS)
