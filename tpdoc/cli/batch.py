"""`tpdoc batch`: many documents and questions, one JSON line per pair, resumable.

In: paths (files, folders, ``-`` for paths on stdin; URIs too with ``--engine ray``) with
``-q QUESTION`` (repeatable), or ``--questions FILE.jsonl``. Out: JSON lines (``ask
--json`` plus ``id``, or an ``error`` record) appended to ``--out`` and/or printed on
stdout, progress and a summary on stderr; exit code 0 when every pair was answered, 1 when
some failed, 2 bad usage. ``--engine ray`` answers on Ray Data (``tpdoc.answering.distributed``,
imported only then) and writes the same records here as they come back.
"""

from __future__ import annotations

import json
import shlex
import sys
from collections.abc import Callable
from contextlib import nullcontext, redirect_stdout
from enum import Enum
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
    ShortlistOpt,
    app,
    exit_codes,
    handled_errors,
    stderr_console,
)
from tpdoc.cli.ask import DEFAULT_SHORTLIST, AllPagesOpt, ask_options, warn_cache
from tpdoc.cli.live import batch_progress
from tpdoc.errors import UsageError

if TYPE_CHECKING:
    from tpdoc.answering.batch import BatchSummary, ModelSpec
    from tpdoc.answering.distributed import RayEngine
    from tpdoc.answering.records import RecordWriter
    from tpdoc.answering.results import AnswerResult, AskOptions, FailedRequest, Request
    from tpdoc.cli.live import BatchProgress


Show = Callable[[dict, int], None]  # (a record, its pages): print it, move the bar


class Engine(str, Enum):
    local = "local"
    ray = "ray"


EngineOpt = Annotated[
    Engine,
    typer.Option(
        "--engine",
        help="local: this process; ray: a pool of model actors on Ray Data (the cluster at "
        "RAY_ADDRESS, else a local one); needs the tpdoc\\[ray] extra.",
    ),
]
WorkersOpt = Annotated[
    int | None,
    typer.Option(
        "--workers", min=1, help="Ray: model actors (default: as many as the cluster holds)."
    ),
]
GpusOpt = Annotated[
    float | None,
    typer.Option("--gpus-per-worker", min=0.0, help="Ray: GPUs each actor reserves (default 0)."),
]
CpusOpt = Annotated[
    float | None,
    typer.Option("--cpus-per-worker", min=0.01, help="Ray: CPUs each actor reserves (default 1)."),
]


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
    shortlist: ShortlistOpt = DEFAULT_SHORTLIST,
    no_cache: NoCacheOpt = False,
    password: PasswordOpt = None,
    device: DeviceOpt = "auto",
    dtype: DtypeOpt = "auto",
    engine: EngineOpt = Engine.local,
    workers: WorkersOpt = None,
    gpus_per_worker: GpusOpt = None,
    cpus_per_worker: CpusOpt = None,
) -> None:
    """Answer questions about many documents: one JSON line per (file, question).

    Records are appended to --out as each pair is done; Ctrl-C loses none, and --resume
    goes on where a run stopped.
    """
    with handled_errors():
        from tpdoc.answering.batch import ModelSpec, done_pairs, pair_key
        from tpdoc.answering.records import RecordWriter

        options = ask_options(
            pages=pages, dpi=dpi, max_tiles=max_tiles, scale=scale, budget=budget,
            max_new_tokens=max_new_tokens, password=password, all_pages=all_pages,
            shortlist=shortlist,
        )  # fmt: skip
        ray = _ray_engine(engine, workers, gpus_per_worker, cpus_per_worker)
        requests = _requests(paths or [], question or [], questions, glob, options, ray)
        if resume and out is None:
            raise UsageError("--resume needs --out: the records to resume from")
        with RecordWriter(out) if out is not None else nullcontext() as writer:
            skip = done_pairs(out) if resume else set()
            todo = sum(pair_key(r.file, r.question, r.id) not in skip for r in requests)
            spec = ModelSpec(model, device=device, dtype=dtype, cache=not no_cache,
                             batch_size=batch_size, max_tiles=options.max_tiles)  # fmt: skip
            echo = as_json or out is None
            if ray is None:
                summary = _run_local(spec, requests, writer, skip, echo=echo, todo=todo)
            else:
                summary = _run_ray(ray, spec, requests, writer, skip, echo=echo, todo=todo)
        raise typer.Exit(summary.exit_code)


def _run_local(
    spec: ModelSpec,
    requests: list[Request],
    writer: RecordWriter | None,
    skip: set[str],
    *,
    echo: bool,
    todo: int,
) -> BatchSummary:
    """The local engine: this process loads the model (unless nothing is left to do)."""
    from tpdoc.answering.batch import pair_key, run_batch

    qa = spec.load() if todo else None

    def answer(show: Show, bar: BatchProgress) -> BatchSummary:
        def on_record(record: dict, outcome: AnswerResult | FailedRequest) -> None:
            show(record, len(getattr(outcome, "pages", ())))

        def on_page(request: Request, phase: str, done: int, total: int) -> None:
            bar.page(pair_key(request.file, request.question, request.id), phase, done, total)

        return run_batch(
            qa, requests, writer=writer, skip=skip, on_record=on_record, on_progress=on_page
        )

    summary = _run(answer, echo=echo, todo=todo, out=writer)
    if qa is not None:
        warn_cache(qa)
    return summary


