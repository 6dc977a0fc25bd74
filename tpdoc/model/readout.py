"""Reading packed tokens: which character sits in which sub-cell of a token's region.

In: packed visual tokens ``[V, Q, D]`` (TokenPacker's output, ``Q = g*g`` per view) and,
for training, the characters printed on a tile with their boxes. Out: per token, class
logits for each of its ``S`` sub-cells (``[V, Q, S, K]``: blank, a character, a space or
"other"), the same sub-cells as labels (``slot_labels``), and the text between two
sub-cells read back in reading order (``span_text``), with the pixels it covers.

A *slot* is one sub-cell of one token: with 16-pixel cells split 2 x 4 and s = 2, a token's
32 x 32-pixel region holds 4 x 8 slots of 8 x 4 pixels, so a 384-pixel tile has 48 rows x
96 columns of slots (4,608). A character belongs to the slot its centre lies in. The
language model of a pointer model sees each token as its read-out re-embedded
(``ReadoutEmbedding``), and answers by pointing at slots (``tpdoc.model.pointer``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

# Printable characters documents use. Class 0 is a blank sub-cell, 1 a character outside
# this set, 2 a space (the text layer's own spaces, so the read-out says where words end).
CHARSET = (
    "".join(chr(c) for c in range(33, 127)) + "€£₹°ºªÄÖÜäöüßàâçéèêëîïôûùÉÈÀÇñÑáíóúÁÍÓÚ«»–—’‘“”"
)
BLANK, OTHER, SPACE = 0, 1, 2
FIRST_CHAR = 3
NUM_CLASSES = FIRST_CHAR + len(CHARSET)
OTHER_CHAR = "\ufffd"  # what an "other" slot reads as


def char_class(c: str) -> int:
    if c == " ":
        return SPACE
    i = CHARSET.find(c)
    return OTHER if i < 0 else FIRST_CHAR + i


def class_char(k: int) -> str:
    if k == SPACE:
        return " "
    if k >= FIRST_CHAR:
        return CHARSET[k - FIRST_CHAR]
    return OTHER_CHAR if k == OTHER else ""


@dataclass(frozen=True)
class SlotGrid:
    """How a view is cut into slots: ``cell`` pixels per tower cell, each cell split into
    ``rows x cols`` sub-cells, ``scale x scale`` cells per token, ``grid`` cells a side."""

    cell: int = 16
    rows: int = 2
    cols: int = 4
    scale: int = 2
    grid: int = 24  # G: tower cells per view side

    @property
    def out_grid(self) -> int:  # g: tokens per view side
        return self.grid // self.scale

    @property
    def token_rows(self) -> int:  # slot rows per token
        return self.rows * self.scale

    @property
    def token_cols(self) -> int:
        return self.cols * self.scale

    @property
    def per_token(self) -> int:  # S
        return self.token_rows * self.token_cols

    @property
    def slot_rows(self) -> int:  # per view
        return self.out_grid * self.token_rows

    @property
    def slot_cols(self) -> int:
        return self.out_grid * self.token_cols

    @property
    def slot_size(self) -> tuple[float, float]:  # (height, width) in pixels
        return self.cell / self.rows, self.cell / self.cols

    def to_grid(self, slots: torch.Tensor) -> torch.Tensor:
        """``[..., Q, S]`` by token -> ``[..., R, C]`` slot rows and columns of the view."""
        g, tr, tc = self.out_grid, self.token_rows, self.token_cols
        lead = slots.shape[:-2]
        x = slots.reshape(*lead, g, g, tr, tc)  # [..., gy, gx, ty, tx]
        x = x.transpose(-3, -2)  # [..., gy, ty, gx, tx]
        return x.reshape(*lead, g * tr, g * tc)

    def from_grid(self, grid: torch.Tensor) -> torch.Tensor:
        """The inverse of ``to_grid``: ``[..., R, C]`` -> ``[..., Q, S]``."""
        g, tr, tc = self.out_grid, self.token_rows, self.token_cols
        lead = grid.shape[:-2]
        x = grid.reshape(*lead, g, tr, g, tc).transpose(-3, -2)  # [..., gy, gx, ty, tx]
        return x.reshape(*lead, g * g, tr * tc)

    def slot_of(self, x: float, y: float, tiles: int = 1) -> tuple[int, int] | None:
        """The (row, column) of the slot holding pixel ``(x, y)`` of a view (or of a row of
        ``tiles`` views side by side), if inside."""
        h, w = self.slot_size
        r, c = int(y // h), int(x // w)
        if 0 <= r < self.slot_rows and 0 <= c < self.slot_cols * tiles and x >= 0 and y >= 0:
            return r, c
        return None


def slot_labels(chars: Iterable[tuple[str, tuple[float, float]]], grid: SlotGrid,
                tiles: int = 1) -> torch.Tensor:  # fmt: skip
    """Class of every slot ``[R, C * tiles]`` of a row of ``tiles`` views from
    ``(character, centre)`` pairs in its pixels. Where a space and a character share a
    slot, the character wins."""
    labels = torch.zeros(grid.slot_rows, grid.slot_cols * tiles, dtype=torch.long)
    placed = sorted(chars, key=lambda item: item[0] != " ")  # spaces first, then overwritten
    for char, (x, y) in placed:
        slot = grid.slot_of(x, y, tiles)
        if slot is not None:
            labels[slot] = char_class(char)
    return labels


@dataclass(frozen=True)
class SpanText:
    text: str
    box: tuple[float, float, float, float] | None  # x0, y0, x1, y1 in view pixels


def span_text(classes: torch.Tensor, start: tuple[int, int], end: tuple[int, int],
              grid: SlotGrid) -> SpanText:  # fmt: skip
    """The characters from slot ``start`` to slot ``end`` (``(row, col)`` each) of a view,
    or a row of views side by side, whose slot classes are ``classes`` ``[R, C]``, in
    reading order.

    A line's characters share their centre height, so they fill one slot row, or two
    where a page is slightly rotated: a span within two rows is read by column. A taller
    span covers several lines: rows are grouped into lines at empty rows, the first line
    read from the start column on, the last up to the end column, joined by spaces.
    """
    (r0, c0), (r1, c1) = start, end
    if r1 < r0 - 1 or (abs(r1 - r0) <= 1 and c1 < c0):
        return SpanText("", None)
    top, bottom = min(r0, r1), max(r0, r1)
    lines: list[list[tuple[int, int]]] = []
    if bottom - top <= 1:
        lines.append([(r, c) for c in range(c0, c1 + 1) for r in range(top, bottom + 1)])
    else:
        band: list[int] = []
        bands: list[list[int]] = []
        for r in range(top, bottom + 1):
            if bool((classes[r] != BLANK).any()):
                band.append(r)
            elif band:
                bands.append(band)
                band = []
        if band:
            bands.append(band)
        for i, rows in enumerate(bands):
            lo = c0 if i == 0 else 0
            hi = c1 if i == len(bands) - 1 else classes.shape[1] - 1
            lines.append([(r, c) for c in range(lo, hi + 1) for r in rows])
    words, cells = [], []
    for line in lines:
        picked = collapse([(r, c) for r, c in line if int(classes[r, c]) != BLANK], classes)
        text = "".join(class_char(int(classes[r, c])) for r, c in picked).strip()
        if text:
            words.append(" ".join(text.split()))
            cells += picked
    if not cells:
        return SpanText("", None)
    h, w = grid.slot_size
    rows = [r for r, _ in cells]
    cols = [c for _, c in cells]
    box = (min(cols) * w, min(rows) * h, (max(cols) + 1) * w, (max(rows) + 1) * h)
    return SpanText(" ".join(words), box)


def collapse(cells: list[tuple[int, int]], classes: torch.Tensor) -> list[tuple[int, int]]:
    """A line's printed slots (in column order) with repeats of one character in the next
    column (or the same column, one row over) dropped: a glyph near a slot's edge is often
    read in both slots, and two real characters are at least two columns apart."""
    kept: list[tuple[int, int]] = []
    for r, c in cells:
        if kept:
            pr, pc = kept[-1]
            if c - pc <= 1 and int(classes[r, c]) == int(classes[pr, pc]):
                continue
        kept.append((r, c))
    return kept


class ReadoutHead(nn.Module):
    """Per-token read-out: ``[V, Q, D]`` -> slot logits ``[V, Q, S, K]``, through one hidden
    layer of ``hidden`` units: a token superposes several characters, which one linear map
    separates poorly."""

    def __init__(self, dim: int, slots: int, classes: int = NUM_CLASSES, hidden: int = 768):
        super().__init__()
        self.slots, self.classes = slots, classes
        self.hidden = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, hidden), nn.GELU())
        self.proj = nn.Linear(hidden, slots * classes)
        # Start from "every class alike", so the first gradients do not shake the tower.
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, packed: torch.Tensor) -> torch.Tensor:
        *lead, _ = packed.shape
        return self.proj(self.hidden(packed)).view(*lead, self.slots, self.classes)


class ReadoutEmbedding(nn.Module):
    """What the language model of a pointer model sees of a token: its read-out (class
    probabilities per slot ``[..., S, K]``) re-embedded, ``LN(b + sum_s p_s @ W_s)`` ->
    ``[..., D]``, blank slots adding nothing, so a token is the sum of what it shows. One
    table per slot, so a token says which character sits where; the same layer takes
    one-hot labels, so the pointer can be trained on true read-outs."""

    def __init__(self, slots: int, classes: int, dim: int) -> None:
        super().__init__()
        self.table = nn.Parameter(torch.randn(slots, classes, dim) * dim**-0.5)
        self.bias = nn.Parameter(torch.zeros(dim))
        self.norm = nn.LayerNorm(dim)

    def forward(self, probs: torch.Tensor) -> torch.Tensor:
        """``[..., S, K]`` probabilities -> ``[..., D]``."""
        table = self.table[:, BLANK + 1 :].to(probs.dtype)  # [S, K-1, D], blank left out
        return self.norm(self.bias + torch.einsum("...sk,skd->...d", probs[..., 1:], table))

    def labels(self, labels: torch.Tensor) -> torch.Tensor:
        """The same for one-hot read-outs given as classes ``[..., S]`` (a lookup)."""
        s, k, d = self.table.shape
        flat = labels + torch.arange(s, device=labels.device) * k  # [..., S]
        rows = self.table.view(s * k, d)[flat] * (labels != BLANK).unsqueeze(-1)  # [..., S, D]
        return self.norm(self.bias + rows.sum(-2))  # [..., D]


def one_hot(labels: torch.Tensor, classes: int = NUM_CLASSES) -> torch.Tensor:
    return nn.functional.one_hot(labels, classes).float()


def readout_loss(logits: torch.Tensor, labels: torch.Tensor, blank_weight: float) -> torch.Tensor:
    """Cross-entropy over slots, blank ones down-weighted (most of a page is blank)."""
    weight = torch.ones(logits.shape[-1], device=logits.device)
    weight[BLANK] = blank_weight
    return nn.functional.cross_entropy(
        logits.reshape(-1, logits.shape[-1]).float(), labels.reshape(-1), weight=weight
    )


@torch.no_grad()
def readout_counts(logits: torch.Tensor, labels: torch.Tensor) -> tuple[int, int, int, int]:
    """(printed slots read right, printed slots, blank slots read as printed, blank slots)."""
    pred = logits.argmax(-1)
    printed = labels != BLANK
    return (
        int((pred[printed] == labels[printed]).sum()),
        int(printed.sum()),
        int((pred[~printed] != BLANK).sum()),
        int((~printed).sum()),
    )


def texts_of(labels: Sequence[int]) -> str:
    return "".join(class_char(int(k)) for k in labels)
