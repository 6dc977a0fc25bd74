"""Training samples for the pointer: a page's true read-out, and where each answer is.

In: a ``random.Random``, the model's ``TilingConfig``, its ``SlotGrid`` and a font split.
Out: ``SpanSample``s: every tile's slot labels (``tpdoc.model.readout``: which character's centre
lies in which slot, spaces included), the rendered views when asked for (pages planned and
tiled exactly as at answer time), the page's questions with their printed answers, and
per (question, tile row) the target the pointer learns: the slots of the answer's first
and last character in the row of tiles that holds it, or "not here" in other rows and for
answers the document does not have. Without rendering a page costs only its text layer, so the
pointer can be trained on true read-outs far faster than the tower can read.
Positions come from the PDF's text layer, at training time only.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from tpdoc.answering.results import NOT_FOUND
from tpdoc.documents.pdf import rasterise_pdf_page as rasterise
from tpdoc.documents.tiling import TilePlan, TilingConfig, tile_pixels
from tpdoc.model.pointer import slot_index
from tpdoc.model.readout import SlotGrid, slot_labels, span_text
from tpdoc.synth.questions import questions_for
from tpdoc.synth.render import Glyph, degrade, glyphs
from tpdoc.train.qa import DEGRADE_RATE, planned_page, text_lines

NOT_HERE = -1
ABSENT_RATE = 0.2


@dataclass(frozen=True)
class Target:
    """What the pointer should say about one question on one row of tiles."""

    question: str
    row: int  # tile row of the page (or tile, with single tiles)
    start: int  # token-major slot index, or NOT_HERE
    end: int


@dataclass
class SpanSample:
    plan: TilePlan
    labels: torch.Tensor  # [tiles, Q, S] slot classes, tiles row-major
    views: torch.Tensor | None  # [V, 3, T, T] when rendered
    asked: list[tuple[str, str]]  # every question with its answer (NOT_FOUND if absent)
    targets: list[Target]
    located: int  # present answers found on one row (the rest have no target)
    width: int  # tiles per row the pointer reads: the plan's columns, or 1 (single tiles)


def normalised(text: str) -> str:
    return " ".join(text.split())


def span_sample(rng: random.Random, tiling: TilingConfig, grid: SlotGrid, split: str,
                questions: int, *, render: bool = False, negatives: int = 1,
                degrade_rate: float = DEGRADE_RATE, single_tiles: bool = False,
                held_out_phrasings: bool | None = None) -> SpanSample | None:  # fmt: skip
    synth, number, page, plan, size = planned_page(rng, tiling, split)
    found = glyphs(page, size, spaces=True)
    asked = questions_for(synth, number, rng, questions, absent_rate=ABSENT_RATE,
                          held_out=held_out_phrasings)  # fmt: skip
    facts = {key: synth.fact(key) for _, _, key in asked}
    image = rasterise(page, size) if render else None
    synth.doc.close()
    if not asked:
        return None
    if image is not None and rng.random() < degrade_rate:
        image, found = degrade(image, rng, found)
    views = tile_pixels(image, plan, tiling) if image is not None else None
    sx, sy = plan.fit[1] / size[0], plan.fit[0] / size[1]
    t = tiling.tile_size
    # Glyphs by tile row, in the row's pixels (its tiles side by side), or with
    # ``single_tiles`` by tile, each a row of its own.
    width = 1 if single_tiles else plan.cols
    per_row: list[list[Glyph]] = [[] for _ in range(plan.rows * plan.cols // width)]
    for g in found:
        box = (g.box[0] * sx, g.box[1] * sy, g.box[2] * sx, g.box[3] * sy)
        r, c = int((box[1] + box[3]) / 2 // t), int((box[0] + box[2]) / 2 // t)
        if 0 <= r < plan.rows and 0 <= c < plan.cols:
            x0 = c * t if single_tiles else 0
            row = r * plan.cols + c if single_tiles else r
            per_row[row].append(Glyph(g.char, (box[0] - x0, box[1] - r * t, box[2] - x0,
                                               box[3] - r * t)))  # fmt: skip
    grids = [slot_labels([(g.char, g.centre) for g in row], grid, width) for row in per_row]
    c = grid.slot_cols
    labels = torch.stack(
        [grid.from_grid(row[:, i * c : (i + 1) * c]) for row in grids for i in range(width)]
    )  # [tiles, Q, S], row-major like the views
    lines = [[line for line in text_lines(row) if line] for row in per_row]
    texts = ["\n".join("".join(g.char for g in line) for line in row) for row in lines]
    with_text = [i for i, text in enumerate(texts) if text.strip()]
    targets: list[Target] = []
    located = 0
    for question, answer, key in asked:
        spot = None
        if answer != NOT_FOUND:
            spot = _locate(answer, lines, texts, facts[key], grids, grid)
        if spot is not None:
            located += 1
            row, start, end = spot
            targets.append(Target(question, row, start, end))
        elif answer != NOT_FOUND:
            continue  # printed, but not once on one tile with its label: no target
        others = [i for i in with_text if spot is None or i != spot[0]]
        for i in rng.sample(others, min(negatives + (spot is None), len(others))):
            targets.append(Target(question, i, NOT_HERE, NOT_HERE))
    return SpanSample(plan, labels, views, [(q, a) for q, a, _ in asked], targets, located, width)


def _locate(answer: str, lines: list[list[list[Glyph]]], texts: list[str], fact,
            grids: list[torch.Tensor], grid: SlotGrid) -> tuple[int, int, int] | None:  # fmt: skip
    """(tile row, start slot, end slot) of an answer printed exactly once on the page, in a
    tile row that also shows its label, and read back exactly from the true slot classes."""
    if sum(text.count(answer) for text in texts) != 1:
        return None
    for row, row_lines in enumerate(lines):
        for line in row_lines:
            text = "".join(g.char for g in line)
            at = text.find(answer)
            if at < 0:
                continue
            label = normalised(fact.label) if fact is not None and fact.label else ""
            if label and label not in normalised(texts[row]):
                return None
            first, last = line[at], line[at + len(answer) - 1]
            tiles = grids[row].shape[1] // grid.slot_cols
            start = grid.slot_of(*first.centre, tiles)
            end = grid.slot_of(*last.centre, tiles)
            if start is None or end is None:
                return None
            if span_text(grids[row], start, end, grid).text != normalised(answer):
                return None  # two characters in one slot: the read-out cannot give it back
            return row, slot_index(*start, grid), slot_index(*end, grid)
    return None


class SpanStream(torch.utils.data.IterableDataset):
    """An endless, seeded stream of ``SpanSample``s (one random generator per worker)."""

    def __init__(self, seed: int | str, tiling: TilingConfig, grid: SlotGrid, split: str,
                 questions: int, render: bool = False,
                 single_tiles: bool = False) -> None:  # fmt: skip
        super().__init__()
        self.seed, self.tiling, self.grid, self.split = seed, tiling, grid, split
        self.questions, self.render, self.single_tiles = questions, render, single_tiles

    def __iter__(self) -> Iterator[SpanSample]:
        info = torch.utils.data.get_worker_info()
        rng = random.Random(f"{self.seed}/{info.id if info else 0}")
        while True:
            sample = span_sample(
                rng, self.tiling, self.grid, self.split, self.questions, render=self.render,
                single_tiles=self.single_tiles,
            )  # fmt: skip
            if sample is not None:
                yield sample
