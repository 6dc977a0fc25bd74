"""`tpdoc batch`: many documents and questions, one JSON line per pair, resumable.

In: paths (files, folders, ``-`` for paths on stdin) with ``-q QUESTION`` (repeatable),
or ``--questions FILE.jsonl``. Out: JSON lines (``ask --json`` plus ``id``, or an
``error`` record) appended to ``--out`` and/or printed on stdout, progress and a summary
on stderr; exit code 0 when every pair was answered, 1 when some failed, 2 bad usage.
"""

from __future__ import annotations

import json
import sys
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

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
    PagesOpt,
    PasswordOpt,
    ScaleOpt,
    app,
    exit_codes,
    handled_errors,
    stderr_console,
)
from tpdoc.cli.ask import AllPagesOpt, ask_options, warn_cache
from tpdoc.cli.live import batch_progress
from tpdoc.errors import UsageError

if TYPE_CHECKING:
    from tpdoc.answering.batch import BatchSummary
    from tpdoc.answering.qa import DocumentQA
    from tpdoc.answering.records import RecordWriter
    from tpdoc.answering.results import AnswerResult, AskOptions, FailedRequest, Request


@app.command(
    epilog=exit_codes(
        ok="every pair was answered (or skipped by --resume)",
        failed='some pairs failed (their records carry "error")',
    )
)
def batch(
    paths: Annotated[
        list[str] | None,
        typer.Argument(help="Files, folders (recursive), or - for paths on stdin."),
    ] = None,
    question: Annotated[
        list[str] | None,
        typer.Option("--question", "-q", help="Ask this of every file (repeat -q for more)."),
    ] = None,
    questions: Annotated[
        Path | None,
        typer.Option("--questions", help="JSONL: file, question, optional id and pages a line."),
    ] = None,
    glob: Annotated[
        str | None, typer.Option("--glob", help="File names to take from folders, e.g. '*.pdf'.")
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Append JSON lines to this file.")
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Skip pairs whose records are already in --out.")
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="JSON lines on stdout (the default without --out).")
    ] = False,
    batch_size: Annotated[
        int | None,
        typer.Option("--batch-size", min=1, help="Pages per pass through the model (default 8)."),
    ] = None,
    model: ModelOpt = None,
    pages: PagesOpt = None,
    dpi: DpiOpt = None,
    max_tiles: MaxTilesOpt = None,
    scale: ScaleOpt = None,
    budget: BudgetOpt = None,
    max_new_tokens: MaxNewTokensOpt = 32,
    all_pages: AllPagesOpt = False,
    no_cache: NoCacheOpt = False,
    password: PasswordOpt = None,
    device: DeviceOpt = "auto",
    dtype: DtypeOpt = "auto",
) -> None:
    """Answer questions about many documents: one JSON line per (file, question).

    Records are appended to --out as each pair is done; Ctrl-C loses none, and --resume
    goes on where a run stopped.
    """
    with handled_errors():
        from tpdoc.answering.batch import done_pairs, pair_key
        from tpdoc.answering.qa import DocumentQA
        from tpdoc.answering.records import RecordWriter

        options = ask_options(
            pages=pages, dpi=dpi, max_tiles=max_tiles, scale=scale, budget=budget,
            max_new_tokens=max_new_tokens, password=password, all_pages=all_pages,
        )  # fmt: skip
        requests = _requests(paths or [], question or [], questions, glob, options)
        if resume and out is None:
            raise UsageError("--resume needs --out: the records to resume from")
        with RecordWriter(out) if out is not None else nullcontext() as writer:
            skip = done_pairs(out) if resume else set()
            todo = sum(pair_key(r.file, r.question, r.id) not in skip for r in requests)
            qa = DocumentQA(
                model, device=device, dtype=dtype, cache=not no_cache,
                pages_per_step=batch_size, sequences_per_batch=batch_size,
                max_tiles=options.max_tiles,
            ) if todo else None  # fmt: skip
            summary = _run(qa, requests, writer, skip, echo=as_json or out is None, todo=todo)
        raise typer.Exit(summary.exit_code)


def _run(
    qa: DocumentQA | None,
    requests: list[Request],
    writer: RecordWriter | None,
    skip: set[str],
    *,
    echo: bool,
    todo: int,
) -> BatchSummary:
    """Run with a progress bar; records to stdout if ``echo``; the summary on stderr."""
    from tpdoc.answering.batch import run_batch
    from tpdoc.cli.report import batch_summary_line

    with batch_progress(todo, "answering") as bar:

        def on_record(record: dict, outcome: AnswerResult | FailedRequest) -> None:
            if echo:
                typer.echo(json.dumps(record, ensure_ascii=False))
            bar.advance(len(getattr(outcome, "pages", ())))

        summary = run_batch(qa, requests, writer=writer, skip=skip, on_record=on_record)
    stderr_console().print(batch_summary_line(summary), soft_wrap=True)
    if qa is not None:
        warn_cache(qa)
    return summary


def _requests(
    paths: list[str],
    questions: list[str],
    jsonl: Path | None,
    glob: str | None,
    options: AskOptions,
) -> list[Request]:
    from tpdoc.answering.batch import expand_paths, read_questions, requests_for

    if jsonl is not None:
        if questions or paths:
            raise UsageError("--questions names the files itself: give no PATH and no -q with it")
        return read_questions(jsonl, options)
    if not questions:
        raise UsageError("give a question with -q QUESTION, or --questions FILE.jsonl")
    if not paths:
        raise UsageError("give at least one PATH (a file, a folder, or - for paths on stdin)")
    files = expand_paths(paths, glob=glob, stdin=sys.stdin)
    if not files:
        raise UsageError(f"no documents found in {', '.join(paths)}")
    return requests_for(files, questions, options)
