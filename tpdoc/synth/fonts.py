"""The fonts synthetic documents are printed in, split into training and held-out sets.

In: whatever this machine offers: pymupdf's Base-14 fonts (always), the ``pymupdf-fonts``
package and TrueType files of Debian font packages (when installed). Out: ``FontFace``s
that can be inserted into a pymupdf page, grouped by family, with whole families kept out
of training so evaluation measures reading in typefaces the model never saw, and a
seeded choice of a regular and a bold face of one family (``choose_faces``).
"""

from __future__ import annotations

import random
import zlib
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

# Base-14 codes by family: always present.
BASE14 = {
    "Helvetica": ("helv", "hebo", "heit", "hebi"),
    "Times": ("tiro", "tibo", "tiit", "tibi"),
    "Courier": ("cour", "cobo", "coit", "cobi"),
}
# pymupdf-fonts codes by family (optional package).
PYMUPDF_FONTS = {
    "FiraGO": ("figo", "figbo", "figit", "figbi"),
    "FiraMono": ("fimo", "fimbo"),
    "NotoSans": ("notos", "notosbo", "notosit", "notosbi"),
    "SpaceMono": ("spacemo", "spacembo", "spacemit", "spacembi"),
    "Ubuntu": ("ubuntu", "ubuntubo", "ubuntuit", "ubuntubi"),
    "UbuntuMono": ("ubuntm", "ubuntmbo", "ubuntmit", "ubuntmbi"),
    "Cascadia": ("cascadia", "cascadiab", "cascadiai", "cascadiabi"),
}
FONT_DIRS = (Path("/usr/share/fonts/truetype"), Path("/usr/share/fonts/opentype"))
# Whole families never used for training: evaluation reads typefaces never seen.
HELD_OUT_FAMILIES = frozenset({"Ubuntu", "UbuntuMono", "DejaVuSerifCondensed", "LiberationSerif"})
# The held-out families evaluation prints in: the ones pymupdf-fonts ships, so held-out
# pages are the same on every machine whatever Debian fonts it has (with the others, a
# measure moved by five points between two machines with the same weights).
EVAL_FAMILIES = frozenset({"Ubuntu", "UbuntuMono"})
MONO_HINTS = ("Mono", "Courier", "Cascadia")
LATIN1_END = 256


@dataclass(frozen=True)
class FontFace:
    """One face: ``code`` is a Base-14 name, a pymupdf-fonts code, or a file path."""

    family: str
    code: str
    path: str | None = None

    @property
    def monospace(self) -> bool:
        return any(h in self.family for h in MONO_HINTS)

    def alias(self) -> str:
        """A short, PDF-safe resource name for this face."""
        return "F" + format(zlib.crc32(f"{self.family}/{self.code}".encode()), "08x")

    def insert(self, page: Any) -> str:
        """Make the face available on ``page``; returns the name for ``insert_text``."""
        if self.path is None and self.code in _BASE14_CODES:
            return self.code
        name = self.alias()
        if self.path is not None:
            page.insert_font(fontname=name, fontfile=self.path)
        else:
            page.insert_font(fontname=name, fontbuffer=_font(self.code).buffer)
        return name

    def text_length(self, text: str, size: float) -> float:
        return _font(self.path or self.code).text_length(text, fontsize=size)

    def has_glyphs(self, text: str) -> bool:
        """Whether every character of ``text`` prints in this face as itself."""
        if self.path is None and self.code in _BASE14_CODES:
            # pymupdf writes Base-14 text in a single-byte encoding: beyond Latin-1 (the
            # euro sign included) a character prints as a bullet, whatever the font has.
            return all(ord(c) < LATIN1_END for c in text)
        font = _font(self.path or self.code)
        return all(font.has_glyph(ord(c)) for c in text if not c.isspace())


_BASE14_CODES = frozenset(c for codes in BASE14.values() for c in codes)


@cache
def _font(code_or_path: str) -> Any:
    import pymupdf

    if "/" in code_or_path:
        return pymupdf.Font(fontfile=code_or_path)
    return pymupdf.Font(code_or_path)


@cache
def available_faces() -> tuple[FontFace, ...]:
    """Every face this machine offers, Base-14 first."""
    faces = [FontFace(fam, code) for fam, codes in BASE14.items() for code in codes]
    try:
        import pymupdf_fonts  # noqa: F401

        faces += [FontFace(fam, code) for fam, codes in PYMUPDF_FONTS.items() for code in codes]
    except ImportError:
        pass
    for root in FONT_DIRS:
        if root.is_dir():
            for path in sorted(root.rglob("*.ttf")):
                family = _family_of(path)
                if family and "Math" not in family:
                    faces.append(FontFace(family, path.stem, str(path)))
    return tuple(faces)


def _family_of(path: Path) -> str:
    stem = path.stem
    for sep in ("-",):
        stem = stem.split(sep)[0]
    return stem


def faces_for(split: str) -> tuple[FontFace, ...]:
    """``train``: families outside ``HELD_OUT_FAMILIES``; ``eval``: ``EVAL_FAMILIES``
    (falling back to Base-14 obliques without pymupdf-fonts)."""
    faces = available_faces()
    if split == "train":
        return tuple(f for f in faces if f.family not in HELD_OUT_FAMILIES)
    held = tuple(f for f in faces if f.family in EVAL_FAMILIES)
    return held or tuple(f for f in faces if f.code in ("heit", "tiit", "coit"))


def choose_faces(rng: random.Random, split: str, text_sample: str) -> tuple[FontFace, FontFace]:
    """A regular and a bold face of one family that can print ``text_sample``."""
    faces = faces_for(split)
    for _ in range(20):
        family = rng.choice(sorted({f.family for f in faces}))
        members = [f for f in faces if f.family == family]
        upright = [f for f in members if not _is_bold(f) and not _is_italic(f)]
        regular = min(upright or members, key=lambda f: len(f.code))
        bold = next((f for f in members if _is_bold(f)), regular)
        if regular.has_glyphs(text_sample) and bold.has_glyphs(text_sample):
            return regular, bold
    base = [f for f in faces_for("train") if f.code in ("helv", "hebo")]
    return base[0], base[-1]


def _is_bold(face: FontFace) -> bool:
    code = face.code.lower()
    return ("bold" in code or code.endswith(("bo", "b")) or "-b" in code) and not _is_italic(face)


def _is_italic(face: FontFace) -> bool:
    code = face.code.lower()
    return any(k in code for k in ("italic", "oblique", "it", "bi")) or code in ("coit", "heit")
