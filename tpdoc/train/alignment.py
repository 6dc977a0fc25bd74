"""Guided attention for transcription: tell the language model where to look.

In: a right-padded transcription batch (each row: prompt, one tile's packed tokens, the
text), every character's centre in tile pixels (``TextLine.centres``), and the language
model's attention probabilities. Out: a loss that asks one head in each guided layer to
put its attention, while writing a character, on the packed token whose region holds
that character.

Why: trained from scratch, the language model first learns the text's statistics and
attends evenly over the visual tokens, which averages their content away (the right
tile's tokens and another tile's give the same loss); it can stay on that plateau for
thousands of pages. The character boxes are known at training time, so the alignment is
supervised directly, as in guided-attention TTS and OCR decoders; at answer time nothing
but the pixels is used.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch

from tpdoc.train.qa import TextLine

GUIDED_HEAD = 0  # in every layer but the first (whose queries see one token only)
EPS = 1e-6


def token_targets(line: TextLine, tile_size: int, out_grid: int, ids_per_char: Sequence[int]
                  ) -> list[int]:  # fmt: skip
    """The packed token (row-major on the ``out_grid`` grid) each text token should look at,
    -1 where unguided (spaces and newlines put in by reading order); ``ids_per_char`` says
    how many tokens each character became."""
    cell = tile_size / out_grid
    out: list[int] = []
    for centre, n in zip(line.centres, ids_per_char, strict=True):
        if centre is None:
            out += [-1] * n
            continue
        col = min(out_grid - 1, max(0, int(centre[0] // cell)))
        row = min(out_grid - 1, max(0, int(centre[1] // cell)))
        out += [row * out_grid + col] * n
    return out


def attention_loss(attentions: Sequence[torch.Tensor], starts: Sequence[int],
                   visual_starts: Sequence[int], targets: Sequence[Sequence[int]]
                   ) -> torch.Tensor | None:  # fmt: skip
    """Mean ``-log`` attention mass of the guided heads on the right packed token.

    ``attentions``: per layer ``[B, H, S, S]``; row ``b``'s text starts at position
    ``starts[b]`` and its visual tokens at ``visual_starts[b]``; ``targets[b][j]`` is the
    packed token text token ``j`` should look at (the query is the position before it,
    which predicts it). None when nothing is guided.
    """
    rows, queries, keys = [], [], []
    for b, (start, visual, wanted) in enumerate(zip(starts, visual_starts, targets, strict=True)):
        for j, token in enumerate(wanted):
            if token >= 0:
                rows.append(b)
                queries.append(start + j - 1)
                keys.append(visual + token)
    if not rows:
        return None
    index = [torch.tensor(x, device=attentions[0].device) for x in (rows, queries, keys)]
    losses = [
        -torch.log(layer[index[0], GUIDED_HEAD, index[1], index[2]].float() + EPS).mean()
        for layer in attentions[1:] or attentions  # a one-layer model guides its only layer
    ]
    return torch.stack(losses).mean()


@contextmanager
def eager_attention(language_model: torch.nn.Module) -> Iterator[None]:
    """Run ``language_model`` with eager attention (the only kind that returns its
    probabilities) inside the block, and with what it had before outside."""
    before = language_model.config._attn_implementation
    language_model.set_attn_implementation("eager")
    try:
        yield
    finally:
        language_model.set_attn_implementation(before)
