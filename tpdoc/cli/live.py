"""Terminal displays shared by `ask`, `chat`, `batch` and `eval`: answers streaming into a
panel, and a progress bar on stderr.

In: a rich console, and text or outcomes as they arrive. Out: transient live displays;
the final results are printed by the commands themselves.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from tpdoc.cli.app import stderr_console
from tpdoc.errors import UsageError

REFRESH_PER_SECOND = 12
PANEL_FRAME_LINES = 2  # a panel's top and bottom border
PANEL_FRAME_COLUMNS = 4  # its side borders and their padding


def stdout_is_terminal() -> bool:
    """Whether answers go to a person (a panel) or to a pipe (plain text)."""
    return sys.stdout.isatty()


def output_mode(as_json: bool, plain: bool) -> str:
    """``json``, ``plain`` or ``rich`` (a terminal without ``--plain``)."""
    if as_json and plain:
        raise UsageError("--json and --plain cannot be used together")
    if as_json:
        return "json"
    return "plain" if plain or not stdout_is_terminal() else "rich"


class LiveAnswer:
    """A panel whose text grows token by token; one line per page when several pages
    are answered at once. Transient: the command prints the final panel once, at its
    full height, when the answer is complete.

    While it streams, the panel never grows taller than the screen: it shows the last
    lines that fit, under a "… N lines above" line. A live display taller than the
    screen cannot be redrawn (the terminal has scrolled its top away), which left torn
    copies of the panel behind; ``vertical_overflow="visible"`` has the same flaw, and
    rich's default ("ellipsis") hides the newest text, which is what a person watches.
    """

    def __init__(self, console: Any, title: str) -> None:
        from rich.live import Live

        self.console = console
        self.title = " ".join(title.split())  # one line, whatever the question held
        self.texts: dict[int, str] = {}
        self.status = "reading the document…"
        self.live = Live(
            self._render(),
            console=console,
            transient=True,
            refresh_per_second=REFRESH_PER_SECOND,
            vertical_overflow="crop",  # never reached: _render fits the screen
        )

    def __enter__(self) -> LiveAnswer:
        self.live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.live.stop()

    def update(self, page: int, text: str) -> None:
        self.texts[page] = text
        self.live.update(self._render())

    def progress(self, phase: str, done: int, total: int) -> None:
        """``DocumentQA``'s page progress, shown under the answer while work goes on."""
        self.status = progress_text(phase, done, total)
        self.live.update(self._render())

    def _render(self) -> Any:
        from rich.console import Group
        from rich.panel import Panel
        from rich.spinner import Spinner
        from rich.text import Text

        spinner = Spinner("dots", text=Text(self.status, style="dim"))
        if not self.texts:
            return Panel(spinner, title=Text(self.title), title_align="left")
        if len(self.texts) == 1:
            body = self._tail(Text(next(iter(self.texts.values()))))
        else:
            lines = (Text.assemble((f"p{n} ", "dim"), t) for n, t in sorted(self.texts.items()))
            body = self._tail(Text("\n").join(lines))
        return Panel(Group(body, spinner), title=Text(self.title), title_align="left")

    def _tail(self, text: Any) -> Any:
        """The last lines of ``text`` that fit on the screen inside the panel's frame."""
        from rich.text import Text

        width, height = self.console.size
        room = max(height - PANEL_FRAME_LINES - 2, 2)  # the status line, and the cursor
        lines = text.wrap(self.console, max(width - PANEL_FRAME_COLUMNS, 1))
        if len(lines) <= room:
            return text
        hidden = len(lines) - room + 1
        above = Text(f"… {hidden} line{'s' if hidden != 1 else ''} above", style="dim")
        return Text("\n").join([above, *lines[hidden:]])


def progress_text(phase: str, done: int, total: int) -> str:
    if phase == "ranking":
        return f"ranking pages by overview: {done} of {total}"
    return f"reading page {done} of {total}" if total > 1 else "reading the page…"


class PageProgress:
    """``DocumentQA``'s page progress as a bar on stderr (a terminal, or ``--progress``),
    for answers that do not stream into a panel (``--plain``, ``--json``)."""

    def __init__(self, shown: bool) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        console = stderr_console()
        self.progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            console=console, transient=console.is_terminal, disable=not shown,
        )  # fmt: skip
        self.tasks: dict[str, Any] = {}

    def __enter__(self) -> PageProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def __call__(self, phase: str, done: int, total: int) -> None:
        label = "ranking pages" if phase == "ranking" else "reading pages"
        if phase not in self.tasks:
            self.tasks[phase] = self.progress.add_task(label, total=total)
        self.progress.update(self.tasks[phase], completed=done, total=total)


class BatchProgress:
    """Pairs done of the total, pages per second and time left, on stderr (terminals only).

    The bar moves page by page: a pair in flight counts as the share of its pages
    answered (a long document's ranking pass as its first half), so the rate and the time
    left are estimated from pages done, not from the few pairs finished.
    """

    def __init__(self, total: int, label: str) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        console = stderr_console()
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]} pages/s"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=console,
            transient=True,
            disable=not console.is_terminal,
        )
        self.task = self.progress.add_task(label, total=total, rate="0.00")
        self.done = 0  # pairs whose records are out
        self.flight: dict[str, float] = {}  # a pair in flight -> share of it done
        self.ranked: set[str] = set()
        self.pages = 0
        self.start = time.perf_counter()

    def page(self, key: str, phase: str, done: int, total: int) -> None:
        """One more page of the pair ``key`` answered (``DocumentQA.ask_many``'s progress)."""
        self.pages += 1
        if phase == "ranking":
            self.ranked.add(key)
            share = 0.5 * done / total
        else:
            share = (0.5 + 0.5 * done / total) if key in self.ranked else done / total
        self.flight[key] = min(share, 1.0)
        self._show()

    def advance(self, pages: int, key: str | None = None) -> None:
        """The pair ``key``'s record is out; its ``pages`` count now unless ``page``
        counted them as they were answered."""
        if key not in self.flight:
            self.pages += pages
        self.flight.pop(key, None)
        self.ranked.discard(key)
        self.done += 1
        self._show()

    def _show(self) -> None:
        rate = self.pages / max(time.perf_counter() - self.start, 1e-9)
        completed = self.done + sum(self.flight.values())
        self.progress.update(self.task, completed=completed, rate=f"{rate:.2f}")


@contextmanager
def batch_progress(total: int, label: str) -> Iterator[BatchProgress]:
    bar = BatchProgress(total, label)
    with bar.progress:
        yield bar
