"""Token-budget planning: the largest tile cap (and packer scale) whose page fits.

In: a page's nominal size, the model's ``Geometry`` (its tile cap and scale are the most a
page may use), the packer scales the model was trained for, and a limit on the page's
visual tokens (``--budget``, or what the context leaves after the prompt and the answer).
Out: a ``PagePlan``: the tile plan, the cap and scale it used, its visual tokens with
TokenPacker and with the uncompressed projector, and whether it had to be planned down.
Without a limit the plan is the page at the model's own cap and scale: what ``tpdoc
inspect`` reports (``tpdoc.answering.budget``) and what an unconstrained question uses.

The ladder, best first: every published tile cap up to the requested one (25, 16, 9),
each with the finest scale first; then one tile holding the whole page (the 1 x 1 grid
of the published list, no global view). If even that does not fit, ``BudgetError``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from tpdoc.documents.tiling import GRID_CANDIDATES, TilePlan, fit_size, plan_page
from tpdoc.errors import UsageError
from tpdoc.model.config import Geometry
from tpdoc.model.sequence import count_page_positions

SINGLE_TILE = 1  # the last rung: one tile, the whole page fitted into it
TILE_CAPS: tuple[int, ...] = tuple(sorted(GRID_CANDIDATES, reverse=True))  # (25, 16, 9)


class BudgetError(UsageError):
    """Not even one tile of a page fits the visual-token budget or the model's context."""


@dataclass(frozen=True)
class TokenLimit:
    """The most visual tokens a page may take, and which limit set that number."""

    tokens: int | None  # None: nothing limits the page
    source: str | None = None  # "budget" (--budget) or "context" (the model's context)
    what: str = "--budget"  # how error messages name the limit


@dataclass(frozen=True)
class PagePlan:
    """How one page is tiled and packed, and what it costs."""

    page: int  # 1-based
    plan: TilePlan
    max_tiles: int  # the cap the grid was chosen under; SINGLE_TILE for the last rung
    scale: int
    visual_tokens: int  # positions in the LLM input, separators included
    visual_tokens_uncompressed: int  # the same page through LLaVA-1.5's MLP projector
    planned_down: bool = False  # a smaller cap or coarser scale than asked, to fit

    @property
    def ratio(self) -> float:
        """Packed / uncompressed visual tokens (lower is better)."""
        return self.visual_tokens / self.visual_tokens_uncompressed


def plan_within(
    number: int,
    height: int,
    width: int,
    geometry: Geometry,
    *,
    limit: int | None = None,
    scales: Sequence[int] = (),
    what: str = "--budget",
) -> PagePlan:
    """Plan page ``number`` (``height x width`` px) to at most ``limit`` visual tokens.

    ``geometry`` gives the cap and scale asked for (nothing larger is tried); ``scales``
    the packer scales the model supports (default: the geometry's own). ``what`` names the
    limit in the error message.
    """
    asked = _plan(number, height, width, geometry, geometry.max_tiles, geometry.scale)
    if limit is None or asked.visual_tokens <= limit:
        return asked
    smallest = asked
    for cap, scale in ladder(geometry, scales):
        candidate = _plan(number, height, width, geometry, cap, scale)
        if candidate.visual_tokens <= limit:
            return replace(candidate, planned_down=True)
        smallest = min(smallest, candidate, key=lambda p: p.visual_tokens)
    raise BudgetError(
        f"{what}: page {number} does not fit in {limit:,} visual tokens, not even as one "
        f"tile ({smallest.visual_tokens:,} tokens at scale {smallest.scale})"
    )


def overview_tokens(geometry: Geometry) -> int:
    """Visual tokens of the cheapest rung: one tile holding a whole page (any page size
    gives the same count), at the geometry's scale."""
    tile = geometry.tile_size
    return _plan(1, tile, tile, geometry, SINGLE_TILE, geometry.scale).visual_tokens


def ladder(geometry: Geometry, scales: Sequence[int] = ()) -> list[tuple[int, int]]:
    """(cap, scale) pairs from the richest to the cheapest, none richer than asked."""
    usable = sorted({s for s in (*scales, geometry.scale) if s >= geometry.scale})
    if geometry.tiling.mode == "pad":
        return [(geometry.max_tiles, s) for s in usable]  # one view whatever the cap
    caps = [c for c in TILE_CAPS if c <= geometry.max_tiles] + [SINGLE_TILE]
    return [(cap, scale) for cap in caps for scale in usable]


def _plan(
    number: int, height: int, width: int, geometry: Geometry, cap: int, scale: int
) -> PagePlan:
    g = geometry if scale == geometry.scale else geometry.with_options(scale=scale)
    if cap == SINGLE_TILE:
        plan = single_tile_plan(height, width, g.tile_size)
    else:
        plan = plan_page(height, width, replace(g.tiling, max_tiles=cap))
    return PagePlan(
        page=number,
        plan=plan,
        max_tiles=cap,
        scale=scale,
        visual_tokens=count_page_positions(plan, g.tokens_per_tile),
        visual_tokens_uncompressed=count_page_positions(plan, g.tokens_per_tile_uncompressed),
    )


def single_tile_plan(height: int, width: int, tile_size: int) -> TilePlan:
    """The whole page fitted into one tile: the published 1 x 1 grid, no global view."""
    fit = fit_size(height, width, 1, 1, tile_size)
    box = (0.0, 0.0, float(width), float(height))
    return TilePlan(height, width, 1, 1, tile_size, "slice", fit, (box,))
