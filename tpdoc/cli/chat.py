"""`tpdoc chat`: several questions about one document, its pages encoded once.

In: a document and options; then questions, one per line, on stdin (``/page N``,
``/page all``, ``/report``, ``/quit``; end of input or Ctrl-D ends). Out: each answer
streamed (a panel on a terminal, a plain line otherwise) on stdout; the prompt, notes
and ``/report`` (time to first token per question) on stderr.
"""

from __future__ import annotations

import sys
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
    handled_errors,
    stderr_console,
)
from tpdoc.cli.ask import ask_options, warn_cache
from tpdoc.cli.live import LiveAnswer, stdout_is_terminal

if TYPE_CHECKING:
    from tpdoc.answering.chat import ChatSession

HELP = "ask a question; /page N or /page all, /report, /quit (or Ctrl-D)"


@app.command()
def chat(
    file: Annotated[Path, typer.Argument(help="PDF or image to ask about.")],
    model: ModelOpt = None,
    pages: PagesOpt = None,
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
    """Ask several questions about one document; its pages are encoded once and the
    language model's cache of the document is reused for every question.

    Each question is answered on its own (not a conversation).
    """
    with handled_errors():
        from tpdoc.answering.chat import ChatSession
        from tpdoc.answering.qa import DocumentQA, check_document

        options = ask_options(
            pages=pages, dpi=dpi, max_tiles=max_tiles, scale=scale, budget=budget,
            max_new_tokens=max_new_tokens, password=password,
        )  # fmt: skip
        check_document(file, options, model)  # bad input fails before the model loads
        qa = DocumentQA(
            model, device=device, dtype=dtype, cache=not no_cache, max_tiles=options.max_tiles
        )
        session = ChatSession(qa, file, options)
        warn_cache(qa)  # the pages were encoded, and cached, just now
        seconds = sum(session.open_timings.values())
        stderr_console().print(
            f"{file}: {len(session.pages)} page(s) ready in {seconds:.2f}s; {HELP}", soft_wrap=True
        )
        for line in _lines():
            if not _handle(session, line):
                break


def _lines():
    """Questions and commands until end of input; a prompt only for a person."""
    interactive = sys.stdin.isatty()
    while True:
        if interactive:
            stderr_console().print("[bold]?[/bold] ", end="")
        line = sys.stdin.readline()
        if not line:
            return  # end of input, Ctrl-D
        if line.strip():
            yield line.strip()


def _handle(session: ChatSession, line: str) -> bool:
    """Run one line; ``False`` ends the session. Bad input is a note, not the end."""
    from rich.markup import escape

    from tpdoc.errors import TpdocError

    command, _, argument = line.partition(" ")
    try:
        if command == "/quit":
            return False
        if command == "/report":
            from tpdoc.cli.report import chat_report

            stderr_console().print(chat_report(session.turns))
        elif command == "/page":
            session.select(_page_argument(argument))
            stderr_console().print(f"asking page(s) {', '.join(map(str, session.selected))}")
        elif command.startswith("/"):
            stderr_console().print(f"unknown command {command}; {HELP}", markup=False)
        else:
            _answer(session, line)
    except TpdocError as exc:
        stderr_console().print(f"[red]error:[/red] {escape(str(exc))}", soft_wrap=True)
    return True


def _page_argument(argument: str) -> int | None:
    from tpdoc.errors import UsageError

    text = argument.strip().lower()
    if text == "all":
        return None
    if not text.isdigit():
        raise UsageError(f"/page needs a page number or 'all', got {argument!r}")
    return int(text)


def _answer(session: ChatSession, question: str) -> None:
    if not stdout_is_terminal():
        typer.echo(session.ask(question).answer)
        return
    from rich.console import Console

    from tpdoc.cli.report import chat_turn_panel

    console = Console()
    with LiveAnswer(console, question) as live:
        turn = session.ask(question, on_text=live.update)
    console.print(chat_turn_panel(turn))
