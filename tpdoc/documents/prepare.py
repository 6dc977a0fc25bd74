"""From a document on disk to planned, normalised views, one page at a time.

In: a document path, a ``TilingConfig`` and page/DPI options. Out: ``PreparedPage``s
(page number, ``TilePlan``, views ``[V, 3, T, T]``) yielded lazily. Vector pages (PDF)
are rasterised once, directly at the size the tiler will use, unless a DPI is forced;
images are tiled from their native pixels exactly as the published preprocessing does.
``prepare_page`` is that one step for a page already planned; ``tpdoc.answering.qa`` renders
every page it asks through it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from tpdoc.documents.pages import Document, open_document, parse_page_spec
from tpdoc.documents.tiling import TilePlan, TilingConfig, plan_page, tile_pixels

if TYPE_CHECKING:
    import torch
    from PIL import Image


@dataclass
class PreparedPage:
    """One page ready for the vision tower."""

    path: str
    number: int  # 1-based
    plan: TilePlan
    views: torch.Tensor  # [V, 3, T, T]
    image: Image.Image | None = None  # the rendered page, kept only when asked for


def prepare_page(
    doc: Document,
    number: int,
    plan: TilePlan,
    tiling: TilingConfig,
    *,
    dpi: float | None = None,
    keep_image: bool = False,
) -> PreparedPage:
    """Render page ``number`` of ``doc`` for ``plan`` and cut it into views ``[V, 3, T, T]``.

    A PDF page (unless ``dpi`` forced a resolution) is rasterised once, straight at the
    size the plan fits it to in the canvas; an image, or a PDF at a forced DPI, is
    rendered at its nominal size and resized by the tiler, as the published preprocessing
    does. ``plan`` may be any plan of the page (a planned-down one included).
    """
    at_plan = doc.kind == "pdf" and dpi is None
    image = doc.render(number, (plan.fit[1], plan.fit[0]) if at_plan else None)  # (w, h)
    return PreparedPage(
        path=doc.name,
        number=number,
        plan=plan,
        views=tile_pixels(image, plan, tiling),
        image=image if keep_image else None,
    )


def prepare_pages(
    path: str | Path,
    tiling: TilingConfig,
    *,
    pages: str | None = None,
    dpi: float | None = None,
    password: str | None = None,
    keep_images: bool = False,
) -> Iterator[PreparedPage]:
    """Yield each selected page of ``path`` planned and cut into views."""
    with open_document(path, password=password, dpi=dpi) as doc:
        for number in parse_page_spec(pages, doc.page_count, path):
            info = doc.info(number)
            plan = plan_page(info.height, info.width, tiling)
            yield prepare_page(doc, number, plan, tiling, dpi=dpi, keep_image=keep_images)
