"""The drawing primitive every synthetic document is made with: a pen on pymupdf pages.

In: a ``SynthDoc`` (an open pymupdf document and its list of facts), a page size in PDF
points, a regular and a bold ``FontFace``, and a style (margin, ink, body size, line
gap). Out: text drawn left, right or centred at a baseline, lines that move the cursor
down and start a new page when one is full, word-wrapped paragraphs, and ``Fact``s
recording what was printed on which page. Nothing here is random: the training layouts
draw a random style, the samples fix theirs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tpdoc.synth.fonts import FontFace

LINE_GAP = 1.45  # baseline distance in font sizes
Color = tuple[float, float, float]


@dataclass
class Fact:
    key: str  # e.g. "total", "invoice_number", "item_price:Cable kit"
    value: str  # exactly as printed
    page: int  # 1-based
    label: str = ""


@dataclass
class SynthDoc:
    kind: str
    doc: Any  # pymupdf.Document
    facts: list[Fact] = field(default_factory=list)
    lang: str = "en"
    split: str = "train"  # "eval" documents may use layouts training never sees

    def fact(self, key: str) -> Fact | None:
        return next((f for f in self.facts if f.key == key), None)


class Pen:
    """Writes text on the current page, tracking the cursor and the page number.

    ``margin``, ``ink`` and ``body`` (the default font size) may be changed while
    drawing; ``y`` is the baseline of the last line written (the top margin at first).
    """

    def __init__(
        self,
        synth: SynthDoc,
        size: tuple[float, float],
        faces: tuple[FontFace, FontFace],
        *,
        margin: float,
        ink: Color,
        body: float,
        line_gap: float = LINE_GAP,
    ) -> None:
        self.s, self.size = synth, size
        self.regular, self.bold = faces
        self.margin, self.ink, self.body, self.line_gap = margin, ink, body, line_gap
        self.page: Any = None
        self.page_no = 0
        self._names: dict[FontFace, str] = {}
        self.new_page()

    @property
    def width(self) -> float:
        return self.size[0] - 2 * self.margin

    def new_page(self) -> None:
        self.page = self.s.doc.new_page(width=self.size[0], height=self.size[1])
        self.page_no += 1
        self._names = {}
        self.y = self.margin

    def turn_to(self, page_no: int) -> None:
        """Draw on an earlier page (1-based), e.g. running footers once the count is known."""
        self.page = self.s.doc[page_no - 1]
        self.page_no = page_no
        self._names = {}

    def ensure(self, height: float) -> None:
        if self.y + height > self.size[1] - self.margin:
            self.new_page()

    def face(self, bold: bool = False) -> FontFace:
        return self.bold if bold else self.regular

    def _name(self, face: FontFace) -> str:
        if face not in self._names:
            self._names[face] = face.insert(self.page)
        return self._names[face]

    def text(self, x: float, y: float, text: str, size: float, bold: bool = False,
             align: str = "left", color: Color | None = None,
             face: FontFace | None = None) -> float:  # fmt: skip
        """Draw at baseline ``y``; ``x`` is the left, right or centre edge; ``face``
        overrides the pen's regular or bold one. Returns the width drawn."""
        face = face or self.face(bold)
        width = face.text_length(text, size)
        if align == "right":
            x -= width
        elif align == "center":
            x -= width / 2
        self.page.insert_text(
            (x, y), text, fontname=self._name(face), fontsize=size, color=color or self.ink
        )
        return width

    def line(self, text: str, size: float | None = None, bold: bool = False, x: float | None = None,
             align: str = "left", color: Color | None = None,
             face: FontFace | None = None) -> None:  # fmt: skip
        """The next line: one line gap down (on a new page if this one is full)."""
        size = size or self.body
        self.ensure(size * self.line_gap)
        self.y += size * self.line_gap
        left = self.margin if x is None else x
        if align == "right":
            left = self.size[0] - self.margin
        elif align == "center":
            left = self.size[0] / 2
        self.text(left, self.y, text, size, bold, align, color, face)

    def paragraph(self, text: str, size: float | None = None,
                  face: FontFace | None = None) -> None:  # fmt: skip
        """``text`` wrapped at word boundaries to the width between the margins."""
        size = size or self.body
        measure = face or self.face()
        line = ""
        for word in text.split():
            trial = f"{line} {word}".strip()
            if line and measure.text_length(trial, size) > self.width:
                self.line(line, size, face=face)
                line = word
            else:
                line = trial
        if line:
            self.line(line, size, face=face)

    def gap(self, points: float) -> None:
        self.y += points

    def record(self, key: str, value: str, label: str = "") -> None:
        self.s.facts.append(Fact(key, value, self.page_no, label))
