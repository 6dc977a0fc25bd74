"""Reading pretraining of the vision tower: dense glyph classification on page crops.

In: synthetic pages (``tpdoc.synth``) rasterised at the resolutions the tiler uses, cut
into tower-sized crops; each grid cell of the tower is split into ``rows x cols``
sub-cells, and each sub-cell is labelled with the character whose centre lies in it
(labels from the PDF's character boxes, at training time only). Out: a tower whose
features say which characters are where: the reading skill the packer and the language
model build on. Accuracy is reported on held-out fonts.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn

from tpdoc.documents.pdf import rasterise_pdf_page as rasterise
from tpdoc.model.readout import BLANK, readout_loss
from tpdoc.synth.layouts import make_document
from tpdoc.synth.render import degrade, glyphs

# Printable characters the documents use; anything else is class OTHER.
CHARSET = (
    "".join(chr(c) for c in range(33, 127)) + "€£₹°ºªÄÖÜäöüßàâçéèêëîïôûùÉÈÀÇñÑáíóúÁÍÓÚ«»–—’‘“”"
)
NONE, OTHER = BLANK, 1
DPI_RANGE = (85.0, 170.0)  # effective resolutions of A4/Letter pages under the tiler


@dataclass(frozen=True)
class GlyphGrid:
    """How a tower cell is split for labels: ``rows x cols`` sub-cells per cell."""

    cell: int = 16  # pixels per tower cell (its total stride)
    rows: int = 2
    cols: int = 4

    @property
    def per_cell(self) -> int:
        return self.rows * self.cols


def char_class(c: str) -> int:
    i = CHARSET.find(c)
    return OTHER if i < 0 else i + 2


NUM_CLASSES = len(CHARSET) + 2


def label_crop(found: list, x0: int, y0: int, size: int, grid: GlyphGrid) -> torch.Tensor:
    """Sub-cell labels ``[G*G, rows*cols]`` of the crop at ``(x0, y0)``."""
    g = size // grid.cell
    labels = torch.zeros(g, g, grid.rows, grid.cols, dtype=torch.long)
    sub_h, sub_w = grid.cell / grid.rows, grid.cell / grid.cols
    for glyph in found:
        cx, cy = glyph.centre
        x, y = cx - x0, cy - y0
        if 0 <= x < size and 0 <= y < size:
            gy, gx = int(y // grid.cell), int(x // grid.cell)
            sy = min(grid.rows - 1, int((y - gy * grid.cell) // sub_h))
            sx = min(grid.cols - 1, int((x - gx * grid.cell) // sub_w))
            labels[gy, gx, sy, sx] = char_class(glyph.char)
    return labels.reshape(g * g, grid.per_cell)  # [G, G, r, c] -> [G*G, r*c]


def page_crops(rng: random.Random, size: int, n: int, split: str, mean, std, grid: GlyphGrid):
    """``n`` normalised crops ``[3, size, size]`` of one random page, with labels."""
    import numpy as np
    from PIL import Image

    synth = make_document(rng, split=split)
    page = synth.doc[rng.randrange(synth.doc.page_count)]
    dpi = rng.uniform(*DPI_RANGE)
    pixels = (round(page.rect.width * dpi / 72), round(page.rect.height * dpi / 72))
    image = rasterise(page, pixels)
    found = glyphs(page, pixels)
    image, found = degrade(image, rng, found)
    synth.doc.close()
    w, h = image.size
    canvas = Image.new("RGB", (max(w, size), max(h, size)), (255, 255, 255))
    canvas.paste(image, (0, 0))
    arr = torch.from_numpy(np.asarray(canvas).copy()).permute(2, 0, 1).float().div(255)
    arr = (arr - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1)
    out = []
    for _ in range(n):
        if found and rng.random() < 0.9:  # centre on text most of the time
            cx, cy = rng.choice(found).centre
            x0 = int(min(max(0, cx - rng.uniform(0, size)), canvas.width - size))
            y0 = int(min(max(0, cy - rng.uniform(0, size)), canvas.height - size))
        else:
            x0, y0 = rng.randint(0, canvas.width - size), rng.randint(0, canvas.height - size)
        crop = arr[:, y0 : y0 + size, x0 : x0 + size]
        out.append((crop, label_crop(found, x0, y0, size, grid)))
    return out


class GlyphStream(torch.utils.data.IterableDataset):
    """An endless, seeded stream of (crop, labels)."""

    def __init__(self, seed: int, size: int, split: str, mean, std, grid: GlyphGrid,
                 crops_per_page: int = 4) -> None:  # fmt: skip
        super().__init__()
        self.seed, self.size, self.split = seed, size, split
        self.mean, self.std, self.grid, self.crops_per_page = mean, std, grid, crops_per_page

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        info = torch.utils.data.get_worker_info()
        rng = random.Random(f"{self.seed}/{info.id if info else 0}")
        while True:
            yield from page_crops(
                rng, self.size, self.crops_per_page, self.split, self.mean, self.std, self.grid
            )


class GlyphHead(nn.Module):
    """Per-cell linear classifier over sub-cells: ``[B, N, C]`` -> ``[B, N, r*c, K]``."""

    def __init__(self, hidden: int, grid: GlyphGrid, classes: int = NUM_CLASSES) -> None:
        super().__init__()
        self.grid, self.classes = grid, classes
        self.proj = nn.Linear(hidden, grid.per_cell * classes)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        b, n, _ = features.shape
        return self.proj(features).view(b, n, self.grid.per_cell, self.classes)


def glyph_loss(logits: torch.Tensor, labels: torch.Tensor, none_weight: float) -> torch.Tensor:
    """Cross-entropy over sub-cells, empty ones down-weighted (most of a page is blank)."""
    return readout_loss(logits, labels, none_weight)  # NONE is the read-out's BLANK (0)


@torch.no_grad()
def glyph_accuracy(logits: torch.Tensor, labels: torch.Tensor) -> tuple[int, int, int]:
    """(correct on printed sub-cells, printed sub-cells, false alarms on empty ones)."""
    pred = logits.argmax(-1)
    printed = labels != NONE
    correct = int((pred[printed] == labels[printed]).sum())
    false_alarm = int((pred[~printed] != NONE).sum())
    return correct, int(printed.sum()), false_alarm
