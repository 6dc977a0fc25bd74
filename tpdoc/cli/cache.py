"""`tpdoc cache info` and `tpdoc cache clear`: the visual-token cache on disk.

In: nothing (the cache folder is ``TPDOC_CACHE`` or the platform's user cache). Out: its
folder, entry count and size (JSON with ``--json``), or how many entries were removed.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer

from tpdoc.cli.app import TpdocTyper, app, exit_codes, handled_errors

cache_app = TpdocTyper(
    name="cache",
    epilog=exit_codes(failed="the cache folder could not be used"),
    help="The visual-token cache: packed tokens of pages already seen.",
    no_args_is_help=True,
)
app.add_typer(cache_app)


@cache_app.command(epilog=exit_codes(failed="the cache folder could not be used"))
def info(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object on stdout.")] = False,
) -> None:
    """Where the cache is, how many entries it holds and how big it is."""
    with handled_errors():
        from tpdoc.answering.cache import VisualTokenCache

        summary = VisualTokenCache().info()
        if as_json:
            typer.echo(json.dumps(summary.to_json()))
            return
        from rich.console import Console

        from tpdoc.cli.report import cache_table

        Console().print(cache_table(summary))


@cache_app.command(epilog=exit_codes(failed="the cache folder could not be used"))
def clear() -> None:
    """Delete every cached entry."""
    with handled_errors():
        from tpdoc.answering.cache import VisualTokenCache

        cache = VisualTokenCache()
        size = cache.info().bytes
        removed = cache.clear()
        typer.echo(f"removed {removed} entries ({size / 1024**2:.1f} MiB) from {cache.root}")
