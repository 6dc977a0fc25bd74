"""Sequence assembly: packed tiles + prompt ids -> language-model inputs.

In: per page, the packed views ``[V, Q, D]`` and its ``TilePlan``; per sample, the
prompt's ``PromptIds`` (and answer ids when training). Out: the page laid out in the
published HD order (tiles row by row, the ``,`` embedding between tiles of a row, the
``\\n`` embedding after each row, then the global view and ``\\n``), and a padded batch
(``inputs_embeds`` ``[B, T, D]``, ``attention_mask`` ``[B, T]``, ``labels`` ``[B, T]``).
The same layout function counts tokens for ``tpdoc inspect`` and builds the tensors, so
the two cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from tpdoc.documents.tiling import TilePlan
from tpdoc.errors import ConfigError
from tpdoc.model.prompts import PromptIds

IGNORE_INDEX = -100  # label of positions that carry no loss (transformers' convention)
TILE_SEP = -1  # layout marker: the `,` embedding between tiles of a row
ROW_SEP = -2  # layout marker: the `\n` embedding after a row (and after the global view)
PADDING_SIDES = ("left", "right")


@dataclass(frozen=True)
class Separators:
    """Token ids whose embeddings separate tiles (``tile``) and rows (``row``)."""

    tile: int
    row: int

    @classmethod
    def from_tokenizer(cls, tokenizer: Any) -> Separators:
        # Published: convert_tokens_to_ids(',') and ('\n'), token strings, not text. With a
        # SentencePiece LLaMA vocabulary '\n' is no token and maps to <unk>, which is what
        # the checkpoints were trained with, so it is kept.
        tile, row = tokenizer.convert_tokens_to_ids([",", "\n"])
        if tile is None or row is None:
            raise ConfigError("the tokenizer has no id for ',' or '\\n' (and no unk token)")
        return cls(tile=int(tile), row=int(row))


def page_layout(plan: TilePlan) -> list[int]:
    """The page's positions in order: view indices (>= 0) and separator markers (< 0)."""
    if plan.mode == "pad":
        return [0]  # LLaVA-1.5 single view: the tile's tokens and nothing else
    layout: list[int] = []
    for r in range(plan.rows):
        for c in range(plan.cols):
            if c:
                layout.append(TILE_SEP)
            layout.append(r * plan.cols + c)
        layout.append(ROW_SEP)
    if plan.has_global_view:
        layout += [plan.rows * plan.cols, ROW_SEP]
    return layout


def count_page_positions(plan: TilePlan, tokens_per_view: int) -> int:
    """Positions a page occupies in the LLM input with ``tokens_per_view`` per view."""
    layout = page_layout(plan)
    views = sum(1 for item in layout if item >= 0)
    return views * tokens_per_view + (len(layout) - views)


def page_embeddings(views: torch.Tensor, plan: TilePlan, separators: torch.Tensor) -> torch.Tensor:
    """Lay out one page: views ``[V, Q, D]`` + separator embeddings ``[2, D]`` (tile, row)
    -> ``[P, D]`` with ``P = count_page_positions(plan, Q)``."""
    if views.shape[0] != plan.num_views:
        raise ConfigError(f"plan has {plan.num_views} views but {views.shape[0]} were encoded")
    sep = {TILE_SEP: separators[0:1], ROW_SEP: separators[1:2]}  # each [1, D]
    pieces = [views[item] if item >= 0 else sep[item] for item in page_layout(plan)]
    return torch.cat(pieces, dim=0)  # [P, D]


@dataclass
class Batch:
    """Padded language-model inputs for B samples of possibly different lengths."""

    inputs_embeds: torch.Tensor  # [B, T, D]
    attention_mask: torch.Tensor  # [B, T] 1 = real position
    labels: torch.Tensor | None  # [B, T] IGNORE_INDEX on padding, prompt and visual positions
    lengths: list[int]  # real positions per sample


def assemble_batch(
    embed: Callable[[torch.Tensor], torch.Tensor],
    prompts: Sequence[PromptIds],
    pages: Sequence[torch.Tensor],
    targets: Sequence[Sequence[int]] | None = None,
    padding_side: str = "left",
    target_labels: Sequence[Sequence[int]] | None = None,
) -> Batch:
    """Splice each page ``[P_i, D]`` into its prompt and pad the batch.

    ``embed`` maps token ids ``[n]`` to ``[n, D]`` (the LM's input embeddings). With
    ``targets`` (answer ids, training) they follow the prompt and are the only labelled
    positions; ``target_labels`` (same lengths, ``IGNORE_INDEX`` where no loss) replaces
    their labels, e.g. to leave later questions of a packed sequence unlabelled.
    Generation wants ``padding_side='left'``, training ``'right'``.
    """
    if len(prompts) != len(pages) or (targets is not None and len(targets) != len(prompts)):
        raise ConfigError(
            f"batch sizes differ: {len(prompts)} prompts, {len(pages)} pages, "
            f"{'no' if targets is None else len(targets)} targets"
        )
    if padding_side not in PADDING_SIDES:
        raise ConfigError(f"padding_side must be one of {PADDING_SIDES}, got {padding_side!r}")
    rows: list[torch.Tensor] = []
    row_labels: list[torch.Tensor] = []
    for i, (prompt, page) in enumerate(zip(prompts, pages, strict=True)):
        target = list(targets[i]) if targets is not None else []
        ids_before = torch.tensor(prompt.before, dtype=torch.long, device=page.device)
        ids_after = torch.tensor([*prompt.after, *target], dtype=torch.long, device=page.device)
        embeds = torch.cat([embed(ids_before), page.to(embed_dtype(embed)), embed(ids_after)])
        rows.append(embeds)  # [T_i, D]
        label = torch.full((embeds.shape[0],), IGNORE_INDEX, dtype=torch.long, device=page.device)
        if target:
            wanted = target if target_labels is None else list(target_labels[i])
            if len(wanted) != len(target):
                raise ConfigError(f"sample {i}: {len(wanted)} labels for {len(target)} targets")
            label[-len(target) :] = torch.tensor(wanted, dtype=torch.long, device=page.device)
        row_labels.append(label)
    lengths = [r.shape[0] for r in rows]
    longest = max(lengths)
    width = rows[0].shape[1]
    inputs = rows[0].new_zeros(len(rows), longest, width)  # [B, T, D]
    mask = torch.zeros(len(rows), longest, dtype=torch.long, device=rows[0].device)
    labels = torch.full_like(mask, IGNORE_INDEX)
    for i, (row, label) in enumerate(zip(rows, row_labels, strict=True)):
        span = (
            slice(longest - row.shape[0], longest)
            if padding_side == "left"
            else slice(0, row.shape[0])
        )
        inputs[i, span] = row
        mask[i, span] = 1
        labels[i, span] = label
    return Batch(inputs, mask, labels if targets is not None else None, lengths)


def embed_dtype(embed: Callable[[torch.Tensor], torch.Tensor]) -> torch.dtype:
    """The dtype an embedding callable produces (modules expose their weight)."""
    weight = getattr(embed, "weight", None)
    if weight is not None:
        return weight.dtype
    return embed(torch.zeros(0, dtype=torch.long)).dtype
