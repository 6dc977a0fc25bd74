"""`tpdoc ask`: one question about one document.

In: a document, a question (``-``: read from stdin) and options. Out: on a terminal, the
answer streamed into a panel on stdout and the token-budget report on stderr; piped or
with ``--plain``, the answer and a newline; with ``--json``, one JSON object.
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
    Scale,
    ScaleOpt,
    app,
    handled_errors,
    stderr_console,
    tile_options,
)
from tpdoc.cli.live import LiveAnswer, output_mode
from tpdoc.errors import UsageError
from tpdoc.serve import SERVER_ENV

if TYPE_CHECKING:
    from tpdoc.answering.qa import DocumentQA, PageCallback
    from tpdoc.answering.results import AnswerResult, AskOptions

QUESTION_FROM_STDIN = "-"

AllPagesOpt = Annotated[
    bool, typer.Option("--all-pages", help="Show every page's answer, not only the best.")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="One JSON object on stdout.")]
PlainOpt = Annotated[
    bool, typer.Option("--plain", help="Only the answer and a newline (the default when piped).")
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
    as_json: JsonOpt = False,
    plain: PlainOpt = False,
    no_cache: NoCacheOpt = False,
    password: PasswordOpt = None,
    device: DeviceOpt = "auto",
    dtype: DtypeOpt = "auto",
    server: ServerOpt = None,
) -> None:
    """Answer a question about a document.

    Every selected page is asked; the answer with the highest confidence (mean
    log-probability of its tokens) wins. Visual tokens are cached between runs.
    """
    with handled_errors():
        fields = dict(
            pages=pages, dpi=dpi, **tile_options(max_tiles, scale), budget=budget,
            max_new_tokens=max_new_tokens, password=password, all_pages=all_pages,
        )  # fmt: skip
        text = _read_question(question)
        if server:
            local = {"--model": model, "--device": device != "auto", "--dtype": dtype != "auto",
                     "--no-cache": no_cache}  # fmt: skip
            _ask_server(server, file, text, output_mode(as_json, plain), fields, local)
        else:
            _ask_local(file, text, fields, (as_json, plain), model=model, device=device,
                       dtype=dtype, no_cache=no_cache)  # fmt: skip


def _ask_local(
    file: Path, text: str, fields: dict[str, Any], output: tuple[bool, bool], *, model: str | None,
    device: str, dtype: str, no_cache: bool,
) -> None:  # fmt: skip
    """The question answered by a model loaded here."""
    from tpdoc.answering.qa import DocumentQA, check_document
    from tpdoc.answering.results import AskOptions, check_question

    text = check_question(text)
    options = AskOptions(**fields)
    mode = output_mode(*output)
    check_document(file, options, model)  # bad input fails before the model loads
    qa = DocumentQA(
        model, device=device, dtype=dtype, cache=not no_cache, max_tiles=options.max_tiles
    )
    if mode == "rich":
        _ask_rich(file, text, options.all_pages, partial(qa.ask, file, text, options=options))
    else:
        _print_record(mode, qa.ask(file, text, options=options).to_json())
    warn_cache(qa)


def _ask_server(
    url: str, file: Path, text: str, mode: str, fields: dict[str, Any], local: dict[str, Any]
) -> None:
    """The question asked at a running ``tpdoc serve``; printed as a local answer is."""
    from tpdoc.serve.client import ask_server, record_of, result_of

    if given := [name for name, value in local.items() if value]:
        raise UsageError(
            f"{', '.join(given)}: not with --server ({SERVER_ENV}), where the server's model "
            "answers; set them on `tpdoc serve`, or ask here without --server"
        )
    if mode == "rich":

        def answer(on_text: PageCallback | None = None) -> AnswerResult:
            return result_of(ask_server(url, file, text, fields, result=True))

        _ask_rich(file, text, fields["all_pages"], answer)
    else:
        _print_record(mode, record_of(ask_server(url, file, text, fields)))


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
    file: Path, question: str, all_pages: bool, answer: Callable[..., AnswerResult]
) -> None:
    """The answer streams into a panel (``answer(on_text=...)``); the final panel and the
    report follow."""
    from rich.console import Console

    from tpdoc.cli.report import answer_panel, answer_report, page_answers_table

    console = Console()
    with LiveAnswer(console, f"{file} · {question}") as live:
        result = answer(on_text=live.update)
    console.print(answer_panel(result))
    if all_pages:
        console.print(page_answers_table(result))
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
