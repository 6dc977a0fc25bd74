"""`tpdoc ask`: one question about one document.

In: a document, a question (``-``: read from stdin) and options. Out: on a terminal, the
answer streamed into a panel on stdout and one summary line (visual tokens, context,
seconds) on stderr; piped or with ``--plain``, the answer and a newline; with ``--json``,
one JSON object. ``--report`` adds the per-page token table and the stage timings on
stderr, whatever goes to stdout.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from tpdoc.cli.app import (
    BudgetOpt,
    DeviceOpt,
    DpiOpt,
    DtypeOpt,
    MaxNewTokensOpt,
    MaxTiles,
    MaxTilesOpt,
    ModelOpt,
    NoCacheOpt,
    PagesOpt,
    PasswordOpt,
    ProgressOpt,
    Scale,
    ScaleOpt,
    ShortlistOpt,
    app,
    handled_errors,
    stderr_console,
    tile_options,
)
from tpdoc.cli.live import LiveAnswer, PageProgress, output_mode
from tpdoc.errors import UsageError
from tpdoc.serve import SERVER_ENV

if TYPE_CHECKING:
    from tpdoc.answering.jobs import PageCallback
    from tpdoc.answering.qa import DocumentQA
    from tpdoc.answering.results import AnswerResult, AskOptions

QUESTION_FROM_STDIN = "-"
DEFAULT_SHORTLIST = 3  # tpdoc.answering.results.DEFAULT_SHORTLIST (a test keeps them equal)
MANY_PAGES = 8  # asking this many pages in full is worth a word before it starts

AllPagesOpt = Annotated[
    bool, typer.Option("--all-pages", help="Show every page's answer, not only the best.")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="One JSON object on stdout.")]
PlainOpt = Annotated[
    bool, typer.Option("--plain", help="Only the answer and a newline (the default when piped).")
]
ReportOpt = Annotated[
    bool,
    typer.Option(
        "--report", "-v", help="The per-page token table and the time of each stage, on stderr."
    ),
]
ServerOpt = Annotated[
    str | None,
    typer.Option(
        "--server",
        envvar=SERVER_ENV,
        help="Ask a running `tpdoc serve` at this URL instead of loading the model here.",
    ),
]


@app.command()
def ask(
    file: Annotated[Path, typer.Argument(help="PDF or image to ask.")],
    question: Annotated[str, typer.Argument(help="The question, or - to read it from stdin.")],
    model: ModelOpt = None,
    pages: PagesOpt = None,
    dpi: DpiOpt = None,
    max_tiles: MaxTilesOpt = None,
    scale: ScaleOpt = None,
    budget: BudgetOpt = None,
    max_new_tokens: MaxNewTokensOpt = 32,
    all_pages: AllPagesOpt = False,
    shortlist: ShortlistOpt = DEFAULT_SHORTLIST,
    as_json: JsonOpt = False,
    plain: PlainOpt = False,
    report: ReportOpt = False,
    progress: ProgressOpt = False,
    no_cache: NoCacheOpt = False,
    password: PasswordOpt = None,
    device: DeviceOpt = "auto",
    dtype: DtypeOpt = "auto",
    server: ServerOpt = None,
) -> None:
    """Answer a question about a document.

    Every selected page is asked; the answer with the highest confidence (mean
    log-probability of its tokens) wins. A document longer than --shortlist pages is first
    ranked by a one-tile overview of each page, and only the best pages are read in full.
    Visual tokens are cached between runs.
    """
    with handled_errors():
        fields = dict(
            pages=pages, dpi=dpi, **tile_options(max_tiles, scale), budget=budget,
            max_new_tokens=max_new_tokens, password=password, all_pages=all_pages,
            shortlist=shortlist,
        )  # fmt: skip
        text = _read_question(question)
        if server:
            local = {"--model": model, "--device": device != "auto", "--dtype": dtype != "auto",
                     "--no-cache": no_cache}  # fmt: skip
            _ask_server(server, file, text, output_mode(as_json, plain), fields, local, report)
        else:
            _ask_local(file, text, fields, (as_json, plain, report, progress), model=model,
                       device=device, dtype=dtype, no_cache=no_cache)  # fmt: skip


def _ask_local(
    file: Path, text: str, fields: dict[str, Any], output: tuple[bool, bool, bool, bool], *,
    model: str | None, device: str, dtype: str, no_cache: bool,
) -> None:  # fmt: skip
    """The question answered by a model loaded here; ``output``: ``--json``, ``--plain``,
    ``--report``, ``--progress``."""
    from tpdoc.answering.preflight import check_document
    from tpdoc.answering.qa import DocumentQA
    from tpdoc.answering.results import AskOptions, check_question

    text = check_question(text)
    options = AskOptions(**fields)
    as_json, plain, report, progress = output
    mode = output_mode(as_json, plain)
    pages = check_document(file, options, model)  # bad input fails before the model loads
    shown = progress or stderr_console().is_terminal
    if shown and (note := pages_note(pages, options)):
        stderr_console().print(note, soft_wrap=True, markup=False)
    qa = DocumentQA(
        model, device=device, dtype=dtype, cache=not no_cache, max_tiles=options.max_tiles
    )
    if mode == "rich":
        answer = partial(qa.ask, file, text, options=options)
        _ask_rich(file, text, options.all_pages, answer, report=report)
    else:
        with PageProgress(shown) as bar:
            result = qa.ask(file, text, options=options, on_progress=bar)
        _print_record(mode, result.to_json())
        if report:
            _print_report(result)
    warn_cache(qa)


def _ask_server(
    url: str,
    file: Path,
    text: str,
    mode: str,
    fields: dict[str, Any],
    local: dict[str, Any],
    report: bool = False,
) -> None:
    """The question asked at a running ``tpdoc serve``; printed as a local answer is."""
    from tpdoc.serve.client import ask_server, record_of, result_of

    if given := [name for name, value in local.items() if value]:
        raise UsageError(
            f"{', '.join(given)}: not with --server ({SERVER_ENV}), where the server's model "
            "answers; set them on `tpdoc serve`, or ask here without --server"
        )
    if mode == "rich":

        def answer(on_text: PageCallback | None = None, on_progress: Any = None) -> AnswerResult:
            return result_of(ask_server(url, file, text, fields, result=True))

        _ask_rich(file, text, fields["all_pages"], answer, report=report)
    else:
        response = ask_server(url, file, text, fields, result=report)
        _print_record(mode, record_of(response))
        if report:  # the whole result, for the table (the record has no per-page plans)
            _print_report(result_of(response))


def pages_note(pages: int, options: AskOptions) -> str | None:
    """What a long document will cost, said before the work starts (None: nothing to say)."""
    ranked = options.shortlist and not options.all_pages and options.pages is None
    if ranked and pages > options.shortlist:
        best = options.shortlist
        return (
            f"{pages} pages: ranking them by a one-tile overview each, then reading the best "
            f"{best} in full (--shortlist N to change, --all-pages to read every page)"
        )
    if pages >= MANY_PAGES:
        return f"asking {pages} pages at full resolution; narrow with --pages"
    return None


def ask_options(
    *, max_tiles: MaxTiles | None = None, scale: Scale | None = None, **fields: Any
) -> AskOptions:
    """``AskOptions`` from command-line values (the enums become numbers)."""
    from tpdoc.answering.results import AskOptions

    return AskOptions(**tile_options(max_tiles, scale), **fields)


def _read_question(question: str) -> str:
    if question != QUESTION_FROM_STDIN:
        return question
    if sys.stdin.isatty():  # else a terminal just waits, with no word of what for
        stderr_console().print("reading the question from stdin; end it with Ctrl-D")
    return sys.stdin.read()


def _print_record(mode: str, record: dict[str, Any]) -> None:
    """The ``ask --json`` record as one JSON line, or (plain) the answer alone, or one
    ``page<TAB>answer`` line per page with ``--all-pages``."""
    if mode == "json":
        typer.echo(json.dumps(record, ensure_ascii=False))
    elif record["pages"] is None:
        typer.echo(record["answer"])
    else:
        for page in record["pages"]:
            typer.echo(f"{page['page']}\t{page['answer']}")


def _ask_rich(
    file: Path,
    question: str,
    all_pages: bool,
    answer: Callable[..., AnswerResult],
    *,
    report: bool = False,
) -> None:
    """The answer streams into a panel (``answer(on_text=...)``); the final panel follows,
    printed once at its full height, then one summary line (``report``: the table)."""
    from rich.console import Console

    from tpdoc.cli.report import answer_panel, answer_summary_line, page_answers_table

    console = Console()
    with LiveAnswer(console, f"{file} · {question}") as live:
        result = answer(on_text=live.update, on_progress=live.progress)
    console.print(answer_panel(result))
    if all_pages:
        console.print(page_answers_table(result))
    if report:
        _print_report(result)
    else:
        stderr_console().print(answer_summary_line(result), soft_wrap=True)


def _print_report(result: AnswerResult) -> None:
    from tpdoc.cli.report import answer_report

    stderr_console().print(answer_report(result))


def warn_cache(qa: DocumentQA) -> None:
    """A cache that could not be written is worth a warning, not a failure."""
    if qa.cache is not None and qa.cache.write_error:
        from rich.markup import escape

        stderr_console().print(
            "[yellow]warning:[/yellow] visual-token cache not written: "
            + escape(qa.cache.write_error),
            soft_wrap=True,
        )
