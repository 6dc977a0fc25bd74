"""Training samples for the whole model: a page, questions about it, and a tile to read.

In: a ``random.Random``, the model's ``TilingConfig`` and a font split. Out: ``PageSample``s
built exactly as tpdoc builds inputs at answer time (the page planned by the tiler, PDF
pages rasterised at the planned size, images resized by the tiler), plus the supervision:
questions with their printed answers, glyph labels for every tile, the text of every
tile in reading order (transcription teaches the language model to read the visual
tokens), every tile's lines with their boxes and each character's centre (for line
crops and guided attention), and the questions that one tile answers on its own (its
label and value both lie in it: short sequences that teach the question-to-label-to-value
lookup before whole pages).
Answer and character positions come from the PDF's text layer, at training time only.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from tpdoc.documents.pages import PLAN_DPI
from tpdoc.documents.pdf import PDF_POINTS_PER_INCH
from tpdoc.documents.pdf import rasterise_pdf_page as rasterise
from tpdoc.documents.tiling import TilePlan, TilingConfig, plan_page, tile_pixels
from tpdoc.synth.layouts import make_document
from tpdoc.synth.questions import questions_for
from tpdoc.synth.render import Glyph, degrade, glyphs
from tpdoc.train.glyphs import GlyphGrid, label_crop

READ_QUESTION = "Read the text."
OTHER_DPI_RATE = 0.3  # pages planned at another resolution, as images or --dpi give them
OTHER_DPI = (100.0, 220.0)
RESIZE_RATE = 0.3  # pages tiled from pixels (like image inputs) instead of rendered at fit
DEGRADE_RATE = 0.35
SPACE_GAP = 0.15  # gap / glyph box height above which a space is read (0.28 dropped many)
MAX_READ_CHARS = 240


@dataclass(frozen=True)
class TextLine:
    box: tuple[float, float, float, float]  # x0, y0, x1, y1 in tile pixels
    text: str
    centres: tuple[tuple[float, float] | None, ...] = ()  # per character of text, tile pixels


def joined(lines: list[TextLine], limit: int | None = None) -> TextLine:
    """Lines as one text (newlines between them) with their characters' centres."""
    if not lines:  # a tile without print (a single-tile question may name one)
        return TextLine((0.0, 0.0, 0.0, 0.0), "")
    text = "\n".join(line.text for line in lines)
    centres: list[tuple[float, float] | None] = []
    for i, line in enumerate(lines):
        centres += [None] * (i > 0) + list(line.centres)
    box = (
        min(line.box[0] for line in lines),
        min(line.box[1] for line in lines),
        max(line.box[2] for line in lines),
        max(line.box[3] for line in lines),
    )
    return TextLine(box, text[:limit], tuple(centres[:limit]))


@dataclass
class PageSample:
    views: torch.Tensor  # [V, 3, T, T]
    plan: TilePlan
    glyph_labels: torch.Tensor  # [rows*cols, G*G, sub-cells]
    qa: list[tuple[str, str]]
    read_tile: int
    read_text: str
    tile_texts: list[tuple[int, str]]  # (tile index, its text) for every tile with text
    tile_qa: list[tuple[int, str, str]]  # (tile index, question, answer)
    lines: list[list[TextLine]]  # every tile's lines, top to bottom


def text_lines(found: list[Glyph]) -> list[list[Glyph]]:
    """Characters grouped into lines (by centre height), each ordered left to right."""
    lines: list[list[Glyph]] = []
    for g in sorted(found, key=lambda g: g.centre[1]):
        height = g.box[3] - g.box[1]
        if lines and abs(lines[-1][0].centre[1] - g.centre[1]) < 0.5 * height:
            lines[-1].append(g)
        else:
            lines.append([g])
    for line in lines:
        line.sort(key=lambda g: g.centre[0])
    return lines


def line_text(line: list[Glyph]) -> str:
    """One line's characters, with a space wherever the gap is wide."""
    return "".join(c for c, _ in _line_chars(line))


def _line_chars(line: list[Glyph]) -> list[tuple[str, tuple[float, float] | None]]:
    """The line's characters with their centres (None for the spaces put into gaps)."""
    out = [(line[0].char, line[0].centre)]
    for prev, g in zip(line, line[1:], strict=False):
        if g.box[0] - prev.box[2] > SPACE_GAP * (g.box[3] - g.box[1]):
            out.append((" ", None))
        out.append((g.char, g.centre))
    return out


def reading_order(found: list[Glyph]) -> str:
    """The characters as lines of text, top to bottom."""
    return "\n".join(line_text(line) for line in text_lines(found))


def tile_lines(found: list[Glyph], x0: float, y0: float) -> list[TextLine]:
    """A tile's lines with their boxes in tile pixels (the tile's corner at ``x0, y0``)."""
    out = []
    for line in text_lines(found):
        box = (
            min(g.box[0] for g in line) - x0,
            min(g.box[1] for g in line) - y0,
            max(g.box[2] for g in line) - x0,
            max(g.box[3] for g in line) - y0,
        )
        chars = _line_chars(line)
        centres = tuple(None if c is None else (c[0] - x0, c[1] - y0) for _, c in chars)
        out.append(TextLine(box, "".join(ch for ch, _ in chars), centres))
    return out


