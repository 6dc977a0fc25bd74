"""`tpdoc inspect`: tiling and visual-token budget of a document, no weights needed.

In: a document path and geometry options. Out: a rich table (or one JSON object with
``--json``) on stdout, optional tile-grid overlays as PNG files.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from tpdoc.cli.app import (
    DpiOpt,
    MaxTilesOpt,
    ModelOpt,
    PagesOpt,
    PasswordOpt,
    ScaleOpt,
    app,
    handled_errors,
    stderr_console,
    tile_options,
)


@app.command()
def inspect(
    file: Annotated[Path, typer.Argument(help="PDF or image to plan.")],
    model: ModelOpt = None,
    pages: PagesOpt = None,
    dpi: DpiOpt = None,
    max_tiles: MaxTilesOpt = None,
    scale: ScaleOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object on stdout.")] = False,
    overlay: Annotated[
        Path | None, typer.Option("--overlay", help="Write a PNG per page with the tile grid.")
    ] = None,
    password: PasswordOpt = None,
) -> None:
    """Show how a document is tiled and how many visual tokens each page costs.

    Needs no model weights: the geometry comes from the model's config alone.
    """
    with handled_errors():
        from tpdoc.answering.budget import inspect_document
        from tpdoc.weights.registry import load_geometry

        tiles = tile_options(max_tiles, scale)
        geometry = load_geometry(model, max_tiles=tiles["max_tiles"])
        geometry = geometry.with_options(scale=tiles["scale"])
        budget = inspect_document(
            file, geometry, pages=pages, dpi=dpi, password=password, overlay_dir=overlay
        )
        if as_json:
            typer.echo(json.dumps(budget.to_json()))
            return
        from rich.console import Console

        from tpdoc.cli.report import budget_table

        Console().print(budget_table(budget))
        if overlay is not None:
            stderr_console().print(f"overlays written to {overlay}", markup=False)
