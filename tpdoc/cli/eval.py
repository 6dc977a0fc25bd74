"""`tpdoc eval`: ANLS and exact match on a DocVQA-layout dataset.

In: the dataset JSON and the folder its ``image`` paths are relative to. Out: a summary
table on stdout (one JSON object with ``--json``), one JSON line per question in
``--out``, progress on stderr; exit code 1 when some questions could not be answered.
"""

from __future__ import annotations

import json
from contextlib import nullcontext
from pathlib import Path
from typing import Annotated

import typer

from tpdoc.cli.app import (
    BudgetOpt,
    DeviceOpt,
    DpiOpt,
    DtypeOpt,
    MaxNewTokensOpt,
    MaxTilesOpt,
    ModelOpt,
    NoCacheOpt,
    PasswordOpt,
    ScaleOpt,
    app,
    exit_codes,
    handled_errors,
)
from tpdoc.cli.ask import ask_options, warn_cache
from tpdoc.cli.live import batch_progress


@app.command(
    name="eval",
    epilog=exit_codes(
        ok="every question was answered",
        failed="some questions could not be answered, or the dataset or model not used",
    ),
)
def eval_(
    dataset: Annotated[Path, typer.Argument(help='DocVQA-layout JSON: {"data": [...]}.')],
    images: Annotated[
        Path, typer.Option("--images", help="Folder the items' image paths are relative to.")
    ],
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Write one JSON line per question here.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="The summary as JSON on stdout.")] = False,
    model: ModelOpt = None,
    dpi: DpiOpt = None,
    max_tiles: MaxTilesOpt = None,
    scale: ScaleOpt = None,
    budget: BudgetOpt = None,
    max_new_tokens: MaxNewTokensOpt = 32,
    no_cache: NoCacheOpt = False,
    password: PasswordOpt = None,
    device: DeviceOpt = "auto",
    dtype: DtypeOpt = "auto",
) -> None:
    """Score a model on a DocVQA-layout dataset: ANLS (as DocVQA defines it) and exact match."""
    with handled_errors():
        from tpdoc.answering.evaluate import evaluate, load_dataset
        from tpdoc.answering.qa import DocumentQA
        from tpdoc.answering.records import RecordWriter, check_writable

        options = ask_options(
            dpi=dpi, max_tiles=max_tiles, scale=scale, budget=budget,
            max_new_tokens=max_new_tokens, password=password,
        )  # fmt: skip
        items = load_dataset(dataset, images)
        if out is not None:
            check_writable(out)  # before the model loads; emptied only once it has
        qa = DocumentQA(
            model, device=device, dtype=dtype, cache=not no_cache, max_tiles=options.max_tiles
        )
        with (
            RecordWriter(out, append=False) if out is not None else nullcontext() as writer,
            batch_progress(len(items), "evaluating") as bar,
        ):

            def on_score(score) -> None:
                if writer is not None:
                    writer.write(score.to_json())
                bar.advance(score.pages_asked)

            summary = evaluate(qa, items, options, on_score=on_score, dataset=str(dataset))
        if as_json:
            typer.echo(json.dumps(summary.to_json()))
        else:
            from rich.console import Console

            from tpdoc.cli.report import eval_table

            Console().print(eval_table(summary))
        warn_cache(qa)
        raise typer.Exit(1 if summary.failed else 0)