def planned_page(rng: random.Random, tiling: TilingConfig, split: str):
    """A random page of a new synthetic document as tpdoc plans it at answer time:
    ``(synth, page number, pymupdf page, TilePlan, the (width, height) it is drawn at)``;
    mostly at the planning resolution, sometimes at another, sometimes drawn at its own
    size and resized by the tiler as image inputs are."""
    synth = make_document(rng, split=split)
    number = rng.randrange(synth.doc.page_count) + 1
    page = synth.doc[number - 1]
    dpi = rng.uniform(*OTHER_DPI) if rng.random() < OTHER_DPI_RATE else PLAN_DPI
    scale = dpi / PDF_POINTS_PER_INCH
    width, height = round(page.rect.width * scale), round(page.rect.height * scale)
    plan = plan_page(height, width, tiling)
    size = (width, height) if rng.random() < RESIZE_RATE else (plan.fit[1], plan.fit[0])
    return synth, number, page, plan, size


def make_sample(rng: random.Random, tiling: TilingConfig, grid: GlyphGrid, split: str,
                questions: int) -> PageSample | None:  # fmt: skip
    synth, number, page, plan, size = planned_page(rng, tiling, split)
    image = rasterise(page, size)
    found = glyphs(page, size)
    asked = questions_for(synth, number, rng, questions)
    qa = [(q, a) for q, a, _ in asked]
    spots = [_answer_spot(synth, page, key, a, size) for _, a, key in asked]
    synth.doc.close()
    if rng.random() < DEGRADE_RATE:
        image, found = degrade(image, rng, found)
    if not qa:
        return None
    views = tile_pixels(image, plan, tiling)
    # Glyph boxes in canvas pixels (the page scaled to plan.fit at the top-left).
    sx, sy = plan.fit[1] / size[0], plan.fit[0] / size[1]
    fitted = [
        Glyph(g.char, (g.box[0] * sx, g.box[1] * sy, g.box[2] * sx, g.box[3] * sy)) for g in found
    ]
    t = tiling.tile_size
    labels, per_tile = [], []
    for r in range(plan.rows):
        for c in range(plan.cols):
            labels.append(label_crop(fitted, c * t, r * t, t, grid))
            per_tile.append(
                [
                    g
                    for g in fitted
                    if c * t <= g.centre[0] < (c + 1) * t and r * t <= g.centre[1] < (r + 1) * t
                ]
            )
    counts = [len(p) for p in per_tile]
    read_tile = rng.choices(range(len(counts)), weights=[n + 1 for n in counts])[0]
    lines = [
        tile_lines(p, (i % plan.cols) * t, (i // plan.cols) * t) for i, p in enumerate(per_tile)
    ]
    # The same text reading_order gives, from the lines already grouped.
    texts = ["\n".join(line.text for line in tile)[:MAX_READ_CHARS] for tile in lines]
    tile_qa = []
    for (question, answer), spot in zip(qa, spots, strict=True):
        if spot is not None:
            tiles_hit = {_tile_of(x * sx, y * sy, t, plan) for x, y in spot}
            if len(tiles_hit) == 1 and None not in tiles_hit:
                tile_qa.append((tiles_hit.pop(), question, answer))
    return PageSample(
        views, plan, torch.stack(labels), qa, read_tile, texts[read_tile],
        [(i, text) for i, text in enumerate(texts) if text], tile_qa, lines,
    )  # fmt: skip


def _answer_spot(synth, page, key: str, value: str, size: tuple[int, int]):
    """Points (pixels of ``size``) that must share a tile for it to answer on its own: both
    ends of the printed value and the centre of its label; None if either is not found
    exactly once."""
    fact = synth.fact(key)
    if fact is None or fact.value != value:
        return None
    sx, sy = size[0] / page.rect.width, size[1] / page.rect.height
    points = []
    for text, ends in ((value, True), (fact.label, False)):
        if not text:
            continue
        rects = page.search_for(text)
        if len(rects) != 1:  # absent or ambiguous: the tile would not answer for sure
            return None
        r = rects[0]
        y = (r.y0 + r.y1) / 2 * sy
        xs = (r.x0 + 1, r.x1 - 1) if ends else ((r.x0 + r.x1) / 2,)
        points += [(x * sx, y) for x in xs]
    return points


def _tile_of(x: float, y: float, t: int, plan: TilePlan) -> int | None:
    r, c = int(y // t), int(x // t)
    return r * plan.cols + c if 0 <= r < plan.rows and 0 <= c < plan.cols else None


class PageStream(torch.utils.data.IterableDataset):
    def __init__(self, seed: int | str, tiling: TilingConfig, grid: GlyphGrid, split: str,
                 questions: int) -> None:  # fmt: skip
        super().__init__()
        self.seed, self.tiling, self.grid, self.split, self.questions = (
            seed, tiling, grid, split, questions,
        )  # fmt: skip

    def __iter__(self) -> Iterator[PageSample]:
        info = torch.utils.data.get_worker_info()
        rng = random.Random(f"{self.seed}/{info.id if info else 0}")
        while True:
            sample = make_sample(rng, self.tiling, self.grid, self.split, self.questions)
            if sample is not None:
                yield sample
