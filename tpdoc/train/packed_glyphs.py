"""The packed tokens' glyph read-out of stage 2: which characters each packed token's
region holds.

In: a page sample's glyph labels per tower cell (``tpdoc.train.glyphs``) and the model's
projector config. Out: the labels regrouped by packed token and a linear head that reads
them back out of the tokens; its loss keeps the packer from collapsing to a constant
while the language model has not yet learnt to look.
"""

from __future__ import annotations

import math

import torch

from tpdoc.model.config import ModelConfig
from tpdoc.model.document_model import DocumentModel
from tpdoc.model.packer import PackerConfig
from tpdoc.train.glyphs import GlyphGrid, GlyphHead
from tpdoc.train.qa import PageSample

PACKED_NONE_WEIGHT = 0.02  # a packed token's 32 sub-cells are mostly blank: keep glyphs heard


def packed_labels(labels: torch.Tensor, cells: GlyphGrid, grid: int, scale: int) -> torch.Tensor:
    """Glyph labels of tower cells regrouped by packed token: ``[T, G*G, r*c]`` ->
    ``[T, g*g, (s*r)*(s*c)]``, each token's ``s x s`` region as one finer grid."""
    t, _, _ = labels.shape
    g = grid // scale
    r, c = cells.rows, cells.cols
    x = labels.reshape(t, g, scale, g, scale, r, c)  # [T, g, s, g, s, r, c]
    x = x.permute(0, 1, 3, 2, 5, 4, 6)  # -> [T, g, g, s, r, s, c]
    return x.reshape(t, g * g, scale * r * scale * c)


def token_scale(projector: PackerConfig) -> int:
    """Tower cells per token side: the scale, or 1 for the uncompressed MLP."""
    return projector.grid // math.isqrt(projector.tokens_per_tile)


def page_packed_labels(model: DocumentModel, sample: PageSample) -> torch.Tensor:
    """The page's tile glyph labels grouped by the model's packed tokens."""
    p = model.config.projector
    return packed_labels(sample.glyph_labels, GlyphGrid(), p.grid, token_scale(p))


def packed_glyph_head(config: ModelConfig) -> GlyphHead:
    """Reads the characters of a packed token's region back out of it: keeps the packer
    from collapsing to a constant while the language model has not learnt to look."""
    s, base = token_scale(config.projector), GlyphGrid()
    cell = config.vision.tile_size // config.vision.patch_grid * s
    return GlyphHead(config.projector.llm_dim, GlyphGrid(cell, base.rows * s, base.cols * s))
