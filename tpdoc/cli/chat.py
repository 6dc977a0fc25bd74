"""`tpdoc chat`: several questions about one document, its pages encoded once.

In: a document and options; then questions, one per line, on stdin (``/page N``,
``/page all``, ``/report``, ``/quit``; end of input or Ctrl-D ends), edited with
``readline`` and kept in a history at a terminal (``tpdoc.cli.lineinput``). Out: each
answer streamed (a panel on a terminal, a plain line otherwise) on stdout; notes and
``/report`` (time to first token per question) on stderr. At a terminal Ctrl-C stops the
answer being written (or drops the line being typed) and asks again.
"""

from __future__ import annotations

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
from tpdoc.cli.ask import ask_options, warn_cache
from tpdoc.cli.lineinput import LineReader
from tpdoc.cli.live import LiveAnswer, stdout_is_terminal

if TYPE_CHECKING:
    from tpdoc.answering.chat import ChatSession

COMMANDS = ("/page", "/report", "/quit")
HELP = "ask a question; /page N or /page all, /report, /quit (or Ctrl-D)"
STOPPED = "answer stopped (Ctrl-C); ask again, or Ctrl-D to quit"


@app.command(
    epilog=exit_codes(
        ok="the session ended (/quit, Ctrl-D or the end of stdin)",
        failed="the document or the model could not be used",
    )
)
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

    Each question is answered on its own (not a conversation). At a terminal, lines are
    edited with the arrow keys and kept in a history; Ctrl-C stops an answer, Ctrl-D quits.
    """
    with handled_errors():
        from tpdoc.answering.chat import ChatSession
        from tpdoc.answering.preflight import check_document
        from tpdoc.answering.qa import DocumentQA

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
        run_session(session, LineReader.for_stdin())


def run_session(session: ChatSession, reader: LineReader) -> None:
    """Every line of ``reader`` until ``/quit`` or its end. At a terminal, Ctrl-C stops
    the line being run (an answer being written) and goes back to the prompt; from a pipe
    it stops the session (exit 130), as it would any other command."""
    with reader:
        for line in reader:
            try:
                if not _handle(session, line):
                    break
            except KeyboardInterrupt:
                if not reader.interactive:
                    raise
                stderr_console().print(STOPPED)


def _handle(session: ChatSession, line: str) -> bool:
    """Run one line; ``False`` ends the session. Bad input is a note, not the end."""
    from rich.markup import escape

    from tpdoc.errors import TpdocError

    command, _, argument = line.partition(" ")
    try:
        if command.startswith("/") and command not in COMMANDS:
            stderr_console().print(f"unknown command {command}; {HELP}", markup=False)
        elif command == "/quit":
            return False
        elif command == "/report":
            from tpdoc.cli.report import chat_report

            stderr_console().print(chat_report(session.turns))
        elif command == "/page":
            session.select(_page_argument(argument))
            stderr_console().print(f"asking page(s) {', '.join(map(str, session.selected))}")
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
