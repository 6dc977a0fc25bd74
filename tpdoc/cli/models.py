"""`tpdoc models` and `tpdoc pull`: the models tpdoc knows, and fetching one ahead of time.

In: nothing (``models``) or a hub id (``pull``). Out: a table of the embedded and the
published checkpoints with their figures and local status (or JSON with ``--json``), or
the folder a pulled model now lives in, on stdout; notes and download progress on stderr.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer

from tpdoc.cli.app import app, exit_codes, handled_errors, stderr_console

PIPE_WIDTH = 1000  # the table keeps its natural width; this only stops rich cutting it
STATUS_STYLE = {"cached": "green", "weights shipped": "green", "partial": "yellow"}


@app.command()
def models(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON list on stdout.")] = False,
) -> None:
    """List the embedded model and the published TokenPacker checkpoints.

    Figures for the published ones (max resolution, average visual tokens per page) are the
    TokenPacker model zoo's; "local" says whether a model is in the local cache.
    """
    with handled_errors():
        from tpdoc.weights.catalogue import model_catalogue, tower_status

        rows = model_catalogue()
        tower, status = tower_status()
        if as_json:
            typer.echo(json.dumps([row.to_json() for row in rows]))
        else:
            from rich.console import Console

            console = Console()
            if not console.is_terminal:  # a pipe or a file: full ids, never cut to 80 columns
                console = Console(width=PIPE_WIDTH)
            console.print(_table(rows))
        stderr_console().print(
            f"the published checkpoints read the vision tower {tower} ({status}); "
            "`tpdoc pull ID` fetches a checkpoint and its tower"
        )


def _table(rows):
    from rich import box
    from rich.table import Table

    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("model", no_wrap=True)
    for header in ("max res.", "tokens/tile", "max tiles", "~tokens/page"):
        table.add_column(header, justify="right")
    table.add_column("local")
    for row in rows:
        res = f"{row.max_resolution}x{row.max_resolution}" if row.max_resolution else "-"
        tiles = str(row.max_tiles) if row.mode == "slice" else "1 (pad)"
        style = STATUS_STYLE.get(row.status, "dim")
        table.add_row(
            row.name,
            res,
            str(row.tokens_per_tile),
            tiles,
            "-" if row.avg_tokens_per_page is None else f"{row.avg_tokens_per_page}",
            f"[{style}]{row.status}[/{style}]",
        )
    return table


@app.command(epilog=exit_codes(failed="the model could not be found or downloaded"))
def pull(
    model_id: Annotated[str, typer.Argument(metavar="ID", help="Hub id, e.g. org/name.")],
) -> None:
    """Download a hub model (and the vision tower it needs) into the Hugging Face cache.

    Afterwards the model loads offline (HF_HUB_OFFLINE=1). Prints the model's folder.
    """
    with handled_errors():
        from tpdoc.weights.pull import pull as pull_model

        pulled = pull_model(model_id)
        for repo, folder in pulled.extras:
            stderr_console().print(f"{repo}: {folder}")
        typer.echo(str(pulled.folder))
