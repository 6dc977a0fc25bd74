"""Lines typed by a person, or read from a pipe, for `tpdoc chat`.

In: stdin. Out: stripped, non-empty lines until Ctrl-D or the end of input. At a terminal
the lines are edited with the standard library's ``readline`` (arrow keys, Ctrl-R, and a
history kept between sessions in ``history_path()``); Ctrl-C at the prompt drops the line
and asks again. From a pipe the lines are read as they are, with no prompt.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import suppress
from pathlib import Path
from types import ModuleType

from tpdoc.cli.app import stderr_console

PROMPT = "? "
HISTORY_FILE = "chat_history"
HISTORY_LENGTH = 1000


def stdin_is_terminal() -> bool:
    """Whether the lines come from a person (a prompt, line editing, Ctrl-C handling)."""
    return sys.stdin.isatty()


def history_path() -> Path:
    """The chat history file: the platform's user state folder + ``tpdoc``
    (``$XDG_STATE_HOME/tpdoc`` or ``~/.local/state/tpdoc``, ``~/Library/Application
    Support/tpdoc``, ``%LOCALAPPDATA%\\tpdoc``)."""
    home = Path.home()
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or home / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = home / "Library" / "Application Support"
    else:
        base = Path(os.environ.get("XDG_STATE_HOME") or home / ".local" / "state")
    return base / "tpdoc" / HISTORY_FILE


def _readline() -> ModuleType | None:
    try:
        import readline
    except ImportError:  # Windows: the console edits lines itself
        return None
    return readline


class LineReader:
    """Questions and commands, one line at a time (``for line in reader``), inside
    ``with reader:`` (which loads and saves the history).

    ``interactive``: a person types the lines (stdin is a terminal): a prompt, and Ctrl-C
    means "not this" rather than "stop the program". ``editing``: ``input()`` with
    ``readline``, which needs stdout to be the terminal too (it draws the line there).
    """

    def __init__(self, *, interactive: bool, editing: bool, history: Path | None = None) -> None:
        self.interactive = interactive
        self.readline = _readline() if editing else None
        self.history = history if self.readline is not None else None

    @classmethod
    def for_stdin(cls) -> LineReader:
        interactive = stdin_is_terminal()
        editing = interactive and sys.stdout.isatty()
        return cls(interactive=interactive, editing=editing, history=history_path())

    def __enter__(self) -> LineReader:
        if self.readline is not None:
            self.readline.clear_history()  # this session's and the file's lines only
            self.readline.set_history_length(HISTORY_LENGTH)
            if self.history is not None:
                with suppress(OSError):  # none yet, or unreadable: start without
                    self.readline.read_history_file(self.history)
        return self

    def __exit__(self, *exc: object) -> None:
        """Save the history; a folder that cannot be written only loses it."""
        if self.readline is None or self.history is None:
            return
        with suppress(OSError):
            self.history.parent.mkdir(parents=True, exist_ok=True)
            self.readline.write_history_file(self.history)

    def __iter__(self) -> Iterator[str]:
        while True:
            try:
                line = self._read()
            except EOFError:  # Ctrl-D, or the end of the pipe
                if self.interactive:
                    stderr_console().print()  # the shell's prompt on a line of its own
                return
            except KeyboardInterrupt:
                if not self.interactive:
                    raise
                stderr_console().print("\n(Ctrl-D or /quit ends the session)")
                continue
            if line.strip():
                yield line.strip()

    def _read(self) -> str:
        if self.readline is not None:
            return input(PROMPT)
        if self.interactive:  # stdout is a pipe or a file: the prompt goes to stderr
            stderr_console().print(f"[bold]{PROMPT.strip()}[/bold] ", end="")
        line = sys.stdin.readline()
        if not line:
            raise EOFError
        return line
