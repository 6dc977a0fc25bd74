"""Token budget of a document: how many visual tokens each page costs, without any weights.

In: a document path and a model ``Geometry`` (tile size, patch grid, scale, tile cap).
Out: a ``DocumentBudget``: per page a ``tpdoc.answering.planning.PagePlan`` (the size fed to the
tiler, the grid, the views, the visual tokens as they enter the LLM with TokenPacker and
with the uncompressed MLP projector: planned and counted exactly as ``tpdoc ask`` plans a
page without ``--budget``); totals; a stable JSON form (the ``tpdoc inspect --json`` contract); and
optional PNG overlays of the tile grid.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tpdoc.answering.planning import PagePlan, plan_within
from tpdoc.documents.pages import open_document, parse_page_spec
from tpdoc.documents.tiling import TilePlan
from tpdoc.model.config import Geometry

OVERLAY_COLOURS = ("#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4")
OVERLAY_LINE_PX = 3


@dataclass(frozen=True)
class DocumentBudget:
    file: str
    geometry: Geometry
    pages: tuple[PagePlan, ...]  # each at the geometry's own cap and scale

    @property
    def total_visual_tokens(self) -> int:
        return sum(p.visual_tokens for p in self.pages)

    @property
    def total_visual_tokens_uncompressed(self) -> int:
        return sum(p.visual_tokens_uncompressed for p in self.pages)

    @property
    def ratio(self) -> float:
        return self.total_visual_tokens / max(1, self.total_visual_tokens_uncompressed)

    def to_json(self) -> dict[str, Any]:
        g = self.geometry
        return {
            "file": self.file,
            "pages": [page_json(p) for p in self.pages],
            "total_visual_tokens": self.total_visual_tokens,
            "total_visual_tokens_uncompressed": self.total_visual_tokens_uncompressed,
            "tile_size": g.tile_size,
            "tokens_per_tile": g.tokens_per_tile,
            "max_tiles": g.max_tiles,
            "scale": g.scale,
            "mode": g.tiling.mode,
        }


def page_budget(number: int, height: int, width: int, geometry: Geometry) -> PagePlan:
    """Page ``number`` (``height x width`` px) at the geometry's cap and scale, unlimited:
    the same plan, counted the same way, as a question without ``--budget`` gets."""
    return plan_within(number, height, width, geometry)


def page_json(page: PagePlan) -> dict[str, Any]:
    """One page of the ``tpdoc inspect --json`` contract."""
    return {
        "page": page.page,
        "width": page.plan.width,
        "height": page.plan.height,
        "grid": [page.plan.rows, page.plan.cols],
        "tiles": page.plan.num_views,
        "visual_tokens": page.visual_tokens,
        "visual_tokens_uncompressed": page.visual_tokens_uncompressed,
    }


def inspect_document(
    path: str | Path,
    geometry: Geometry,
    *,
    pages: str | None = None,
    dpi: float | None = None,
    password: str | None = None,
    overlay_dir: str | Path | None = None,
) -> DocumentBudget:
    """Plan every selected page of ``path``; render only when overlays are asked for."""
    results = list(
        iter_budgets(
            path, geometry, pages=pages, dpi=dpi, password=password, overlay_dir=overlay_dir
        )
    )
    return DocumentBudget(file=str(path), geometry=geometry, pages=tuple(results))


def iter_budgets(
    path: str | Path,
    geometry: Geometry,
    *,
    pages: str | None = None,
    dpi: float | None = None,
    password: str | None = None,
    overlay_dir: str | Path | None = None,
) -> Iterator[PagePlan]:
    with open_document(path, password=password, dpi=dpi) as doc:
        for number in parse_page_spec(pages, doc.page_count, path):
            info = doc.info(number)
            budget = page_budget(number, info.height, info.width, geometry)
            if overlay_dir is not None:
                image = doc.render(number)  # nominal size: the plan's coordinates
                target = Path(overlay_dir) / f"{Path(path).stem}-page{number:04d}.png"
                write_overlay(image, budget.plan, target)
            yield budget


def write_overlay(image: Any, plan: TilePlan, target: Path) -> Path:
    """Draw the tile boxes on a copy of the page and write a PNG atomically."""
    from PIL import ImageDraw

    from tpdoc.io import atomic_write_bytes

    canvas = image.convert("RGB").copy()
    draw = ImageDraw.Draw(canvas)
    for i, box in enumerate(plan.boxes):
        x0, y0, x1, y1 = box
        if x1 <= x0 or y1 <= y0:
            continue  # a tile over padding only: nothing of the page in it
        colour = OVERLAY_COLOURS[i % len(OVERLAY_COLOURS)]
        draw.rectangle([x0, y0, x1 - 1, y1 - 1], outline=colour, width=OVERLAY_LINE_PX)
        draw.text((x0 + 2 * OVERLAY_LINE_PX, y0 + 2 * OVERLAY_LINE_PX), str(i + 1), fill=colour)
    import io

    buffer = io.BytesIO()
    canvas.save(buffer, format="PNG")
    return atomic_write_bytes(target, buffer.getvalue())