def _run_ray(
    engine: RayEngine,
    spec: ModelSpec,
    requests: list[Request],
    writer: RecordWriter | None,
    skip: set[str],
    *,
    echo: bool,
    todo: int,
) -> BatchSummary:
    """The Ray engine: actors load the model and answer; this process writes the records.
    Ray prints its workers' output and its own notices on stdout, so stdout is handed to
    stderr while it runs and only the records go to the real one."""
    import logging

    import ray.data

    from tpdoc.answering.distributed import run_batch

    ray.data.DataContext.get_current().enable_progress_bars = False  # tpdoc shows its own
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    note = stderr_console().print

    def answer(show: Show, _bar: BatchProgress) -> BatchSummary:  # progress per record
        with redirect_stdout(sys.stderr):
            return run_batch(
                requests, model=spec, engine=engine, writer=writer, skip=skip,
                on_record=show, report=lambda line: note(line, soft_wrap=True, markup=False),
            )  # fmt: skip

    return _run(answer, echo=echo, todo=todo, out=writer)


def _run(
    answer: Callable[[Show, BatchProgress], BatchSummary],
    *,
    echo: bool,
    todo: int,
    out: RecordWriter | None,
) -> BatchSummary:
    """``answer(show, bar)`` with a progress bar; ``show`` prints each record on stdout
    if ``echo``; the summary goes to stderr, and on Ctrl-C what was kept and how to go on."""
    from tpdoc.answering.batch import pair_key
    from tpdoc.cli.report import batch_summary_line

    written = 0
    with batch_progress(todo, "answering") as bar:
        stdout = sys.stdout  # the records' stream, whatever the engine does with sys.stdout

        def show(record: dict, pages: int) -> None:
            nonlocal written
            written += 1
            if echo:
                typer.echo(json.dumps(record, ensure_ascii=False), file=stdout)
            bar.advance(pages, pair_key(record["file"], record["question"], record.get("id")))

        try:
            summary = answer(show, bar)
        except KeyboardInterrupt:
            stderr_console().print(
                interrupted_note(written, todo, out), soft_wrap=True, markup=False
            )
            raise
    stderr_console().print(batch_summary_line(summary), soft_wrap=True)
    return summary


def interrupted_note(printed: int, todo: int, out: RecordWriter | None) -> str:
    """What a Ctrl-C left: the records kept, and the command that goes on from there."""
    kept = f"{printed if out is None else out.written} of {todo} records written"
    if out is None:
        return f"{kept} to stdout; with --out FILE a run can be resumed"
    args = [a for a in sys.argv[1:] if a != "--resume"]
    return f"{kept} to {out.path}; go on with: {shlex.join(['tpdoc', *args, '--resume'])}"


def _ray_engine(
    engine: Engine, workers: int | None, gpus: float | None, cpus: float | None
) -> RayEngine | None:
    """The Ray settings, or ``None`` for the local engine (which takes none of them)."""
    if engine is Engine.local:
        options = {"--workers": workers, "--gpus-per-worker": gpus, "--cpus-per-worker": cpus}
        given = [name for name, value in options.items() if value is not None]
        if given:
            raise UsageError(f"{', '.join(given)}: only with --engine ray")
        return None
    from tpdoc.answering.distributed import RayEngine, import_ray

    import_ray()  # a missing Ray is a usage error now, before any work
    return RayEngine(workers=workers, gpus_per_worker=gpus or 0.0, cpus_per_worker=cpus or 1.0)


def _requests(
    paths: list[str],
    questions: list[str],
    jsonl: Path | None,
    glob: str | None,
    options: AskOptions,
    ray: RayEngine | None,
) -> list[Request]:
    from tpdoc.answering.batch import expand_paths, read_questions, requests_for

    expand = expand_paths
    if ray is not None:
        from tpdoc.answering.distributed import expand_inputs as expand  # URIs too

    if jsonl is not None:
        if questions or paths:
            raise UsageError("--questions names the files itself: give no PATH and no -q with it")
        return read_questions(jsonl, options)
    if not questions:
        raise UsageError("give a question with -q QUESTION, or --questions FILE.jsonl")
    if not paths:
        raise UsageError("give at least one PATH (a file, a folder, or - for paths on stdin)")
    files = expand(paths, glob=glob, stdin=sys.stdin)
    if not files:
        raise UsageError(f"no documents found in {', '.join(paths)}")
    return requests_for(files, questions, options)
